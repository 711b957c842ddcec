// Own test binary: .ci/pmu-guest runs it by name in the guest; it sets the global sample rate.
//! What the library's hot paths cost, in user-space instructions, and a
//! guard against regressions: each figure must stay within 10% of the one
//! checked in to BENCHMARKS.md.
//!
//! Instruction counts only mean something on a PMU, and the figures in
//! BENCHMARKS.md were measured in the emulated aarch64 guest of
//! `.ci/pmu-guest`, where they are exact and the same on every boot. So the
//! figures are compared there only; on another PMU machine they are
//! printed, and without a PMU the test prints why it skips.
//!
//! Method: a separate instructions counter (user space only, so the kernel
//! side of system calls is not counted) is read around `REPS` repetitions
//! of an operation and around `REPS` repetitions of nothing; the difference
//! divided by `REPS` is the cost of one operation. The smallest of a few
//! trials is kept, since an interrupt can only add.

#[path = "common/pmu_meter.rs"]
mod pmu_meter;
#[path = "common/pmu.rs"]
mod pmu_support;

use std::hint::black_box;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use dynostats::record::TraceContext;
use dynostats::{
    Delta, Measure, Pipeline, Record, RecordKind, Snapshot, counters::Counter,
    counters::CounterSet, counters::Counters, counters::ReadPath, sample::Sampler,
    sink::MemorySink,
};
use pmu_meter::{Figure, Meter, gate};
use pmu_support::{report, require_pmu, user_access};

fn snapshot_costs(meter: &mut Meter, user: bool) -> Vec<Figure> {
    let access = user_access(user);
    if access.enabled != user {
        report(&format!(
            "user access {user} cannot be set here: its figures are not measured"
        ));
        return Vec::new();
    }
    let path = if user {
        ReadPath::Rdpmc
    } else {
        ReadPath::Read
    };
    let mut default = Counters::open(CounterSet::default());
    let mut instructions = Counters::open(CounterSet::wall_only().with(Counter::Instructions));
    assert_eq!(default.source(), path, "{default:?}");
    assert_eq!(instructions.source(), path, "{instructions:?}");
    let default_cost = meter.cost(|| {
        black_box(default.snapshot());
    });
    let instructions_cost = meter.cost(|| {
        black_box(instructions.snapshot());
    });
    let mut all = Meter::with_kernel(true);
    report(&format!(
        "path {path}: one snapshot with the kernel's instructions included (not checked): \
         default set {}, instructions only {}",
        all.single(|| {
            black_box(default.snapshot());
        }),
        all.single(|| {
            black_box(instructions.snapshot());
        })
    ));
    // dynostats::snapshot() on a fresh thread, which opens its counters
    // under this setting.
    let thread_cost = std::thread::spawn(move || {
        let mut meter = Meter::open();
        assert_eq!(
            dynostats::counters::with_thread_counters(|c| c.source()),
            Some(path)
        );
        meter.cost(|| {
            black_box(dynostats::snapshot());
        })
    })
    .join()
    .unwrap();
    let regions = std::thread::spawn(move || region_costs(path))
        .join()
        .unwrap();
    #[cfg_attr(not(feature = "tower"), allow(unused_mut))]
    let mut figures = if user {
        vec![
            ("snapshot_default_user", default_cost),
            ("snapshot_instructions_user", instructions_cost),
            ("thread_snapshot_default_user", thread_cost),
            ("measure_sampled_user", regions.guard_cost),
            ("guard_overhead_user", regions.guard_overhead),
            ("future_overhead_4_polls_user", regions.future_overhead),
            ("scope_sampled_user", regions.scope_pair),
        ]
    } else {
        vec![
            ("snapshot_default_read", default_cost),
            ("snapshot_instructions_read", instructions_cost),
            ("thread_snapshot_default_read", thread_cost),
            ("measure_sampled_read", regions.guard_cost),
            ("guard_overhead_read", regions.guard_overhead),
            ("future_overhead_4_polls_read", regions.future_overhead),
            ("scope_sampled_read", regions.scope_pair),
        ]
    };
    #[cfg(feature = "tower")]
    figures.extend(if user {
        [
            ("layer_sampled_user", regions.layer_cost),
            ("layer_overhead_user", regions.layer_overhead),
            ("layer_trace_sampled_user", regions.layer_trace_cost),
        ]
    } else {
        [
            ("layer_sampled_read", regions.layer_cost),
            ("layer_overhead_read", regions.layer_overhead),
            ("layer_trace_sampled_read", regions.layer_trace_cost),
        ]
    });
    figures
}

/// What measuring regions costs, measured on one thread with a pipeline.
struct RegionCosts {
    guard_cost: u64,
    guard_overhead: u64,
    future_overhead: u64,
    scope_pair: u64,
    #[cfg(feature = "tower")]
    layer_cost: u64,
    #[cfg(feature = "tower")]
    layer_overhead: u64,
    #[cfg(feature = "tower")]
    layer_trace_cost: u64,
}

