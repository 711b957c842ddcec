//! The descriptor budget: how many threads may hold a perf group at once,
//! and how many free descriptors the library leaves to the service.
//!
//! Checked when a thread's counters open (never on a snapshot): a cap on
//! the threads holding perf groups (one atomic), then the process's open
//! descriptors (one pass over `/proc/self/fd`) against `RLIMIT_NOFILE`
//! minus the reserve. A thread refused uses the software path (CPU clock,
//! wall clock, the shared `/proc/self/statm` descriptor) and is counted.
//! Everything here is atomics: a forked child may open counters while
//! another parent thread was in the middle of an admission.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::sys;

/// The library's descriptor budget ([`set_descriptor_budget`]).
///
/// Each thread that measures holds one perf group: one descriptor per perf
/// event of the thread counter set (at most five; three for the default set
/// on the `read(2)` path, one where there is no hardware PMU). RSS is read
/// through one `/proc/self/statm` descriptor shared by the whole process.
/// A thread's counters open a perf group only when
///
/// - fewer than `max_perf_threads` threads hold one, and
/// - after opening it, at least the reserve of descriptors is still free
///   under the soft `RLIMIT_NOFILE`;
///
/// otherwise the thread uses the software path (CPU time from
/// `CLOCK_THREAD_CPUTIME_ID`, wall time, RSS; no instructions, cycles or
/// page faults) and is counted in [`descriptor_use`] and in status records
/// (`perf_threads_refused`). A thread's group and its place in the budget
/// are given back when its counters close (thread exit).
///
/// ```
/// use dynostats::counters::{DescriptorBudget, set_descriptor_budget};
///
/// let mut budget = DescriptorBudget::default();
/// budget.max_perf_threads = 64;
/// budget.reserve = Some(1000); // keep 1000 descriptors free for the service
/// set_descriptor_budget(budget);
/// assert_eq!(dynostats::counters::descriptor_budget().max_perf_threads, 64);
/// # set_descriptor_budget(DescriptorBudget::default());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DescriptorBudget {
    /// At most this many threads hold a perf group at once
    /// ([`DescriptorBudget::DEFAULT_MAX_PERF_THREADS`] by default).
    pub max_perf_threads: u32,
    /// Descriptors that must stay free under the soft `RLIMIT_NOFILE` after
    /// a thread opens its group. `None`: [`DescriptorBudget::reserve_for`]'s
    /// default, half the limit and at least
    /// [`DescriptorBudget::MIN_RESERVE`].
    pub reserve: Option<u64>,
}

impl Default for DescriptorBudget {
    fn default() -> Self {
        DescriptorBudget {
            max_perf_threads: DescriptorBudget::DEFAULT_MAX_PERF_THREADS,
            reserve: None,
        }
    }
}

impl DescriptorBudget {
    /// The default cap on threads holding perf groups: above a tokio
    /// runtime's workers plus its 512 blocking threads, and at most 5,120
    /// perf descriptors.
    pub const DEFAULT_MAX_PERF_THREADS: u32 = 1024;
    /// The smallest default reserve: with a small limit (256, 128) the
    /// service keeps at least this many descriptors for its sockets and
    /// files.
    pub const MIN_RESERVE: u64 = 64;

    /// The descriptors kept free for the service under a soft limit of
    /// `limit`: the configured reserve, or by default half the limit (the
    /// library never takes a descriptor from the upper half of the table,
    /// whatever the service opened before it), and at least
    /// [`DescriptorBudget::MIN_RESERVE`].
    ///
    /// ```
    /// use dynostats::counters::DescriptorBudget;
    /// assert_eq!(DescriptorBudget::default().reserve_for(1024), 512);
    /// assert_eq!(DescriptorBudget::default().reserve_for(100), 64);
    /// ```
    pub fn reserve_for(&self, limit: u64) -> u64 {
        self.reserve
            .unwrap_or_else(|| (limit / 2).max(DescriptorBudget::MIN_RESERVE))
    }
}

/// `u32::MAX`: no cap.
static MAX_PERF_THREADS: AtomicU32 = AtomicU32::new(DescriptorBudget::DEFAULT_MAX_PERF_THREADS);
/// `u64::MAX`: the default reserve.
static RESERVE: AtomicU64 = AtomicU64::new(u64::MAX);

/// Sets the descriptor budget for counters opened from now on (threads
/// holding a group keep it).
pub fn set_descriptor_budget(budget: DescriptorBudget) {
    MAX_PERF_THREADS.store(budget.max_perf_threads, Ordering::Relaxed);
    RESERVE.store(budget.reserve.unwrap_or(u64::MAX), Ordering::Relaxed);
}

