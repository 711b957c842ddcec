//! The emit-and-write workload shared by `benches/pipeline.rs` (the
//! system allocator) and `benches/emit_mimalloc.rs` (mimalloc, for the
//! comparison only: the library never chooses the allocator).

use std::time::{Duration, Instant};

use dynostats::sink::{Batch, FileSink, Sink};
use dynostats::{Pipeline, Record, RecordKind};

/// A request record as the layer makes it: a route template, a static
/// method, the counters. The host label is the pipeline's (added by the
/// writer, the documented way), not the record's.
pub fn request_record() -> Record {
    let mut r = Record::new(RecordKind::Request, "/users/{id}");
    r.method = Some("GET".into());
    r.status = Some(200);
    r.weight = 1000;
    r.wall_ns = 1_234_567;
    r.cpu_ns = Some(987_654);
    r.instructions = Some(4_567_890);
    r.cycles = Some(3_456_789);
    r.rss_start = Some(40 << 20);
    r.rss_end = Some(41 << 20);
    r.polls = Some(3);
    r
}

/// Makes and emits `n` records from each of `producers` threads (each
/// record made anew, as a measured thread would; waiting for room rather
/// than dropping, so every record is written), and waits until the file
/// holds them all. Panics if a record was lost.
pub fn emit_and_write_n(n: u64, producers: u64) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::builder()
        .sink(FileSink::create(dir.path().join("bench.msgpack")).unwrap())
        .queue_capacity(64 * 1024)
        .batch_size(1024)
        // Room for every record at the file sink: the producers wait for
        // room in the queue, and the sink's own backlog must not drop what
        // the queue let through (it would, counted, when the file falls
        // behind a burst: a sink's backlog isolates it from other sinks).
        .sink_backlog(n * producers)
        .status_interval(None)
        .label("host", "web-1")
        .build()
        .unwrap();
    let start = Instant::now();
    produce(&pipeline, n, producers, None);
    pipeline.flush().unwrap();
    let elapsed = start.elapsed();
    let stats = pipeline.shutdown().unwrap();
    assert_eq!(stats.sinks[0].written, n * producers);
    elapsed
}

/// Emits `n` records from each of `producers` threads, each record made
/// anew as a measured thread would; an emit that finds the queue full
/// yields and tries again, so every record is accepted. With `burst`, a
/// thread sleeps 50 µs after each `burst` records (other work between
/// bursts). Returns how many emits found the queue full.
fn produce(pipeline: &Pipeline, n: u64, producers: u64, burst: Option<u64>) -> u64 {
    let full = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..producers {
            s.spawn(|| {
                let mut sent = 0;
                while sent < n {
                    let mut r = request_record();
                    r.instructions = Some(sent);
                    if pipeline.emit(r) {
                        sent += 1;
                        if burst.is_some_and(|b| sent % b == 0) {
                            std::thread::sleep(Duration::from_micros(50));
                        }
                    } else {
                        full.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        std::thread::yield_now();
                    }
                }
            });
        }
    });
    full.into_inner()
}

/// Discards what it is given: the writer's cost without I/O.
pub struct CountingSink;

impl Sink for CountingSink {
    fn name(&self) -> String {
        "counting".to_string()
    }
    fn write_batch(&mut self, batch: &Batch) -> std::io::Result<()> {
        std::hint::black_box(batch.len());
        Ok(())
    }
}

/// The writer's capacity: `producers` threads emit `n` records each in
/// bursts of `burst` (waiting for room rather than dropping, so the time
/// is what the writer needs for all of them) into a pipeline of `sinks`
/// discarding sinks at `batch_size` records per batch. Returns the time
/// from the first emit until every sink wrote every record, and the
/// number of times an emit found the queue full.
pub fn writer_capacity(
    n: u64,
    producers: u64,
    burst: u64,
    sinks: usize,
    batch_size: usize,
) -> (Duration, u64) {
    let mut builder = Pipeline::builder()
        .batch_size(batch_size)
        .sink_backlog(n * producers)
        .status_interval(None)
        .label("host", "web-1");
    for _ in 0..sinks {
        builder = builder.sink(CountingSink);
    }
    let pipeline = builder.build().unwrap();
    let start = Instant::now();
    let full = produce(&pipeline, n, producers, Some(burst));
    pipeline.flush().unwrap();
    let elapsed = start.elapsed();
    let stats = pipeline.shutdown().unwrap();
    for sink in &stats.sinks {
        assert_eq!(sink.written, n * producers, "{sink:?}");
    }
    (elapsed, full)
}
