// Own test binary: it counts the process's open descriptors.
//! RSS is per process: every thread reads it through one shared
//! `/proc/self/statm` descriptor, so measuring threads add no descriptor
//! for it (before, each thread opened its own).

use std::sync::{Arc, Barrier};

use dynostats::counters::{Counter, CounterSet, Counters};

fn open_descriptors() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64 - 1
}

#[test]
fn threads_reading_rss_share_one_statm_descriptor() {
    // RSS and wall time only: no perf event, so any new descriptor is statm.
    let set = CounterSet::wall_only().with(Counter::Rss);
    let first = Counters::open(set);
    assert!(first.rss_bytes().is_some_and(|b| b > 0));
    let before = open_descriptors();
    const THREADS: usize = 20;
    let holding = Arc::new(Barrier::new(THREADS + 1));
    let release = Arc::new(Barrier::new(THREADS + 1));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (holding, release) = (holding.clone(), release.clone());
            std::thread::spawn(move || {
                let mut c = Counters::open(set);
                assert!(c.snapshot().rss_bytes.is_some_and(|b| b > 0));
                holding.wait();
                release.wait();
            })
        })
        .collect();
    holding.wait();
    let during = open_descriptors();
    release.wait();
    threads.into_iter().for_each(|t| t.join().unwrap());
    assert_eq!(
        during, before,
        "descriptors grew with {THREADS} threads reading RSS"
    );
    drop(first);
}
