//! Criterion measurements in instructions, cycles and CPU time (feature
//! `criterion`).
//!
//! **Criterion version:** these are measurements of criterion **0.8**
//! (`cargo add criterion` today; the feature needs Rust 1.86, criterion
//! 0.8's own minimum). Criterion's `Measurement` trait is a different
//! trait in each 0.x line, so a bench built against criterion 0.5, 0.6 or
//! 0.7 fails with "the trait `Measurement` is not implemented for
//! `Instructions`": move the bench's `criterion` to 0.8.
//!
//! [`Instructions`], [`Cycles`] and [`CpuTime`] are
//! [`criterion::measurement::Measurement`]s: a criterion benchmark run with
//! one of them reports what one iteration costs in user-space instructions,
//! CPU cycles or CPU nanoseconds instead of wall time. Unlike wall time, an
//! instruction count barely moves with machine load, CPU frequency or noisy
//! neighbours, so a benchmark can see a change of a fraction of a percent
//! (see `BENCHMARKS.md` for the spread of each, measured).
//!
//! ```no_run
//! use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
//! use dynostats::criterion::{Instructions, OrCpuTime};
//!
//! // The measurement's type is in the benchmark function's signature.
//! fn sort(c: &mut Criterion<OrCpuTime<Instructions>>) {
//!     let mut group = c.benchmark_group("sort");
//!     for n in [1_000u64, 10_000] {
//!         let input: Vec<u64> = (0..n).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
//!         group.throughput(Throughput::Elements(n));
//!         group.bench_with_input(BenchmarkId::from_parameter(n), &input, |b, input| {
//!             b.iter_batched_ref(|| input.clone(), |v| v.sort(), criterion::BatchSize::SmallInput)
//!         });
//!     }
//!     group.finish();
//! }
//!
//! criterion_group! {
//!     name = benches;
//!     // Instructions of the bench thread; on a machine without a PMU, its
//!     // CPU time (printed as `ns cpu`, with the reason on stderr).
//!     config = Criterion::default().with_measurement(Instructions::new_or_cpu_time());
//!     targets = sort
//! }
//! criterion_main!(benches);
//! ```
//!
//! For instruction counts or nothing, take `Criterion<Instructions>` and
//! `Instructions::new()`, which fails where the counter cannot be opened,
//! with the reason and the fallback to use instead:
//!
//! ```no_run
//! use criterion::Criterion;
//! use dynostats::criterion::Instructions;
//!
//! fn config() -> Criterion<Instructions> {
//!     let m = Instructions::new().unwrap_or_else(|e| {
//!         eprintln!("cannot count instructions here: {e}");
//!         std::process::exit(2)
//!     });
//!     Criterion::default().with_measurement(m)
//! }
//! ```
//!
//! `benches/criterion_instructions.rs` in the repository is a complete bench
//! to copy, with the choices below.
//!
//! # Machines without a PMU
//!
//! Hardware counters are often missing: a VM without a virtual PMU
//! (`ENOENT`), `perf_event_paranoid` above 2 without `CAP_PERFMON`
//! (`EACCES`), a seccomp filter (`EPERM`). Then [`Instructions::new`] and
//! [`Cycles::new`] return [`Error::CounterUnavailable`] carrying the same
//! reason [`probe`](crate::probe()) gives. There is no silent fallback: a
//! figure labelled instructions is always an instruction count. Opt in to
//! a fallback with [`Instructions::new_or_cpu_time`] (or
//! [`Cycles::new_or_cpu_time`]): it returns an [`OrCpuTime`] that counts
//! instructions where it can, and otherwise measures [`CpuTime`], prints
//! `ns cpu` as its unit and says why on stderr.
//!
//! To count instructions inside a VM that has no PMU, run the bench in the
//! emulated aarch64 machine of the repository's `scripts/pmu-guest` (its
//! PMU counts user-space instructions exactly; `CONTRIBUTING.md` says how,
//! and `.ci/pmu-guest` does it for the library's own benches), or on a
//! host where `perf_event_paranoid` is 2 or lower.
//!
//! # What is counted: [`Reach`]
//!
//! - [`Reach::Thread`] (the default): the thread that runs the benchmark.
//!   Through [`Counters`], so the user-space read
//!   (`rdpmc`) is used where the kernel allows it, else one `read(2)`.
//! - [`Reach::Inherited`]: the thread that built the measurement and every
//!   thread it (or one of those threads) creates afterwards, with perf's
//!   `inherit`: worker pools and runtimes built inside the benchmark
//!   function are counted, threads that existed before are not. The kernel
//!   adds the counts of live child threads to every `read(2)` and folds in
//!   those of exited ones, so a thread spawned and joined inside an
//!   iteration is counted in full. Such a counter cannot be read from user
//!   space (`rdpmc` reads only the calling thread's count), so every read
//!   is a system call.
//! - [`Reach::Polls`]: the polls of futures wrapped with [`count`], on
//!   whichever thread ran them, for `b.to_async(...)` and tasks spawned on
//!   a multi-threaded runtime. Each poll is read around on the polling
//!   thread with the library's per-poll accounting (the engine of
//!   [`Measured`](crate::instrument::Measured) and the tower layer), so work of other
//!   tasks between two polls is not counted, nor is the executor's own.
//!   It reads the thread counters of [`snapshot`](crate::counters::snapshot), so
//!   the counter must be in [`thread_counters`]
//!   (the default set has all three). A future's counts are added when it
//!   completes or is dropped: await what an iteration spawns inside it.
//!
//! What the kernel allows with `inherit`: group reads
//! (`PERF_FORMAT_GROUP`) of inherited events work on the kernels checked
//! (6.1 in the emulated guest, with instructions; 6.18 on the development
//! VM, with task-clock), the children's counts included; the perf_event_open
//! man page still warns that "inherit does not work for some combinations
//! of read_formats, such as PERF_FORMAT_GROUP", and perf-event2 refuses to
//! build an inherited group member. So each inherited measurement opens
//! one event on its own (no group), read with `TOTAL_TIME_ENABLED |
//! TOTAL_TIME_RUNNING`, which every kernel with `inherit` supports.
//!
//! # Multiplexing
//!
//! When more events are asked of the PMU than it has counters, the kernel
//! time-slices them and a count covers only part of the time. Such counts
//! are scaled by `time_enabled / time_running` (the rule of
//! [`Delta::between`]) and the bench output says so:
//! the unit becomes e.g. `k instructions (scaled)` for that benchmark, and
//! a line on stderr says the figures are estimates.
//!
//! # What one figure includes
//!
//! Criterion reads the measurement once before and once after a batch of
//! iterations and divides. The fixed cost of the two reads is in every
//! batch and criterion's linear fit of batch sizes takes most of it out
//! of the slope; on the emulated PMU a read costs a few hundred
//! instructions (`snapshot_instructions_*` in `BENCHMARKS.md`).
//!
//! A reading that is missing (the counter never ran on the PMU during a
//! batch, a future's poll on a thread whose counter could not open) stops
//! the benchmark with a panic saying why: the trait has no way to return
//! "unknown", and a made-up figure would be worse.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use criterion::Throughput;
use criterion::measurement::{Measurement, ValueFormatter};
use perf_event::events::{Hardware, Software};
use perf_event::{Builder, ReadFormat};
use pin_project_lite::pin_project;

