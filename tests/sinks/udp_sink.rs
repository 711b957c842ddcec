//! `UdpSink` to a `UdpSocket` on 127.0.0.1; datagrams decoded with `rmpv`.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use dynostats::{Record, RecordKind, record::Detail, sink::Batch, sink::Sink, sink::UdpSink};
use rmpv::Value;

const WAIT: Duration = Duration::from_secs(20);

fn agent() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

fn sink_to(agent: &UdpSocket, limit: usize) -> UdpSink {
    UdpSink::builder(&agent.local_addr().unwrap().to_string())
        .datagram_limit(limit)
        .build()
        .unwrap()
}

/// One datagram, with the size of each MessagePack value in it.
fn recv(agent: &UdpSocket) -> (Vec<Value>, Vec<usize>, usize) {
    let mut buf = vec![0u8; 70_000];
    let n = agent.recv(&mut buf).expect("a datagram within the timeout");
    let mut rest = &buf[..n];
    let (mut values, mut sizes) = (Vec::new(), Vec::new());
    while !rest.is_empty() {
        let before = rest.len();
        values.push(rmpv::decode::read_value(&mut rest).expect("whole MessagePack values"));
        sizes.push(before - rest.len());
    }
    (values, sizes, n)
}

fn get<'a>(map: &'a Value, key: &str) -> Option<&'a Value> {
    map.as_map()?
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

fn keys(map: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = map
        .as_map()
        .unwrap()
        .iter()
        .map(|(k, _)| k.as_str().unwrap())
        .collect();
    k.sort();
    k
}

#[test]
fn a_record_arrives_field_by_field_with_absent_counters_absent() {
    let agent = agent();
    let mut sink = sink_to(&agent, UdpSink::DEFAULT_DATAGRAM_LIMIT);
    let mut r = Record::new(RecordKind::Request, "/users/{id}");
    r.ts = 1_700_000_000_123_456_789;
    r.method = Some("GET".into());
    r.status = Some(200);
    r.weight = 100;
    r.wall_ns = 12_345;
    r.cpu_ns = Some(6_789);
    r.instructions = Some(1_000_000);
    r.rss_end = Some(4096);
    r.polls = Some(3);
    r.set_label("host", "web-1");
    let mut batch = Batch::new();
    batch.push(&r);
    sink.write_batch(&batch).unwrap();

    let (values, _, _) = recv(&agent);
    assert_eq!(values.len(), 1);
    let m = &values[0];
    assert_eq!(
        keys(m),
        [
            "cpu_ns",
            "instructions",
            "kind",
            "labels",
            "method",
            "name",
            "pid",
            "polls",
            "rss_end",
            "source",
            "status",
            "ts",
            "v",
            "wall_ns",
            "weight"
        ],
        "absent counters (cycles, page_faults, rss_start ...) must be absent keys"
    );
    let u = |k: &str| get(m, k).and_then(Value::as_u64);
    let s = |k: &str| get(m, k).and_then(Value::as_str);
    assert_eq!(u("v"), Some(1));
    assert_eq!(s("kind"), Some("request"));
    assert_eq!(u("ts"), Some(1_700_000_000_123_456_789));
    assert_eq!(s("name"), Some("/users/{id}"));
    assert_eq!(s("method"), Some("GET"));
    assert_eq!(u("status"), Some(200));
    assert_eq!(u("weight"), Some(100));
    assert_eq!(u("wall_ns"), Some(12_345));
    assert_eq!(u("cpu_ns"), Some(6_789));
    assert_eq!(u("instructions"), Some(1_000_000));
    assert_eq!(u("rss_end"), Some(4096));
    assert_eq!(u("polls"), Some(3));
    assert_eq!(u("pid"), Some(u64::from(std::process::id())));
    assert_eq!(s("source"), Some("software"));
    let labels = get(m, "labels").unwrap();
    assert_eq!(get(labels, "host").and_then(Value::as_str), Some("web-1"));

    let stats = sink.stats();
    assert_eq!((stats.datagrams_sent, stats.records_sent), (1, 1));
    assert_eq!(sink.dropped(), 0);
}

