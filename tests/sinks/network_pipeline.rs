//! Records emitted through a `Pipeline` reach a Forward collector and a UDP
//! agent; what the Forward sink drops while its collector is down shows in
//! the pipeline's stats and in the status record the collector receives.

use crate::common;

use std::net::{TcpListener, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::forward_collector::{Collector, CollectorConfig, Log, WAIT, get};
use dynostats::{Pipeline, Record, RecordKind, sink::ForwardSink, sink::UdpSink};
use rmpv::Value;

fn region(i: u64) -> Record {
    let mut r = Record::new(RecordKind::Region, &format!("r{i}"));
    r.weight = i;
    r
}

fn acking() -> CollectorConfig {
    CollectorConfig {
        ack: true,
        ..Default::default()
    }
}

fn str_field<'a>(record: &'a Value, key: &str) -> &'a str {
    get(record, key).and_then(Value::as_str).unwrap_or("")
}

#[test]
fn emitted_records_reach_the_forward_collector_and_the_udp_agent() {
    let log = Arc::new(Mutex::new(Log::default()));
    let collector = Collector::start(acking(), log.clone());
    let agent = UdpSocket::bind("127.0.0.1:0").unwrap();
    agent.set_read_timeout(Some(WAIT)).unwrap();

    let forward = ForwardSink::builder(&collector.addr.to_string())
        .tag("svc.dynostats")
        .build()
        .unwrap();
    let udp = UdpSink::builder(&agent.local_addr().unwrap().to_string())
        .build()
        .unwrap();
    let pipeline = Pipeline::builder()
        .sink(forward)
        .sink(udp)
        .status_interval(None)
        .build()
        .unwrap();
    for i in 0..100 {
        assert!(pipeline.emit(region(i)));
    }
    pipeline.flush().unwrap();

    let names: Vec<String> = log
        .lock()
        .unwrap()
        .records()
        .iter()
        .map(|(_, r)| str_field(r, "name").to_string())
        .collect();
    let want: Vec<String> = (0..100).map(|i| format!("r{i}")).collect();
    assert_eq!(names, want);
    assert!(
        log.lock()
            .unwrap()
            .messages
            .iter()
            .all(|m| m.tag == "svc.dynostats")
    );

    let mut weights = Vec::new();
    let mut buf = vec![0u8; 70_000];
    while weights.len() < 100 {
        let n = agent.recv(&mut buf).expect("datagrams within the timeout");
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let v = rmpv::decode::read_value(&mut rest).unwrap();
            weights.push(get(&v, "weight").and_then(Value::as_u64).unwrap());
        }
    }
    assert_eq!(weights, (0..100).collect::<Vec<_>>());

    let stats = pipeline.shutdown().unwrap();
    assert_eq!(stats.sinks.len(), 2);
    for sink in &stats.sinks {
        assert_eq!(sink.written, 100, "{sink:?}");
        assert_eq!(sink.dropped_by_sink, 0, "{sink:?}");
        assert_eq!(sink.errors, 0, "{sink:?}");
    }
    collector.stop();
}

#[test]
fn forward_drops_while_the_collector_is_down_reach_the_status_record() {
    // A port with no collector yet.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let forward = ForwardSink::builder(&addr.to_string())
        .buffer_records(10)
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
        .flush_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let pipeline = Pipeline::builder()
        .sink(forward)
        .status_interval(Some(Duration::from_secs(3600)))
        .build()
        .unwrap();
    // The writer's first status record takes one buffer slot, so 9 of
    // these 30 are kept and 21 dropped.
    for i in 0..30 {
        assert!(pipeline.emit(region(i)));
    }
    let err = pipeline.flush().unwrap_err();
    assert!(
        err.to_string().contains("10 records not delivered"),
        "{err}"
    );
    let sink = &pipeline.stats().sinks[0];
    assert_eq!(sink.dropped_by_sink, 21, "{sink:?}");
    assert!(sink.errors >= 1);

    // The collector comes up: the buffer drains, then the final status
    // record carries the count.
    let log = Arc::new(Mutex::new(Log::default()));
    let collector = Collector::start_at(addr, acking(), log.clone());
    pipeline.flush().unwrap();
    let stats = pipeline.shutdown().unwrap();
    assert_eq!(stats.sinks[0].dropped_by_sink, 21);

    let log = log.lock().unwrap();
    assert!(log.errors.is_empty(), "{:?}", log.errors);
    let records = log.records();
    let regions: Vec<&str> = records
        .iter()
        .filter(|(_, r)| str_field(r, "kind") == "region")
        .map(|(_, r)| str_field(r, "name"))
        .collect();
    assert_eq!(
        regions,
        ["r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8"]
    );
    let statuses: Vec<&Value> = records
        .iter()
        .filter(|(_, r)| str_field(r, "kind") == "status")
        .map(|(_, r)| r)
        .collect();
    assert_eq!(statuses.len(), 2, "the first and the final status record");
    let last = statuses[1];
    let sinks = get(get(last, "detail").unwrap(), "sinks").unwrap();
    let (name, counts) = &sinks.as_map().unwrap()[0];
    assert!(name.as_str().unwrap().starts_with("forward:"), "{name}");
    assert_eq!(
        get(counts, "records_dropped_by_sink").and_then(Value::as_u64),
        Some(21)
    );
    drop(log);
    collector.stop();
}
