//! A report's memory is bounded by its groups, not by its records: the
//! report's own account of the bytes it holds (sketches, names, index)
//! is the same after 2,000,000 records of 100 groups as after the first
//! 100,000.

use dynostats::report::Metric;
use dynostats::{Record, RecordKind, Report};

#[test]
fn heap_bytes_do_not_grow_with_records() {
    const GROUPS: u64 = 100;
    let mut report = Report::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let names: Vec<dynostats::record::Name> = (0..GROUPS)
        .map(|g| format!("/endpoint/{g}").into())
        .collect();
    let mut record = Record::new(RecordKind::Request, "");
    record.method = Some("GET".into());
    let mut after_warm_up = 0;
    for i in 0..2_000_000u64 {
        let g = i % GROUPS;
        // Every group's first two records carry the extremes of the range,
        // so the buckets span it from the start; the rest fall inside.
        let x = match i / GROUPS {
            0 => 1_000,
            1 => 9_999_999,
            _ => 1_000 + next() % 9_999_000,
        };
        record.name.clone_from(&names[g as usize]);
        record.weight = 1 + next() % 1000;
        record.instructions = Some(x);
        record.cycles = Some(x / 2 + 500);
        record.cpu_ns = Some(x / 10 + 100);
        record.wall_ns = x / 5 + 200;
        record.rss_start = Some(1 << 30);
        record.rss_end = Some((1 << 30) + x / 100);
        report.add(&record);
        if i + 1 == 100_000 {
            after_warm_up = report.heap_bytes();
        }
    }
    let end = report.heap_bytes();
    assert_eq!(report.groups().count() as u64, GROUPS);
    assert_eq!(report.records(), 2_000_000);
    assert_eq!(
        end, after_warm_up,
        "heap grew from {after_warm_up} to {end} bytes between 100,000 and 2,000,000 records"
    );
    // And it is small: well under 64 MB for 100 groups.
    assert!(end < 8 << 20, "{end} bytes");
    let g = report.groups().next().unwrap();
    assert!(!g.sketch(Metric::Instructions).is_exact());
    assert_eq!(g.sampled(), 2_000_000 / GROUPS);
}
