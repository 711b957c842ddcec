//! The calling thread's current profile: one state byte checked by every
//! scope, and the profile of the region or task running on this thread,
//! installed around a sampled region and around each measured segment
//! (poll, `call`) of a sampled future or request.

use std::cell::{Cell, RefCell};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::calibrate;
use super::config;
use super::stats;
use super::tree::{Name, Profile, Token};
use crate::record::{Detail, Record, RecordKind};
use crate::sys;

/// No sampled region runs on this thread: scopes do nothing.
pub(crate) const OFF: u8 = 0;
/// A sampled region runs here and has no profile yet: the first scope
/// makes one.
pub(crate) const READY: u8 = 1;
/// The region's profile is installed here, no scope open.
pub(crate) const HELD: u8 = 2;
/// The region's profile is installed here with scopes open.
pub(crate) const OPEN: u8 = 3;

thread_local! {
    /// The one check of an unsampled scope. No destructor, so reading it
    /// is one load.
    static STATE: Cell<u8> = const { Cell::new(OFF) };
    static CURRENT: RefCell<Option<Box<Profile>>> = const { RefCell::new(None) };
}

/// The state of the calling thread: [`OFF`], [`READY`], [`HELD`] or
/// [`OPEN`].
#[inline(always)]
pub(crate) fn state() -> u8 {
    STATE.with(Cell::get)
}

#[inline(always)]
fn set_state(state: u8) {
    STATE.with(|s| s.set(state));
}

fn take_current() -> Option<Box<Profile>> {
    CURRENT
        .try_with(|c| c.try_borrow_mut().ok().and_then(|mut slot| slot.take()))
        .ok()
        .flatten()
}

fn put_current(profile: Box<Profile>) {
    let _ = CURRENT.try_with(|c| {
        if let Ok(mut slot) = c.try_borrow_mut() {
            *slot = Some(profile);
        }
    });
}

#[inline(always)]
fn with_current<R>(f: impl FnOnce(&mut Profile) -> R) -> Option<R> {
    CURRENT
        .try_with(|c| {
            let mut slot = c.try_borrow_mut().ok()?;
            slot.as_deref_mut().map(f)
        })
        .ok()
        .flatten()
}

/// The profile of a task (a measured future or request) between its
/// segments; `None` until its first scope.
#[derive(Debug, Default)]
pub(crate) struct TaskProfile(Option<Box<Profile>>);

/// A task's (or region's) profile installed as the thread's current one,
/// with what it displaced (a region nested in another, on this thread).
/// [`Installed::finish`] takes it off and gives it back to the task; when
/// dropped instead (a panic inside the segment) the task's profile is
/// discarded and the displaced one restored.
#[derive(Debug)]
#[must_use]
pub(crate) struct Installed {
    prev_state: u8,
    prev: Option<Box<Profile>>,
    active: bool,
}

impl Installed {
    /// Installs `task`'s profile (or readiness for one) on this thread.
    /// Out of line: it runs outside the measured segments, and inlined it
    /// would grow every poll function it is inlined into (the unsampled
    /// path of those functions included).
    #[inline(never)]
    pub(crate) fn new(task: &mut TaskProfile) -> Installed {
        if !config::enabled() {
            return Installed {
                prev_state: OFF,
                prev: None,
                active: false,
            };
        }
        let prev_state = state();
        let prev = if prev_state >= HELD {
            take_current()
        } else {
            None
        };
        let state = match task.0.take() {
            None => READY,
            Some(profile) => {
                let state = if profile.has_open() { OPEN } else { HELD };
                put_current(profile);
                state
            }
        };
        set_state(state);
        Installed {
            prev_state,
            prev,
            active: true,
        }
    }

    /// Takes the profile off this thread, back into `task`, and restores
    /// what was displaced. Out of line, like [`Installed::new`].
    #[inline(never)]
    pub(crate) fn finish(mut self, task: &mut TaskProfile) {
        if !self.active {
            return;
        }
        self.active = false;
        if state() >= HELD {
            task.0 = take_current();
        }
        self.restore();
    }

    fn restore(&mut self) {
        if let Some(prev) = self.prev.take() {
            put_current(prev);
        }
        set_state(self.prev_state);
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        if self.active {
            self.active = false;
            if state() >= HELD {
                drop(take_current());
            }
            self.restore();
        }
    }
}

/// Enters scope `name` in the thread's current profile (making it on the
/// first scope of a region).
#[inline(never)]
pub(crate) fn enter(name: Name) -> Option<Token> {
    if state() == READY {
        create();
    }
    let token = with_current(|p| p.enter(name))?;
    set_state(OPEN);
    Some(token)
}

/// Leaves the scope of `token`, if it belongs to the thread's current
/// profile.
#[inline(never)]
pub(crate) fn exit(token: Token) {
    if state() < HELD {
        return;
    }
    let _ = with_current(|p| {
        if p.owns(&token) {
            p.exit(token);
            if !p.has_open() {
                set_state(HELD);
            }
        }
    });
}

