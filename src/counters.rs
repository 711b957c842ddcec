//! Per-thread counters: which ones exist, how they are opened, read, and
//! turned into deltas.
//!
//! A perf counter opened with `pid = 0, cpu = -1` counts the calling thread
//! only, so everything here is per thread: [`Counters`] is `!Send`, and the
//! free function [`snapshot`] uses one `Counters` per thread, opened lazily
//! on that thread's first read and closed when the thread exits.

use std::cell::RefCell;
use std::fmt;
use std::fs::File;
use std::marker::PhantomData;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;

use perf_event::events::{Hardware, Software};
use perf_event::{Builder, ReadFormat};

use crate::error::Unavailable;
use crate::sys;

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

    /// A short stable name, as used in records and reports.
    pub fn name(self) -> &'static str {
        match self {
            Counter::Instructions => "instructions",
            Counter::Cycles => "cycles",
            Counter::CpuTime => "cpu_time",
            Counter::WallTime => "wall_time",
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

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A choice of counters to open on each thread.
///
/// The default set is instructions, cycles, thread CPU time, wall time and
/// current RSS. Wall time is always included: it costs one vDSO call.
///
/// ```
/// use dynostats::{Counter, CounterSet};
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

    /// Parses the name used in records.
    pub fn from_name(name: &str) -> Option<ReadPath> {
        match name {
            "rdpmc" => Some(ReadPath::Rdpmc),
            "read" => Some(ReadPath::Read),
            "software" => Some(ReadPath::Software),
            _ => None,
        }
    }
}

impl fmt::Display for ReadPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    /// leave it out, e.g. [`Counters::snapshot_start_counts`]).
    pub rss_bytes: Option<u64>,
    /// Peak RSS of the process so far, bytes (likewise).
    pub peak_rss_bytes: Option<u64>,
    /// Nanoseconds the perf group has been enabled (0 without a group).
    pub time_enabled: u64,
    /// Nanoseconds the perf group has been on the PMU (0 without a group).
    pub time_running: u64,
    /// How the perf counters were read.
    pub source: ReadPath,
    /// Whether `cpu_ns` came from the task-clock event in the perf group (and
    /// so is subject to the same scaling as the other group members).
    cpu_in_group: bool,
    /// Whether `context_switches` came from getrusage rather than the group.
    switches_from_rusage: bool,
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
        let cpu_ns = if start.cpu_in_group && end.cpu_in_group {
            perf(start.cpu_ns, end.cpu_ns)
        } else {
            end.cpu_ns
                .zip(start.cpu_ns)
                .and_then(|(e, s)| e.checked_sub(s))
        };
        let any_perf = end.instructions.is_some()
            || end.cycles.is_some()
            || end.page_faults.is_some()
            || (end.context_switches.is_some() && !end.switches_from_rusage)
            || end.cpu_in_group;
        Delta {
            wall_ns: end.wall_ns.saturating_sub(start.wall_ns),
            cpu_ns,
            instructions: perf(start.instructions, end.instructions),
            cycles: perf(start.cycles, end.cycles),
            page_faults: perf(start.page_faults, end.page_faults),
            context_switches: if start.switches_from_rusage || end.switches_from_rusage {
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

/// Perf events in group-read order. At most five events per thread.
const MAX_EVENTS: usize = 5;
/// `nr`, `time_enabled`, `time_running`, then one value per event.
const GROUP_WORDS: usize = 3 + MAX_EVENTS;

struct PerfGroup {
    /// Leader first; dropping a counter closes its file descriptor.
    counters: Vec<perf_event::Counter>,
    /// Which counter each position in the group read holds.
    slots: Vec<Counter>,
    /// User-space read pages for the hardware counters, when the kernel
    /// allows it and the group holds nothing else.
    user: Vec<(Counter, sys::UserPage)>,
    has_hardware: bool,
}

/// The counters of one thread, opened and ready to read.
///
/// `Counters` is `!Send`: perf counters count the thread that opened them.
/// Opening never fails; what could not be opened is listed by
/// [`Counters::unavailable`] and absent from every snapshot.
pub struct Counters {
    set: CounterSet,
    group: Option<PerfGroup>,
    statm: Option<File>,
    /// Context switches from getrusage instead of the perf group.
    switches_from_rusage: bool,
    unavailable: Vec<Unavailable>,
    page_size: u64,
    generation: u64,
    _not_send: PhantomData<*const ()>,
}

impl fmt::Debug for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Counters")
            .field("set", &self.set)
            .field("source", &self.source())
            .field("unavailable", &self.unavailable)
            .finish_non_exhaustive()
    }
}

