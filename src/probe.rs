//! What this machine can measure, why not, and at what cost.
//!
//! [`probe()`] opens the counters the way a thread opens them and returns
//! a [`Probe`]: for each counter whether it works, where its values come
//! from ([`CounterSource`]: `rdpmc`, `read`, `software_event`, `clock`,
//! `statm`, `getrusage`), the reason when it does not work (the errno and
//! a sentence a person can act on, e.g. "no hardware PMU" or
//! "perf_event_paranoid is 3") and what one read costs here. The answer is
//! [`Counters::sources`], the one status records carry (`detail.counters`,
//! `detail.sources`): a counter the probe calls available is in every
//! record, one it calls unavailable in none. [`Probe::thread`] answers for
//! the calling thread's own counters, as its snapshots read them now.
//! [`self_check()`] runs [`known_loop`], whose instruction count is known,
//! and compares it with what the counters say: the one-command check that
//! the hardware path counts exactly on a machine with a PMU
//! (`cargo run --example probe`).
//!
//! ```
//! let probe = dynostats::probe();
//! // On a machine without a PMU, instructions are absent, with the reason.
//! for counter in &probe.counters {
//!     println!("{}: {:?}", counter.counter(), counter.source());
//! }
//! println!("{probe}");
//! ```

use std::fmt;

use crate::counters::{
    Counter, CounterSet, CounterSource, CounterState, Counters, Delta, ReadPath, Sources,
};
use crate::counters::{Unavailable, paranoid_level, with_thread_counters, write_header, write_row};
use crate::sys;

/// One counter's availability and source on this machine, as a thread gets
/// them.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CounterProbe {
    /// The counter, where its values come from, or why it is absent.
    pub state: CounterState,
    /// Whether the counter is in the set threads open
    /// ([`crate::counters::thread_counters`]). Its state is then the one
    /// that set gives a thread (a source can depend on the other counters of
    /// the set: hardware counters are read from user space only beside
    /// clocks and RSS); otherwise the state it has opened alone.
    pub in_thread_set: bool,
    /// Median nanoseconds of one snapshot of a set holding only this counter
    /// (and wall time), or `None` when unavailable.
    pub read_cost_ns: Option<u64>,
}

impl CounterProbe {
    /// The counter.
    pub fn counter(&self) -> Counter {
        self.state.counter
    }

    /// Whether the counter can be read.
    pub fn available(&self) -> bool {
        self.state.available()
    }

    /// Where its values come from, or `None` when it is unavailable.
    pub fn source(&self) -> Option<CounterSource> {
        self.state.source.as_ref().ok().copied()
    }

    /// Why it cannot be read, or `None` when it can.
    pub fn unavailable(&self) -> Option<&Unavailable> {
        self.state.unavailable()
    }
}

/// The result of [`probe`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Probe {
    /// Every counter, in [`Counter::ALL`] order.
    pub counters: Vec<CounterProbe>,
    /// The set threads open by default ([`crate::counters::thread_counters`]).
    pub default_set: CounterSet,
    /// How that set is read, freshly opened.
    pub default_source: ReadPath,
    /// Median nanoseconds of one snapshot of the default set.
    pub default_read_cost_ns: u64,
    /// `/proc/sys/kernel/perf_event_paranoid`, if readable.
    pub perf_event_paranoid: Option<i32>,
}

impl Probe {
    /// The entry for `counter`.
    pub fn counter(&self, counter: Counter) -> Option<&CounterProbe> {
        self.counters.iter().find(|c| c.counter() == counter)
    }

    /// The calling thread's own counters (those behind
    /// [`crate::snapshot`], opened if they were not yet): per counter its
    /// source or why it is absent, and the read path, as its snapshots read
    /// them now. Unlike [`probe()`], which opens a fresh set, this is the
    /// thread's live state: a thread whose counters were opened before a
    /// change (arm64's `perf_user_access`, a PMU now busy) reads as it
    /// opened them, not as a new thread would. `None` while the thread is
    /// being torn down.
    ///
    /// ```
    /// use dynostats::{counters::Counter, counters::CounterSource, probe::Probe};
    ///
    /// let thread = Probe::thread().unwrap();
    /// assert_eq!(thread.source(Counter::WallTime), Some(CounterSource::Clock));
    /// println!("{thread}");
    /// ```
    pub fn thread() -> Option<Sources> {
        with_thread_counters(|counters| counters.sources())
    }
}

const COST_SAMPLES: usize = 201;

/// Median wall nanoseconds of one `Counters::snapshot`.
fn median_read_cost(counters: &mut Counters) -> u64 {
    let mut costs: Vec<u64> = (0..COST_SAMPLES)
        .map(|_| {
            let t0 = sys::monotonic_ns();
            std::hint::black_box(counters.snapshot());
            sys::monotonic_ns() - t0
        })
        .collect();
    costs.sort_unstable();
    costs[costs.len() / 2]
}

