//! Sends records straight from a pipeline into ClickHouse with
//! `ClickHouseSink` and prints what arrived and what it cost.
//!
//! Two modes:
//!
//! - **Throughput** (`URL [RECORDS] [CHUNK]`): as fast as the pipeline
//!   takes them; prints records/s sustained from one process and the
//!   pipeline's accounting (every record delivered or in a counted drop).
//!   Run it under `/usr/bin/time` for its CPU.
//! - **Paced** (`URL --paced RATE [SECONDS] [ROUNDS]`): a service's steady
//!   stream, RATE records/s in bursts of one millisecond's worth, in rounds
//!   that alternate between a pipeline whose only sink is a `ClickHouseSink`
//!   and the same pipeline with a sink that discards. Each round prints the
//!   producing thread's CPU per record (what `emit` costs the service's
//!   threads) and the whole process's (the sink's thread included); the end
//!   gives the medians of both setups and of their paired differences:
//!   what the sink adds to `emit`, and what it costs the process beside.
//!
//! ```sh
//! dynostats clickhouse init --clickhouse http://127.0.0.1:8123/
//! cargo run --release --features clickhouse --example clickhouse_sink -- http://127.0.0.1:8123/ 1000000
//! cargo run --release --features clickhouse --example clickhouse_sink -- http://127.0.0.1:8123/ --paced 20000 5 7
//! ```

use std::time::{Duration, Instant};

use dynostats::clickhouse::ClickHouseSink;
use dynostats::sink::{Batch, Sink};
use dynostats::{Pipeline, Record, RecordKind};

/// The records this example sends: four endpoints, two labels, a few
/// counters, the i-th record's values a function of `i`.
fn record(i: u64) -> Record {
    const NAMES: [&str; 4] = ["/users/{id}", "/search", "/health", "/orders/{id}/items"];
    let mut r = Record::new(RecordKind::Request, NAMES[(i % 4) as usize]);
    r.ts = 1_800_000_000_000_000_000 + i * 10_000;
    r.weight = 100;
    r.wall_ns = 50_000 + i % 1_000;
    r.cpu_ns = Some(40_000 + i % 777);
    r.method = Some("GET".into());
    r.status = Some(200);
    r.labels.insert("host", "web-0");
    r.labels.insert("build", "v1");
    r
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or(
        "usage: clickhouse_sink URL [RECORDS] [CHUNK] | URL --paced RATE [SECONDS] [ROUNDS]",
    )?;
    let first = args.next();
    if first.as_deref() == Some("--paced") {
        let mut number = |what: &str, default: u64| -> Result<u64, String> {
            args.next()
                .map(|s| s.parse().map_err(|e| format!("{what} {s:?}: {e}")))
                .transpose()
                .map(|v| v.unwrap_or(default))
        };
        let rate = number("RATE", 20_000)?;
        let seconds = number("SECONDS", 5)?;
        let rounds = number("ROUNDS", 7)?;
        if rate == 0 || seconds == 0 || rounds == 0 {
            return Err("RATE, SECONDS and ROUNDS must be at least 1".into());
        }
        return paced(&url, rate, seconds, rounds);
    }
    let mut args = first.into_iter().chain(args);
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
    let started = Instant::now();
    let mut refused = 0u64;
    for i in 0..n {
        let r = record(i);
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

/// The baseline of the paced mode: a sink that takes every batch and
/// keeps nothing.
struct Discard;

impl Sink for Discard {
    fn name(&self) -> String {
        "discard".into()
    }

    fn write_batch(&mut self, _: &Batch) -> std::io::Result<()> {
        Ok(())
    }
}

/// CPU time of `clock` (`CLOCK_THREAD_CPUTIME_ID` or
/// `CLOCK_PROCESS_CPUTIME_ID`), nanoseconds.
fn cpu_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the
    // call, and both clocks exist on every Linux this example runs on.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime: {}", std::io::Error::last_os_error());
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// One paced round: `rate` records/s for `seconds` through a pipeline
/// with `sink`, in bursts of one millisecond's worth. Returns the
/// producing thread's and the process's CPU nanoseconds per record, the
/// latter from the first emit to the end of the shutdown (so the sink's
/// last delivery is counted).
fn round(sink: impl Sink, rate: u64, seconds: u64) -> Result<(f64, f64), String> {
    let pipeline = Pipeline::builder()
        .sink(sink)
        .status_interval(None)
        .build()
        .map_err(|e| e.to_string())?;
    let per_ms = rate.div_ceil(1000);
    let n = rate * seconds;
    let started = Instant::now();
    let (thread0, process0) = (
        cpu_ns(libc::CLOCK_THREAD_CPUTIME_ID),
        cpu_ns(libc::CLOCK_PROCESS_CPUTIME_ID),
    );
    let mut i = 0;
    let mut tick = 0u64;
    while i < n {
        for _ in 0..per_ms.min(n - i) {
            // A full queue is the pipeline's counted drop, as in a service.
            pipeline.emit(record(i));
            i += 1;
        }
        tick += 1;
        let next = started + Duration::from_millis(tick);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let thread = cpu_ns(libc::CLOCK_THREAD_CPUTIME_ID) - thread0;
    pipeline.flush().map_err(|e| e.to_string())?;
    let stats = pipeline.shutdown().map_err(|e| e.to_string())?;
    let process = cpu_ns(libc::CLOCK_PROCESS_CPUTIME_ID) - process0;
    let sink = &stats.sinks[0];
    if stats.dropped_queue_full > 0 || sink.delivered < n {
        return Err(format!(
            "not every record arrived through {}: {n} emitted, {} delivered, {} queue full, \
             {} dropped by the sink",
            sink.name, sink.delivered, stats.dropped_queue_full, sink.dropped_by_sink
        ));
    }
    Ok((thread as f64 / n as f64, process as f64 / n as f64))
}

/// The median of `values` (sorted in place).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// The paced mode: rounds alternating `ClickHouseSink` and [`Discard`],
/// each setup's medians and the median of the paired differences.
fn paced(
    url: &str,
    rate: u64,
    seconds: u64,
    rounds: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "paced: {rate} records/s for {seconds} s a round, {rounds} rounds a setup, alternating"
    );
    let (mut ch, mut discard, mut added) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..rounds {
        // The first setup of a pair alternates too, so neither always
        // runs on a machine the other just warmed.
        let mut pair = [None, None];
        for k in 0..2 {
            let clickhouse = (k + r) % 2 == 0;
            let (thread, process) = if clickhouse {
                round(ClickHouseSink::builder(url).build()?, rate, seconds)?
            } else {
                round(Discard, rate, seconds)?
            };
            println!(
                "round {r} {:<10} producer {thread:7.0} ns/record, process {process:7.0} ns/record",
                if clickhouse { "clickhouse" } else { "discard" }
            );
            pair[usize::from(!clickhouse)] = Some((thread, process));
        }
        let (c, d) = (pair[0].unwrap(), pair[1].unwrap());
        ch.push(c);
        discard.push(d);
        added.push((c.0 - d.0, c.1 - d.1));
    }
    let med = |v: &[(f64, f64)], which: fn(&(f64, f64)) -> f64| {
        median(&mut v.iter().map(which).collect::<Vec<_>>())
    };
    println!("median ns/record      producer   process");
    for (name, v) in [
        ("clickhouse", &ch),
        ("discard", &discard),
        ("added", &added),
    ] {
        println!("{name:<20} {:9.0} {:9.0}", med(v, |x| x.0), med(v, |x| x.1));
    }
    Ok(())
}