fn perf_builder(counter: Counter) -> Option<Builder<'static>> {
    let mut b = match counter {
        Counter::Instructions => Builder::new(Hardware::INSTRUCTIONS),
        Counter::Cycles => Builder::new(Hardware::CPU_CYCLES),
        Counter::CpuTime => Builder::new(Software::TASK_CLOCK),
        Counter::PageFaults => Builder::new(Software::PAGE_FAULTS),
        Counter::ContextSwitches => Builder::new(Software::CONTEXT_SWITCHES),
        _ => return None,
    };
    // pid = 0, cpu = -1: this thread, on any CPU. User space only, so the
    // counts do not depend on interrupts and system-call internals.
    // Context switches happen in the kernel: with exclude_kernel they would
    // always read 0.
    b.observe_self()
        .any_cpu()
        .enabled(true)
        .exclude_kernel(counter != Counter::ContextSwitches)
        .exclude_hv(true);
    if counter.is_hardware() {
        // arm64 only lets user space read a counter that asked for it
        // (x86 needs no request: the bits are 0 there).
        b.attrs_mut().config1 |= sys::PMU_CONFIG1_USER_READ;
    }
    Some(b)
}

impl Counters {
    /// Opens `set` on the calling thread.
    pub fn open(set: CounterSet) -> Counters {
        let mut unavailable = Vec::new();
        let mut counters: Vec<perf_event::Counter> = Vec::new();
        let mut slots = Vec::new();

        let open_event = |counter: Counter,
                          counters: &mut Vec<perf_event::Counter>,
                          slots: &mut Vec<Counter>,
                          unavailable: &mut Vec<Unavailable>| {
            let Some(mut builder) = perf_builder(counter) else {
                return;
            };
            if counters.is_empty() {
                // The leader reads the whole group at once, without ids:
                // values come in the order the events were opened.
                builder.attrs_mut().read_format = (ReadFormat::GROUP
                    | ReadFormat::TOTAL_TIME_ENABLED
                    | ReadFormat::TOTAL_TIME_RUNNING)
                    .bits();
            }
            let mut build = |builder: &Builder<'static>| match counters.first_mut() {
                None => builder.build(),
                Some(leader) => builder.build_with_group(leader),
            };
            let mut result = build(&builder);
            let asked_user_read = counter.is_hardware() && sys::PMU_CONFIG1_USER_READ != 0;
            if result.is_err() && asked_user_read {
                // A kernel or PMU that refuses user reads still counts:
                // ask again without them (reads then go through read(2)).
                builder.attrs_mut().config1 &= !sys::PMU_CONFIG1_USER_READ;
                result = build(&builder);
            }
            match result {
                Ok(c) => {
                    counters.push(c);
                    slots.push(counter);
                }
                Err(e) => unavailable.push(Unavailable::from_open_error(counter, &e)),
            }
        };
        let mut switches_from_rusage = false;

        // Hardware events first: if they alone are wanted beside clocks and
        // the kernel lets user space read them, no system call is needed.
        for c in [Counter::Instructions, Counter::Cycles] {
            if set.contains(c) {
                open_event(c, &mut counters, &mut slots, &mut unavailable);
            }
        }
        let has_hardware = !counters.is_empty();
        let wants_software_events =
            set.contains(Counter::PageFaults) || set.contains(Counter::ContextSwitches);
        let mut user = Vec::new();
        if has_hardware && sys::user_read_supported() && !wants_software_events {
            for (c, counter) in slots.iter().zip(&counters) {
                match sys::UserPage::map(counter.as_raw_fd()) {
                    Ok(page) if page.user_readable() => user.push((*c, page)),
                    _ => {
                        user.clear();
                        break;
                    }
                }
            }
        }
        let sw: &[Counter] = if user.is_empty() {
            &[
                Counter::CpuTime,
                Counter::PageFaults,
                Counter::ContextSwitches,
            ]
        } else {
            // CPU time comes from CLOCK_THREAD_CPUTIME_ID on this path.
            &[]
        };
        for &c in sw {
            if set.contains(c) {
                open_event(c, &mut counters, &mut slots, &mut unavailable);
            }
        }
        // Counting kernel-side events needs perf_event_paranoid <= 1 (or
        // CAP_PERFMON); without it, getrusage(RUSAGE_THREAD) counts the
        // thread's context switches at the cost of one more system call.
        if let Some(pos) = unavailable.iter().position(|u| {
            u.counter == Counter::ContextSwitches
                && matches!(u.errno, Some(libc::EACCES) | Some(libc::EPERM))
        }) {
            if sys::thread_context_switches().is_some() {
                unavailable.remove(pos);
                switches_from_rusage = true;
            }
        }
        let group = (!counters.is_empty()).then_some(PerfGroup {
            counters,
            slots,
            user,
            has_hardware,
        });

