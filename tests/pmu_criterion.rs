// Own test binary: .ci/pmu-guest runs it by name in the emulated-PMU guest.
//! The criterion measurements on a real hardware counter: exact
//! instruction counts of `dynostats::probe::known_loop` per iteration, in each
//! scope (the bench thread on both read paths, every thread with perf
//! `inherit`, counted polls on another thread).
//!
//! Runs where a hardware instructions counter opens: a machine with a PMU,
//! or the emulated aarch64 guest (`.ci/pmu-guest`, or by hand
//! `scripts/pmu-guest/cargo-aarch64.sh test --release --features criterion
//! --test pmu_criterion`). Elsewhere every test prints why it skips and
//! passes.

#[path = "common/pmu.rs"]
mod pmu_support;

use criterion::measurement::Measurement;
use dynostats::criterion::{Cycles, Instructions, Reach, count};
use pmu_support::{RUNS, exact_guest, per_iteration, report, require_pmu, skip, user_access};

const N: u64 = 1_000_000;

/// `m` around `work(n)`, [`RUNS`] times, after three unmeasured runs
/// (like criterion's warm-up: in the guest the first two thread spawns of
/// a process cost 1255 and 246 instructions more than the later ones,
/// while glibc's cache of thread stacks and the allocator settle).
fn runs<M: Measurement<Value = u64>>(m: &M, n: u64, work: &impl Fn(u64)) -> Vec<u64> {
    (0..3).for_each(|_| work(n));
    (0..RUNS)
        .map(|_| {
            let start = m.start();
            work(n);
            m.end(start)
        })
        .collect()
}

/// Checks that `work(n)` minus `work(0)`, smallest runs, is exactly
/// `n * per_iteration` (times `threads`), and on the exact guest that
/// every run gave the same count, unless threads run `concurrently`: then
/// where the scheduler's tick falls decides whether a `join` finds its
/// thread finished or waits for it, which is a few hundred user-space
/// instructions more or less, so runs are only required to agree to 0.01%.
fn assert_exact<M: Measurement<Value = u64>>(
    what: &str,
    m: &M,
    threads: u64,
    concurrently: bool,
    work: impl Fn(u64),
) {
    let empty = runs(m, 0, &work);
    let full = runs(m, N, &work);
    let (e, f) = (*empty.iter().min().unwrap(), *full.iter().min().unwrap());
    report(&format!(
        "{what}: loop of {N} iterations x {threads}: full {full:?}, empty {empty:?}, \
         loop {} (expected {})",
        f - e,
        threads * N * per_iteration()
    ));
    assert_eq!(f - e, threads * N * per_iteration(), "{what}");
    if exact_guest() {
        let agree = |runs: &[u64]| {
            let (lo, hi) = (runs.iter().min().unwrap(), runs.iter().max().unwrap());
            if concurrently {
                hi - lo <= hi / 10_000
            } else {
                lo == hi
            }
        };
        assert!(
            agree(&full) && agree(&empty),
            "{what}: runs differ: {full:?} {empty:?}"
        );
    }
}

#[test]
fn bench_thread_instructions_are_exact_on_both_read_paths() {
    if !require_pmu("bench_thread_instructions_are_exact_on_both_read_paths") {
        return;
    }
    for on in [false, true] {
        let access = user_access(on);
        let m = Instructions::new().unwrap();
        let what = format!("Instructions, thread scope, read path {}", m.read_path());
        assert_exact(&what, &m, 1, false, dynostats::probe::known_loop);
        drop(access);
    }
}

#[test]
fn bench_thread_cycles_equal_instructions_on_the_emulated_pmu() {
    if !require_pmu("bench_thread_cycles_equal_instructions_on_the_emulated_pmu") {
        return;
    }
    if !exact_guest() {
        skip(
            "bench_thread_cycles_equal_instructions_on_the_emulated_pmu",
            "cycles only equal instructions on the emulated PMU",
        );
        return;
    }
    let _access = user_access(false);
    let m = Cycles::new().unwrap();
    assert_exact(
        "Cycles, thread scope",
        &m,
        1,
        false,
        dynostats::probe::known_loop,
    );
}

#[test]
fn inherited_scope_counts_spawned_threads_exactly() {
    if !require_pmu("inherited_scope_counts_spawned_threads_exactly") {
        return;
    }
    let _access = user_access(false);
    let m = Instructions::with_reach(Reach::Inherited).unwrap();
    // Only spawned threads run the loop: the bench thread spawns and joins.
    assert_exact(
        "Instructions, inherited scope, 1 thread",
        &m,
        1,
        false,
        |n| {
            std::thread::spawn(move || dynostats::probe::known_loop(n))
                .join()
                .unwrap()
        },
    );
    assert_exact(
        "Instructions, inherited scope, bench thread + 2 threads",
        &m,
        3,
        true,
        |n| {
            let a = std::thread::spawn(move || dynostats::probe::known_loop(n));
            let b = std::thread::spawn(move || dynostats::probe::known_loop(n));
            dynostats::probe::known_loop(n);
            a.join().unwrap();
            b.join().unwrap();
        },
    );
}

#[test]
fn polls_scope_counts_a_counted_future_polled_on_another_thread_exactly() {
    if !require_pmu("polls_scope_counts_a_counted_future_polled_on_another_thread_exactly") {
        return;
    }
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let mut f = std::pin::pin!(f);
        loop {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }
    let _access = user_access(false);
    let m = Instructions::with_reach(Reach::Polls).unwrap();
    // The loop runs in two polls on a spawned thread; the bench thread's
    // own loop, outside any counted future, is not counted.
    assert_exact(
        "Instructions, polls scope, 2 polls on another thread",
        &m,
        2,
        false,
        |n| {
            std::thread::spawn(move || {
                block_on(count(async move {
                    dynostats::probe::known_loop(n);
                    let mut yielded = false;
                    std::future::poll_fn(|cx| {
                        if yielded {
                            return std::task::Poll::Ready(());
                        }
                        yielded = true;
                        cx.waker().wake_by_ref();
                        std::task::Poll::Pending
                    })
                    .await;
                    dynostats::probe::known_loop(n);
                }))
            })
            .join()
            .unwrap();
            dynostats::probe::known_loop(n);
        },
    );
}
