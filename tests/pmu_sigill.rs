// Own test binary: .ci/pmu-guest runs it by name; it sets the global sample rate, re-runs itself.
//! arm64: user-space counter reads that the kernel withdraws at run time
//! (`/proc/sys/kernel/perf_user_access` switched from 1 to 0) neither kill
//! the process nor give a wrong count.
//!
//! The kernel clears EL0 access to the PMU on every CPU at once, while a
//! thread's event pages keep offering the counter until it is scheduled in
//! again, so its next `mrs` traps. The library recovers that trap: the
//! read fails, the thread's counters switch to `read(2)`, and the snapshot
//! takes its counts from `read(2)` (a region's end that trapped has none).
//! Any other SIGILL still reaches the handler that was there before, or
//! kills the process when there was none.
//!
//! The guest of `.ci/pmu-guest` has one CPU, so a switch made by another
//! thread reaches the reader only after it was scheduled in again (its
//! pages then say "no counter" and nothing traps): the tests that count
//! traps switch the setting from the reading thread itself. Elsewhere
//! (x86_64, no PMU, not root) each test prints why it skips and passes.

#[path = "common/pmu.rs"]
mod pmu_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use dynostats::counters::{CounterSet, Counters, ReadPath, withdrawn_user_reads};
use dynostats::sink::MemorySink;
use dynostats::{Delta, Pipeline, RecordKind};
use pmu_support::{
    exact_guest, per_iteration, report, require_pmu, skip, user_access, write_user_access,
};

/// Iterations of the known loop in the calibration runs.
const N: u64 = 100_000;

/// User access switched on for the test's lifetime (the guard puts the
/// setting back), or `None` with the reason printed: this test needs a
/// PMU, arm64 (only arm64 withdraws user access with a trap the library
/// recovers) and a writable `perf_user_access`.
fn switchable(test: &str) -> Option<pmu_support::UserAccess> {
    if !require_pmu(test) {
        return None;
    }
    if !cfg!(target_arch = "aarch64") {
        skip(
            test,
            "only arm64 withdraws user access with a trap the library recovers",
        );
        return None;
    }
    let access = user_access(true);
    if !access.enabled {
        skip(
            test,
            "perf_user_access cannot be set to 1 here (needs root)",
        );
        return None;
    }
    Some(access)
}

/// One region around the known loop, with user access switched off from
/// this thread after its start when `withdraw_inside`. Not inlined, so the
/// same code runs for every `n`.
#[inline(never)]
fn region(counters: &mut Counters, n: u64, withdraw_inside: bool) -> Delta {
    let start = counters.snapshot_start();
    if withdraw_inside {
        assert!(write_user_access(false));
    }
    dynostats::probe::known_loop(n);
    let end = counters.snapshot_end();
    Delta::between(&start, &end)
}

/// Loop lengths that differ from region to region, so that a count equal
/// to a fixed overhead plus the loop is exact for the loop.
fn loop_len(i: u64) -> u64 {
    10_000 + 1_237 * (i % 7)
}

/// The instructions of [`region`] beyond its loop on `counters`' read
/// path: the same for every run and every loop length on the exact guest.
fn overhead(what: &str, counters: &mut Counters) -> u64 {
    let per = per_iteration();
    let counts: Vec<(u64, u64)> = [0, N, 0, N / 2, loop_len(3)]
        .into_iter()
        .map(|n| {
            let c = region(counters, n, false)
                .instructions
                .expect("instructions");
            (n, c)
        })
        .collect();
    report(&format!("{what}: (loop, instructions) {counts:?}"));
    let overheads: Vec<u64> = counts.iter().map(|(n, c)| c - per * n).collect();
    if exact_guest() {
        assert!(
            overheads.iter().all(|&o| o == overheads[0]),
            "{what}: {counts:?}"
        );
    }
    *overheads.iter().min().unwrap()
}

