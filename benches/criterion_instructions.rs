//! Criterion benchmarks in instructions: a bench to copy.
//!
//! ```text
//! cargo bench --features criterion --bench criterion_instructions
//! ```
//!
//! Three groups: `sort (wall)` runs a `Vec` sort under criterion's wall
//! time, the baseline; `sort` and `guard` run the same sort and a sampled
//! `dynostats::measure` guard in user-space instructions of the bench
//! thread; `tasks` counts, with `Reach::Polls`, the polls of tasks a
//! multi-threaded tokio runtime runs on its worker threads for each
//! iteration.
//!
//! Without a hardware PMU (a VM without a virtual PMU, `perf_event_paranoid`
//! above 2), the instruction groups print why and the bench exits with
//! status 2 after the wall-time group; set `DYNOSTATS_BENCH_FALLBACK=cpu`
//! to measure CPU time instead (printed as `ns cpu`, never as
//! instructions). To count instructions in a VM without a PMU, run it in
//! the repository's emulated aarch64 guest, `scripts/pmu-guest`
//! (CONTRIBUTING.md; `setup.sh` once, as root):
//!
//! ```text
//! scripts/pmu-guest/cargo-aarch64.sh build --release --features criterion --bench criterion_instructions
//! scripts/pmu-guest/run_guest.sh -e CRITERION_HOME=/tmp/criterion \
//!     target/pmu-guest/aarch64-unknown-linux-gnu/release/deps/criterion_instructions-* --bench
//! ```

use std::hint::black_box;
use std::io;

use criterion::measurement::Measurement;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use dynostats::criterion::{Instructions, OrCpuTime, Reach, count};
use dynostats::{Pipeline, Region, sample::Sampler, sink::Batch, sink::Sink};

/// Elements sorted per iteration.
const N: usize = 10_000;

fn input() -> Vec<u64> {
    // A fixed pseudo-random permutation: every run sorts the same input.
    (0..N as u64)
        .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17))
        .collect()
}

/// The bench thread's instructions. Without a PMU: the reason, then exit
/// status 2, or CPU time when `DYNOSTATS_BENCH_FALLBACK=cpu` asks for it.
fn instructions(scope: Reach) -> OrCpuTime<Instructions> {
    match Instructions::with_reach(scope) {
        Ok(m) => OrCpuTime::Counter(m),
        Err(_) if std::env::var("DYNOSTATS_BENCH_FALLBACK").is_ok_and(|v| v == "cpu") => {
            Instructions::with_reach_or_cpu_time(scope)
        }
        Err(e) => {
            eprintln!(
                "cannot count instructions here: {e}\n\
                 (set DYNOSTATS_BENCH_FALLBACK=cpu to measure CPU time instead)"
            );
            std::process::exit(2)
        }
    }
}

fn sort<M: Measurement>(c: &mut Criterion<M>, name: &str) {
    let input = input();
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("sort_unstable 10k u64", |b| {
        b.iter_batched_ref(
            || input.clone(),
            |v| v.sort_unstable(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn sort_wall(c: &mut Criterion) {
    sort(c, "sort (wall)");
}

fn sort_instructions(c: &mut Criterion<OrCpuTime<Instructions>>) {
    sort(c, "sort");
}

/// Discards records: the guard's cost, not the sink's.
struct Discard;

impl Sink for Discard {
    fn name(&self) -> String {
        "discard".into()
    }
    fn write_batch(&mut self, batch: &Batch) -> io::Result<()> {
        black_box(batch.len());
        Ok(())
    }
}

fn guard(c: &mut Criterion<OrCpuTime<Instructions>>) {
    let pipeline = Pipeline::builder()
        .sink(Discard)
        .status_interval(None)
        .build()
        .unwrap();
    let _scope = pipeline.scoped();
    let every = Sampler::new(1);
    let mut g = c.benchmark_group("guard");
    g.bench_function("empty", |b| b.iter(|| black_box(())));
    g.bench_function("measure_sampled", |b| {
        b.iter(|| drop(Region::with_sampler(&every, black_box("region")).start()))
    });
    g.finish();
}

fn tasks(c: &mut Criterion<OrCpuTime<Instructions>>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let input = input();
    let mut g = c.benchmark_group("tasks");
    g.throughput(Throughput::Elements(2 * N as u64));
    // Two tasks sort a copy each on the runtime's workers; only the
    // counted futures' polls are in the figure, wherever they ran.
    g.bench_function("2 spawned sorts of 10k u64", |b| {
        b.to_async(&runtime).iter(|| {
            let (a, b) = (input.clone(), input.clone());
            async move {
                let one = tokio::spawn(count(async move {
                    let mut a = a;
                    a.sort_unstable();
                    a
                }));
                let two = tokio::spawn(count(async move {
                    let mut b = b;
                    b.sort_unstable();
                    b
                }));
                black_box((one.await.unwrap(), two.await.unwrap()))
            }
        })
    });
    g.finish();
}

criterion_group!(wall_time, sort_wall);
criterion_group! {
    name = in_instructions;
    config = Criterion::default().with_measurement(instructions(Reach::Thread));
    targets = sort_instructions, guard
}
criterion_group! {
    name = in_polls;
    config = Criterion::default().with_measurement(instructions(Reach::Polls));
    targets = tasks
}
criterion_main!(wall_time, in_instructions, in_polls);
