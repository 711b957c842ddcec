//! One thread's perf group: opening the events, and reading them with one
//! `read(2)` or from user space through the mmap page.

use std::fmt;
use std::fs::File;
use std::marker::PhantomData;
use std::os::fd::AsRawFd;

use perf_event::events::{Hardware, Software};
use perf_event::{Builder, ReadFormat};

use super::budget::{self, Admission};
use super::snapshot::{CpuFrom, Snapshot};
use super::source::{CounterSource, CounterState, Sources};
use super::unavailable::Unavailable;
use super::{Counter, CounterSet, PhantomNotSend, ReadPath, statm};
use crate::sys::{self, UserReadFailure};

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
    /// CPU time is the leader's enabled time (user-read path, where the
    /// page brings it up to date with the timestamp counter) instead of
    /// `CLOCK_THREAD_CPUTIME_ID`: no system call for it.
    cpu_from_enabled: bool,
}

/// The counters of one thread, opened and ready to read.
///
/// `Counters` is `!Send`: perf counters count the thread that opened them.
/// Opening never fails; what could not be opened is listed by
/// [`Counters::unavailable`] and absent from every snapshot.
pub struct Counters {
    set: CounterSet,
    group: Option<PerfGroup>,
    /// The process's shared `/proc/self/statm` descriptor.
    statm: Option<&'static File>,
    /// This thread's place in the descriptor budget (a group held, or a
    /// refusal counted while these counters live), given back on drop.
    _seat: Option<budget::Seat>,
    /// Context switches from getrusage instead of the perf group.
    switches_from_rusage: bool,
    unavailable: Vec<Unavailable>,
    page_size: u64,
    generation: u64,
    /// When a refusal that may pass (the budget, or a transient errno)
    /// left these counters short, the monotonic time after which the
    /// thread opens them again, and the wait that led to it; 0: never.
    retry_at_ns: u64,
    retry_backoff_ns: u64,
    _not_send: PhantomNotSend,
}

/// The first wait before a thread whose perf counters were refused for a
/// reason that may pass opens them again; each further refusal doubles it,
/// up to [`RETRY_MAX_NS`].
pub(crate) const RETRY_FIRST_NS: u64 = 50_000_000;
/// The longest wait between two attempts.
pub(crate) const RETRY_MAX_NS: u64 = 30_000_000_000;

/// The wait after an attempt that followed a wait of `previous_ns` (none:
/// the first attempt): 50 ms, then doubling, at most 30 s.
pub(crate) fn next_retry_backoff(previous_ns: Option<u64>) -> u64 {
    previous_ns.map_or(RETRY_FIRST_NS, |b| b.saturating_mul(2).min(RETRY_MAX_NS))
}

/// Whether an open refused with `errno` may succeed later: out of
/// descriptors or memory, or a busy or interrupted call. A missing PMU
/// (`ENOENT`), a refusal by policy (`EACCES`, `EPERM`) or an event this
/// kernel does not know stays refused: no retries for those.
fn may_pass(errno: Option<i32>) -> bool {
    matches!(
        errno,
        Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::EAGAIN | libc::EBUSY | libc::EINTR)
    )
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
        .exclude_kernel(!counter.counts_in_kernel())
        .exclude_hv(true);
    if counter.is_hardware() {
        // arm64 only lets user space read a counter that asked for it
        // (x86 needs no request: the bits are 0 there).
        b.attrs_mut().config1 |= sys::PMU_CONFIG1_USER_READ;
    }
    Some(b)
}

/// The perf events of the set: the descriptors a group of it may hold.
const PERF_EVENTS: [Counter; 5] = [
    Counter::Instructions,
    Counter::Cycles,
    Counter::CpuTime,
    Counter::PageFaults,
    Counter::ContextSwitches,
];

