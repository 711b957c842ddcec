//! What a service shows while it runs: the periodic summary line
//! (`PipelineBuilder::log_summary`) and the pipeline's counts
//! (`PipelineStats`' one line), from an axum router measured by
//! `MeasureLayer` and called in-process for a few seconds.
//!
//! ```text
//! cargo run --example while_it_runs
//! ```
//!
//! prints, each second (a service would log every minute or so), on a VM
//! without a hardware PMU (with one, the costs are instructions):
//!
//! ```text
//! dynostats: 45 requests sampled (standing for 180) in the last 1.0 s; CPU time per request (no record carries instructions): GET /report 4.82 ms (9 sampled), GET /users/{id} 39.6 µs (36 sampled)
//! dynostats: 97 records accepted (and 1 status record of its own); file:/tmp/dynostats-while-it-runs.msgpack: 98 written, 98 delivered; none lost
//! ```
//!
//! (The file has one record more than were accepted: the pipeline's own
//! status record.) The summary goes to stderr here; with the feature `tracing` and
//! a global subscriber installed, it is a `tracing` event at INFO instead.

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use dynostats::{Pipeline, sink::FileSink, tower::MeasureLayer};
use tower::ServiceExt;

async fn user(Path(id): Path<u64>) -> String {
    format!("user {id}\n")
}

/// About 30 times the work of `user`.
async fn report() -> String {
    let sum = (0..200_000u64).fold(0u64, |acc, i| acc.rotate_left(7) ^ std::hint::black_box(i));
    format!("{sum:016x}\n")
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::temp_dir().join("dynostats-while-it-runs.msgpack");
    let pipeline = Pipeline::builder()
        .sink(FileSink::create(&path)?)
        .log_summary(Duration::from_secs(1))
        .build()?;
    let pipeline = dynostats::install(pipeline).map_err(|_| "a pipeline was already installed")?;

    let app = Router::new()
        .route("/users/{id}", get(user))
        .route("/report", get(report))
        // Measure 1 request in 4; each record stands for 4.
        .layer(MeasureLayer::new(4));

    let start = Instant::now();
    let mut next_stats = start + Duration::from_secs(1);
    let mut i = 0u64;
    while start.elapsed() < Duration::from_millis(3_500) {
        let uri = if i % 5 == 0 {
            "/report".to_string()
        } else {
            format!("/users/{i}")
        };
        let request = http::Request::get(uri).body(axum::body::Body::empty())?;
        let response = app.clone().oneshot(request).await?;
        assert!(response.status().is_success());
        i += 1;
        if Instant::now() >= next_stats {
            println!("{}", pipeline.stats());
            next_stats += Duration::from_secs(1);
        }
        // A service's pace, not a benchmark's.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }

    // Writes every record, and logs the last partial interval.
    let stats = pipeline.shutdown()?;
    println!("{stats}");
    println!("records in {}", path.display());
    Ok(())
}
