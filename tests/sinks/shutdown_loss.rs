//! Loss at shutdown is counted: records a sink still holds when the
//! pipeline shuts down (a Forward collector that is down, one that refuses
//! the sink's shared key, one that takes the chunks in and never acks
//! them) are lost with it, and `shutdown` says how many, per sink, instead
//! of calling them written or delivered.

use crate::common;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::forward_collector::{Collector, CollectorConfig, Log, get, wait_until};
use dynostats::sink::{ForwardSink, MemorySink};
use dynostats::{Pipeline, Record, RecordKind};

/// A Forward sink and a memory sink beside it, no status records (so each
/// sink gets exactly the records emitted).
fn pipeline(forward: ForwardSink) -> (Pipeline, MemorySink) {
    let mem = MemorySink::new();
    let pipeline = Pipeline::builder()
        .sink(forward)
        .sink(mem.clone())
        .status_interval(None)
        .build()
        .unwrap();
    (pipeline, mem)
}

fn emit(pipeline: &Pipeline, names: std::ops::Range<u64>) {
    for i in names {
        assert!(pipeline.emit(Record::new(RecordKind::Region, &format!("r{i}"))));
    }
}

#[test]
fn records_a_forward_sink_still_holds_at_shutdown_are_counted_lost() {
    // A port nothing listens on.
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let forward = ForwardSink::builder(&addr.to_string())
        .connect_timeout(Duration::from_millis(100))
        .flush_timeout(Duration::from_millis(300))
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
        .build()
        .unwrap();
    let (pipeline, mem) = pipeline(forward);
    emit(&pipeline, 0..100);
    let stats = pipeline.shutdown().unwrap();
    let (forward, memory) = (&stats.sinks[0], &stats.sinks[1]);
    assert_eq!(forward.written, 100);
    assert_eq!(forward.delivered, 0);
    assert_eq!(forward.lost_at_shutdown, 100);
    assert_eq!(forward.lost(), 100);
    assert_eq!(memory.delivered, 100);
    assert_eq!(stats.lost(), 100);
    assert_eq!(mem.records().len(), 100);
}

#[test]
fn records_held_behind_a_wrong_shared_key_are_counted_lost_at_shutdown() {
    let log = Arc::new(Mutex::new(Log::default()));
    let collector = Collector::start(
        CollectorConfig {
            ack: true,
            shared_key: Some("s3cret".into()),
            ..Default::default()
        },
        log.clone(),
    );
    let forward = ForwardSink::builder(&collector.addr.to_string())
        .shared_key("wrong")
        .connect_timeout(Duration::from_millis(200))
        .flush_timeout(Duration::from_millis(300))
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
        .build()
        .unwrap();
    let (pipeline, mem) = pipeline(forward);
    emit(&pipeline, 0..100);
    wait_until("a rejected handshake", || {
        log.lock().unwrap().handshakes_rejected >= 1
    });
    let stats = pipeline.shutdown().unwrap();
    collector.stop();
    let (forward, memory) = (&stats.sinks[0], &stats.sinks[1]);
    assert_eq!(forward.received, 100);
    assert_eq!(forward.written, 100);
    assert_eq!(forward.delivered, 0);
    assert_eq!(forward.dropped_by_sink, 0);
    assert_eq!(forward.lost_at_shutdown, 100);
    assert_eq!(forward.lost(), 100);
    let error = forward.last_error.as_deref().unwrap_or("");
    assert!(error.contains("shared_key mismatch"), "{forward:?}");
    assert_eq!((memory.delivered, memory.lost()), (100, 0));
    assert_eq!(mem.records().len(), 100);
    assert_eq!(stats.lost(), 100);
    // The collector got no record at all: the sink never passed the
    // handshake.
    let log = log.lock().unwrap();
    assert!(log.messages.is_empty() && log.unacked.is_empty());
    assert_eq!(log.handshakes_ok, 0);
}

#[test]
fn records_a_frozen_collector_took_in_but_never_acked_are_counted_lost_at_shutdown() {
    let frozen = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Log::default()));
    let collector = Collector::start(
        CollectorConfig {
            ack: true,
            frozen: Some(frozen.clone()),
            ..Default::default()
        },
        log.clone(),
    );
    let forward = ForwardSink::builder(&collector.addr.to_string())
        .connect_timeout(Duration::from_millis(200))
        .ack_timeout(Duration::from_millis(100))
        .flush_timeout(Duration::from_millis(400))
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
        // Resent until shutdown, never given up: what it holds then is
        // the loss at shutdown, not a drop by the sink.
        .max_sends(u32::MAX)
        .build()
        .unwrap();
    let (pipeline, mem) = pipeline(forward);
    // The first 50 are acknowledged ...
    emit(&pipeline, 0..50);
    pipeline.flush().unwrap();
    assert_eq!(pipeline.stats().sinks[0].delivered, 50);
    // ... then the collector freezes: it reads every chunk and answers
    // nothing.
    frozen.store(true, Ordering::SeqCst);
    emit(&pipeline, 50..100);
    let unacked_names = |log: &Log| -> BTreeSet<String> {
        log.unacked
            .iter()
            .flat_map(|m| m.entries.iter())
            .map(|(_, record)| get(record, "name").unwrap().as_str().unwrap().to_string())
            .collect()
    };
    wait_until("the frozen collector to take in the last 50", || {
        unacked_names(&log.lock().unwrap()).len() == 50
    });
    let stats = pipeline.shutdown().unwrap();
    collector.stop();
    let (forward, memory) = (&stats.sinks[0], &stats.sinks[1]);
    assert_eq!(forward.received, 100);
    assert_eq!(forward.written, 100);
    assert_eq!(forward.delivered, 50, "{forward:?}");
    assert_eq!(forward.dropped_by_sink, 0, "{forward:?}");
    assert_eq!(forward.lost_at_shutdown, 50, "{forward:?}");
    assert_eq!(forward.lost(), 50);
    assert_eq!((memory.delivered, memory.lost()), (100, 0));
    assert_eq!(mem.records().len(), 100);
    assert_eq!(stats.lost(), 50);
    // The collector holds the lost 50 (unacknowledged, so the sink cannot
    // know it kept them) and acknowledged exactly the first 50.
    let log = log.lock().unwrap();
    let expected: BTreeSet<String> = (50..100).map(|i| format!("r{i}")).collect();
    assert_eq!(unacked_names(&log), expected);
    let acked: BTreeSet<String> = log
        .records()
        .iter()
        .map(|(_, record)| get(record, "name").unwrap().as_str().unwrap().to_string())
        .collect();
    assert_eq!(acked, (0..50).map(|i| format!("r{i}")).collect());
}
