// Own test binary: perf-event2 `hooks` answer every perf call with a scripted kernel.
//! The criterion measurements against a scripted fake kernel (perf-event2's
//! `hooks` feature): exact values from scripted reads, scaling, what the
//! events are opened with, and the error (with the probe's reason) where
//! the PMU is missing.

mod common;

use common::fake_kernel::*;
use criterion::Throughput;
use criterion::measurement::Measurement;
use dynostats::criterion::{CpuTime, Cycles, Instructions, OrCpuTime, Reach};
use dynostats::{Error, counters::Counter, counters::ReadPath};

#[test]
fn scripted_group_reads_give_exact_instruction_counts() {
    let kernel = FakeKernel::new();
    let _hooks = kernel.install();
    let m = Instructions::new().unwrap();
    let calls = kernel.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!((calls[0].type_, calls[0].config), (HARDWARE, INSTRUCTIONS));
    assert!(calls[0].pid == 0 && calls[0].cpu == -1 && !calls[0].inherit);
    assert!(calls[0].exclude_kernel);
    assert_eq!(m.read_path(), ReadPath::Read);
    assert_eq!(m.reach(), Reach::Thread);

    kernel.queue_group_read(1_000, 1_000, &[123_456]);
    kernel.queue_group_read(9_000, 9_000, &[1_123_456]);
    let start = m.start();
    assert_eq!(m.end(start), 1_000_000);
    // Another batch: each is its own pair of reads.
    kernel.queue_group_read(10_000, 10_000, &[2_000_000]);
    kernel.queue_group_read(11_000, 11_000, &[2_000_007]);
    let start = m.start();
    assert_eq!(m.end(start), 7);

    let mut values = [1_000_000.0];
    let unit = m.formatter().scale_values(1_000_000.0, &mut values);
    assert_eq!((unit, values[0]), ("M instructions", 1.0));
    drop(m);
}

#[test]
fn cycles_read_the_cycles_event() {
    let kernel = FakeKernel::new();
    let _hooks = kernel.install();
    let m = Cycles::new().unwrap();
    assert_eq!(kernel.calls()[0].config, CYCLES);
    kernel.queue_group_read(0, 0, &[50]);
    kernel.queue_group_read(100, 100, &[2_550]);
    let start = m.start();
    assert_eq!(m.end(start), 2_500);
    let mut values = [2_500.0];
    assert_eq!(m.formatter().scale_values(2_500.0, &mut values), "k cycles");
    assert_eq!(values[0], 2.5);
    drop(m);
}

#[test]
fn multiplexed_counts_are_scaled_and_the_unit_says_so() {
    let kernel = FakeKernel::new();
    let _hooks = kernel.install();
    let m = Instructions::new().unwrap();
    let mut values = [4_000.0];
    assert_eq!(
        m.formatter().scale_values(4_000.0, &mut values),
        "k instructions"
    );
    // Enabled 4000 ns, on the PMU for 1000 of them: counts x4.
    kernel.queue_group_read(1_000, 1_000, &[10_000]);
    kernel.queue_group_read(5_000, 2_000, &[11_000]);
    let start = m.start();
    assert_eq!(m.end(start), 4_000);
    let mut values = [4_000.0];
    assert_eq!(
        m.formatter().scale_values(4_000.0, &mut values),
        "k instructions (scaled)"
    );
    // The next benchmark's first sample is not multiplexed: its unit is
    // plain again.
    kernel.queue_group_read(6_000, 3_000, &[12_000]);
    kernel.queue_group_read(7_000, 4_000, &[12_500]);
    let start = m.start();
    assert_eq!(m.end(start), 500);
    let mut values = [500.0];
    assert_eq!(
        m.formatter().scale_values(500.0, &mut values),
        "instructions"
    );
    drop(m);
}

#[test]
fn add_zero_and_to_f64() {
    let kernel = FakeKernel::new();
    let _hooks = kernel.install();
    let m = Instructions::new().unwrap();
    assert_eq!(m.zero(), 0);
    assert_eq!(m.add(&m.zero(), &41), 41);
    assert_eq!(m.add(&40, &2), 42);
    assert_eq!(m.add(&u64::MAX, &1), u64::MAX);
    assert_eq!(m.to_f64(&1_234_567), 1_234_567.0);
    drop(m);
}

