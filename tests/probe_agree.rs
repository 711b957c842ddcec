// Own test binary: perf-event2 `hooks` (a scripted kernel); it sets the process's thread counters.
//! The probe says what records get: with every perf system call answered
//! by a scripted kernel (perf-event2's `hooks`), the probe's per-counter
//! availability and source, the calling thread's live counters
//! (`Probe::thread`) and the records it makes agree, counter by counter.
//!
//! `perf_event_paranoid` >= 3 (Debian's patch) refuses every
//! `perf_event_open` of an unprivileged process with `EACCES`; the tests
//! run as root, where the kernel allows them, so the fake kernel answers
//! `EACCES` instead.
#![cfg(feature = "axum")]

mod common;

use common::fake_kernel::*;
use common::memory_pipeline;

use dynostats::counters::{Counter, CounterSet, CounterSource, ReadPath};
use dynostats::probe::Probe;
use dynostats::{Record, RecordKind, tower::MeasureLayer};
use http::{Request, Response};
use tower::{ServiceBuilder, ServiceExt, service_fn};

/// Every counter in the thread set, so that each one is probed as threads
/// open it (the set is per process: every test asks for the same one).
fn all_counters_on_threads() {
    let _ = dynostats::counters::set_thread_counters(CounterSet::all());
    assert_eq!(dynostats::counters::thread_counters(), CounterSet::all());
}

/// Whether `record` carries `counter`.
fn carries(record: &Record, counter: Counter) -> bool {
    match counter {
        Counter::Instructions => record.instructions.is_some(),
        Counter::Cycles => record.cycles.is_some(),
        Counter::CpuTime => record.cpu_ns.is_some(),
        Counter::WallTime => record.wall_ns > 0,
        Counter::Rss => record.rss_start.is_some() && record.rss_end.is_some(),
        Counter::PeakRss => record.peak_rss.is_some(),
        Counter::PageFaults => record.page_faults.is_some(),
        Counter::ContextSwitches => record.context_switches.is_some(),
        other => panic!("no record field known for {other}"),
    }
}

/// One sampled request through `MeasureLayer`, polled on this thread (a
/// current-thread runtime), so it is measured with this thread's counters.
fn one_request() -> Record {
    let (pipeline, mem) = memory_pipeline();
    let svc = ServiceBuilder::new()
        .layer(MeasureLayer::new(1))
        .service(service_fn(|_req: Request<String>| async {
            common::burn_cpu_ns(2_000_000);
            Ok::<_, std::convert::Infallible>(Response::new(String::from("ok")))
        }));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    pipeline.in_scope(|| {
        rt.block_on(async {
            let res = svc.oneshot(Request::new(String::new())).await.unwrap();
            drop(res);
        })
    });
    pipeline.flush().unwrap();
    let mut records = mem.records_of(RecordKind::Request);
    assert_eq!(records.len(), 1, "{records:?}");
    records.remove(0)
}

#[test]
fn refused_perf_events_leave_cpu_time_from_the_clock_and_page_faults_absent() {
    all_counters_on_threads();
    let kernel = FakeKernel::new();
    kernel
        .fail_type(HARDWARE, libc::EACCES)
        .fail_type(SOFTWARE, libc::EACCES);
    let _hooks = kernel.install();

    let probe = dynostats::probe();
    let state = |c: Counter| probe.counter(c).unwrap();
    // Before: cpu_ns "unavailable (EACCES)" while every record carried it.
    assert_eq!(state(Counter::CpuTime).source(), Some(CounterSource::Clock));
    assert!(state(Counter::CpuTime).read_cost_ns.is_some());
    for c in [Counter::PageFaults, Counter::Instructions, Counter::Cycles] {
        let why = state(c)
            .unavailable()
            .unwrap_or_else(|| panic!("{c}: {probe}"));
        assert_eq!(why.errno, Some(libc::EACCES), "{c}");
        assert!(why.explanation().contains("EACCES"), "{c}: {why}");
        assert_eq!(state(c).read_cost_ns, None);
    }
    // Context switches come from getrusage where their event is refused.
    let expected = [
        (Counter::WallTime, CounterSource::Clock),
        (Counter::Rss, CounterSource::Statm),
        (Counter::PeakRss, CounterSource::Getrusage),
        (Counter::ContextSwitches, CounterSource::Getrusage),
    ];
    for (c, source) in expected {
        assert_eq!(state(c).source(), Some(source), "{c}");
    }
    assert_eq!(probe.default_source, ReadPath::Software);
    let table = probe.to_string();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("cpu_ns") && l.contains(" yes ") && l.contains(" clock ")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("page_faults") && l.contains(" no ") && l.contains("EACCES")),
        "{table}"
    );

    // The thread's own counters say the same ...
    let thread = Probe::thread().unwrap();
    assert_eq!(thread.path, probe.default_source);
    for c in &probe.counters {
        assert_eq!(thread.get(c.counter()), Some(&c.state), "{thread}");
    }
    // ... and a request record measured with them carries exactly the
    // counters the probe calls available.
    let record = one_request();
    for c in &probe.counters {
        assert_eq!(
            carries(&record, c.counter()),
            c.available(),
            "{}: {record:?}\n{probe}",
            c.counter()
        );
    }
    assert_eq!(record.source, probe.default_source);
}