use crate::counters::{
    Counter, CounterSet, Counters, Delta, ReadPath, Snapshot, Unavailable, thread_counters,
    with_thread_counters,
};
use crate::error::{ConfigError, ConfigErrorKind, Error};
use crate::instrument::accounting::PollAccounting;
use crate::record::{Record, RecordKind};

/// Which threads' work a measurement counts.
///
/// Measurements are `!Send`: the bench-thread reach reads counters that
/// count the thread that opened them, so a measurement stays on that
/// thread.
///
/// ```compile_fail
/// fn send<T: Send>(_: T) {}
/// send(dynostats::criterion::CpuTime::new().unwrap());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reach {
    /// The thread that runs the benchmark (the thread that built the
    /// measurement: measurements are `!Send`).
    #[default]
    Thread,
    /// That thread and every thread created after the measurement was
    /// built by it or by threads it created (perf `inherit`).
    Inherited,
    /// The polls of futures wrapped with [`count`], on whichever thread
    /// polled them.
    Polls,
}

/// The measured value before a batch of iterations: criterion's
/// `Measurement::Intermediate` for every measurement of this module.
#[derive(Clone, Copy, Debug)]
pub struct Start(Reading);

#[derive(Clone, Copy, Debug)]
enum Reading {
    Snapshot(Snapshot),
    Polls(PollTotals),
}

/// What one kind of measurement counts and how it prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Instructions,
    Cycles,
    CpuTime,
}

impl Kind {
    fn counter(self) -> Counter {
        match self {
            Kind::Instructions => Counter::Instructions,
            Kind::Cycles => Counter::Cycles,
            Kind::CpuTime => Counter::CpuTime,
        }
    }
}

enum Source {
    Thread(RefCell<Counters>),
    Inherited(RefCell<perf_event::Counter>),
    Polls,
}

/// The shared engine behind [`Instructions`], [`Cycles`] and [`CpuTime`].
struct Engine {
    kind: Kind,
    reach: Reach,
    source: Source,
    /// A sample of the benchmark being measured was scaled.
    scaled: Cell<bool>,
    /// The formatter ran since the last sample: the next sample starts a
    /// new benchmark, whose `scaled` starts false.
    reported: Cell<bool>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Measurement")
            .field("counter", &self.kind.counter())
            .field("reach", &self.reach)
            .field("source", &self.read_path())
            .finish_non_exhaustive()
    }
}

