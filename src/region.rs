//! Sampled guards: measure 1 in N code regions and emit one record each.
//!
//! [`measure`] asks the global [`Sampler`] whether to measure this region.
//! When not (most of the time), the returned [`RegionGuard`] is `None`
//! inside and dropping it does nothing: the cost is one thread-local
//! decrement and a branch. When sampled, the guard reads the thread's
//! counters ([`crate::snapshot`]) now and again when it is dropped, and
//! hands a [`RecordKind::Region`] record to the pipeline ([`crate::emit`]).
//!
//! Costs are documented on [`measure`].

use std::marker::PhantomData;

use crate::{Delta, Record, RecordKind, Sampler, Snapshot};

/// The rate of the global sampler until [`set_sample_rate`] changes it:
/// one region in 1000 is measured.
pub const DEFAULT_SAMPLE_RATE: u64 = 1000;

pub(crate) static SAMPLER: Sampler = Sampler::global(DEFAULT_SAMPLE_RATE);

/// Sets the rate of the global sampler used by [`measure`], [`measure_fn`]
/// and [`Region::new`]: 1 in `rate` regions is measured (1 = all, 0 =
/// none). Records carry the rate as their `weight`. A thread picks up the
/// new rate after its next sampled region (at once when sampling was
/// disabled).
pub fn set_sample_rate(rate: u64) {
    SAMPLER.set_rate(rate);
}

/// The rate of the global sampler.
pub fn sample_rate() -> u64 {
    SAMPLER.rate()
}

/// Measures the code region until the returned guard is dropped, if the
/// global sampler picks it (see [`set_sample_rate`]).
///
/// Nothing is measured while no pipeline is installed or scoped (records
/// would have nowhere to go). The record is emitted even when the region
/// panics (then with `cancelled: true`). Guards nest: an inner region gets
/// its own record.
///
/// # Cost
///
/// Unsampled: one thread-local decrement and a branch (a few ns; see
/// `benches/pipeline.rs`). Sampled: two counter snapshots (mostly system
/// calls: see [`crate::probe`] for their cost on this machine), one record
/// allocation and a push on a lock-free queue; the encoding and the I/O
/// happen on the pipeline's writer thread. The fixed overhead of a sampled
/// guard in instructions is measured in the PMU guest, where instruction
/// counts are exact.
///
/// ```
/// use dynostats::{MemorySink, Pipeline, Region, RecordKind};
///
/// let mem = MemorySink::new();
/// let pipeline = Pipeline::builder().sink(mem.clone()).build().unwrap();
/// let _scope = pipeline.scoped();
///
/// // Usually not sampled: the guard does nothing.
/// let guard = dynostats::measure("parse");
/// let _parsed: Vec<u32> = "1 2 3".split(' ').map(|s| s.parse().unwrap()).collect();
/// drop(guard);
///
/// // Force one region (weight 0 unless the sampler picked it too).
/// let guard = Region::forced("parse").label("build", "abc123").start();
/// assert!(guard.is_sampled());
/// drop(guard);
/// pipeline.flush().unwrap();
/// let records = mem.records_of(RecordKind::Region);
/// let forced = records.iter().find(|r| r.labels.get("build").is_some()).unwrap();
/// assert_eq!(forced.name, "parse");
/// ```
///
/// The guard stays on the thread that created it (counters are per
/// thread):
///
/// ```compile_fail,E0277
/// let guard = dynostats::measure("region");
/// std::thread::spawn(move || drop(guard));
/// ```
#[inline]
pub fn measure(name: &str) -> RegionGuard {
    Region::new(name).start()
}

/// Runs `f` as a measured region (see [`measure`]) and returns its result.
///
/// ```
/// let total = dynostats::measure_fn("sum", || (1..=10u64).sum::<u64>());
/// assert_eq!(total, 55);
/// ```
#[inline]
pub fn measure_fn<R>(name: &str, f: impl FnOnce() -> R) -> R {
    let _guard = measure(name);
    f()
}

