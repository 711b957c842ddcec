//! The layer through `tower::ServiceExt::oneshot` and an axum router, with
//! the records read back from the unit tests' global pipeline.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use ::tower::{Layer, ServiceBuilder, ServiceExt, service_fn};
use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::BodyExt;

use super::*;
use crate::counters::{self, Delta};
use crate::pipeline::test_records;
use crate::record::{Record, RecordKind, TraceContext};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// A label that tells this test's records from other tests'. Installs the
/// unit tests' pipeline, so the layer built with it measures.
fn tag(test: &'static str) -> impl Fn(&Request<axum::body::Body>, &mut Labels) + Clone {
    test_records::install();
    move |_: &Request<axum::body::Body>, labels: &mut Labels| {
        labels.insert("test", test);
    }
}

fn tagged(test: &str) -> Vec<Record> {
    test_records::matching(|r| r.labels.get("test") == Some(test))
}

fn router(test: &'static str, rate: u64) -> Router {
    Router::new()
        .route("/users/{id}", get(|| async { "a user" }))
        .route("/cheap", get(|| async { "ok" }))
        .layer(MeasureLayer::new(rate).labels(tag(test)))
}

fn get_req(uri: &str) -> Request<axum::body::Body> {
    Request::builder()
        .uri(uri)
        .body(axum::body::Body::empty())
        .unwrap()
}

async fn send(app: Router, req: Request<axum::body::Body>) -> (StatusCode, Bytes) {
    let res = app.oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, body)
}

#[test]
fn one_record_per_request_with_the_route_template() {
    runtime().block_on(async {
        let (status, body) =
            send(router("template", 1), get_req("/users/4711?token=hunter2")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], b"a user");
    });
    let records = tagged("template");
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r.kind, RecordKind::Request);
    assert_eq!(r.name, "/users/{id}");
    assert_eq!(r.method.as_deref(), Some("GET"));
    assert_eq!(r.status, Some(200));
    assert_eq!(r.weight, 1);
    assert!(!r.cancelled);
    assert!(r.error.is_none());
    assert!(r.polls.is_some_and(|p| p >= 1));
    // Neither the path parameter nor the query string is anywhere in the
    // encoded record.
    let bytes = r.to_msgpack();
    for secret in [&b"4711"[..], b"hunter2", b"token"] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret),
            "{:?} leaked into {r:?}",
            std::str::from_utf8(secret)
        );
    }
}

#[test]
fn unmatched_route_gets_the_fixed_name() {
    runtime().block_on(async {
        let (status, _) = send(router("unmatched", 1), get_req("/no/such/page")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    });
    let records = tagged("unmatched");
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].name, UNMATCHED);
    assert_eq!(records[0].status, Some(404));
}

#[test]
fn unsampled_requests_emit_nothing() {
    runtime().block_on(async {
        for _ in 0..50 {
            let (status, _) = send(router("rate-zero", 0), get_req("/cheap")).await;
            assert_eq!(status, StatusCode::OK);
        }
    });
    assert!(tagged("rate-zero").is_empty());
}

#[test]
fn one_in_n_is_sampled_with_weight_n() {
    let requests = 4000;
    let app = router("one-in-20", 20);
    runtime().block_on(async {
        for _ in 0..requests {
            let (status, _) = send(app.clone(), get_req("/cheap")).await;
            assert_eq!(status, StatusCode::OK);
        }
    });
    let records = tagged("one-in-20");
    // Expected 200; the geometric countdown's spread is about 14.
    assert!((120..=280).contains(&records.len()), "{}", records.len());
    assert!(records.iter().all(|r| r.weight == 20 && r.name == "/cheap"));
}

#[test]
fn non_standard_method_is_not_recorded_verbatim() {
    runtime().block_on(async {
        let req = Request::builder()
            .method(Method::from_bytes(b"SECRETMETHOD").unwrap())
            .uri("/cheap")
            .body(axum::body::Body::empty())
            .unwrap();
        let (status, _) = send(router("method", 1), req).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    });
    let records = tagged("method");
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].method.as_deref(), Some(OTHER));
}

#[test]
fn header_label_from_allow_list_only() {
    let flag = HeaderLabel::new(http::HeaderName::from_static("x-flag"), ["blue"]);
    let app = Router::new()
        .route("/cheap", get(|| async { "ok" }))
        .layer(MeasureLayer::new(1).labels((tag("header-label"), flag)));
    runtime().block_on(async {
        for value in ["blue", "password123"] {
            let req = Request::builder()
                .uri("/cheap")
                .header("x-flag", value)
                .body(axum::body::Body::empty())
                .unwrap();
            send(app.clone(), req).await;
        }
        send(app.clone(), get_req("/cheap")).await;
    });
    let mut values: Vec<Option<String>> = tagged("header-label")
        .into_iter()
        .map(|r| r.labels.get("x-flag").map(str::to_string))
        .collect();
    values.sort();
    assert_eq!(
        values,
        [None, Some(OTHER.to_string()), Some("blue".to_string())]
    );
}