impl Engine {
    fn open(kind: Kind, reach: Reach) -> Result<Engine, Error> {
        let counter = kind.counter();
        let source = match reach {
            Reach::Thread => {
                let counters = Counters::open(CounterSet::wall_only().with(counter));
                // CPU time is unavailable only when neither the task-clock
                // event nor the thread CPU clock gives it.
                if let Some(u) = counters.unavailable().iter().find(|u| u.counter == counter) {
                    return Err(Error::CounterUnavailable(u.clone()));
                }
                Source::Thread(RefCell::new(counters))
            }
            Reach::Inherited => {
                let mut builder = match kind {
                    Kind::Instructions => Builder::new(Hardware::INSTRUCTIONS),
                    Kind::Cycles => Builder::new(Hardware::CPU_CYCLES),
                    Kind::CpuTime => Builder::new(Software::TASK_CLOCK),
                };
                // One event, no group: see the module docs for why.
                builder
                    .observe_self()
                    .any_cpu()
                    .inherit(true)
                    .enabled(true)
                    .exclude_kernel(true)
                    .exclude_hv(true)
                    .read_format(ReadFormat::TOTAL_TIME_ENABLED | ReadFormat::TOTAL_TIME_RUNNING);
                let event = builder.build().map_err(|e| {
                    Error::CounterUnavailable(Unavailable::from_open_error(counter, &e))
                })?;
                Source::Inherited(RefCell::new(event))
            }
            Reach::Polls => {
                if !thread_counters().contains(counter) {
                    let kind = ConfigErrorKind::CounterLeftOut {
                        counter,
                        needed_by: "Reach::Polls",
                    };
                    return Err(ConfigError::new("set_thread_counters", kind).into());
                }
                let missing = with_thread_counters(|c| {
                    c.unavailable()
                        .iter()
                        .find(|u| u.counter == counter)
                        .cloned()
                })
                .flatten();
                if let Some(u) = missing {
                    return Err(Error::CounterUnavailable(u));
                }
                Source::Polls
            }
        };
        Ok(Engine {
            kind,
            reach,
            source,
            scaled: Cell::new(false),
            reported: Cell::new(false),
        })
    }

    fn read_path(&self) -> ReadPath {
        match &self.source {
            Source::Thread(c) => c.borrow().source(),
            Source::Inherited(_) if self.kind == Kind::CpuTime => ReadPath::Software,
            Source::Inherited(_) => ReadPath::Read,
            Source::Polls => with_thread_counters(|c| c.source()).unwrap_or_default(),
        }
    }

    /// A snapshot of the inherited event: its count in the field of its
    /// kind, with the times that scale it. `None` fields when the read
    /// failed.
    fn read_inherited(&self, event: &RefCell<perf_event::Counter>) -> Snapshot {
        let mut s = Snapshot::default();
        if let Ok(data) = event.borrow_mut().read_full() {
            let nanos = |d: Option<std::time::Duration>| d.map_or(0, |d| d.as_nanos() as u64);
            s.time_enabled = nanos(data.time_enabled());
            s.time_running = nanos(data.time_running());
            match self.kind {
                Kind::Instructions => s.instructions = Some(data.count()),
                Kind::Cycles => s.cycles = Some(data.count()),
                // Task-clock is a software event: never multiplexed, and
                // not scaled by Delta::between (cpu_ns outside a group).
                Kind::CpuTime => s.cpu_ns = Some(data.count()),
            }
            s.source = self.read_path();
        }
        s
    }

    fn start(&self) -> Start {
        if self.reported.replace(false) {
            self.scaled.set(false);
        }
        Start(match &self.source {
            Source::Thread(c) => Reading::Snapshot(c.borrow_mut().snapshot_start()),
            Source::Inherited(e) => Reading::Snapshot(self.read_inherited(e)),
            Source::Polls => Reading::Polls(PollTotals::now()),
        })
    }

    fn end(&self, start: Start) -> u64 {
        let counter = self.kind.counter();
        let (value, scaled) = match (&self.source, start.0) {
            (Source::Thread(c), Reading::Snapshot(s)) => {
                let end = c.borrow_mut().snapshot_end();
                let d = Delta::between(&s, &end);
                (d.get(counter), d.scaled)
            }
            (Source::Inherited(e), Reading::Snapshot(s)) => {
                let d = Delta::between(&s, &self.read_inherited(e));
                (d.get(counter), d.scaled)
            }
            (Source::Polls, Reading::Polls(s)) => PollTotals::now().since(&s, self.kind),
            _ => unreachable!("a Start is only made by the same kind of source"),
        };
        let Some(value) = value else {
            panic!(
                "dynostats::criterion: no {counter} reading for this batch of iterations \
                 (reach {:?}): the counter never ran on the PMU while it was enabled, its \
                 read failed, or a counted future was polled on a thread where it could \
                 not open; refusing to report a figure that was not measured",
                self.reach
            );
        };
        if scaled && !self.scaled.replace(true) {
            eprintln!(
                "dynostats::criterion: the {counter} counter was multiplexed with other \
                 events (the PMU has too few counters): its figures are scaled estimates, \
                 marked \"(scaled)\""
            );
        }
        value
    }
}

