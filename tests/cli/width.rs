//! Tables fitted to the terminal: `report` and `compare` of a realistic
//! file (long route templates, regions, profiled functions, every
//! counter) at `COLUMNS=100`, and `top` at 60: every line fits, and every
//! figure of the unfitted table is still there, whole; colour only when
//! asked for.

use std::collections::HashMap;
use std::path::Path;

use dynostats::{Record, RecordKind};

use crate::cli::{self, command, json, text};
use crate::rng::Rng;

const ROUTES: [(&str, &str, f64); 8] = [
    (
        "GET",
        "/api/v1/organisations/{org_id}/projects/{project_id}/members",
        2.0e6,
    ),
    ("POST", "/api/v1/organisations/{org_id}/projects", 5.0e6),
    ("GET", "/api/v1/users/{id}", 4.0e5),
    ("GET", "/api/v1/users/{id}/notifications/unread", 9.0e5),
    ("PUT", "/api/v1/users/{id}/preferences", 6.5e5),
    ("GET", "/healthz", 2.0e4),
    ("GET", "/api/v1/search", 1.2e7),
    ("DELETE", "/api/v1/sessions/{session_id}", 3.0e5),
];

/// A side of a service: eight endpoints, two regions, profile records;
/// instructions, cycles, CPU and wall time, RSS; weights 10 and 100;
/// now and then a cancelled or failed request. `scale` multiplies the
/// cost of endpoint i.
fn service(path: &Path, rng: &mut Rng, scale: [f64; 8]) {
    let mut records = Vec::new();
    for (i, &(method, route, mean)) in ROUTES.iter().enumerate() {
        for n in 0..120 {
            let mut r = Record::new(RecordKind::Request, route);
            r.method = Some(method.into());
            r.weight = if n % 4 == 0 { 100 } else { 10 };
            let instructions = (mean * scale[i] * (1.0 + 0.2 * rng.normal())).max(1.0);
            r.instructions = Some(instructions as u64);
            r.cycles = Some((instructions * 1.3) as u64);
            r.cpu_ns = Some((instructions / 3.0) as u64);
            r.wall_ns = (instructions / 2.0) as u64;
            r.rss_start = Some(64 << 20);
            r.rss_end = Some((64 << 20) + rng.below(1 << 16));
            r.status = Some(if rng.below(40) == 0 { 503 } else { 200 });
            r.cancelled = rng.below(100) == 0;
            records.push(r);
        }
    }
    for (region, mean) in [("db::query_planner::optimise", 3.0e5), ("render", 8.0e4)] {
        for _ in 0..60 {
            let mut r = Record::new(RecordKind::Region, region);
            r.instructions = Some((mean * (1.0 + 0.2 * rng.normal())) as u64);
            r.cpu_ns = Some(r.instructions.unwrap() / 3);
            records.push(r);
        }
    }
    for _ in 0..40 {
        let hash = 400_000 + rng.below(20_000) as i64;
        records.push(cli::profile(
            "/api/v1/search",
            10,
            "instructions",
            100,
            &[
                ("search::handler", None, 1, hash + 300_000, 100_000),
                (
                    "search::rank_documents_by_relevance",
                    Some(0),
                    3,
                    hash + 200_000,
                    200_000,
                ),
                ("compute::hash", Some(1), 40, hash, hash),
            ],
        ));
    }
    cli::write(path, &records);
}

fn run_at(columns: Option<&str>, args: &[&str]) -> String {
    let mut c = command(args);
    if let Some(columns) = columns {
        c.env("COLUMNS", columns);
    }
    let out = c.output().unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 4 | 5)),
        "{}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The figures of a text answer: the words made of digits and the signs,
/// units and brackets of numbers, counted (names hold letters or `/`).
fn figures(t: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for word in t.split_whitespace() {
        if word.chars().any(|c| c.is_ascii_digit())
            && word.chars().all(|c| "0123456789.,+-%[]kMGT".contains(c))
        {
            *counts.entry(word.to_string()).or_default() += 1;
        }
    }
    counts
}

/// Every line at most `columns` wide, and every figure of `whole` (the
/// same answer without a width) in `fitted`, as often; `whole` has more
/// than `least` distinct figures.
fn fits_and_keeps_figures(whole: &str, fitted: &str, columns: usize, least: usize) {
    for line in fitted.lines() {
        assert!(
            line.chars().count() <= columns,
            "{} columns: {line:?}\n{fitted}",
            line.chars().count()
        );
    }
    assert!(
        whole.lines().any(|l| l.chars().count() > columns),
        "the test needs a table wider than {columns} columns:\n{whole}"
    );
    let (all, kept) = (figures(whole), figures(fitted));
    assert!(all.len() > least, "{all:?}");
    for (figure, n) in &all {
        let k = kept.get(figure).copied().unwrap_or(0);
        assert!(
            k >= *n,
            "{figure} {n} times unfitted, {k} fitted:\n{fitted}"
        );
    }
}

