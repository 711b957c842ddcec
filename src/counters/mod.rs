//! Per-thread counters: which ones exist, how they are opened, read, and
//! turned into deltas.
//!
//! A perf counter opened with `pid = 0, cpu = -1` counts the calling thread
//! only, so everything here is per thread: [`Counters`] is `!Send`, and the
//! free function [`snapshot`] uses one `Counters` per thread, opened lazily
//! on that thread's first read and closed when the thread exits.
//!
//! The module is split by concern: [`Counter`], [`CounterSet`] and
//! [`ReadPath`] here; [`Snapshot`] and [`Delta`] in `snapshot`; the perf
//! group ([`Counters`]: open and read) in `group`; the descriptor budget
//! ([`DescriptorBudget`]) in `budget`; the process's one `/proc/self/statm`
//! descriptor in `statm`; the thread-local behind [`snapshot()`] in `thread`; why a
//! counter is absent ([`Unavailable`]) in `unavailable`; where each
//! counter comes from ([`CounterSource`], [`CounterState`], [`Sources`],
//! answered by [`Counters::sources`]) in `source`.
//!
//! # User-space reads the kernel withdraws
//!
//! The kernel can take back user-space access to the PMU while the
//! process runs: on arm64 `/proc/sys/kernel/perf_user_access` switched
//! from 1 to 0 makes the next `mrs` of a counter register trap (SIGILL), on
//! x86_64 `/sys/bus/event_source/devices/cpu/rdpmc` switched to 0 makes the
//! next `rdpmc` fault (SIGSEGV), before the event's mmap page says
//! anything. Before a thread first reads its counters from user space
//! ([`ReadPath::Rdpmc`]), the library installs, once per process, a handler
//! of that signal that recognises only a trap on its own read instruction
//! and turns it into a failed read; every other such signal goes to the
//! handler that was installed before it (or, if there was none, kills the
//! process as it would have). That thread then reads its counters with
//! `read(2)` for good ([`Counters::source`] says [`ReadPath::Read`]); the
//! snapshot whose read trapped takes its counts from `read(2)`, except at
//! the end of a region, where the count would include the trap's handling
//! and so is absent. [`withdrawn_user_reads`] counts the recovered traps.
//!
//! What remains: the handler runs on the thread's alternate signal stack
//! when it has one (`SA_ONSTACK`); it allocates nothing, takes no lock and
//! calls only `sigaction` and `raise`. A handler it chains to runs inside
//! it, with the library's signal mask rather than its own `sa_mask`. A
//! handler of that signal the service installs later without chaining to
//! the one it replaces takes the trap, and the process dies as it would
//! have without the library. A thread whose page stopped offering the
//! counter (it was scheduled since the switch) never traps: each of its
//! reads checks the page and falls back to `read(2)`, while
//! [`Counters::source`] still says [`ReadPath::Rdpmc`] ([`Counters::sources`]
//! says [`ReadPath::Read`], the path its reads take).

mod budget;
mod group;
mod snapshot;
mod source;
mod statm;
mod thread;
mod unavailable;

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use budget::{
    DescriptorBudget, DescriptorUse, descriptor_budget, descriptor_use, set_descriptor_budget,
};
pub use group::Counters;
pub use snapshot::{Delta, Snapshot};
pub use source::{CounterSource, CounterState, Sources};
pub(crate) use source::{write_header, write_row};
pub(crate) use thread::{memory_now, read_counter, snapshot_end_counts, snapshot_start_counts};
pub use thread::{
    set_thread_counters, snapshot, snapshot_end, snapshot_start, thread_counters,
    with_thread_counters,
};
pub use unavailable::Unavailable;

/// How many user-space counter reads of this process the kernel refused
/// while the event's page still offered them (arm64's `perf_user_access`
/// or x86_64's `/sys/bus/event_source/devices/cpu/rdpmc` switched off at
/// run time), each recovered instead of killing the process; every thread
/// that met one reads its counters with `read(2)` since. Always 0 on other
/// architectures.
///
/// ```
/// // Nothing here withdraws user access.
/// assert_eq!(dynostats::counters::withdrawn_user_reads(), 0);
/// ```
pub fn withdrawn_user_reads() -> u64 {
    crate::sys::withdrawn_user_reads()
}