/// Units of a count, with SI prefixes, plain and scaled.
struct CountUnits {
    values: [&'static str; 4],
    scaled: [&'static str; 4],
    bytes: [&'static str; 4],
    elements: [&'static str; 4],
    bits: [&'static str; 4],
}

macro_rules! count_units {
    ($plural:literal, $short:literal) => {
        CountUnits {
            values: [
                $plural,
                concat!("k ", $plural),
                concat!("M ", $plural),
                concat!("G ", $plural),
            ],
            scaled: [
                concat!($plural, " (scaled)"),
                concat!("k ", $plural, " (scaled)"),
                concat!("M ", $plural, " (scaled)"),
                concat!("G ", $plural, " (scaled)"),
            ],
            bytes: [
                concat!("B/", $short),
                concat!("B/k ", $short),
                concat!("B/M ", $short),
                concat!("B/G ", $short),
            ],
            elements: [
                concat!("elem/", $short),
                concat!("elem/k ", $short),
                concat!("elem/M ", $short),
                concat!("elem/G ", $short),
            ],
            bits: [
                concat!("b/", $short),
                concat!("b/k ", $short),
                concat!("b/M ", $short),
                concat!("b/G ", $short),
            ],
        }
    };
}

static INSTRUCTION_UNITS: CountUnits = count_units!("instructions", "instr");
static CYCLE_UNITS: CountUnits = count_units!("cycles", "cycle");

/// The SI step (0 = none, 1 = k, 2 = M, 3 = G) for `typical`.
fn si_step(typical: f64) -> usize {
    match typical {
        t if t < 1e3 => 0,
        t if t < 1e6 => 1,
        t if t < 1e9 => 2,
        _ => 3,
    }
}

const SI: [f64; 4] = [1.0, 1e3, 1e6, 1e9];

/// What a throughput counts per iteration.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Amount {
    Bytes(f64),
    BytesDecimal(f64),
    Elements(f64),
    Bits(f64),
}

impl Amount {
    /// `ElementsAndBytes` is reported as elements: criterion asks for its
    /// bytes separately, as a `Bytes` throughput (what its own wall-time
    /// formatter assumes too).
    fn of(throughput: &Throughput) -> Amount {
        match *throughput {
            Throughput::Bytes(n) => Amount::Bytes(n as f64),
            Throughput::BytesDecimal(n) => Amount::BytesDecimal(n as f64),
            Throughput::Elements(n) | Throughput::ElementsAndBytes { elements: n, .. } => {
                Amount::Elements(n as f64)
            }
            Throughput::Bits(n) => Amount::Bits(n as f64),
        }
    }

    fn value(self) -> f64 {
        match self {
            Amount::Bytes(n) | Amount::BytesDecimal(n) | Amount::Elements(n) | Amount::Bits(n) => n,
        }
    }
}

impl ValueFormatter for Engine {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        self.reported.set(true);
        let step = si_step(typical);
        values.iter_mut().for_each(|v| *v /= SI[step]);
        let units = match self.kind {
            Kind::Instructions => &INSTRUCTION_UNITS,
            Kind::Cycles => &CYCLE_UNITS,
            Kind::CpuTime => return ["ns cpu", "µs cpu", "ms cpu", "s cpu"][step],
        };
        if self.scaled.get() {
            units.scaled[step]
        } else {
            units.values[step]
        }
    }

    fn scale_throughputs(
        &self,
        typical: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        self.reported.set(true);
        let amount = Amount::of(throughput);
        let per = amount.value();
        let rate = |v: f64| if v > 0.0 { per / v } else { 0.0 };
        let units = match self.kind {
            Kind::Instructions => &INSTRUCTION_UNITS,
            Kind::Cycles => &CYCLE_UNITS,
            Kind::CpuTime => return cpu_throughput(typical, amount, values),
        };
        // Amount per counted unit, per thousand, per million or per
        // billion of them, so the typical figure is at least 1.
        let typical_rate = rate(typical);
        let step = (0..4).find(|&i| typical_rate * SI[i] >= 1.0).unwrap_or(3);
        values.iter_mut().for_each(|v| *v = rate(*v) * SI[step]);
        match amount {
            Amount::Bytes(_) | Amount::BytesDecimal(_) => units.bytes[step],
            Amount::Elements(_) => units.elements[step],
            Amount::Bits(_) => units.bits[step],
        }
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        match self.kind {
            Kind::Instructions => "instructions",
            Kind::Cycles => "cycles",
            Kind::CpuTime => "ns",
        }
    }
}

/// Throughput per second of CPU time, in criterion's own forms: binary
/// prefixes for `Bytes`, decimal for `BytesDecimal`, `Elements` and `Bits`.
fn cpu_throughput(typical: f64, amount: Amount, values: &mut [f64]) -> &'static str {
    let per = amount.value();
    let per_second = |ns: f64| if ns > 0.0 { per * 1e9 / ns } else { 0.0 };
    let typical = per_second(typical);
    let (base, units): (f64, [&'static str; 4]) = match amount {
        Amount::Bytes(_) => (1024.0, ["B/s cpu", "KiB/s cpu", "MiB/s cpu", "GiB/s cpu"]),
        Amount::BytesDecimal(_) => (1000.0, ["B/s cpu", "KB/s cpu", "MB/s cpu", "GB/s cpu"]),
        Amount::Elements(_) => (
            1000.0,
            ["elem/s cpu", "Kelem/s cpu", "Melem/s cpu", "Gelem/s cpu"],
        ),
        Amount::Bits(_) => (1000.0, ["b/s cpu", "Kb/s cpu", "Mb/s cpu", "Gb/s cpu"]),
    };
    let step = (1..4)
        .rev()
        .find(|&i| typical >= base.powi(i as i32))
        .unwrap_or(0);
    let divisor = base.powi(step as i32);
    values
        .iter_mut()
        .for_each(|v| *v = per_second(*v) / divisor);
    units[step]
}

macro_rules! measurement {
    ($(#[$doc:meta])* $name:ident, $kind:expr) => {
        $(#[$doc])*
        pub struct $name(Engine);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.0).finish()
            }
        }

        impl $name {
            /// The reach of this measurement: what it counts.
            pub fn reach(&self) -> Reach {
                self.0.reach
            }

            /// How the counter is read: `Rdpmc` (user space), `Read`
            /// (`read(2)`) or `Software`.
            pub fn read_path(&self) -> ReadPath {
                self.0.read_path()
            }
        }

        impl Measurement for $name {
            type Intermediate = Start;
            type Value = u64;

            #[inline]
            fn start(&self) -> Start {
                self.0.start()
            }

            #[inline]
            fn end(&self, start: Start) -> u64 {
                self.0.end(start)
            }

            fn add(&self, a: &u64, b: &u64) -> u64 {
                a.saturating_add(*b)
            }

            fn zero(&self) -> u64 {
                0
            }

            fn to_f64(&self, value: &u64) -> f64 {
                *value as f64
            }

            fn formatter(&self) -> &dyn ValueFormatter {
                &self.0
            }
        }
    };
}

measurement!(
    /// User-space instructions retired, as a criterion measurement: the
    /// hardware `instructions` event, printed as `instructions`,
    /// `k instructions`, `M instructions` or `G instructions` per
    /// iteration (throughput: bytes or elements per instruction, per
    /// thousand, ... instructions).
    ///
    /// Needs a hardware PMU: see the [module docs](self) for what happens
    /// without one, and for the scopes.
    ///
    /// ```
    /// use dynostats::criterion::Instructions;
    ///
    /// match Instructions::new() {
    ///     Ok(m) => println!("counting instructions, read path {}", m.read_path()),
    ///     // This VM has no PMU: the error says so.
    ///     Err(e) => println!("no instructions here: {e}"),
    /// }
    /// ```
    Instructions,
    Kind::Instructions
);

measurement!(
    /// User-space CPU cycles, as a criterion measurement: the hardware
    /// `cpu-cycles` event, printed as `cycles`, `k cycles`, ... per
    /// iteration. Needs a hardware PMU, like [`Instructions`].
    Cycles,
    Kind::Cycles
);

measurement!(
    /// CPU time, as a criterion measurement, in nanoseconds, printed as
    /// `ns cpu`, `µs cpu`, `ms cpu` or `s cpu` (throughput per second of
    /// CPU time). Works without a PMU: in [`Reach::Thread`] it is the perf
    /// task-clock of the thread (or `CLOCK_THREAD_CPUTIME_ID`), in
    /// [`Reach::Inherited`] an inherited task-clock.
    ///
    /// On a machine shared with other work it moves much less than wall
    /// time, since time spent waiting for a CPU is not counted.
    ///
    /// ```
    /// use criterion::measurement::Measurement;
    /// use dynostats::criterion::CpuTime;
    ///
    /// let cpu = CpuTime::new().unwrap();
    /// let start = cpu.start();
    /// let sum: u64 = (0..1_000_000u64).map(std::hint::black_box).sum();
    /// let ns = cpu.end(start);
    /// assert_eq!(sum, 499_999_500_000);
    /// assert!(ns > 0);
    /// ```
    CpuTime,
    Kind::CpuTime
);

impl Instructions {
    /// Counts the instructions of the bench thread ([`Reach::Thread`]).
    /// Fails with [`Error::CounterUnavailable`], and the reason, where
    /// the hardware counter cannot be opened.
    /// The reason names [`Instructions::new_or_cpu_time`], the opt-in
    /// fallback.
    pub fn new() -> Result<Instructions, Error> {
        Engine::open(Kind::Instructions, Reach::Thread)
            .map(Instructions)
            .map_err(|e| name_fallback(e, "Instructions::new_or_cpu_time()"))
    }

    /// Counts the instructions of `reach`. Fails like
    /// [`Instructions::new`]; the reason names
    /// [`Instructions::with_reach_or_cpu_time`].
    pub fn with_reach(reach: Reach) -> Result<Instructions, Error> {
        Engine::open(Kind::Instructions, reach)
            .map(Instructions)
            .map_err(|e| name_fallback(e, "Instructions::with_reach_or_cpu_time(reach)"))
    }

    /// Instructions of the bench thread where they can be counted, else
    /// its CPU time (the reason is printed to stderr and kept in the
    /// result).
    pub fn new_or_cpu_time() -> OrCpuTime<Instructions> {
        Instructions::with_reach_or_cpu_time(Reach::Thread)
    }

    /// Instructions of `reach` where they can be counted, else CPU time
    /// of the same reach.
    pub fn with_reach_or_cpu_time(reach: Reach) -> OrCpuTime<Instructions> {
        OrCpuTime::choose(
            Engine::open(Kind::Instructions, reach).map(Instructions),
            reach,
        )
    }
}

impl Cycles {
    /// Counts the CPU cycles of the bench thread ([`Reach::Thread`]).
    /// Fails with [`Error::CounterUnavailable`], and the reason, where
    /// the hardware counter cannot be opened.
    /// The reason names [`Cycles::new_or_cpu_time`], the opt-in fallback.
    pub fn new() -> Result<Cycles, Error> {
        Engine::open(Kind::Cycles, Reach::Thread)
            .map(Cycles)
            .map_err(|e| name_fallback(e, "Cycles::new_or_cpu_time()"))
    }

    /// Counts the CPU cycles of `reach`. Fails like [`Cycles::new`]; the
    /// reason names [`Cycles::with_reach_or_cpu_time`].
    pub fn with_reach(reach: Reach) -> Result<Cycles, Error> {
        Engine::open(Kind::Cycles, reach)
            .map(Cycles)
            .map_err(|e| name_fallback(e, "Cycles::with_reach_or_cpu_time(reach)"))
    }

    /// Cycles of the bench thread where they can be counted, else its CPU
    /// time (the reason is printed to stderr and kept in the result).
    pub fn new_or_cpu_time() -> OrCpuTime<Cycles> {
        Cycles::with_reach_or_cpu_time(Reach::Thread)
    }

    /// Cycles of `reach` where they can be counted, else CPU time of the
    /// same reach.
    pub fn with_reach_or_cpu_time(reach: Reach) -> OrCpuTime<Cycles> {
        OrCpuTime::choose(Engine::open(Kind::Cycles, reach).map(Cycles), reach)
    }
}

impl CpuTime {
    /// The CPU time of the bench thread ([`Reach::Thread`]).
    pub fn new() -> Result<CpuTime, Error> {
        CpuTime::with_reach(Reach::Thread)
    }

    /// The CPU time of `reach`.
    pub fn with_reach(reach: Reach) -> Result<CpuTime, Error> {
        Engine::open(Kind::CpuTime, reach).map(CpuTime)
    }
}

/// Adds to an absent counter's reason the constructor that falls back to
/// CPU time: a bench that fails on a machine without a PMU says what to
/// write instead. The fallback itself keeps the plain reason.
fn name_fallback(error: Error, fallback: &str) -> Error {
    match error {
        Error::CounterUnavailable(mut u) => {
            u.reason = format!(
                "{}; to measure CPU time (ns cpu) where it cannot be counted, use {fallback}",
                u.reason
            );
            Error::CounterUnavailable(u)
        }
        other => other,
    }
}

/// A hardware count where the machine has one, else CPU time: made by
/// [`Instructions::new_or_cpu_time`] or [`Cycles::new_or_cpu_time`].
///
/// The fallback prints `ns cpu` as its unit, never the counter's name, and
/// [`OrCpuTime::unavailable`] says why it was taken.
///
/// ```
/// use dynostats::criterion::{Instructions, OrCpuTime};
///
/// let m = Instructions::new_or_cpu_time();
/// match &m {
///     OrCpuTime::Counter(_) => println!("counting instructions"),
///     OrCpuTime::CpuTime { reason, .. } => println!("CPU time instead: {reason}"),
/// }
/// assert_eq!(m.unavailable().is_some(), matches!(m, OrCpuTime::CpuTime { .. }));
/// ```
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per benchmark; boxing would change the public field's type"
)]
pub enum OrCpuTime<M> {
    /// The hardware counter opened.
    Counter(M),
    /// It did not: CPU time is measured instead.
    CpuTime {
        /// The CPU time measurement.
        measurement: CpuTime,
        /// Why the counter could not be used.
        reason: Error,
    },
}

