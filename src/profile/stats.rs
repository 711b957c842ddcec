//! The profiler's own counters, process-wide: summed when a profile ends,
//! so that a scope costs no atomic operation.

use std::sync::atomic::{AtomicU64, Ordering};

use super::tree::Counts;

/// What the profiler has done in this process ([`stats`](super::stats)).
///
/// Scopes entered outside a sampled region (or with profiling off) do no
/// bookkeeping and appear nowhere here: that is what these counters let a
/// test check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProfilerStats {
    /// Profiles made (a sampled region's or task's first scope).
    pub profiles: u64,
    /// Profile records built.
    pub records: u64,
    /// Scope enter/exit pairs timed, in profiles that have ended.
    pub scopes: u64,
    /// Timer reads, in profiles that have ended (calibration not counted).
    pub timer_reads: u64,
    /// Scopes sent to an overflow bucket by the depth or node cap.
    pub overflowed: u64,
    /// Calibrations run (one per timer used in the process).
    pub calibrations: u64,
}

static PROFILES: AtomicU64 = AtomicU64::new(0);
static RECORDS: AtomicU64 = AtomicU64::new(0);
static SCOPES: AtomicU64 = AtomicU64::new(0);
static READS: AtomicU64 = AtomicU64::new(0);
static OVERFLOWED: AtomicU64 = AtomicU64::new(0);
static CALIBRATIONS: AtomicU64 = AtomicU64::new(0);

pub(crate) fn created() {
    PROFILES.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn calibrated() {
    CALIBRATIONS.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn finished(counts: &Counts) {
    RECORDS.fetch_add(1, Ordering::Relaxed);
    SCOPES.fetch_add(counts.pairs, Ordering::Relaxed);
    READS.fetch_add(counts.reads, Ordering::Relaxed);
    OVERFLOWED.fetch_add(
        counts.overflow_depth + counts.overflow_nodes + counts.nested,
        Ordering::Relaxed,
    );
}

/// The profiler's counters so far.
pub(crate) fn get() -> ProfilerStats {
    ProfilerStats {
        profiles: PROFILES.load(Ordering::Relaxed),
        records: RECORDS.load(Ordering::Relaxed),
        scopes: SCOPES.load(Ordering::Relaxed),
        timer_reads: READS.load(Ordering::Relaxed),
        overflowed: OVERFLOWED.load(Ordering::Relaxed),
        calibrations: CALIBRATIONS.load(Ordering::Relaxed),
    }
}
