//! `ForwardSink` against the test collector (`forward_collector`), which
//! decodes with `rmpv`, checks the framing, acks, runs the shared-key
//! handshake, and is stopped and restarted mid-stream.

use crate::common;

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::forward_collector::{Collector, CollectorConfig, Log, WAIT, get, wait_until};
use dynostats::{
    Record, RecordKind, sink::Batch, sink::ForwardSink, sink::Sink, sink::TimeEncoding,
};
use rmpv::Value;

const BASE_TS: u64 = 1_700_000_000_000_000_000;

/// Record `i`: named `r{i}`, weight i + 1, instructions on even `i` only.
fn record(i: u64) -> Record {
    let mut r = Record::new(RecordKind::Region, &format!("r{i}"));
    r.ts = BASE_TS + i * 1_000_000_007;
    r.weight = i + 1;
    r.wall_ns = 1000 + i;
    if i % 2 == 0 {
        r.instructions = Some(i * 10);
    }
    r
}

fn write(sink: &mut ForwardSink, range: std::ops::Range<u64>, per_batch: u64) {
    let mut i = range.start;
    while i < range.end {
        let mut batch = Batch::new();
        for j in i..(i + per_batch).min(range.end) {
            batch.push(&record(j));
        }
        i += per_batch;
        sink.write_batch(&batch).unwrap();
    }
}

fn names(records: &[(Value, Value)]) -> Vec<String> {
    records
        .iter()
        .map(|(_, r)| get(r, "name").and_then(Value::as_str).unwrap().to_string())
        .collect()
}

fn expected_names(range: std::ops::Range<u64>) -> Vec<String> {
    range.map(|i| format!("r{i}")).collect()
}

fn fast_sink(addr: SocketAddr) -> dynostats::sink::ForwardSinkBuilder {
    ForwardSink::builder(&addr.to_string())
        .backoff(Duration::from_millis(10), Duration::from_millis(100))
        .flush_timeout(WAIT)
}

#[test]
fn records_arrive_framed_with_event_time_and_acks() {
    let log = Arc::new(Mutex::new(Log::default()));
    let collector = Collector::start(
        CollectorConfig {
            ack: true,
            ..Default::default()
        },
        log.clone(),
    );
    let mut sink = fast_sink(collector.addr)
        .tag("dynostats.test")
        .chunk_records(4)
        .build()
        .unwrap();
    write(&mut sink, 0..11, 5);
    sink.flush().unwrap();

    let stats = sink.stats();
    assert_eq!(stats.records_delivered, 11);
    assert_eq!(stats.buffered_records, 0);
    assert_eq!(sink.dropped(), 0);

    let log = log.lock().unwrap();
    assert!(log.errors.is_empty(), "{:?}", log.errors);
    // Batches of 5, 5, 1 in chunks of at most 4.
    let sizes: Vec<usize> = log.messages.iter().map(|m| m.entries.len()).collect();
    assert_eq!(sizes.iter().sum::<usize>(), 11);
    assert!(sizes.iter().all(|&n| (1..=4).contains(&n)), "{sizes:?}");
    assert!(log.messages.iter().all(|m| m.tag == "dynostats.test"));
    let mut ids: Vec<&String> = log
        .messages
        .iter()
        .map(|m| m.chunk.as_ref().unwrap())
        .collect();
    assert!(ids.iter().all(|id| id.len() == 24), "{ids:?}");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), log.messages.len(), "chunk ids must be unique");

    let records = log.records();
    assert_eq!(names(&records), expected_names(0..11));
    for (i, (time, rec)) in records.iter().enumerate() {
        let i = i as u64;
        let ts = BASE_TS + i * 1_000_000_007;
        let (ty, data) = time.as_ext().expect("time is an ext value");
        assert_eq!(ty, 0, "EventTime is ext type 0");
        assert_eq!(data.len(), 8);
        let secs = u32::from_be_bytes(data[..4].try_into().unwrap());
        let nanos = u32::from_be_bytes(data[4..].try_into().unwrap());
        assert_eq!(u64::from(secs), ts / 1_000_000_000);
        assert_eq!(u64::from(nanos), ts % 1_000_000_000);
        assert_eq!(get(rec, "v").and_then(Value::as_u64), Some(1));
        assert_eq!(get(rec, "kind").and_then(Value::as_str), Some("region"));
        assert_eq!(get(rec, "ts").and_then(Value::as_u64), Some(ts));
        assert_eq!(get(rec, "weight").and_then(Value::as_u64), Some(i + 1));
        assert_eq!(get(rec, "wall_ns").and_then(Value::as_u64), Some(1000 + i));
        let instructions = get(rec, "instructions").and_then(Value::as_u64);
        assert_eq!(instructions, (i % 2 == 0).then_some(i * 10), "record {i}");
        assert!(get(rec, "cycles").is_none(), "absent counters are absent");
    }
    drop(log);
    collector.stop();
}

