//! `MeasureLayer` through `tower::ServiceExt::oneshot`: one record per
//! sampled request with the method, the status and the route template;
//! none for unsampled requests; the weight is the rate.
//!
//! Each test scopes its own pipeline to its thread and drives the
//! requests on a current-thread runtime, so records stay apart.
#![cfg(feature = "axum")]

use crate::common;

use common::memory_pipeline;

use std::convert::Infallible;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use dynostats::{Record, RecordKind, tower::MeasureLayer};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use tower::{ServiceBuilder, ServiceExt, service_fn};

/// Runs `f` on a current-thread runtime with `pipeline` scoped to this
/// thread, then returns the request records.
fn requests_recorded<F: std::future::Future>(f: F) -> Vec<Record> {
    let (p, mem) = memory_pipeline();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    p.in_scope(|| rt.block_on(f));
    p.flush().unwrap();
    mem.records_of(RecordKind::Request)
}

fn app(rate: u64) -> Router {
    Router::new()
        .route(
            "/users/{id}",
            get(|| async { "a user" }).delete(|| async { StatusCode::NO_CONTENT }),
        )
        .route("/health", get(|| async { "ok" }))
        .layer(MeasureLayer::new(rate))
}

async fn send(app: &Router, method: Method, uri: &str) -> StatusCode {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    res.into_body().collect().await.unwrap();
    status
}

#[test]
fn each_sampled_request_has_method_status_and_template() {
    let records = requests_recorded(async {
        let app = app(1);
        assert_eq!(
            send(&app, Method::GET, "/users/31337?session=abc").await,
            StatusCode::OK
        );
        assert_eq!(
            send(&app, Method::DELETE, "/users/9").await,
            StatusCode::NO_CONTENT
        );
        assert_eq!(send(&app, Method::GET, "/health").await, StatusCode::OK);
        assert_eq!(
            send(&app, Method::GET, "/users").await,
            StatusCode::NOT_FOUND
        );
    });
    let seen: Vec<(&str, &str, Option<u16>)> = records
        .iter()
        .map(|r| (r.method.as_deref().unwrap(), r.name.as_str(), r.status))
        .collect();
    assert_eq!(
        seen,
        [
            ("GET", "/users/{id}", Some(200)),
            ("DELETE", "/users/{id}", Some(204)),
            ("GET", "/health", Some(200)),
            ("GET", dynostats::tower::UNMATCHED, Some(404)),
        ]
    );
    for r in &records {
        assert_eq!(r.weight, 1);
        assert!(!r.cancelled && r.error.is_none(), "{r:?}");
        assert!(r.polls.is_some_and(|p| p >= 1));
        assert_eq!(r.threads, Some(1));
        // The path parameter's value and the query string are nowhere.
        let bytes = r.to_msgpack();
        for secret in [&b"31337"[..], b"session", b"abc"] {
            assert!(!bytes.windows(secret.len()).any(|w| w == secret), "{r:?}");
        }
    }
}

#[test]
fn unsampled_requests_leave_no_record() {
    let records = requests_recorded(async {
        let app = app(0);
        for i in 0..200 {
            assert_eq!(
                send(&app, Method::GET, &format!("/users/{i}")).await,
                StatusCode::OK
            );
        }
    });
    assert!(records.is_empty(), "{records:?}");
}

#[test]
fn one_in_n_records_carry_weight_n() {
    let requests = 3000;
    let records = requests_recorded(async move {
        let app = app(10);
        for i in 0..requests {
            send(&app, Method::GET, &format!("/users/{i}")).await;
        }
    });
    // 300 expected; the geometric countdown's spread is about 17.
    assert!((200..=400).contains(&records.len()), "{}", records.len());
    assert!(
        records
            .iter()
            .all(|r| r.weight == 10 && r.name == "/users/{id}")
    );
    // Extrapolated from the sample, the total is close to what was sent.
    let estimated: u64 = records.iter().map(|r| r.weight).sum();
    assert!((2000..=4000).contains(&estimated), "{estimated}");
}

#[test]
fn any_http_service_works_behind_the_layer() {
    let records = requests_recorded(async {
        let svc = ServiceBuilder::new()
            .layer(MeasureLayer::new(1))
            .service(service_fn(|req: Request<String>| async move {
                let status = if req.body().is_empty() {
                    StatusCode::BAD_REQUEST
                } else {
                    StatusCode::ACCEPTED
                };
                let res = Response::builder()
                    .status(status)
                    .body(http_body_util::Full::new(Bytes::from(req.into_body())))
                    .unwrap();
                Ok::<_, Infallible>(res)
            }));
        for body in ["", "payload"] {
            let req = Request::post("/anything").body(body.to_string()).unwrap();
            let res = svc.clone().oneshot(req).await.unwrap();
            let echoed = res.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&echoed[..], body.as_bytes());
        }
    });
    let statuses: Vec<Option<u16>> = records.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(400), Some(202)]);
    assert!(
        records
            .iter()
            .all(|r| r.name == dynostats::tower::UNMATCHED)
    );
    assert!(records.iter().all(|r| r.method.as_deref() == Some("POST")));
}