/// The descriptor budget in force.
pub fn descriptor_budget() -> DescriptorBudget {
    DescriptorBudget {
        max_perf_threads: MAX_PERF_THREADS.load(Ordering::Relaxed),
        reserve: match RESERVE.load(Ordering::Relaxed) {
            u64::MAX => None,
            n => Some(n),
        },
    }
}

/// What the library holds of the process's descriptors now, and what the
/// budget refused ([`descriptor_use`]; in status records as
/// `perf_groups_held`, `perf_descriptors_held`, `perf_threads_refused`,
/// `perf_refusals`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DescriptorUse {
    /// Threads (open [`Counters`](super::Counters)) holding a perf group.
    pub perf_groups_held: u64,
    /// Perf descriptors those groups hold.
    pub perf_descriptors_held: u64,
    /// Open counters on the software path because the budget refused them.
    pub threads_refused: u64,
    /// Refusals by the budget since the process started (a forked child
    /// counts its parent's up to the fork).
    pub refusals: u64,
}

/// The library's descriptor use now. The gauges are per process: in a
/// forked child they start from 0.
///
/// ```
/// let before = dynostats::counters::descriptor_use();
/// let _ = dynostats::snapshot();
/// let now = dynostats::counters::descriptor_use();
/// assert!(now.perf_groups_held + now.threads_refused >= 1 || now.perf_descriptors_held == 0);
/// # let _ = before;
/// ```
pub fn descriptor_use() -> DescriptorUse {
    DescriptorUse {
        perf_groups_held: GROUPS.get(),
        perf_descriptors_held: DESCRIPTORS.get(),
        threads_refused: REFUSED.get(),
        refusals: REFUSALS.load(Ordering::Relaxed),
    }
}

/// A count kept per fork generation: the high 32 bits hold the generation
/// it counts in, the low 32 the count. In a forked child it reads 0, and
/// releases of what the parent held are ignored.
struct Gauge(AtomicU64);

const COUNT_MASK: u64 = 0xffff_ffff;

fn generation32() -> u64 {
    sys::fork_generation() & COUNT_MASK
}

impl Gauge {
    const fn new() -> Gauge {
        Gauge(AtomicU64::new(0))
    }

    /// Adds `n` unless the count would pass `cap`; the generation added in.
    fn try_add(&self, n: u64, cap: u64) -> Option<u64> {
        let generation = generation32();
        let mut current = self.0.load(Ordering::Relaxed);
        loop {
            let count = if current >> 32 == generation {
                current & COUNT_MASK
            } else {
                0
            };
            if count + n > cap.min(COUNT_MASK) {
                return None;
            }
            let new = generation << 32 | (count + n);
            match self
                .0
                .compare_exchange_weak(current, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Some(generation),
                Err(actual) => current = actual,
            }
        }
    }

