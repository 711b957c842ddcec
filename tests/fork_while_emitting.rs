// Own test binary: it forks and installs the global pipeline.
//! fork while other threads emit: the documented pre-fork pattern. A child
//! forked while another parent thread is inside `emit` (or `install`,
//! `global_pipeline`, `flush`, `shutdown`) must be able to install its own
//! pipeline and emit into it: nothing the child calls may wait on a lock
//! that a parent thread held at the fork. Alone in its test binary.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dynostats::counters::CounterSet;
use dynostats::sink::{Batch, MemorySink, Sink};
use dynostats::{Delta, Pipeline, Record, RecordKind};

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

/// Resident bytes the child touches between its two snapshots.
const TOUCHED: usize = 8 << 20;

/// The child measures first: its own counters (opened anew in this fork
/// generation, CPU time counting its own work), the descriptor budget
/// (its gauges start from 0 in the child: exactly this thread's one
/// place), the shared statm descriptor (the child's RSS, not the
/// parent's), and the thread counter set the parent's measuring thread
/// chose, perhaps while the fork happened. One exit code per check.
fn measure_in_child() -> i32 {
    if dynostats::counters::thread_counters() != CounterSet::default() {
        return 10;
    }
    let start = dynostats::snapshot();
    let mut touched = vec![0u8; TOUCHED];
    for page in touched.chunks_mut(4096) {
        page[0] = 1;
    }
    let spin = (0..200_000u64).fold(0u64, |a, b| a.wrapping_add(b * b));
    std::hint::black_box((&touched, spin));
    let end = dynostats::snapshot();
    let d = Delta::between(&start, &end);
    if d.wall_ns == 0 || d.cpu_ns.is_none_or(|ns| ns == 0) {
        return 11;
    }
    // The child's CPU time: at most its wall time (not the parent's
    // threads', which a counter inherited across the fork would count).
    if d.cpu_ns.unwrap_or(0) > d.wall_ns + 1_000_000 {
        return 12;
    }
    let grew = d
        .rss_end
        .unwrap_or(0)
        .saturating_sub(d.rss_start.unwrap_or(0));
    if grew < (TOUCHED as u64) * 3 / 4 {
        return 13;
    }
    let used = dynostats::counters::descriptor_use();
    if used.perf_groups_held + used.threads_refused != 1 {
        return 14;
    }
    if used.perf_groups_held == 1 && used.perf_descriptors_held == 0 {
        return 15;
    }
    drop(touched);
    0
}

fn child() -> i32 {
    match measure_in_child() {
        0 => {}
        code => return code,
    }
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
    let mut codes = Vec::new();
    std::thread::scope(|s| {
        // A thread that measures while the children are forked: it
        // chooses the thread counter set (first use) and opens and reads
        // its counters and the shared statm descriptor around the forks.
        {
            let stop = &stop;
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let start = dynostats::snapshot();
                    let end = dynostats::snapshot();
                    std::hint::black_box(Delta::between(&start, &end));
                }
            });
        }
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
                Some(code) => {
                    failed += 1;
                    if codes.len() < 10 {
                        codes.push(code);
                    }
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert_eq!(
        (stuck, failed),
        (0, 0),
        "of {FORKS} children, {stuck} hung and {failed} failed (first exit codes {codes:?}: 10 \
         counter set, 11 no CPU time, 12 CPU time beyond wall time, 13 RSS not the \
         child's, 14 budget places, 15 no descriptors held)"
    );
    let stats = parent.shutdown().unwrap();
    assert!(stats.accepted > 0);
}
