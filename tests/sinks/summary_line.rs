//! The periodic summary line (`PipelineBuilder::summary_to`, the engine of
//! `log_summary`): its content from a pipeline's real records, a line
//! every interval even when nothing was sampled, and the interval so far
//! at shutdown.

use std::borrow::Cow;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dynostats::{Pipeline, Record, RecordKind, sink::MemorySink};

fn request(method: &'static str, route: &str, instructions: u64, weight: u64) -> Record {
    let mut r = Record::new(RecordKind::Request, route);
    r.method = Some(Cow::Borrowed(method));
    r.instructions = Some(instructions);
    r.cpu_ns = Some(1_000);
    r.weight = weight;
    r
}

/// A pipeline whose summary lines arrive on the returned channel.
fn pipeline(interval: Duration) -> (Pipeline, mpsc::Receiver<String>) {
    let (tx, lines) = mpsc::channel();
    let pipeline = Pipeline::builder()
        .sink(MemorySink::new())
        .batch_interval(Duration::from_millis(10))
        .summary_to(interval, move |line| {
            let _ = tx.send(line.to_string());
        })
        .build()
        .unwrap();
    (pipeline, lines)
}

#[test]
fn the_line_names_the_costliest_endpoints_per_request() {
    // An hour: the one line is the interval so far, logged at shutdown.
    let (pipeline, lines) = pipeline(Duration::from_secs(3600));
    for _ in 0..4 {
        pipeline.emit(request("POST", "/orders", 4_510_000, 10));
    }
    for _ in 0..30 {
        pipeline.emit(request("GET", "/users/{id}", 812_000, 10));
    }
    pipeline.emit(request("GET", "/search", 2_100_000, 10));
    pipeline.emit(request("GET", "/health", 9_000, 10));
    // Regions inside requests, and status records, are not endpoints.
    pipeline.emit(Record::new(RecordKind::Region, "db::query"));
    pipeline.shutdown().unwrap();
    let line = lines.recv_timeout(Duration::from_secs(10)).unwrap();
    let (head, tail) = line.split_once(" in the last ").unwrap();
    assert_eq!(
        head, "dynostats: 36 requests sampled (standing for 360)",
        "{line}"
    );
    let (_, costs) = tail.split_once("; ").unwrap();
    assert_eq!(
        costs,
        "instructions per request: GET /users/{id} 812 k (30 sampled), \
         POST /orders 4.51 M (4 sampled), GET /search 2.10 M (1 sampled), and 1 more",
        "{line}"
    );
    assert!(lines.try_recv().is_err(), "one line only");
}

#[test]
fn a_line_every_interval_even_an_idle_one() {
    let (pipeline, lines) = pipeline(Duration::from_millis(100));
    for _ in 0..5 {
        pipeline.emit(request("GET", "/a", 1_000, 1));
    }
    // The five records are in the first interval or two (a loaded machine
    // may start an interval between the emits); then idle intervals follow.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut sampled, mut idle) = (0, 0);
    while idle < 2 {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("a line every 100 ms");
        if line.starts_with("dynostats: 0 requests sampled in the last ") {
            idle += 1;
            continue;
        }
        let n: u64 = line
            .strip_prefix("dynostats: ")
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        assert!(
            line.contains("instructions per request: GET /a 1.00 k ("),
            "{line}"
        );
        sampled += n;
    }
    assert_eq!(sampled, 5);
    drop(pipeline);
}

#[test]
fn a_zero_interval_is_refused() {
    let err = Pipeline::builder()
        .sink(MemorySink::new())
        .summary_to(Duration::ZERO, |_| {})
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains("PipelineBuilder::summary_to"),
        "{err}"
    );
}
