//! `MeasureLayer` under real HTTP load, beside its peers, in one run.
//!
//! ```text
//! cargo run --release --example http_load                      # 7 rounds of 2 s per setup
//! cargo run --release --example http_load -- --rounds 10 --seconds 3 --connections 8
//! cargo run --release --example http_load -- --rate 15000          # every setup at 15,000 req/s
//! cargo run --release --example http_load -- --rate 15000 --rounds 21 --seconds 3 \
//!     --setups bare,bare-2,measure-1000,measure-100,measure-1     # finer: fewer setups, more rounds
//! ```
//!
//! Each setup is an axum app served by its own process on 127.0.0.1 (one
//! tokio worker thread per core): the bare app; the app with
//! `MeasureLayer::new(1000)`, `new(100)` and `new(1)` (records to a file);
//! tower-http's `TraceLayer::new_for_http()` with a `fmt` subscriber at
//! DEBUG writing every request's events to a sink; and tokio-metrics'
//! `TaskMonitor` instrumenting the handler. A closed-loop hyper client in
//! this process drives each setup in turn for a bounded time per round
//! (`--connections` connections, each sending its next request when the
//! previous answer has arrived), rounds interleaved so that machine noise
//! falls on every setup alike.
//!
//! With `--rate R` the clients are paced: together they send at most R
//! requests per second (each connection on its own schedule, still one
//! request in flight), so every setup that can keep up serves the same
//! request rate. Closed-loop, a setup that costs more also serves fewer
//! requests per second, and the server's fixed costs per wake-up (epoll,
//! the scheduler) fall on fewer requests; paced at a rate every setup
//! sustains, the CPU added per request is the layer's own. A setup that
//! cannot keep up is flagged in the table.
//!
//! Reported per setup, as the median over rounds of its ratio to the bare
//! app in the same round: requests per second, client-side p50 and p99
//! latency, and server CPU per request (the sum over the server process's
//! threads of `/proc/PID/task/*/schedstat` run time, so the pipeline's
//! writer thread counts). The absolute medians are printed too, and the
//! raw cost of the counter reads a sampled request consists of, measured
//! in this process on this machine.
//!
//! Each round starts one setup further, so that the order in a round is no
//! setup's bias. `noop-layer` is the bare app with a layer that does
//! nothing, what axum's `Router::layer` costs any layer. `reads-1` is the
//! bare app whose handler makes, in place, the counter reads a sampled
//! request makes (the figure `measure-1` is compared with, without the
//! layer's own code, the record or the pipeline); `reads-100` makes them
//! on every hundredth request of each worker, as `measure-100` does. `counters-open` is the bare app whose worker threads hold
//! their perf group open, as a measured service's workers do between
//! sampled requests. `bare-2` is a second, identical bare app: its row is the control, the
//! spread a setup that adds nothing shows against the bare app; the
//! interquartile range of each row's per-round difference is printed
//! beside its median. A second table breaks each setup's server CPU per
//! request down by thread (tokio's workers, the pipeline's writer, the
//! sinks' threads, the rest) and gives the times those threads were
//! switched in per request (the third field of `schedstat`: wake-ups and
//! preemptions), which is where a pipeline's hand-offs show.
//!
//! `--paired` compares finer, at the cost of the by-setup processes: each
//! setup's process serves both the bare app and the setup's app, and
//! switches between them every `--block-ms` (default 100) while the clients
//! keep sending, in the order bare, setup, setup, bare, bare, ...; what a
//! setup adds is the median over consecutive pairs of blocks of the
//! difference of server CPU per request. The two halves share the process,
//! its memory layout and the moment, so the differences between processes
//! and the machine's slow drift, which dominate the spread of the rounds
//! above, cancel. `bare-2` is then the control: a bare app beside the bare
//! app. `--seconds` is each setup's time per round:
//!
//! ```text
//! cargo run --release --example http_load -- --paired --rate 15000 --rounds 4 --seconds 30
//! ```
//!
//! Everything listens on and connects to 127.0.0.1 only; every loop is
//! bounded in time.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use dynostats::counters::{CounterSet, Counters};
use dynostats::sink::FileSink;
use dynostats::tower::MeasureLayer;
use dynostats::{Pipeline, Snapshot};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use std::io::{BufRead, BufReader};
use tower::ServiceExt;

