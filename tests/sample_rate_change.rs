// Own test binary: it sets the global sample rate.
//! A new sample rate reaches a busy thread at once: the next decision on
//! every thread uses it, whatever countdown the old rate left behind.

mod common;

use dynostats::RecordKind;
use dynostats::sample::Sampler;

#[test]
fn a_sampler_uses_a_new_rate_at_the_next_decision() {
    let sampler = Sampler::new(1_000_000);
    // Draws this thread's countdown at one in a million.
    let early = (0..10_000).filter(|_| sampler.sample().is_some()).count();
    assert!(early <= 1, "{early}");
    sampler.set_rate(1);
    assert!((0..1000).all(|_| sampler.sample() == Some(1)));
    // Through 0 and back.
    sampler.set_rate(0);
    assert!((0..1000).all(|_| sampler.sample().is_none()));
    sampler.set_rate(1);
    assert_eq!(sampler.sample(), Some(1));
    // Down again: one in 1000 on average, no longer every event.
    sampler.set_rate(1000);
    let picked = (0..100_000).filter(|_| sampler.sample().is_some()).count();
    assert!((30..300).contains(&picked), "{picked}");
}

#[test]
fn the_global_rate_reaches_a_thread_that_ran_at_a_low_rate() {
    let (pipeline, mem) = common::memory_pipeline();
    dynostats::set_sample_rate(1_000_000);
    std::thread::scope(|s| {
        s.spawn(|| {
            let _scope = pipeline.scoped();
            for _ in 0..10_000 {
                drop(dynostats::measure("busy"));
            }
            // A region sampled at one in a million may still be queued.
            pipeline.flush().unwrap();
            let before = mem.records_of(RecordKind::Region).len();
            dynostats::set_sample_rate(1);
            for _ in 0..100 {
                drop(dynostats::measure("busy"));
            }
            pipeline.flush().unwrap();
            let after = mem.records_of(RecordKind::Region).len();
            assert_eq!(after - before, 100);
        });
    });
}
