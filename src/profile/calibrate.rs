//! The profiler's own cost, measured once per process and timer: what an
//! empty scope reads, and what an empty scope costs the scope around it.

use std::sync::OnceLock;

use super::current;
use super::timer::Timer;
use super::tree::Profile;

/// The fixed cost of the profiler in one timer's unit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Calibration {
    /// What an empty scope measures: the tail of the read at its enter and
    /// the head of the read at its exit. Taken off every scope (and off
    /// open scopes once per poll resumed: the same two read fragments).
    pub(crate) base: i64,
    /// What an empty scope costs the scope around it: the whole enter and
    /// exit, bookkeeping and both reads. Taken off the enclosing scopes for
    /// every pair inside them, and reported as the profiler's own amount.
    pub(crate) pair: i64,
}

impl Calibration {
    /// No correction (while calibrating, and in tests of the bookkeeping).
    pub(crate) const ZERO: Calibration = Calibration { base: 0, pair: 0 };
}

/// Repetitions of each shape; the median is kept.
const RUNS: usize = 21;

static CALIBRATIONS: [OnceLock<Calibration>; 5] = [const { OnceLock::new() }; 5];

/// The calibration of `timer`, measured on the calling thread the first
/// time it is asked for.
pub(crate) fn calibration(timer: Timer) -> Calibration {
    *CALIBRATIONS[timer.index()].get_or_init(|| measure(timer))
}

/// Whether `timer` has been calibrated in this process.
pub(crate) fn is_calibrated(timer: Timer) -> bool {
    CALIBRATIONS[timer.index()].get().is_some()
}

/// Runs the two shapes through the real path (`scope()` and the thread's
/// current profile) with no correction, and keeps the medians:
/// `base` = an empty scope's own amount; `pair` = the amount of a scope
/// holding one empty scope, minus `base`.
fn measure(timer: Timer) -> Calibration {
    let profile = Profile::new(0, timer, timer, None, Calibration::ZERO, 4, 8);
    let (mut empty, mut outer) = (Vec::new(), Vec::new());
    current::with_private(profile, || {
        for _ in 0..RUNS {
            let before = current::top_inclusive("empty");
            drop(super::scope("empty"));
            empty.push(current::top_inclusive("empty") - before);
        }
        for _ in 0..RUNS {
            let before = current::top_inclusive("outer");
            {
                let _outer = super::scope("outer");
                drop(super::scope("inner"));
            }
            outer.push(current::top_inclusive("outer") - before);
        }
    });
    let base = median(&mut empty);
    let pair = (median(&mut outer) - base).max(0);
    super::stats::calibrated();
    Calibration {
        base: base.max(0),
        pair,
    }
}

fn median(v: &mut [i64]) -> i64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    v[v.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_empty() {
        assert_eq!(median(&mut [5, 1, 3]), 3);
        assert_eq!(median(&mut []), 0);
    }

    #[test]
    fn wall_time_calibration_is_small_and_not_negative() {
        let c = calibration(Timer::WallTime);
        assert!(c.base >= 0 && c.pair >= 0, "{c:?}");
        // Generous: a pair is two clock reads and some bookkeeping.
        assert!(c.pair < 1_000_000, "{c:?}");
        assert!(is_calibrated(Timer::WallTime));
    }
}
