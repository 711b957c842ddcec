//! The calling thread's counters, kept in a thread-local: opened on first
//! use, reopened after `fork`, closed when the thread exits.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU32, Ordering};

use super::CounterSet;
use super::group::Counters;
use super::snapshot::Snapshot;
use crate::sys;

/// The set threads open once chosen, as `CHOSEN | bits`; 0 until then. An
/// atomic, not a `OnceLock`: a child forked while another parent thread
/// was initialising a `OnceLock` would wait for that thread for ever (it
/// does not exist in the child), and every measurement reads this.
static DEFAULT_SET: AtomicU32 = AtomicU32::new(0);
const CHOSEN: u32 = 1 << 16;

/// Chooses `set` unless a set was chosen; returns the set in force.
fn choose(set: CounterSet) -> Result<CounterSet, CounterSet> {
    match DEFAULT_SET.compare_exchange(
        0,
        CHOSEN | u32::from(set.bits),
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => Ok(set),
        Err(chosen) => Err(CounterSet {
            bits: chosen as u16,
        }),
    }
}

/// Chooses the counters that [`snapshot`] (and everything built on it)
/// opens on each thread. Call it once, before the first measurement; later
/// calls return `Err` with the set that was not installed.
///
/// ```
/// use dynostats::{counters::Counter, counters::CounterSet};
/// let _ = dynostats::counters::set_thread_counters(CounterSet::default().with(Counter::PageFaults));
/// ```
pub fn set_thread_counters(set: CounterSet) -> Result<(), CounterSet> {
    choose(set).map(drop).map_err(|_| set)
}

/// The counter set threads open ([`CounterSet::default`] unless
/// [`set_thread_counters`] chose another).
pub fn thread_counters() -> CounterSet {
    match DEFAULT_SET.load(Ordering::Acquire) {
        0 => choose(CounterSet::default()).unwrap_or_else(|chosen| chosen),
        chosen => CounterSet {
            bits: chosen as u16,
        },
    }
}