#[test]
fn a_withdrawn_user_read_is_recovered_and_every_count_is_exact_or_absent() {
    const TEST: &str = "a_withdrawn_user_read_is_recovered_and_every_count_is_exact_or_absent";
    let Some(access) = switchable(TEST) else {
        return;
    };
    let per = per_iteration();

    // The fixed overhead of `region` on the user-read path, and on the
    // read(2) path of counters that switched to it after a trap.
    let mut user = Counters::open(CounterSet::default());
    assert_eq!(user.source(), ReadPath::Rdpmc, "{user:?}");
    let user_overhead = overhead("user-read path", &mut user);
    let mut switched = Counters::open(CounterSet::default());
    assert_eq!(switched.source(), ReadPath::Rdpmc, "{switched:?}");
    let before = withdrawn_user_reads();
    assert!(write_user_access(false));
    let trapped = switched.snapshot_start();
    assert!(write_user_access(true));
    assert_eq!(withdrawn_user_reads(), before + 1);
    assert_eq!(switched.source(), ReadPath::Read, "{switched:?}");
    assert_eq!(trapped.source, ReadPath::Read);
    assert!(trapped.instructions.is_some(), "{trapped:?}");
    let read_overhead = overhead("after the switch", &mut switched);

    // Cycles of: fresh counters on the user-read path, regions, user access
    // withdrawn from this thread (between two regions, or inside one),
    // regions on read(2), user access back.
    const CYCLES: u64 = 24;
    let mut traps = 0;
    let mut regions = 0;
    let mut i = 0;
    for cycle in 0..CYCLES {
        assert!(write_user_access(true));
        let mut counters = Counters::open(CounterSet::default());
        assert_eq!(
            counters.source(),
            ReadPath::Rdpmc,
            "cycle {cycle}: {counters:?}"
        );
        let mut expect = |d: &Delta, n: u64, overhead: Option<u64>, what: &str| {
            regions += 1;
            match overhead {
                Some(o) if exact_guest() => {
                    assert_eq!(
                        d.instructions,
                        Some(o + per * n),
                        "cycle {cycle}, {what}: {d:?}"
                    )
                }
                Some(o) => assert!(
                    d.instructions.is_some_and(|c| c >= o + per * n),
                    "cycle {cycle}, {what}: {d:?}"
                ),
                None => assert_eq!(d.instructions, None, "cycle {cycle}, {what}: {d:?}"),
            }
        };
        for _ in 0..3 {
            i += 1;
            let d = region(&mut counters, loop_len(i), false);
            expect(&d, loop_len(i), Some(user_overhead), "before");
        }
        let inside = cycle % 2 == 1;
        let seen = withdrawn_user_reads();
        i += 1;
        let d = if inside {
            region(&mut counters, loop_len(i), true)
        } else {
            assert!(write_user_access(false));
            region(&mut counters, loop_len(i), false)
        };
        if withdrawn_user_reads() == seen {
            // Scheduled in between the switch and the read: the pages
            // stopped offering the counter and nothing trapped.
            report(&format!(
                "cycle {cycle}: no trap (rescheduled before the read)"
            ));
            assert!(
                d.instructions.is_none_or(|c| c >= per * loop_len(i)),
                "{d:?}"
            );
            continue;
        }
        traps += 1;
        assert_eq!(withdrawn_user_reads(), seen + 1, "one trap per switch");
        assert_eq!(
            counters.source(),
            ReadPath::Read,
            "cycle {cycle}: {counters:?}"
        );
        if inside {
            // The end trapped: its read(2) count would hold the trap's handling.
            expect(&d, loop_len(i), None, "trapped end");
        } else {
            // The start trapped: read(2) after the switch, as on that path.
            expect(&d, loop_len(i), Some(read_overhead), "trapped start");
        }
        for back in [false, true] {
            if back {
                // User access back on: these counters stay on read(2).
                assert!(write_user_access(true));
            }
            for _ in 0..3 {
                i += 1;
                let d = region(&mut counters, loop_len(i), false);
                expect(&d, loop_len(i), Some(read_overhead), "after");
                assert_eq!(d.source, ReadPath::Read);
            }
        }
        assert_eq!(counters.source(), ReadPath::Read);
    }
    report(&format!(
        "{traps} of {CYCLES} switches trapped and were recovered; {regions} regions checked \
         (fixed overhead {user_overhead} on the user-read path, {read_overhead} after the switch)"
    ));
    assert!(traps >= CYCLES / 2, "{traps} of {CYCLES} switches trapped");
    drop(access);
}

