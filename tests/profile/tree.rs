//! A synthetic call tree with known CPU time in every node: the profile
//! record's inclusive and exclusive amounts are in the right proportions,
//! the exclusive amounts add up to the region's total, call counts are
//! exact, and the region and profile records share an id.
//!
//! The timer is thread CPU time (this host has no PMU); each node burns a
//! known amount of its thread's CPU time, so the figures do not depend on
//! the machine's load. `tests/pmu.rs` asserts exact instruction figures for
//! the same shape in the emulated-PMU guest.

use crate::common;

use dynostats::profile::{self, CallTree, ProfileConfig, Timer};
use dynostats::sink::MemorySink;
use dynostats::{Pipeline, Record, RecordKind, Region};

/// CPU time per unit of work.
const UNIT: u64 = 2_000_000;

fn work(units: u64) {
    common::burn_cpu_ns(units * UNIT);
}

/// `request` { `a` (1) { `b` (2), `c` (3) { `b` (4) } } x 2, `d` (5) } plus
/// 1 unit in the request itself.
fn tree() {
    work(1);
    for _ in 0..2 {
        let _a = dynostats::scope("a");
        work(1);
        dynostats::scope_fn("b", || work(2));
        let _c = dynostats::scope("c");
        work(3);
        dynostats::scope_fn("b", || work(4));
    }
    dynostats::scope_fn("d", || work(5));
}

fn records() -> (Record, Record) {
    let mem = MemorySink::new();
    let pipeline = Pipeline::builder()
        .sink(mem.clone())
        .status_interval(None)
        .build()
        .unwrap();
    pipeline.in_scope(|| Region::forced("request").run(tree));
    pipeline.flush().unwrap();
    let region = mem.records_of(RecordKind::Region).pop().unwrap();
    let profile = mem.records_of(RecordKind::Profile).pop().unwrap();
    (region, profile)
}

#[test]
fn a_known_tree_gives_its_proportions_exact_calls_and_sums_to_the_total() {
    let _profiler = crate::hold_profiler();
    profile::configure(ProfileConfig::builder().timer(Timer::CpuTime).build());
    let (region, profile) = records();

    // Linked, and in the region's unit.
    assert!(region.id.is_some());
    assert_eq!(region.id, profile.id);
    let detail = profile.detail.as_ref().unwrap();
    assert_eq!(detail.timer.as_deref(), Some("cpu_ns"));
    assert_eq!(detail.timer_requested, None);
    let total = region.cpu_ns.unwrap() as i64;
    assert_eq!(detail.total, Some(total));
    assert_eq!(profile.weight, region.weight);
    assert!(profile.forced);

    let tree = CallTree::from_record(&profile).unwrap();
    let root = tree.root();
    assert_eq!(
        (root.name.as_str(), root.calls, root.inclusive),
        ("request", 1, total)
    );
    // Exclusive amounts of all nodes plus the profiler's own: the total,
    // exactly.
    let exclusive: i64 = tree.nodes().iter().map(|n| n.exclusive).sum();
    assert_eq!(exclusive + tree.overhead(), total);
    // Inclusive = exclusive + children's inclusive, node by node.
    for (i, n) in tree.nodes().iter().enumerate().skip(1) {
        let children: i64 = tree
            .nodes()
            .iter()
            .filter(|c| c.parent == Some(i as u32))
            .map(|c| c.inclusive)
            .sum();
        assert_eq!(n.inclusive, n.exclusive + children, "{n:?}");
    }

    // Per path: calls, and exclusive / inclusive units of work. The
    // figures hold at least the work burnt (CPU time is not stolen by
    // load) and little more: the profiler's reads are taken off.
    let slack = UNIT as i64 / 4;
    for (path, calls, exclusive_units, inclusive_units) in [
        (&["a"][..], 2, 2, 2 * (1 + 2 + 3 + 4)),
        (&["a", "b"][..], 2, 2 * 2, 2 * 2),
        (&["a", "c"][..], 2, 2 * 3, 2 * (3 + 4)),
        (&["a", "c", "b"][..], 2, 2 * 4, 2 * 4),
        (&["d"][..], 1, 5, 5),
    ] {
        let n = tree
            .find(path)
            .unwrap_or_else(|| panic!("{path:?} in {tree:?}"));
        assert_eq!(n.calls, calls, "{path:?}");
        let (e, i) = (exclusive_units * UNIT as i64, inclusive_units * UNIT as i64);
        assert!(
            n.exclusive >= e - slack && n.exclusive <= e + slack * calls as i64,
            "{path:?}: exclusive {} for {e}",
            n.exclusive
        );
        assert!(
            n.inclusive >= i - slack && n.inclusive <= i + 2 * slack * calls as i64,
            "{path:?}: inclusive {} for {i}",
            n.inclusive
        );
    }
    // The root's own: its 1 unit, plus the record's and the region's setup.
    assert!(root.exclusive >= UNIT as i64 - slack, "{root:?}");
    assert!(root.exclusive <= 2 * UNIT as i64, "{root:?}");
    assert!(
        tree.overhead() >= 0 && tree.overhead() < slack,
        "{}",
        tree.overhead()
    );
    assert_eq!(detail.stats.get("scopes"), Some(&9));

    // Per name, `b` on two paths.
    let b = tree.by_name().into_iter().find(|t| t.name == "b").unwrap();
    assert_eq!(b.calls, 4);
    assert_eq!(
        b.inclusive,
        tree.find(&["a", "b"]).unwrap().inclusive + tree.find(&["a", "c", "b"]).unwrap().inclusive
    );
    // The heaviest exclusive name is b (2x2 + 2x4 units).
    assert_eq!(tree.by_name()[0].name, "b");
    assert!(tree.folded().contains("request;a;c;b "));
}