#[test]
fn count_throughputs_are_per_instruction_with_si_steps() {
    let kernel = FakeKernel::new();
    let _hooks = kernel.install();
    let m = Instructions::new().unwrap();
    let f = m.formatter();
    // 1000 elements in 4000 instructions: 0.25 per instruction, so per
    // thousand instructions.
    let mut values = [4_000.0, 8_000.0];
    let unit = f.scale_throughputs(4_000.0, &Throughput::Elements(1_000), &mut values);
    assert_eq!(unit, "elem/k instr");
    assert_eq!(values, [250.0, 125.0]);
    // 64 bytes in 16 instructions: 4 per instruction.
    let mut values = [16.0];
    let unit = f.scale_throughputs(16.0, &Throughput::Bytes(64), &mut values);
    assert_eq!((unit, values[0]), ("B/instr", 4.0));
    let mut values = [2e6];
    let unit = f.scale_throughputs(2e6, &Throughput::BytesDecimal(2), &mut values);
    assert_eq!((unit, values[0]), ("B/M instr", 1.0));
    let mut machine = [1.0];
    assert_eq!(f.scale_for_machines(&mut machine), "instructions");
    assert_eq!(f.format_value(1_500.0), "1.5000 k instructions");
    drop(m);
}

#[test]
fn cpu_time_prints_nanoseconds_of_cpu_and_per_second_throughputs() {
    let kernel = FakeKernel::new();
    let _hooks = kernel.install();
    let m = CpuTime::new().unwrap();
    assert_eq!(
        (kernel.calls()[0].type_, kernel.calls()[0].config),
        (SOFTWARE, TASK_CLOCK)
    );
    kernel.queue_group_read(100, 100, &[100]);
    kernel.queue_group_read(2_600, 2_600, &[2_600]);
    let start = m.start();
    assert_eq!(m.end(start), 2_500);
    let f = m.formatter();
    for (typical, unit, scaled) in [
        (500.0, "ns cpu", 500.0),
        (2_500.0, "µs cpu", 2.5),
        (3e6, "ms cpu", 3.0),
        (4e9, "s cpu", 4.0),
    ] {
        let mut values = [typical];
        assert_eq!(f.scale_values(typical, &mut values), unit);
        assert_eq!(values[0], scaled);
    }
    // 1 MiB in 1 ms of CPU: 1000 MiB/s; 1000 elements in 1 µs: 1 G/s.
    let mut values = [1e6];
    let unit = f.scale_throughputs(1e6, &Throughput::Bytes(1 << 20), &mut values);
    assert_eq!((unit, values[0].round()), ("MiB/s cpu", 1000.0));
    let mut values = [1e3];
    let unit = f.scale_throughputs(1e3, &Throughput::Elements(1_000), &mut values);
    assert_eq!((unit, values[0]), ("Gelem/s cpu", 1.0));
    let mut values = [1e9];
    let unit = f.scale_throughputs(1e9, &Throughput::BytesDecimal(1_500), &mut values);
    assert_eq!((unit, values[0]), ("KB/s cpu", 1.5));
    assert_eq!(f.scale_for_machines(&mut [1.0]), "ns");
    drop(m);
}

#[test]
fn inherited_scope_opens_one_inherited_event_outside_any_group() {
    let kernel = FakeKernel::new();
    let _hooks = kernel.install();
    let m = Instructions::with_reach(Reach::Inherited).unwrap();
    let calls = kernel.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let call = &calls[0];
    assert_eq!((call.type_, call.config), (HARDWARE, INSTRUCTIONS));
    assert!(call.inherit && !call.disabled && call.exclude_kernel);
    assert_eq!((call.pid, call.cpu, call.group_fd), (0, -1, -1));
    // TOTAL_TIME_ENABLED | TOTAL_TIME_RUNNING, no GROUP.
    assert_eq!(call.read_format, 0b11);
    // A single event reads [value, time_enabled, time_running].
    let fd = kernel.leader_fd();
    kernel.queue_read(fd, &[1_000, 10, 10]);
    kernel.queue_read(fd, &[3_000_000, 20, 20]);
    let start = m.start();
    assert_eq!(m.end(start), 2_999_000);
    // Multiplexed: ran 10 of 20 ns, x2.
    kernel.queue_read(fd, &[3_000_000, 20, 20]);
    kernel.queue_read(fd, &[3_000_500, 40, 30]);
    let start = m.start();
    assert_eq!(m.end(start), 1_000);
    let mut values = [1_000.0];
    assert_eq!(
        m.formatter().scale_values(1_000.0, &mut values),
        "k instructions (scaled)"
    );
    drop(m);
}

#[test]
fn inherited_cpu_time_is_an_inherited_task_clock() {
    let kernel = FakeKernel::new();
    let _hooks = kernel.install();
    let m = CpuTime::with_reach(Reach::Inherited).unwrap();
    let call = &kernel.calls()[0];
    assert_eq!((call.type_, call.config), (SOFTWARE, TASK_CLOCK));
    assert!(call.inherit);
    let fd = kernel.leader_fd();
    kernel.queue_read(fd, &[5_000, 5_000, 5_000]);
    kernel.queue_read(fd, &[905_000, 905_000, 905_000]);
    let start = m.start();
    assert_eq!(m.end(start), 900_000);
    assert_eq!(m.read_path(), ReadPath::Software);
    drop(m);
}