        let statm = if set.contains(Counter::Rss) {
            match File::open("/proc/self/statm") {
                Ok(f) => Some(f),
                Err(e) => {
                    unavailable.push(Unavailable {
                        counter: Counter::Rss,
                        errno: e.raw_os_error(),
                        reason: format!("cannot open /proc/self/statm: {e}"),
                    });
                    None
                }
            }
        } else {
            None
        };

        Counters {
            set,
            group,
            statm,
            switches_from_rusage,
            unavailable,
            page_size: sys::page_size(),
            generation: sys::fork_generation(),
            _not_send: PhantomData,
        }
    }

    /// The set these counters were opened for.
    pub fn set(&self) -> CounterSet {
        self.set
    }

    /// The counters of the set that could not be opened, and why.
    pub fn unavailable(&self) -> &[Unavailable] {
        &self.unavailable
    }

    /// Whether `counter` is in the set and was opened.
    pub fn is_available(&self, counter: Counter) -> bool {
        self.set.contains(counter) && self.unavailable.iter().all(|u| u.counter != counter)
    }

    /// How perf counters are read on this thread.
    pub fn source(&self) -> ReadPath {
        match &self.group {
            Some(g) if !g.user.is_empty() => ReadPath::Rdpmc,
            Some(g) if g.has_hardware => ReadPath::Read,
            _ => ReadPath::Software,
        }
    }

    /// Whether these counters were opened in another process (before a
    /// `fork`) and must not be used here.
    pub fn is_stale(&self) -> bool {
        self.generation != sys::fork_generation()
    }

    /// Reads every counter of the set now.
    ///
    /// The hardware counters are read first, then the clocks and RSS. To
    /// measure a region, [`Counters::snapshot_start`] at its start and this
    /// at its end keep every other read of the library outside the region.
    pub fn snapshot(&mut self) -> Snapshot {
        let mut s = Snapshot::default();
        self.read_end(&mut s, true);
        s
    }

    /// Reads every counter of the set now, for the start of a region: the
    /// hardware counters last.
    ///
    /// Between the hardware reads of two [`Counters::snapshot`]s lie the
    /// library's other reads (clocks, `/proc/self/statm` and its parsing,
    /// whose instruction count depends on the RSS digits). Starting with this
    /// and ending with [`Counters::snapshot_end`] leaves only a fixed stretch
    /// of the library's code inside the measured instructions.
    pub fn snapshot_start(&mut self) -> Snapshot {
        let mut s = Snapshot::default();
        self.read_start(&mut s, true);
        s
    }

    /// Reads every counter of the set now, for the end of a region started
    /// with [`Counters::snapshot_start`]: the hardware counters first. The
    /// same as [`Counters::snapshot`].
    #[inline]
    pub fn snapshot_end(&mut self) -> Snapshot {
        self.snapshot()
    }

    /// [`Counters::snapshot_start`] without RSS and peak RSS: the hardware
    /// counters last, after the clocks (and `getrusage` when context
    /// switches come from it), and no read of `/proc/self/statm`.
    ///
    /// For a region measured in pieces, such as a future measured per
    /// poll: its counts are the sum over the pieces, but RSS is a level, so
    /// it is wanted only at the region's start and end. Start the first
    /// piece with [`Counters::snapshot_start`] (its RSS is the region's
    /// `rss_start`), the others with this, end every piece with
    /// [`Counters::snapshot_end_counts`], and read [`Counters::rss_bytes`]
    /// when the region is over. A [`Delta`] of two such snapshots has no
    /// RSS, and [`Delta::accumulate`] keeps the first piece's `rss_start`.
    ///
    /// ```
    /// use dynostats::{Counter, CounterSet, Counters, Delta};
    ///
    /// let mut counters = Counters::open(CounterSet::wall_only().with(Counter::Rss));
    /// let mut total = Delta::between(&counters.snapshot_start(), &counters.snapshot_end_counts());
    /// for _ in 0..3 {
    ///     let start = counters.snapshot_start_counts();
    ///     let end = counters.snapshot_end_counts();
    ///     assert_eq!((start.rss_bytes, end.rss_bytes), (None, None));
    ///     total.accumulate(&Delta::between(&start, &end));
    /// }
    /// total.rss_end = counters.rss_bytes();
    /// assert!(total.rss_start.is_some() && total.rss_end.is_some());
    /// ```
    pub fn snapshot_start_counts(&mut self) -> Snapshot {
        let mut s = Snapshot::default();
        self.read_start(&mut s, false);
        s
    }

    /// [`Counters::snapshot_end`] without RSS and peak RSS: the hardware
    /// counters first, then the clocks; the end of a piece started with
    /// [`Counters::snapshot_start_counts`] or [`Counters::snapshot_start`].
    pub fn snapshot_end_counts(&mut self) -> Snapshot {
        let mut s = Snapshot::default();
        self.read_end(&mut s, false);
        s
    }

    /// The process's current RSS in bytes, from the `/proc/self/statm`
    /// descriptor these counters keep open: one `pread`, no perf read.
    /// `None` when RSS is not in the set or cannot be read.
    #[inline]
    pub fn rss_bytes(&self) -> Option<u64> {
        read_statm_rss(self.statm.as_ref()?, self.page_size)
    }

    /// The process's peak RSS so far in bytes (`getrusage`), when peak RSS
    /// is in the set.
    #[inline]
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        if self.set.contains(Counter::PeakRss) {
            sys::peak_rss_bytes()
        } else {
            None
        }
    }

    /// Fills `s`, a default snapshot, for the start of a region: hardware
    /// counters last; RSS and peak RSS only when `memory`.
    #[inline(always)]
    fn read_start(&mut self, s: &mut Snapshot, memory: bool) {
        s.wall_ns = sys::monotonic_ns();
        let cpu_from_group = self
            .group
            .as_ref()
            .is_some_and(|g| g.slots.contains(&Counter::CpuTime));
        self.read_rest(s, !cpu_from_group, memory);
        if let Some(group) = &self.group {
            read_group(group, s);
        }
        if cpu_from_group && !s.cpu_in_group && self.set.contains(Counter::CpuTime) {
            // The group read failed: the clock still gives CPU time.
            s.cpu_ns = sys::thread_cpu_ns();
        }
    }

    /// Fills `s`, a default snapshot, for the end of a region: hardware
    /// counters first; RSS and peak RSS only when `memory`.
    #[inline(always)]
    fn read_end(&mut self, s: &mut Snapshot, memory: bool) {
        if let Some(group) = &self.group {
            read_group(group, s);
        }
        s.wall_ns = sys::monotonic_ns();
        let cpu_from_clock = !s.cpu_in_group;
        self.read_rest(s, cpu_from_clock, memory);
    }

    /// Everything but the perf group: CPU time from the clock (when
    /// `cpu_from_clock`), context switches from `getrusage`, and RSS and
    /// peak RSS when `memory`. Kept out of line: inlined, it added 14
    /// instructions to a guard record's fixed overhead in the PMU guest
    /// (the snapshot functions then save and restore more registers, on
    /// the measured side of the hardware reads).
    #[inline(never)]
    fn read_rest(&self, s: &mut Snapshot, cpu_from_clock: bool, memory: bool) {
        if cpu_from_clock && self.set.contains(Counter::CpuTime) {
            s.cpu_ns = sys::thread_cpu_ns();
        }
        if memory {
            s.rss_bytes = self.rss_bytes();
            s.peak_rss_bytes = self.peak_rss_bytes();
        }
        if self.switches_from_rusage {
            s.context_switches = sys::thread_context_switches();
            s.switches_from_rusage = true;
        }
    }
}