/// The setups, in the order each round drives them; the first is the
/// bare app every ratio refers to.
const SETUPS: [&str; 11] = [
    "bare",
    "bare-2",
    "counters-open",
    "noop-layer",
    "reads-1",
    "reads-100",
    "measure-1000",
    "measure-100",
    "measure-1",
    "trace",
    "task-monitor",
];

/// The kinds of server thread the breakdown tells apart, by thread name.
const THREAD_KINDS: [&str; 4] = ["workers", "writer", "sinks", "other"];

fn thread_kind(comm: &str) -> usize {
    match comm.trim() {
        // Tokio's worker (and blocking-pool) threads: "tokio-rt-worker",
        // "tokio-runtime-worker" in older releases (15 characters kept).
        c if c.starts_with("tokio-r") => 0,
        "dynostats-write" | "dynostats-writer" => 1,
        "dynostats-sink" => 2,
        _ => 3,
    }
}

async fn user(Path(id): Path<u64>) -> String {
    // A little work of its own, like a real handler's formatting.
    let mut s = String::with_capacity(64);
    for i in 0..8 {
        s.push_str(&format!("{:x}", id.wrapping_mul(0x9e37_79b9) ^ i));
    }
    s.push('\n');
    s
}

thread_local! {
    /// The worker's counters for `reads-1` and `reads-100`, and how many
    /// requests it has served.
    static READS: std::cell::RefCell<(Option<Counters>, u64)> = const { std::cell::RefCell::new((None, 0)) };
}

/// `user` after the counter reads a sampled request makes, done in place
/// on every `EVERY`th request of the thread (`reads-1`, `reads-100`): what
/// those reads cost inside a serving worker, where the caches are colder
/// than in a loop, without the layer's own code.
async fn user_after_reads<const EVERY: u64>(id: Path<u64>) -> String {
    READS.with(|cell| {
        let (c, served) = &mut *cell.borrow_mut();
        *served += 1;
        if *served % EVERY != 0 {
            return;
        }
        let c = c.get_or_insert_with(|| Counters::open(dynostats::counters::thread_counters()));
        one_requests_reads(c);
    });
    user(id).await
}

/// The counter reads of one sampled request, in a row: the first start
/// (with RSS), two more starts, three ends, RSS and peak RSS at the record.
fn one_requests_reads(c: &mut Counters) {
    std::hint::black_box(c.snapshot_start());
    for _ in 0..2 {
        std::hint::black_box(c.snapshot_start_counts());
    }
    for _ in 0..3 {
        std::hint::black_box(c.snapshot_end_counts());
    }
    std::hint::black_box((c.rss_bytes(), c.peak_rss_bytes()));
}

fn routes() -> Router {
    Router::new().route("/users/{id}", get(user))
}

/// The app of `setup`, and the pipeline it needs (if any).
fn app(setup: &str, dir: &std::path::Path) -> (Router, Option<&'static Pipeline>) {
    let measured = |rate: u64| -> (Router, Option<&'static Pipeline>) {
        let sink = FileSink::builder(dir.join("records.msgpack"))
            .max_bytes(64 << 20)
            .keep(1)
            .build()
            .expect("a record file in the temp dir");
        let pipeline = Pipeline::builder().sink(sink).build().expect("a pipeline");
        let pipeline = dynostats::install(pipeline).expect("one pipeline per process");
        (
            routes().layer(MeasureLayer::new(rate).axum_body()),
            Some(pipeline),
        )
    };
    match setup {
        "bare" | "bare-2" | "counters-open" => (routes(), None),
        // A layer that adds nothing: what `Router::layer` costs any layer
        // (axum wraps and boxes each route's service).
        "noop-layer" => (
            routes().layer(tower::layer::layer_fn(|service| service)),
            None,
        ),
        "reads-1" => (
            Router::new().route("/users/{id}", get(user_after_reads::<1>)),
            None,
        ),
        "reads-100" => (
            Router::new().route("/users/{id}", get(user_after_reads::<100>)),
            None,
        ),
        "measure-1000" => measured(1000),
        "measure-100" => measured(100),
        "measure-1" => measured(1),
        "trace" => {
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::DEBUG)
                .with_writer(std::io::sink)
                .init();
            (
                routes().layer(tower_http::trace::TraceLayer::new_for_http()),
                None,
            )
        }
        "task-monitor" => {
            let monitor = tokio_metrics::TaskMonitor::new();
            let handler = move |id: Path<u64>| {
                let monitor = monitor.clone();
                async move { monitor.instrument(user(id)).await }
            };
            (Router::new().route("/users/{id}", get(handler)), None)
        }
        other => panic!("unknown setup {other:?}"),
    }
}

