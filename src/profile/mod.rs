//! A sampled scope profiler: which part of a sampled region or request
//! costs what, inclusive and exclusive, in instructions by default.
//!
//! Mark code with [`scope`] (a guard) or [`scope_fn`]; with feature
//! `tracing`, [`tracing::DynostatsLayer`](crate::tracing::DynostatsLayer)
//! makes every `tracing` span a scope. Scopes are measured only inside a
//! sampled region ([`measure`](crate::measure), [`Region`](crate::Region)),
//! a sampled measured future ([`Measure`](crate::Measure)) or a sampled
//! request of [`MeasureLayer`](crate::tower::MeasureLayer): there, entering
//! and leaving a scope reads the chosen [`Timer`] and keeps a stack of open
//! scopes; when the region ends, one record of kind `profile` holds its call
//! tree. Everywhere else (the region not sampled, or no region at all) a
//! scope costs one thread-local check: no read, no allocation.
//!
//! ```
//! use dynostats::profile::CallTree;
//! use dynostats::sink::MemorySink;
//! use dynostats::{Pipeline, Region, RecordKind};
//!
//! let mem = MemorySink::new();
//! let pipeline = Pipeline::builder().sink(mem.clone()).build().unwrap();
//! let _scope = pipeline.scoped();
//!
//! fn parse(s: &str) -> Vec<u32> {
//!     let _s = dynostats::scope("parse");
//!     s.split(' ').map(|x| x.parse().unwrap()).collect()
//! }
//!
//! Region::forced("request").run(|| {
//!     let numbers = parse("1 2 3");
//!     dynostats::scope_fn("sum", || numbers.iter().sum::<u32>())
//! });
//! pipeline.flush().unwrap();
//!
//! let region = &mem.records_of(RecordKind::Region)[0];
//! let profile = &mem.records_of(RecordKind::Profile)[0];
//! assert_eq!(region.id, profile.id); // the shared id links the two
//! let tree = CallTree::from_record(profile).unwrap();
//! assert_eq!(tree.path(1), ["request", "parse"]);
//! assert_eq!(tree.find(&["sum"]).unwrap().calls, 1);
//! // Exclusive amounts and the profiler's own add up to the region's total.
//! let sum: i64 = tree.nodes().iter().map(|n| n.exclusive).sum();
//! assert_eq!(sum + tree.overhead(), tree.root().inclusive);
//! ```
//!
//! # Tasks, not threads
//!
//! Scopes inside a measured future or request belong to the task: the
//! per-poll engine that sums a task's counters over its polls installs the
//! task's profile as the thread's current one around each poll (and around
//! a service's `call`, and each poll of a response body) and takes it off
//! after. A scope held across `.await` is charged only for the polls of its
//! own task, on whichever thread they ran; what other tasks run while it
//! waits is not charged to it. Each task keeps a virtual clock that runs
//! only during its polls: at the end of a poll with scopes open the timer
//! is read once and the clock stops, at the start of the next one it is
//! read again and the clock goes on. A scope guard is therefore `Send`: it
//! holds only an id, and its exit finds the task's profile on whichever
//! thread polls the task. An exit that finds no such profile (the guard
//! was moved out of its task) is ignored and counted.
//!
//! # The tree
//!
//! One node per full path of scopes (so both caller/callee edges and folded
//! stacks derive from it exactly: [`CallTree`]), with its exact call count
//! and its inclusive and exclusive amounts. The root is the region or
//! request itself; its inclusive amount is the region's total of the timer
//! (the `instructions` of its record, for instance) and its exclusive
//! amount what the region spent outside every scope. A scope entered again
//! while it is open (recursion) makes a child node marked `recursive`; a
//! per-name inclusive total counts such nodes once, inside their outermost
//! call ([`CallTree::by_name`]).
//!
//! Bounded: at most [`ProfileConfigBuilder::max_depth`] open scopes are
//! kept as paths (default 64) and at most
//! [`ProfileConfigBuilder::max_nodes`] nodes are made (default 256). A scope beyond either goes to one node named
//! [`OVERFLOW`], a child of the root, and everything entered inside it is
//! counted there too (calls exact, timed as one); the record counts them
//! (`detail.stats.overflow_depth`, `overflow_nodes`, `overflow_nested`).
//! The amounts of the ancestors stay right: an overflowed scope is still
//! taken off its real parent's exclusive amount.
//!
//! # The profiler's own cost
//!
//! Entering does its bookkeeping first and reads the timer last; leaving
//! reads it first. What remains is a fixed cost per enter/exit pair,
//! measured once per process, timer and read path (user-space or
//! `read(2)` for the hardware counters; the median of 21 runs through the
//! same code, before the first sampled region where possible): `base`, what
//! an empty scope measures, is taken off every scope; `pair`, what an empty
//! scope costs the scope around it, is taken off every enclosing scope for
//! each pair inside it; `resume`, what the end and the start of a poll add
//! to the scopes open across it, per poll; `create`, what making a node (a
//! path's first call) adds to the scope it is made in. The record reports
//! the sum as the profiler's own amount (`detail.overhead`), so that the
//! exclusive amounts of all nodes, root included, plus the overhead equal
//! the region's total exactly. How exact the split is: with instructions,
//! what varies is the bookkeeping (finding a child among more siblings than
//! in the calibration, the ancestor walk of a new node, a vector growing),
//! a few instructions per call, charged to the parent; `tests/pmu.rs`
//! shows and bounds it in the emulated-PMU guest. With clocks, the
//! calibration is a median and each read has its own noise.
//!
//! The first scope of a region makes its profile: one allocation (charged
//! to the root), and the choice of timer on that thread.
//!
//! # Timers
//!
//! [`Timer::Instructions`] by default; also cycles, thread CPU time, wall
//! time, or RSS (which scopes grow the resident set). Where the chosen one
//! cannot be read (no PMU, or RSS not in the counter set), the profile
//! uses thread CPU time and says so (`detail.timer`, `timer_requested`,
//! `timer_fallback` with the reason); a fallback figure is never written
//! under the requested name. Amounts are raw counts: under PMU multiplexing
//! the scopes' shares are right only as far as the group stayed on the PMU
//! (the region record says `scaled`).
//!
//! # Cost
//!
//! Outside a sampled region: one thread-local byte compared, in
//! [`scope`] and in its guard's drop (see `benches/profiler.rs` and the
//! `scope_unsampled` row of `BENCHMARKS.md`). Inside: two timer reads and
//! a little bookkeeping per enter/exit pair (`scope_sampled_*` rows); per
//! sampled poll of a future or request, installing the task's profile is a
//! few loads and stores, plus two timer reads when the task has scopes open
//! across the poll boundary.