/// A plain tower service (no axum) tagged through a label hook; installs
/// the unit tests' pipeline like [`tag`].
fn plain_tag(test: &'static str) -> impl Fn(&Request<()>, &mut Labels) + Clone {
    test_records::install();
    move |_: &Request<()>, labels: &mut Labels| {
        labels.insert("test", test);
    }
}

#[derive(Debug, PartialEq)]
struct Refused(u32);

#[test]
fn service_error_is_recorded_and_passed_through() {
    let svc = ServiceBuilder::new()
        .layer(MeasureLayer::new(1).labels(plain_tag("service-error")))
        .service(service_fn(|_: Request<()>| async {
            Err::<Response<http_body_util::Empty<Bytes>>, _>(Refused(7))
        }));
    let result = runtime().block_on(svc.oneshot(Request::new(())));
    assert_eq!(result.err(), Some(Refused(7)));
    let records = tagged("service-error");
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].name, UNMATCHED);
    assert_eq!(records[0].status, None);
    assert_eq!(records[0].error.as_deref(), Some("service_error"));
    assert!(!records[0].cancelled);
}

#[test]
fn panic_is_recorded_and_passed_through() {
    let svc = ServiceBuilder::new()
        .layer(MeasureLayer::new(1).labels(plain_tag("panic")))
        .service(service_fn(|_: Request<()>| async {
            if std::hint::black_box(true) {
                panic!("handler bug");
            }
            Ok::<_, Infallible>(Response::new(http_body_util::Empty::<Bytes>::new()))
        }));
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime().block_on(svc.oneshot(Request::new(())))
    }));
    let message = caught.err().and_then(|p| p.downcast_ref::<&str>().copied());
    assert_eq!(message, Some("handler bug"));
    let records = tagged("panic");
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].error.as_deref(), Some("panic"));
    assert!(records[0].cancelled);
    assert_eq!(records[0].status, None);
}

/// A body that does `work` iterations of CPU work before each of its
/// `frames` frames, and sums the CPU time of that work.
struct WorkBody {
    frames: usize,
    work: u64,
    spent: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Body for WorkBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.frames == 0 {
            return Poll::Ready(None);
        }
        self.frames -= 1;
        let start = counters::snapshot();
        let mut x = 0u64;
        for i in 0..self.work {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        let end = counters::snapshot();
        let cpu = Delta::between(&start, &end).cpu_ns.unwrap_or(0);
        self.spent
            .fetch_add(cpu, std::sync::atomic::Ordering::Relaxed);
        // Pending once per frame, as a body waiting for its source would.
        if self.frames % 2 == 0 {
            cx.waker().wake_by_ref();
        }
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(x.to_string())))))
    }
}

fn streaming_service(
    test: &'static str,
    spent: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> impl tower::Service<
    Request<()>,
    Response = Response<MeasuredBody<WorkBody>>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    ServiceBuilder::new()
        .layer(MeasureLayer::new(1).labels(plain_tag(test)))
        .service(service_fn(move |_: Request<()>| {
            let spent = spent.clone();
            async move {
                Ok::<_, Infallible>(Response::new(WorkBody {
                    frames: 8,
                    work: 2_000_000,
                    spent,
                }))
            }
        }))
}

#[test]
fn work_while_streaming_the_body_is_counted() {
    let spent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let svc = streaming_service("streaming", spent.clone());
    runtime().block_on(async {
        let res = svc.oneshot(Request::new(())).await.unwrap();
        // The response is there but its body is not: no record yet.
        assert!(tagged("streaming").is_empty());
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert!(!body.is_empty());
    });
    let records = tagged("streaming");
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    let body_cpu = spent.load(std::sync::atomic::Ordering::Relaxed);
    assert!(body_cpu > 0);
    let cpu = r.cpu_ns.expect("CPU time is measurable here");
    assert!(cpu >= body_cpu, "record {cpu} < body work {body_cpu}");
    // One poll of the response future, 8 frames and the end of the body.
    assert_eq!(r.polls, Some(1 + 8 + 1));
    assert!(!r.cancelled);
}

#[test]
fn body_dropped_before_its_end_is_cancelled() {
    let spent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let svc = streaming_service("body-dropped", spent);
    runtime().block_on(async {
        let res = svc.oneshot(Request::new(())).await.unwrap();
        let mut body = res.into_body();
        let first = body.frame().await;
        assert!(first.is_some());
        drop(body);
    });
    let records = tagged("body-dropped");
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(records[0].cancelled);
    assert_eq!(records[0].status, Some(200));
    assert_eq!(records[0].polls, Some(2));
}

