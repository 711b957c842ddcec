//! The OpenTelemetry hook of `MeasureLayer::trace_context_with`, as its
//! documentation writes it, with the real `tracing-opentelemetry` and
//! OpenTelemetry SDK: tower-http's `TraceLayer` outside the measuring layer
//! opens a `tracing` span per request, the SDK gives it a trace id and a
//! span id, and the request's record carries exactly those (the handler,
//! inside the same span, answers with them).
#![cfg(feature = "axum")]

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use dynostats::record::TraceContext;
use dynostats::tower::MeasureLayer;
use dynostats::{Pipeline, RecordKind, sink::MemorySink};
use http_body_util::BodyExt;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use tower::ServiceExt;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;

/// The hook of the documentation: the current span's OpenTelemetry ids.
fn current_otel_context<B>(_: &http::Request<B>) -> Option<TraceContext> {
    let context = tracing::Span::current().context();
    let span = context.span();
    let ids = span.span_context();
    TraceContext::from_bytes(ids.trace_id().to_bytes(), ids.span_id().to_bytes())
}

#[test]
fn the_current_spans_opentelemetry_ids_reach_the_record() {
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("dynostats-test")));
    let memory = MemorySink::new();
    let pipeline = Pipeline::builder()
        .sink(memory.clone())
        .status_interval(None)
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/users/{id}",
            get(|| async {
                // The handler runs in the request's span: its ids.
                let c = current_otel_context(&http::Request::new(())).expect("a valid context");
                format!("{} {}", c.trace_id, c.span_id)
            }),
        )
        .layer(
            MeasureLayer::new(1)
                .axum_body()
                .trace_context_with(current_otel_context),
        )
        .layer(tower_http::trace::TraceLayer::new_for_http());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut answers = Vec::new();
    tracing::subscriber::with_default(subscriber, || {
        pipeline.in_scope(|| {
            rt.block_on(async {
                for i in 0..3 {
                    let req = http::Request::get(format!("/users/{i}"))
                        .body(Body::empty())
                        .unwrap();
                    let res = app.clone().oneshot(req).await.unwrap();
                    let body = res.into_body().collect().await.unwrap().to_bytes();
                    answers.push(String::from_utf8(body.to_vec()).unwrap());
                }
            })
        })
    });
    pipeline.flush().unwrap();
    let recorded: Vec<String> = memory
        .records()
        .iter()
        .filter(|r| r.kind == RecordKind::Request)
        .map(|r| {
            format!(
                "{} {}",
                r.trace_id.expect("a trace id"),
                r.span_id.expect("a span id")
            )
        })
        .collect();
    assert_eq!(recorded, answers);
    // One trace per request: the SDK drew three.
    let mut traces: Vec<&str> = answers.iter().map(|a| &a[..32]).collect();
    traces.dedup();
    assert_eq!(traces.len(), 3, "{answers:?}");
    // Outside any span there is no context, and the hook says so.
    assert!(current_otel_context(&http::Request::new(())).is_none());
    pipeline.shutdown().unwrap();
}