mod calibrate;
mod config;
pub(crate) mod current;
mod stats;
mod timer;
mod tree;
pub(crate) mod view;

pub use config::{ProfileConfig, ProfileConfigBuilder};
pub use stats::ProfilerStats;
pub use timer::Timer;
pub use tree::OVERFLOW;
pub use view::{CallTree, Edge, NameTotals, folded_frame};

pub(crate) use current::{Installed, TaskProfile, attach, prepare, resume, suspend};
pub(crate) use tree::{Name, Token};

/// A profiler scope: measured from [`scope`] until dropped, when inside a
/// sampled region; otherwise nothing inside (`None`) and its drop is one
/// branch.
///
/// `Send`, unlike a region guard: a scope held across `.await` moves with
/// its task (see the module docs).
#[must_use = "the scope ends when the guard is dropped; `let _ = ` drops it at once"]
#[derive(Debug)]
pub struct Scope {
    token: Option<Token>,
}

impl Scope {
    /// Whether this scope is being measured.
    pub fn is_active(&self) -> bool {
        self.token.is_some()
    }
}

impl Drop for Scope {
    #[inline]
    fn drop(&mut self) {
        if let Some(token) = self.token.take() {
            current::exit(token);
        }
    }
}

/// Enters the profiler scope `name` until the returned guard is dropped.
///
/// Measured only inside a sampled region, measured future or request (see
/// the [module docs](self)); elsewhere one thread-local check.
///
/// ```
/// fn handler() -> u64 {
///     let _scope = dynostats::scope("handler");
///     (0..100u64).sum()
/// }
/// assert_eq!(handler(), 4950);
/// ```
#[inline]
pub fn scope(name: &'static str) -> Scope {
    if current::state() == current::OFF {
        return Scope { token: None };
    }
    Scope {
        token: current::enter(Name::Borrowed(name)),
    }
}

/// Runs `f` in the profiler scope `name` (see [`scope`]) and returns its
/// result.
///
/// ```
/// assert_eq!(dynostats::scope_fn("square", || 7 * 7), 49);
/// ```
#[inline]
pub fn scope_fn<R>(name: &'static str, f: impl FnOnce() -> R) -> R {
    let _scope = scope(name);
    f()
}

/// Enters a scope with a name made at run time (the `tracing` layer's
/// span field names).
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
#[inline]
pub(crate) fn enter_named(name: Name) -> Option<Token> {
    if current::state() == current::OFF {
        return None;
    }
    current::enter(name)
}

/// Leaves a scope entered with [`enter_named`].
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
#[inline]
pub(crate) fn exit_token(token: Token) {
    current::exit(token);
}

/// Registers a check to run once, when the first sampled region is set up
/// with profiling on (the `tracing` layer's: are spans filtered out?).
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) fn on_first_profile(check: fn()) {
    current::on_first_profile(check);
}

/// Whether scopes entered on this thread now would be measured (a sampled
/// region, future or request is running here with profiling on): the one
/// check every scope makes.
#[inline]
pub fn is_profiling() -> bool {
    current::state() != current::OFF
}

/// Sets the profiler's settings (timer, caps, on or off); regions sampled
/// from now on use them.
///
/// ```
/// use dynostats::profile::{self, ProfileConfig, Timer};
/// profile::configure(ProfileConfig::builder().timer(Timer::CpuTime).build());
/// assert_eq!(profile::config().timer(), Timer::CpuTime);
/// profile::configure(ProfileConfig::default());
/// ```
pub fn configure(config: ProfileConfig) {
    config::set(config);
}

/// The profiler's settings in force.
pub fn config() -> ProfileConfig {
    config::get()
}

/// The profiler's own counters in this process.
pub fn stats() -> ProfilerStats {
    stats::get()
}

/// The profiler's calibrated costs for `timer` as this thread reads it
/// (once per process, timer and read path; measured on this thread the
/// first time they are asked for; see the module docs). For benchmarks and
/// tests.
pub fn calibration(timer: Timer) -> Calibration {
    let c = calibrate::calibration(timer);
    Calibration {
        base: c.base,
        pair: c.pair,
        resume: c.resume,
        create: c.create,
    }
}

/// The profiler's fixed costs in one timer's unit, as calibrated
/// ([`calibration`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Calibration {
    /// What an empty scope measures (the read fragments inside it): taken
    /// off every scope.
    pub base: i64,
    /// What an empty scope costs the scope around it: taken off the
    /// enclosing scopes for each pair inside them.
    pub pair: i64,
    /// What the end and start of a poll add to the scopes open across it.
    pub resume: i64,
    /// What making a node (a path's first call) adds to the scope it is
    /// made in.
    pub create: i64,
}
