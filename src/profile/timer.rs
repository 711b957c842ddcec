//! The profiler's timer: which quantity scopes are measured in, how it is
//! read on the calling thread, and the fallback when it cannot be.

use std::fmt;
use std::str::FromStr;

use crate::counters::{self, Counter};
use crate::sys;

/// What the profiler measures scopes in.
///
/// [`Timer::Instructions`] is the default: exact where the hardware PMU is
/// available, and barely moved by load. Where the chosen timer cannot be
/// read on the measuring thread (no PMU, `perf_event_paranoid`, RSS not in
/// the counter set), profiles fall back to [`Timer::CpuTime`] and say so in
/// the record (`timer_requested`, `timer_fallback`): a fallback figure is
/// never written under the requested timer's name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Timer {
    /// User-space instructions retired (hardware PMU).
    #[default]
    Instructions,
    /// User-space CPU cycles (hardware PMU).
    Cycles,
    /// CPU time of the thread, nanoseconds (`CLOCK_THREAD_CPUTIME_ID`).
    CpuTime,
    /// Wall-clock time, nanoseconds (`CLOCK_MONOTONIC`).
    WallTime,
    /// Resident set size of the process, bytes: which scopes grow it (a
    /// memory profiler). Amounts can be negative (a scope that freed
    /// memory). RSS is a process-wide level, so other threads' allocations
    /// during a scope count too.
    Rss,
}

impl Timer {
    /// Every timer.
    pub const ALL: [Timer; 5] = [
        Timer::Instructions,
        Timer::Cycles,
        Timer::CpuTime,
        Timer::WallTime,
        Timer::Rss,
    ];

    /// The name written in profile records: the record field of the
    /// quantity (`"instructions"`, `"cycles"`, `"cpu_ns"`, `"wall_ns"`,
    /// `"rss"`).
    pub fn name(self) -> &'static str {
        self.counter().name()
    }

    /// The counter this timer reads.
    pub fn counter(self) -> Counter {
        match self {
            Timer::Instructions => Counter::Instructions,
            Timer::Cycles => Counter::Cycles,
            Timer::CpuTime => Counter::CpuTime,
            Timer::WallTime => Counter::WallTime,
            Timer::Rss => Counter::Rss,
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    pub(crate) fn from_index(i: u8) -> Timer {
        Timer::ALL.get(usize::from(i)).copied().unwrap_or_default()
    }

    /// The raw value now on the calling thread (not scaled for
    /// multiplexing), or `None` when it cannot be read.
    #[inline]
    pub(crate) fn read(self) -> Option<u64> {
        match self {
            Timer::Instructions | Timer::Cycles | Timer::Rss => {
                counters::read_counter(self.counter())
            }
            Timer::CpuTime => sys::thread_cpu_ns(),
            Timer::WallTime => Some(sys::monotonic_ns()),
        }
    }

    /// The timer actually used on this thread when `self` is asked for:
    /// `self` when it can be read here, else CPU time (or wall time, if
    /// even that fails), with the reason.
    pub(crate) fn resolve(self) -> (Timer, Option<String>) {
        let reason = match self {
            Timer::WallTime => return (self, None),
            Timer::CpuTime => match sys::thread_cpu_ns() {
                Some(_) => return (self, None),
                None => "CLOCK_THREAD_CPUTIME_ID cannot be read".to_string(),
            },
            _ => {
                let counter = self.counter();
                let why = counters::with_thread_counters(|c| {
                    if !c.set().contains(counter) {
                        return Some(format!(
                            "{counter} is not in the thread counter set \
                             (counters::set_thread_counters)"
                        ));
                    }
                    c.unavailable()
                        .iter()
                        .find(|u| u.counter == counter)
                        .map(|u| u.explanation())
                });
                match why {
                    Some(None) if self.read().is_some() => return (self, None),
                    Some(None) => format!("{counter} could not be read"),
                    Some(Some(why)) => why,
                    None => "the thread's counters are gone (thread exiting)".to_string(),
                }
            }
        };
        let (fallback, _) = if self == Timer::CpuTime {
            (Timer::WallTime, None::<String>)
        } else {
            Timer::CpuTime.resolve()
        };
        (fallback, Some(reason))
    }
}

impl fmt::Display for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Timer {
    type Err = String;

    /// Parses [`Timer::name`].
    fn from_str(s: &str) -> Result<Timer, String> {
        Timer::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown timer {s:?}: expected instructions, cycles, cpu_ns, wall_ns or rss"
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        for t in Timer::ALL {
            assert_eq!(t.name().parse::<Timer>(), Ok(t));
            assert_eq!(Timer::from_index(t.index() as u8), t);
        }
        assert!("cpu".parse::<Timer>().is_err());
    }

    #[test]
    fn clocks_always_resolve_to_themselves() {
        assert_eq!(Timer::WallTime.resolve(), (Timer::WallTime, None));
        assert_eq!(Timer::CpuTime.resolve(), (Timer::CpuTime, None));
    }

    #[test]
    fn an_unreadable_timer_falls_back_to_cpu_time_with_a_reason() {
        // Without a PMU (this host) instructions fall back; with one they
        // resolve to themselves. Either way the pair is consistent.
        match Timer::Instructions.resolve() {
            (Timer::Instructions, None) => assert!(Timer::Instructions.read().is_some()),
            (Timer::CpuTime, Some(reason)) => assert!(!reason.is_empty()),
            other => panic!("{other:?}"),
        }
    }
}
