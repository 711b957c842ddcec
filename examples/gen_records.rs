//! Generates a large record file for benchmarking readers (`dynostats
//! report`, `benches/reader.rs`), through the library's own writer
//! (`Batch` encoding and `FileSink`), so the bytes are what a service writes.
//!
//! ```sh
//! cargo run --release --example gen_records -- /tmp/10m.msgpack 10000000 200
//! cargo run --release --example gen_records -- /tmp/names.msgpack 1000000 1000000
//! ```
//!
//! Arguments: FILE, records (default 10,000,000), distinct endpoints
//! (default 200), and the seconds the records' timestamps span (default:
//! one microsecond apart, 10 s for 10 M records; `604800` spreads them
//! over a week, as a fleet's are, for `timeseries` and the ClickHouse
//! rollup). Records are requests (`GET`/`POST`, a status, a `host`
//! and a `build` label, weight 100 or 1000) and regions, with
//! instructions, cycles, CPU and wall time and RSS spread over about two
//! decades per endpoint. One request in four is followed by its
//! `profile` record (a call tree of a few scopes out of 48 names, one
//! shape in eight recursive, its amounts splitting the request's
//! instructions), as `dynostats top` and `flamegraph` read; RECORDS counts
//! them. The stream is the same on every run (a seeded generator), and one
//! status record per simulated process ends it.
//!
//! The file is written whole, in one file: the sink has no size cap
//! (`FileSink`'s default rotation, 256 MiB keeping 5 old files, would
//! leave only the newest part of a 10 M-record file at FILE and drop the
//! oldest), rotated files `FILE.1`, `FILE.2` ... left by an earlier run are
//! removed, and the program checks that FILE holds every byte it wrote
//! before it says how many records it holds.

use dynostats::record::{Detail, ProfileNode};
use dynostats::sink::{Batch, FileSink, Sink};
use dynostats::{Record, RecordKind};

#[path = "../tests/common/rng.rs"]
mod rng;
use rng::Rng;

/// About log-uniform over `base .. base * 100`.
fn spread(rng: &mut Rng, base: u64) -> u64 {
    let exp = (rng.next() % 1000) as f64 / 500.0; // 0..2 decades
    (base as f64 * 10f64.powf(exp)) as u64
}

/// Scope names of the generated call trees.
const SCOPES: [&str; 8] = [
    "auth::check",
    "db::query",
    "db::decode",
    "render::json",
    "cache::get",
    "parse::body",
    "tree::walk",
    "log::write",
];

fn node(
    name: &str,
    parent: Option<u32>,
    calls: u64,
    inclusive: i64,
    exclusive: i64,
) -> ProfileNode {
    let mut n = ProfileNode::default();
    n.name = name.to_string();
    n.parent = parent;
    n.calls = calls;
    n.inclusive = inclusive;
    n.exclusive = exclusive;
    n
}

