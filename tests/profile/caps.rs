//! The caps: scopes beyond the depth cap or the node cap go to the named
//! overflow bucket, counted exactly; nothing is lost and memory is bounded.

use dynostats::profile::{self, CallTree, OVERFLOW, ProfileConfig, Timer};
use dynostats::sink::MemorySink;
use dynostats::{Pipeline, RecordKind, Region};

fn nest(depth: u32) {
    let _s = dynostats::scope("level");
    if depth > 1 {
        nest(depth - 1);
    }
}

const NAMES: [&str; 6] = ["n0", "n1", "n2", "n3", "n4", "n5"];

#[test]
fn depth_and_node_caps_fill_the_overflow_bucket_with_exact_counts() {
    let _profiler = crate::hold_profiler();
    profile::configure(
        ProfileConfig::builder()
            .timer(Timer::WallTime)
            .max_depth(3)
            .max_nodes(5)
            .build(),
    );
    let mem = MemorySink::new();
    let pipeline = Pipeline::builder().sink(mem.clone()).build().unwrap();
    pipeline.in_scope(|| {
        Region::forced("caps").run(|| {
            // 10 levels, twice: 3 kept as paths, the 4th goes to the bucket
            // (timed), the 6 below it are counted inside it.
            nest(10);
            nest(10);
            // 6 names at the top: 2 more nodes fit (3 levels + 2 = 5; the
            // bucket is not counted), the other 4 go to the bucket, 3 times
            // each.
            for _ in 0..3 {
                for name in NAMES {
                    drop(dynostats::scope(name));
                }
            }
        })
    });
    pipeline.flush().unwrap();
    let profile = mem.records_of(RecordKind::Profile).pop().unwrap();
    let tree = CallTree::from_record(&profile).unwrap();
    let stats = &profile.detail.as_ref().unwrap().stats;

    assert_eq!(tree.nodes().len(), 1 + 5 + 1, "{:?}", tree.nodes());
    for depth in 1..=3 {
        assert_eq!(tree.find(&vec!["level"; depth]).unwrap().calls, 2);
    }
    assert!(tree.find(&["n0"]).is_some() && tree.find(&["n1"]).is_some());
    let bucket = tree.find(&[OVERFLOW]).unwrap();
    assert_eq!(bucket.calls, 2 * 7 + 3 * 4);
    assert_eq!(stats.get("overflow_depth"), Some(&2));
    assert_eq!(stats.get("overflow_nested"), Some(&(2 * 6)));
    assert_eq!(stats.get("overflow_nodes"), Some(&(3 * 4)));
    // Timed pairs: 2 x (3 levels + the bucket) + 3 x 6.
    assert_eq!(stats.get("scopes"), Some(&(2 * 4 + 3 * 6)));
    // The tree still adds up.
    let exclusive: i64 = tree.nodes().iter().map(|n| n.exclusive).sum();
    assert_eq!(exclusive + tree.overhead(), tree.root().inclusive);
    assert!(profile::stats().overflowed >= 2 + 12 + 12);
}
