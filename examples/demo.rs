//! The main demo: an axum service measured by `MeasureLayer`, a load of a
//! few thousand requests from concurrent clients, a graceful shutdown that
//! writes every record to `dynostats-demo.msgpack`, the per-endpoint
//! [`dynostats::Report`] of the records read back from that file, the top
//! profiler scopes by exclusive share (`dynostats::report::profiles::TopTable`, what
//! `dynostats top` prints) and their flame graph in `dynostats-demo.svg`:
//! the handlers mark their parts
//! with `dynostats::scope` (one scope held across `.await`), and one
//! `#[tracing::instrument]` function is profiled through
//! `dynostats::tracing::DynostatsLayer`. It ends with the commands to run
//! next (`report`, `top`, and `compare` of the run's two halves in time,
//! written to `dynostats-demo-1.msgpack` and `-2`).
//!
//! ```text
//! cargo run --release --example demo --features tracing
//! ```
//!
//! Everything listens on and connects to 127.0.0.1 only.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use dynostats::report::profiles::Profiles;
use dynostats::tracing::DynostatsLayer;
use dynostats::{Pipeline, RecordKind, Report, sink::FileSink, tower::MeasureLayer};
use http_body::Frame;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use indicatif::{ProgressBar, ProgressStyle};
use tracing_subscriber::layer::SubscriberExt;

const OUTPUT: &str = "dynostats-demo.msgpack";
/// The same records in two halves, split in time, for `dynostats compare`.
const HALVES: [&str; 2] = ["dynostats-demo-1.msgpack", "dynostats-demo-2.msgpack"];
/// The flame graph of the profile records.
const SVG: &str = "dynostats-demo.svg";
/// Requests sent in total.
const REQUESTS: usize = 4000;
/// Concurrent clients.
const CLIENTS: usize = 8;
/// 1 request in this many is measured.
const SAMPLE_RATE: u64 = 4;
/// The load stops early after this long, whatever is left.
const LOAD_DEADLINE: Duration = Duration::from_secs(40);
/// One request gives up after this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Some CPU work that the optimizer cannot remove: `rounds` steps of a
/// 64-bit mixing function.
fn mix(rounds: u64, seed: u64) -> u64 {
    let mut x = seed | 1;
    for i in 0..rounds {
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd).wrapping_add(i);
    }
    std::hint::black_box(x)
}

/// Cheap: a constant.
async fn cheap() -> &'static str {
    "ok"
}

/// Cheap, with a path parameter: the record holds `/users/{id}`, never
/// the id.
async fn user(axum::extract::Path(id): axum::extract::Path<u64>) -> String {
    let user = lookup_user(id);
    dynostats::scope_fn("render_user", || format!("user {id} ({user:x})"))
}

/// Profiled through the `tracing` layer: its span is a scope.
#[tracing::instrument]
fn lookup_user(id: u64) -> u64 {
    mix(2_000 + id % 1_000, id)
}

/// CPU-heavy: a few hundred thousand mixing rounds, in two parts.
async fn compute() -> String {
    let _s = dynostats::scope("compute");
    let a = dynostats::scope_fn("compute::hash", || mix(300_000, 7));
    let b = dynostats::scope_fn("compute::checksum", || mix(100_000, a));
    format!("{:x}", b)
}

/// Awaits between pieces of CPU work: wall time is far above CPU time, and
/// the task may resume on another worker thread after each sleep. Its
/// `mixed::pipeline` scope is held across both sleeps: it is charged this
/// request's polls only, whatever else the worker threads ran meanwhile.
async fn mixed() -> String {
    let _pipeline = dynostats::scope("mixed::pipeline");
    let a = dynostats::scope_fn("mixed::stage", || mix(100_000, 1));
    tokio::time::sleep(Duration::from_millis(2)).await;
    let b = dynostats::scope_fn("mixed::stage", || mix(100_000, a));
    tokio::time::sleep(Duration::from_millis(2)).await;
    format!("{:x}", mix(100_000, b))
}

/// Memory-hungry: builds a 32 MiB working set and keeps it until the
/// response has been sent (as a response that borrows from a large buffer
/// would), so the record's RSS change shows it.
async fn alloc() -> Body {
    let mut scratch = vec![0u8; 32 << 20];
    // Touch every page so it is resident.
    for (i, page) in scratch.chunks_mut(4096).enumerate() {
        page[0] = i as u8;
    }
    let sum: u64 = scratch.iter().step_by(4096).map(|&b| u64::from(b)).sum();
    Body::new(HoldingBody {
        _scratch: scratch,
        summary: Some(Bytes::from(format!("{sum}"))),
    })
}