/// Opens the counters on the calling thread as a thread opens them (the
/// thread counter set), and each counter alone, and reports which ones
/// work, where their values come from, why the others do not and what one
/// read costs.
///
/// ```
/// use dynostats::counters::{Counter, CounterSource};
///
/// let probe = dynostats::probe();
/// let wall = probe.counter(Counter::WallTime).unwrap();
/// assert_eq!(wall.source(), Some(CounterSource::Clock));
/// println!("{probe}");
/// ```
pub fn probe() -> Probe {
    let default_set = crate::counters::thread_counters();
    let mut opened = Counters::open(default_set);
    let thread = opened.sources();
    let counters = Counter::ALL
        .iter()
        .map(|&counter| {
            let mut alone = Counters::open(CounterSet::wall_only().with(counter));
            let in_thread_set = default_set.contains(counter);
            let state = match thread.get(counter) {
                Some(state) => state.clone(),
                None => alone
                    .sources()
                    .get(counter)
                    .cloned()
                    .expect("the set opened holds the counter"),
            };
            let read_cost_ns = state.available().then(|| median_read_cost(&mut alone));
            CounterProbe {
                state,
                in_thread_set,
                read_cost_ns,
            }
        })
        .collect();
    Probe {
        counters,
        default_set,
        default_source: thread.path,
        default_read_cost_ns: median_read_cost(&mut opened),
        perf_event_paranoid: paranoid_level(),
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_header(f, true)?;
        for c in &self.counters {
            let note = if c.in_thread_set {
                ""
            } else {
                "(not in the thread counter set: opened alone)"
            };
            write_row(f, &c.state, Some(c.read_cost_ns), note)?;
        }
        writeln!(
            f,
            "default set {:?}: read path {}, {} ns per snapshot (median)",
            self.default_set, self.default_source, self.default_read_cost_ns
        )?;
        match self.perf_event_paranoid {
            Some(p) => write!(f, "perf_event_paranoid = {p}"),
            None => write!(f, "perf_event_paranoid: unreadable"),
        }
    }
}

/// Instructions per iteration of [`known_loop`], or `None` on architectures
/// where the loop is not written in assembly.
pub const KNOWN_LOOP_INSTRUCTIONS_PER_ITERATION: Option<u64> = sys::KNOWN_LOOP_INSTRUCTIONS;

/// Runs a loop of exactly
/// `iterations * KNOWN_LOOP_INSTRUCTIONS_PER_ITERATION` user-space
/// instructions plus a constant that does not depend on `iterations`
/// (inline assembly on x86_64 and aarch64).
///
/// `delta(known_loop(n)) - delta(known_loop(0))` is therefore exactly
/// `n * KNOWN_LOOP_INSTRUCTIONS_PER_ITERATION` on a PMU that counts exactly.
#[inline(never)]
pub fn known_loop(iterations: u64) {
    sys::known_loop(iterations)
}

/// The outcome of [`self_check`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SelfCheck {
    /// The counter counted the known loop.
    Ran {
        /// Instructions the loop executes.
        expected: u64,
        /// Instructions the counter measured (empty region subtracted).
        measured: u64,
        /// How the counter was read.
        source: ReadPath,
    },
    /// The check could not run; the sentence says why.
    Skipped(String),
}

impl SelfCheck {
    /// True when the check ran and measured exactly the expected count.
    pub fn is_exact(&self) -> bool {
        matches!(self, SelfCheck::Ran { expected, measured, .. } if expected == measured)
    }

    /// True when the check ran and measured within 0.01% of the expected
    /// count (a real machine may add an instruction or two of noise).
    pub fn passed(&self) -> bool {
        match self {
            SelfCheck::Ran {
                expected, measured, ..
            } => expected.abs_diff(*measured) <= expected / 10_000,
            SelfCheck::Skipped(_) => false,
        }
    }
}

impl fmt::Display for SelfCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SelfCheck::Ran {
                expected,
                measured,
                source,
            } => {
                let verdict = if self.is_exact() {
                    "exact"
                } else if self.passed() {
                    "passed (within 0.01%)"
                } else {
                    "FAILED"
                };
                write!(
                    f,
                    "self-check: expected {expected} instructions, measured {measured} \
                     (diff {:+}, read path {source}): {verdict}",
                    *measured as i128 - *expected as i128
                )
            }
            SelfCheck::Skipped(why) => write!(f, "self-check skipped: {why}"),
        }
    }
}

/// Counts [`known_loop`] of `iterations` with the instructions counter and
/// compares with the known count. The fixed cost of reading the counters is
/// removed by subtracting an empty run; the smallest of five runs of each is
/// used, so an interrupt cannot inflate the result.
pub fn self_check(iterations: u64) -> SelfCheck {
    let Some(per_iter) = KNOWN_LOOP_INSTRUCTIONS_PER_ITERATION else {
        return SelfCheck::Skipped(
            "no known instruction loop for this architecture (only x86_64 and aarch64)".into(),
        );
    };
    let mut counters = Counters::open(CounterSet::wall_only().with(Counter::Instructions));
    if let Some(u) = counters.unavailable().first() {
        return SelfCheck::Skipped(u.to_string());
    }
    let mut run = |n: u64| -> Option<u64> {
        (0..5)
            .map(|_| {
                let a = counters.snapshot();
                known_loop(n);
                let b = counters.snapshot();
                Delta::between(&a, &b).instructions
            })
            .collect::<Option<Vec<u64>>>()?
            .into_iter()
            .min()
    };
    let (Some(empty), Some(full)) = (run(0), run(iterations)) else {
        return SelfCheck::Skipped(
            "the instructions counter opened but could not be read (never scheduled)".into(),
        );
    };
    SelfCheck::Ran {
        expected: iterations * per_iter,
        measured: full.saturating_sub(empty),
        source: counters.source(),
    }
}