    /// Takes back `n` added in `generation` (nothing in another one).
    fn sub(&self, n: u64, generation: u64) {
        let mut current = self.0.load(Ordering::Relaxed);
        while current >> 32 == generation {
            let new = generation << 32 | (current & COUNT_MASK).saturating_sub(n);
            match self
                .0
                .compare_exchange_weak(current, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    fn get(&self) -> u64 {
        let current = self.0.load(Ordering::Relaxed);
        if current >> 32 == generation32() {
            current & COUNT_MASK
        } else {
            0
        }
    }
}

static GROUPS: Gauge = Gauge::new();
static DESCRIPTORS: Gauge = Gauge::new();
static REFUSED: Gauge = Gauge::new();
static REFUSALS: AtomicU64 = AtomicU64::new(0);
/// Descriptors admitted but not yet opened: an admission that counts the
/// open descriptors before another's open has finished still sees it here.
static PENDING: AtomicU64 = AtomicU64::new(0);

/// The outcome of asking the budget for a perf group of `need` events.
pub(super) enum Admission {
    /// No perf event wanted.
    NotNeeded,
    /// Open the group, then tell [`Admitted::opened`] how many opened.
    Admitted(Admitted),
    /// Use the software path, for the reason given.
    Refused(Refused, String),
}

/// A place in the budget for a group not yet opened.
pub(super) struct Admitted {
    generation: u64,
    need: u64,
}

/// A group held: given back on drop.
pub(super) struct Held {
    generation: u32,
    descriptors: u32,
}

/// Counters the budget refused: counted while they live (in `generation`,
/// when counted).
pub(super) struct Refused {
    generation: Option<u32>,
}

/// What a thread's counters hold of the budget, given back on drop.
#[allow(dead_code, reason = "the variants are held for their Drop")]
pub(super) enum Seat {
    Held(Held),
    Refused(Refused),
}

/// Asks the budget for a group of `need` perf events on the calling thread.
pub(super) fn admit(need: u64) -> Admission {
    if need == 0 {
        return Admission::NotNeeded;
    }
    let budget = descriptor_budget();
    let Some(generation) = GROUPS.try_add(1, u64::from(budget.max_perf_threads)) else {
        return refuse(format!(
            "descriptor budget: {} threads already hold perf counters \
             (DescriptorBudget::max_perf_threads); this thread uses the software path",
            budget.max_perf_threads
        ));
    };
    // Own first, then the others' pending descriptors, then the count:
    // of two admissions at once, the later one sees the earlier one's
    // descriptors in one of the two.
    let others = PENDING.fetch_add(need, Ordering::SeqCst);
    let refusal = match (sys::open_files_limit(), count_open_descriptors()) {
        (Some(limit), Ok(open)) => {
            let reserve = budget.reserve_for(limit);
            (open + others + need + reserve > limit).then(|| {
                format!(
                    "descriptor budget: {open} of {limit} descriptors are open and {reserve} \
                     are kept free for the service (DescriptorBudget::reserve); this thread \
                     uses the software path"
                )
            })
        }
        // Without /proc the count is unknown: the cap alone applies.
        (_, Err(e)) if e.raw_os_error() == Some(libc::ENOENT) => None,
        (None, Ok(_)) => None,
        (_, Err(e)) => Some(format!(
            "descriptor budget: the open descriptors cannot be counted ({e}); this thread \
             uses the software path"
        )),
    };
    match refusal {
        None => Admission::Admitted(Admitted { generation, need }),
        Some(reason) => {
            PENDING.fetch_sub(need, Ordering::SeqCst);
            GROUPS.sub(1, generation);
            refuse(reason)
        }
    }
}

fn refuse(reason: String) -> Admission {
    REFUSALS.fetch_add(1, Ordering::Relaxed);
    let generation = REFUSED.try_add(1, u64::MAX).map(|g| g as u32);
    Admission::Refused(Refused { generation }, reason)
}

/// Descriptors open in the process: the entries of `/proc/self/fd`, less
/// the one reading it.
fn count_open_descriptors() -> std::io::Result<u64> {
    let entries = std::fs::read_dir("/proc/self/fd")?.count() as u64;
    Ok(entries.saturating_sub(1))
}

impl Admitted {
    /// The group opened with `descriptors` events: held from now on (or
    /// the place given back when none opened).
    pub(super) fn opened(self, descriptors: u64) -> Option<Held> {
        PENDING.fetch_sub(self.need, Ordering::SeqCst);
        if descriptors == 0 {
            GROUPS.sub(1, self.generation);
            return None;
        }
        let counted = DESCRIPTORS.try_add(descriptors, u64::MAX) == Some(self.generation);
        Some(Held {
            generation: self.generation as u32,
            descriptors: if counted { descriptors as u32 } else { 0 },
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        GROUPS.sub(1, u64::from(self.generation));
        DESCRIPTORS.sub(u64::from(self.descriptors), u64::from(self.generation));
    }
}

impl Drop for Refused {
    fn drop(&mut self) {
        if let Some(generation) = self.generation {
            REFUSED.sub(1, u64::from(generation));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_reserve_is_half_the_limit_and_at_least_64() {
        let b = DescriptorBudget::default();
        assert_eq!(b.reserve_for(256), 128);
        assert_eq!(b.reserve_for(1 << 20), 1 << 19);
        assert_eq!(b.reserve_for(90), 64);
        let fixed = DescriptorBudget {
            reserve: Some(10),
            ..b
        };
        assert_eq!(fixed.reserve_for(1 << 20), 10);
    }

    #[test]
    fn a_gauge_caps_and_ignores_other_generations() {
        let g = Gauge::new();
        let generation = g.try_add(2, 3).unwrap();
        assert_eq!(g.try_add(2, 3), None);
        assert!(g.try_add(1, 3).is_some());
        assert_eq!(g.get(), 3);
        g.sub(1, generation + 1);
        assert_eq!(g.get(), 3);
        g.sub(3, generation);
        assert_eq!(g.get(), 0);
    }
}
