// Own test binary: it counts voluntary context switches, which other tests' threads add to.
//! `emit` never sleeps: the request path takes no lock that the writer
//! thread also takes. Counted with the emitting threads' own voluntary
//! context switches (`getrusage(RUSAGE_THREAD)`): a thread that waits on a
//! lock, a futex or I/O gives up the CPU voluntarily; one that is only
//! preempted does not count.
//!
//! One emitting thread: with several, crossbeam's `ArrayQueue` makes a
//! pusher that finds a slot claimed by a preempted pusher `sched_yield`
//! (no lock, no block, but a voluntary switch when another thread is
//! runnable): about 1 in 600,000 emits with 3 emitters on 2 busy cores.
//! RELIABILITY.md says so.

use std::sync::Barrier;

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

#[test]
fn emitting_threads_do_not_sleep() {
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
