// Own test binary: perf-event2 `hooks` answer every perf call with a scripted kernel.
//! The library's logic around the kernel, with every perf system call
//! answered by a scripted fake kernel (perf-event2's `hooks` feature): exact
//! deltas from group reads, missing PMU, permissions, multiplexing.

mod common;

use common::fake_kernel::*;
use dynostats::{
    Delta, counters::Counter, counters::CounterSet, counters::Counters, counters::ReadPath,
};

fn perf_only(counters: &[Counter]) -> CounterSet {
    counters
        .iter()
        .fold(CounterSet::wall_only(), |s, &c| s.with(c))
}

#[test]
fn opens_one_group_for_this_thread_with_the_group_read_format() {
    let kernel = FakeKernel::new();
    let _hooks = kernel.install();
    let counters = Counters::open(perf_only(&[
        Counter::Instructions,
        Counter::Cycles,
        Counter::CpuTime,
    ]));
    let calls = kernel.calls();
    let opened: Vec<(u32, u64)> = calls.iter().map(|c| (c.type_, c.config)).collect();
    assert_eq!(
        opened,
        vec![
            (HARDWARE, INSTRUCTIONS),
            (HARDWARE, CYCLES),
            (SOFTWARE, TASK_CLOCK)
        ]
    );
    let leader = calls[0].result.unwrap();
    assert_eq!(calls[0].group_fd, -1);
    assert!(calls[1..].iter().all(|c| c.group_fd == leader));
    // This thread (pid 0), any CPU, user space only, counting from the start.
    assert!(calls.iter().all(|c| c.pid == 0 && c.cpu == -1));
    assert!(calls.iter().all(|c| c.exclude_kernel && !c.disabled));
    // GROUP | TOTAL_TIME_ENABLED | TOTAL_TIME_RUNNING, no ids.
    assert_eq!(calls[0].read_format, 0b1011);
    assert_eq!(counters.source(), ReadPath::Read);
    assert!(counters.unavailable().is_empty());
    drop(counters);
}

#[test]
fn scripted_group_reads_give_exact_deltas() {
    let kernel = FakeKernel::new();
    let _hooks = kernel.install();
    let mut counters = Counters::open(perf_only(&[
        Counter::Instructions,
        Counter::Cycles,
        Counter::CpuTime,
        Counter::PageFaults,
        Counter::ContextSwitches,
    ]));
    kernel.queue_group_read(1_000, 1_000, &[100, 200, 1_000, 7, 1]);
    kernel.queue_group_read(5_000, 5_000, &[1_100, 2_700, 4_600, 19, 3]);
    let a = counters.snapshot();
    let b = counters.snapshot();
    assert_eq!(a.instructions, Some(100));
    assert_eq!(a.source, ReadPath::Read);
    let d = Delta::between(&a, &b);
    assert_eq!(d.instructions, Some(1_000));
    assert_eq!(d.cycles, Some(2_500));
    assert_eq!(d.cpu_ns, Some(3_600));
    assert_eq!(d.page_faults, Some(12));
    assert_eq!(d.context_switches, Some(2));
    assert!(!d.scaled);
    assert_eq!(d.source, ReadPath::Read);
    drop(counters);
}

#[test]
fn missing_pmu_gives_none_and_the_no_pmu_reason() {
    let kernel = FakeKernel::new();
    kernel.fail_type(HARDWARE, libc::ENOENT);
    let _hooks = kernel.install();
    let mut counters = Counters::open(CounterSet::default());
    let reasons = counters.unavailable().to_vec();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    for u in &reasons {
        assert!(u.counter.is_hardware());
        assert_eq!(u.errno, Some(libc::ENOENT));
        assert!(u.reason.contains("no hardware PMU"), "{}", u.reason);
    }
    assert!(!counters.is_available(Counter::Instructions));
    assert!(counters.is_available(Counter::CpuTime));
    // The task-clock became the leader and still gives CPU time.
    kernel.queue_group_read(10, 10, &[500]);
    kernel.queue_group_read(90, 90, &[4_500]);
    let a = counters.snapshot();
    let b = counters.snapshot();
    let d = Delta::between(&a, &b);
    assert_eq!(d.instructions, None);
    assert_eq!(d.cycles, None);
    assert_eq!(d.cpu_ns, Some(4_000));
    assert_eq!(d.source, ReadPath::Software);
    assert_eq!(counters.source(), ReadPath::Software);
    // RSS is not a perf event: it still works.
    assert!(d.rss_end.is_some_and(|r| r > 0));
    drop(counters);
}

#[test]
fn eopnotsupp_is_also_a_missing_pmu() {
    let kernel = FakeKernel::new();
    kernel.fail(HARDWARE, CYCLES, libc::EOPNOTSUPP);
    let _hooks = kernel.install();
    let counters = Counters::open(perf_only(&[Counter::Instructions, Counter::Cycles]));
    let u = &counters.unavailable()[0];
    assert_eq!(u.counter, Counter::Cycles);
    assert!(u.reason.contains("no hardware PMU"));
    assert!(counters.is_available(Counter::Instructions));
    drop(counters);
}