struct HoldingBody {
    _scratch: Vec<u8>,
    summary: Option<Bytes>,
}

impl http_body::Body for HoldingBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.summary.take().map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.summary.is_none()
    }
}

/// Does its work while the body streams: 16 chunks, each computed when the
/// client's connection asks for it. A layer that stopped measuring at the
/// response head would miss almost all of it.
async fn stream() -> Body {
    Body::new(ChunkBody { left: 16, seed: 3 })
}

struct ChunkBody {
    left: u32,
    seed: u64,
}

impl http_body::Body for ChunkBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        self.left -= 1;
        // Measured while the body streams: the request's profile is
        // installed around each poll of the body too.
        self.seed = dynostats::scope_fn("stream::chunk", || mix(30_000, self.seed));
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(format!(
            "{:x}\n",
            self.seed
        ))))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }
}

fn app() -> Router {
    Router::new()
        .route("/cheap", get(cheap))
        .route("/users/{id}", get(user))
        .route("/compute", get(compute))
        .route("/mixed", get(mixed))
        .route("/alloc", get(alloc))
        .route("/stream", get(stream))
        .layer(MeasureLayer::new(SAMPLE_RATE).axum_body())
}

/// The path of request `i`, and the endpoint it should be recorded under.
fn request_path(i: usize) -> (String, &'static str) {
    match i % 20 {
        0..=5 => ("/cheap".into(), "/cheap"),
        6..=9 => (format!("/users/{}", i * 7919 % 100_000), "/users/{id}"),
        10..=12 => ("/compute".into(), "/compute"),
        13..=15 => ("/mixed".into(), "/mixed"),
        16 => ("/alloc".into(), "/alloc"),
        17 | 18 => ("/stream".into(), "/stream"),
        _ => (format!("/no/such/page/{i}"), dynostats::tower::UNMATCHED),
    }
}

#[derive(Default)]
struct Sent {
    ok: usize,
    failed: usize,
    per_endpoint: BTreeMap<&'static str, usize>,
}

async fn drive_load(addr: std::net::SocketAddr) -> Sent {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let next = Arc::new(AtomicUsize::new(0));
    let bar = ProgressBar::new(REQUESTS as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} requests  {per_sec}  {elapsed}")
            .expect("a valid template"),
    );
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let client = client.clone();
        let next = next.clone();
        let bar = bar.clone();
        tasks.push(tokio::spawn(async move {
            let mut sent = Sent::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= REQUESTS || started.elapsed() > LOAD_DEADLINE {
                    break;
                }
                let (path, endpoint) = request_path(i);
                let uri: http::Uri = format!("http://{addr}{path}").parse().expect("a valid URI");
                let ok = tokio::time::timeout(REQUEST_TIMEOUT, async {
                    let response = client.get(uri).await.ok()?;
                    response.into_body().collect().await.ok()
                })
                .await
                .ok()
                .flatten()
                .is_some();
                if ok {
                    sent.ok += 1;
                    *sent.per_endpoint.entry(endpoint).or_default() += 1;
                } else {
                    sent.failed += 1;
                }
                bar.inc(1);
            }
            sent
        }));
    }
    let mut total = Sent::default();
    for task in tasks {
        let sent = task.await.expect("a client task does not panic");
        total.ok += sent.ok;
        total.failed += sent.failed;
        for (k, v) in sent.per_endpoint {
            *total.per_endpoint.entry(k).or_default() += v;
        }
    }
    bar.finish();
    total
}

/// The report of the records read back, then what only the demo knows:
/// how many requests the clients sent per endpoint, beside the estimate
/// from the samples' weights.
fn print_report(report: &Report, sent: &Sent, multi_thread: (usize, usize)) {
    println!();
    print!("{}", report.table().kind(Some(RecordKind::Request)));
    println!("\nsent by the clients vs estimated from the samples (sum of weights):");
    for (endpoint, count) in &sent.per_endpoint {
        let estimated = report
            .group(RecordKind::Request, endpoint, Some("GET"))
            .map_or(0, |g| g.events());
        println!("  {endpoint:<14} sent {count:>5}  estimated {estimated:>5}");
    }
    println!(
        "{} of {} sampled requests ran on more than one worker thread: their counters are \
         summed over every poll, on whichever thread ran it.",
        multi_thread.0, multi_thread.1
    );
}