#[test]
fn integer_seconds_without_acks() {
    let log = Arc::new(Mutex::new(Log::default()));
    let collector = Collector::start(CollectorConfig::default(), log.clone());
    let mut sink = fast_sink(collector.addr)
        .require_ack(false)
        .time_encoding(TimeEncoding::IntegerSeconds)
        .build()
        .unwrap();
    write(&mut sink, 0..6, 6);
    sink.flush().unwrap();
    assert_eq!(sink.stats().records_delivered, 6);
    wait_until("6 records at the collector", || {
        log.lock().unwrap().records().len() == 6
    });
    let log = log.lock().unwrap();
    assert!(log.errors.is_empty(), "{:?}", log.errors);
    assert!(log.messages.iter().all(|m| m.chunk.is_none()));
    assert!(log.messages.iter().all(|m| m.tag == "dynostats"));
    for (i, (time, _)) in log.records().iter().enumerate() {
        let ts = BASE_TS + i as u64 * 1_000_000_007;
        assert_eq!(time.as_u64(), Some(ts / 1_000_000_000));
    }
    drop(log);
    collector.stop();
}

#[test]
fn collector_restart_loses_no_buffered_record_and_counts_overflow_exactly() {
    let log = Arc::new(Mutex::new(Log::default()));
    let config = CollectorConfig {
        ack: true,
        ..Default::default()
    };
    let collector = Collector::start(config.clone(), log.clone());
    let addr = collector.addr;
    let mut sink = fast_sink(addr)
        .buffer_records(50)
        .chunk_records(10)
        .build()
        .unwrap();

    write(&mut sink, 0..30, 7);
    sink.flush().unwrap();
    assert_eq!(log.lock().unwrap().records().len(), 30);

    // The collector goes away in the middle of the stream.
    collector.stop();
    write(&mut sink, 30..110, 8);
    let stats = sink.stats();
    assert_eq!(stats.records_delivered, 30);
    assert_eq!(stats.buffered_records, 50);
    assert_eq!(sink.dropped(), 30, "80 records offered, 50 buffered");
    assert!(sink.last_error().is_some());

    // It comes back on the same port: the buffer drains to it.
    let collector = Collector::start_at(addr, config, log.clone());
    sink.flush().unwrap();
    let stats = sink.stats();
    assert_eq!(stats.records_delivered, 80);
    assert_eq!(stats.buffered_records, 0);
    assert_eq!(sink.dropped(), 30);
    assert!(stats.connects >= 2, "{stats:?}");

    let log_now = log.lock().unwrap();
    assert!(log_now.errors.is_empty(), "{:?}", log_now.errors);
    // The oldest are kept: r30..r79 arrive, r80..r109 were dropped.
    let mut want = expected_names(0..30);
    want.extend(expected_names(30..80));
    assert_eq!(names(&log_now.records()), want);
    drop(log_now);
    collector.stop();
}

#[test]
fn a_batch_larger_than_the_buffer_is_delivered_when_the_collector_keeps_up() {
    let log = Arc::new(Mutex::new(Log::default()));
    let collector = Collector::start(
        CollectorConfig {
            ack: true,
            ..Default::default()
        },
        log.clone(),
    );
    let mut sink = fast_sink(collector.addr)
        .buffer_records(10)
        .chunk_records(5)
        .build()
        .unwrap();
    write(&mut sink, 0..25, 25);
    sink.flush().unwrap();
    assert_eq!(sink.dropped(), 0);
    assert_eq!(sink.stats().records_delivered, 25);
    assert_eq!(names(&log.lock().unwrap().records()), expected_names(0..25));
    collector.stop();
}

#[test]
fn without_acks_a_closed_connection_is_noticed_before_writing() {
    let log = Arc::new(Mutex::new(Log::default()));
    let collector = Collector::start(CollectorConfig::default(), log.clone());
    let addr = collector.addr;
    let mut sink = fast_sink(addr).require_ack(false).build().unwrap();
    write(&mut sink, 0..5, 5);
    wait_until("5 records at the collector", || {
        log.lock().unwrap().records().len() == 5
    });
    // The collector restarts; the sink still holds the old connection,
    // which the collector closed.
    collector.stop();
    let collector = Collector::start_at(addr, CollectorConfig::default(), log.clone());
    assert!(sink.is_connected());
    write(&mut sink, 5..10, 5);
    sink.flush().unwrap();
    wait_until("10 records at the collector", || {
        log.lock().unwrap().records().len() == 10
    });
    assert_eq!(names(&log.lock().unwrap().records()), expected_names(0..10));
    assert_eq!(sink.stats().connects, 2);
    collector.stop();
}

