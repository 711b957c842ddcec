//! The cost of `MeasureLayer` per request: the same axum router and the
//! same requests, bare and behind the layer at 1 in 1000 and 1 in 1.
//!
//! Requests are driven without a runtime (every future here is ready at
//! its first poll), so the numbers are the router's and the layer's own
//! work: routing, the handler, the response body, and for sampled requests
//! the counter reads around the `call`, each poll of the response future
//! and of the body, plus building and handing over the record to a
//! pipeline whose writer thread encodes it and hands it to a sink that
//! discards it.
//!
//! Two groups run the same cases: `request` in wall time, `request_cpu` in
//! the bench thread's CPU time, which a machine shared with other work
//! disturbs much less. `bare` runs first and again last (`bare_again`):
//! the gap between the two is the drift of the machine during the run.
//! Under instructions (`DYNOSTATS_BENCH_MEASUREMENT=instructions`, feature
//! `criterion`, see `benches/support/mod.rs`) `request` counts the bench
//! thread's user-space instructions instead, and `request_cpu` is not run.

mod support;

use std::future::Future;
use std::task::{Context, Poll, Waker};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{Criterion, Throughput};
use dynostats::{Pipeline, sink::Batch, sink::Sink, tower::MeasureLayer};
use http::Request;
use http_body::Body as _;
use tower::{Layer, Service};

fn ready<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// Sends one request through `service` and reads the whole body; returns
/// the body length.
fn one_request<S, B>(service: &mut S) -> usize
where
    S: Service<Request<Body>, Response = http::Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Data: bytes::Buf,
{
    let request = Request::builder()
        .uri("/users/42")
        .body(Body::empty())
        .unwrap();
    ready(std::future::poll_fn(|cx| service.poll_ready(cx))).unwrap();
    let response = ready(service.call(request)).unwrap();
    let mut body = std::pin::pin!(response.into_body());
    let mut len = 0;
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        match body.as_mut().poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    len += bytes::Buf::remaining(data);
                }
            }
            Poll::Ready(None) => break,
            Poll::Ready(Some(Err(_))) => panic!("body error"),
            Poll::Pending => {}
        }
        if body.is_end_stream() {
            break;
        }
    }
    len
}

/// A sink that discards records: the bench measures the request path, not
/// I/O.
struct Discard;

impl Sink for Discard {
    fn name(&self) -> String {
        "discard".into()
    }

    fn write_batch(&mut self, _: &Batch) -> std::io::Result<()> {
        Ok(())
    }
}

fn router() -> Router {
    Router::new().route(
        "/users/{id}",
        get(
            |axum::extract::Path(id): axum::extract::Path<u64>| async move { format!("user {id}") },
        ),
    )
}

/// The calling thread's CPU time (the perf task-clock, through
/// `dynostats::snapshot`), in nanoseconds. On a machine shared with other
/// work, wall time also counts the time the bench thread waited for a CPU;
/// this does not. It leaves out the pipeline's writer thread, which encodes
/// the records off the request path.
struct ThreadCpu;

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        dynostats::snapshot()
            .cpu_ns
            .expect("thread CPU time is measurable")
    }

    fn end(&self, start: u64) -> u64 {
        self.start().saturating_sub(start)
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuNanos
    }
}

struct CpuNanos;

impl ValueFormatter for CpuNanos {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if typical < 1e3 {
            (1.0, "ns cpu")
        } else if typical < 1e6 {
            (1e-3, "µs cpu")
        } else {
            (1e-6, "ms cpu")
        };
        values.iter_mut().for_each(|v| *v *= factor);
        unit
    }

    fn scale_throughputs(&self, _: f64, _: &Throughput, values: &mut [f64]) -> &'static str {
        values.iter_mut().for_each(|v| *v = 1e9 / *v);
        "elem/s cpu"
    }

    fn scale_for_machines(&self, _: &mut [f64]) -> &'static str {
        "ns cpu"
    }
}

fn install_pipeline() -> &'static Pipeline {
    static PIPELINE: std::sync::OnceLock<&'static Pipeline> = std::sync::OnceLock::new();
    PIPELINE.get_or_init(|| {
        let pipeline = Pipeline::builder()
            .sink(Discard)
            .status_interval(None)
            .build()
            .unwrap();
        dynostats::install(pipeline).unwrap_or_else(|_| panic!("installed once"))
    })
}

fn request<M: Measurement>(c: &mut Criterion<M>) {
    layer(c, &support::name("request"));
}

fn cpu(_: &mut Criterion) {
    let mut c = Criterion::default()
        .with_measurement(ThreadCpu)
        .configure_from_args();
    layer(&mut c, "request_cpu");
}

fn layer<M: Measurement>(c: &mut Criterion<M>, name: &str) {
    let pipeline = install_pipeline();
    let mut group = c.benchmark_group(name);
    let mut bare = router();
    assert_eq!(one_request(&mut bare), 7);
    group.bench_function("bare", |b| b.iter(|| one_request(&mut bare)));

    // The layer around the whole router, as tower composes it: the layer's
    // own cost on top of the bare router. (No MatchedPath out here: sampled
    // requests are named <unmatched>, which costs the same.)
    let mut outer_1000 = MeasureLayer::new(1000).layer(router());
    assert_eq!(one_request(&mut outer_1000), 7);
    group.bench_function("around_router_1_in_1000", |b| {
        b.iter(|| one_request(&mut outer_1000))
    });
    let mut outer_1 = MeasureLayer::new(1).layer(router());
    assert_eq!(one_request(&mut outer_1), 7);
    group.bench_function("around_router_1_in_1", |b| {
        b.iter(|| one_request(&mut outer_1))
    });

    // With axum's Router::layer, as services use it (route templates).
    let mut sampled_1000 = router().layer(MeasureLayer::new(1000));
    assert_eq!(one_request(&mut sampled_1000), 7);
    group.bench_function("router_layer_1_in_1000", |b| {
        b.iter(|| one_request(&mut sampled_1000))
    });
    let mut sampled_1 = router().layer(MeasureLayer::new(1));
    assert_eq!(one_request(&mut sampled_1), 7);
    group.bench_function("router_layer_1_in_1", |b| {
        b.iter(|| one_request(&mut sampled_1))
    });

    // The bare router once more: how far the machine drifted meanwhile.
    group.bench_function("bare_again", |b| b.iter(|| one_request(&mut bare)));
    group.finish();
    let stats = pipeline.stats();
    println!(
        "records so far: {} accepted, {} dropped (queue full)",
        stats.accepted, stats.dropped_queue_full
    );
}

bench_main!(both: [request], wall_only: [cpu]);
