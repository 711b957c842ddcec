//! A label hook that panics neither fails the request nor leaves it
//! unrecorded: the request is answered, and its record carries the one
//! label `dynostats.label_hook: panic`.
#![cfg(feature = "tower")]

use crate::common;

use common::memory_pipeline;

use std::convert::Infallible;

use dynostats::{RecordKind, record::Labels, tower::MeasureLayer};
use http::{Request, Response};
use tower::{Layer, ServiceExt, service_fn};

#[test]
fn a_panicking_label_hook_is_a_marked_record() {
    let (pipeline, mem) = memory_pipeline();
    let layer = MeasureLayer::new(1).labels(|req: &Request<String>, labels: &mut Labels| {
        labels.insert("before", "panic");
        if req.uri().path() == "/boom" {
            panic!("a label hook bug");
        }
        labels.insert("tier", "free");
    });
    let service = layer.layer(service_fn(|_req: Request<String>| async {
        Ok::<_, Infallible>(Response::new("ok".to_string()))
    }));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    pipeline.in_scope(|| {
        rt.block_on(async {
            for path in ["/boom", "/fine"] {
                let req = Request::builder().uri(path).body(String::new()).unwrap();
                let res = service.clone().oneshot(req).await.unwrap();
                assert_eq!(res.status(), 200, "{path} answered");
            }
        })
    });
    pipeline.flush().unwrap();
    let records = mem.records_of(RecordKind::Request);
    assert_eq!(records.len(), 2, "{records:?}");
    let labels: Vec<Vec<(&str, &str)>> =
        records.iter().map(|r| r.labels.iter().collect()).collect();
    assert_eq!(labels[0], [("dynostats.label_hook", "panic")]);
    assert_eq!(labels[1], [("before", "panic"), ("tier", "free")]);
    for r in &records {
        // (Cancelled or not by whether the body was read: not read here.)
        assert!(r.error.is_none(), "{r:?}");
    }
}
