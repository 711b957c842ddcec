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

use std::future::Future;
use std::task::{Context, Poll, Waker};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use dynostats::{Batch, MeasureLayer, Pipeline, Sink};
use http::Request;
use http_body::Body as _;
use tower::Service;

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

fn layer(c: &mut Criterion) {
    let pipeline = Pipeline::builder()
        .sink(Discard)
        .status_interval(None)
        .build()
        .unwrap();
    let pipeline = dynostats::install(pipeline).unwrap_or_else(|_| panic!("installed once"));
    let mut group = c.benchmark_group("request");
    let mut bare = router();
    assert_eq!(one_request(&mut bare), 7);
    group.bench_function("bare", |b| b.iter(|| one_request(&mut bare)));
    // axum's Router::layer boxes each route once more: an identity layer
    // shows what any layer costs there, apart from this one's own work.
    let mut identity = router().layer(tower::layer::util::Identity::new());
    assert_eq!(one_request(&mut identity), 7);
    group.bench_function("identity_layer", |b| b.iter(|| one_request(&mut identity)));
    let mut sampled_1000 = router().layer(MeasureLayer::new(1000));
    assert_eq!(one_request(&mut sampled_1000), 7);
    group.bench_function("layer_1_in_1000", |b| {
        b.iter(|| one_request(&mut sampled_1000))
    });
    let mut sampled_1 = router().layer(MeasureLayer::new(1));
    assert_eq!(one_request(&mut sampled_1), 7);
    group.bench_function("layer_1_in_1", |b| b.iter(|| one_request(&mut sampled_1)));
    group.finish();
    let stats = pipeline.shutdown().unwrap();
    println!(
        "records: {} accepted, {} dropped (queue full)",
        stats.accepted, stats.dropped_queue_full
    );
}

criterion_group!(benches, layer);
criterion_main!(benches);
