// Own test binary: it installs the global pipeline.
//! Measured futures on tokio runtimes: per-poll totals exclude the other
//! tasks that share the threads (a start/end pair does not), nesting with
//! futures and guards, cancellation.
//!
//! Records are emitted on whichever runtime thread completes a future, so
//! this file installs one global pipeline with a memory sink.

mod common;

use common::memory_pipeline;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dynostats::{Delta, Measure, Record, RecordKind, Region, sample::Sampler, sink::MemorySink};

fn sink() -> &'static MemorySink {
    static SINK: OnceLock<MemorySink> = OnceLock::new();
    SINK.get_or_init(|| {
        let (pipeline, mem) = memory_pipeline();
        dynostats::install(pipeline).unwrap();
        mem
    })
}

/// The region records named `name`, after a flush.
fn records(name: &str) -> Vec<Record> {
    let mem = sink();
    dynostats::pipeline::global_pipeline()
        .unwrap()
        .flush()
        .unwrap();
    mem.records_of(RecordKind::Region)
        .into_iter()
        .filter(|r| r.name == name)
        .collect()
}

fn only(name: &str) -> Record {
    let mut rs = records(name);
    assert_eq!(rs.len(), 1, "{rs:?}");
    rs.pop().unwrap()
}

fn always<F: Future>(fut: F, name: &'static str) -> dynostats::Measured<F> {
    fut.measured_with(name, &Sampler::new(1))
}

fn cpu_work(iterations: u64) -> u64 {
    let mut x = 1u64;
    for i in 0..iterations {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
    }
    x
}

/// CPU time of the calling thread spent in `f`.
fn cpu_of(f: impl FnOnce()) -> u64 {
    let start = dynostats::snapshot();
    f();
    let end = dynostats::snapshot();
    Delta::between(&start, &end)
        .cpu_ns
        .expect("thread CPU time is measurable here")
}

const LIGHT_ROUNDS: usize = 200;
const HEAVY_ROUNDS: usize = 100;

struct Outcome {
    record: Record,
    /// CPU time of the light task's own work.
    own: u64,
    /// CPU time of the heavy task's work.
    heavy: u64,
    /// CPU time a start/end pair around the light task saw (meaningful on
    /// a single thread only).
    naive: u64,
}