/// Executes the library's own user-space read of hardware counter
/// `counter` (the instruction the user-read path uses: `rdpmc` with that
/// index on x86_64, an `mrs` of `PMEVCNTR<counter>_EL0`, or `PMCCNTR_EL0`
/// for 31, on aarch64), with the recovery of a refused read in place. For
/// tests of that recovery on machines whose kernel refuses every such
/// read (no PMU, or user access off): `None` when the read gave no count
/// (the trap was recovered and counted in [`withdrawn_user_reads`], or
/// the recovery could not be installed and nothing was executed). A count
/// it returns is the raw register, of whichever event the kernel put on
/// that counter; not part of the stable API.
#[doc(hidden)]
pub fn read_counter_register(counter: u32) -> Option<u64> {
    crate::sys::read_counter_register(counter)
}

/// Makes the type holding it `!Send` (and `!Sync`): what reads or owns
/// one thread's counters must stay on that thread.
pub(crate) type PhantomNotSend = PhantomData<*const ()>;
pub(crate) use unavailable::paranoid_level;

/// One quantity `dynostats` can measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Counter {
    /// Retired CPU instructions in user space (hardware PMU).
    Instructions,
    /// CPU cycles in user space (hardware PMU).
    Cycles,
    /// CPU time of the thread, in nanoseconds.
    CpuTime,
    /// Wall-clock time, in nanoseconds (`CLOCK_MONOTONIC`). Always measured.
    WallTime,
    /// Current resident set size of the process, in bytes.
    Rss,
    /// Peak resident set size of the process, in bytes (`getrusage`).
    PeakRss,
    /// Page faults of the thread (software perf event).
    PageFaults,
    /// Context switches of the thread (software perf event).
    ContextSwitches,
}

impl Counter {
    /// Every counter, in display order.
    pub const ALL: [Counter; 8] = [
        Counter::Instructions,
        Counter::Cycles,
        Counter::CpuTime,
        Counter::WallTime,
        Counter::Rss,
        Counter::PeakRss,
        Counter::PageFaults,
        Counter::ContextSwitches,
    ];

    /// A short stable name: the record field of the quantity (`cpu_ns`,
    /// `wall_ns`, `instructions` ...), as used in status records, the probe
    /// and reports. [`Counter::from_str`](std::str::FromStr) also accepts
    /// `cpu_time` and `wall_time`, the names status records used before.
    pub fn name(self) -> &'static str {
        match self {
            Counter::Instructions => "instructions",
            Counter::Cycles => "cycles",
            Counter::CpuTime => "cpu_ns",
            Counter::WallTime => "wall_ns",
            Counter::Rss => "rss",
            Counter::PeakRss => "peak_rss",
            Counter::PageFaults => "page_faults",
            Counter::ContextSwitches => "context_switches",
        }
    }

    /// Whether the counter needs a hardware PMU.
    pub fn is_hardware(self) -> bool {
        matches!(self, Counter::Instructions | Counter::Cycles)
    }

    /// Whether its perf event counts in the kernel too (opened without
    /// `exclude_kernel`): context switches happen there, and would always
    /// read 0 otherwise.
    pub(crate) fn counts_in_kernel(self) -> bool {
        self == Counter::ContextSwitches
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Counter {
    type Err = String;

    /// Parses [`Counter::name`], or one of the older names `cpu_time` and
    /// `wall_time`.
    fn from_str(s: &str) -> Result<Counter, String> {
        match s {
            "cpu_time" => return Ok(Counter::CpuTime),
            "wall_time" => return Ok(Counter::WallTime),
            _ => {}
        }
        Counter::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Counter::ALL.iter().map(|c| c.name()).collect();
                format!(
                    "unknown counter {s:?}: expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// A choice of counters to open on each thread.
///
/// The default set is instructions, cycles, thread CPU time, wall time and
/// current RSS. Wall time is always included: it costs one vDSO call.
///
/// ```
/// use dynostats::{counters::Counter, counters::CounterSet};
///
/// let set = CounterSet::default().with(Counter::PageFaults).without(Counter::Cycles);
/// assert!(set.contains(Counter::PageFaults));
/// assert!(!set.contains(Counter::Cycles));
/// assert!(set.contains(Counter::WallTime));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CounterSet {
    bits: u16,
}

impl Default for CounterSet {
    fn default() -> Self {
        CounterSet::wall_only()
            .with(Counter::Instructions)
            .with(Counter::Cycles)
            .with(Counter::CpuTime)
            .with(Counter::Rss)
    }
}

impl fmt::Debug for CounterSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl CounterSet {
    /// Only wall time.
    pub const fn wall_only() -> CounterSet {
        CounterSet {
            bits: 1 << (Counter::WallTime as u16),
        }
    }

    /// Every counter.
    pub fn all() -> CounterSet {
        Counter::ALL
            .iter()
            .fold(CounterSet::wall_only(), |s, &c| s.with(c))
    }

    /// This set plus `counter`.
    #[must_use]
    pub fn with(self, counter: Counter) -> CounterSet {
        CounterSet {
            bits: self.bits | counter.bit(),
        }
    }

    /// This set minus `counter` (wall time cannot be removed).
    #[must_use]
    pub fn without(self, counter: Counter) -> CounterSet {
        if counter == Counter::WallTime {
            return self;
        }
        CounterSet {
            bits: self.bits & !counter.bit(),
        }
    }

    /// Whether `counter` is in the set.
    pub fn contains(self, counter: Counter) -> bool {
        self.bits & counter.bit() != 0
    }

    /// The counters of the set, in [`Counter::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Counter> {
        Counter::ALL.into_iter().filter(move |c| self.contains(*c))
    }
}

/// How the counters of a snapshot were read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReadPath {
    /// Hardware counters read from user space through the perf mmap page
    /// (`rdpmc` on x86), no system call.
    Rdpmc,
    /// Hardware counters read with one `read(2)` of the whole perf group.
    Read,
    /// No hardware counters: software perf events, clocks and `/proc` only.
    #[default]
    Software,
}

impl ReadPath {
    /// The name used in records: `"rdpmc"`, `"read"` or `"software"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReadPath::Rdpmc => "rdpmc",
            ReadPath::Read => "read",
            ReadPath::Software => "software",
        }
    }
}

