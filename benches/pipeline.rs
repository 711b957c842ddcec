//! What sampling, recording and shipping cost.
//!
//! - `measure_unsampled`: a guard the sampler did not pick, beside an empty
//!   function call (the floor).
//! - `measure_sampled`: a sampled guard with the default counter set,
//!   beside the two raw counter snapshots it consists of.
//! - `encode`: one typical record to MessagePack.
//! - `emit_and_write`: records emitted on one thread and written to a file
//!   by the writer thread, in records per second (wall time only).
//! - `writer_capacity`: bursts from three producers through one and two
//!   discarding sinks, every record its own batch or 512 to a batch: the
//!   writer's and the sinks' threads' hand-off, in records per second.
//!
//! Under instructions (`DYNOSTATS_BENCH_MEASUREMENT=instructions`, feature
//! `criterion`, see `benches/support/mod.rs`) the first three count the
//! bench thread's user-space instructions; the writer thread's work is not
//! in them.

#[path = "support/emit.rs"]
mod emit;
mod support;

use std::hint::black_box;

use criterion::measurement::Measurement;
use criterion::{BatchSize, Criterion, Throughput};
use dynostats::{Pipeline, Record, Region, sample::Sampler, sink::Batch};

#[inline(never)]
fn empty() {
    black_box(());
}

fn measure_unsampled<M: Measurement>(c: &mut Criterion<M>) {
    let pipeline = Pipeline::builder()
        .sink(emit::CountingSink)
        .status_interval(None)
        .build()
        .unwrap();
    let _scope = pipeline.scoped();
    let mut g = c.benchmark_group(support::name("measure_unsampled"));
    g.bench_function("empty_function", |b| b.iter(empty));
    dynostats::set_sample_rate(u64::MAX / 2);
    g.bench_function("measure_not_picked", |b| {
        b.iter(|| {
            let guard = dynostats::measure(black_box("region"));
            empty();
            drop(guard);
        })
    });
    dynostats::set_sample_rate(0);
    g.bench_function("measure_disabled", |b| {
        b.iter(|| {
            let guard = dynostats::measure(black_box("region"));
            empty();
            drop(guard);
        })
    });
    g.finish();
    dynostats::set_sample_rate(dynostats::sample::Sampler::DEFAULT_RATE);
}

fn measure_sampled<M: Measurement>(c: &mut Criterion<M>) {
    let pipeline = Pipeline::builder()
        .sink(emit::CountingSink)
        .status_interval(None)
        .build()
        .unwrap();
    let _scope = pipeline.scoped();
    let every = Sampler::new(1);
    let mut g = c.benchmark_group(support::name("measure_sampled"));
    g.bench_function("two_snapshots", |b| {
        b.iter(|| {
            let start = dynostats::counters::snapshot_start();
            empty();
            let end = dynostats::counters::snapshot_end();
            black_box(dynostats::Delta::between(&start, &end))
        })
    });
    g.bench_function("measure_picked", |b| {
        b.iter(|| {
            let guard = Region::with_sampler(&every, black_box("region")).start();
            empty();
            drop(guard);
        })
    });
    let stats = pipeline.shutdown().unwrap();
    eprintln!(
        "measure_sampled: {} records accepted, {} dropped (queue full)",
        stats.accepted, stats.dropped_queue_full
    );
    // The same guard into a shut-down pipeline: the record is built and
    // then dropped on this thread, with no writer thread competing for the
    // two cores. The measured thread's own cost, without the queue push.
    g.bench_function("measure_picked_no_writer", |b| {
        b.iter(|| {
            let guard = Region::with_sampler(&every, black_box("region")).start();
            empty();
            drop(guard);
        })
    });
    g.finish();
}

/// The request record of the emit bench, with one label of its own.
fn typical_record() -> Record {
    let mut r = emit::request_record();
    r.set_label("host", "web-1");
    r
}

fn encode<M: Measurement>(c: &mut Criterion<M>) {
    let record = typical_record();
    let mut g = c.benchmark_group(support::name("encode"));
    g.bench_function("record_to_msgpack", |b| {
        let mut buf = Vec::with_capacity(512);
        b.iter(|| {
            buf.clear();
            black_box(&record).write_msgpack(&mut buf);
            black_box(buf.len())
        })
    });
    g.bench_function("record_clone", |b| b.iter(|| black_box(record.clone())));
    g.finish();
}

fn emit_and_write(c: &mut Criterion) {
    const N: u64 = 200_000;
    let mut g = c.benchmark_group(support::name("emit_and_write"));
    g.throughput(Throughput::Elements(N));
    g.sample_size(10);
    g.bench_function("file_200k_records", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| emit::emit_and_write_n(N, 1)).sum())
    });
    g.throughput(Throughput::Elements(2 * N));
    g.bench_function("file_200k_records_x2_producers", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| emit::emit_and_write_n(N, 2)).sum())
    });
    g.throughput(Throughput::Elements(N));
    // Batch encoding alone, on one thread: the writer's share.
    g.bench_function("batch_encode_200k_records", |b| {
        let record = emit::request_record();
        b.iter_batched_ref(
            Batch::new,
            |batch| {
                for _ in 0..N {
                    batch.push(&record);
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// The writer's capacity when every record is its own batch
/// (`batch_size(1)`): three producers emitting bursts of 200, through one
/// and two sinks that discard. Each case first prints how often an emit
/// found the queue full in one run (the producers then wait for room, so
/// the throughput counts every record).
fn writer_capacity(c: &mut Criterion) {
    const N: u64 = 100_000;
    const PRODUCERS: u64 = 3;
    let mut g = c.benchmark_group(support::name("writer_capacity"));
    g.throughput(Throughput::Elements(N * PRODUCERS));
    g.sample_size(10);
    for (sinks, batch_size) in [(1, 1), (2, 1), (1, 512), (2, 512)] {
        let (_, full) = emit::writer_capacity(N, PRODUCERS, 200, sinks, batch_size);
        eprintln!(
            "writer_capacity: {sinks} sink(s), batch_size({batch_size}): {full} emits of {} found the queue full",
            N * PRODUCERS
        );
        g.bench_function(format!("batch_{batch_size}_sinks_{sinks}"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| emit::writer_capacity(N, PRODUCERS, 200, sinks, batch_size).0)
                    .sum()
            })
        });
    }
    g.finish();
}

bench_main!(
    both: [measure_unsampled, measure_sampled, encode],
    wall_only: [emit_and_write, writer_capacity],
);