thread_local! {
    static THREAD: RefCell<Option<Counters>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's counters, opening them on first use,
/// reopening them after a `fork`, and again when a refusal that may pass
/// (the descriptor budget, `EMFILE`) left them short and its wait is over
/// (50 ms, doubling to 30 s). Returns `None` while the thread is being
/// torn down.
///
/// Inlined: the snapshots of guards and measured futures read the counters
/// through it, and out of line its call and the copy of the snapshot it
/// returns fall between a region's two counter reads.
#[inline]
pub fn with_thread_counters<R>(f: impl FnOnce(&mut Counters) -> R) -> Option<R> {
    THREAD
        .try_with(|cell| {
            let mut slot = cell.try_borrow_mut().ok()?;
            let counters = match &mut *slot {
                Some(c) if !c.is_stale() && !c.retry_due() => c,
                other => {
                    // A retry keeps doubling its wait; a fork starts over.
                    let backoff = other
                        .as_ref()
                        .filter(|c| !c.is_stale())
                        .and_then(Counters::retry_backoff_ns);
                    // The old counters go first: their descriptors and their
                    // place in the budget are free for the new attempt.
                    *other = None;
                    other.insert(Counters::open_after(thread_counters(), backoff))
                }
            };
            Some(f(counters))
        })
        .ok()
        .flatten()
}

/// Reads the calling thread's counters with `read`, or only the wall clock
/// while the thread is being torn down (its thread-local is gone).
#[inline]
fn read_with(read: impl FnOnce(&mut Counters) -> Snapshot) -> Snapshot {
    with_thread_counters(read).unwrap_or_else(|| Snapshot {
        wall_ns: sys::monotonic_ns(),
        ..Snapshot::default()
    })
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
    read_with(Counters::snapshot)
}

/// Reads the calling thread's counters at the start of a region, hardware
/// counters last (see [`Counters::snapshot_start`]); end the region with
/// [`snapshot_end`]. Guards and measured futures use this pair, so a
/// record's instructions are the region's own plus a fixed overhead that
/// does not depend on the process's RSS.
///
/// ```
/// let start = dynostats::counters::snapshot_start();
/// let v: Vec<u64> = (0..10_000).collect();
/// let end = dynostats::counters::snapshot_end();
/// let delta = dynostats::Delta::between(&start, &end);
/// assert_eq!(v.len(), 10_000);
/// assert!(delta.wall_ns > 0);
/// ```
#[inline]
pub fn snapshot_start() -> Snapshot {
    read_with(Counters::snapshot_start)
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
    read_with(Counters::snapshot_start_counts)
}

/// The calling thread's [`Counters::snapshot_end_counts`]: an end without
/// RSS.
#[inline]
pub(crate) fn snapshot_end_counts() -> Snapshot {
    read_with(Counters::snapshot_end_counts)
}

/// The process's RSS and peak RSS now, as the calling thread's counters
/// read them ([`Counters::rss_bytes`], [`Counters::peak_rss_bytes`]).
pub(crate) fn memory_now() -> (Option<u64>, Option<u64>) {
    with_thread_counters(|c| (c.rss_bytes(), c.peak_rss_bytes())).unwrap_or_default()
}

/// The raw value of one of the calling thread's counters now
/// ([`Counters::read_one`]); `None` when it is not open on this thread or
/// while the thread is being torn down.
#[inline]
pub(crate) fn read_counter(counter: super::Counter) -> Option<u64> {
    with_thread_counters(|c| c.read_one(counter)).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::group::{RETRY_FIRST_NS, RETRY_MAX_NS, next_retry_backoff};
    use crate::counters::{Counter, ReadPath};
    use crate::fake_kernel::{FakeKernel, HARDWARE, SOFTWARE};
    use std::time::Duration;

    /// What the thread's counters are now: their read path, whether
    /// instructions are open, and the wait before their next attempt.
    fn now() -> (ReadPath, bool, Option<u64>) {
        with_thread_counters(|c| {
            (
                c.source(),
                c.is_available(Counter::Instructions),
                c.retry_backoff_ns(),
            )
        })
        .unwrap()
    }

    /// Waits out a retry of `backoff_ns` (with a margin: the retry is due
    /// at the first use after the wait).
    fn wait(backoff_ns: u64) {
        std::thread::sleep(Duration::from_nanos(backoff_ns) + Duration::from_millis(5));
    }

    #[test]
    fn counters_refused_for_want_of_descriptors_are_opened_again_later() {
        std::thread::spawn(|| {
            let kernel = FakeKernel::new();
            let _hooks = kernel.install();
            kernel
                .fail_type(HARDWARE, libc::EMFILE)
                .fail_type(SOFTWARE, libc::EMFILE);
            assert_eq!(now(), (ReadPath::Software, false, Some(RETRY_FIRST_NS)));
            let opens = kernel.calls().len();
            assert!(opens > 0);
            // Not before the wait is over: no system call per snapshot.
            assert_eq!(now().2, Some(RETRY_FIRST_NS));
            assert_eq!(kernel.calls().len(), opens);
            // Still refused after the wait: tried again, the wait doubled.
            wait(RETRY_FIRST_NS);
            assert_eq!(now(), (ReadPath::Software, false, Some(2 * RETRY_FIRST_NS)));
            assert!(kernel.calls().len() > opens, "a second attempt");
            // The descriptors are back: the next attempt opens the group,
            // and a thread with its counters tries no more.
            kernel.succeed();
            wait(2 * RETRY_FIRST_NS);
            assert_eq!(now(), (ReadPath::Read, true, None));
            let opened = kernel.calls().len();
            wait(RETRY_FIRST_NS);
            assert_eq!(now(), (ReadPath::Read, true, None));
            assert_eq!(kernel.calls().len(), opened, "no attempt once open");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_missing_pmu_or_a_refusal_by_policy_is_not_retried() {
        for errno in [libc::ENOENT, libc::EACCES] {
            std::thread::spawn(move || {
                let kernel = FakeKernel::new();
                let _hooks = kernel.install();
                kernel.fail_type(HARDWARE, errno);
                let (_, instructions, retry) = now();
                assert!(!instructions);
                assert_eq!(retry, None, "errno {errno}");
            })
            .join()
            .unwrap();
        }
    }

    #[test]
    fn the_wait_doubles_up_to_its_cap() {
        let mut waits = vec![next_retry_backoff(None)];
        for _ in 0..11 {
            waits.push(next_retry_backoff(waits.last().copied()));
        }
        assert_eq!(
            waits[..4],
            [50_000_000, 100_000_000, 200_000_000, 400_000_000]
        );
        // 50 ms x 2^9 = 25.6 s, then the 30 s cap.
        assert_eq!(waits[9], 25_600_000_000);
        assert_eq!(waits[10], RETRY_MAX_NS);
        assert_eq!(waits[11], RETRY_MAX_NS);
        assert_eq!(next_retry_backoff(Some(u64::MAX)), RETRY_MAX_NS);
    }
}
