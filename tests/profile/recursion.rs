//! Recursion, as a deterministic profiler counts it: a scope on the stack
//! several times is counted once in its inclusive total (that of its
//! outermost call), and every call is counted.

use crate::common;

use dynostats::profile::{self, CallTree, ProfileConfig, Timer};
use dynostats::sink::MemorySink;
use dynostats::{Pipeline, RecordKind, Region};

const UNIT: u64 = 1_000_000;

fn walk(depth: u32) {
    let _s = dynostats::scope("walk");
    common::burn_cpu_ns(UNIT);
    if depth > 1 {
        walk(depth - 1);
    }
}

#[test]
fn a_recursive_scope_is_counted_once_in_its_inclusive_total() {
    let _profiler = crate::hold_profiler();
    profile::configure(ProfileConfig::builder().timer(Timer::CpuTime).build());
    let mem = MemorySink::new();
    let pipeline = Pipeline::builder().sink(mem.clone()).build().unwrap();
    pipeline.in_scope(|| Region::forced("recursion").run(|| walk(5)));
    pipeline.flush().unwrap();
    let profile = mem.records_of(RecordKind::Profile).pop().unwrap();
    let tree = CallTree::from_record(&profile).unwrap();

    // One path per level: walk, walk/walk, ... the inner ones marked.
    assert_eq!(tree.nodes().len(), 6);
    let outermost = tree.find(&["walk"]).unwrap();
    assert!(!outermost.recursive);
    for level in 2..=5 {
        let path = vec!["walk"; level];
        let n = tree.find(&path).unwrap();
        assert!(n.recursive, "{path:?}");
        assert_eq!(n.calls, 1);
    }
    let walk = tree
        .by_name()
        .into_iter()
        .find(|t| t.name == "walk")
        .unwrap();
    assert_eq!(walk.calls, 5);
    // Inclusive: the outermost call's, not the sum over the levels.
    assert_eq!(walk.inclusive, outermost.inclusive);
    let summed: i64 = tree.nodes()[1..].iter().map(|n| n.inclusive).sum();
    assert!(summed > 2 * walk.inclusive, "levels summed {summed}");
    // Exclusive: every level's own unit.
    let unit = UNIT as i64;
    assert!(walk.exclusive >= 5 * unit - unit / 4, "{walk:?}");
    assert!(walk.exclusive <= walk.inclusive, "{walk:?}");
    let edges = tree.edges();
    let self_edge = edges
        .iter()
        .find(|e| e.caller == "walk" && e.callee == "walk")
        .unwrap();
    assert_eq!(self_edge.calls, 4);
}