fn set_slot(s: &mut Snapshot, counter: Counter, value: u64) {
    match counter {
        Counter::Instructions => s.instructions = Some(value),
        Counter::Cycles => s.cycles = Some(value),
        Counter::CpuTime => {
            s.cpu_ns = Some(value);
            s.cpu_in_group = true;
        }
        Counter::PageFaults => s.page_faults = Some(value),
        Counter::ContextSwitches => s.context_switches = Some(value),
        _ => {}
    }
}

fn read_group(group: &PerfGroup, s: &mut Snapshot) {
    if !group.user.is_empty() {
        let mut values = [None; 2];
        for (i, (_, page)) in group.user.iter().enumerate() {
            values[i] = page.read();
        }
        if values[..group.user.len()].iter().all(Option::is_some) {
            s.source = ReadPath::Rdpmc;
            for ((counter, _), v) in group.user.iter().zip(values) {
                let v = v.expect("checked above");
                set_slot(s, *counter, v.count);
                s.time_enabled = v.time_enabled;
                s.time_running = v.time_running;
            }
            return;
        }
        // Not on a hardware counter right now: read() gives the truth.
    }
    let mut buf = [0u64; GROUP_WORDS];
    let n = group.slots.len();
    let Ok(bytes) = sys::read_words(group.counters[0].as_raw_fd(), &mut buf[..3 + n]) else {
        return;
    };
    let words = bytes / 8;
    let nr = buf[0] as usize;
    if words < 3 || nr != n || words < 3 + nr {
        // Not what this group looks like: report nothing rather than guess.
        return;
    }
    s.time_enabled = buf[1];
    s.time_running = buf[2];
    s.source = if group.has_hardware {
        ReadPath::Read
    } else {
        ReadPath::Software
    };
    for (i, counter) in group.slots.iter().enumerate() {
        set_slot(s, *counter, buf[3 + i]);
    }
}