/// Server mode: serve `setup` on an ephemeral port, print `ready PORT`, run
/// until stdin closes (the parent exits or drops it), shut down gracefully.
///
/// `paired` (for `--paired`): serve the bare app and `setup`'s app from one
/// process, each request going to the one the parent chose last by a line
/// on stdin (`a`: the bare app, `b`: `setup`'s), so that the two are
/// compared in the same process, memory layout and moment.
fn serve(setup: &str, paired: bool) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if setup == "counters-open" {
        // The bare app, but each worker thread holds its perf group open
        // (enabled) as a measured service's workers do after their first
        // sampled request: what open counters cost a thread that is not
        // measuring (the kernel switches its events at each context switch).
        builder.on_thread_start(|| {
            std::hint::black_box(dynostats::snapshot());
        });
    }
    let runtime = builder.build().expect("a runtime");
    runtime.block_on(async {
        let (chosen, pipeline) = app(setup, dir.path());
        // Which app serves (paired only): false the bare one, true `setup`'s.
        let serve_chosen = Arc::new(AtomicBool::new(!paired));
        let app = if paired {
            let (bare, _) = app("bare", dir.path());
            let flag = serve_chosen.clone();
            // Both modes pass through this one dispatch, so it costs them alike.
            Router::new().fallback_service(tower::service_fn(move |req: axum::extract::Request| {
                let app = if flag.load(Ordering::Relaxed) {
                    chosen.clone()
                } else {
                    bare.clone()
                };
                app.oneshot(req)
            }))
        } else {
            chosen
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("ready {}", listener.local_addr().unwrap().port());
        let stop = async move {
            // Blocks a thread of its own until the parent closes our stdin;
            // a line `a` or `b` switches the app (paired).
            let _ = tokio::task::spawn_blocking(move || {
                let mut line = String::new();
                loop {
                    line.clear();
                    match std::io::stdin().read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            serve_chosen.store(line.trim() == "b" || !paired, Ordering::Relaxed)
                        }
                    }
                }
            })
            .await;
        };
        axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
            .unwrap();
        if let Some(p) = pipeline {
            let stats = p.shutdown().expect("pipeline shutdown");
            eprintln!(
                "{setup}: {} records accepted, {} dropped (queue full)",
                stats.accepted, stats.dropped_queue_full
            );
        }
    });
}