impl fmt::Display for ReadPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ReadPath {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Only the names: an integer is not read as a variant index.
impl<'de> Deserialize<'de> for ReadPath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ReadPath, D::Error> {
        deserializer.deserialize_str(NameVisitor::new("rdpmc, read or software"))
    }
}

/// Deserializes a name-valued field (`kind`, `source`) from a string only,
/// through the type's `FromStr`.
pub(crate) struct NameVisitor<T> {
    expected: &'static str,
    _type: std::marker::PhantomData<T>,
}

impl<T> NameVisitor<T> {
    pub(crate) fn new(expected: &'static str) -> NameVisitor<T> {
        NameVisitor {
            expected,
            _type: std::marker::PhantomData,
        }
    }
}

impl<T: FromStr<Err = String>> serde::de::Visitor<'_> for NameVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "one of {}", self.expected)
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<T, E> {
        s.parse().map_err(E::custom)
    }
}

impl FromStr for ReadPath {
    type Err = String;

    /// Parses the name used in records (`rdpmc`, `read`, `software`).
    fn from_str(s: &str) -> Result<ReadPath, String> {
        match s {
            "rdpmc" => Ok(ReadPath::Rdpmc),
            "read" => Ok(ReadPath::Read),
            "software" => Ok(ReadPath::Software),
            _ => Err(format!(
                "unknown read path {s:?}: expected rdpmc, read or software"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        for c in Counter::ALL {
            assert_eq!(c.name().parse::<Counter>(), Ok(c));
        }
        assert_eq!("cpu_time".parse::<Counter>(), Ok(Counter::CpuTime));
        assert_eq!("wall_time".parse::<Counter>(), Ok(Counter::WallTime));
        assert!("cpu".parse::<Counter>().unwrap_err().contains("cpu_ns"));
        for p in [ReadPath::Rdpmc, ReadPath::Read, ReadPath::Software] {
            assert_eq!(p.to_string().parse::<ReadPath>(), Ok(p));
        }
        assert!("rdtsc".parse::<ReadPath>().is_err());
    }

    #[test]
    fn set_operations() {
        let s = CounterSet::default();
        assert!(s.contains(Counter::Instructions) && s.contains(Counter::Rss));
        assert!(!s.contains(Counter::PageFaults));
        assert!(s.without(Counter::WallTime).contains(Counter::WallTime));
        assert_eq!(CounterSet::all().iter().count(), Counter::ALL.len());
    }
}
