// Own test binary: it counts voluntary context switches, which other tests' threads add to.
//! `emit` never sleeps: the request path takes no lock that the writer
//! thread also takes. Counted with the emitting threads' own voluntary
//! context switches (`getrusage(RUSAGE_THREAD)`): a thread that waits on a
//! lock, a futex or I/O gives up the CPU voluntarily; one that is only
//! preempted does not count.
//!
//! `emitting_threads_do_not_sleep`: one emitting thread that never pauses
//! (the writer never parks, so a lock shared with it is rarely contended).
//! `bursts_from_several_threads_after_pauses_do_not_sleep`: three threads,
//! bursts with pauses, the case that made the old channel wake-up sleep.
//!
//! With several threads, crossbeam's `ArrayQueue` can make a
//! pusher that finds a slot claimed by a preempted pusher `sched_yield`
//! (no lock, no block, but a voluntary switch when another thread is
//! runnable): about 1 in 600,000 emits with 3 emitters on 2 busy cores.
//! RELIABILITY.md says so.

use std::sync::{Barrier, Mutex};
use std::time::Duration;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dynostats::sink::{Batch, Sink};
use dynostats::{Pipeline, Record, RecordKind};

/// Counts what it is given and keeps nothing (a sink whose memory grows
/// makes the writer map pages: see the warm-up below).
struct Count(Arc<AtomicU64>);

impl Sink for Count {
    fn name(&self) -> String {
        "count".to_string()
    }
    fn write_batch(&mut self, batch: &Batch) -> std::io::Result<()> {
        self.0.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

const THREADS: usize = 1;
const PER_THREAD: usize = 500_000;

fn voluntary_switches() -> i64 {
    // SAFETY: an all-zero rusage is valid, and getrusage writes into it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid rusage for getrusage to write.
    let r = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    assert_eq!(r, 0);
    usage.ru_nvcsw
}

/// The two tests run one after the other: each counts its own threads'
/// switches, but a core taken by the other test makes more preemption.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn emitting_threads_do_not_sleep() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let written = Arc::new(AtomicU64::new(0));
    let pipeline = Pipeline::builder()
        .sink(Count(Arc::clone(&written)))
        // Room for every record (a dropped record is freed on the emitting
        // thread, where glibc's malloc may wait for its arena's lock), and
        // a wake-up of the writer on (nearly) every record: the worst case.
        .queue_capacity(THREADS * PER_THREAD)
        .batch_size(1)
        .status_interval(None)
        .build()
        .unwrap();
    // Page the whole queue in first: a thread touching a new page waits
    // for the kernel's mmap lock while another thread maps memory.
    for _ in 0..THREADS * PER_THREAD {
        assert!(pipeline.emit(Record::new(RecordKind::Region, "warm-up")));
    }
    pipeline.flush().unwrap();
    let barrier = Barrier::new(THREADS);
    let slept: Vec<i64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (pipeline, barrier) = (&pipeline, &barrier);
                s.spawn(move || {
                    // Built before counting: allocating is not emitting.
                    let records: Vec<Record> = (0..PER_THREAD)
                        .map(|_| Record::new(RecordKind::Region, &format!("t{t}")))
                        .collect();
                    barrier.wait();
                    let before = voluntary_switches();
                    for r in records {
                        assert!(pipeline.emit(r));
                    }
                    voluntary_switches() - before
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let stats = pipeline.shutdown().unwrap();
    assert_eq!(stats.accepted as usize, 2 * THREADS * PER_THREAD);
    assert_eq!(written.load(Ordering::Relaxed), stats.accepted);
    assert_eq!(
        slept,
        vec![0; THREADS],
        "emitting threads slept (voluntary context switches per thread)"
    );
}

const BURST_THREADS: usize = 3;
const BURSTS: usize = 1_500;
const BURST: usize = 200;

/// Bursts with pauses from several threads: after each pause the writer
/// has gone idle (parked), so the first emit of a burst wakes it while
/// other threads emit too: the case where a wake-up that takes a lock the
/// writer also takes (the old channel message) makes an emitting thread
/// sleep. Only the bursts are counted, not the pauses.
#[test]
fn bursts_from_several_threads_after_pauses_do_not_sleep() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let written = Arc::new(AtomicU64::new(0));
    let total = BURST_THREADS * BURSTS * BURST;
    let pipeline = Pipeline::builder()
        .sink(Count(Arc::clone(&written)))
        .queue_capacity(total)
        .batch_size(1)
        .status_interval(None)
        .build()
        .unwrap();
    for _ in 0..total {
        assert!(pipeline.emit(Record::new(RecordKind::Region, "warm-up")));
    }
    pipeline.flush().unwrap();
    let barrier = Barrier::new(BURST_THREADS);
    let slept: Vec<i64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..BURST_THREADS)
            .map(|t| {
                let (pipeline, barrier) = (&pipeline, &barrier);
                s.spawn(move || {
                    let mut slept = 0;
                    barrier.wait();
                    for _ in 0..BURSTS {
                        let records: Vec<Record> = (0..BURST)
                            .map(|_| Record::new(RecordKind::Region, &format!("t{t}")))
                            .collect();
                        let before = voluntary_switches();
                        for r in records {
                            assert!(pipeline.emit(r));
                        }
                        slept += voluntary_switches() - before;
                        std::thread::sleep(Duration::from_micros(300));
                    }
                    slept
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let stats = pipeline.shutdown().unwrap();
    assert_eq!(stats.accepted as usize, 2 * total);
    assert_eq!(written.load(Ordering::Relaxed), stats.accepted);
    assert_eq!(
        slept,
        vec![0; BURST_THREADS],
        "emitting threads slept inside their bursts (voluntary context switches per thread)"
    );
}
