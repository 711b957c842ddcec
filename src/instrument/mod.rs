//! Instrumenting code: sampled guards for code regions and futures measured
//! per poll.
//!
//! - [`measure`], [`measure_fn`] and [`Region`] measure 1 in N code regions
//!   on one thread and emit one record each (kind `region`).
//! - [`Measure::measured`] wraps a future, measured around each `poll` on
//!   whichever thread runs it (see [`Measured`] for why per poll).
//!
//! Both ask a [`Sampler`](crate::sample::Sampler), the global one unless
//! given another, and measure only while a pipeline is installed or scoped.
//!
//! # Guards
//!
//! [`measure`] asks the global sampler whether to measure this region.
//! When not (most of the time), the returned [`RegionGuard`] is `None`
//! inside and dropping it does nothing: the cost is one thread-local
//! decrement and a branch. When sampled, the guard reads the thread's
//! counters ([`crate::snapshot`]) now and again when it is dropped, and
//! hands a `region` record to the pipeline ([`crate::emit`]).
//!
//! Costs are documented on [`measure`].

pub(crate) mod accounting;
mod future;
mod region;

pub use future::{Measure, Measured};
pub use region::{Region, RegionGuard};

/// Measures the code region until the returned guard is dropped, if the
/// global sampler picks it (see [`set_sample_rate`](crate::set_sample_rate)).
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
/// calls: see [`crate::probe()`] for their cost on this machine), one record
/// allocation and a push on a lock-free queue; the encoding and the I/O
/// happen on the pipeline's writer thread. The fixed overhead of a sampled
/// guard in instructions is measured in the PMU guest, where instruction
/// counts are exact.
///
/// ```
/// use dynostats::sink::MemorySink;
/// use dynostats::{Pipeline, Region, RecordKind};
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