/// A light task (small pieces of work with a yield after each) and a heavy
/// one (large pieces, also yielding) share the runtime's threads with two
/// spinners that keep every worker busy.
fn light_and_heavy(rt: tokio::runtime::Runtime, name: &'static str) -> Outcome {
    sink();
    let (own, naive, heavy) = rt.block_on(async move {
        let stop = Arc::new(AtomicBool::new(false));
        let spinners: Vec<_> = (0..2)
            .map(|_| {
                let stop = stop.clone();
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        cpu_work(1000);
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        let light = tokio::spawn(async move {
            let naive_start = dynostats::snapshot();
            let mut own = 0;
            always(
                async {
                    for _ in 0..LIGHT_ROUNDS {
                        own += cpu_of(|| {
                            cpu_work(10_000);
                        });
                        tokio::task::yield_now().await;
                    }
                },
                name,
            )
            .await;
            let naive_end = dynostats::snapshot();
            let naive = Delta::between(&naive_start, &naive_end).cpu_ns.unwrap_or(0);
            (own, naive)
        });
        let heavy = tokio::spawn(async {
            let mut heavy = 0;
            for _ in 0..HEAVY_ROUNDS {
                heavy += cpu_of(|| {
                    cpu_work(1_000_000);
                });
                tokio::task::yield_now().await;
            }
            heavy
        });
        let (own, naive) = light.await.unwrap();
        let heavy = heavy.await.unwrap();
        stop.store(true, Ordering::Relaxed);
        for s in spinners {
            s.await.unwrap();
        }
        (own, naive, heavy)
    });
    let record = only(name);
    // Each yield_now is one Pending, then the last poll completes.
    assert_eq!(record.polls, Some(LIGHT_ROUNDS as u64 + 1));
    Outcome {
        record,
        own,
        heavy,
        naive,
    }
}

#[test]
fn per_poll_cpu_excludes_other_tasks_on_a_multi_threaded_runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let o = light_and_heavy(rt, "light-multi");
    let cpu = o.record.cpu_ns.expect("CPU time is measurable here");
    // The light task's total is its own work plus the cost of its polls
    // and of the measurement. The heavy task's work ran on the same
    // threads while the light task was pending, and is not in it.
    assert!(cpu >= o.own, "measured {cpu} < own work {}", o.own);
    assert!(
        cpu < o.own + o.heavy / 10,
        "measured {cpu} includes other work: own {}, heavy {}",
        o.own,
        o.heavy
    );
    assert!(
        o.record.threads.is_some_and(|t| (1..=2).contains(&t)),
        "{:?}",
        o.record
    );
    assert!(!o.record.cancelled);
}

#[test]
fn a_start_end_pair_counts_the_other_task_and_per_poll_does_not() {
    // On one thread the light task's polls interleave with the heavy
    // task's: a start/end pair around the light task counts all of the
    // heavy work, per-poll accounting none of it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let o = light_and_heavy(rt, "light-current");
    let cpu = o.record.cpu_ns.expect("CPU time is measurable here");
    assert!(
        o.naive >= o.own + o.heavy,
        "naive {}, own {}, heavy {}",
        o.naive,
        o.own,
        o.heavy
    );
    assert!(
        cpu >= o.own && cpu < o.own + o.heavy / 10,
        "per poll {cpu}, own {}, heavy {}",
        o.own,
        o.heavy
    );
    assert_eq!(o.record.threads, Some(1));
}

#[test]
fn outer_future_includes_inner_future_and_guard() {
    sink();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::spawn(always(
            async {
                always(
                    async {
                        cpu_work(2_000_000);
                        tokio::task::yield_now().await;
                        cpu_work(2_000_000);
                    },
                    "nest-inner-future",
                )
                .await;
                // A guard inside a poll: no await while it is held.
                Region::with_sampler(&Sampler::new(1), "nest-inner-guard").run(|| {
                    cpu_work(4_000_000);
                });
                tokio::task::yield_now().await;
            },
            "nest-outer",
        ))
        .await
        .unwrap();
    });
    let inner = only("nest-inner-future");
    let guard = only("nest-inner-guard");
    let outer = only("nest-outer");
    assert_eq!(inner.polls, Some(2));
    assert_eq!(outer.polls, Some(3));
    let cpu = |r: &Record| r.cpu_ns.expect("CPU time is measurable here");
    assert!(cpu(&inner) > 0 && cpu(&guard) > 0);
    assert!(
        cpu(&outer) >= cpu(&inner) + cpu(&guard),
        "outer {} < inner {} + guard {}",
        cpu(&outer),
        cpu(&inner),
        cpu(&guard)
    );
    if let (Some(o), Some(i), Some(g)) =
        (outer.instructions, inner.instructions, guard.instructions)
    {
        assert!(o >= i + g);
    }
}

#[test]
fn a_future_cancelled_by_a_timeout_is_recorded_as_cancelled() {
    sink();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let result = rt.block_on(async {
        tokio::time::timeout(
            Duration::from_millis(20),
            always(
                async {
                    cpu_work(100_000);
                    tokio::time::sleep(Duration::from_secs(60)).await;
                },
                "timed-out",
            ),
        )
        .await
    });
    assert!(result.is_err());
    let r = only("timed-out");
    assert!(r.cancelled);
    assert!(r.error.is_none());
    // Polled at the start, and once more when the timer woke the timeout
    // (tokio's Timeout polls its inner future before its timer); never
    // completed.
    assert_eq!(r.polls, Some(2));
    assert!(r.cpu_ns.is_some_and(|c| c > 0));
}
