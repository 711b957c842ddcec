// Own test binary: it forks (a lock another test thread held at the fork stays held in the child).
//! fork: a child's snapshots must not read the parent's counters. Alone in
//! its test binary so no other test thread runs while the process forks.

mod common;

use common::fork::{fork_child, pipe, recv_byte, send_byte};
use common::{burn_cpu_ns, touch_fresh_memory};
use dynostats::{Delta, counters::Counter, counters::CounterSet, counters::Counters, snapshot};

const MS: u64 = 1_000_000;

/// Child exit codes, one per failed check.
const STALE_NOT_DETECTED: i32 = 10;
const CHILD_COUNTED_PARENT_CPU: i32 = 11;
const CHILD_RSS_NOT_OWN: i32 = 12;
const STALE_DID_NOT_COUNT_PARENT: i32 = 13;
const PIPE_FAILED: i32 = 14;

#[test]
fn child_snapshots_do_not_include_the_parent_s_work() {
    // The parent opens this thread's counters (thread-local and explicit).
    let _ = snapshot();
    let mut inherited = Counters::open(CounterSet::wall_only().with(Counter::CpuTime));
    let _ = inherited.snapshot();
    let started = pipe();
    let burned = pipe();

    // The child only computes, allocates and calls _exit.
    let child = fork_child(|| child(started[1], burned[0], &mut inherited));
    // Parent: once the child has taken its first snapshots, burn 300 ms of
    // CPU on the thread whose counters the child inherited.
    assert!(recv_byte(started[0]));
    burn_cpu_ns(300 * MS);
    assert!(send_byte(burned[1]));
    let code = child.wait();
    assert_eq!(code, 0, "child check failed with code {code}");
}

fn child(started: i32, burned: i32, inherited: &mut Counters) -> i32 {
    if !inherited.is_stale() {
        return STALE_NOT_DETECTED;
    }
    let stale_start = inherited.snapshot();
    let start = snapshot();
    // Wait, without using CPU, while the parent burns; then touch 32 MiB of
    // fresh memory in the child only.
    if !send_byte(started) || !recv_byte(burned) {
        return PIPE_FAILED;
    }
    let _resident = touch_fresh_memory(32 << 20);
    let end = snapshot();
    let stale_end = inherited.snapshot();

    let d = Delta::between(&start, &end);
    // The child itself used a few ms of CPU; the parent used 300.
    if d.cpu_ns.is_none_or(|ns| ns > 100 * MS) {
        return CHILD_COUNTED_PARENT_CPU;
    }
    // RSS must be the child's own (a descriptor opened by the parent on
    // /proc/self/statm names the parent).
    let grown = d
        .rss_end
        .unwrap_or(0)
        .saturating_sub(d.rss_start.unwrap_or(u64::MAX));
    if grown < 32 << 20 {
        return CHILD_RSS_NOT_OWN;
    }
    // What the reopen protects against: the inherited descriptor really does
    // count the parent's thread.
    let stale = Delta::between(&stale_start, &stale_end);
    if stale.cpu_ns.is_none_or(|ns| ns < 290 * MS) {
        return STALE_DID_NOT_COUNT_PARENT;
    }
    0
}