#[test]
fn report_and_compare_fit_100_columns_with_every_figure() {
    let dir = tempfile::tempdir().unwrap();
    let (base, cand) = (dir.path().join("base"), dir.path().join("cand"));
    let mut rng = Rng(42);
    service(&base, &mut rng, [1.0; 8]);
    service(&cand, &mut rng, [1.0, 1.3, 1.0, 0.8, 1.0, 1.0, 1.05, 1.0]);
    let (b, c) = (base.to_str().unwrap(), cand.to_str().unwrap());

    let report = ["report", b];
    let whole = run_at(None, &report);
    let fitted = run_at(Some("100"), &report);
    fits_and_keeps_figures(&whole, &fitted, 100, 50);
    // Each group's sampled records and events (from the JSON) are in a
    // line of its kind.
    let j = json(&command(&["report", "--json", b]).output().unwrap());
    for g in j["report"]["groups"].as_array().unwrap() {
        let (sampled, events) = (g["sampled"].to_string(), g["events"].to_string());
        let kind = g["kind"].as_str().unwrap();
        assert!(
            fitted.lines().any(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                l.starts_with(kind)
                    && words.contains(&sampled.as_str())
                    && words.contains(&events.as_str())
            }),
            "{g}\n{fitted}"
        );
    }
    // Columns 0 in every row are left out, and said so; --all-columns
    // shows them.
    let not_shown = fitted
        .lines()
        .find(|l| l.starts_with("not shown, 0 or none in every row: "))
        .unwrap_or_else(|| panic!("{fitted}"));
    assert!(not_shown.contains("forced"), "{not_shown}");
    let headers = |t: &str| -> String {
        t.lines()
            .filter(|l| l.starts_with("kind "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(!headers(&fitted).contains("forced"), "{fitted}");
    let all = run_at(None, &["report", "--all-columns", b]);
    assert!(headers(&all).contains("forced"), "{all}");

    let compare = ["compare", b, "--against", c];
    let whole = run_at(None, &compare);
    let fitted = run_at(Some("100"), &compare);
    fits_and_keeps_figures(&whole, &fitted, 100, 50);
    // Each row's interval, formatted here from the JSON, is in the table
    // once, with its verdict in the same line.
    let j = json(
        &command(&["compare", "--json", b, "--against", c])
            .output()
            .unwrap(),
    );
    for r in j["report"]["rows"].as_array().unwrap() {
        let i = &r["headline"]["relative"];
        let interval = format!(
            "[{:+.2}%, {:+.2}%]",
            i["low"].as_f64().unwrap() * 100.0,
            i["high"].as_f64().unwrap() * 100.0
        );
        let word = r["change"].as_str().unwrap().replace('_', " ");
        let lines: Vec<&str> = fitted.lines().filter(|l| l.contains(&interval)).collect();
        assert_eq!(lines.len(), 1, "{interval}\n{fitted}");
        assert!(lines[0].contains(&word), "{word}: {}", lines[0]);
    }
    // At 60 columns too, with the summary lines wrapped.
    let narrow = run_at(
        Some("60"),
        &["compare", b, "--against", c, "--fail-above", "5%"],
    );
    let gated = run_at(None, &["compare", b, "--against", c, "--fail-above", "5%"]);
    fits_and_keeps_figures(&gated, &narrow, 60, 50);
    assert!(narrow.contains("FAIL:"), "{narrow}");
}

#[test]
fn top_fits_60_columns_with_every_figure() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records");
    service(&path, &mut Rng(3), [1.0; 8]);
    let p = path.to_str().unwrap();
    for (args, least) in [
        (&["top", "--fleet", "4000", p][..], 8),
        (&["top", "--callees", "search::handler", p], 4),
    ] {
        let whole = run_at(None, args);
        let fitted = run_at(Some("60"), args);
        fits_and_keeps_figures(&whole, &fitted, 60, least);
        // Every scope keeps a row, its name whole where it fits or cut
        // with `…`, in each block.
        let blocks = fitted.split("\n\n").count();
        assert!(blocks >= 2, "{fitted}");
        let whole_rows = whole
            .lines()
            .skip_while(|l| !l.starts_with("name "))
            .skip(1)
            .count();
        let fitted_rows = fitted
            .lines()
            .filter(|l| !l.starts_with("top ") && !l.starts_with(' '))
            .filter(|l| l.contains("::") || l.contains("(own)"))
            .count();
        assert_eq!(fitted_rows, whole_rows * blocks, "{whole}\n{fitted}");
    }
}

#[test]
fn colour_only_when_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let (base, cand) = (dir.path().join("base"), dir.path().join("cand"));
    let mut rng = Rng(7);
    service(&base, &mut rng, [1.0; 8]);
    service(&cand, &mut rng, [1.0, 1.3, 1.0, 0.8, 1.0, 1.0, 1.0, 1.0]);
    let (b, c) = (base.to_str().unwrap(), cand.to_str().unwrap());
    // Piped (as here): no colour, whatever NO_COLOR says.
    let plain = run_at(None, &["compare", b, "--against", c]);
    assert!(
        plain.contains("slower") && plain.contains("faster"),
        "{plain}"
    );
    assert!(!plain.contains('\x1b'), "{plain:?}");
    // --color always: slower red, faster green, the gate's FAIL bold red.
    let coloured = run_at(None, &["compare", b, "--against", c, "--color", "always"]);
    assert!(coloured.contains("\x1b[31mslower\x1b[0m"), "{coloured:?}");
    assert!(coloured.contains("\x1b[32mfaster\x1b[0m"), "{coloured:?}");
    let gated = run_at(
        None,
        &[
            "compare",
            b,
            "--against",
            c,
            "--fail-above",
            "5%",
            "--color",
            "always",
        ],
    );
    assert!(gated.contains("\x1b[1;31mFAIL\x1b[0m"), "{gated:?}");
    // JSON never has colour.
    let j = run_at(
        None,
        &["compare", "--json", b, "--against", c, "--color", "always"],
    );
    assert!(!j.contains('\x1b'));
}
