//! [`Snapshot`]: one thread's counters at one moment; [`Delta`]: the
//! difference of two, scaled where the PMU was multiplexed.

use super::{Counter, ReadPath};

/// The values of one thread's counters at one moment.
///
/// Absolute values mean little on their own; subtract two snapshots of the
/// same thread with [`Delta::between`]. A counter that could not be read is
/// `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Snapshot {
    /// `CLOCK_MONOTONIC`, nanoseconds.
    pub wall_ns: u64,
    /// Thread CPU time, nanoseconds.
    pub cpu_ns: Option<u64>,
    /// Raw instruction count of the perf event (not scaled).
    pub instructions: Option<u64>,
    /// Raw cycle count of the perf event (not scaled).
    pub cycles: Option<u64>,
    /// Raw page-fault count of the perf event.
    pub page_faults: Option<u64>,
    /// Raw context-switch count of the perf event.
    pub context_switches: Option<u64>,
    /// Current RSS of the process, bytes (`None` in the snapshots that
    /// leave it out, e.g. [`Counters::snapshot_start_counts`](super::Counters::snapshot_start_counts)).
    pub rss_bytes: Option<u64>,
    /// Peak RSS of the process so far, bytes (likewise).
    pub peak_rss_bytes: Option<u64>,
    /// Nanoseconds the perf group has been enabled (0 without a group).
    pub time_enabled: u64,
    /// Nanoseconds the perf group has been on the PMU (0 without a group).
    pub time_running: u64,
    /// How the perf counters were read.
    pub source: ReadPath,
    /// Where `cpu_ns` came from: two snapshots subtract only when it is the
    /// same place (each has its own zero).
    pub(super) cpu_from: CpuFrom,
    /// Whether `context_switches` came from getrusage rather than the group.
    pub(super) switches_from_rusage: bool,
}

/// Where a snapshot's CPU time came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum CpuFrom {
    /// Not read.
    #[default]
    Nowhere,
    /// `CLOCK_THREAD_CPUTIME_ID`.
    Clock,
    /// The task-clock event in the perf group, so subject to the same
    /// scaling as the other group members.
    TaskClock,
    /// The group leader's enabled time: a task-bound event's
    /// `time_enabled` advances only while its thread runs, so it is the
    /// thread's CPU time since the group was opened, read with the counts
    /// (from the mmap page, brought up to date with the timestamp counter,
    /// or from `read(2)`) and never scaled.
    LeaderEnabled,
}

/// What happened between two snapshots of the same thread.
///
/// Every counter is an `Option`: `None` means it could not be measured
/// (missing PMU, no permission, the group never ran); it is never 0 for
/// "unknown" and never an estimate, except where `scaled` is true.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delta {
    /// Wall-clock nanoseconds.
    pub wall_ns: u64,
    /// Thread CPU nanoseconds.
    pub cpu_ns: Option<u64>,
    /// User-space instructions retired.
    pub instructions: Option<u64>,
    /// User-space CPU cycles.
    pub cycles: Option<u64>,
    /// Page faults.
    pub page_faults: Option<u64>,
    /// Context switches.
    pub context_switches: Option<u64>,
    /// RSS at the start, bytes.
    pub rss_start: Option<u64>,
    /// RSS at the end, bytes.
    pub rss_end: Option<u64>,
    /// Peak RSS at the end, bytes.
    pub peak_rss: Option<u64>,
    /// True when the PMU was multiplexed (`time_running < time_enabled`)
    /// and the perf counts were scaled by `time_enabled / time_running`:
    /// they are estimates.
    pub scaled: bool,
    /// How the counters were read.
    pub source: ReadPath,
}

