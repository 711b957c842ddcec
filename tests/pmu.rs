//! The hardware path end to end: exact instruction counts of loops of known
//! length, read through the library.
//!
//! Runs where a hardware instructions counter opens: a machine with a PMU,
//! or the emulated aarch64 guest (`.ci/pmu-guest`, or by hand
//! `../shared/pmu-guest/cargo-aarch64.sh test --release --test pmu`).
//! Elsewhere every test prints why it skips and passes. On the emulated
//! PMU, where cycles advance one per instruction, the tests also check
//! cycles against instructions and that every run gives the same count.

mod pmu_support;

use std::sync::{Arc, Barrier};

use dynostats::{Counter, CounterSet, Counters, Delta, ReadPath};
use perf_event::events::Hardware;
use pmu_support::{
    LoopCount, count_loop, exact_guest, per_iteration, report, require_pmu, user_access,
};

/// Iterations of the known loop in most tests.
const N: u64 = 1_000_000;

fn assert_exact(what: &str, counted: &LoopCount, n: u64) {
    report(&format!(
        "{what}: loop of {n} iterations: full {:?}, empty {:?}, loop {} (expected {})",
        counted.full,
        counted.empty,
        counted.loop_instructions(),
        n * per_iteration()
    ));
    assert_eq!(
        counted.loop_instructions(),
        n * per_iteration(),
        "{what}: {counted:?}"
    );
    if exact_guest() {
        assert!(counted.deterministic(), "{what}: runs differ: {counted:?}");
    }
}

/// On the emulated PMU the cycle counter advances once per user-space
/// instruction, so counters read at one instant agree exactly.
fn assert_cycles_match(what: &str, deltas: &[Delta]) {
    for d in deltas {
        assert!(d.cycles.is_some(), "{what}: cycles missing: {d:?}");
        if exact_guest() {
            assert_eq!(d.cycles, d.instructions, "{what}: {d:?}");
        }
    }
}

#[test]
fn snapshot_delta_counts_the_loop_exactly_on_every_read_path() {
    if !require_pmu("snapshot_delta_counts_the_loop_exactly_on_every_read_path") {
        return;
    }
    for user in [false, true] {
        let access = user_access(user);
        if access.enabled != user {
            report(&format!(
                "SKIP user access {user}: cannot change it here (not root, or x86's rdpmc setting)"
            ));
            continue;
        }
        // A fresh thread opens its counters under this setting.
        let (path, counted) = std::thread::spawn(|| {
            let counted = count_loop(dynostats::snapshot, N);
            let path = dynostats::with_thread_counters(|c| c.source()).unwrap();
            (path, counted)
        })
        .join()
        .unwrap();
        let what = format!("dynostats::snapshot, default set, path {path}");
        let expected_path = if user {
            ReadPath::Rdpmc
        } else {
            ReadPath::Read
        };
        if cfg!(target_arch = "aarch64") {
            assert_eq!(path, expected_path);
        }
        assert_exact(&what, &counted, N);
        assert_cycles_match(&what, &counted.full_deltas);
        for d in counted.full_deltas.iter().chain(&counted.empty_deltas) {
            assert_eq!(d.source, path, "{d:?}");
            assert!(!d.scaled, "{d:?}");
            assert!(d.cpu_ns.is_some() && d.rss_end.is_some(), "{d:?}");
        }
    }
}

#[test]
fn group_read_takes_instructions_and_cycles_at_one_instant() {
    if !require_pmu("group_read_takes_instructions_and_cycles_at_one_instant") {
        return;
    }
    let _access = user_access(false);
    // A software event in the set keeps the group on read(2) everywhere.
    let set = CounterSet::default().with(Counter::PageFaults);
    let mut counters = Counters::open(set);
    assert!(counters.unavailable().is_empty(), "{counters:?}");
    assert_eq!(counters.source(), ReadPath::Read);
    let counted = count_loop(|| counters.snapshot(), N);
    assert_exact("group read", &counted, N);
    // Two separate reads would differ by the instructions between them; one
    // group read gives equal deltas on the emulated PMU.
    assert_cycles_match("group read", &counted.full_deltas);
    assert_cycles_match("group read", &counted.empty_deltas);
    for d in counted.full_deltas.iter().chain(&counted.empty_deltas) {
        assert_eq!(d.source, ReadPath::Read);
        assert!(!d.scaled, "{d:?}");
        assert!(d.page_faults.is_some() && d.cpu_ns.is_some(), "{d:?}");
    }
}