impl<M> OrCpuTime<M> {
    fn choose(counter: Result<M, Error>, reach: Reach) -> OrCpuTime<M> {
        match counter {
            Ok(m) => OrCpuTime::Counter(m),
            Err(reason) => {
                let measurement = CpuTime::with_reach(reach)
                    .or_else(|_| CpuTime::new())
                    .expect("thread CPU time is measurable wherever the thread CPU clock is");
                eprintln!("dynostats::criterion: measuring CPU time (ns cpu) instead: {reason}");
                OrCpuTime::CpuTime {
                    measurement,
                    reason,
                }
            }
        }
    }

    /// Why the hardware counter was not used, or `None` when it is.
    pub fn unavailable(&self) -> Option<&Error> {
        match self {
            OrCpuTime::Counter(_) => None,
            OrCpuTime::CpuTime { reason, .. } => Some(reason),
        }
    }
}

impl<M: Measurement<Intermediate = Start, Value = u64>> Measurement for OrCpuTime<M> {
    type Intermediate = Start;
    type Value = u64;

    #[inline]
    fn start(&self) -> Start {
        match self {
            OrCpuTime::Counter(m) => m.start(),
            OrCpuTime::CpuTime { measurement, .. } => measurement.start(),
        }
    }

    #[inline]
    fn end(&self, start: Start) -> u64 {
        match self {
            OrCpuTime::Counter(m) => m.end(start),
            OrCpuTime::CpuTime { measurement, .. } => measurement.end(start),
        }
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a.saturating_add(*b)
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        match self {
            OrCpuTime::Counter(m) => m.formatter(),
            OrCpuTime::CpuTime { measurement, .. } => measurement.formatter(),
        }
    }
}

