// Own test binary: it installs the global pipeline.
//! A real HTTP round trip: an axum service with `MeasureLayer` on
//! 127.0.0.1, a hyper client sending N requests from a few concurrent
//! tasks, graceful shutdown, then exactly N request records in the file.
//! Its own test binary: it installs the global pipeline (worker threads
//! have no scoped one).
#![cfg(feature = "axum")]

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use dynostats::{Pipeline, Record, RecordKind, sink::FileSink, tower::MeasureLayer};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const REQUESTS: usize = 300;
const CLIENTS: usize = 4;

fn app() -> Router {
    Router::new()
        .route("/items/{id}", get(|| async { "item" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(1)).await;
                "slow"
            }),
        )
        .layer(MeasureLayer::new(1))
}

fn path_of(i: usize) -> (String, &'static str) {
    if i % 3 == 0 {
        ("/slow".to_string(), "/slow")
    } else {
        (format!("/items/{i}"), "/items/{id}")
    }
}

#[test]
fn every_request_is_in_the_file_after_graceful_shutdown() {
    let dir = std::env::temp_dir().join(format!("dynostats-layer-http-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("records.msgpack");
    let _ = std::fs::remove_file(&file);
    let pipeline = Pipeline::builder()
        .sink(FileSink::create(&file).unwrap())
        .status_interval(None)
        .build()
        .unwrap();
    let pipeline = dynostats::install(pipeline).unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ok = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            axum::serve(listener, app())
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let client = client.clone();
                tokio::spawn(async move {
                    let mut ok = 0;
                    for i in (c..REQUESTS).step_by(CLIENTS) {
                        let uri: http::Uri =
                            format!("http://{addr}{}", path_of(i).0).parse().unwrap();
                        let res = client.get(uri).await.unwrap();
                        assert_eq!(res.status(), 200);
                        res.into_body().collect().await.unwrap();
                        ok += 1;
                    }
                    ok
                })
            })
            .collect();
        let load = async {
            let mut ok = 0;
            for t in tasks {
                ok += t.await.unwrap();
            }
            ok
        };
        let ok = tokio::time::timeout(Duration::from_secs(120), load)
            .await
            .expect("the requests finish within two minutes");
        drop(client);
        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(30), server)
            .await
            .expect("graceful shutdown finishes")
            .unwrap()
            .unwrap();
        ok
    });
    drop(rt);
    assert_eq!(ok, REQUESTS);

    let stats = pipeline.shutdown().unwrap();
    assert_eq!(stats.dropped_queue_full + stats.dropped_closed, 0);
    let records: Vec<Record> = dynostats::read(std::fs::File::open(&file).unwrap())
        .collect::<Result<_, _>>()
        .unwrap();
    let requests: Vec<&Record> = records
        .iter()
        .filter(|r| r.kind == RecordKind::Request)
        .collect();
    assert_eq!(requests.len(), REQUESTS);
    let mut per_endpoint: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &requests {
        *per_endpoint.entry(r.name.as_str()).or_default() += 1;
        assert_eq!(r.status, Some(200));
        assert_eq!(r.method.as_deref(), Some("GET"));
        assert!(!r.cancelled, "{r:?}");
    }
    let mut expected: BTreeMap<&str, usize> = BTreeMap::new();
    for i in 0..REQUESTS {
        *expected.entry(path_of(i).1).or_default() += 1;
    }
    assert_eq!(per_endpoint, expected);
    // The sleeping endpoint's wall time holds its sleep, and the task was
    // polled again after it.
    for r in requests.iter().filter(|r| r.name == "/slow") {
        assert!(r.wall_ns >= 1_000_000, "{r:?}");
        assert!(r.polls.is_some_and(|p| p >= 2), "{r:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