/// A running server process.
struct Server {
    setup: &'static str,
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(setup: &'static str, paired: bool) -> Server {
        let mode = if paired { "--serve-paired" } else { "--serve" };
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([mode, setup])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting a server process");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line
            .trim()
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{setup}: expected `ready PORT`, got {line:?}"));
        Server {
            setup,
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    /// Paired server: which app serves the requests from now on.
    fn serve_chosen(&mut self, chosen: bool) {
        let stdin = self.child.stdin.as_mut().expect("the server's stdin");
        stdin
            .write_all(if chosen { b"b\n" } else { b"a\n" })
            .and_then(|()| stdin.flush())
            .expect("switching the paired server");
    }

    /// CPU nanoseconds the server's threads have run so far, and the times
    /// they were switched in, per kind of thread (`THREAD_KINDS`).
    fn threads(&self) -> Threads {
        let mut t = Threads::default();
        let tasks = format!("/proc/{}/task", self.child.id());
        let Ok(dir) = std::fs::read_dir(tasks) else {
            return t;
        };
        for task in dir.flatten() {
            let path = task.path();
            let (Ok(stat), Ok(comm)) = (
                std::fs::read_to_string(path.join("schedstat")),
                std::fs::read_to_string(path.join("comm")),
            ) else {
                continue;
            };
            let mut fields = stat
                .split_whitespace()
                .map(|f| f.parse::<u64>().unwrap_or(0));
            let (run, _wait, slices) = (
                fields.next().unwrap_or(0),
                fields.next(),
                fields.next().unwrap_or(0),
            );
            let kind = thread_kind(&comm);
            t.cpu_ns[kind] += run;
            t.slices[kind] += slices;
        }
        t
    }
}

/// Per kind of server thread: run time and times switched in.
#[derive(Clone, Copy, Debug, Default)]
struct Threads {
    cpu_ns: [u64; 4],
    slices: [u64; 4],
}

impl Threads {
    fn since(&self, before: &Threads) -> Threads {
        let mut d = Threads::default();
        for k in 0..4 {
            d.cpu_ns[k] = self.cpu_ns[k].saturating_sub(before.cpu_ns[k]);
            d.slices[k] = self.slices[k].saturating_sub(before.slices[k]);
        }
        d
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// What one round gave for one setup.
#[derive(Clone, Copy, Debug)]
struct Round {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_ns_per_request: f64,
    /// Per kind of thread: CPU ns and switches-in per request.
    cpu_ns_by_kind: [f64; 4],
    slices_by_kind: [f64; 4],
}

/// One closed-loop client connection `c` of `connections` to `addr`, paced to
/// its share of `rate` when given, until `until`; counts each answer in
/// `answered` and returns the latencies in ns.
async fn client(
    addr: SocketAddr,
    c: usize,
    connections: usize,
    rate: Option<f64>,
    until: Instant,
    answered: Arc<AtomicU64>,
) -> Vec<u64> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    let mut latencies = Vec::with_capacity(1 << 16);
    let mut i = c as u64;
    // Each connection's share of the rate, its first send offset so that
    // the connections do not send in step.
    let interval = rate.map(|r| Duration::from_secs_f64(connections as f64 / r));
    let mut next = interval.map(|d| Instant::now() + d.mul_f64(c as f64 / connections as f64));
    while Instant::now() < until {
        if let (Some(at), Some(d)) = (next.as_mut(), interval) {
            // A schedule that falls behind catches up (sends at once)
            // instead of drifting: the rate is the offered load, not a
            // pause between answers.
            tokio::time::sleep_until((*at).into()).await;
            *at += d;
        }
        let request = http::Request::get(format!("/users/{i}"))
            .header("host", "127.0.0.1")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let t = Instant::now();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        response.into_body().collect().await.unwrap();
        latencies.push(t.elapsed().as_nanos() as u64);
        answered.fetch_add(1, Ordering::Relaxed);
        i += connections as u64;
    }
    latencies
}

/// Spawns the `connections` clients of [`client`].
fn clients(
    addr: SocketAddr,
    connections: usize,
    rate: Option<f64>,
    until: Instant,
    answered: &Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<Vec<u64>>> {
    (0..connections)
        .map(|c| tokio::spawn(client(addr, c, connections, rate, until, answered.clone())))
        .collect()
}

/// Drives `server` for `seconds` with `connections` closed-loop clients,
/// paced to `rate` requests per second in all when given.
async fn drive(server: &Server, connections: usize, seconds: f64, rate: Option<f64>) -> Round {
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let before = server.threads();
    let started = Instant::now();
    let answered = Arc::new(AtomicU64::new(0));
    let tasks = clients(server.addr, connections, rate, until, &answered);
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    let threads = server.threads().since(&before);
    latencies.sort_unstable();
    let pick = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize] as f64 / 1e3;
    let n = latencies.len() as f64;
    Round {
        rps: n / elapsed,
        p50_us: pick(0.50),
        p99_us: pick(0.99),
        cpu_ns_per_request: threads.cpu_ns.iter().sum::<u64>() as f64 / n,
        cpu_ns_by_kind: threads.cpu_ns.map(|c| c as f64 / n),
        slices_by_kind: threads.slices.map(|c| c as f64 / n),
    }
}

/// One block of a paired run: which app served it, the answers in it and
/// what the server's threads ran meanwhile.
#[derive(Clone, Copy, Debug)]
struct Block {
    chosen: bool,
    answered: u64,
    threads: Threads,
}

impl Block {
    fn cpu_ns_per_request(&self) -> f64 {
        self.threads.cpu_ns.iter().sum::<u64>() as f64 / self.answered.max(1) as f64
    }
}

/// Drives a paired `server` for `seconds` without a pause, switching it
/// between the bare app and the chosen one every `block`, in the order
/// bare, chosen, chosen, bare, bare, chosen, ... (each consecutive pair of
/// blocks holds one of each, in alternating order, so that a steady drift
/// of the machine cancels), and returns the blocks.
async fn drive_paired(
    server: &mut Server,
    connections: usize,
    seconds: f64,
    block: Duration,
    rate: Option<f64>,
) -> Vec<Block> {
    let count = ((seconds / block.as_secs_f64()) as usize / 4).max(1) * 4;
    let until = Instant::now() + block * (count as u32 + 1);
    let answered = Arc::new(AtomicU64::new(0));
    let tasks = clients(server.addr, connections, rate, until, &answered);
    // Half a block to connect and settle before the first.
    server.serve_chosen(false);
    tokio::time::sleep(block / 2).await;
    let mut blocks = Vec::with_capacity(count);
    for i in 0..count {
        let chosen = matches!(i % 4, 1 | 2);
        server.serve_chosen(chosen);
        let (threads, answers) = (server.threads(), answered.load(Ordering::Relaxed));
        tokio::time::sleep(block).await;
        blocks.push(Block {
            chosen,
            answered: answered.load(Ordering::Relaxed) - answers,
            threads: server.threads().since(&threads),
        });
    }
    for t in tasks {
        t.await.unwrap();
    }
    blocks
}

fn median(v: Vec<f64>) -> f64 {
    quantile(v, 0.5)
}

fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Median ns of `f` over many calls on this thread.
fn median_ns(mut f: impl FnMut() -> Snapshot) -> f64 {
    let mut samples = Vec::with_capacity(501);
    for _ in 0..501 {
        let t = Instant::now();
        std::hint::black_box(f());
        samples.push(t.elapsed().as_nanos() as f64);
    }
    median(samples)
}

/// The raw cost, on this thread, of the reads a sampled request makes:
/// three measured segments (the service's `call`, the response future's
/// poll, the body's poll), each a start and an end read of the counters;
/// the first start reads RSS too, and the record reads RSS and peak RSS
/// once more when it is built.
fn raw_read_cost_ns(c: &mut Counters) -> (f64, String) {
    let first_start = median_ns(|| c.snapshot_start());
    let start = median_ns(|| c.snapshot_start_counts());
    let end = median_ns(|| c.snapshot_end_counts());
    let rss = median_ns(|| {
        let _ = std::hint::black_box((c.rss_bytes(), c.peak_rss_bytes()));
        Snapshot::default()
    });
    let total = first_start + 2.0 * start + 3.0 * end + rss;
    // The whole set in a row, warm and after streaming 32 MiB through the
    // caches (what a worker that reads once in a while meets).
    let in_a_row = median_ns(|| {
        one_requests_reads(c);
        Snapshot::default()
    });
    let mut buffer = vec![0u8; 32 << 20];
    let mut cold = Vec::with_capacity(41);
    for _ in 0..41 {
        for line in buffer.chunks_mut(64) {
            line[0] = line[0].wrapping_add(1);
        }
        std::hint::black_box(&buffer);
        let t = Instant::now();
        one_requests_reads(c);
        cold.push(t.elapsed().as_nanos() as f64);
    }
    let cold = median(cold);
    let detail = format!(
        "first start (with RSS) {first_start:.0} + 2 x start {start:.0} + 3 x end {end:.0} + \
         RSS and peak RSS at the record {rss:.0} = {total:.0} ns (source {}, set {:?}); the \
         set in a row {in_a_row:.0} ns, after streaming 32 MiB through the caches {cold:.0} ns",
        c.source(),
        CounterSet::default()
    );
    (total, detail)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--serve") {
        serve(&args[i + 1], false);
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--serve-paired") {
        serve(&args[i + 1], true);
        return;
    }
    let arg = |name: &str, default: f64| -> f64 {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(|v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("{name} takes a number"))
            })
            .unwrap_or(default)
    };
    let rounds = arg("--rounds", 7.0) as usize;
    let seconds = arg("--seconds", 2.0).clamp(0.2, 600.0);
    let connections = arg("--connections", 8.0) as usize;
    let rate = args
        .iter()
        .any(|a| a == "--rate")
        .then(|| arg("--rate", 0.0))
        .filter(|r| *r > 0.0);

