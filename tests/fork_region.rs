// Own test binary: it forks and installs the global pipeline.
//! A region that starts before a fork and ends in the child is the child's
//! record: the child's pid, `error: "fork"`, and no counters (they would
//! mix the parent's thread and the child's); only its wall time. Alone in
//! its test binary so no other test thread runs while the process forks.

mod common;

use common::fork::fork_child;
use common::memory_pipeline;
use dynostats::{Record, RecordKind, instrument::Region};

const CHILD_INSTALL_FAILED: i32 = 40;
const CHILD_NO_RECORD: i32 = 41;
const CHILD_WRONG_PID: i32 = 42;
const CHILD_NOT_MARKED: i32 = 43;
const CHILD_COUNTERS_KEPT: i32 = 44;

fn child(guard: dynostats::instrument::RegionGuard) -> i32 {
    let (pipeline, mem) = memory_pipeline();
    let Ok(own) = dynostats::install(pipeline) else {
        return CHILD_INSTALL_FAILED;
    };
    drop(guard);
    let _ = own.shutdown();
    let records = mem.records_of(RecordKind::Region);
    let Some(record) = records.iter().find(|r| r.name == "spans a fork") else {
        return CHILD_NO_RECORD;
    };
    if record.pid != std::process::id() {
        return CHILD_WRONG_PID;
    }
    if record.error.as_deref() != Some("fork") {
        return CHILD_NOT_MARKED;
    }
    if record.cpu_ns.is_some() || record.page_faults.is_some() || record.instructions.is_some() {
        return CHILD_COUNTERS_KEPT;
    }
    0
}

#[test]
fn a_region_spanning_a_fork_is_the_childs_and_marked() {
    let (parent, mem) = memory_pipeline();
    let parent = dynostats::install(parent).unwrap();
    let guard = Region::forced("spans a fork").start();
    assert!(guard.is_sampled());
    let in_parent = Region::forced("parent only").start();
    let child = fork_child(move || child(guard));
    assert_eq!(child.wait(), 0, "child check failed");

    // The parent's own regions are untouched.
    drop(in_parent);
    assert!(dynostats::emit(Record::new(RecordKind::Region, "after")));
    parent.flush().unwrap();
    let records = mem.records_of(RecordKind::Region);
    let own = records.iter().find(|r| r.name == "parent only").unwrap();
    assert_eq!(own.pid, std::process::id());
    assert_eq!(own.error, None);
    let _ = parent.shutdown();
}