/// A region about to be measured: add labels, then [`Region::start`] it or
/// [`Region::run`] a closure in it.
///
/// The sampling decision is taken when the `Region` is created; an
/// unsampled region ignores its labels (they are not even copied).
#[must_use = "a region is measured only once started"]
#[derive(Debug)]
pub struct Region {
    /// The record and room for the start snapshot: one allocation, made
    /// only when sampled.
    active: Option<Box<Active>>,
}

impl Region {
    /// A region named `name`, sampled by the global sampler.
    #[inline]
    pub fn new(name: &str) -> Region {
        Region::with_sampler(&SAMPLER, name)
    }

    /// A region named `name`, sampled by `sampler` instead of the global one
    /// (e.g. a per-endpoint rate).
    #[inline]
    pub fn with_sampler(sampler: &Sampler, name: &str) -> Region {
        match sampler.sample() {
            None => Region { active: None },
            Some(weight) => Region::sampled(name, weight, false),
        }
    }

    /// A region that is measured whatever the sampler says (as long as a
    /// pipeline is installed or scoped), for debugging one region without
    /// changing the global rate.
    ///
    /// The global sampler is still consulted, so extrapolated totals stay
    /// right: when it picks the region too, the record is an ordinary one
    /// with the rate as weight; otherwise the record has `forced: true` and
    /// weight 0 (it stands for no event beyond itself in
    /// `sum(weight * instructions)`).
    pub fn forced(name: &str) -> Region {
        match SAMPLER.sample() {
            Some(weight) => Region::sampled(name, weight, false),
            None => Region::sampled(name, 0, true),
        }
    }

    #[cold]
    fn sampled(name: &str, weight: u64, forced: bool) -> Region {
        if !crate::pipeline::is_active() {
            return Region { active: None };
        }
        let mut record = Record::new(RecordKind::Region, name);
        record.weight = weight;
        record.forced = forced;
        Region {
            active: Some(Box::new(Active {
                record,
                start: Snapshot::default(),
            })),
        }
    }

    /// Adds a label (bounded as in [`Record::set_label`]) to the record of
    /// a sampled region; does nothing for an unsampled one.
    #[inline]
    pub fn label(mut self, key: &str, value: &str) -> Region {
        if let Some(active) = &mut self.active {
            active.record.set_label(key, value);
        }
        self
    }

    /// Whether this region will be measured.
    pub fn is_sampled(&self) -> bool {
        self.active.is_some()
    }

    /// Reads the counters and returns the guard that measures until it is
    /// dropped.
    #[inline]
    pub fn start(self) -> RegionGuard {
        RegionGuard {
            active: self.active.map(start_active),
            _not_send: PhantomData,
        }
    }

    /// Runs `f` in this region and returns its result.
    #[inline]
    pub fn run<R>(self, f: impl FnOnce() -> R) -> R {
        let _guard = self.start();
        f()
    }
}

#[cold]
fn start_active(mut active: Box<Active>) -> Box<Active> {
    // Last, so that the region's own setup is not measured.
    active.start = crate::snapshot_start();
    active
}

#[derive(Debug)]
struct Active {
    record: Record,
    start: Snapshot,
}

/// Measures a code region until dropped; see [`measure`].
///
/// Unsampled, it is `None` inside and its `Drop` does nothing.
#[must_use = "the region is measured until the guard is dropped; `let _ = ` drops it at once"]
#[derive(Debug)]
pub struct RegionGuard {
    active: Option<Box<Active>>,
    /// Counters are per thread: the guard must end where it started.
    _not_send: PhantomData<*const ()>,
}

impl RegionGuard {
    /// Whether this region is being measured.
    pub fn is_sampled(&self) -> bool {
        self.active.is_some()
    }
}

impl Drop for RegionGuard {
    #[inline]
    fn drop(&mut self) {
        if let Some(active) = self.active.take() {
            finish(active);
        }
    }
}

#[cold]
fn finish(active: Box<Active>) {
    let end = crate::snapshot_end();
    let Active { mut record, start } = *active;
    record.set_delta(&Delta::between(&start, &end));
    record.cancelled = std::thread::panicking();
    crate::emit(record);
}
