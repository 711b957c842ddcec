//! The instruction meter and the gate of the guest's cost suites
//! (tests/pmu_cost.rs, tests/pmu_router.rs): figures measured here are
//! compared with the rows checked in to BENCHMARKS.md.

#![allow(dead_code)]

use super::pmu_support::{exact_guest, report};
use perf_event::events::Hardware;
use std::hint::black_box;

pub const REPS: u64 = 1000;
const TRIALS: usize = 3;
/// How much a figure may grow over the one checked in.
const TOLERANCE_PERCENT: u64 = 10;

pub struct Meter {
    pub counter: perf_event::Counter,
}

impl Meter {
    /// A meter of user-space instructions.
    pub fn open() -> Meter {
        Meter::with_kernel(false)
    }

    /// A meter that also counts the kernel's instructions (for the
    /// informational figures only: interrupts make them vary).
    pub fn with_kernel(kernel: bool) -> Meter {
        let counter = perf_event::Builder::new(Hardware::INSTRUCTIONS)
            .observe_self()
            .any_cpu()
            .exclude_kernel(!kernel)
            .exclude_hv(true)
            .enabled(true)
            .build()
            .expect("instructions counter for the meter");
        Meter { counter }
    }

    /// Instructions of one `op` alone, the smallest of many single runs
    /// (one interrupt would inflate a run of many).
    pub fn single(&mut self, mut op: impl FnMut()) -> u64 {
        let mut once = |op: &mut dyn FnMut()| -> u64 {
            (0..200)
                .map(|_| {
                    let before = self.counter.read().expect("meter read");
                    op();
                    let after = self.counter.read().expect("meter read");
                    after - before
                })
                .min()
                .unwrap()
        };
        let nothing = once(&mut || black_box(()));
        once(&mut op).saturating_sub(nothing)
    }

    pub fn around(&mut self, mut op: impl FnMut()) -> u64 {
        let before = self.counter.read().expect("meter read");
        for _ in 0..REPS {
            op();
        }
        let after = self.counter.read().expect("meter read");
        after - before
    }

    /// User-space instructions of one `op`, rounded to the nearest.
    pub fn cost(&mut self, mut op: impl FnMut()) -> u64 {
        let nothing = (0..TRIALS)
            .map(|_| self.around(|| black_box(())))
            .min()
            .unwrap();
        let full = (0..TRIALS).map(|_| self.around(&mut op)).min().unwrap();
        (full.saturating_sub(nothing) + REPS / 2) / REPS
    }
}

/// One measured figure: its key in BENCHMARKS.md and its value.
pub type Figure = (&'static str, u64);

/// The `| `key` | operation | instructions |` rows of BENCHMARKS.md.
fn checked_in() -> Vec<(String, u64)> {
    include_str!("../../BENCHMARKS.md")
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.trim().trim_matches('|').split('|').collect();
            let key = cells.first()?.trim().strip_prefix('`')?.strip_suffix('`')?;
            let figure = cells.last()?.trim().parse().ok()?;
            Some((key.to_string(), figure))
        })
        .collect()
}

/// Prints `measured` beside BENCHMARKS.md and, in the exact guest, fails
/// on a figure more than `TOLERANCE_PERCENT` over its row, on a figure
/// without a row, and on a row of this suite (`owns`) that was not
/// measured.
pub fn gate(measured: &[Figure], owns: impl Fn(&str) -> bool) {
    let table = checked_in();
    report("measured (user-space instructions per operation):");
    for (key, value) in measured {
        let was = table.iter().find(|(k, _)| k == key).map(|(_, v)| *v);
        report(&format!(
            "  {key:<30} {value:>6}   (BENCHMARKS.md: {was:?})"
        ));
    }
    if !exact_guest() {
        report(
            "SKIP comparison with BENCHMARKS.md: its figures hold in the emulated aarch64 \
             guest only (.ci/pmu-guest)",
        );
        return;
    }
    let mut failures = Vec::new();
    for (key, value) in measured {
        match table.iter().find(|(k, _)| k == key) {
            None => failures.push(format!("{key}: measured {value}, no row in BENCHMARKS.md")),
            Some((_, was)) if value * 100 > was * (100 + TOLERANCE_PERCENT) => failures.push(
                format!("{key}: {value} instructions, more than {TOLERANCE_PERCENT}% over {was}"),
            ),
            Some((_, was)) if value * 100 < was * (100 - TOLERANCE_PERCENT) => report(&format!(
                "note: {key} dropped from {was} to {value}: update BENCHMARKS.md"
            )),
            Some(_) => {}
        }
    }
    for (key, _) in table.iter().filter(|(key, _)| owns(key)) {
        if !measured.iter().any(|(k, _)| k == key) {
            failures.push(format!("{key}: row in BENCHMARKS.md but not measured"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