#[test]
fn without_a_pmu_software_events_come_from_perf() {
    all_counters_on_threads();
    let kernel = FakeKernel::new();
    kernel.fail_type(HARDWARE, libc::ENOENT).nonblocking_reads();
    let _hooks = kernel.install();

    // The thread's counters open first: their leader is the first event
    // the fake kernel hands out (the task-clock), and its reads are scripted.
    let thread = Probe::thread().unwrap();
    let probe = dynostats::probe();
    for c in [
        Counter::CpuTime,
        Counter::PageFaults,
        Counter::ContextSwitches,
    ] {
        assert_eq!(
            probe.counter(c).unwrap().source(),
            Some(CounterSource::SoftwareEvent),
            "{c}: {probe}"
        );
    }
    for c in [Counter::Instructions, Counter::Cycles] {
        let why = probe.counter(c).unwrap().unavailable().unwrap();
        assert_eq!(why.errno, Some(libc::ENOENT));
        assert!(why.reason.contains("no hardware PMU"), "{why}");
    }
    assert_eq!(probe.default_source, ReadPath::Software);
    for c in &probe.counters {
        assert_eq!(thread.get(c.counter()), Some(&c.state), "{thread}");
    }

    // Snapshots of the thread read what the probe says: CPU time, page
    // faults and context switches from the group read, in open order.
    kernel.queue_group_read(1_000, 1_000, &[1_000, 7, 1]);
    kernel.queue_group_read(5_000, 5_000, &[4_600, 19, 3]);
    let a = dynostats::snapshot();
    let b = dynostats::snapshot();
    let d = dynostats::Delta::between(&a, &b);
    assert_eq!(
        (d.cpu_ns, d.page_faults, d.context_switches),
        (Some(3_600), Some(12), Some(2))
    );
    assert_eq!((d.instructions, d.cycles), (None, None));
    assert_eq!(d.source, ReadPath::Software);
}

#[test]
fn the_thread_probe_describes_the_live_counters_not_a_fresh_open() {
    all_counters_on_threads();
    let kernel = FakeKernel::new();
    kernel.nonblocking_reads();
    let _hooks = kernel.install();

    // This thread opened its counters while the PMU answered ...
    let before = Probe::thread().unwrap();
    assert_eq!(
        before.source(Counter::Instructions),
        Some(CounterSource::GroupRead)
    );
    assert_eq!(before.path, ReadPath::Read);
    // ... and keeps them after it stops answering: the thread still reads
    // instructions with read(2), where a new thread would get none.
    kernel.fail_type(HARDWARE, libc::ENOENT);
    let fresh = dynostats::probe();
    assert!(!fresh.counter(Counter::Instructions).unwrap().available());
    assert_eq!(fresh.default_source, ReadPath::Software);
    let thread = Probe::thread().unwrap();
    assert_eq!(thread, before);
    assert!(thread.to_string().contains("read path read"), "{thread}");
}