#[test]
fn eacces_names_perf_event_paranoid() {
    let kernel = FakeKernel::new();
    kernel.fail_type(HARDWARE, libc::EACCES);
    let _hooks = kernel.install();
    let counters = Counters::open(CounterSet::default());
    let u = &counters.unavailable()[0];
    assert_eq!(u.errno, Some(libc::EACCES));
    assert!(u.reason.contains("perf_event_paranoid"), "{}", u.reason);
    assert!(u.reason.contains("CAP_PERFMON"), "{}", u.reason);
    assert!(u.to_string().contains("EACCES"));
    drop(counters);
}

#[test]
fn eperm_and_emfile_for_every_event_still_give_clocks_and_rss() {
    for errno in [libc::EPERM, libc::EMFILE] {
        let kernel = FakeKernel::new();
        kernel.fail_type(HARDWARE, errno).fail_type(SOFTWARE, errno);
        let _hooks = kernel.install();
        let mut counters = Counters::open(CounterSet::default());
        let reasons = counters.unavailable();
        // Instructions and cycles; CPU time is available, from the clock.
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(counters.is_available(Counter::CpuTime));
        let expected = if errno == libc::EPERM {
            "seccomp"
        } else {
            "file descriptors"
        };
        assert!(
            reasons.iter().all(|u| u.reason.contains(expected)),
            "{reasons:?}"
        );
        // CPU time falls back to CLOCK_THREAD_CPUTIME_ID.
        let a = counters.snapshot();
        let mut x = 0u64;
        for i in 0..200_000u64 {
            x = x.wrapping_add(std::hint::black_box(i));
        }
        std::hint::black_box(x);
        let b = counters.snapshot();
        let d = Delta::between(&a, &b);
        assert!(d.cpu_ns.is_some_and(|ns| ns > 0), "{d:?}");
        assert!(d.wall_ns > 0);
        assert_eq!(d.instructions, None);
        assert!(d.rss_start.is_some());
        assert_eq!(d.source, ReadPath::Software);
        drop(counters);
    }
}

#[test]
fn multiplexed_counts_are_scaled_and_marked() {
    let kernel = FakeKernel::new();
    let _hooks = kernel.install();
    let mut counters = Counters::open(perf_only(&[Counter::Instructions, Counter::Cycles]));
    // Enabled 4000 ns, on the PMU for 1000 of them: counts x4.
    kernel.queue_group_read(1_000, 1_000, &[10_000, 20_000]);
    kernel.queue_group_read(5_000, 2_000, &[11_000, 20_500]);
    let a = counters.snapshot();
    let b = counters.snapshot();
    let d = Delta::between(&a, &b);
    assert_eq!(d.instructions, Some(4_000));
    assert_eq!(d.cycles, Some(2_000));
    assert!(d.scaled);
    drop(counters);
}

#[test]
fn never_running_gives_none() {
    let kernel = FakeKernel::new();
    let _hooks = kernel.install();
    let mut counters = Counters::open(perf_only(&[Counter::Instructions, Counter::CpuTime]));
    kernel.queue_group_read(1_000, 0, &[0, 0]);
    kernel.queue_group_read(9_000, 0, &[0, 0]);
    let a = counters.snapshot();
    let b = counters.snapshot();
    let d = Delta::between(&a, &b);
    assert_eq!(d.instructions, None);
    assert_eq!(d.cpu_ns, None);
    assert!(!d.scaled);
    drop(counters);
}

#[test]
fn a_read_of_the_wrong_shape_gives_none_not_a_guess() {
    let kernel = FakeKernel::new();
    let _hooks = kernel.install();
    let mut counters = Counters::open(perf_only(&[Counter::Instructions, Counter::Cycles]));
    // The kernel claims three members where the group has two.
    kernel.queue_group_read(1_000, 1_000, &[1, 2, 3]);
    let s = counters.snapshot();
    assert_eq!(s.instructions, None);
    assert_eq!(s.cycles, None);
    // A short read (fewer bytes than the header) as well.
    kernel.queue_read(kernel.leader_fd(), &[2]);
    let s = counters.snapshot();
    assert_eq!(s.instructions, None);
    drop(counters);
}

#[test]
fn context_switches_fall_back_to_getrusage_when_kernel_events_are_refused() {
    let kernel = FakeKernel::new();
    kernel.fail(SOFTWARE, CONTEXT_SWITCHES, libc::EACCES);
    let _hooks = kernel.install();
    let mut counters = Counters::open(perf_only(&[
        Counter::Instructions,
        Counter::ContextSwitches,
    ]));
    assert!(counters.is_available(Counter::ContextSwitches));
    let calls = kernel.calls();
    let cs = calls
        .iter()
        .find(|c| c.config == CONTEXT_SWITCHES && c.type_ == SOFTWARE)
        .unwrap();
    // Context switches happen in the kernel: the event must include it.
    assert!(!cs.exclude_kernel);
    // Multiplexed group: instructions scale, getrusage's count does not.
    kernel.queue_group_read(1_000, 1_000, &[0]);
    let a = counters.snapshot();
    for _ in 0..3 {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    kernel.queue_group_read(3_000, 2_000, &[500]);
    let b = counters.snapshot();
    let d = Delta::between(&a, &b);
    assert_eq!(d.instructions, Some(1_000));
    let switches = d.context_switches.unwrap();
    assert!((3..1_000).contains(&switches), "{switches}");
    drop(counters);
}