impl Delta {
    /// `end - start`, with multiplexing scaling applied to the perf counts.
    ///
    /// Both snapshots must come from the same thread; a counter that went
    /// backwards (snapshots of different threads or processes) is `None`.
    pub fn between(start: &Snapshot, end: &Snapshot) -> Delta {
        let enabled = end.time_enabled.wrapping_sub(start.time_enabled);
        let running = end.time_running.wrapping_sub(start.time_running);
        let times_sane = end.time_enabled >= start.time_enabled
            && end.time_running >= start.time_running
            && running <= enabled;
        // Scale factor for the perf group: None = counts unusable.
        let scale: Option<Option<(u64, u64)>> = if !times_sane || (running == 0 && enabled > 0) {
            None
        } else if running < enabled {
            Some(Some((enabled, running)))
        } else {
            Some(None)
        };
        let perf = |a: Option<u64>, b: Option<u64>| -> Option<u64> {
            let d = b?.checked_sub(a?)?;
            match scale? {
                None => Some(d),
                Some((en, run)) => Some((u128::from(d) * u128::from(en) / u128::from(run)) as u64),
            }
        };
        let cpu_ns = match (start.cpu_from, end.cpu_from) {
            (CpuFrom::TaskClock, CpuFrom::TaskClock) => perf(start.cpu_ns, end.cpu_ns),
            // Two clocks with different zeros: no difference to take.
            (a, b) if a != b => None,
            _ => end
                .cpu_ns
                .zip(start.cpu_ns)
                .and_then(|(e, s)| e.checked_sub(s)),
        };
        let any_perf = end.instructions.is_some()
            || end.cycles.is_some()
            || end.page_faults.is_some()
            || (end.context_switches.is_some() && !end.switches_from_rusage)
            || end.cpu_from == CpuFrom::TaskClock;
        Delta {
            wall_ns: end.wall_ns.saturating_sub(start.wall_ns),
            cpu_ns,
            instructions: perf(start.instructions, end.instructions),
            cycles: perf(start.cycles, end.cycles),
            page_faults: perf(start.page_faults, end.page_faults),
            context_switches: if start.switches_from_rusage != end.switches_from_rusage {
                // Two sources with different zeros (the thread's counters
                // were opened again in between): no difference to take.
                None
            } else if start.switches_from_rusage {
                end.context_switches
                    .zip(start.context_switches)
                    .and_then(|(e, s)| e.checked_sub(s))
            } else {
                perf(start.context_switches, end.context_switches)
            },
            rss_start: start.rss_bytes,
            rss_end: end.rss_bytes,
            peak_rss: end.peak_rss_bytes,
            scaled: any_perf && matches!(scale, Some(Some(_))),
            source: if start.source == end.source {
                end.source
            } else {
                ReadPath::Read
            },
        }
    }

    /// A delta of nothing: every counter `Some(0)`. The starting point for
    /// summing deltas with [`Delta::accumulate`].
    pub fn zero() -> Delta {
        Delta {
            wall_ns: 0,
            cpu_ns: Some(0),
            instructions: Some(0),
            cycles: Some(0),
            page_faults: Some(0),
            context_switches: Some(0),
            rss_start: None,
            rss_end: None,
            peak_rss: None,
            scaled: false,
            source: ReadPath::Software,
        }
    }

    /// Adds `other` to `self`, counter by counter: used to sum the polls of
    /// a future. A counter missing from either side becomes `None` (a total
    /// with a hole in it would be an undercount). RSS keeps the first start
    /// and takes the latest end; `scaled` is sticky.
    pub fn accumulate(&mut self, other: &Delta) {
        fn add(a: Option<u64>, b: Option<u64>) -> Option<u64> {
            Some(a?.saturating_add(b?))
        }
        self.wall_ns = self.wall_ns.saturating_add(other.wall_ns);
        self.cpu_ns = add(self.cpu_ns, other.cpu_ns);
        self.instructions = add(self.instructions, other.instructions);
        self.cycles = add(self.cycles, other.cycles);
        self.page_faults = add(self.page_faults, other.page_faults);
        self.context_switches = add(self.context_switches, other.context_switches);
        if self.rss_start.is_none() {
            self.rss_start = other.rss_start;
        }
        if other.rss_end.is_some() {
            self.rss_end = other.rss_end;
        }
        if other.peak_rss.is_some() {
            self.peak_rss = other.peak_rss;
        }
        self.scaled |= other.scaled;
        self.source = other.source;
    }

