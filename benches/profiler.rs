//! What a profiler scope costs: unsampled beside an empty function call,
//! sampled beside the raw read of its timer, and what the `tracing` layer
//! adds to a span, unsampled and sampled, beside `tracing` with no layer.
//!
//! Run: `cargo bench --bench profiler --features tracing` (the `tracing`
//! group needs the feature).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use dynostats::profile::{self, ProfileConfig, Timer};
use dynostats::sink::MemorySink;
use dynostats::{Pipeline, Region};

fn clock_gettime(clock: libc::clockid_t) -> libc::timespec {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the duration of the call.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts
}

#[inline(never)]
fn empty_function() {
    black_box(());
}

fn pipeline() -> Pipeline {
    Pipeline::builder()
        .sink(MemorySink::new())
        .status_interval(None)
        .build()
        .expect("pipeline")
}

fn unsampled(c: &mut Criterion) {
    let mut g = c.benchmark_group("scope_unsampled");
    g.bench_function("empty_function", |b| b.iter(empty_function));
    // No region at all.
    g.bench_function("scope_no_region", |b| {
        b.iter(|| drop(black_box(dynostats::scope("unsampled"))))
    });
    // Inside a region the sampler did not pick: the same one check.
    let p = pipeline();
    let _scoped = p.scoped();
    let never = dynostats::sample::Sampler::new(0);
    let region = Region::with_sampler(&never, "unsampled").start();
    g.bench_function("scope_unsampled_region", |b| {
        b.iter(|| drop(black_box(dynostats::scope("unsampled"))))
    });
    drop(region);
    g.finish();
}

/// A sampled enter/exit pair with `timer`, inside one long forced region.
fn sampled_pair(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    timer: Timer,
) {
    profile::configure(ProfileConfig::builder().timer(timer).build());
    let region = Region::forced("bench").start();
    drop(dynostats::scope("pair"));
    g.bench_function(format!("scope_pair_{timer}"), |b| {
        b.iter(|| drop(black_box(dynostats::scope("pair"))))
    });
    drop(region);
}

fn sampled(c: &mut Criterion) {
    let p = pipeline();
    let _scoped = p.scoped();
    let mut g = c.benchmark_group("scope_sampled");
    g.bench_function("raw clock_gettime THREAD_CPUTIME_ID", |b| {
        b.iter(|| clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID))
    });
    g.bench_function("raw clock_gettime MONOTONIC", |b| {
        b.iter(|| clock_gettime(libc::CLOCK_MONOTONIC))
    });
    // cpu_ns is what instructions fall back to without a PMU.
    sampled_pair(&mut g, Timer::CpuTime);
    sampled_pair(&mut g, Timer::WallTime);
    g.finish();
    profile::configure(ProfileConfig::default());
}

#[cfg(feature = "tracing")]
fn spans(c: &mut Criterion) {
    use tracing_subscriber::layer::SubscriberExt;

    #[inline(never)]
    fn span() {
        let span = tracing::info_span!("work");
        let _entered = span.enter();
        black_box(());
    }

    let p = pipeline();
    let _scoped = p.scoped();
    profile::configure(ProfileConfig::builder().timer(Timer::WallTime).build());
    let mut g = c.benchmark_group("tracing_span");
    tracing::subscriber::with_default(tracing_subscriber::registry(), || {
        g.bench_function("registry_no_layer", |b| b.iter(span));
    });
    let layered = tracing_subscriber::registry().with(dynostats::tracing::DynostatsLayer::new());
    tracing::subscriber::with_default(layered, || {
        g.bench_function("dynostats_layer_unsampled", |b| b.iter(span));
        let region = Region::forced("bench").start();
        span();
        g.bench_function("dynostats_layer_sampled", |b| b.iter(span));
        drop(region);
    });
    g.finish();
    profile::configure(ProfileConfig::default());
}

#[cfg(not(feature = "tracing"))]
fn spans(_: &mut Criterion) {
    eprintln!("tracing_span: skipped, run with --features tracing");
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = unsampled, sampled, spans
}
criterion_main!(benches);
