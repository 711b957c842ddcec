//! Status records: written at start and periodically, saying which counters
//! work (and why not), how they are read, and what happened to records.

use crate::common;

use common::memory_pipeline;

use std::time::Duration;

use dynostats::counters::{Counter, CounterSource};
use dynostats::{Pipeline, Record, RecordKind, sink::MemorySink};

#[test]
fn status_records_describe_counters_and_counts() {
    let mem = MemorySink::new();
    let pipeline = Pipeline::builder()
        .sink(mem.clone())
        .status_interval(Some(Duration::from_millis(5)))
        .batch_interval(Duration::from_millis(1))
        .queue_capacity(64)
        .build()
        .unwrap();
    for i in 0..3 {
        pipeline.emit(Record::new(RecordKind::Region, &format!("r{i}")));
    }
    // Wait for periodic status records (a liveness wait, not a timing
    // assertion: it only fails if none ever comes).
    let mut waited = 0;
    while mem.records_of(RecordKind::Status).len() < 3 {
        assert!(waited < 60_000, "no periodic status record");
        std::thread::sleep(Duration::from_millis(1));
        waited += 1;
    }
    let status = mem.records_of(RecordKind::Status);
    let first = &status[0];
    assert_eq!(first.name, "dynostats");
    assert_eq!(first.weight, 0);
    assert!(["rdpmc", "read", "software"].contains(&first.source.as_str()));
    let detail = first.detail.as_ref().unwrap();

    // Every counter of the thread set, "ok" or the reason it is not, and
    // where the available ones come from: what the probe says a thread gets
    // (the writer thread's counters, opened on the same kernel).
    let probe = dynostats::probe();
    let in_set: Vec<_> = probe.counters.iter().filter(|c| c.in_thread_set).collect();
    assert_eq!(detail.counters.len(), in_set.len());
    for c in in_set {
        let name = c.counter().name();
        assert_eq!(detail.counters[name], c.state.verdict(), "{name}");
        let source = detail.sources.get(name).map(String::as_str);
        match c.source() {
            // A hardware counter's path can differ from moment to moment
            // (an event off the PMU is read with read(2)).
            Some(s) if c.counter().is_hardware() => assert!(source.is_some(), "{name}: {s}"),
            s => assert_eq!(source, s.map(|s| s.as_str()), "{name}"),
        }
    }
    assert_eq!(
        detail.sources[Counter::WallTime.name()],
        CounterSource::Clock.as_str()
    );
    assert_eq!(detail.counters[Counter::WallTime.name()], "ok");

    for key in [
        "records_accepted",
        "records_dropped_queue_full",
        "records_dropped_closed",
        "status_records",
        "queue_len",
        "sample_rate",
    ] {
        assert!(detail.stats.contains_key(key), "{key}");
    }
    assert_eq!(detail.stats["queue_capacity"], 64);
    assert_eq!(detail.stats["sample_rate"], dynostats::sample_rate());
    // Recovered user-read traps (arm64 only; this process has none).
    assert_eq!(
        detail.stats["withdrawn_user_reads"],
        dynostats::counters::withdrawn_user_reads()
    );
    assert!(detail.sinks["memory"].contains_key("bytes_written"));
    assert!(detail.sinks["memory"].contains_key("records_resent"));
    // This copy was written to the memory sink, and says so.
    assert_eq!(detail.sink.as_deref(), Some("memory"));

    // A later status record has counted the three records.
    pipeline.flush().unwrap();
    let status = mem.records_of(RecordKind::Status);
    let counted = status.iter().any(|s| {
        let d = s.detail.as_ref().unwrap();
        d.stats["records_accepted"] == 3 && d.sinks["memory"]["records_written"] >= 4
    });
    assert!(counted, "{status:?}");
}

#[test]
fn no_status_records_when_disabled() {
    let (pipeline, mem) = memory_pipeline();
    pipeline.emit(Record::new(RecordKind::Region, "only"));
    let stats = pipeline.shutdown().unwrap();
    assert_eq!(stats.status_records, 0);
    assert_eq!(mem.len(), 1);
}