    // `--setups a,b,c`: a subset, in SETUPS order; the bare app always.
    let chosen: Vec<&'static str> = match args.iter().position(|a| a == "--setups") {
        Some(i) => {
            let wanted: Vec<&str> = args
                .get(i + 1)
                .expect("--setups takes a comma-separated list")
                .split(',')
                .collect();
            for w in &wanted {
                assert!(SETUPS.contains(w), "unknown setup {w:?}; known: {SETUPS:?}");
            }
            SETUPS
                .iter()
                .copied()
                .filter(|s| *s == "bare" || wanted.contains(s))
                .collect()
        }
        None => SETUPS.to_vec(),
    };
    if args.iter().any(|a| a == "--paired") {
        let block = Duration::from_millis(arg("--block-ms", 100.0).clamp(10.0, 10_000.0) as u64);
        let setups: Vec<&'static str> = if args.iter().any(|a| a == "--setups") {
            chosen[1..].to_vec()
        } else {
            vec!["bare-2", "measure-1000", "measure-100", "measure-1"]
        };
        paired(&setups, rounds, seconds, block, connections, rate);
        return;
    }
    let servers: Vec<Server> = chosen.iter().map(|s| Server::start(s, false)).collect();
    // The raw reads are measured after every round, on this thread, so
    // that their figure sees the same machine as the rounds.
    let mut counters = Counters::open(dynostats::counters::thread_counters());
    let mut raw_reads: Vec<(f64, String)> = Vec::new();
    let runtime = client_runtime();
    let mut results: Vec<Vec<Round>> = vec![Vec::new(); chosen.len()];
    runtime.block_on(async {
        // Warm-up: connections, caches, the servers' lazily opened counters.
        for s in &servers {
            drive(s, connections, 0.3, rate).await;
        }
        for round in 0..rounds {
            // Each round starts at another setup, so that no setup always
            // runs right after the same one.
            let n = servers.len();
            for i in (0..n).map(|k| (k + round) % n) {
                let s = &servers[i];
                let r = drive(s, connections, seconds, rate).await;
                eprintln!(
                    "round {round} {:>13}: {:>8.0} req/s  p50 {:>6.1} us  p99 {:>7.1} us  server CPU {:>6.2} us/req",
                    s.setup,
                    r.rps,
                    r.p50_us,
                    r.p99_us,
                    r.cpu_ns_per_request / 1e3
                );
                results[i].push(r);
            }
            raw_reads.push(raw_read_cost_ns(&mut counters));
        }
    });
    drop(servers);

    let bare = &results[0];
    println!(
        "\n{rounds} interleaved rounds of {seconds} s per setup, {connections} connections{}, \
         medians over rounds (ratios to the bare app in the same round)\n",
        match rate {
            Some(r) => format!(", paced to {r:.0} req/s"),
            None => " (closed loop)".to_string(),
        }
    );
    println!(
        "{:<14} {:>10} {:>8} {:>9} {:>8} {:>9} {:>8} {:>12} {:>8} {:>13} {:>17}",
        "setup",
        "req/s",
        "ratio",
        "p50 us",
        "ratio",
        "p99 us",
        "ratio",
        "CPU us/req",
        "ratio",
        "added CPU us",
        "IQR of added"
    );
    for (setup, rounds) in chosen.iter().zip(&results) {
        let ratio = |f: fn(&Round) -> f64| {
            median(rounds.iter().zip(bare).map(|(r, b)| f(r) / f(b)).collect())
        };
        let abs = |f: fn(&Round) -> f64| median(rounds.iter().map(f).collect());
        let diffs: Vec<f64> = rounds
            .iter()
            .zip(bare)
            .map(|(r, b)| (r.cpu_ns_per_request - b.cpu_ns_per_request) / 1e3)
            .collect();
        let added = median(diffs.clone());
        let iqr = format!(
            "[{:+.2}, {:+.2}]",
            quantile(diffs.clone(), 0.25),
            quantile(diffs, 0.75)
        );
        println!(
            "{:<14} {:>10.0} {:>8.3} {:>9.1} {:>8.3} {:>9.1} {:>8.3} {:>12.2} {:>8.3} {:>13.2} {:>17}",
            setup,
            abs(|r| r.rps),
            ratio(|r| r.rps),
            abs(|r| r.p50_us),
            ratio(|r| r.p50_us),
            abs(|r| r.p99_us),
            ratio(|r| r.p99_us),
            abs(|r| r.cpu_ns_per_request / 1e3),
            ratio(|r| r.cpu_ns_per_request),
            added,
            iqr,
        );
        if let Some(r) = rate {
            let kept = abs(|x| x.rps);
            if kept < 0.98 * r {
                println!(
                    "{:<14} did not keep up with {r:.0} req/s: its CPU per request is at a lower rate",
                    ""
                );
            }
        }
    }
    println!(
        "\nserver CPU us per request by thread (medians over rounds), and in parentheses the \
         times those threads were switched in per request"
    );
    print_thread_kinds_header();
    for (setup, rounds) in chosen.iter().zip(&results) {
        print!("{setup:<14}");
        for k in 0..THREAD_KINDS.len() {
            let cpu = median(rounds.iter().map(|r| r.cpu_ns_by_kind[k] / 1e3).collect());
            let slices = median(rounds.iter().map(|r| r.slices_by_kind[k]).collect());
            print!(" {:>20}", format!("{cpu:.2} ({slices:.3})"));
        }
        println!();
    }
    let added_us: Vec<(&str, f64)> = chosen
        .iter()
        .zip(&results)
        .map(|(setup, rounds)| {
            let diffs = rounds.iter().zip(bare);
            let added = median(
                diffs
                    .map(|(r, b)| r.cpu_ns_per_request - b.cpu_ns_per_request)
                    .collect(),
            );
            (*setup, added / 1e3)
        })
        .collect();
    print_reads_and_ratios(raw_reads, &added_us);
}