#[test]
fn guards_survive_user_access_switched_on_and_off_while_they_read() {
    const TEST: &str = "guards_survive_user_access_switched_on_and_off_while_they_read";
    let Some(access) = switchable(TEST) else {
        return;
    };
    let per = per_iteration();
    let memory = MemorySink::new();
    let pipeline = Arc::new(
        Pipeline::builder()
            .sink(memory.clone())
            .status_interval(None)
            .build()
            .expect("pipeline"),
    );
    dynostats::set_sample_rate(1);
    let before = withdrawn_user_reads();

    // Another thread switches user access off and on all along.
    let stop = Arc::new(AtomicBool::new(false));
    let switcher = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut switches = 0u64;
            while !stop.load(Ordering::Relaxed) {
                assert!(write_user_access(switches % 2 == 1));
                switches += 1;
                std::thread::yield_now();
            }
            switches
        })
    };
    // Reader threads, one after the other: each opens its counters on its
    // first guard (the user-read path when access is on at that moment),
    // measures loops, and switches access off itself once (on one CPU,
    // the switch that traps is the reader's own).
    const READERS: u64 = 16;
    const GUARDS: u64 = 200;
    const LOOP: u64 = 20_000;
    for reader in 0..READERS {
        let pipeline = Arc::clone(&pipeline);
        std::thread::spawn(move || {
            let _scope = pipeline.scoped();
            for g in 0..GUARDS {
                if g == GUARDS / 2 + reader {
                    assert!(write_user_access(false));
                }
                let guard = dynostats::measure("switched");
                dynostats::probe::known_loop(LOOP);
                drop(guard);
            }
        })
        .join()
        .expect("the reader survives");
    }
    stop.store(true, Ordering::Relaxed);
    let switches = switcher.join().expect("the switcher survives");
    pipeline.flush().expect("flush");
    let traps = withdrawn_user_reads() - before;

    let records = memory.records_of(RecordKind::Region);
    assert_eq!(records.len() as u64, READERS * GUARDS, "a record per guard");
    let mut overheads = std::collections::BTreeMap::new();
    let mut absent = 0;
    for r in &records {
        match r.instructions {
            None => absent += 1,
            Some(c) => {
                // A guard's fixed overhead is a few hundred instructions;
                // anything else (a raw register, 0, a count of another
                // region) is far outside.
                assert!(
                    c >= per * LOOP && c - per * LOOP < 4096,
                    "{c} instructions for a loop of {} and a guard: {r:?}",
                    per * LOOP
                );
                *overheads.entry(c - per * LOOP).or_insert(0u64) += 1;
            }
        }
    }
    report(&format!(
        "{} records from {READERS} readers while another thread switched user access {switches} \
         times: {traps} traps recovered, {absent} records without instructions, fixed \
         overheads (instructions: records) {overheads:?}",
        records.len()
    ));
    assert!(traps >= 1, "no read trapped: the switch was not exercised");
    drop(access);
}

/// A child process of this test binary, for what must happen to a SIGILL
/// that is not the library's: `role` in the environment of the child.
const CHILD_ROLE: &str = "DYNOSTATS_SIGILL_CHILD";

