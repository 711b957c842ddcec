//! Per-read cost of each counter source beside its raw baseline, and the
//! default set beside the sum of the raw reads it is made of.
//!
//! Run: `cargo bench --bench counters`; in instructions of the bench
//! thread: `DYNOSTATS_BENCH_MEASUREMENT=instructions cargo bench --features
//! criterion --bench counters` (see `benches/support/mod.rs`).

mod support;

use std::fs::File;
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::time::Instant;

use criterion::Criterion;
use criterion::measurement::Measurement;
use dynostats::{counters::Counter, counters::CounterSet, counters::Counters};
use perf_event::events::Software;
use perf_event::{Builder, Group};

fn clock_gettime(clock: libc::clockid_t) -> libc::timespec {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the duration of the call.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts
}

fn only(c: Counter) -> CounterSet {
    CounterSet::wall_only().with(c)
}

fn clocks<M: Measurement>(c: &mut Criterion<M>) {
    let mut g = c.benchmark_group(support::name("clocks"));
    g.bench_function("raw Instant::now", |b| b.iter(Instant::now));
    g.bench_function("raw clock_gettime MONOTONIC", |b| {
        b.iter(|| clock_gettime(libc::CLOCK_MONOTONIC))
    });
    g.bench_function("raw clock_gettime THREAD_CPUTIME_ID", |b| {
        b.iter(|| clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID))
    });
    let mut wall = Counters::open(CounterSet::wall_only());
    g.bench_function("dynostats wall only", |b| b.iter(|| wall.snapshot()));
    g.finish();
}

fn perf<M: Measurement>(c: &mut Criterion<M>) {
    let mut g = c.benchmark_group(support::name("perf"));
    let mut task_clock = Builder::new(Software::TASK_CLOCK)
        .enabled(true)
        .build()
        .expect("task-clock");
    g.bench_function("raw Counter::read task-clock", |b| {
        b.iter(|| task_clock.read().unwrap())
    });
    let mut group = Group::new().expect("group");
    let _tc = group
        .add(&Builder::new(Software::TASK_CLOCK))
        .expect("task-clock");
    let _pf = group
        .add(&Builder::new(Software::PAGE_FAULTS))
        .expect("page faults");
    let _cs = group
        .add(&Builder::new(Software::CONTEXT_SWITCHES))
        .expect("context switches");
    group.enable().unwrap();
    g.bench_function("raw Group::read of 3 software events", |b| {
        b.iter(|| group.read().unwrap())
    });
    let mut cpu = Counters::open(only(Counter::CpuTime));
    g.bench_function("dynostats cpu_time (task-clock group)", |b| {
        b.iter(|| cpu.snapshot())
    });
    let mut sw3 = Counters::open(
        CounterSet::wall_only()
            .with(Counter::CpuTime)
            .with(Counter::PageFaults)
            .with(Counter::ContextSwitches),
    );
    g.bench_function("dynostats cpu+faults+switches", |b| {
        b.iter(|| sw3.snapshot())
    });
    g.finish();
}

fn rss<M: Measurement>(c: &mut Criterion<M>) {
    let mut g = c.benchmark_group(support::name("rss"));
    let statm = File::open("/proc/self/statm").unwrap();
    let mut buf = [0u8; 128];
    g.bench_function("raw pread /proc/self/statm", |b| {
        b.iter(|| statm.read_at(&mut buf, 0).unwrap())
    });
    g.bench_function("raw open+read+close /proc/self/statm", |b| {
        b.iter(|| std::fs::read("/proc/self/statm").unwrap())
    });
    let mut rss = Counters::open(only(Counter::Rss));
    g.bench_function("dynostats rss", |b| b.iter(|| rss.snapshot()));
    g.finish();
}

/// The default set next to exactly the raw reads it consists of on this
/// machine: one group read, one monotonic clock read, one statm pread.
fn default_set<M: Measurement>(c: &mut Criterion<M>) {
    let mut g = c.benchmark_group(support::name("default set"));
    let mut counters = Counters::open(CounterSet::default());
    let path = counters.source();
    // The same perf events the default set managed to open, as a raw group.
    let mut group = Group::new().expect("group");
    let mut members = Vec::new();
    for c in [Counter::Instructions, Counter::Cycles] {
        if counters.is_available(c) {
            let event = if c == Counter::Instructions {
                perf_event::events::Hardware::INSTRUCTIONS
            } else {
                perf_event::events::Hardware::CPU_CYCLES
            };
            members.push(group.add(&Builder::new(event)).unwrap());
        }
    }
    members.push(group.add(&Builder::new(Software::TASK_CLOCK)).unwrap());
    group.enable().unwrap();
    let statm = File::open("/proc/self/statm").unwrap();
    let mut buf = [0u8; 128];
    g.bench_function(
        "raw parts: Group::read + clock_gettime + pread statm",
        |b| {
            b.iter(|| {
                black_box(group.read().unwrap());
                black_box(clock_gettime(libc::CLOCK_MONOTONIC));
                black_box(statm.read_at(&mut buf, 0).unwrap())
            })
        },
    );
    g.bench_function(format!("dynostats default set (path {path})"), |b| {
        b.iter(|| counters.snapshot())
    });
    g.finish();
}

bench_main!(both: [clocks, perf, rss, default_set], wall_only: []);