/// The clients' runtime: one thread, this one, so that the raw reads
/// measured between rounds see the thread the clients ran on.
fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the clients")
}

/// The header of a by-thread table: the setup, then each kind of thread.
fn print_thread_kinds_header() {
    print!("{:<14}", "setup");
    for kind in THREAD_KINDS {
        print!(" {:>20}", kind);
    }
    println!();
}

/// The raw reads' line (the median of the rounds' figures) and, for each
/// `measure-N` setup, what it adds per request as a multiple of the reads
/// of one sampled request divided by N.
fn print_reads_and_ratios(mut raw_reads: Vec<(f64, String)>, added_us: &[(&str, f64)]) {
    raw_reads.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (raw, detail) = raw_reads[raw_reads.len() / 2].clone();
    println!(
        "\nraw counter reads of one sampled request, the median of the rounds' (from {:.0} to \
         {:.0} ns): {detail}",
        raw_reads[0].0,
        raw_reads[raw_reads.len() - 1].0
    );
    for &(setup, added) in added_us {
        if let Some(rate) = setup
            .strip_prefix("measure-")
            .and_then(|r| r.parse::<f64>().ok())
        {
            println!(
                "{setup} adds {added:.3} us of server CPU per request = {:.2}x the reads of one \
                 sampled request / {rate}",
                added * 1e3 * rate / raw
            );
        }
    }
}

