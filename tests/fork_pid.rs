//! Records carry the pid of the process that made them, also in a child
//! forked after the parent made records (the pid is cached). Alone in its
//! test binary so no other test thread runs while the process forks.

use dynostats::{Record, RecordKind};

const WRONG_PID: i32 = 20;

#[test]
fn a_forked_child_stamps_its_own_pid() {
    let parent = Record::new(RecordKind::Region, "parent");
    assert_eq!(parent.pid, std::process::id());

    // SAFETY: this test binary runs one test, so no other thread holds a
    // lock the child could need; the child only allocates and calls _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let child = Record::new(RecordKind::Region, "child");
        let code = if child.pid == std::process::id() && child.pid != parent.pid {
            0
        } else {
            WRONG_PID
        };
        // SAFETY: _exit ends the child without running the parent's
        // test-harness destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: `status` is a valid int for waitpid to write.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status));
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "the child's record had the parent's pid"
    );
    assert_eq!(
        Record::new(RecordKind::Region, "again").pid,
        std::process::id()
    );
}
