//! Sums beyond 64 bits: `top`, `flamegraph` and `report` on hostile
//! amounts (weights, calls and amounts near 2^64, whose sums exceed even
//! 128 bits) and on merely huge ones (10,000 profile records of weight
//! 1,000,000 and 2e9 instructions: 2e19, beyond `u64`). Every figure is
//! exact or saturates visibly, never wraps; the flame graph is drawn with
//! its amounts scaled down, and says so. Run in the debug build too, where
//! an overflow in inferno's sums panics.

use std::fs;

use dynostats::{Record, RecordKind};
use serde_json::Value;

use crate::cli;
use crate::flamegraph::frames;
use cli::{json, profile, run, text, write};

/// 100 records of weight `u64::MAX`: the root and a scope with calls
/// `u64::MAX` and amounts `i64::MAX`, two thirds of it in `work`.
fn hostile() -> Vec<Record> {
    let third = i64::MAX / 3;
    (0..100)
        .map(|_| {
            profile(
                "/hostile",
                u64::MAX,
                "instructions",
                0,
                &[
                    ("/hostile", None, u64::MAX, i64::MAX, i64::MAX - 2 * third),
                    ("work", Some(0), u64::MAX, 2 * third, 2 * third),
                ],
            )
        })
        .collect()
}

/// 10,000 records of weight 1,000,000, each 2e9 instructions: 1.5e9 in
/// `work`, 0.5e9 in the endpoint itself. Totals 2e19, beyond `u64`.
fn huge() -> Vec<Record> {
    (0..10_000)
        .map(|_| {
            profile(
                "/huge",
                1_000_000,
                "instructions",
                0,
                &[
                    ("/huge", None, 1, 2_000_000_000, 500_000_000),
                    ("work", Some(0), 3, 1_500_000_000, 1_500_000_000),
                ],
            )
        })
        .collect()
}

/// A JSON integer (a number, or a string of digits beyond 2^53).
fn int(v: &Value) -> i128 {
    match v {
        Value::String(s) => s.parse().unwrap_or_else(|_| panic!("{v}")),
        _ => i128::from(v.as_i64().unwrap_or_else(|| panic!("{v}"))),
    }
}

fn uint(v: &Value) -> u128 {
    match v {
        Value::String(s) => s.parse().unwrap_or_else(|_| panic!("{v}")),
        _ => u128::from(v.as_u64().unwrap_or_else(|| panic!("{v}"))),
    }
}

