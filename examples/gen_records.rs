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
//! (default 200). Records are requests (`GET`/`POST`, a status, a `host`
//! and a `build` label, weight 100 or 1000) and regions, with
//! instructions, cycles, CPU and wall time and RSS spread over about two
//! decades per endpoint. The stream is the same on every run (a seeded
//! generator), and one status record per simulated process ends it.

use dynostats::record::Detail;
use dynostats::sink::{Batch, FileSink, Sink};
use dynostats::{Record, RecordKind};

/// xorshift64*: seeded, so every run writes the same file.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// About log-uniform over `base .. base * 100`.
    fn spread(&mut self, base: u64) -> u64 {
        let exp = (self.next() % 1000) as f64 / 500.0; // 0..2 decades
        (base as f64 * 10f64.powf(exp)) as u64
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: gen_records FILE [RECORDS] [ENDPOINTS]")?;
    let records: u64 = args
        .next()
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(10_000_000);
    let endpoints: u64 = args.next().map(|n| n.parse()).transpose()?.unwrap_or(200);
    if endpoints == 0 {
        return Err("ENDPOINTS must be at least 1".into());
    }
    let _ = std::fs::remove_file(&path);
    let mut sink = FileSink::create(&path)?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut batch = Batch::new();
    let processes = 8u32;
    for i in 0..records {
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
        r.ts = 1_764_000_000_000_000_000 + i * 1_000;
        r.pid = 1000 + (i % u64::from(processes)) as u32;
        r.weight = if e % 2 == 0 { 100 } else { 1000 };
        let base = 10_000 + (e % 50) * 20_000;
        r.instructions = Some(rng.spread(base));
        r.cycles = Some(rng.spread(base / 2 + 1));
        r.cpu_ns = Some(rng.spread(base / 10 + 1));
        r.wall_ns = rng.spread(base / 5 + 1);
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
        if batch.len() >= 4096 {
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
        status.detail = Some(detail);
        batch.push(&status);
    }
    sink.write_batch(&batch)?;
    sink.flush()?;
    let len = std::fs::metadata(&path)?.len();
    println!(
        "{path}: {} records over {endpoints} endpoints, {len} bytes",
        records + u64::from(processes)
    );
    Ok(())
}