/// Resident pages are the second field of `/proc/self/statm`.
fn read_statm_rss(statm: &File, page_size: u64) -> Option<u64> {
    let mut buf = [0u8; 128];
    let n = statm.read_at(&mut buf, 0).ok()?;
    parse_statm_resident(&buf[..n]).map(|pages| pages * page_size)
}

/// The second space-separated decimal field of `text`. Hand-written: it
/// runs on every snapshot, and going through `str` parsing cost more than
/// the `pread` itself.
fn parse_statm_resident(text: &[u8]) -> Option<u64> {
    let first_end = text.iter().position(|&b| b == b' ')?;
    let field = &text[first_end + 1..];
    let len = field.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 || len > 19 {
        return None;
    }
    Some(
        field[..len]
            .iter()
            .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')),
    )
}

static DEFAULT_SET: OnceLock<CounterSet> = OnceLock::new();

/// Chooses the counters that [`snapshot`] (and everything built on it)
/// opens on each thread. Call it once, before the first measurement; later
/// calls return `Err` with the set that was not installed.
///
/// ```
/// use dynostats::{Counter, CounterSet};
/// let _ = dynostats::set_thread_counters(CounterSet::default().with(Counter::PageFaults));
/// ```
pub fn set_thread_counters(set: CounterSet) -> Result<(), CounterSet> {
    DEFAULT_SET.set(set)
}

/// The counter set threads open ([`CounterSet::default`] unless
/// [`set_thread_counters`] chose another).
pub fn thread_counter_set() -> CounterSet {
    *DEFAULT_SET.get_or_init(CounterSet::default)
}

