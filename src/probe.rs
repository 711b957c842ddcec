//! What this machine can measure, why not, and at what cost.
//!
//! [`probe()`] opens the counters on the calling thread and returns a
//! [`Probe`]: for each counter whether it works, the reason when it does
//! not (the errno and a sentence a person can act on, e.g. "no hardware
//! PMU" or "perf_event_paranoid is 3"), how it is read (`rdpmc`, `read` or
//! `software`) and what one read costs here. [`self_check()`] runs
//! [`known_loop`], whose instruction count is known, and compares it with
//! what the counters say: the one-command check that the hardware path
//! counts exactly on a machine with a PMU (`cargo run --example probe`).
//!
//! ```
//! let probe = dynostats::probe();
//! // On a machine without a PMU, instructions are absent, with the reason.
//! for counter in &probe.counters {
//!     println!("{:?}: {}", counter.counter, counter.available());
//! }
//! println!("{probe}");
//! ```

use std::fmt;

use crate::counters::{Counter, CounterSet, Counters, Delta, ReadPath};
use crate::counters::{Unavailable, paranoid_level};
use crate::sys;

/// One counter's availability on this machine and thread.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CounterProbe {
    /// The counter.
    pub counter: Counter,
    /// Why it cannot be read, or `None` when it can.
    pub unavailable: Option<Unavailable>,
    /// How it is read when opened alone.
    pub source: ReadPath,
    /// Median nanoseconds of one snapshot of a set holding only this counter
    /// (and wall time), or `None` when unavailable.
    pub read_cost_ns: Option<u64>,
}

impl CounterProbe {
    /// Whether the counter can be read.
    pub fn available(&self) -> bool {
        self.unavailable.is_none()
    }
}

/// The result of [`probe`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Probe {
    /// Every counter, in [`Counter::ALL`] order.
    pub counters: Vec<CounterProbe>,
    /// The set threads open by default ([`crate::counters::thread_counter_set`]).
    pub default_set: CounterSet,
    /// How that set is read.
    pub default_source: ReadPath,
    /// Median nanoseconds of one snapshot of the default set.
    pub default_read_cost_ns: u64,
    /// `/proc/sys/kernel/perf_event_paranoid`, if readable.
    pub perf_event_paranoid: Option<i32>,
}

impl Probe {
    /// The entry for `counter`.
    pub fn counter(&self, counter: Counter) -> Option<&CounterProbe> {
        self.counters.iter().find(|c| c.counter == counter)
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

/// Opens every counter on the calling thread, one at a time, and reports
/// which ones work, why the others do not, how they are read and what one
/// read costs.
///
/// ```
/// let probe = dynostats::probe();
/// let wall = probe.counter(dynostats::counters::Counter::WallTime).unwrap();
/// assert!(wall.available());
/// println!("{probe}");
/// ```
pub fn probe() -> Probe {
    let counters = Counter::ALL
        .iter()
        .map(|&counter| {
            let mut opened = Counters::open(CounterSet::wall_only().with(counter));
            let unavailable = opened
                .unavailable()
                .iter()
                .find(|u| u.counter == counter)
                .cloned();
            let read_cost_ns = unavailable.is_none().then(|| median_read_cost(&mut opened));
            CounterProbe {
                counter,
                unavailable,
                source: opened.source(),
                read_cost_ns,
            }
        })
        .collect();
    let default_set = crate::counters::thread_counter_set();
    let mut opened = Counters::open(default_set);
    Probe {
        counters,
        default_set,
        default_source: opened.source(),
        default_read_cost_ns: median_read_cost(&mut opened),
        perf_event_paranoid: paranoid_level(),
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<17} {:<10} {:<9} {:>9}  reason",
            "counter", "available", "path", "read ns"
        )?;
        for c in &self.counters {
            let cost = c
                .read_cost_ns
                .map_or_else(|| "-".to_string(), |n| n.to_string());
            let (avail, reason) = match &c.unavailable {
                None => ("yes", String::new()),
                Some(u) => ("no", u.explanation()),
            };
            let path = if c.available() {
                c.source.as_str()
            } else {
                "-"
            };
            writeln!(
                f,
                "{:<17} {:<10} {:<9} {:>9}  {}",
                c.counter.name(),
                avail,
                path,
                cost,
                reason
            )?;
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
