//! `emit` never sleeps: the request path takes no lock that the writer
//! thread also takes. Counted with the emitting threads' own voluntary
//! context switches (`getrusage(RUSAGE_THREAD)`): a thread that waits on a
//! lock, a futex or I/O gives up the CPU voluntarily; one that is only
//! preempted does not count.

use std::sync::Barrier;

use dynostats::{Pipeline, Record, RecordKind, sink::MemorySink};

const THREADS: usize = 3;
const PER_THREAD: usize = 200_000;

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
    let mem = MemorySink::new();
    let pipeline = Pipeline::builder()
        .sink(mem.clone())
        // Room for everything, so that no record is dropped, and a
        // wake-up of the writer on (nearly) every record: the worst case.
        .queue_capacity(THREADS * PER_THREAD)
        .batch_size(1)
        .status_interval(None)
        .build()
        .unwrap();
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
    assert_eq!(stats.accepted as usize, THREADS * PER_THREAD);
    assert_eq!(mem.records().len(), THREADS * PER_THREAD);
    assert_eq!(
        slept,
        vec![0; THREADS],
        "emitting threads slept (voluntary context switches per thread)"
    );
}
