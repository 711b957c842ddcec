//! The fork harness: run a check in a forked child and get its exit code.
//!
//! A test binary that forks must run its tests alone (one `#[test]` per
//! binary, or `--test-threads=1`): a lock held by another test thread at
//! the fork is held for ever in the child.

/// A forked child process, to wait for.
pub struct Child(libc::pid_t);

/// Forks; the child runs `child` and exits with the code it returns (0
/// for success, one distinct code per failed check), without running the
/// test harness's destructors. The parent gets the [`Child`] back at once,
/// so it can work beside the child before waiting.
pub fn fork_child(child: impl FnOnce() -> i32) -> Child {
    // SAFETY: the caller's binary runs one test at a time (see the module
    // docs), so no other thread holds a lock the child could need.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = child();
        // SAFETY: _exit ends the child without running the parent's
        // test-harness destructors.
        unsafe { libc::_exit(code) };
    }
    Child(pid)
}

impl Child {
    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.0 as u32
    }

    /// Waits for the child and returns its exit code; panics if it did not
    /// exit normally.
    pub fn wait(self) -> i32 {
        let mut status = 0;
        // SAFETY: `status` is a valid int for waitpid to write.
        assert_eq!(unsafe { libc::waitpid(self.0, &mut status, 0) }, self.0);
        assert!(
            libc::WIFEXITED(status),
            "the child did not exit normally: {status:#x}"
        );
        libc::WEXITSTATUS(status)
    }
}

/// [`fork_child`] and wait: the child's exit code.
pub fn run_in_child(child: impl FnOnce() -> i32) -> i32 {
    fork_child(child).wait()
}

/// A pipe: `[read end, write end]`.
pub fn pipe() -> [i32; 2] {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is a valid array of two ints.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    fds
}

/// Writes one byte to `fd`; whether it was written.
pub fn send_byte(fd: i32) -> bool {
    // SAFETY: writes one byte from a valid buffer.
    unsafe { libc::write(fd, b"x".as_ptr().cast(), 1) == 1 }
}

/// Reads one byte from `fd`; whether one was read.
pub fn recv_byte(fd: i32) -> bool {
    let mut byte = [0u8; 1];
    // SAFETY: `byte` is valid for a one-byte write.
    unsafe { libc::read(fd, byte.as_mut_ptr().cast(), 1) == 1 }
}