/// The records of `OUTPUT` in two files split in time, at the middle
/// request record (a profile record stays with its request), so that
/// `dynostats compare` has two halves to compare.
fn write_halves(records: &[dynostats::Record]) -> std::io::Result<()> {
    let requests: Vec<usize> = (0..records.len())
        .filter(|&i| records[i].kind == RecordKind::Request)
        .collect();
    let split = requests
        .get(requests.len() / 2)
        .copied()
        .unwrap_or(records.len());
    for (path, part) in [
        (HALVES[0], &records[..split]),
        (HALVES[1], &records[split..]),
    ] {
        let bytes: Vec<u8> = part.iter().flat_map(|r| r.to_msgpack()).collect();
        std::fs::write(path, bytes)?;
    }
    Ok(())
}

/// The top scopes by exclusive share (the library's `dynostats top`), and
/// the flame graph of the call trees in `SVG`.
fn print_top(profiles: &Profiles) -> Result<(), Box<dyn std::error::Error>> {
    let (Some(calls), Some(top)) = (profiles.calls(None), profiles.top(None)) else {
        println!("\nno profile records");
        return Ok(());
    };
    println!();
    print!("{}", top.limit(Some(12)).name_width(Some(40)));
    // The words around the frames (the unit, the input, the root's name)
    // are the library's, as `dynostats flamegraph` draws them.
    let scale = calls.folded_scale();
    let mut folded = Vec::new();
    calls.write_folded_scaled(&mut folded, scale)?;
    let mut labels = profiles.flame_labels(calls, OUTPUT, scale);
    labels.fit(1200, 12, 0.59);
    let mut options = inferno::flamegraph::Options::default();
    options.title = labels.title.clone();
    options.subtitle = labels.subtitle.first().cloned();
    options.count_name = labels.count_name.clone();
    options.name_type = "Scope:".into();
    options.image_width = Some(1200);
    let mut drawn = Vec::new();
    inferno::flamegraph::from_reader(&mut options, &folded[..], &mut drawn)?;
    let drawn = String::from_utf8(drawn)?;
    let svg = labels.finish_svg(&drawn).unwrap_or(drawn);
    std::fs::write(SVG, svg)?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    // `tracing` spans become profiler scopes inside sampled requests.
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(DynostatsLayer::new()),
    )?;
    let _ = std::fs::remove_file(OUTPUT);
    let pipeline = Pipeline::builder()
        .sink(FileSink::create(OUTPUT)?)
        // Large enough that no sampled request of this run is dropped.
        .queue_capacity(REQUESTS * 2)
        .build()?;
    let pipeline = dynostats::install(pipeline).map_err(|_| "a pipeline was already installed")?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let sent = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            axum::serve(listener, app())
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        println!(
            "serving on http://{addr}, sending {REQUESTS} requests from {CLIENTS} clients, \
             measuring 1 in {SAMPLE_RATE}"
        );
        let sent = drive_load(addr).await;
        // Graceful shutdown: in-flight requests finish, their records are
        // emitted before the server task ends.
        let _ = stop.send(());
        server.await??;
        Ok::<_, Box<dyn std::error::Error>>(sent)
    })?;
    drop(runtime);

    // Writes every accepted record and flushes the file.
    let stats = pipeline.shutdown()?;
    let mut report = Report::new();
    let mut multi_thread = (0, 0);
    let mut profiles = Profiles::new();
    let mut records = Vec::new();
    for record in dynostats::read(std::fs::File::open(OUTPUT)?) {
        let record = record?;
        profiles.add(&record);
        if record.kind == RecordKind::Request {
            multi_thread.0 += usize::from(record.threads.is_some_and(|t| t > 1));
            multi_thread.1 += 1;
        }
        report.add(&record);
        records.push(record);
    }
    write_halves(&records)?;
    println!(
        "\n{} requests answered, {} failed; {} request records in {OUTPUT} ({} accepted, {} dropped by the pipeline)",
        sent.ok,
        sent.failed,
        multi_thread.1,
        stats.accepted,
        stats.dropped_queue_full + stats.dropped_closed,
    );
    print_report(&report, &sent, multi_thread);
    print_top(&profiles)?;
    println!(
        "\nwrote {OUTPUT}, its two halves in time {} and {}, and the flame graph {SVG}. Next:\n\
         \n  cargo run --release --features cli -- report {OUTPUT}\
         \n  cargo run --release --features cli -- top {OUTPUT}\
         \n  cargo run --release --features cli -- compare {} --against {}\
         \n\n(or `cargo install --path . --features cli` once, then `dynostats report {OUTPUT}` ...)",
        HALVES[0], HALVES[1], HALVES[0], HALVES[1]
    );
    println!("\nfinished in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
