//! Sends records straight from a pipeline into ClickHouse with
//! `ClickHouseSink`, as fast as the pipeline takes them, and prints what
//! arrived: records/s sustained from one process and the pipeline's
//! accounting (every record delivered or in a counted drop). Run it under
//! `/usr/bin/time` for its CPU.
//!
//! ```sh
//! dynostats clickhouse init --clickhouse http://127.0.0.1:8123/
//! cargo run --release --features clickhouse --example clickhouse_sink -- http://127.0.0.1:8123/ 1000000
//! ```

use std::time::{Duration, Instant};

use dynostats::clickhouse::ClickHouseSink;
use dynostats::{Pipeline, Record, RecordKind};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or("usage: clickhouse_sink URL [RECORDS] [CHUNK]")?;
    let n: u64 = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(200_000);
    let chunk: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10_000);

    let sink = ClickHouseSink::builder(&url)
        .chunk_records(chunk)
        .buffer_records(4 * chunk)
        .flush_timeout(Duration::from_secs(60))
        .build()?;
    let pipeline = Pipeline::builder()
        .sink(sink)
        .queue_capacity(65_536)
        // Room for every record in the sink's backlog: this measures how
        // fast the sink delivers, not how much a slower one would drop.
        .sink_backlog(n)
        .status_interval(None)
        .build()?;
    let names = ["/users/{id}", "/search", "/health", "/orders/{id}/items"];
    let started = Instant::now();
    let mut refused = 0u64;
    for i in 0..n {
        let mut r = Record::new(RecordKind::Request, names[(i % 4) as usize]);
        r.ts = 1_800_000_000_000_000_000 + i * 10_000;
        r.weight = 100;
        r.wall_ns = 50_000 + i % 1_000;
        r.cpu_ns = Some(40_000 + i % 777);
        r.method = Some("GET".into());
        r.status = Some(200);
        r.labels.insert("host", "web-0");
        r.labels.insert("build", "v1");
        // A full queue is a counted drop: wait a little and go on, as a
        // service would not, to measure what the sink sustains.
        while !pipeline.emit(r.clone()) {
            refused += 1;
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    pipeline.flush()?;
    let seconds = started.elapsed().as_secs_f64();
    let stats = pipeline.shutdown()?;
    let sink = &stats.sinks[0];
    println!(
        "{n} records in {seconds:.2} s: {:.0} records/s delivered; delivered {}, dropped by \
         the sink {}, queue full {} (emits retried {refused})",
        sink.delivered as f64 / seconds,
        sink.delivered,
        sink.dropped_by_sink,
        stats.dropped_queue_full,
    );
    Ok(())
}
