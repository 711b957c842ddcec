// Own test binary: it sets the global sample rate.
//! Sampled guards: records on drop, weight, nesting, panics, forcing,
//! labels, and nothing at all when unsampled.
//!
//! The global sample rate is process-wide, so every test here takes the
//! same lock and sets the rate it needs.

mod common;

use common::memory_pipeline;

use std::sync::{Mutex, MutexGuard};

use dynostats::{RecordKind, Region, counters::Counter, sample::Sampler};

static RATE: Mutex<()> = Mutex::new(());

fn with_rate(rate: u64) -> MutexGuard<'static, ()> {
    let guard = RATE.lock().unwrap_or_else(|p| p.into_inner());
    dynostats::set_sample_rate(rate);
    guard
}

#[test]
fn sampled_guard_emits_one_region_record() {
    let _rate = with_rate(1);
    let (p, mem) = memory_pipeline();
    p.in_scope(|| {
        let g = dynostats::measure("work");
        assert!(g.is_sampled());
        std::hint::black_box((0..100_000u64).sum::<u64>());
    });
    p.flush().unwrap();
    let records = mem.records();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r.kind, RecordKind::Region);
    assert_eq!(r.name, "work");
    assert_eq!(r.weight, 1);
    assert!(!r.cancelled && !r.forced);
    assert!(r.wall_ns > 0);
    assert_eq!(r.pid, std::process::id());
    // Counters this thread cannot read are absent, the others present.
    let available = dynostats::counters::with_thread_counters(|c| {
        (
            c.is_available(Counter::Instructions),
            c.is_available(Counter::CpuTime),
        )
    })
    .unwrap();
    assert_eq!(r.instructions.is_some(), available.0);
    assert_eq!(r.cpu_ns.is_some(), available.1);
}

#[test]
fn weight_is_the_rate_in_force() {
    let _rate = with_rate(7);
    let (p, mem) = memory_pipeline();
    p.in_scope(|| {
        for _ in 0..2000 {
            let _g = dynostats::measure("w");
        }
    });
    p.flush().unwrap();
    let records = mem.records();
    assert!(!records.is_empty());
    assert!(records.iter().all(|r| r.weight == 7));
    // Geometric sampling with mean 7: far fewer than 2000.
    assert!(records.len() < 1000, "{}", records.len());
}

#[test]
fn unsampled_and_disabled_guards_emit_nothing() {
    let _rate = with_rate(0);
    let (p, mem) = memory_pipeline();
    p.in_scope(|| {
        for _ in 0..1000 {
            let g = dynostats::measure("off");
            assert!(!g.is_sampled());
        }
        assert_eq!(dynostats::measure_fn("off", || 41 + 1), 42);
    });
    let stats = p.shutdown().unwrap();
    assert_eq!(stats.accepted, 0);
    assert!(mem.is_empty());
}

#[test]
fn nested_guards_each_record() {
    let _rate = with_rate(1);
    let (p, mem) = memory_pipeline();
    p.in_scope(|| {
        let _outer = dynostats::measure("outer");
        std::hint::black_box((0..10_000u64).sum::<u64>());
        dynostats::measure_fn("inner", || {
            std::hint::black_box((0..10_000u64).sum::<u64>())
        });
    });
    p.flush().unwrap();
    let records = mem.records();
    let names: Vec<_> = records.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["inner", "outer"]);
    let (inner, outer) = (&records[0], &records[1]);
    assert!(outer.wall_ns >= inner.wall_ns);
    assert!(outer.ts <= inner.ts);
    if let (Some(o), Some(i)) = (outer.cpu_ns, inner.cpu_ns) {
        assert!(o >= i, "outer {o} < inner {i}");
    }
}

#[test]
fn a_panicking_region_is_recorded_as_cancelled() {
    let _rate = with_rate(1);
    let (p, mem) = memory_pipeline();
    let result = std::panic::catch_unwind(|| {
        p.in_scope(|| {
            let _g = dynostats::measure("boom");
            panic!("the region fails");
        })
    });
    assert!(result.is_err());
    p.flush().unwrap();
    let records = mem.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].name, "boom");
    assert!(records[0].cancelled);
}

#[test]
fn forced_regions_have_weight_zero_unless_sampled() {
    let _rate = with_rate(0);
    let (p, mem) = memory_pipeline();
    p.in_scope(|| {
        Region::forced("debug")
            .label("flag", "new-parser")
            .run(|| std::hint::black_box(3));
    });
    dynostats::set_sample_rate(1);
    p.in_scope(|| Region::forced("debug").run(|| ()));
    p.flush().unwrap();
    let records = mem.records();
    assert_eq!(records.len(), 2);
    assert!(records[0].forced);
    assert_eq!(records[0].weight, 0);
    assert_eq!(records[0].labels.get("flag"), Some("new-parser"));
    assert!(!records[1].forced);
    assert_eq!(records[1].weight, 1);
}

#[test]
fn labels_and_own_sampler() {
    let _rate = with_rate(0);
    let (p, mem) = memory_pipeline();
    let every = Sampler::new(1);
    p.in_scope(|| {
        let g = Region::with_sampler(&every, "custom")
            .label("feature", "on")
            .start();
        assert!(g.is_sampled());
    });
    p.flush().unwrap();
    let records = mem.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].labels.get("feature"), Some("on"));
    assert_eq!(records[0].weight, 1);
}