thread_local! {
    static THREAD: RefCell<Option<Counters>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's counters, opening them on first use and
/// reopening them after a `fork`. Returns `None` while the thread is being
/// torn down.
pub fn with_thread_counters<R>(f: impl FnOnce(&mut Counters) -> R) -> Option<R> {
    THREAD
        .try_with(|cell| {
            let mut slot = cell.try_borrow_mut().ok()?;
            let counters = match &mut *slot {
                Some(c) if !c.is_stale() => c,
                other => other.insert(Counters::open(thread_counter_set())),
            };
            Some(f(counters))
        })
        .ok()
        .flatten()
}

/// Reads the calling thread's counters.
///
/// ```
/// let start = dynostats::snapshot();
/// let v: Vec<u64> = (0..10_000).collect();
/// let end = dynostats::snapshot();
/// let delta = dynostats::Delta::between(&start, &end);
/// assert_eq!(v.len(), 10_000);
/// assert!(delta.wall_ns > 0);
/// // Instructions are `None` on a machine without a hardware PMU.
/// if let Some(n) = delta.instructions { assert!(n > 10_000); }
/// ```
#[inline]
pub fn snapshot() -> Snapshot {
    with_thread_counters(Counters::snapshot).unwrap_or_else(|| Snapshot {
        wall_ns: sys::monotonic_ns(),
        ..Snapshot::default()
    })
}

/// Reads the calling thread's counters at the start of a region, hardware
/// counters last (see [`Counters::snapshot_start`]); end the region with
/// [`snapshot_end`]. Guards and measured futures use this pair, so a
/// record's instructions are the region's own plus a fixed overhead that
/// does not depend on the process's RSS.
///
/// ```
/// let start = dynostats::snapshot_start();
/// let v: Vec<u64> = (0..10_000).collect();
/// let end = dynostats::snapshot_end();
/// let delta = dynostats::Delta::between(&start, &end);
/// assert_eq!(v.len(), 10_000);
/// assert!(delta.wall_ns > 0);
/// ```
#[inline]
pub fn snapshot_start() -> Snapshot {
    with_thread_counters(Counters::snapshot_start).unwrap_or_else(|| Snapshot {
        wall_ns: sys::monotonic_ns(),
        ..Snapshot::default()
    })
}

/// Reads the calling thread's counters at the end of a region started with
/// [`snapshot_start`], hardware counters first. The same as [`snapshot`].
#[inline]
pub fn snapshot_end() -> Snapshot {
    snapshot()
}

/// The calling thread's [`Counters::snapshot_start_counts`]: a start
/// without RSS, for every piece but the first of a region measured in
/// pieces.
#[inline]
pub(crate) fn snapshot_start_counts() -> Snapshot {
    with_thread_counters(Counters::snapshot_start_counts).unwrap_or_else(|| Snapshot {
        wall_ns: sys::monotonic_ns(),
        ..Snapshot::default()
    })
}

/// The calling thread's [`Counters::snapshot_end_counts`]: an end without
/// RSS.
#[inline]
pub(crate) fn snapshot_end_counts() -> Snapshot {
    with_thread_counters(Counters::snapshot_end_counts).unwrap_or_else(|| Snapshot {
        wall_ns: sys::monotonic_ns(),
        ..Snapshot::default()
    })
}

/// The process's RSS and peak RSS now, as the calling thread's counters
/// read them ([`Counters::rss_bytes`], [`Counters::peak_rss_bytes`]).
pub(crate) fn memory_now() -> (Option<u64>, Option<u64>) {
    with_thread_counters(|c| (c.rss_bytes(), c.peak_rss_bytes())).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn counts_only_snapshots_leave_out_rss() {
        let set = CounterSet::wall_only()
            .with(Counter::CpuTime)
            .with(Counter::Rss)
            .with(Counter::PeakRss);
        let mut c = Counters::open(set);
        let full = c.snapshot_start();
        assert!(full.rss_bytes.is_some() && full.peak_rss_bytes.is_some());
        assert!(full.cpu_ns.is_some());
        for s in [c.snapshot_start_counts(), c.snapshot_end_counts()] {
            assert_eq!((s.rss_bytes, s.peak_rss_bytes), (None, None));
            assert!(s.cpu_ns.is_some() && s.wall_ns >= full.wall_ns);
        }
        assert!(c.rss_bytes().is_some_and(|b| b > 0));
        assert!(c.peak_rss_bytes().is_some_and(|b| b > 0));
        let without = Counters::open(CounterSet::wall_only());
        assert_eq!(
            (without.rss_bytes(), without.peak_rss_bytes()),
            (None, None)
        );
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

    #[test]
    fn statm_parse() {
        assert_eq!(parse_statm_resident(b"1000 250 30 4 0 100 0\n"), Some(250));
        assert_eq!(parse_statm_resident(b"garbage"), None);
        assert_eq!(parse_statm_resident(b"12 \n"), None);
        assert_eq!(parse_statm_resident(b"12 99999999999999999999 1"), None);
        assert_eq!(parse_statm_resident(b"12 0 1"), Some(0));
        // Agrees with the obvious parse on the real file.
        let real = std::fs::read_to_string("/proc/self/statm").unwrap();
        let expected: u64 = real.split_whitespace().nth(1).unwrap().parse().unwrap();
        let parsed = parse_statm_resident(real.as_bytes()).unwrap();
        assert!(parsed.abs_diff(expected) < 1024, "{parsed} vs {expected}");
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
