//! What is emitted through a pipeline into a MemorySink is what is read
//! back, field by field, including absent counters.

use crate::common;

use common::memory_pipeline;

use std::time::Duration;

use dynostats::{Delta, Pipeline, Record, RecordKind, Snapshot, sink::MemorySink};

fn full_record() -> Record {
    let mut r = Record::new(RecordKind::Request, "/users/{id}");
    r.ts = 1_700_000_000_123_456_789;
    r.method = Some("GET".into());
    r.status = Some(200);
    r.set_label("host", "web-1").set_label("build", "abc123");
    r.weight = 1000;
    r.wall_ns = 123_456;
    r.cpu_ns = Some(100_000);
    r.instructions = Some(u64::MAX - 1);
    r.cycles = None;
    r.page_faults = Some(0);
    r.rss_start = Some(10 << 20);
    r.rss_end = Some(11 << 20);
    r.polls = Some(3);
    r.threads = Some(2);
    r.source = dynostats::counters::ReadPath::Read;
    r.scaled = true;
    r
}

#[test]
fn records_come_back_field_by_field() {
    let (pipeline, mem) = memory_pipeline();
    let sent = vec![full_record(), Record::new(RecordKind::Region, "bare"), {
        let mut r = Record::new(RecordKind::Region, "cancelled");
        r.cancelled = true;
        r.error = Some("timeout".into());
        r
    }];
    for r in &sent {
        assert!(pipeline.emit(r.clone()));
    }
    pipeline.flush().unwrap();
    let got = mem.records();
    assert_eq!(got, sent);
    // Absent stays absent (not 0) after the round trip.
    assert_eq!(got[0].cycles, None);
    assert_eq!(got[0].page_faults, Some(0));
    assert_eq!(got[1].instructions, None);
    assert_eq!(mem.len(), 3);

    let stats = pipeline.shutdown().unwrap();
    assert_eq!(stats.accepted, 3);
    assert_eq!(stats.sinks[0].written, 3);
    assert_eq!(stats.sinks[0].bytes_written, mem.bytes().len() as u64);
}

#[test]
fn a_delta_survives_the_trip() {
    let mut start = Snapshot::default();
    start.wall_ns = 1_000;
    start.cpu_ns = Some(1_000);
    let mut end = Snapshot::default();
    end.wall_ns = 6_000;
    end.cpu_ns = Some(5_000);
    let delta = Delta::between(&start, &end);
    let mut r = Record::new(RecordKind::Region, "d");
    r.set_delta(&delta);

    let (pipeline, mem) = memory_pipeline();
    pipeline.emit(r);
    pipeline.flush().unwrap();
    let got = &mem.records()[0];
    assert_eq!(got.wall_ns, 5_000);
    assert_eq!(got.cpu_ns, Some(4_000));
    assert_eq!(got.instructions, None);
    assert_eq!(got.cycles, None);
}

#[test]
fn scoped_pipelines_are_independent_per_thread() {
    let a = MemorySink::new();
    let b = MemorySink::new();
    let pa = Pipeline::builder()
        .sink(a.clone())
        .status_interval(None)
        .build()
        .unwrap();
    let pb = Pipeline::builder()
        .sink(b.clone())
        .status_interval(None)
        .build()
        .unwrap();
    std::thread::scope(|s| {
        s.spawn(|| pa.in_scope(|| assert!(dynostats::emit(Record::new(RecordKind::Region, "a")))));
        s.spawn(|| {
            let _scope = pb.scoped();
            assert!(dynostats::emit(Record::new(RecordKind::Region, "b")));
            // Nested override, then restored.
            pa.in_scope(|| assert!(dynostats::emit(Record::new(RecordKind::Region, "a2"))));
            assert!(dynostats::emit(Record::new(RecordKind::Region, "b2")));
        });
    });
    // This thread has no scope and no global pipeline is installed.
    assert!(!dynostats::emit(Record::new(RecordKind::Region, "nowhere")));
    pa.flush().unwrap();
    pb.flush().unwrap();
    let mut names_a: Vec<_> = a.records().into_iter().map(|r| r.name).collect();
    names_a.sort();
    assert_eq!(names_a, ["a", "a2"]);
    let names_b: Vec<_> = b.records().into_iter().map(|r| r.name).collect();
    assert_eq!(names_b, ["b", "b2"]);
}

#[test]
fn partial_batches_are_written_after_the_batch_interval() {
    let mem = MemorySink::new();
    let pipeline = Pipeline::builder()
        .sink(mem.clone())
        .batch_size(1000)
        .batch_interval(Duration::from_millis(10))
        .status_interval(None)
        .build()
        .unwrap();
    pipeline.emit(Record::new(RecordKind::Region, "lonely"));
    // No flush: the writer must write the partial batch by itself. Wait
    // for it (a liveness wait, not a timing assertion).
    let mut waited = 0;
    while mem.is_empty() {
        assert!(waited < 60_000, "the partial batch was never written");
        std::thread::sleep(Duration::from_millis(1));
        waited += 1;
    }
    assert_eq!(mem.records()[0].name, "lonely");
}

#[test]
fn pipeline_labels_fill_in_without_overriding() {
    let mem = MemorySink::new();
    let pipeline = Pipeline::builder()
        .sink(mem.clone())
        .label("host", "web-1")
        .label("build", "b7")
        .status_interval(None)
        .build()
        .unwrap();
    let mut r = Record::new(RecordKind::Region, "x");
    r.set_label("build", "local");
    pipeline.emit(r);
    pipeline.flush().unwrap();
    let got = &mem.records()[0];
    assert_eq!(got.labels.get("host"), Some("web-1"));
    assert_eq!(got.labels.get("build"), Some("local"));
}

#[test]
fn bad_configuration_is_an_error() {
    use dynostats::{ConfigError, ConfigErrorKind, Error};

    let err = Pipeline::builder().build().unwrap_err();
    match &err {
        Error::InvalidConfig(ConfigError {
            setting: "PipelineBuilder::sink",
            kind: ConfigErrorKind::Missing,
            ..
        }) => {}
        other => panic!("{other}"),
    }
    // The sentence names the setting to change.
    assert_eq!(
        err.to_string(),
        "invalid configuration: `PipelineBuilder::sink` must be called at least once"
    );
    let err = Pipeline::builder()
        .sink(MemorySink::new())
        .queue_capacity(0)
        .build()
        .unwrap_err();
    match &err {
        Error::InvalidConfig(ConfigError {
            setting: "PipelineBuilder::queue_capacity",
            kind: ConfigErrorKind::Zero,
            ..
        }) => {}
        other => panic!("{other}"),
    }
    assert_eq!(
        err.to_string(),
        "invalid configuration: the value given to `PipelineBuilder::queue_capacity` must not be \
         zero"
    );
}