#[test]
fn user_space_reads_match_read_exactly() {
    if !require_pmu("user_space_reads_match_read_exactly") {
        return;
    }
    let access = user_access(true);
    if !access.enabled {
        report("SKIP user_space_reads_match_read_exactly: user-space counter reads are off here");
        return;
    }
    let mut user = Counters::open(CounterSet::default());
    if user.source() != ReadPath::Rdpmc {
        if cfg!(target_arch = "aarch64") {
            panic!("arm64 with perf_user_access=1 must read from user space: {user:?}");
        }
        report("SKIP user_space_reads_match_read_exactly: the kernel gives no user-readable index");
        return;
    }
    let mut read = Counters::open(CounterSet::default().with(Counter::PageFaults));
    assert_eq!(read.source(), ReadPath::Read);

    let by_user = count_loop(|| user.snapshot(), N);
    let by_read = count_loop(|| read.snapshot(), N);
    assert_exact("user-space read", &by_user, N);
    assert_exact("read(2)", &by_read, N);
    assert_eq!(by_user.loop_instructions(), by_read.loop_instructions());
    assert_cycles_match("user-space read", &by_user.full_deltas);
    for d in by_user.full_deltas.iter().chain(&by_user.empty_deltas) {
        assert_eq!(d.source, ReadPath::Rdpmc, "{d:?}");
    }
    report(&format!(
        "empty region between two snapshots of the default set: {} instructions by user-space \
         read, {} by read(2) (with page faults)",
        by_user.empty_region(),
        by_read.empty_region()
    ));
}

/// Opens `n` extra instruction counters on this thread, each its own group,
/// so that the PMU has more events than counters and time-slices them.
fn crowd_the_pmu(n: usize) -> Vec<perf_event::Counter> {
    (0..n)
        .map(|_| {
            perf_event::Builder::new(Hardware::INSTRUCTIONS)
                .observe_self()
                .any_cpu()
                .exclude_kernel(true)
                .enabled(true)
                .build()
                .expect("extra instructions counter")
        })
        .collect()
}

fn multiplexed(user: bool) {
    let access = user_access(user);
    if access.enabled != user {
        report(&format!(
            "SKIP multiplexing with user access {user}: cannot change it here"
        ));
        return;
    }
    let n = 20_000_000;
    let expected = n * per_iteration();
    let mut counters = Counters::open(CounterSet::default());
    let path = counters.source();
    // 10 extra events beside the library's group: more than the 6 event
    // counters of the emulated PMU and the 4 to 8 of common x86 cores.
    let mut crowd = crowd_the_pmu(10);
    let start = counters.snapshot();
    dynostats::known_loop(n);
    let end = counters.snapshot();
    let delta = Delta::between(&start, &end);
    let crowd_times: Vec<_> = crowd
        .iter_mut()
        .map(|c| c.read_count_and_time().unwrap())
        .collect();
    let squeezed = crowd_times
        .iter()
        .filter(|t| t.time_running < t.time_enabled)
        .count();
    let instructions = delta.instructions.expect("scaled estimate present");
    report(&format!(
        "multiplexed, opened on path {path}: loop of {expected} instructions estimated at \
         {instructions} ({:+.4}%), scaled {}, read path {}; {squeezed} of {} extra events \
         time-sliced",
        (instructions as f64 - expected as f64) * 100.0 / expected as f64,
        delta.scaled,
        delta.source,
        crowd.len()
    ));
    assert!(squeezed > 0, "no multiplexing happened: {crowd_times:?}");
    assert!(delta.scaled, "{delta:?}");
    assert!(
        instructions.abs_diff(expected) <= expected / 100,
        "{instructions} vs {expected}: {delta:?}"
    );
}

#[test]
fn multiplexed_counts_are_scaled_and_within_one_percent_on_read() {
    if require_pmu("multiplexed_counts_are_scaled_and_within_one_percent_on_read") {
        multiplexed(false);
    }
}

#[test]
fn multiplexed_counts_are_scaled_and_within_one_percent_on_user_reads() {
    if require_pmu("multiplexed_counts_are_scaled_and_within_one_percent_on_user_reads") {
        multiplexed(true);
    }
}

#[test]
fn each_thread_counts_only_its_own_loop() {
    if !require_pmu("each_thread_counts_only_its_own_loop") {
        return;
    }
    let _access = user_access(false);
    // Long enough for the two threads to be switched many times on one CPU.
    let loops = [5_000_000u64, 8_000_000];
    let start = Arc::new(Barrier::new(loops.len()));
    let threads: Vec<_> = loops
        .iter()
        .map(|&n| {
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                // Switches happen in the kernel: count them there.
                let mut switches =
                    perf_event::Builder::new(perf_event::events::Software::CONTEXT_SWITCHES)
                        .observe_self()
                        .any_cpu()
                        .exclude_kernel(false)
                        .enabled(true)
                        .build()
                        .expect("context-switch counter");
                // Open the thread's counters before the race starts.
                let _ = dynostats::snapshot();
                start.wait();
                let counted = count_loop(dynostats::snapshot, n);
                (n, counted, switches.read().unwrap_or(0))
            })
        })
        .collect();
    for t in threads {
        let (n, counted, switches) = t.join().unwrap();
        assert_exact(
            &format!("thread with a loop of {n} ({switches} context switches)"),
            &counted,
            n,
        );
    }
}
