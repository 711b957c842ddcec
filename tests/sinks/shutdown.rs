//! Graceful shutdown: everything accepted is written, from any number of
//! threads, whether the pipeline is shut down explicitly or dropped.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::time::Duration;

use dynostats::{Error, Pipeline, Record, RecordKind, sink::FileSink, sink::MemorySink};

const THREADS: u64 = 4;
const PER_THREAD: u64 = 2500;

fn emit_from_threads(pipeline: &Pipeline) {
    std::thread::scope(|s| {
        for t in 0..THREADS {
            s.spawn(move || {
                pipeline.in_scope(|| {
                    for i in 0..PER_THREAD {
                        let mut r = Record::new(RecordKind::Region, &format!("t{t}"));
                        r.wall_ns = i;
                        assert!(dynostats::emit(r), "thread {t} record {i} dropped");
                    }
                })
            });
        }
    });
}

/// Every thread's records, each in emission order.
fn check_complete(records: &[Record]) {
    assert_eq!(records.len() as u64, THREADS * PER_THREAD);
    let mut per_thread: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for r in records {
        per_thread.entry(&r.name).or_default().push(r.wall_ns);
    }
    assert_eq!(per_thread.len() as u64, THREADS);
    for (name, seq) in per_thread {
        assert_eq!(seq, (0..PER_THREAD).collect::<Vec<_>>(), "{name}");
    }
}

fn read_file(path: &Path) -> Vec<Record> {
    dynostats::read(File::open(path).unwrap())
        .collect::<Result<_, _>>()
        .unwrap()
}

fn file_pipeline(path: &Path) -> Pipeline {
    Pipeline::builder()
        .sink(FileSink::create(path).unwrap())
        .queue_capacity((THREADS * PER_THREAD) as usize)
        // Nothing is written by time: only the shutdown drain writes.
        .batch_interval(Duration::from_secs(3600))
        .batch_size(100_000)
        .status_interval(None)
        .build()
        .unwrap()
}

#[test]
fn shutdown_writes_exactly_what_was_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shutdown.msgpack");
    let pipeline = file_pipeline(&path);
    emit_from_threads(&pipeline);
    let stats = pipeline.shutdown().unwrap();
    assert_eq!(stats.accepted, THREADS * PER_THREAD);
    assert_eq!(stats.sinks[0].written, THREADS * PER_THREAD);
    check_complete(&read_file(&path));

    // After shutdown: records are refused and counted, flush says so.
    assert!(!pipeline.emit(Record::new(RecordKind::Region, "late")));
    assert_eq!(pipeline.stats().dropped_closed, 1);
    assert!(matches!(pipeline.flush(), Err(Error::Closed)));
    // A second shutdown returns the same counts.
    assert_eq!(
        pipeline.shutdown().unwrap().sinks[0].written,
        THREADS * PER_THREAD
    );
}

#[test]
fn dropping_the_pipeline_drains_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drop.msgpack");
    let pipeline = file_pipeline(&path);
    emit_from_threads(&pipeline);
    drop(pipeline);
    check_complete(&read_file(&path));
}

#[test]
fn shutdown_writes_a_last_status_record_with_the_final_counts() {
    let mem = MemorySink::new();
    let pipeline = Pipeline::builder().sink(mem.clone()).build().unwrap();
    for i in 0..5 {
        pipeline.emit(Record::new(RecordKind::Region, &format!("r{i}")));
    }
    let stats = pipeline.shutdown().unwrap();
    assert_eq!(stats.status_records, 2);
    let records = mem.records();
    assert_eq!(records.len(), 7);
    assert_eq!(records[0].kind, RecordKind::Status);
    let last = records.last().unwrap();
    assert_eq!(last.kind, RecordKind::Status);
    let detail = last.detail.as_ref().unwrap();
    assert_eq!(detail.stats["records_accepted"], 5);
    assert_eq!(detail.stats["status_records"], 2);
    // Written before the last status record: the first status and the 5.
    assert_eq!(detail.sinks["memory"]["records_written"], 6);
}