/// The end of a measured segment: stops the task's virtual clock when it
/// has scopes open.
///
/// Out of line, as [`resume`]'s restart is: what the open scopes are
/// charged of the two (this one up to its timer read, the tail of
/// `resume_open` after it) is then the same code in every caller, so the
/// calibration's `resume` cost (`calibrate.rs`, which calls these two) is
/// what the per-poll engine pays. Inlined, each caller compiled its own
/// copy (a poll function of the service's crate included), and a held
/// scope kept the difference on every poll.
#[inline(never)]
pub(crate) fn suspend() {
    if state() == OPEN {
        suspend_open();
    }
}

/// [`suspend`] with scopes open. A function of its own, so that `suspend`
/// and `resume` without scopes open return at once, without a frame.
#[inline(never)]
fn suspend_open() {
    let _ = with_current(Profile::suspend);
}

/// The start of a measured segment: restarts the task's virtual clock when
/// it has scopes open. The check is inlined (it comes before the clock
/// restarts, so no scope is charged for it); the restart is out of line,
/// like [`suspend`].
#[inline(always)]
pub(crate) fn resume() {
    if state() == OPEN {
        resume_open();
    }
}

/// [`resume`] with scopes open (see [`suspend_open`]).
#[inline(never)]
fn resume_open() {
    let _ = with_current(Profile::resume);
}

#[cold]
fn create() {
    let cfg = config::get();
    let (timer, fallback) = cfg.timer().resolve();
    let calibration = calibrate::calibration(timer);
    let profile = Profile::new(
        next_id(),
        cfg.timer(),
        timer,
        fallback,
        calibration,
        cfg.max_depth() as usize,
        cfg.max_nodes() as usize,
    );
    stats::created();
    put_current(Box::new(profile));
    set_state(HELD);
}

static PREPARED: AtomicBool = AtomicBool::new(false);

/// A check a layer above registers, run at the first sampled region set up
/// with profiling on (when the process's setup is done): the `tracing`
/// layer's check that spans can reach it.
static FIRST_PROFILE_CHECK: OnceLock<fn()> = OnceLock::new();

/// Registers the check run at the first profiled region (the first one
/// registered wins).
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) fn on_first_profile(check: fn()) {
    let _ = FIRST_PROFILE_CHECK.set(check);
}

/// Called where a sampled region or task is set up, outside what it
/// measures: calibrates the timer the first time, so that the calibration
/// does not fall inside a measured region.
#[inline]
pub(crate) fn prepare() {
    if !PREPARED.load(Ordering::Relaxed) {
        prepare_slow();
    }
}

#[cold]
fn prepare_slow() {
    let cfg = config::get();
    if !cfg.is_enabled() {
        return;
    }
    let (timer, _) = cfg.timer().resolve();
    if !calibrate::is_calibrated(timer) {
        calibrate::calibration(timer);
    }
    if let Some(check) = FIRST_PROFILE_CHECK.get() {
        check();
    }
    // Later regions read the flag only: a thread with another read path,
    // or a timer configured later, is calibrated at its first profile.
    PREPARED.store(true, Ordering::Relaxed);
}

/// Runs `f` with `profile` as the thread's current profile (calibration),
/// then restores what was there.
pub(crate) fn with_private(profile: Profile, f: impl FnOnce()) {
    let prev_state = state();
    let prev = take_current();
    put_current(Box::new(profile));
    set_state(HELD);
    f();
    drop(take_current());
    if let Some(prev) = prev {
        put_current(prev);
    }
    set_state(prev_state);
}

/// The inclusive amount of the current profile's top-level scope `name`.
pub(crate) fn top_inclusive(name: &str) -> i64 {
    with_current(|p| p.top_inclusive(name))
        .flatten()
        .unwrap_or(0)
}