#[test]
fn unacked_chunk_is_sent_again_after_reconnect() {
    let log = Arc::new(Mutex::new(Log::default()));
    let collector = Collector::start(
        CollectorConfig {
            ack: true,
            drop_unacked: 1,
            ..Default::default()
        },
        log.clone(),
    );
    let mut sink = fast_sink(collector.addr).chunk_records(5).build().unwrap();
    write(&mut sink, 0..12, 12);
    sink.flush().unwrap();

    let stats = sink.stats();
    assert_eq!(stats.records_delivered, 12);
    assert_eq!(stats.chunks_resent, 1);
    assert_eq!(stats.send_failures, 1);
    let log_now = log.lock().unwrap();
    assert_eq!(log_now.unacked.len(), 1);
    let lost = &log_now.unacked[0];
    assert_eq!(names(&lost.entries), expected_names(0..5));
    // The same chunk, same id, is what the new connection got first.
    assert_eq!(log_now.messages[0].chunk, lost.chunk);
    assert_eq!(names(&log_now.records()), expected_names(0..12));
    drop(log_now);
    collector.stop();
}

#[test]
fn shared_key_handshake_is_accepted() {
    let log = Arc::new(Mutex::new(Log::default()));
    let collector = Collector::start(
        CollectorConfig {
            ack: true,
            shared_key: Some("s3cret".into()),
            ..Default::default()
        },
        log.clone(),
    );
    let mut sink = fast_sink(collector.addr)
        .shared_key("s3cret")
        .hostname("client-a")
        .build()
        .unwrap();
    write(&mut sink, 0..5, 5);
    sink.flush().unwrap();
    assert_eq!(sink.stats().records_delivered, 5);
    assert_eq!(sink.stats().handshake_failures, 0);
    let log_now = log.lock().unwrap();
    assert!(log_now.errors.is_empty(), "{:?}", log_now.errors);
    assert_eq!(log_now.handshakes_ok, 1);
    assert_eq!(names(&log_now.records()), expected_names(0..5));
    drop(log_now);
    collector.stop();
}

#[test]
fn wrong_shared_key_is_a_counted_failure_with_a_clear_error() {
    let log = Arc::new(Mutex::new(Log::default()));
    let collector = Collector::start(
        CollectorConfig {
            ack: true,
            shared_key: Some("s3cret".into()),
            ..Default::default()
        },
        log.clone(),
    );
    let mut sink = fast_sink(collector.addr)
        .shared_key("wrong")
        .flush_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    write(&mut sink, 0..3, 3);
    let err = sink.flush().unwrap_err();
    let text = err.to_string();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{text}");
    assert!(text.contains("3 records not delivered"), "{text}");
    assert!(text.contains("rejected the shared key"), "{text}");
    assert!(text.contains("shared_key mismatch"), "{text}");
    let stats = sink.stats();
    assert!(stats.handshake_failures >= 1, "{stats:?}");
    assert_eq!(stats.records_delivered, 0);
    assert_eq!(stats.buffered_records, 3);
    let log_now = log.lock().unwrap();
    assert!(log_now.handshakes_rejected >= 1);
    assert!(log_now.messages.is_empty());
    drop(log_now);
    collector.stop();
}

#[test]
fn collector_that_does_not_know_the_key_gets_no_record() {
    let log = Arc::new(Mutex::new(Log::default()));
    let collector = Collector::start(
        CollectorConfig {
            ack: true,
            shared_key: Some("s3cret".into()),
            impostor_key: Some("other".into()),
            ..Default::default()
        },
        log.clone(),
    );
    let mut sink = fast_sink(collector.addr)
        .shared_key("s3cret")
        .flush_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    write(&mut sink, 0..2, 2);
    let err = sink.flush().unwrap_err();
    assert!(err.to_string().contains("digest does not match"), "{err}");
    assert!(sink.stats().handshake_failures >= 1);
    assert!(log.lock().unwrap().messages.is_empty());
    collector.stop();
}

