//! Where the requested timer cannot be read (instructions on a machine
//! without a PMU), the profile is in thread CPU time and says so: its
//! amounts are never written under the instructions name.

use dynostats::profile::{self, CallTree, ProfileConfig, Timer};
use dynostats::sink::MemorySink;
use dynostats::{Pipeline, RecordKind, Region};

#[test]
fn an_unreadable_timer_falls_back_to_cpu_time_and_records_why() {
    let _profiler = crate::hold_profiler();
    profile::configure(ProfileConfig::builder().timer(Timer::Instructions).build());
    let mem = MemorySink::new();
    let pipeline = Pipeline::builder().sink(mem.clone()).build().unwrap();
    pipeline.in_scope(|| {
        Region::forced("fallback").run(|| {
            dynostats::scope_fn("work", || std::hint::black_box((0..10_000u64).sum::<u64>()))
        })
    });
    pipeline.flush().unwrap();
    let region = mem.records_of(RecordKind::Region).pop().unwrap();
    let profile = mem.records_of(RecordKind::Profile).pop().unwrap();
    let detail = profile.detail.as_ref().unwrap();
    assert!(CallTree::from_record(&profile).is_some());
    match region.instructions {
        // A PMU: instructions are the timer, no fallback.
        Some(instructions) => {
            assert_eq!(detail.timer.as_deref(), Some("instructions"));
            assert_eq!(detail.total, Some(instructions as i64));
            assert_eq!(detail.timer_fallback, None);
        }
        None => {
            assert_eq!(detail.timer.as_deref(), Some("cpu_ns"));
            assert_eq!(detail.timer_requested.as_deref(), Some("instructions"));
            let why = detail.timer_fallback.as_deref().unwrap();
            assert!(why.contains('('), "the errno is named: {why}");
            assert_eq!(detail.total, region.cpu_ns.map(|c| c as i64));
        }
    }
}