/// The profile record of request `r` (instructions `total`): a call tree
/// whose shape depends on the endpoint `e`, scope names from `SCOPES`
/// suffixed by `e % 6` (48 names), amounts splitting `total` exactly.
fn profile_of(r: &Record, e: u64, total: u64, id: u64) -> Record {
    let mut p = r.clone();
    p.kind = RecordKind::Profile;
    p.instructions = None;
    p.cycles = None;
    p.cpu_ns = None;
    p.wall_ns = 0;
    p.rss_start = None;
    p.rss_end = None;
    p.page_faults = None;
    p.context_switches = None;
    p.polls = None;
    p.threads = None;
    p.id = Some(id);
    let t = total as i64;
    let scope = |k: u64| format!("{}#{}", SCOPES[((e + k) % 8) as usize], e % 6);
    let overhead = 40;
    // root -> a (50%) -> b (20%), root -> c (30%) [-> c again, recursive, 10%]
    let (a, b, c) = (t / 2, t / 5, t * 3 / 10);
    let mut nodes = vec![
        node(&r.name, None, 1, t, t - a - c - overhead),
        node(&scope(0), Some(0), 1 + e % 3, a, a - b),
        node(&scope(1), Some(1), 2, b, b),
    ];
    if e % 8 == 7 {
        let inner = t / 10;
        nodes.push(node(&scope(2), Some(0), 1, c, c - inner));
        nodes.push(node(&scope(2), Some(3), 1, inner, inner));
        nodes[4].recursive = true;
    } else {
        nodes.push(node(&scope(2), Some(0), 1, c, c));
    }
    let mut detail = Detail::default();
    detail.timer = Some("instructions".into());
    detail.total = Some(t);
    detail.overhead = Some(overhead);
    detail.stats.insert("scopes".into(), nodes.len() as u64 - 1);
    detail.nodes = nodes;
    p.detail = Some(Box::new(detail));
    p
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: gen_records FILE [RECORDS] [ENDPOINTS] [SPAN_SECONDS]")?;
    let records: u64 = args
        .next()
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(10_000_000);
    let endpoints: u64 = args.next().map(|n| n.parse()).transpose()?.unwrap_or(200);
    if endpoints == 0 {
        return Err("ENDPOINTS must be at least 1".into());
    }
    // Nanoseconds between records.
    let step: u64 = match args.next() {
        Some(span) => (span.parse::<u64>()? * 1_000_000_000 / records.max(1)).max(1),
        None => 1_000,
    };
    let _ = std::fs::remove_file(&path);
    // Rotated files of an earlier run: `dynostats report --rotated FILE`
    // would read them as older parts of this one.
    for n in 1.. {
        if std::fs::remove_file(format!("{path}.{n}")).is_err() {
            break;
        }
    }
    // No cap: the default one (256 MiB) would rotate a large file away.
    let mut sink = FileSink::builder(&path).max_bytes(u64::MAX).build()?;
    let mut written = 0u64;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut batch = Batch::new();
    let processes = 8u32;
    let mut i = 0;
    while i < records {
        let e = rng.below(endpoints);
        let kind = if e % 4 == 3 {
            RecordKind::Region
        } else {
            RecordKind::Request
        };
        let name = match kind {
            RecordKind::Request => format!("/api/v1/endpoint{e}/{{id}}"),
            _ => format!("region::step{e}"),
        };
        let mut r = Record::new(kind, &name);
        r.ts = 1_764_000_000_000_000_000 + i * step;
        r.pid = 1000 + (i % u64::from(processes)) as u32;
        r.weight = if e % 2 == 0 { 100 } else { 1000 };
        let base = 10_000 + (e % 50) * 20_000;
        r.instructions = Some(spread(&mut rng, base));
        r.cycles = Some(spread(&mut rng, base / 2 + 1));
        r.cpu_ns = Some(spread(&mut rng, base / 10 + 1));
        r.wall_ns = spread(&mut rng, base / 5 + 1);
        let rss = 40 << 20;
        r.rss_start = Some(rss);
        r.rss_end = Some(rss + rng.below(64 << 10));
        r.page_faults = Some(rng.below(10));
        r.context_switches = Some(rng.below(3));
        r.set_label("host", &format!("web-{}", r.pid % 4));
        r.set_label("build", if i < records / 2 { "abc123" } else { "def456" });
        if kind == RecordKind::Request {
            r.method = Some(if e % 3 == 0 { "POST" } else { "GET" }.into());
            r.status = Some(match rng.below(100) {
                0 => 500,
                1..=3 => 404,
                _ => 200,
            });
            r.polls = Some(1 + rng.below(4));
            r.threads = Some(1);
        }
        batch.push(&r);
        i += 1;
        if kind == RecordKind::Request && i % 4 == 1 && i < records {
            let instructions = r.instructions.unwrap_or(0);
            batch.push(&profile_of(&r, e, instructions, i));
            i += 1;
        }
        if batch.len() >= 4096 {
            written += batch.bytes().len() as u64;
            sink.write_batch(&batch)?;
            batch.clear();
        }
    }
    for p in 0..processes {
        let mut status = Record::new(RecordKind::Status, "dynostats");
        status.weight = 0;
        status.pid = 1000 + p;
        let mut detail = Detail::default();
        detail.counters.insert("instructions".into(), "ok".into());
        detail.stats.insert("records_dropped_queue_full".into(), 0);
        status.detail = Some(Box::new(detail));
        batch.push(&status);
    }
    written += batch.bytes().len() as u64;
    sink.write_batch(&batch)?;
    sink.flush()?;
    let len = std::fs::metadata(&path)?.len();
    if len != written {
        return Err(format!("{path} holds {len} bytes, {written} were written").into());
    }
    println!(
        "{path}: {} records over {endpoints} endpoints, {len} bytes",
        records + u64::from(processes)
    );
    Ok(())
}
