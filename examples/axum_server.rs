//! A small axum service measured by `MeasureLayer`, writing records to a
//! file. Listens on 127.0.0.1 only.
//!
//! ```text
//! cargo run --example axum_server                 # until Ctrl-C
//! cargo run --example axum_server -- 10           # for 10 seconds
//! curl http://127.0.0.1:3000/users/7
//! ```
//!
//! Records go to `axum-server.msgpack` (set `DYNOSTATS_FILE` to change it),
//! one MessagePack map each. The `x-feature` header is recorded as a label
//! when its value is one of an allow-list, and as `<other>` otherwise.

use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::routing::{get, post};
use dynostats::{Pipeline, sink::FileSink, tower::HeaderLabel, tower::MeasureLayer};

async fn user(Path(id): Path<u64>) -> String {
    format!("user {id}\n")
}

async fn checksum(body: String) -> String {
    let sum = body
        .bytes()
        .fold(0u64, |acc, b| acc.rotate_left(5) ^ u64::from(b));
    format!("{sum:016x}\n")
}

fn app() -> Router {
    let flag = HeaderLabel::new(
        http::HeaderName::from_static("x-feature"),
        ["new-search", "old-search"],
    );
    Router::new()
        .route("/", get(|| async { "hello\n" }))
        .route("/users/{id}", get(user))
        .route("/checksum", post(checksum))
        // Measure 1 request in 10; each record has weight 10.
        .layer(MeasureLayer::new(10).labels(flag).axum_body())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::var("DYNOSTATS_FILE").unwrap_or_else(|_| "axum-server.msgpack".into());
    let pipeline = Pipeline::builder().sink(FileSink::create(&path)?).build()?;
    let pipeline = dynostats::install(pipeline).map_err(|_| "a pipeline was already installed")?;

    let serve_for: Option<Duration> = std::env::args()
        .nth(1)
        .map(|s| s.parse().map(Duration::from_secs))
        .transpose()?;
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!(
        "listening on http://{}, records to {path}",
        listener.local_addr()?
    );

    axum::serve(listener, app())
        .with_graceful_shutdown(async move {
            match serve_for {
                Some(d) => tokio::time::sleep(d).await,
                None => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        })
        .await?;

    // Every record accepted so far is written and the file flushed.
    let stats = pipeline.shutdown()?;
    let written: u64 = stats.sinks.iter().map(|s| s.written).sum();
    println!("{written} records written to {path}");
    Ok(())
}