/// Sums of every counted future's polls, process-wide.
struct Totals {
    instructions: AtomicU64,
    cycles: AtomicU64,
    cpu_ns: AtomicU64,
    /// Futures polled at least once whose count of the counter is missing.
    missing_instructions: AtomicU64,
    missing_cycles: AtomicU64,
    missing_cpu: AtomicU64,
    /// Futures whose counts were scaled.
    scaled: AtomicU64,
}

static TOTALS: Totals = Totals {
    instructions: AtomicU64::new(0),
    cycles: AtomicU64::new(0),
    cpu_ns: AtomicU64::new(0),
    missing_instructions: AtomicU64::new(0),
    missing_cycles: AtomicU64::new(0),
    missing_cpu: AtomicU64::new(0),
    scaled: AtomicU64::new(0),
};

#[derive(Clone, Copy, Debug)]
struct PollTotals {
    instructions: u64,
    cycles: u64,
    cpu_ns: u64,
    missing: [u64; 3],
    scaled: u64,
}

impl PollTotals {
    fn now() -> PollTotals {
        let t = &TOTALS;
        PollTotals {
            instructions: t.instructions.load(Ordering::Acquire),
            cycles: t.cycles.load(Ordering::Acquire),
            cpu_ns: t.cpu_ns.load(Ordering::Acquire),
            missing: [
                t.missing_instructions.load(Ordering::Acquire),
                t.missing_cycles.load(Ordering::Acquire),
                t.missing_cpu.load(Ordering::Acquire),
            ],
            scaled: t.scaled.load(Ordering::Acquire),
        }
    }