#[test]
fn top_on_hostile_sums_saturates_visibly_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.msgpack");
    write(&path, &hostile());
    let path = path.to_str().unwrap();

    let out = run(&["top", "--json", path]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let j = json(&out);
    let top = &j["top"];
    assert_eq!(top["saturated"], true, "{top}");
    assert!(int(&top["total"]) > 0, "{top}");
    assert_eq!(int(&top["total"]), i128::MAX);
    let rows = top["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{top}");
    for r in rows {
        assert_eq!(r["saturated"], true, "{r}");
        assert_eq!(uint(&r["calls"]), u128::MAX, "{r}");
        assert!(int(&r["inclusive"]) > 0, "{r}");
        assert!(int(&r["exclusive"]) > 0, "{r}");
        for share in ["inclusive_share", "exclusive_share"] {
            let x = r[share].as_f64().unwrap();
            assert!((0.0..=100.0).contains(&x), "{share} {x}: {r}");
        }
        assert!(r["calls_per_request"].as_f64().unwrap() >= 0.0, "{r}");
        assert!(r["per_call"].as_f64().unwrap() >= 0.0, "{r}");
    }

    let out = run(&["top", path]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(
        table.contains("WARNING: sums reached the bounds"),
        "{table}"
    );
    assert!(table.contains("work (saturated)"), "{table}");
    // No negative figure in a row.
    for line in table
        .lines()
        .filter(|l| l.contains("(saturated)") && !l.starts_with("WARNING"))
    {
        assert!(!line.contains('-'), "{line}");
    }

    let out = run(&["top", "--format", "csv", path]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let csv = text(&out.stdout);
    let work = csv.lines().find(|l| l.contains(",work,")).expect(&csv);
    let cells: Vec<&str> = work.split(',').collect();
    // calls, inclusive, exclusive: bounds, marked as report's table marks them.
    assert_eq!(cells[3], format!(">={}", u128::MAX), "{work}");
    assert!(
        cells[4].starts_with(">=") && cells[6].starts_with(">="),
        "{work}"
    );
    assert!(!work.contains(",-"), "{work}");
}

#[test]
fn top_on_huge_sums_is_exact_and_unflagged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.msgpack");
    write(&path, &huge());
    let path = path.to_str().unwrap();

    let out = run(&["top", "--json", path]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let top = &json(&out)["top"];
    assert_eq!(top["saturated"], Value::Null, "{top}");
    assert_eq!(int(&top["total"]), 20_000_000_000_000_000_000);
    let rows = top["rows"].as_array().unwrap();
    let work = rows.iter().find(|r| r["name"] == "work").unwrap();
    assert_eq!(int(&work["exclusive"]), 15_000_000_000_000_000_000);
    assert_eq!(uint(&work["calls"]), 30_000_000_000);
    assert_eq!(work["exclusive_share"].as_f64().unwrap(), 75.0);
    assert_eq!(work["calls_per_request"].as_f64().unwrap(), 3.0);
    assert_eq!(work["saturated"], Value::Null);
}

/// Draws `records` and checks the SVG: exit 0, said scaled, the root
/// spans the image, `work` spans `work_share` of it, no width outside
/// 0..=100%.
fn draws_sanely(records: &[Record], work_share: f64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.msgpack");
    write(&path, records);
    let svg_path = dir.path().join("out.svg");
    let out = run(&[
        "flamegraph",
        "-o",
        svg_path.to_str().unwrap(),
        path.to_str().unwrap(),
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("amounts divided by 10^"), "{stderr}");
    let svg = fs::read_to_string(&svg_path).unwrap();
    assert!(
        svg.contains("amounts in units of 10^"),
        "the subtitle says so"
    );
    let frames = frames(&svg);
    for (name, width) in &frames {
        assert!((0.0..=100.0).contains(width), "{name}: {width}%");
    }
    let width = |n: &str| frames.iter().find(|(f, _)| f == n).expect(n).1;
    assert!(
        (width("all endpoints and regions") - 100.0).abs() < 0.01,
        "{frames:?}"
    );
    assert!(
        (width("work") - work_share).abs() < 0.1,
        "work: {frames:?}, want {work_share}%"
    );
}

#[test]
fn flamegraph_of_huge_sums_is_drawn_scaled() {
    let records = huge();
    draws_sanely(&records, 75.0);

    // --folded: exact below the limit would be unchanged; here scaled by
    // one power of ten, said on stderr, the amounts summing below 2^53.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.msgpack");
    write(&path, &records);
    let out = run(&["flamegraph", "--folded", path.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("folded amounts divided by 10^4 (rounded down)"),
        "{stderr}"
    );
    assert_eq!(
        text(&out.stdout),
        "/huge 500000000000000\n/huge;work 1500000000000000\n"
    );
}

#[test]
fn a_differential_flamegraph_of_huge_sums_scales_both_sides_alike() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.msgpack");
    write(&path, &huge());
    let small = dir.path().join("small.msgpack");
    write(&small, &huge()[..1]);
    let (path, small) = (path.to_str().unwrap(), small.to_str().unwrap());
    // The base (1 record: 2e15) fits; the candidate does not: one scale.
    let out = run(&["flamegraph", "--folded", "--diff", small, "--", path]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("divided by 10^4"), "{stderr}");
    // Differential stacks are written sorted.
    let mut lines: Vec<String> = text(&out.stdout).lines().map(String::from).collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "/huge 50000000000 500000000000000",
            "/huge;work 150000000000 1500000000000000"
        ]
    );
    let svg = dir.path().join("diff.svg");
    let out = run(&[
        "flamegraph",
        "-o",
        svg.to_str().unwrap(),
        "--diff",
        small,
        "--",
        path,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for (name, width) in frames(&fs::read_to_string(&svg).unwrap()) {
        assert!((0.0..=100.0).contains(&width), "{name}: {width}%");
    }
}

#[test]
fn flamegraph_of_hostile_sums_is_drawn_scaled_and_flagged() {
    let records: Vec<Record> = hostile()
        .into_iter()
        .map(|r| {
            // Named like the huge ones' root, so one check fits both.
            let mut r = r;
            r.name = "/hostile".into();
            r
        })
        .collect();
    // Both paths saturate at i128::MAX: each is half of what is drawn.
    draws_sanely(&records, 50.0);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.msgpack");
    write(&path, &records);
    let out = run(&["flamegraph", "--folded", path.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("saturated"), "{stderr}");
    let sum: u128 = text(&out.stdout)
        .lines()
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u128>().unwrap())
        .sum();
    assert!(sum > 0 && sum < 1 << 53, "{sum}");
}

#[test]
fn report_marks_a_mean_computed_from_a_saturated_total() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("heavy.msgpack");
    let records: Vec<Record> = (0..3)
        .map(|_| {
            let mut r = Record::new(RecordKind::Request, "heavy");
            r.weight = u64::MAX;
            r.instructions = Some(u64::MAX);
            r
        })
        .collect();
    write(&path, &records);
    let path = path.to_str().unwrap();

    let out = run(&["report", path]);
    let table = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let row = table.lines().find(|l| l.contains("heavy")).expect(&table);
    // The total and its mean per event are both lower bounds.
    assert_eq!(row.matches(">=").count(), 2, "{row}");

    let out = run(&["report", "--json", path]);
    let j = json(&out);
    let s = &j["report"]["groups"][0]["metrics"]["instructions"];
    assert_eq!(s["saturated"], true, "{s}");
    assert_eq!(s["mean_per_event_bound"], "lower", "{s}");
    // Unsaturated metrics say nothing more.
    assert_eq!(
        j["report"]["groups"][0]["metrics"]["cpu_ns"]["mean_per_event_bound"],
        Value::Null
    );

    let out = run(&["report", "--format", "csv", path]);
    let csv = text(&out.stdout);
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let row: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
    let at = |h: &str| header.iter().position(|x| *x == h).expect(h);
    assert_eq!(
        row[at("instructions_total")],
        format!(">={}", i128::MAX),
        "{csv}"
    );
    assert!(
        row[at("instructions_mean_per_event")].starts_with(">="),
        "{csv}"
    );
}