/// Whether `--paired` can serve `setup` beside the bare app in one
/// process: every setup whose difference is in the app alone
/// (`counters-open` changes every worker thread, so it has no bare half).
fn pairable(setup: &str) -> bool {
    SETUPS.contains(&setup) && !matches!(setup, "bare" | "counters-open")
}

/// `--paired`: each setup in a process of its own that also serves the bare
/// app, switched every `block`; rounds of `seconds` per setup, interleaved.
/// What a setup adds is the difference of CPU per request between its
/// blocks and the bare blocks next to them.
fn paired(
    setups: &[&'static str],
    rounds: usize,
    seconds: f64,
    block: Duration,
    connections: usize,
    rate: Option<f64>,
) {
    for s in setups {
        let can: Vec<&str> = SETUPS.into_iter().filter(|s| pairable(s)).collect();
        assert!(
            pairable(s),
            "--paired cannot serve {s:?} beside the bare app; it can: {can:?}"
        );
    }
    let mut servers: Vec<Server> = setups.iter().map(|s| Server::start(s, true)).collect();
    let mut counters = Counters::open(dynostats::counters::thread_counters());
    let mut raw_reads: Vec<(f64, String)> = Vec::new();
    let runtime = client_runtime();
    let mut results: Vec<Vec<Block>> = vec![Vec::new(); setups.len()];
    runtime.block_on(async {
        for s in servers.iter_mut() {
            drive_paired(s, connections, 4.0 * block.as_secs_f64(), block, rate).await;
        }
        for round in 0..rounds {
            let n = servers.len();
            for i in (0..n).map(|k| (k + round) % n) {
                let s = &mut servers[i];
                let blocks = drive_paired(s, connections, seconds, block, rate).await;
                let (a, b) = sums(&blocks);
                eprintln!(
                    "round {round} {:>13}: {} blocks, bare {:>6.2} us/req, chosen {:>6.2} us/req, {:>8.0} req/s",
                    s.setup,
                    blocks.len(),
                    a.cpu_ns_per_request() / 1e3,
                    b.cpu_ns_per_request() / 1e3,
                    (a.answered + b.answered) as f64 / (blocks.len() as f64 * block.as_secs_f64()),
                );
                results[i].extend(blocks);
            }
            raw_reads.push(raw_read_cost_ns(&mut counters));
        }
    });
    drop(servers);

    println!(
        "\n{rounds} rounds of {seconds} s per setup, each setup's process switching between the \
         bare app and the setup every {} ms, {connections} connections{}\n",
        block.as_millis(),
        match rate {
            Some(r) => format!(", paced to {r:.0} req/s"),
            None => " (closed loop)".to_string(),
        }
    );
    println!(
        "{:<14} {:>6} {:>10} {:>10} {:>10} {:>17} {:>18} {:>10}",
        "setup",
        "pairs",
        "bare us",
        "setup us",
        "added us",
        "IQR of pairs",
        "95% CI of added",
        "req/s"
    );
    let mut added_of = Vec::new();
    for (setup, blocks) in setups.iter().zip(&results) {
        // Each pair of consecutive blocks holds one bare and one chosen.
        let diffs: Vec<f64> = blocks
            .chunks_exact(2)
            .map(|p| {
                let (a, b) = if p[0].chosen {
                    (p[1], p[0])
                } else {
                    (p[0], p[1])
                };
                (b.cpu_ns_per_request() - a.cpu_ns_per_request()) / 1e3
            })
            .collect();
        // The median's 95% confidence interval from the order statistics
        // (distribution-free: a stalled block does not widen it as it
        // would a mean's).
        let mut sorted = diffs.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len() as f64;
        let reach = 0.98 * n.sqrt();
        let low = sorted[((n / 2.0 - reach).floor().max(0.0)) as usize];
        let high = sorted[((n / 2.0 + reach).ceil() as usize).min(sorted.len() - 1)];
        let (a, b) = sums(blocks);
        let added = median(diffs.clone());
        added_of.push((*setup, added));
        let rps = (a.answered + b.answered) as f64 / (blocks.len() as f64 * block.as_secs_f64());
        println!(
            "{:<14} {:>6} {:>10.2} {:>10.2} {:>10.3} {:>17} {:>18} {:>10.0}",
            setup,
            diffs.len(),
            a.cpu_ns_per_request() / 1e3,
            b.cpu_ns_per_request() / 1e3,
            added,
            format!(
                "[{:+.2}, {:+.2}]",
                quantile(diffs.clone(), 0.25),
                quantile(diffs.clone(), 0.75)
            ),
            format!("[{low:+.3}, {high:+.3}]"),
            rps,
        );
        if let Some(r) = rate
            && rps < 0.98 * r
        {
            println!("{:<14} did not keep up with {r:.0} req/s", "");
        }
    }
    println!(
        "\nadded server CPU us per request by thread (all blocks' CPU over their requests, the \
         setup's minus the bare app's), and in parentheses the times those threads were switched \
         in per request in the setup's blocks"
    );
    print_thread_kinds_header();
    for (setup, blocks) in setups.iter().zip(&results) {
        let (a, b) = sums(blocks);
        print!("{setup:<14}");
        for k in 0..THREAD_KINDS.len() {
            let per = |x: &Block, v: u64| v as f64 / x.answered.max(1) as f64;
            let added = (per(&b, b.threads.cpu_ns[k]) - per(&a, a.threads.cpu_ns[k])) / 1e3;
            let slices = per(&b, b.threads.slices[k]);
            print!(" {:>20}", format!("{added:+.3} ({slices:.3})"));
        }
        println!();
    }
    print_reads_and_ratios(raw_reads, &added_of);
}

/// The bare blocks' and the chosen blocks' sums.
fn sums(blocks: &[Block]) -> (Block, Block) {
    let mut out = [false, true].map(|chosen| Block {
        chosen,
        answered: 0,
        threads: Threads::default(),
    });
    for b in blocks {
        let o = &mut out[b.chosen as usize];
        o.answered += b.answered;
        for k in 0..THREAD_KINDS.len() {
            o.threads.cpu_ns[k] += b.threads.cpu_ns[k];
            o.threads.slices[k] += b.threads.slices[k];
        }
    }
    let [a, b] = out;
    (a, b)
}
