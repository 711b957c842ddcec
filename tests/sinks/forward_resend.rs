//! After a frozen collector, a Forward chunk is resent with the same chunk
//! id (so a collector can drop repeats), every resend is counted, and the
//! sends of one chunk are bounded: beyond `max_sends` its records are a
//! counted drop with a reason. The collector here keeps every copy, as
//! Fluent Bit does.

use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::forward_collector::{Collector, CollectorConfig, Log, WAIT, wait_until};
use dynostats::sink::{Batch, ForwardSink, Sink};
use dynostats::{Pipeline, Record, RecordKind};

const RECORDS: u64 = 10;

fn batch() -> Batch {
    let mut batch = Batch::new();
    for i in 0..RECORDS {
        batch.push(&Record::new(RecordKind::Region, &format!("r{i}")));
    }
    batch
}

fn frozen_collector() -> (Collector, Arc<AtomicBool>, Arc<Mutex<Log>>) {
    let frozen = Arc::new(AtomicBool::new(true));
    let log = Arc::new(Mutex::new(Log::default()));
    let collector = Collector::start(
        CollectorConfig {
            ack: true,
            frozen: Some(frozen.clone()),
            ..Default::default()
        },
        log.clone(),
    );
    (collector, frozen, log)
}

fn sink(collector: &Collector, max_sends: u32) -> ForwardSink {
    ForwardSink::builder(&collector.addr.to_string())
        .ack_timeout(Duration::from_millis(50))
        .backoff(Duration::from_millis(5), Duration::from_millis(20))
        .flush_timeout(WAIT)
        .max_sends(max_sends)
        .build()
        .unwrap()
}

#[test]
fn a_chunk_resent_after_a_freeze_keeps_its_id_and_is_counted() {
    let (collector, frozen, log) = frozen_collector();
    let mut sink = sink(&collector, 100);
    sink.write_batch(&batch()).unwrap();
    // Sent, not acked: flushing retries; let it send three times.
    let flusher = std::thread::spawn(move || {
        let result = sink.flush();
        (sink, result)
    });
    wait_until("three unacked copies", || {
        log.lock().unwrap().unacked.len() >= 3
    });
    frozen.store(false, Ordering::SeqCst);
    let (sink, result) = flusher.join().unwrap();
    result.unwrap();

    // Every send reaches the collector (copies on closed connections are
    // read by their own handler threads, perhaps a moment later).
    let stats = sink.stats();
    wait_until("every copy read by the collector", || {
        let log = log.lock().unwrap();
        (log.unacked.len() + log.messages.len()) as u64 > stats.chunks_resent
    });
    let log = log.lock().unwrap();
    assert_eq!(log.messages.len(), 1, "acked once");
    let copies = (log.unacked.len() + log.messages.len()) as u64;
    assert!(copies >= 4, "three unacked copies and the acked one");
    let id = log.messages[0].chunk.clone().unwrap();
    assert!(
        log.unacked.iter().all(|m| m.chunk.as_deref() == Some(&id)),
        "every copy carries the same chunk id"
    );
    assert_eq!(stats.records_delivered, RECORDS);
    assert_eq!(stats.chunks_resent, copies - 1);
    assert_eq!(stats.records_resent, (copies - 1) * RECORDS);
    assert_eq!(Sink::resent(&sink), stats.records_resent);
    assert_eq!(stats.dropped, 0);
    drop(log);
    collector.stop();
}

#[test]
fn a_chunk_never_acked_is_dropped_after_max_sends_and_counted_in_the_pipeline() {
    let (collector, _frozen, log) = frozen_collector();
    let sink = sink(&collector, 3);
    let pipeline = Pipeline::builder()
        .sink(sink)
        .status_interval(None)
        .build()
        .unwrap();
    for i in 0..RECORDS {
        pipeline.emit(Record::new(RecordKind::Region, &format!("r{i}")));
    }
    // The flush fails (nothing delivered) or succeeds once the chunk is
    // given up; either way the sink's counts must add up.
    let _ = pipeline.flush();
    wait_until("the chunk given up", || {
        pipeline.stats().sinks[0].dropped_by_sink == RECORDS
    });
    let stats = pipeline.shutdown().unwrap_or_else(|e| panic!("{e}"));
    let sink = &stats.sinks[0];
    assert_eq!(sink.written, RECORDS);
    assert_eq!(sink.dropped_by_sink, RECORDS, "{sink:?}");
    assert_eq!(
        sink.delivered + sink.dropped_by_sink + sink.lost_at_shutdown,
        sink.written
    );
    assert_eq!(sink.resent, 2 * RECORDS, "three sends: two resends");
    assert!(
        sink.last_error
            .as_deref()
            .is_some_and(|e| e.contains("max_sends")),
        "{sink:?}"
    );
    // The writer may have made one chunk or several of the ten records:
    // each chunk id is on the wire exactly max_sends times.
    let entries = |log: &Log| log.unacked.iter().map(|m| m.entries.len()).sum::<usize>();
    wait_until("every copy read by the collector", || {
        entries(&log.lock().unwrap()) as u64 >= 3 * RECORDS
    });
    let log = log.lock().unwrap();
    let mut sends = std::collections::BTreeMap::new();
    for m in &log.unacked {
        let id = m.chunk.clone().expect("a chunk id");
        *sends.entry(id).or_insert(0) += 1;
    }
    assert!(sends.values().all(|&n| n == 3), "{sends:?}");
    assert_eq!(entries(&log) as u64, 3 * RECORDS);
    drop(log);
    collector.stop();
}
