//! One stalled sink does not stall the others: each sink has its own
//! thread and backlog, and a sink that falls behind loses only its own
//! copies, counted as its own.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use dynostats::sink::{Batch, MemorySink, Sink};
use dynostats::{Pipeline, Record, RecordKind};

const RECORDS: u64 = 10_000;
const BACKLOG: u64 = 1500;
/// Records emitted at a time, then the healthy sink is let catch up: its
/// backlog never exceeds this, so it never drops.
const ROUND: u64 = 1000;

/// Blocks in `write_batch` until released, like a frozen collector.
struct Stalled(Arc<(Mutex<bool>, Condvar)>);

impl Sink for Stalled {
    fn name(&self) -> String {
        "stalled".to_string()
    }
    fn write_batch(&mut self, _: &Batch) -> std::io::Result<()> {
        let (released, wake) = &*self.0;
        let mut released = released.lock().unwrap();
        while !*released {
            released = wake.wait(released).unwrap();
        }
        Ok(())
    }
}

/// Releases the stalled sink, also when an assertion fails (otherwise
/// the pipeline's shutdown would wait for it for ever).
struct Release(Arc<(Mutex<bool>, Condvar)>);

impl Drop for Release {
    fn drop(&mut self) {
        let (released, wake) = &*self.0;
        *released.lock().unwrap_or_else(|p| p.into_inner()) = true;
        wake.notify_all();
    }
}

#[test]
fn a_stalled_sink_drops_only_its_own_copies() {
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let mem = MemorySink::new();
    let pipeline = Pipeline::builder()
        .sink(Stalled(Arc::clone(&gate)))
        .sink(mem.clone())
        .queue_capacity(RECORDS as usize)
        .batch_size(100)
        .sink_backlog(BACKLOG)
        .status_interval(None)
        .build()
        .unwrap();
    let release = Release(Arc::clone(&gate));
    // The healthy sink gets every record while the other is frozen (the
    // bound only keeps a broken build from hanging; it measures nothing).
    let started = Instant::now();
    for round in 0..RECORDS / ROUND {
        for i in 0..ROUND {
            let mut r = Record::new(RecordKind::Region, "r");
            r.wall_ns = round * ROUND + i;
            assert!(pipeline.emit(r));
        }
        while pipeline.stats().sinks[1].written < (round + 1) * ROUND
            && started.elapsed() < Duration::from_secs(60)
        {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    assert_eq!(
        pipeline.stats().sinks[1].written,
        RECORDS,
        "{:?}",
        pipeline.stats()
    );
    let stalled = pipeline.stats().sinks[0].clone();
    assert!(
        stalled.dropped_sink_full >= RECORDS - 2 * BACKLOG,
        "{stalled:?}"
    );

    drop(release);
    let stats = pipeline.shutdown().unwrap();
    assert_eq!(stats.dropped_queue_full, 0);
    let (stalled, healthy) = (&stats.sinks[0], &stats.sinks[1]);
    assert_eq!(healthy.received, RECORDS);
    assert_eq!(healthy.delivered, RECORDS);
    assert_eq!(healthy.lost(), 0);
    assert_eq!(stalled.received, RECORDS);
    assert_eq!(stalled.written + stalled.dropped_sink_full, RECORDS);
    assert_eq!(stalled.delivered, stalled.written);
    assert_eq!(stalled.lost(), stalled.dropped_sink_full);
    assert!(stalled.dropped_sink_full > 0);
    assert_eq!(stats.lost(), stalled.dropped_sink_full);
    assert_eq!(mem.records().len() as u64, RECORDS);
}
