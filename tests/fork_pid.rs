// Own test binary: it forks (a lock another test thread held at the fork stays held in the child).
//! Records carry the pid of the process that made them, also in a child
//! forked after the parent made records (the pid is cached). Alone in its
//! test binary so no other test thread runs while the process forks.

mod common;

use common::fork::run_in_child;
use dynostats::{Record, RecordKind};

const WRONG_PID: i32 = 20;

#[test]
fn a_forked_child_stamps_its_own_pid() {
    let parent = Record::new(RecordKind::Region, "parent");
    assert_eq!(parent.pid, std::process::id());

    // The child only allocates and calls _exit.
    let code = run_in_child(|| {
        let child = Record::new(RecordKind::Region, "child");
        if child.pid == std::process::id() && child.pid != parent.pid {
            0
        } else {
            WRONG_PID
        }
    });
    assert_eq!(code, 0, "the child's record had the parent's pid");
    assert_eq!(
        Record::new(RecordKind::Region, "again").pid,
        std::process::id()
    );
}
