//! [`Region`] and [`RegionGuard`]: a sampled code region on one thread,
//! measured from a start snapshot to an end snapshot.

use std::marker::PhantomData;

use crate::counters::{self, Delta, PhantomNotSend, Snapshot};
use crate::pipeline;
use crate::profile::{self, Installed, TaskProfile};
use crate::record::{Record, RecordKind};
use crate::sample::Sampler;

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
        Region::decided(Sampler::sample_global(), name)
    }

    /// A region named `name`, sampled by `sampler` instead of the global one
    /// (e.g. a per-endpoint rate).
    #[inline]
    pub fn with_sampler(sampler: &Sampler, name: &str) -> Region {
        Region::decided(sampler.sample(), name)
    }

    /// A region for a sampler's decision (`Some(weight)`: sampled).
    #[inline]
    fn decided(decision: Option<u64>, name: &str) -> Region {
        match decision {
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
        match Sampler::sample_global() {
            Some(weight) => Region::sampled(name, weight, false),
            None => Region::sampled(name, 0, true),
        }
    }

    #[cold]
    fn sampled(name: &str, weight: u64, forced: bool) -> Region {
        if !pipeline::is_active() {
            return Region { active: None };
        }
        profile::prepare();
        let mut record = Record::new(RecordKind::Region, name);
        record.weight = weight;
        record.forced = forced;
        Region {
            active: Some(Box::new(Active {
                record,
                start: Snapshot::default(),
                profile: None,
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
    // Scopes in the region are its own until it ends.
    active.profile = Some(Installed::new(&mut TaskProfile::default()));
    // Last, so that the region's own setup is not measured.
    active.start = counters::snapshot_start();
    active
}

#[derive(Debug)]
struct Active {
    record: Record,
    start: Snapshot,
    /// The region's profile, installed on this thread while it runs.
    profile: Option<Installed>,
}

/// Measures a code region until dropped; see [`measure`](super::measure).
///
/// Unsampled, it is `None` inside and its `Drop` does nothing.
#[must_use = "the region is measured until the guard is dropped; `let _ = ` drops it at once"]
#[derive(Debug)]
pub struct RegionGuard {
    active: Option<Box<Active>>,
    /// Counters are per thread: the guard must end where it started.
    _not_send: PhantomNotSend,
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
    // First, and in a small function: what follows would otherwise save
    // more registers before this read, inside the measured instructions.
    let end = counters::snapshot_end();
    deliver(active, end);
}

/// A region started before a `fork` and ended in the child: it is the
/// child's record (its pid), and only its wall time means anything (the
/// start counters were the parent thread's). Marked `error: "fork"`.
#[cold]
fn spanned_fork(record: &mut Record, pid: u32) {
    record.pid = pid;
    record.cpu_ns = None;
    record.instructions = None;
    record.cycles = None;
    record.page_faults = None;
    record.context_switches = None;
    record.rss_start = None;
    record.rss_end = None;
    record.peak_rss = None;
    record.scaled = false;
    record.error = Some(std::borrow::Cow::Borrowed("fork"));
}

#[inline(never)]
fn deliver(active: Box<Active>, end: Snapshot) {
    let Active {
        mut record,
        start,
        profile,
    } = *active;
    let mut task = TaskProfile::default();
    if let Some(installed) = profile {
        installed.finish(&mut task);
    }
    record.set_delta(&Delta::between(&start, &end));
    let pid = crate::record::current_pid();
    if record.pid != pid {
        spanned_fork(&mut record, pid);
    }
    record.cancelled = std::thread::panicking();
    let profile = profile::attach(&mut task, &mut record);
    pipeline::emit(record);
    if let Some(profile) = profile {
        pipeline::emit(profile);
    }
}
