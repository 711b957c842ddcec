//! Where each counter of a thread comes from: [`CounterSource`] per
//! counter, [`CounterState`] (its source, or why it is absent) and
//! [`Sources`], what [`Counters::sources`](super::Counters::sources)
//! answers for a thread's whole set. The probe, status records and their
//! `Display` all read this one answer.

use std::fmt;
use std::str::FromStr;

use super::{Counter, ReadPath, Unavailable};

/// Where one counter's values come from on a thread.
///
/// The names ([`CounterSource::as_str`]) are those of a status record's
/// `detail.sources` and of the probe's `source` column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CounterSource {
    /// A hardware perf event read from user space through its mmap page
    /// (`rdpmc` on x86_64, `mrs` of the PMU registers on aarch64), no
    /// system call. For CPU time: the perf group leader's enabled time,
    /// read from the same page.
    UserRead,
    /// A hardware perf event read with one `read(2)` of the thread's perf
    /// group. For CPU time: the group leader's enabled time from that read
    /// (the user-read group whose pages cannot be read right now).
    GroupRead,
    /// A software perf event (task-clock, page-faults, context-switches)
    /// in the thread's perf group, read with `read(2)`.
    SoftwareEvent,
    /// A clock: `CLOCK_THREAD_CPUTIME_ID` for CPU time (when the perf
    /// task-clock was refused), `CLOCK_MONOTONIC` for wall time.
    Clock,
    /// `/proc/self/statm`, with `pread` on a descriptor kept open.
    Statm,
    /// `getrusage`: `RUSAGE_SELF` for peak RSS, `RUSAGE_THREAD` for context
    /// switches when the kernel refuses their perf event.
    Getrusage,
}

impl CounterSource {
    /// Every source.
    pub const ALL: [CounterSource; 6] = [
        CounterSource::UserRead,
        CounterSource::GroupRead,
        CounterSource::SoftwareEvent,
        CounterSource::Clock,
        CounterSource::Statm,
        CounterSource::Getrusage,
    ];

    /// The name used in status records and by the probe: `"rdpmc"`,
    /// `"read"`, `"software_event"`, `"clock"`, `"statm"` or `"getrusage"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CounterSource::UserRead => "rdpmc",
            CounterSource::GroupRead => "read",
            CounterSource::SoftwareEvent => "software_event",
            CounterSource::Clock => "clock",
            CounterSource::Statm => "statm",
            CounterSource::Getrusage => "getrusage",
        }
    }
}

impl fmt::Display for CounterSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CounterSource {
    type Err = String;

    /// Parses [`CounterSource::as_str`].
    fn from_str(s: &str) -> Result<CounterSource, String> {
        CounterSource::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = CounterSource::ALL.iter().map(|c| c.as_str()).collect();
                format!(
                    "unknown counter source {s:?}: expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// One counter of a thread's set: where its values come from, or why it is
/// absent from every snapshot (and record).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CounterState {
    /// The counter.
    pub counter: Counter,
    /// Its source when it is read, or why it is not.
    pub source: Result<CounterSource, Unavailable>,
}

impl CounterState {
    /// Whether the counter is read: snapshots (and records) carry it.
    pub fn available(&self) -> bool {
        self.source.is_ok()
    }

    /// Why the counter is absent, or `None` when it is read.
    pub fn unavailable(&self) -> Option<&Unavailable> {
        self.source.as_ref().err()
    }

    /// `"ok"`, or why the counter is unavailable with its errno
    /// ([`Unavailable::explanation`]): the value of a status record's
    /// `detail.counters` entry.
    pub fn verdict(&self) -> String {
        match &self.source {
            Ok(_) => "ok".to_string(),
            Err(u) => u.explanation(),
        }
    }
}

/// How one thread's counters are read at the moment of asking: the read
/// path its snapshots take now and, for every counter of its set, where the
/// values come from or why the counter is absent.
///
/// ```
/// use dynostats::counters::{Counter, CounterSet, CounterSource, Counters};
///
/// let mut counters = Counters::open(CounterSet::wall_only().with(Counter::Rss));
/// let sources = counters.sources();
/// assert_eq!(sources.source(Counter::WallTime), Some(CounterSource::Clock));
/// assert_eq!(sources.source(Counter::Rss), Some(CounterSource::Statm));
/// assert!(sources.get(Counter::Instructions).is_none()); // not in the set
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Sources {
    /// The read path a snapshot takes now (the `source` field of records).
    pub path: ReadPath,
    /// Every counter of the set, in [`Counter::ALL`] order.
    pub counters: Vec<CounterState>,
}

impl Sources {
    /// The state of `counter`, or `None` when it is not in the set.
    pub fn get(&self, counter: Counter) -> Option<&CounterState> {
        self.counters.iter().find(|c| c.counter == counter)
    }

    /// Where `counter` comes from, or `None` when it is not in the set or
    /// unavailable.
    pub fn source(&self, counter: Counter) -> Option<CounterSource> {
        self.get(counter)?.source.as_ref().ok().copied()
    }
}

impl fmt::Display for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_header(f, false)?;
        for state in &self.counters {
            write_row(f, state, None, "")?;
        }
        write!(f, "read path {}", self.path)
    }
}

/// The header of the per-counter table ([`Sources`], the probe), with a
/// read-cost column when `costs`.
pub(crate) fn write_header(f: &mut fmt::Formatter<'_>, costs: bool) -> fmt::Result {
    let cost = if costs {
        format!(" {:>9}", "read ns")
    } else {
        String::new()
    };
    writeln!(
        f,
        "{:<17} {:<10} {:<15}{cost}  reason",
        "counter", "available", "source"
    )
}

/// One row of the per-counter table: the counter, whether it is read, its
/// source, the read cost when the table has that column (`Some`: the
/// nanoseconds, `-` for none), and its reason when absent, followed by
/// `note`.
pub(crate) fn write_row(
    f: &mut fmt::Formatter<'_>,
    state: &CounterState,
    cost: Option<Option<u64>>,
    note: &str,
) -> fmt::Result {
    let cost = cost.map_or_else(String::new, |ns| {
        format!(
            " {:>9}",
            ns.map_or_else(|| "-".to_string(), |n| n.to_string())
        )
    });
    let (available, source, reason) = match &state.source {
        Ok(source) => ("yes", source.as_str(), String::new()),
        Err(u) => ("no", "-", u.explanation()),
    };
    let gap = if reason.is_empty() { "" } else { " " };
    let line = format!(
        "{:<17} {:<10} {:<15}{cost}  {reason}{gap}{note}",
        state.counter.name(),
        available,
        source,
    );
    writeln!(f, "{}", line.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        for s in CounterSource::ALL {
            assert_eq!(s.as_str().parse::<CounterSource>(), Ok(s));
        }
        assert!("rdtsc".parse::<CounterSource>().is_err());
    }
}
