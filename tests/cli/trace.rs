//! One request found from its trace: records made by `MeasureLayer` with
//! `.trace_context()` from requests with `traceparent` headers, then
//! `dynostats report --trace-id ID`, `dynostats top --label
//! trace_id=ID` and `dynostats pprof --label-key trace_id` on them.
#![cfg(feature = "axum")]

use std::path::Path;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use dynostats::{Pipeline, sink::FileSink, tower::MeasureLayer};
use http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::cli::{json, run, text};
use crate::pprof::{dynostats_pprof, go_available, pprof, pprof_traces};

/// The trace ids of the requests sent (`None`: no header).
const TRACES: [Option<&str>; 4] = [
    Some("0af7651916cd43dd8448eb211c80319c"),
    Some("4bf92f3577b34da6a3ce929d0e0e4736"),
    None,
    Some("00000000000000000000000000000001"),
];

fn span_of(i: usize) -> String {
    format!("{:016x}", 0x1000 + i)
}

/// Sends one request per entry of [`TRACES`] to `/users/{id}` (whose
/// handler enters a profiler scope), every one sampled, and writes the
/// records into `path`.
fn traced_records(path: &Path) {
    let pipeline = Pipeline::builder()
        .sink(FileSink::create(path).unwrap())
        .status_interval(None)
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/users/{id}",
            get(|| async {
                let _scope = dynostats::scope("lookup");
                std::hint::black_box((0..1000u64).sum::<u64>());
                "a user"
            }),
        )
        .layer(MeasureLayer::new(1).axum_body().trace_context());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    pipeline.in_scope(|| {
        rt.block_on(async {
            for (i, trace) in TRACES.iter().enumerate() {
                let mut req = Request::builder().uri(format!("/users/{i}"));
                if let Some(trace) = trace {
                    req = req.header("traceparent", format!("00-{trace}-{}-01", span_of(i)));
                }
                let res = app
                    .clone()
                    .oneshot(req.body(Body::empty()).unwrap())
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
                res.into_body().collect().await.unwrap();
            }
        })
    });
    pipeline.shutdown().unwrap();
}

/// `report --json ARGS`: (records sampled, events) of `/users/{id}`, or
/// `None` without such a row.
fn sampled(args: &[&str]) -> Option<(u64, u64)> {
    let mut all = vec!["report", "--json"];
    all.extend(args);
    let out = run(&all);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v = json(&out);
    let groups = v["report"]["groups"].as_array().unwrap();
    assert!(groups.len() <= 1, "{groups:?}");
    groups.first().map(|g| {
        assert_eq!(g["name"], "/users/{id}");
        (
            g["sampled"].as_u64().unwrap(),
            g["events"].as_u64().unwrap(),
        )
    })
}

#[test]
fn report_with_trace_id_answers_for_one_request() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.msgpack");
    traced_records(&path);
    let file = path.to_str().unwrap();

    assert_eq!(sampled(&[file]), Some((4, 4)));
    for trace in TRACES.iter().flatten() {
        assert_eq!(
            sampled(&["--trace-id", trace, file]),
            Some((1, 1)),
            "{trace}"
        );
        // The same as the label filter; upper case is lowered.
        let label = format!("trace_id={trace}");
        assert_eq!(sampled(&["--label", &label, file]), Some((1, 1)));
        let upper = trace.to_uppercase();
        assert_eq!(sampled(&["--trace-id", &upper, file]), Some((1, 1)));
    }
    // A span id is a filter key too.
    let label = format!("span_id={}", span_of(1));
    assert_eq!(sampled(&["--label", &label, file]), Some((1, 1)));
    // An id no request had: no row.
    assert_eq!(
        sampled(&["--trace-id", "ffffffffffffffffffffffffffffffff", file]),
        None
    );

    // Not an id: a usage error that says what an id is.
    for bad in [
        "xyz",
        "00000000000000000000000000000000",
        "0af7651916cd43dd",
    ] {
        let out = run(&["report", "--trace-id", bad, file]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("a trace id is 32 lowercase hex digits, not all zero"),
            "{stderr}"
        );
    }
}

#[test]
fn top_and_pprof_take_the_trace_id_as_a_label() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.msgpack");
    traced_records(&path);
    let file = path.to_str().unwrap();

    let top = |args: &[&str]| {
        let mut all = vec!["top", "--json", "-n", "0"];
        all.extend(args);
        let out = run(&all);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        json(&out)
    };
    let calls_of_lookup = |v: &serde_json::Value| {
        v["top"]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "lookup")
            .map(|r| r["calls"].as_u64().unwrap())
    };
    assert_eq!(calls_of_lookup(&top(&[file])), Some(4));
    let label = format!("trace_id={}", TRACES[1].unwrap());
    assert_eq!(calls_of_lookup(&top(&["--label", &label, file])), Some(1));

    if !go_available("top_and_pprof_take_the_trace_id_as_a_label") {
        return;
    }
    let profile = dynostats_pprof(dir.path(), "p.pb.gz", &["--label-key", "trace_id", file]);
    // Calls: plain counts whatever the timer (CPU time here without a PMU).
    let traces = |args: &[&str]| {
        let mut all = vec!["-traces", "-sample_index=calls"];
        all.extend(args);
        all.push(&profile);
        pprof_traces(&pprof(&all))
    };
    let mut seen: Vec<Option<String>> = traces(&[])
        .into_iter()
        .filter(|(_, _, stack)| stack.ends_with(";lookup"))
        .map(|(labels, _, _)| labels.get("trace_id").cloned())
        .collect();
    seen.sort();
    let mut expected: Vec<Option<String>> = TRACES.iter().map(|t| t.map(String::from)).collect();
    expected.sort();
    assert_eq!(seen, expected);
    // pprof's own filter on the label keeps that request's samples.
    let focus = format!("trace_id={}", TRACES[0].unwrap());
    let traces = traces(&["-tagfocus", &focus]);
    assert!(!traces.is_empty());
    assert!(
        traces
            .iter()
            .all(|(labels, _, _)| labels.get("trace_id").map(String::as_str) == TRACES[0]),
        "{traces:?}"
    );
}
