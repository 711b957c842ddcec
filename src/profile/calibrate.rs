//! The profiler's own cost, measured once per process, timer and read path: what an
//! empty scope reads, and what an empty scope costs the scope around it.

use std::sync::OnceLock;

use super::current;
use super::timer::Timer;
use super::tree::Profile;
use crate::counters::{self, ReadPath};

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
    /// What stopping and restarting the task's clock (the end and start of
    /// a poll with scopes open) adds to the open scopes: measured through
    /// `current::suspend` and `current::resume`, the out-of-line functions
    /// the per-poll engine calls, so it is the same code.
    pub(crate) resume: i64,
    /// What making a node adds to the scope it is made in, beyond `pair`.
    pub(crate) create: i64,
}

impl Calibration {
    /// No correction (while calibrating, and in tests of the bookkeeping).
    pub(crate) const ZERO: Calibration = Calibration {
        base: 0,
        pair: 0,
        resume: 0,
        create: 0,
    };
}

/// Repetitions of each shape; the median is kept.
const RUNS: usize = 21;

/// Per timer and per way of reading it (a hardware counter read from user
/// space or with `read(2)` costs different instructions).
static CALIBRATIONS: [[OnceLock<Calibration>; 3]; 5] =
    [const { [const { OnceLock::new() }; 3] }; 5];

/// How `timer` is read on the calling thread: the thread counters' read
/// path for the hardware timers, [`ReadPath::Software`] for the others.
fn read_path(timer: Timer) -> ReadPath {
    if !timer.counter().is_hardware() {
        return ReadPath::Software;
    }
    counters::with_thread_counters(|c| c.source()).unwrap_or_default()
}

fn slot(timer: Timer) -> &'static OnceLock<Calibration> {
    let path = match read_path(timer) {
        ReadPath::Rdpmc => 0,
        ReadPath::Read => 1,
        _ => 2,
    };
    &CALIBRATIONS[timer.index()][path]
}

/// The calibration of `timer` as the calling thread reads it, measured on
/// this thread the first time it is asked for.
pub(crate) fn calibration(timer: Timer) -> Calibration {
    *slot(timer).get_or_init(|| measure(timer))
}

/// Whether `timer` has been calibrated for the calling thread's read path.
pub(crate) fn is_calibrated(timer: Timer) -> bool {
    slot(timer).get().is_some()
}

/// Runs four shapes through the real path (`scope()` and the thread's
/// current profile) with no correction, and keeps the medians: `base`, an
/// empty scope's own amount; `pair`, the amount of a scope holding one
/// empty scope whose node exists, minus `base`; `create`, the same with
/// the inner node made anew (a fresh profile each time), minus `base` and
/// `pair`; `resume`, a scope around a suspend and a resume of the clock,
/// minus `base`.
fn measure(timer: Timer) -> Calibration {
    let fresh = || Profile::new(0, timer, timer, None, Calibration::ZERO, 4, 8);
    let (mut empty, mut outer, mut created, mut resumed) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    current::with_private(fresh(), || {
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
        for _ in 0..RUNS {
            let before = current::top_inclusive("resumed");
            {
                let _resumed = super::scope("resumed");
                current::suspend();
                current::resume();
            }
            resumed.push(current::top_inclusive("resumed") - before);
        }
    });
    for _ in 0..RUNS {
        current::with_private(fresh(), || {
            drop(super::scope("outer"));
            {
                let _outer = super::scope("outer");
                drop(super::scope("inner"));
            }
            created.push(current::top_inclusive("outer"));
        });
    }
    let base = median(&mut empty).max(0);
    let pair = (median(&mut outer) - base).max(0);
    // `created` holds the first, empty call of `outer` too.
    let create = (median(&mut created) - 2 * base - pair).max(0);
    let resume = (median(&mut resumed) - base).max(0);
    super::stats::calibrated();
    Calibration {
        base,
        pair,
        resume,
        create,
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
