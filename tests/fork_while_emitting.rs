// Own test binary: it forks and installs the global pipeline.
//! fork while other threads emit: the documented pre-fork pattern. A child
//! forked while another parent thread is inside `emit` (or `install`,
//! `global_pipeline`, `flush`, `shutdown`) must be able to install its own
//! pipeline and emit into it: nothing the child calls may wait on a lock
//! that a parent thread held at the fork. Alone in its test binary.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dynostats::sink::{Batch, MemorySink, Sink};
use dynostats::{Pipeline, Record, RecordKind};

/// Forgets what it is given: the parent's memory must not grow, or each
/// fork copies more page tables.
struct Discard;

impl Sink for Discard {
    fn name(&self) -> String {
        "discard".to_string()
    }
    fn write_batch(&mut self, _: &Batch) -> std::io::Result<()> {
        Ok(())
    }
}

/// How many children to fork: before the fix, with a thread reading the global pipeline in a loop, one of the first few dozen hung.
const FORKS: usize = 500;
/// A child that has not exited by then is stuck (a healthy one takes a
/// few milliseconds): this bounds the test, it measures nothing.
const STUCK_AFTER: Duration = Duration::from_secs(5);

fn child() -> i32 {
    let _ = dynostats::pipeline::global_pipeline();
    let own = Pipeline::builder()
        .sink(MemorySink::new())
        .status_interval(None)
        .build();
    let Ok(own) = own else { return 2 };
    let Ok(own) = dynostats::install(own) else {
        return 3;
    };
    if !dynostats::emit(Record::new(RecordKind::Region, "child")) {
        return 4;
    }
    match own.shutdown() {
        Ok(stats) if stats.accepted == 1 => 0,
        _ => 5,
    }
}

/// Waits for `pid`, killing it when it is stuck; returns its exit code, or
/// `None` when it had to be killed.
fn reap(pid: libc::pid_t) -> Option<i32> {
    let started = Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid int for waitpid to write.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        assert!(r >= 0, "waitpid failed");
        if r == pid {
            return Some(if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                -1
            });
        }
        if started.elapsed() > STUCK_AFTER {
            // SAFETY: plain kill and wait of our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn children_forked_while_emitting_never_hang() {
    let parent = Pipeline::builder()
        .sink(Discard)
        .queue_capacity(1 << 16)
        .batch_size(1)
        .status_interval(None)
        .build()
        .unwrap();
    let parent = dynostats::install(parent).unwrap();
    let stop = AtomicBool::new(false);
    let (mut stuck, mut failed) = (0, 0);
    std::thread::scope(|s| {
        for t in 0..3 {
            let stop = &stop;
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    dynostats::emit(Record::new(RecordKind::Region, &format!("t{t}")));
                    if t == 0 {
                        // Also the other global entry points.
                        let _ = dynostats::pipeline::global_pipeline().map(|p| p.stats());
                    }
                }
            });
        }
        for _ in 0..FORKS {
            // SAFETY: the child only calls the library (which must not
            // wait on a parent's lock: that is what is tested) and _exit.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork failed");
            if pid == 0 {
                let code = child();
                // SAFETY: ends the child without running the parent's
                // destructors.
                unsafe { libc::_exit(code) };
            }
            match reap(pid) {
                // Enough to fail; each stuck child costs STUCK_AFTER.
                None if stuck == 2 => {
                    stuck += 1;
                    break;
                }
                None => stuck += 1,
                Some(0) => {}
                Some(_) => failed += 1,
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert_eq!(
        (stuck, failed),
        (0, 0),
        "of {FORKS} children, {stuck} hung and {failed} failed"
    );
    let stats = parent.shutdown().unwrap();
    assert!(stats.accepted > 0);
}