/// A valid W3C `traceparent` value.
#[cfg(feature = "tower")]
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// The known-work request with a valid `traceparent` header (the header
/// map's allocation is the request's, paid by the bare service too).
#[cfg(feature = "tower")]
fn traced_request() -> http::Request<u64> {
    let mut request = pmu_support::known_work_request(0);
    request
        .headers_mut()
        .insert("traceparent", http::HeaderValue::from_static(TRACEPARENT));
    request
}

/// Pending three times (waking itself), then ready: four polls, no work.
struct FourPolls(u32);

impl Future for FourPolls {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0 += 1;
        if self.0 == 4 {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

#[inline(never)]
fn empty_guard() {
    drop(dynostats::measure("guard-overhead"));
}

/// On a fresh thread with a pipeline scoped to it: what a sampled
/// `measure()` guard costs its thread (start, end and handing the record
/// to the queue; the writer thread's work is not counted), what the tower
/// layer adds to a sampled request, and the instructions the records of an
/// empty guard, an empty 4-poll measured future and a request to a service
/// that does nothing carry (the library's fixed overhead in a record).
fn region_costs(path: ReadPath) -> RegionCosts {
    let memory = MemorySink::new();
    let pipeline = Pipeline::builder()
        .sink(memory.clone())
        .status_interval(None)
        .build()
        .expect("pipeline");
    let scope = pipeline.scoped();
    dynostats::set_sample_rate(1);
    let mut meter = Meter::open();
    assert_eq!(
        dynostats::counters::with_thread_counters(|c| c.source()),
        Some(path)
    );
    let guard_cost = meter.cost(|| {
        drop(black_box(dynostats::measure("guard-cost")));
    });
    for _ in 0..pmu_support::RUNS {
        empty_guard();
    }
    // A profiler scope entered and left inside a sampled region, timed in
    // instructions on this thread's read path.
    let region = dynostats::measure("scope-cost");
    assert!(region.is_sampled());
    drop(dynostats::scope("pair"));
    let scope_pair = meter.cost(|| {
        drop(black_box(dynostats::scope("pair")));
    });
    drop(region);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..pmu_support::RUNS {
        let mut future = Box::pin(FourPolls(0).measured("future-overhead"));
        while future.as_mut().poll(&mut cx).is_pending() {}
    }
    #[cfg(feature = "tower")]
    let layer_cost = {
        let mut bare = pmu_support::known_work_service();
        let mut layered = tower::Layer::layer(
            &dynostats::tower::MeasureLayer::new(1),
            pmu_support::known_work_service(),
        );
        let bare_cost =
            meter.cost(|| pmu_support::one_request(&mut bare, pmu_support::known_work_request(0)));
        let layered_cost = meter
            .cost(|| pmu_support::one_request(&mut layered, pmu_support::known_work_request(0)));
        layered_cost.saturating_sub(bare_cost)
    };
    // The same with `.trace_context()`, the request carrying a valid
    // header: what reading it and carrying the ids to the record add.
    #[cfg(feature = "tower")]
    let layer_trace_cost = {
        let mut bare = pmu_support::known_work_service();
        let mut layered = tower::Layer::layer(
            &dynostats::tower::MeasureLayer::new(1).trace_context(),
            pmu_support::known_work_service(),
        );
        let bare_cost = meter.cost(|| pmu_support::one_request(&mut bare, traced_request()));
        let layered_cost = meter.cost(|| pmu_support::one_request(&mut layered, traced_request()));
        layered_cost.saturating_sub(bare_cost)
    };
    drop(scope);
    pipeline.flush().expect("flush");
    let records = memory.records();
    let smallest = |name: &str, kind: RecordKind| {
        records
            .iter()
            .filter(|r| r.name == name && r.kind == kind)
            .map(|r| r.instructions.expect("instructions in the record"))
            .min()
            .expect("records")
    };
    RegionCosts {
        guard_cost,
        guard_overhead: smallest("guard-overhead", RecordKind::Region),
        future_overhead: smallest("future-overhead", RecordKind::Region),
        scope_pair,
        #[cfg(feature = "tower")]
        layer_cost,
        #[cfg(feature = "tower")]
        layer_overhead: smallest(dynostats::tower::UNMATCHED, RecordKind::Request),
        #[cfg(feature = "tower")]
        layer_trace_cost,
    }
}

/// A record like a guard's: fixed values, so that the encoding (whose
/// length depends on the numbers) costs the same on every run.
fn sample_record() -> Record {
    let mut r = Record::new(RecordKind::Region, "checkout::price_cart");
    r.ts = 1_764_000_000_000_000_000;
    r.pid = 4242;
    r.weight = 100;
    let mut d = Delta::zero();
    d.wall_ns = 1_250_000;
    d.cpu_ns = Some(1_100_000);
    d.instructions = Some(2_400_000);
    d.cycles = Some(3_100_000);
    d.page_faults = None;
    d.context_switches = None;
    d.rss_start = Some(48 << 20);
    d.rss_end = Some(49 << 20);
    d.source = ReadPath::Read;
    r.set_delta(&d);
    r.set_label("host", "web-17");
    r
}

fn other_costs(meter: &mut Meter) -> Vec<Figure> {
    let mut counters = Counters::open(CounterSet::default());
    let a = counters.snapshot();
    dynostats::probe::known_loop(1000);
    let b = counters.snapshot();
    let (a, b): (Snapshot, Snapshot) = (black_box(a), black_box(b));
    let delta_cost = meter.cost(|| {
        black_box(Delta::between(black_box(&a), black_box(&b)));
    });

    // Mean of 10^15: the countdown drawn on the first call never runs out.
    let sampler = Sampler::new(1_000_000_000_000_000);
    let _ = sampler.sample();
    let unsampled_cost = meter.cost(|| {
        black_box(sampler.sample());
    });
    dynostats::set_sample_rate(1_000_000_000_000_000);
    drop(dynostats::measure("warm-up"));
    let unsampled_guard_cost = meter.cost(|| {
        drop(black_box(dynostats::measure("unsampled")));
    });
    #[cfg(feature = "tower")]
    let unsampled_layer_cost = {
        let mut bare = pmu_support::known_work_service();
        let layer = dynostats::tower::MeasureLayer::new(1_000_000_000_000_000);
        let mut layered = tower::Layer::layer(&layer, pmu_support::known_work_service());
        pmu_support::one_request(&mut layered, pmu_support::known_work_request(0));
        let bare_cost =
            meter.cost(|| pmu_support::one_request(&mut bare, pmu_support::known_work_request(0)));
        let layered_cost = meter
            .cost(|| pmu_support::one_request(&mut layered, pmu_support::known_work_request(0)));
        layered_cost.saturating_sub(bare_cost)
    };
    // With `.trace_context()` and a valid header: the header is read on
    // the sampled path only, so this must be `layer_unsampled`.
    #[cfg(feature = "tower")]
    let unsampled_trace_cost = {
        let mut bare = pmu_support::known_work_service();
        let layer = dynostats::tower::MeasureLayer::new(1_000_000_000_000_000).trace_context();
        let mut layered = tower::Layer::layer(&layer, pmu_support::known_work_service());
        pmu_support::one_request(&mut layered, traced_request());
        let bare_cost = meter.cost(|| pmu_support::one_request(&mut bare, traced_request()));
        let layered_cost = meter.cost(|| pmu_support::one_request(&mut layered, traced_request()));
        layered_cost.saturating_sub(bare_cost)
    };
    let valid = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let parse_cost = meter.cost(|| {
        black_box(TraceContext::from_traceparent(black_box(&valid[..])));
    });

    // A profiler scope outside any sampled region: one check.
    let unsampled_scope_cost = meter.cost(|| {
        drop(black_box(dynostats::scope("unsampled")));
    });

    let record = sample_record();
    let mut buf = Vec::with_capacity(512);
    let encode_cost = meter.cost(|| {
        buf.clear();
        black_box(&record).write_msgpack(&mut buf);
        black_box(&buf);
    });
    // The same record with a trace context: the writer thread's share.
    let mut traced = sample_record();
    traced.set_trace_context(TraceContext::from_traceparent(valid));
    let encode_trace_cost = meter.cost(|| {
        buf.clear();
        black_box(&traced).write_msgpack(&mut buf);
        black_box(&buf);
    });
    #[cfg_attr(not(feature = "tower"), allow(unused_mut))]
    let mut figures = vec![
        ("delta_between", delta_cost),
        ("sampler_unsampled", unsampled_cost),
        ("measure_unsampled", unsampled_guard_cost),
        ("scope_unsampled", unsampled_scope_cost),
        ("record_encode", encode_cost),
        ("record_encode_trace", encode_trace_cost),
        ("traceparent_parse", parse_cost),
    ];
    #[cfg(feature = "tower")]
    figures.extend([
        ("layer_unsampled", unsampled_layer_cost),
        ("layer_trace_unsampled", unsampled_trace_cost),
    ]);
    figures
}

#[test]
fn hot_path_instruction_costs_stay_within_ten_percent_of_benchmarks_md() {
    if !require_pmu("hot_path_instruction_costs_stay_within_ten_percent_of_benchmarks_md") {
        return;
    }
    let mut meter = Meter::open();
    let mut measured = snapshot_costs(&mut meter, false);
    measured.extend(snapshot_costs(&mut meter, true));
    measured.extend(other_costs(&mut meter));
    // The `router_*` rows are tests/pmu_router.rs's.
    gate(&measured, |key| !key.starts_with("router_"));
}