#[test]
fn small_records_share_datagrams_under_the_limit() {
    let agent = agent();
    let limit = 600;
    let mut sink = sink_to(&agent, limit);
    let mut batch = Batch::new();
    for i in 0..40u64 {
        let mut r = Record::new(RecordKind::Region, &format!("region-{i}"));
        r.weight = i;
        batch.push(&r);
    }
    sink.write_batch(&batch).unwrap();
    let datagrams = sink.stats().datagrams_sent;
    assert!(datagrams > 1 && datagrams < 40, "{datagrams} datagrams");

    let mut weights = Vec::new();
    let mut previous: Option<usize> = None;
    for _ in 0..datagrams {
        let (values, sizes, len) = recv(&agent);
        assert!(
            len <= limit,
            "datagram of {len} bytes over the {limit} limit"
        );
        // Greedy packing: the first record here did not fit in the last one.
        if let Some(prev) = previous {
            assert!(
                prev + sizes[0] > limit,
                "{prev} + {} fits in {limit}",
                sizes[0]
            );
        }
        previous = Some(len);
        weights.extend(
            values
                .iter()
                .map(|v| get(v, "weight").unwrap().as_u64().unwrap()),
        );
    }
    assert_eq!(weights, (0..40).collect::<Vec<_>>());
    assert_eq!(sink.stats().records_sent, 40);
}

#[test]
fn one_record_per_datagram_when_packing_is_off() {
    let agent = agent();
    let mut sink = UdpSink::builder(&agent.local_addr().unwrap().to_string())
        .pack(false)
        .build()
        .unwrap();
    let mut batch = Batch::new();
    for i in 0..3 {
        batch.push(&Record::new(RecordKind::Region, &format!("r{i}")));
    }
    sink.write_batch(&batch).unwrap();
    for i in 0..3 {
        let (values, _, _) = recv(&agent);
        assert_eq!(values.len(), 1);
        assert_eq!(
            get(&values[0], "name").and_then(Value::as_str),
            Some(&*format!("r{i}"))
        );
    }
    assert_eq!(sink.stats().datagrams_sent, 3);
}

/// A status record of about `bytes` bytes (its `detail.errors` is large).
fn big_record(name: &str, bytes: usize) -> Record {
    let mut r = Record::new(RecordKind::Status, name);
    let mut detail = Detail::default();
    detail.errors.insert("sink".into(), "x".repeat(bytes));
    r.detail = Some(Box::new(detail));
    r
}

#[test]
fn oversize_records_go_alone_or_are_dropped_and_counted() {
    let agent = agent();
    let limit = 1000;
    let mut sink = sink_to(&agent, limit);
    let mut batch = Batch::new();
    batch.push(&Record::new(RecordKind::Region, "small-1"));
    batch.push(&big_record("over-limit", 5000));
    batch.push(&big_record("over-max", UdpSink::MAX_DATAGRAM + 1));
    batch.push(&Record::new(RecordKind::Region, "small-2"));
    sink.write_batch(&batch).unwrap();

    let mut seen = Vec::new();
    for _ in 0..3 {
        let (values, _, len) = recv(&agent);
        let names: Vec<&str> = values
            .iter()
            .map(|v| get(v, "name").and_then(Value::as_str).unwrap())
            .collect();
        seen.push((names.join(","), len));
    }
    assert_eq!(seen[0].0, "small-1");
    assert_eq!(seen[1].0, "over-limit");
    assert!(
        seen[1].1 > 5000 && seen[1].1 <= UdpSink::MAX_DATAGRAM,
        "{}",
        seen[1].1
    );
    assert_eq!(seen[2].0, "small-2");
    let stats = sink.stats();
    assert_eq!(stats.oversize_dropped, 1);
    assert_eq!(stats.records_sent, 3);
    assert_eq!(sink.dropped(), 1);
}

#[test]
fn refused_sends_are_counted_not_fatal() {
    // A port with nothing behind it: the kernel answers with ICMP
    // "port unreachable", reported as ECONNREFUSED on a later send.
    let port = {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    };
    let mut sink = UdpSink::builder(&port.to_string()).build().unwrap();
    let mut batch = Batch::new();
    batch.push(&Record::new(RecordKind::Region, "lost"));
    let started = Instant::now();
    let mut offered = 0u64;
    while sink.stats().send_errors == 0 {
        assert!(
            started.elapsed() < WAIT,
            "no send error reported: {:?}",
            sink.stats()
        );
        sink.write_batch(&batch).unwrap();
        offered += 1;
        std::thread::sleep(Duration::from_millis(1));
    }
    let stats = sink.stats();
    assert!(stats.send_errors >= 1);
    // Every record offered was either handed to the kernel or counted.
    assert_eq!(stats.records_sent + stats.send_error_dropped, offered);
    assert_eq!(sink.dropped(), stats.send_error_dropped);
}