#[test]
fn collector_asking_for_a_handshake_names_the_missing_key() {
    let log = Arc::new(Mutex::new(Log::default()));
    let collector = Collector::start(
        CollectorConfig {
            ack: true,
            shared_key: Some("s3cret".into()),
            ..Default::default()
        },
        log.clone(),
    );
    let mut sink = fast_sink(collector.addr)
        .flush_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    write(&mut sink, 0..2, 2);
    let err = sink.flush().unwrap_err();
    assert!(
        err.to_string().contains("configure the sink's shared key"),
        "{err}"
    );
    assert_eq!(sink.stats().records_delivered, 0);
    collector.stop();
}

#[test]
fn dead_collector_keeps_records_and_flush_gives_up_at_its_timeout() {
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut sink = fast_sink(addr)
        .flush_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    write(&mut sink, 0..4, 4);
    let err = sink.flush().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    assert!(err.to_string().contains("4 records not delivered"), "{err}");
    assert!(err.to_string().contains("connecting to"), "{err}");
    let stats = sink.stats();
    assert!(stats.connect_failures >= 1);
    assert_eq!(stats.buffered_records, 4);
    assert_eq!(sink.dropped(), 0);
}

#[test]
#[ignore = "throughput measurement, run by hand: cargo test --release --test sinks -- --ignored --nocapture throughput_to_a_local_collector"]
fn throughput_to_a_local_collector() {
    let log = Arc::new(Mutex::new(Log::default()));
    let collector = Collector::start(
        CollectorConfig {
            ack: true,
            ..Default::default()
        },
        log.clone(),
    );
    let mut sink = fast_sink(collector.addr)
        .buffer_records(1 << 20)
        .build()
        .unwrap();
    let n = 200_000;
    let batches: Vec<Batch> = (0..n / 500)
        .map(|b| {
            let mut batch = Batch::new();
            for i in b * 500..(b + 1) * 500 {
                batch.push(&record(i));
            }
            batch
        })
        .collect();
    let started = Instant::now();
    for batch in &batches {
        sink.write_batch(batch).unwrap();
    }
    sink.flush().unwrap();
    let elapsed = started.elapsed();
    assert_eq!(sink.stats().records_delivered, n);
    assert_eq!(log.lock().unwrap().records().len() as u64, n);
    println!(
        "{n} records in {elapsed:?}: {:.0} records/s ({} chunks)",
        n as f64 / elapsed.as_secs_f64(),
        sink.stats().chunks_delivered
    );
    collector.stop();
}

#[test]
fn a_key_for_a_collector_without_one_gives_a_clear_error() {
    let log = Arc::new(Mutex::new(Log::default()));
    let collector = Collector::start(
        CollectorConfig {
            ack: true,
            ..Default::default()
        },
        log.clone(),
    );
    let mut sink = fast_sink(collector.addr)
        .shared_key("s3cret")
        .ack_timeout(Duration::from_millis(100))
        .flush_timeout(Duration::from_millis(400))
        .build()
        .unwrap();
    write(&mut sink, 0..2, 2);
    let err = sink.flush().unwrap_err();
    assert!(err.to_string().contains("no HELO"), "{err}");
    assert!(
        err.to_string()
            .contains("is the collector configured with a shared key?"),
        "{err}"
    );
    assert!(sink.stats().handshake_failures >= 1);
    assert!(log.lock().unwrap().messages.is_empty());
    collector.stop();
}

#[test]
fn a_collector_that_never_acks_bounds_the_flush_and_gets_the_chunk_again() {
    let log = Arc::new(Mutex::new(Log::default()));
    // Reads and keeps every message, acks none.
    let collector = Collector::start(CollectorConfig::default(), log.clone());
    let mut sink = fast_sink(collector.addr)
        .ack_timeout(Duration::from_millis(50))
        .flush_timeout(Duration::from_secs(2))
        // Unbounded for the flush's time: this test is about the flush's
        // own bound (forward_resend.rs checks the send limit).
        .max_sends(u32::MAX)
        .build()
        .unwrap();
    write(&mut sink, 0..3, 3);
    let err = sink.flush().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
    assert!(err.to_string().contains("3 records not delivered"), "{err}");
    assert!(err.to_string().contains("no ack"), "{err}");
    let stats = sink.stats();
    assert_eq!(stats.records_delivered, 0);
    assert!(stats.chunks_resent >= 1, "{stats:?}");
    // Every copy the collector got is the same chunk.
    wait_until("two copies at the collector", || {
        log.lock().unwrap().messages.len() >= 2
    });
    let log = log.lock().unwrap();
    assert!(
        log.messages
            .iter()
            .all(|m| m.chunk == log.messages[0].chunk)
    );
    assert!(log.messages.iter().all(|m| m.entries.len() == 3));
    drop(log);
    collector.stop();
}