impl Counters {
    /// Opens `set` on the calling thread, within the descriptor budget
    /// ([`DescriptorBudget`](super::DescriptorBudget)): when the budget
    /// refuses a perf group, the counters use the software path and list
    /// the perf counters as unavailable with the budget's reason.
    pub fn open(set: CounterSet) -> Counters {
        Counters::open_after(set, None)
    }

    /// Opens `set` again after counters that waited `previous_backoff_ns`
    /// before this attempt ([`Counters::open`] with none): a refusal that
    /// may pass doubles the wait before the next.
    pub(crate) fn open_after(set: CounterSet, previous_backoff_ns: Option<u64>) -> Counters {
        let need = PERF_EVENTS.iter().filter(|c| set.contains(**c)).count() as u64;
        let admission = budget::admit(need);
        let may_open = !matches!(admission, Admission::Refused(..));
        let mut unavailable = Vec::new();
        let mut counters: Vec<perf_event::Counter> = Vec::new();
        let mut slots = Vec::new();

        let open_event = |counter: Counter,
                          counters: &mut Vec<perf_event::Counter>,
                          slots: &mut Vec<Counter>,
                          unavailable: &mut Vec<Unavailable>| {
            let Some(mut builder) = perf_builder(counter).filter(|_| may_open) else {
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
            // The kernel may withdraw user access at any moment (arm64's
            // perf_user_access, x86's rdpmc): without the trap recovered, a
            // read would kill the process, so read(2) it is.
            if !user.is_empty() && !sys::recover_withdrawn_user_reads() {
                user.clear();
            }
        }
        let sw: &[Counter] = if user.is_empty() {
            &[
                Counter::CpuTime,
                Counter::PageFaults,
                Counter::ContextSwitches,
            ]
        } else {
            // CPU time comes from the leader's enabled time or from
            // CLOCK_THREAD_CPUTIME_ID on this path.
            &[]
        };
        for &c in sw {
            if set.contains(c) {
                open_event(c, &mut counters, &mut slots, &mut unavailable);
            }
        }
        let (admitted, refused) = match admission {
            Admission::Admitted(admitted) => (Some(admitted), None),
            Admission::Refused(refused, reason) => (None, Some((refused, reason))),
            Admission::NotNeeded => (None, None),
        };
        if let Some((_, reason)) = &refused {
            for c in PERF_EVENTS {
                // CPU time is settled below: the clock serves it.
                if set.contains(c) && c != Counter::CpuTime {
                    unavailable.push(Unavailable {
                        counter: c,
                        errno: None,
                        reason: reason.clone(),
                    });
                }
            }
        }
        // Counting kernel-side events needs perf_event_paranoid <= 1 (or
        // CAP_PERFMON), and the budget may refuse the group; either way,
        // getrusage(RUSAGE_THREAD) counts the thread's context switches at
        // the cost of one more system call.
        if let Some(pos) = unavailable.iter().position(|u| {
            u.counter == Counter::ContextSwitches
                && (refused.is_some() || matches!(u.errno, Some(libc::EACCES) | Some(libc::EPERM)))
        }) {
            if sys::thread_context_switches().is_some() {
                unavailable.remove(pos);
                switches_from_rusage = true;
            }
        }
        // On the user-read path, CPU time is the leader's enabled time where
        // every page brings its times up to date (`cap_user_time`).
        let cpu_from_enabled = set.contains(Counter::CpuTime)
            && !user.is_empty()
            && user.iter().all(|(_, page)| page.has_user_time());
        // Elsewhere without the task-clock event (refused, or not opened on
        // the user-read path), snapshots read CPU time from
        // CLOCK_THREAD_CPUTIME_ID: then CPU time is available, from the
        // clock, and the event's refusal is no reason it is absent.
        if set.contains(Counter::CpuTime) && !cpu_from_enabled && !slots.contains(&Counter::CpuTime)
        {
            let refused = unavailable
                .iter()
                .position(|u| u.counter == Counter::CpuTime);
            match (sys::thread_cpu_ns().is_some(), refused) {
                (true, Some(pos)) => {
                    unavailable.remove(pos);
                }
                (false, None) => unavailable.push(Unavailable {
                    counter: Counter::CpuTime,
                    errno: None,
                    reason: "CLOCK_THREAD_CPUTIME_ID cannot be read".to_string(),
                }),
                _ => {}
            }
        }
        let group = (!counters.is_empty()).then_some(PerfGroup {
            counters,
            slots,
            user,
            has_hardware,
            cpu_from_enabled,
        });

        let held = admitted.and_then(|admitted| {
            admitted.opened(group.as_ref().map_or(0, |g| g.counters.len() as u64))
        });

        let statm = if set.contains(Counter::Rss) {
            match statm::shared() {
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

        let retry_backoff_ns = if refused.is_some() || unavailable.iter().any(|u| may_pass(u.errno))
        {
            next_retry_backoff(previous_backoff_ns)
        } else {
            0
        };
        let retry_at_ns = if retry_backoff_ns == 0 {
            0
        } else {
            sys::monotonic_ns().saturating_add(retry_backoff_ns)
        };

        Counters {
            set,
            group,
            statm,
            retry_at_ns,
            retry_backoff_ns,
            _seat: held
                .map(budget::Seat::Held)
                .or(refused.map(|(refused, _)| budget::Seat::Refused(refused))),
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

    /// How perf counters were opened to be read on this thread: from user
    /// space where the kernel allowed it when they were opened. A snapshot
    /// of a user-read group falls back to `read(2)` while a page cannot be
    /// read; [`Counters::sources`] says which path a snapshot takes now.
    pub fn source(&self) -> ReadPath {
        match &self.group {
            Some(g) if !g.user.is_empty() => ReadPath::Rdpmc,
            Some(g) if g.has_hardware => ReadPath::Read,
            _ => ReadPath::Software,
        }
    }

    /// Where each counter of the set comes from now, or why it is absent,
    /// and the read path a snapshot takes now: the one answer of the probe
    /// ([`crate::probe()`]) and of status records.
    ///
    /// A counter is available exactly when snapshots carry it: CPU time
    /// read from `CLOCK_THREAD_CPUTIME_ID` because the perf task-clock was
    /// refused is available, from [`CounterSource::Clock`]. A user-read
    /// group whose pages cannot be read at this moment (an event off the
    /// PMU, or user access withdrawn) is read with `read(2)`, and says so:
    /// its hardware counters are then [`CounterSource::GroupRead`]. Only
    /// such a group is read (as a snapshot reads it: its pages, and
    /// `read(2)` when they cannot be read); nothing else makes a system
    /// call.
    pub fn sources(&mut self) -> Sources {
        // A user-read group is read as a snapshot reads it (a trap on a
        // withdrawn read switches it to read(2) for good, here as there).
        let user_now = match self.group.as_mut() {
            Some(g) if !g.user.is_empty() => {
                let mut s = Snapshot::default();
                read_group(g, &mut s);
                s.source == ReadPath::Rdpmc
            }
            _ => false,
        };
        let group = self.group.as_ref();
        let hardware = if user_now {
            CounterSource::UserRead
        } else {
            CounterSource::GroupRead
        };
        let counters = self
            .set
            .iter()
            .map(|counter| {
                let source = match self.unavailable.iter().find(|u| u.counter == counter) {
                    Some(u) => Err(u.clone()),
                    None => Ok(match counter {
                        Counter::Instructions | Counter::Cycles => hardware,
                        Counter::CpuTime if group.is_some_and(|g| g.cpu_from_enabled) => hardware,
                        Counter::CpuTime
                            if group.is_some_and(|g| g.slots.contains(&Counter::CpuTime)) =>
                        {
                            CounterSource::SoftwareEvent
                        }
                        Counter::CpuTime | Counter::WallTime => CounterSource::Clock,
                        Counter::Rss => CounterSource::Statm,
                        Counter::ContextSwitches if self.switches_from_rusage => {
                            CounterSource::Getrusage
                        }
                        Counter::PageFaults | Counter::ContextSwitches => {
                            CounterSource::SoftwareEvent
                        }
                        Counter::PeakRss => CounterSource::Getrusage,
                    }),
                };
                CounterState { counter, source }
            })
            .collect();
        let path = match group {
            Some(_) if user_now => ReadPath::Rdpmc,
            Some(g) if g.has_hardware => ReadPath::Read,
            _ => ReadPath::Software,
        };
        Sources { path, counters }
    }

    /// Whether these counters were opened in another process (before a
    /// `fork`) and must not be used here.
    pub fn is_stale(&self) -> bool {
        self.generation != sys::fork_generation()
    }

    /// Whether these counters were left short by a refusal that may pass
    /// (the descriptor budget, or `EMFILE` and the like) and their wait is
    /// over: the thread's counters are then opened again
    /// ([`with_thread_counters`](super::with_thread_counters)). One load
    /// and a branch for counters that were not refused.
    #[inline]
    pub(crate) fn retry_due(&self) -> bool {
        self.retry_at_ns != 0 && sys::monotonic_ns() >= self.retry_at_ns
    }

    /// The wait these counters were given before the next attempt, if a
    /// refusal that may pass left them short.
    pub(crate) fn retry_backoff_ns(&self) -> Option<u64> {
        (self.retry_backoff_ns != 0).then_some(self.retry_backoff_ns)
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
    /// when the region is over. A [`Delta`](super::Delta) of two such snapshots has no
    /// RSS, and [`Delta::accumulate`](super::Delta::accumulate) keeps the first piece's `rss_start`.
    ///
    /// ```
    /// use dynostats::{counters::Counter, counters::CounterSet, counters::Counters, Delta};
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
        statm::read_rss(self.statm?, self.page_size)
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

    /// The raw value of one counter now, as cheaply as it can be read: a
    /// hardware counter through its mmap page when the kernel allows it,
    /// else one `read(2)` of the group; CPU time and wall time from their
    /// clocks; RSS from the kept `/proc/self/statm` descriptor. Not scaled
    /// for multiplexing (a raw count, as in a [`Snapshot`]). `None` when the
    /// counter is not in the set, was not opened or the read failed. The
    /// profiler's timer (`crate::profile`).
    pub(crate) fn read_one(&mut self, counter: Counter) -> Option<u64> {
        match counter {
            Counter::Instructions | Counter::Cycles => {
                let group = self.group.as_mut()?;
                if let Some((_, page)) = group.user.iter().find(|(c, _)| *c == counter) {
                    match page.read() {
                        Ok(v) => return Some(v.count),
                        Err(UserReadFailure::Withdrawn) => withdraw_user_reads(group),
                        Err(UserReadFailure::NotNow) => {}
                    }
                }
                let mut s = Snapshot::default();
                read_group(group, &mut s);
                if counter == Counter::Instructions {
                    s.instructions
                } else {
                    s.cycles
                }
            }
            Counter::CpuTime => sys::thread_cpu_ns(),
            Counter::WallTime => Some(sys::monotonic_ns()),
            Counter::Rss => self.rss_bytes(),
            _ => None,
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
            .is_some_and(|g| g.cpu_from_enabled || g.slots.contains(&Counter::CpuTime));
        self.read_rest(s, !cpu_from_group, memory);
        if let Some(group) = &mut self.group {
            // A refused user-space read leaves read(2)'s values, taken
            // after the trap was handled: right for a start.
            read_group(group, s);
        }
        if cpu_from_group && s.cpu_from == CpuFrom::Nowhere && self.set.contains(Counter::CpuTime) {
            // The group read failed: the clock still gives CPU time.
            s.cpu_ns = sys::thread_cpu_ns();
            s.cpu_from = CpuFrom::Clock;
        }
    }

    /// Fills `s`, a default snapshot, for the end of a region: hardware
    /// counters first; RSS and peak RSS only when `memory`.
    #[inline(always)]
    fn read_end(&mut self, s: &mut Snapshot, memory: bool) {
        if let Some(group) = &mut self.group {
            if read_group(group, s) {
                // The kernel refused the user-space read: the count read(2)
                // gave holds the handling of the trap, which is not the
                // region's. No count rather than a wrong one.
                s.instructions = None;
                s.cycles = None;
            }
        }
        s.wall_ns = sys::monotonic_ns();
        let cpu_from_clock = s.cpu_from == CpuFrom::Nowhere;
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
            s.cpu_from = CpuFrom::Clock;
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
            s.cpu_from = CpuFrom::TaskClock;
        }
        Counter::PageFaults => s.page_faults = Some(value),
        Counter::ContextSwitches => s.context_switches = Some(value),
        _ => {}
    }
}

/// Stops reading `group` from user space: the kernel withdrew user access
/// (`UserReadFailure::Withdrawn`), and every read is a `read(2)` from now
/// on, as [`Counters::source`] then says.
#[cold]
#[inline(never)]
fn withdraw_user_reads(group: &mut PerfGroup) {
    group.user = Vec::new();
}

/// Reads `group` into `s`: through the user pages when it has them and
/// they all give a count now, else with one `read(2)`. Returns whether the
/// kernel refused a user-space read (a trap, recovered): the group then
/// switches to `read(2)` for good before the read that fills `s`.
fn read_group(group: &mut PerfGroup, s: &mut Snapshot) -> bool {
    let mut withdrawn = false;
    if !group.user.is_empty() {
        let mut values = [None; 2];
        for (i, (_, page)) in group.user.iter().enumerate() {
            match page.read() {
                Ok(v) => values[i] = Some(v),
                Err(e) => {
                    withdrawn = e == UserReadFailure::Withdrawn;
                    break;
                }
            }
        }
        let times_ok = !group.cpu_from_enabled || values[0].is_some_and(|v| v.times_current);
        if times_ok && values[..group.user.len()].iter().all(Option::is_some) {
            s.source = ReadPath::Rdpmc;
            for ((counter, _), v) in group.user.iter().zip(values) {
                let v = v.expect("checked above");
                set_slot(s, *counter, v.count);
                s.time_enabled = v.time_enabled;
                s.time_running = v.time_running;
            }
            if group.cpu_from_enabled {
                // The leader's (the first page's) enabled time, current.
                s.cpu_ns = values[0].map(|v| v.time_enabled);
                s.cpu_from = CpuFrom::LeaderEnabled;
            }
            return false;
        }
        // Not on a hardware counter right now (or the page's times are not
        // current while CPU time comes from them): read() gives the truth.
        if withdrawn {
            // Before the read(2), so that its count holds none of this.
            withdraw_user_reads(group);
        }
    }
    let mut buf = [0u64; GROUP_WORDS];
    let n = group.slots.len();
    let Ok(bytes) = sys::read_words(group.counters[0].as_raw_fd(), &mut buf[..3 + n]) else {
        return withdrawn;
    };
    let words = bytes / 8;
    let nr = buf[0] as usize;
    if words < 3 || nr != n || words < 3 + nr {
        // Not what this group looks like: report nothing rather than guess.
        return withdrawn;
    }
    s.time_enabled = buf[1];
    s.time_running = buf[2];
    if group.cpu_from_enabled {
        // The same leader's enabled time as the page gives.
        s.cpu_ns = Some(buf[1]);
        s.cpu_from = CpuFrom::LeaderEnabled;
    }
    s.source = if group.has_hardware {
        ReadPath::Read
    } else {
        ReadPath::Software
    };
    for (i, counter) in group.slots.iter().enumerate() {
        set_slot(s, *counter, buf[3 + i]);
    }
    withdrawn
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