#[test]
fn head_response_body_dropped_unread_is_not_cancelled() {
    let spent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let svc = streaming_service("head", spent);
    runtime().block_on(async {
        let req = Request::builder().method(Method::HEAD).body(()).unwrap();
        let res = svc.oneshot(req).await.unwrap();
        drop(res);
    });
    let records = tagged("head");
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(!records[0].cancelled);
    assert_eq!(records[0].method.as_deref(), Some("HEAD"));
}

#[test]
fn labels_are_bounded() {
    let mut labels = Labels::default();
    let long = "x".repeat(1000);
    for i in 0..100 {
        labels.insert(&format!("k{i}"), &long);
    }
    assert_eq!(labels.len(), Labels::MAX);
    assert!(labels.iter().all(|(_, v)| v.len() == Labels::MAX_LEN));
    // Replacing an existing key still works when full.
    assert!(labels.insert("k0", "short"));
    assert_eq!(labels.iter().next(), Some(("k0", "short")));
}

#[test]
fn response_dropped_before_it_is_ready_is_cancelled() {
    // The client went away while the handler was still waiting.
    let svc = ServiceBuilder::new()
        .layer(MeasureLayer::new(1).labels(plain_tag("never-ready")))
        .service(service_fn(|_: Request<()>| async {
            std::future::pending::<()>().await;
            Ok::<_, Infallible>(Response::new(http_body_util::Empty::<Bytes>::new()))
        }));
    let mut future = Box::pin(svc.oneshot(Request::new(())));
    let mut cx = Context::from_waker(std::task::Waker::noop());
    for _ in 0..3 {
        assert!(future.as_mut().poll(&mut cx).is_pending());
    }
    drop(future);
    let records = tagged("never-ready");
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(records[0].cancelled);
    assert_eq!(records[0].status, None);
    assert!(records[0].error.is_none());
    assert_eq!(records[0].polls, Some(3));
}

/// A service whose `call` itself panics, before any future exists.
#[derive(Clone)]
struct PanicsInCall;

impl tower::Service<Request<()>> for PanicsInCall {
    type Response = Response<http_body_util::Empty<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        panic!("in call")
    }
}

#[test]
fn panic_in_call_is_recorded_and_passed_through() {
    let mut svc = MeasureLayer::new(1)
        .labels(plain_tag("panic-in-call"))
        .layer(PanicsInCall);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tower::Service::call(&mut svc, Request::new(()))
    }));
    let message = caught.err().and_then(|p| p.downcast_ref::<&str>().copied());
    assert_eq!(message, Some("in call"));
    let records = tagged("panic-in-call");
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].error.as_deref(), Some("panic"));
    assert!(records[0].cancelled);
    // The call segment was read on this thread, though it is not a poll.
    assert!(records[0].cpu_ns.is_some());
    assert_eq!(records[0].threads, Some(1));
    assert_eq!(records[0].polls, Some(0));
}

/// A body that answers in two frames, one poll each, and knows its size.
struct TwoFrames(u8);

impl Body for TwoFrames {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.0 == 2 {
            return Poll::Ready(None);
        }
        self.0 += 1;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"ab")))))
    }
    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(u64::from(2 - self.0) * 2)
    }
}

#[test]
fn axum_body_measures_sampled_bodies_and_hands_unsampled_ones_back_as_they_are() {
    let app = |test: &'static str, rate: u64| {
        Router::new()
            .route(
                "/two",
                get(|| async { axum::body::Body::new(TwoFrames(0)) }),
            )
            .layer(MeasureLayer::new(rate).labels(tag(test)).axum_body())
    };
    runtime().block_on(async {
        // Sampled: the body is measured to its end, as with `MeasuredBody`.
        let (status, body) = send(app("axum-body-sampled", 1), get_req("/two")).await;
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"abab"[..]));
        // Unsampled: the body that comes out is the handler's, its exact
        // size included.
        let res = app("axum-body-unsampled", 0)
            .oneshot(get_req("/two"))
            .await
            .unwrap();
        assert_eq!(res.body().size_hint().exact(), Some(4));
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"abab");
    });
    let records = tagged("axum-body-sampled");
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r.name, "/two");
    assert_eq!(r.status, Some(200));
    assert!(!r.cancelled && r.error.is_none(), "{r:?}");
    // The response future's poll and the body's three (two frames, then
    // the end).
    assert!(r.polls.is_some_and(|p| p >= 3), "{r:?}");
    assert!(tagged("axum-body-unsampled").is_empty());
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN_ID: &str = "00f067aa0ba902b7";

fn traced_req(uri: &str, traceparents: &[&str]) -> Request<axum::body::Body> {
    let mut req = Request::builder().uri(uri);
    for value in traceparents {
        req = req.header("traceparent", *value);
    }
    req.body(axum::body::Body::empty()).unwrap()
}

