// Own test binary: it forks and installs the global pipeline.
//! fork: the child has no writer thread, so the parent's pipeline refuses
//! records there (instead of queueing them for nobody), and the child can
//! install its own. Alone in its test binary so no other test thread runs
//! while the process forks.

mod common;

use common::fork::fork_child;
use common::{memory_pipeline, read_records};
use dynostats::{Error, Pipeline, Record, RecordKind, sink::FileSink};

/// Child exit codes, one per failed check.
const PARENT_PIPELINE_ACCEPTED: i32 = 30;
const PARENT_FLUSH_DID_NOT_FAIL: i32 = 31;
const CHILD_INSTALL_FAILED: i32 = 32;
const CHILD_EMIT_REFUSED: i32 = 33;
const CHILD_SHUTDOWN_FAILED: i32 = 34;

fn child(path: &std::path::Path) -> i32 {
    let inherited = dynostats::pipeline::global_pipeline().unwrap();
    if dynostats::emit(Record::new(RecordKind::Region, "lost")) {
        return PARENT_PIPELINE_ACCEPTED;
    }
    if !matches!(inherited.flush(), Err(Error::Closed)) {
        return PARENT_FLUSH_DID_NOT_FAIL;
    }
    let Ok(sink) = FileSink::create(path) else {
        return CHILD_INSTALL_FAILED;
    };
    let own = Pipeline::builder()
        .sink(sink)
        .status_interval(None)
        .build()
        .ok()
        .and_then(|p| dynostats::install(p).ok());
    let Some(own) = own else {
        return CHILD_INSTALL_FAILED;
    };
    if !dynostats::emit(Record::new(RecordKind::Region, "child")) {
        return CHILD_EMIT_REFUSED;
    }
    if own.shutdown().is_err() {
        return CHILD_SHUTDOWN_FAILED;
    }
    0
}

#[test]
fn a_forked_child_installs_its_own_pipeline() {
    let (parent, mem) = memory_pipeline();
    let parent = dynostats::install(parent).unwrap();
    assert!(dynostats::emit(Record::new(
        RecordKind::Region,
        "before fork"
    )));
    parent.flush().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("child.msgpack");
    // The pipeline's writer thread holds no lock the child takes (the
    // child's first emit sees the fork before taking any).
    let child = fork_child(|| child(&path));
    let pid = child.pid();
    assert_eq!(child.wait(), 0, "child check failed");

    // The child's record is in its file, with its pid.
    let records = read_records(&path);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].name, "child");
    assert_eq!(records[0].pid, pid);

    // The parent's pipeline is untouched.
    assert!(dynostats::emit(Record::new(
        RecordKind::Region,
        "after fork"
    )));
    let stats = parent.shutdown().unwrap();
    assert_eq!(stats.accepted, 2);
    assert_eq!(stats.dropped_closed, 0);
    let names: Vec<_> = mem.records().into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["before fork", "after fork"]);
}
