//! A sink's slow getter (`buffered()` here) delays only that sink: the
//! pipeline reads a sink's getters on the sink's own thread before it takes
//! the sink's stats lock, which the writer (handing over each batch) and
//! `Pipeline::stats()` take too. Before, the getters ran under that lock:
//! the writer waited for them, so every other sink did, and so did
//! `stats()`.
//!
//! Nothing here is timed: the getter blocks until the test releases it, so
//! on the old code `stats()` and the healthy sink wait for as long as the
//! test holds it, and the test fails at its bound (which only keeps a broken
//! build from hanging; it measures nothing).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use dynostats::sink::{Batch, MemorySink, Sink};
use dynostats::{Pipeline, Record, RecordKind};

/// Records emitted while the getter is held.
const RECORDS: u64 = 2_000;
/// How long the test waits for something that must happen at once; only a
/// broken build ever reaches it.
const BOUND: Duration = Duration::from_secs(60);

/// A sink whose first `buffered()` call blocks until the test releases it
/// (later calls return at once), saying when it is inside.
struct SlowGetter {
    held_once: AtomicBool,
    entered: Sender<()>,
    release: Receiver<()>,
}

impl Sink for SlowGetter {
    fn name(&self) -> String {
        "slow-getter".to_string()
    }
    fn write_batch(&mut self, _: &Batch) -> std::io::Result<()> {
        Ok(())
    }
    fn buffered(&self) -> u64 {
        if !self.held_once.swap(true, Ordering::SeqCst) {
            let _ = self.entered.send(());
            // Bounded so that a failed test still ends.
            let _ = self.release.recv_timeout(BOUND);
        }
        0
    }
}

/// Releases the getter when dropped, also when an assertion fails.
struct Release(Sender<()>);

impl Drop for Release {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

fn record(i: u64) -> Record {
    let mut r = Record::new(RecordKind::Region, "r");
    r.wall_ns = i;
    r
}

#[test]
fn a_slow_getter_stalls_neither_stats_nor_the_other_sinks() {
    let (entered_tx, entered) = channel();
    let (release_tx, release_rx) = channel();
    let mem = MemorySink::new();
    let pipeline = Pipeline::builder()
        .sink(SlowGetter {
            held_once: AtomicBool::new(false),
            entered: entered_tx,
            release: release_rx,
        })
        .sink(mem.clone())
        .queue_capacity(2 * RECORDS as usize)
        .batch_size(100)
        .sink_backlog(10 * RECORDS)
        .status_interval(None)
        .build()
        .unwrap();

    std::thread::scope(|scope| {
        // Dropped inside the scope, before it joins the `stats()` thread:
        // on the old code that thread waits for the getter.
        let release = Release(release_tx);
        // One batch: the slow sink's thread writes it, then calls its
        // getters and blocks in `buffered()`.
        assert!(pipeline.emit(record(0)));
        entered
            .recv_timeout(BOUND)
            .expect("the slow sink's buffered() was never called");

        // `stats()` returns while the getter is still held.
        let (done_tx, done) = channel();
        let pipeline = &pipeline;
        scope.spawn(move || {
            let _ = done_tx.send(pipeline.stats());
        });
        let stats = done
            .recv_timeout(BOUND)
            .expect("Pipeline::stats() waited for a sink's getter");
        assert_eq!(stats.sinks.len(), 2);

        // The healthy sink receives every record while the getter is held.
        for i in 1..=RECORDS {
            assert!(pipeline.emit(record(i)));
        }
        let started = Instant::now();
        while (mem.len() as u64) < RECORDS + 1 && started.elapsed() < BOUND {
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(
            mem.len() as u64,
            RECORDS + 1,
            "the healthy sink waited for the other sink's getter"
        );
        let healthy = pipeline.stats().sinks[1].clone();
        assert_eq!(healthy.written, RECORDS + 1, "{healthy:?}");
        assert_eq!(healthy.dropped_sink_full, 0, "{healthy:?}");
        drop(release);
    });

    let stats = pipeline.shutdown().unwrap();
    assert_eq!(stats.dropped_queue_full, 0, "{stats:?}");
    for sink in &stats.sinks {
        assert_eq!(sink.received, RECORDS + 1, "{sink:?}");
        assert_eq!(sink.delivered, RECORDS + 1, "{sink:?}");
        assert_eq!(sink.lost(), 0, "{sink:?}");
    }
    let mut seen: Vec<u64> = mem.records().iter().map(|r| r.wall_ns).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..=RECORDS).collect::<Vec<_>>());
}