    /// The count of `kind` since `start` (`None` when a future's count of
    /// it was missing), and whether any was scaled.
    fn since(&self, start: &PollTotals, kind: Kind) -> (Option<u64>, bool) {
        let (now, then, missing) = match kind {
            Kind::Instructions => (self.instructions, start.instructions, 0),
            Kind::Cycles => (self.cycles, start.cycles, 1),
            Kind::CpuTime => (self.cpu_ns, start.cpu_ns, 2),
        };
        let complete = self.missing[missing] == start.missing[missing];
        (
            complete.then(|| now.wrapping_sub(then)),
            self.scaled != start.scaled,
        )
    }
}

/// Adds one future's totals to [`TOTALS`] when it completes or is dropped.
#[derive(Debug, Default)]
struct Tally {
    acct: PollAccounting,
}

impl Drop for Tally {
    fn drop(&mut self) {
        self.acct.close_interrupted();
        if self.acct.polls() == 0 {
            return;
        }
        let mut record = Record::new(RecordKind::Region, "criterion");
        self.acct.fill(&mut record);
        let add = |value: Option<u64>, total: &AtomicU64, missing: &AtomicU64| match value {
            Some(v) => {
                total.fetch_add(v, Ordering::AcqRel);
            }
            None => {
                missing.fetch_add(1, Ordering::AcqRel);
            }
        };
        let t = &TOTALS;
        add(
            record.instructions,
            &t.instructions,
            &t.missing_instructions,
        );
        add(record.cycles, &t.cycles, &t.missing_cycles);
        add(record.cpu_ns, &t.cpu_ns, &t.missing_cpu);
        if record.scaled {
            t.scaled.fetch_add(1, Ordering::AcqRel);
        }
    }
}