fn ids(r: &Record) -> (Option<String>, Option<String>) {
    (
        r.trace_id.map(|id| id.to_string()),
        r.span_id.map(|id| id.to_string()),
    )
}

#[test]
fn trace_context_reaches_the_request_and_its_profile_record() {
    let app = Router::new()
        .route(
            "/traced",
            get(|| async {
                let _scope = crate::profile::scope("work");
                "ok"
            }),
        )
        .layer(
            MeasureLayer::new(1)
                .labels(tag("trace-context"))
                .axum_body()
                .trace_context(),
        );
    let header = format!("00-{TRACE_ID}-{SPAN_ID}-01");
    runtime().block_on(async {
        send(app.clone(), traced_req("/traced", &[&header])).await;
        send(app.clone(), get_req("/traced")).await;
    });
    let records = tagged("trace-context");
    let requests: Vec<&Record> = records
        .iter()
        .filter(|r| r.kind == RecordKind::Request)
        .collect();
    assert_eq!(requests.len(), 2, "{records:?}");
    let want = (Some(TRACE_ID.to_string()), Some(SPAN_ID.to_string()));
    assert_eq!(ids(requests[0]), want);
    assert_eq!(ids(requests[1]), (None, None), "no header, no ids");
    // The profile record of the traced request carries them too.
    let profile = records
        .iter()
        .find(|r| r.kind == RecordKind::Profile && r.id == requests[0].id)
        .expect("a profile record");
    assert!(profile.id.is_some());
    assert_eq!(ids(profile), want);
}

/// The only unit test that sends headers the parser refuses: the
/// process-wide count moves by exactly what it sent on sampled requests.
#[test]
fn invalid_and_repeated_headers_are_ignored_and_counted_when_sampled() {
    let app = |test: &'static str, rate: u64| {
        Router::new()
            .route("/cheap", get(|| async { "ok" }))
            .layer(MeasureLayer::new(rate).labels(tag(test)).trace_context())
    };
    let valid = format!("00-{TRACE_ID}-{SPAN_ID}-01");
    let bad: Vec<Vec<String>> = vec![
        vec![valid.to_uppercase()],
        vec![format!("{valid}-")],
        vec![format!("ff{}", &valid[2..])],
        vec![valid.replace(TRACE_ID, &"0".repeat(32))],
        vec![valid.clone(), valid.clone()],
        vec!["x".repeat(8192)],
    ];
    let before = crate::record::traceparent_ignored();
    runtime().block_on(async {
        for headers in &bad {
            let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
            send(app("trace-bad", 1), traced_req("/cheap", &headers)).await;
            // Not sampled: the header is not even read.
            send(
                app("trace-bad-unsampled", 0),
                traced_req("/cheap", &headers),
            )
            .await;
        }
    });
    assert_eq!(
        crate::record::traceparent_ignored() - before,
        bad.len() as u64
    );
    let records = tagged("trace-bad");
    assert_eq!(records.len(), bad.len(), "{records:?}");
    assert!(
        records.iter().all(|r| ids(r) == (None, None)),
        "{records:?}"
    );
    assert!(tagged("trace-bad-unsampled").is_empty());
}

#[test]
fn a_trace_hook_answers_and_a_panicking_one_leaves_no_ids() {
    let from_hook = TraceContext::from_bytes([0x11; 16], [0x22; 8]).unwrap();
    let hooked = Router::new().route("/cheap", get(|| async { "ok" })).layer(
        MeasureLayer::new(1)
            .labels(tag("trace-hook"))
            .trace_context_with((TraceParent, move |_: &Request<axum::body::Body>| {
                Some(from_hook)
            })),
    );
    let panicking = Router::new().route("/cheap", get(|| async { "ok" })).layer(
        MeasureLayer::new(1)
            .labels(tag("trace-hook-panics"))
            .trace_context_with(|_: &Request<axum::body::Body>| -> Option<TraceContext> {
                panic!("trace hook")
            }),
    );
    runtime().block_on(async {
        // The header first, the hook when there is none.
        let header = format!("00-{TRACE_ID}-{SPAN_ID}-01");
        send(hooked.clone(), traced_req("/cheap", &[&header])).await;
        send(hooked.clone(), get_req("/cheap")).await;
        let (status, _) = send(panicking, get_req("/cheap")).await;
        assert_eq!(status, StatusCode::OK);
    });
    let seen: Vec<_> = tagged("trace-hook").iter().map(ids).collect();
    assert_eq!(
        seen,
        [
            (Some(TRACE_ID.to_string()), Some(SPAN_ID.to_string())),
            (Some("11".repeat(16)), Some("22".repeat(8)))
        ]
    );
    let records = tagged("trace-hook-panics");
    assert_eq!(records.len(), 1);
    assert_eq!(ids(&records[0]), (None, None));
    assert_eq!(records[0].status, Some(200));
}