    /// The value of `counter` in this delta (`WallTime` is always present;
    /// `Rss` is the end value).
    pub fn get(&self, counter: Counter) -> Option<u64> {
        match counter {
            Counter::Instructions => self.instructions,
            Counter::Cycles => self.cycles,
            Counter::CpuTime => self.cpu_ns,
            Counter::WallTime => Some(self.wall_ns),
            Counter::Rss => self.rss_end,
            Counter::PeakRss => self.peak_rss,
            Counter::PageFaults => self.page_faults,
            Counter::ContextSwitches => self.context_switches,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A region whose thread's counters were opened again in between (a
    /// retry after a refusal) has context switches from getrusage at one
    /// end and from the perf group at the other: two zeros, no difference.
    #[test]
    fn context_switches_from_two_sources_do_not_subtract() {
        let rusage = Snapshot {
            context_switches: Some(100),
            switches_from_rusage: true,
            ..Snapshot::default()
        };
        let perf = Snapshot {
            context_switches: Some(3),
            ..Snapshot::default()
        };
        assert_eq!(Delta::between(&rusage, &perf).context_switches, None);
        assert_eq!(Delta::between(&perf, &rusage).context_switches, None);
        let later = Snapshot {
            context_switches: Some(104),
            ..rusage
        };
        assert_eq!(Delta::between(&rusage, &later).context_switches, Some(4));
    }

    fn snap(instr: u64, te: u64, tr: u64) -> Snapshot {
        Snapshot {
            instructions: Some(instr),
            time_enabled: te,
            time_running: tr,
            source: ReadPath::Read,
            ..Snapshot::default()
        }
    }

    #[test]
    fn exact_when_not_multiplexed() {
        let d = Delta::between(&snap(100, 10, 10), &snap(1100, 50, 50));
        assert_eq!(d.instructions, Some(1000));
        assert!(!d.scaled);
    }

    #[test]
    fn scaled_when_multiplexed() {
        // Ran half the time: 1000 counted, 2000 estimated.
        let d = Delta::between(&snap(0, 0, 0), &snap(1000, 200, 100));
        assert_eq!(d.instructions, Some(2000));
        assert!(d.scaled);
    }

    #[test]
    fn none_when_never_running() {
        let d = Delta::between(&snap(0, 0, 0), &snap(0, 200, 0));
        assert_eq!(d.instructions, None);
    }

    #[test]
    fn backwards_is_none() {
        let d = Delta::between(&snap(500, 0, 0), &snap(100, 10, 10));
        assert_eq!(d.instructions, None);
    }

    #[test]
    fn accumulate_holes_become_none() {
        let mut total = Delta::zero();
        let a = Delta {
            instructions: Some(5),
            cpu_ns: Some(7),
            ..Delta::zero()
        };
        total.accumulate(&a);
        total.accumulate(&a);
        assert_eq!(total.instructions, Some(10));
        assert_eq!(total.cpu_ns, Some(14));
        total.accumulate(&Delta {
            instructions: None,
            ..a
        });
        assert_eq!(total.instructions, None);
        assert_eq!(total.cpu_ns, Some(21));
    }

    #[test]
    fn accumulate_keeps_the_first_rss_start_and_the_last_rss_end() {
        let rss = |start, end| Delta {
            rss_start: start,
            rss_end: end,
            ..Delta::zero()
        };
        // A first piece that read RSS at its start, then pieces without.
        let mut total = rss(Some(100), None);
        total.accumulate(&rss(None, None));
        total.accumulate(&rss(None, None));
        assert_eq!((total.rss_start, total.rss_end), (Some(100), None));
        total.accumulate(&rss(Some(300), Some(400)));
        assert_eq!((total.rss_start, total.rss_end), (Some(100), Some(400)));
        total.accumulate(&rss(None, None));
        assert_eq!((total.rss_start, total.rss_end), (Some(100), Some(400)));
    }
}