pin_project! {
    /// A future whose polls a [`Reach::Polls`] measurement counts; made by
    /// [`count`].
    #[must_use = "futures do nothing unless polled"]
    pub struct Counted<F> {
        #[pin]
        inner: F,
        tally: Option<Tally>,
    }
}

impl<F> fmt::Debug for Counted<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Counted")
            .field("polls", &self.tally.as_ref().map(|t| t.acct.polls()))
            .finish_non_exhaustive()
    }
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let Some(tally) = this.tally.as_mut() else {
            return this.inner.poll(cx);
        };
        let inner = this.inner;
        let result = tally.acct.measure(true, || inner.poll(cx));
        if result.is_ready() {
            // Dropping the tally adds the future's counts.
            *this.tally = None;
        }
        result
    }
}

/// Counts the polls of `future` for [`Reach::Polls`] measurements, on
/// whichever thread polls it: each poll is read around on the polling
/// thread, like a [`Measured`](crate::instrument::Measured) future, and the sums are
/// added when the future completes or is dropped.
///
/// ```
/// use criterion::measurement::Measurement;
/// use dynostats::criterion::{CpuTime, Reach, count};
///
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
/// #     let mut f = std::pin::pin!(f);
/// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
/// # }
/// let cpu = CpuTime::with_reach(Reach::Polls).unwrap();
/// let start = cpu.start();
/// let sum = block_on(count(async { (0..1_000_000u64).map(std::hint::black_box).sum::<u64>() }));
/// let ns = cpu.end(start);
/// assert_eq!(sum, 499_999_500_000);
/// assert!(ns > 0);
/// ```
pub fn count<F: Future>(future: F) -> Counted<F> {
    Counted {
        inner: future,
        tally: Some(Tally::default()),
    }
}

/// The name of a reach as the docs and bench output use it.
impl fmt::Display for Reach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reach::Thread => "thread",
            Reach::Inherited => "inherited",
            Reach::Polls => "polls",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine_formatter(kind: Kind) -> Engine {
        Engine {
            kind,
            reach: Reach::Polls,
            source: Source::Polls,
            scaled: Cell::new(false),
            reported: Cell::new(false),
        }
    }

    #[test]
    fn si_steps_and_units() {
        let f = engine_formatter(Kind::Instructions);
        let mut v = [1_500.0, 2_500.0];
        assert_eq!(f.scale_values(2_000.0, &mut v), "k instructions");
        assert_eq!(v, [1.5, 2.5]);
        let mut v = [999.0];
        assert_eq!(f.scale_values(999.0, &mut v), "instructions");
        let mut v = [3e9];
        assert_eq!(f.scale_values(3e9, &mut v), "G instructions");
        assert_eq!(v, [3.0]);
        f.scaled.set(true);
        let mut v = [2e6];
        assert_eq!(f.scale_values(2e6, &mut v), "M instructions (scaled)");
    }

    #[test]
    fn criterion_0_8_throughputs_bits_and_elements_with_bytes() {
        let f = engine_formatter(Kind::Instructions);
        // 8 bits per 1,000 instructions.
        let mut v = [1_000.0, 2_000.0];
        let unit = f.scale_throughputs(1_000.0, &Throughput::Bits(8), &mut v);
        assert_eq!((unit, v), ("b/k instr", [8.0, 4.0]));
        // Elements and bytes: the elements, as criterion's own formatter.
        let both = Throughput::ElementsAndBytes {
            elements: 5,
            bytes: 4096,
        };
        let mut v = [10.0];
        assert_eq!(f.scale_throughputs(10.0, &both, &mut v), "elem/k instr");
        assert_eq!(v, [500.0]);
        let f = engine_formatter(Kind::CpuTime);
        // 8,000 bits in 1,000 ns of CPU time: 8 Gb/s.
        let mut v = [1_000.0];
        assert_eq!(
            f.scale_throughputs(1_000.0, &Throughput::Bits(8_000), &mut v),
            "Gb/s cpu"
        );
        assert_eq!(v, [8.0]);
        let mut v = [1_000.0];
        assert_eq!(f.scale_throughputs(1_000.0, &both, &mut v), "Melem/s cpu");
        assert_eq!(v, [5.0]);
    }

    #[test]
    fn a_new_benchmark_forgets_the_last_ones_scaling() {
        let f = engine_formatter(Kind::Cycles);
        f.scaled.set(true);
        let mut v = [10.0];
        assert_eq!(f.scale_values(10.0, &mut v), "cycles (scaled)");
        // The next sample belongs to the next benchmark.
        let _ = f.start();
        assert!(!f.scaled.get());
        let mut v = [10.0];
        assert_eq!(f.scale_values(10.0, &mut v), "cycles");
    }
}