/// The error of a hardware measurement without a PMU: the reason, and the
/// constructor that falls back to CPU time.
fn assert_no_pmu(err: Error, counter: Counter, fallback: &str) {
    let Error::CounterUnavailable(u) = err else {
        panic!("expected CounterUnavailable, got {err:?}");
    };
    assert_eq!(u.counter, counter);
    assert_eq!(u.errno, Some(libc::ENOENT));
    assert!(u.reason.contains("no hardware PMU"), "{}", u.reason);
    assert!(u.to_string().contains("ENOENT"), "{u}");
    assert!(u.to_string().contains(fallback), "{u}");
}

#[test]
fn enoent_gives_the_error_with_the_reason_in_every_scope() {
    let kernel = FakeKernel::new();
    kernel.fail_type(HARDWARE, libc::ENOENT);
    let _hooks = kernel.install();
    assert_no_pmu(
        Instructions::new().unwrap_err(),
        Counter::Instructions,
        "use Instructions::new_or_cpu_time()",
    );
    assert_no_pmu(
        Cycles::new().unwrap_err(),
        Counter::Cycles,
        "use Cycles::new_or_cpu_time()",
    );
    assert_no_pmu(
        Instructions::with_reach(Reach::Inherited).unwrap_err(),
        Counter::Instructions,
        "use Instructions::with_reach_or_cpu_time(reach)",
    );
    assert_no_pmu(
        Cycles::with_reach(Reach::Inherited).unwrap_err(),
        Counter::Cycles,
        "use Cycles::with_reach_or_cpu_time(reach)",
    );
}

#[test]
fn eacces_names_perf_event_paranoid() {
    let kernel = FakeKernel::new();
    kernel.fail_type(HARDWARE, libc::EACCES);
    let _hooks = kernel.install();
    let Err(Error::CounterUnavailable(u)) = Instructions::new() else {
        panic!("expected the counter to be unavailable");
    };
    assert!(u.reason.contains("perf_event_paranoid"), "{}", u.reason);
}

#[test]
fn the_opt_in_fallback_measures_cpu_time_and_prints_ns() {
    let kernel = FakeKernel::new();
    kernel.fail_type(HARDWARE, libc::ENOENT);
    let _hooks = kernel.install();
    let m = Instructions::new_or_cpu_time();
    let reason = m.unavailable().expect("no PMU: the fallback was taken");
    assert!(reason.to_string().contains("no hardware PMU"), "{reason}");
    // The fallback was taken: its reason does not suggest it again.
    assert!(!reason.to_string().contains("new_or_cpu_time"), "{reason}");
    assert!(matches!(m, OrCpuTime::CpuTime { .. }));
    // The task-clock is the one event that opened.
    let opened: Vec<_> = kernel
        .calls()
        .into_iter()
        .filter(|c| c.result.is_ok())
        .map(|c| (c.type_, c.config))
        .collect();
    assert_eq!(opened, vec![(SOFTWARE, TASK_CLOCK)]);
    kernel.queue_group_read(0, 0, &[1_000]);
    kernel.queue_group_read(0, 0, &[4_000]);
    let start = m.start();
    assert_eq!(m.end(start), 3_000);
    let mut values = [3_000.0];
    let unit = m.formatter().scale_values(3_000.0, &mut values);
    assert_eq!(unit, "µs cpu");
    assert!(!unit.contains("instr"));
    drop(m);
}

#[test]
fn with_a_pmu_the_fallback_is_not_taken() {
    let kernel = FakeKernel::new();
    let _hooks = kernel.install();
    let m = Cycles::new_or_cpu_time();
    assert!(m.unavailable().is_none());
    kernel.queue_group_read(0, 0, &[10]);
    kernel.queue_group_read(0, 0, &[30]);
    let start = m.start();
    assert_eq!(m.end(start), 20);
    let mut values = [20.0];
    assert_eq!(m.formatter().scale_values(20.0, &mut values), "cycles");
    drop(m);
}

#[test]
#[should_panic(expected = "refusing to report a figure that was not measured")]
fn a_batch_the_counter_never_ran_in_stops_the_bench() {
    let kernel = FakeKernel::new();
    let _hooks = kernel.install();
    let m = Instructions::new().unwrap();
    kernel.queue_group_read(1_000, 0, &[0]);
    kernel.queue_group_read(9_000, 0, &[0]);
    let start = m.start();
    m.end(start);
}