/// Runs this test binary again with only `child_sigill` and `role`.
#[cfg(target_arch = "aarch64")]
fn child(role: &str) -> std::process::Output {
    std::process::Command::new(std::env::current_exe().expect("current_exe"))
        .args([
            "--ignored",
            "--exact",
            "child_sigill",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ROLE, role)
        .output()
        .expect("run the child")
}

/// The child's side of the two `a_sigill_that_is_not_the_librarys_*`
/// tests, which run it in a process of its own with its role set. It is no
/// test on its own: ignored in every other run (it used to pass there
/// without checking anything), and a failure when run without a role.
#[test]
#[ignore = "the child process of the a_sigill_that_is_not_the_librarys_* tests, run by them"]
fn child_sigill() {
    let role = std::env::var(CHILD_ROLE).unwrap_or_else(|_| {
        panic!(
            "child_sigill checks nothing on its own: the a_sigill_that_is_not_the_librarys_* \
             tests run it with {CHILD_ROLE} set"
        )
    });
    #[cfg(target_arch = "aarch64")]
    foreign::child(&role);
    #[cfg(not(target_arch = "aarch64"))]
    panic!("child {role}: aarch64 only");
}

#[cfg(target_arch = "aarch64")]
mod foreign {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    /// Calls of the handler the child installs before the library's.
    static PREVIOUS_CALLS: AtomicU64 = AtomicU64::new(0);

    /// A SIGILL handler of the service's own: counts the signal and steps
    /// over the `udf` that raised it.
    extern "C" fn previous(_: libc::c_int, _: *mut libc::siginfo_t, context: *mut libc::c_void) {
        PREVIOUS_CALLS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the third argument of an SA_SIGINFO handler is the
        // interrupted context; the pc is moved past the 4-byte `udf`.
        unsafe {
            (*context.cast::<libc::ucontext_t>()).uc_mcontext.pc += 4;
        }
    }

    fn install_previous() {
        // SAFETY: an all-zero sigaction is valid; the handler lives for the
        // whole program.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                previous;
            action.sa_sigaction = handler as libc::sighandler_t;
            action.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut action.sa_mask);
            assert_eq!(
                libc::sigaction(libc::SIGILL, &action, std::ptr::null_mut()),
                0
            );
        }
    }

    /// An undefined instruction: a SIGILL that is not the library's.
    fn undefined_instruction() {
        // SAFETY: `udf` only raises SIGILL; the handler in place decides.
        unsafe { std::arch::asm!("udf #0") };
    }

    pub(super) fn child(role: &str) {
        if role == "previous" {
            install_previous();
        }
        // The user-read path installs the library's handler.
        assert!(write_user_access(true));
        let mut counters = Counters::open(CounterSet::default());
        assert_eq!(counters.source(), ReadPath::Rdpmc, "{counters:?}");
        let _ = counters.snapshot();
        undefined_instruction();
        // Only the service's handler lets the child get here.
        assert_eq!(role, "previous");
        assert_eq!(PREVIOUS_CALLS.load(Ordering::Relaxed), 1);
        assert_eq!(withdrawn_user_reads(), 0);
        // The library's own trap is still its own.
        assert!(write_user_access(false));
        let s = counters.snapshot_start();
        assert!(write_user_access(true));
        assert_eq!(withdrawn_user_reads(), 1);
        assert!(s.instructions.is_some() && counters.source() == ReadPath::Read);
        assert_eq!(PREVIOUS_CALLS.load(Ordering::Relaxed), 1);
        println!("child previous: chained once, own trap recovered");
    }
}

#[test]
fn a_sigill_that_is_not_the_librarys_reaches_the_handler_installed_before() {
    const TEST: &str = "a_sigill_that_is_not_the_librarys_reaches_the_handler_installed_before";
    let Some(access) = switchable(TEST) else {
        return;
    };
    #[cfg(target_arch = "aarch64")]
    {
        let out = child("previous");
        let stdout = String::from_utf8_lossy(&out.stdout);
        report(&format!("child: {:?}, {}", out.status, stdout.trim()));
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("child previous: chained once, own trap recovered"));
    }
    drop(access);
}

#[test]
fn a_sigill_that_is_not_the_librarys_still_kills_without_a_handler_before() {
    const TEST: &str = "a_sigill_that_is_not_the_librarys_still_kills_without_a_handler_before";
    let Some(access) = switchable(TEST) else {
        return;
    };
    #[cfg(target_arch = "aarch64")]
    {
        use std::os::unix::process::ExitStatusExt;
        let out = child("default");
        report(&format!("child: {:?}", out.status));
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGILL),
            "{:?}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    drop(access);
}