/// A fresh profile id: a per-process random base (derived again after a
/// fork, so that parent and child do not share ids) plus a counter, mixed.
fn next_id() -> u64 {
    static BASE: AtomicU64 = AtomicU64::new(0);
    static GENERATION: AtomicU64 = AtomicU64::new(u64::MAX);
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let generation = sys::fork_generation();
    if GENERATION.load(Ordering::Relaxed) != generation {
        let seed = sys::realtime_ns()
            ^ (u64::from(std::process::id()) << 32)
            ^ (&generation as *const u64 as u64);
        BASE.store(splitmix(seed), Ordering::Relaxed);
        GENERATION.store(generation, Ordering::Relaxed);
    }
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    splitmix(BASE.load(Ordering::Relaxed).wrapping_add(n))
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The region's total in `timer`'s unit, from its record.
fn region_total(timer: super::Timer, region: &Record) -> Option<i64> {
    use super::Timer;
    match timer {
        Timer::Instructions => region.instructions.map(|v| v as i64),
        Timer::Cycles => region.cycles.map(|v| v as i64),
        Timer::CpuTime => region.cpu_ns.map(|v| v as i64),
        Timer::WallTime => Some(region.wall_ns as i64),
        Timer::Rss => Some(region.rss_end? as i64 - region.rss_start? as i64),
    }
}

/// The `profile` record of a task or region that entered scopes, from its
/// finished `region` record (which gets the shared id); `None` when no
/// scope was entered.
pub(crate) fn attach(task: &mut TaskProfile, region: &mut Record) -> Option<Record> {
    let mut profile = task.0.take()?;
    if !profile.entered() {
        return None;
    }
    profile.close_all();
    let overhead = profile.overhead();
    let measured = region_total(profile.timer, region);
    let total = measured.unwrap_or_else(|| {
        // Not in the region's record: the tree still sums, from the
        // scopes and the overhead alone.
        profile
            .nodes("", 0)
            .iter()
            .skip(1)
            .filter(|n| n.parent == Some(0))
            .map(|n| n.inclusive)
            .sum::<i64>()
            + overhead
    });
    let counts = profile.counts;
    stats::finished(&counts);

    let mut detail = Detail {
        timer: Some(profile.timer.name().to_string()),
        ..Detail::default()
    };
    if profile.timer != profile.requested {
        detail.timer_requested = Some(profile.requested.name().to_string());
        detail.timer_fallback = profile.fallback.take();
    }
    detail.total = measured;
    detail.overhead = Some(overhead);
    detail.nodes = profile.nodes(&region.name, total);
    let s = &mut detail.stats;
    s.insert("scopes".into(), counts.pairs);
    let c = profile.calibration();
    s.insert("pair_cost".into(), c.pair.max(0) as u64);
    s.insert("resume_cost".into(), c.resume.max(0) as u64);
    s.insert("create_cost".into(), c.create.max(0) as u64);
    s.insert("nodes_made".into(), counts.created);
    for (key, value) in [
        ("resumes", counts.resumes),
        ("overflow_depth", counts.overflow_depth),
        ("overflow_nodes", counts.overflow_nodes),
        ("overflow_nested", counts.nested),
        ("unclosed", counts.unclosed),
        ("stray_exits", counts.stray_exits),
        ("failed_reads", counts.failed_reads),
    ] {
        if value > 0 {
            s.insert(key.into(), value);
        }
    }

    region.id = Some(profile.id);
    let mut record = Record::new(RecordKind::Profile, &region.name);
    record.ts = region.ts;
    record.method.clone_from(&region.method);
    record.status = region.status;
    record.labels = region.labels.clone();
    record.weight = region.weight;
    record.forced = region.forced;
    record.cancelled = region.cancelled;
    record.error.clone_from(&region.error);
    record.source = region.source;
    record.scaled = region.scaled;
    record.id = region.id;
    record.trace_id = region.trace_id;
    record.span_id = region.span_id;
    record.detail = Some(Box::new(detail));
    Some(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_differ() {
        let ids: std::collections::HashSet<u64> = (0..1000).map(|_| next_id()).collect();
        assert_eq!(ids.len(), 1000);
    }

    #[test]
    fn scopes_outside_a_region_leave_the_state_off() {
        assert_eq!(state(), OFF);
        let s = super::super::scope("nothing");
        assert!(!s.is_active());
        assert_eq!(state(), OFF);
    }

    #[test]
    fn install_gives_the_profile_back_and_restores_the_outer_one() {
        let mut outer = TaskProfile::default();
        let mut inner = TaskProfile::default();
        let o = Installed::new(&mut outer);
        let a = super::super::scope("a");
        assert_eq!(state(), OPEN);
        let i = Installed::new(&mut inner);
        assert_eq!(state(), READY);
        drop(super::super::scope("b"));
        i.finish(&mut inner);
        assert_eq!(state(), OPEN);
        drop(a);
        o.finish(&mut outer);
        assert_eq!(state(), OFF);
        let mut r = Record::new(RecordKind::Region, "outer");
        let p = attach(&mut outer, &mut r).expect("outer entered a scope");
        let names: Vec<_> = p
            .detail
            .as_ref()
            .unwrap()
            .nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect();
        assert_eq!(names, ["outer", "a"]);
        assert_eq!(r.id, p.id);
        let mut r = Record::new(RecordKind::Region, "inner");
        let p = attach(&mut inner, &mut r).unwrap();
        assert_eq!(p.detail.unwrap().nodes[1].name, "b");
    }

    #[test]
    fn a_panic_inside_a_segment_restores_the_thread() {
        let mut task = TaskProfile::default();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _installed = Installed::new(&mut task);
            let _s = super::super::scope("a");
            panic!("boom");
        }));
        assert!(caught.is_err());
        assert_eq!(state(), OFF);
    }
}
