//! `dynostats compare BASE... --against CAND...` through the binary, on
//! files the test writes with the library: the figures it prints equal
//! values computed here, the gate's exit codes and summary, the CPU-time
//! fallback, the disagreement flag, profile functions, the formats, and
//! damaged, empty and foreign inputs handled as `report` handles them.

use dynostats::record::{Detail, ProfileNode};
use dynostats::{Record, RecordKind};

use crate::cli;
use cli::{json, run, text, write};

fn request(name: &str, weight: u64, instructions: Option<u64>, cpu_ns: u64) -> Record {
    let mut r = Record::new(RecordKind::Request, name);
    r.method = Some("GET".into());
    r.status = Some(200);
    r.weight = weight;
    r.instructions = instructions;
    r.cpu_ns = Some(cpu_ns);
    r
}

/// `n` values around `mean`: mean + (i % 11 - 5) * step.
fn values(mean: u64, step: u64, n: u64) -> impl Iterator<Item = u64> {
    (0..n).map(move |i| mean + (i % 11) * step - 5 * step)
}

fn row<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["report"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no row {name}"))
}

fn f(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn mean_var(xs: &[(f64, f64)]) -> (f64, f64) {
    let w: f64 = xs.iter().map(|x| x.1).sum();
    let m = xs.iter().map(|x| x.0 * x.1).sum::<f64>() / w;
    let n = xs.len() as f64;
    let ss: f64 = xs.iter().map(|x| (x.1 * (x.0 - m)).powi(2)).sum();
    (m, ss / (w * w) * n / (n - 1.0))
}

#[test]
fn figures_equal_independent_values_and_the_gate_names_the_offender() {
    let dir = tempfile::tempdir().unwrap();
    let (base, cand) = (dir.path().join("base"), dir.path().join("cand"));
    // /a: 10% more instructions on the candidate; /b: unchanged; weights
    // 10 and 1 mixed.
    let mut b = Vec::new();
    let mut c = Vec::new();
    let mut expected = Vec::new();
    for (name, mean, scale) in [("/a", 100_000u64, 1.10), ("/b", 50_000, 1.0)] {
        let (mut xb, mut xc) = (Vec::new(), Vec::new());
        for (i, v) in values(mean, 1_000, 200).enumerate() {
            let w = if i % 3 == 0 { 10 } else { 1 };
            b.push(request(name, w, Some(v), v / 10));
            xb.push((v as f64, w as f64));
            let vc = (v as f64 * scale) as u64;
            c.push(request(name, w, Some(vc), vc / 10));
            xc.push((vc as f64, w as f64));
        }
        expected.push((name, mean_var(&xb), mean_var(&xc), xb, xc));
    }
    write(&base, &b);
    write(&cand, &c);
    let (base_s, cand_s) = (base.to_str().unwrap(), cand.to_str().unwrap());

    let out = run(&["compare", base_s, "--against", cand_s, "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report = json(&out);
    assert_eq!(report["report"]["metric"], "instructions");
    for (name, (mb, vb), (mc, vc), _, _) in &expected {
        let r = row(&report, &format!("GET {name}"));
        let h = &r["headline"];
        assert!((f(&h["base"]) - mb).abs() < 1e-6 * mb, "{r}");
        assert!((f(&h["candidate"]) - mc).abs() < 1e-6 * mc, "{r}");
        assert!((f(&h["absolute"]) - (mc - mb)).abs() < 1e-6 * mb);
        let rel = mc / mb - 1.0;
        assert!((f(&h["relative"]["estimate"]) - rel).abs() < 1e-9, "{r}");
        // Delta method: se² = (vc + R² vb) / mb²; t with ~130+ degrees of
        // freedom lies between 1.96 and 1.98.
        let se = ((vc + (mc / mb).powi(2) * vb) / (mb * mb)).sqrt();
        let half = (f(&h["relative"]["high"]) - f(&h["relative"]["low"])) / 2.0;
        assert!(half / se > 1.959 && half / se < 1.99, "{half} {se}");
        let events: u64 = (0..200).map(|i| if i % 3 == 0 { 10 } else { 1 }).sum();
        assert_eq!(r["events"][0], events.to_string());
        assert_eq!(r["sampled"], serde_json::json!([200, 200]));
    }
    // Mix-adjusted overall at the base's traffic mix (equal here) equals
    // the event-weighted mean of the per-endpoint means.
    let o = &report["report"]["overall"];
    let wa: f64 = expected[0].3.iter().map(|x| x.1).sum();
    let wb: f64 = expected[1].3.iter().map(|x| x.1).sum();
    let base_mix = (expected[0].1.0 * wa + expected[1].1.0 * wb) / (wa + wb);
    let cand_mix = (expected[0].2.0 * wa + expected[1].2.0 * wb) / (wa + wb);
    assert!((f(&o["mix_adjusted"]["base"]) - base_mix).abs() < 1e-6 * base_mix);
    assert!((f(&o["mix_adjusted"]["candidate"]) - cand_mix).abs() < 1e-6 * cand_mix);
    // Sorted by |change of total cost|: /a first.
    assert_eq!(report["report"]["rows"][0]["name"], "GET /a");
    // Without a gate: what each interval says, and no gate's verdict.
    let (a, b) = (row(&report, "GET /a"), row(&report, "GET /b"));
    assert_eq!(
        (&a["change"], &a["verdict"]),
        (&"slower".into(), &serde_json::Value::Null)
    );
    assert_eq!(b["change"], "no_change");
    assert_eq!(report["report"]["overall"]["change"], "slower");
    let t = text(&run(&["compare", base_s, "--against", cand_s]).stdout);
    let words = |t: &str, name: &str| -> Vec<String> {
        let line = t.lines().find(|l| l.contains(name)).unwrap();
        line.split_whitespace().map(String::from).collect()
    };
    assert_eq!(words(&t, "GET /a").last().unwrap(), "slower", "{t}");
    assert!(
        words(&t, "GET /b").ends_with(&["no".into(), "change".into()]),
        "{t}"
    );
    assert!(!t.contains("pass"), "{t}");
    // With one: the gate's verdict beside the interval's word.
    let gated = run(&[
        "compare",
        base_s,
        "--against",
        cand_s,
        "--fail-above",
        "2%",
        "--json",
    ]);
    let gated = json(&gated);
    assert_eq!(row(&gated, "GET /a")["verdict"], "fail");
    assert_eq!(row(&gated, "GET /a")["change"], "slower");
    assert_eq!(row(&gated, "GET /b")["verdict"], "pass");

    // The gate: /a and the overall figure fail 2%, exit 4, named.
    let out = run(&["compare", base_s, "--against", cand_s, "--fail-above", "2%"]);
    assert_eq!(out.status.code(), Some(4));
    let t = text(&out.stdout);
    let summary = &t[t.find("FAIL:").expect("a summary")..];
    assert!(summary.contains("endpoint GET /a: +10.00%"), "{t}");
    assert!(!summary.contains("GET /b"), "{t}");
    assert!(summary.contains("overall (mix-adjusted)"), "{t}");
    // ... and pass 20%.
    let out = run(&[
        "compare",
        base_s,
        "--against",
        cand_s,
        "--fail-above",
        "20%",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("PASS: no significant regression above 20.00%"));
    // Identical inputs pass.
    let out = run(&["compare", base_s, "--against", base_s, "--fail-above", "1%"]);
    assert_eq!(out.status.code(), Some(0));
    // Too few samples: undecided, listed, exit 5.
    let out = run(&[
        "compare",
        base_s,
        "--against",
        cand_s,
        "--fail-above",
        "2%",
        "--min-samples",
        "500",
    ]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stdout));
    let t = text(&out.stdout);
    assert!(t.contains("UNDECIDED (2):"), "{t}");
    assert!(t.contains("fewer than --min-samples 500"), "{t}");
    // CSV: a header and one line per row, then the overall figure.
    let out = run(&["compare", base_s, "--against", cand_s, "--format", "csv"]);
    let t = text(&out.stdout);
    let lines: Vec<&str> = t.lines().collect();
    assert!(lines[0].starts_with("kind,name,metric,"));
    assert!(lines[1].starts_with("endpoint,GET /a,instructions,200,200,803,803,"));
    assert!(lines[3].starts_with("overall,mix-adjusted,"));
    assert_eq!(lines.len(), 4);
}

#[test]
fn without_instructions_cpu_time_is_used_and_labelled_and_disagreement_is_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let (base, cand) = (dir.path().join("base"), dir.path().join("cand"));
    let b: Vec<Record> = values(10_000, 100, 100)
        .map(|v| request("/x", 1, None, v))
        .collect();
    let c: Vec<Record> = values(11_000, 100, 100)
        .map(|v| request("/x", 1, None, v))
        .collect();
    write(&base, &b);
    write(&cand, &c);
    let (base_s, cand_s) = (base.to_str().unwrap(), cand.to_str().unwrap());
    let out = run(&["compare", base_s, "--against", cand_s]);
    let t = text(&out.stdout);
    assert!(
        t.starts_with("metric: CPU time (cpu_ns): no record carries instructions"),
        "{t}"
    );
    let expected = {
        let mb = b.iter().map(|r| r.cpu_ns.unwrap() as f64).sum::<f64>();
        let mc = c.iter().map(|r| r.cpu_ns.unwrap() as f64).sum::<f64>();
        format!("{:+.2}%", (mc / mb - 1.0) * 100.0)
    };
    assert!(t.contains(&expected), "{expected} in {t}");

    // Instructions flat, CPU time up 10%: flagged.
    let b: Vec<Record> = values(10_000, 100, 100)
        .map(|v| request("/y", 1, Some(v * 10), v))
        .collect();
    let c: Vec<Record> = values(10_000, 100, 100)
        .map(|v| request("/y", 1, Some(v * 10), v * 11 / 10))
        .collect();
    write(&base, &b);
    write(&cand, &c);
    let out = run(&["compare", base_s, "--against", cand_s, "--json"]);
    let report = json(&out);
    let r = row(&report, "GET /y");
    assert_eq!(r["disagree"], true, "{r}");
    assert_eq!(r["headline"]["metric"], "instructions");
    let t = text(&run(&["compare", base_s, "--against", cand_s]).stdout);
    assert!(t.contains("DISAGREE"), "{t}");
}

#[test]
fn profile_records_give_function_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (base, cand) = (dir.path().join("base"), dir.path().join("cand"));
    let profile = |parse: i64| {
        let mut r = Record::new(RecordKind::Profile, "/p");
        r.method = Some("GET".into());
        r.wall_ns = 0;
        let mut detail = Detail::default();
        detail.timer = Some("instructions".into());
        let mut nodes = Vec::new();
        for (name, parent, inclusive, recursive) in [
            ("/p", None, 10_000 + parse, false),
            ("parse", Some(0), parse, false),
            ("parse", Some(1), parse / 2, true),
            ("render", Some(0), 4_000, false),
        ] {
            let mut n = ProfileNode::default();
            n.name = name.into();
            n.parent = parent;
            n.calls = 1;
            n.inclusive = inclusive;
            n.exclusive = inclusive;
            n.recursive = recursive;
            nodes.push(n);
        }
        detail.nodes = nodes;
        r.detail = Some(Box::new(detail));
        r
    };
    let b: Vec<Record> = (0..50).map(|i| profile(1_000 + i % 5)).collect();
    let c: Vec<Record> = (0..50).map(|i| profile(1_500 + i % 5)).collect();
    write(&base, &b);
    write(&cand, &c);
    let out = run(&[
        "compare",
        base.to_str().unwrap(),
        "--against",
        cand.to_str().unwrap(),
        "--json",
    ]);
    let report = json(&out);
    let parse = row(&report, "parse");
    assert_eq!(parse["kind"], "function");
    // Recursion counted once: 1002 per record, not 1002 + 501.
    assert_eq!(f(&parse["headline"]["base"]), 1_002.0);
    assert_eq!(f(&parse["headline"]["candidate"]), 1_502.0);
    let render = row(&report, "render");
    assert_eq!(f(&render["headline"]["relative"]["estimate"]), 0.0);
}

/// A file of 40 requests of `/a` in `dir`.
fn forty_requests(dir: &std::path::Path) -> std::path::PathBuf {
    let good = dir.join("good");
    let records: Vec<Record> = values(1_000, 10, 40)
        .map(|v| request("/a", 1, Some(v), v))
        .collect();
    write(&good, &records);
    good
}

#[test]
fn damaged_empty_missing_and_foreign_inputs_behave_as_in_report() {
    let dir = tempfile::tempdir().unwrap();
    let good = forty_requests(dir.path());
    let good_s = good.to_str().unwrap();
    let cut = dir.path().join("cut");
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() - 3]).unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let foreign = dir.path().join("foreign");
    std::fs::write(&foreign, b"{\"this is\": \"json, not msgpack\"}\n").unwrap();
    let missing = dir.path().join("missing");
    for (bad, expected) in [(&cut, 3), (&empty, 0), (&foreign, 3), (&missing, 1)] {
        let bad_s = bad.to_str().unwrap();
        let report = run(&["report", bad_s]);
        let compare = run(&["compare", good_s, "--against", bad_s]);
        let series = run(&["timeseries", bad_s, "--window", "1m"]);
        assert_eq!(report.status.code(), Some(expected), "report {bad_s}");
        assert_eq!(
            compare.status.code(),
            report.status.code(),
            "compare {bad_s}"
        );
        assert_eq!(
            series.status.code(),
            report.status.code(),
            "timeseries {bad_s}"
        );
        // The same sentence on stderr.
        let said = text(&report.stderr);
        assert!(!said.is_empty(), "report says nothing about {bad_s}");
        assert_eq!(text(&compare.stderr), said, "compare {bad_s}");
        assert_eq!(text(&series.stderr), said, "timeseries {bad_s}");
        if bad == &cut {
            assert!(text(&compare.stdout).contains("INCOMPLETE:"));
        }
    }
}

#[test]
fn shares_follow_one_rule_and_bounds_are_refused_not_changed() {
    let dir = tempfile::tempdir().unwrap();
    let good = forty_requests(dir.path());
    let g = good.to_str().unwrap();
    let compare = |extra: &[&str]| {
        let mut args = vec!["compare", g, "--against", g];
        args.extend_from_slice(extra);
        run(&args)
    };
    // `2%` and `0.02` are the same threshold, as `99%` and `0.99` are the
    // same confidence.
    for args in [
        ["--fail-above", "2%", "--confidence", "99%"],
        ["--fail-above", "0.02", "--confidence", "0.99"],
    ] {
        let out = compare(&args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let t = text(&out.stdout);
        assert!(
            t.contains("PASS: no significant regression above 2.00%"),
            "{t}"
        );
        assert!(t.contains("99% intervals"), "{t}");
    }
    // A bare number of 1 or more is ambiguous: refused, saying how to
    // write it.
    for args in [["--fail-above", "2"], ["--confidence", "95"]] {
        let out = compare(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).contains("ambiguous"),
            "{}",
            text(&out.stderr)
        );
    }
    // Bounds that used to be changed silently are refused.
    assert_eq!(compare(&["--min-samples", "1"]).status.code(), Some(2));
    let series = run(&["timeseries", g, "--baseline", "0"]);
    assert_eq!(series.status.code(), Some(2));
    let series = run(&["timeseries", g, "--min-samples", "1"]);
    assert_eq!(series.status.code(), Some(2));
}

#[test]
fn a_gate_with_nothing_to_judge_is_undecided() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let e = empty.to_str().unwrap();
    let out = run(&["compare", e, "--against", e, "--fail-above", "2%"]);
    assert_eq!(out.status.code(), Some(5));
    let t = text(&out.stdout);
    assert!(
        t.contains("UNDECIDED: the gate had nothing to judge"),
        "{t}"
    );
    assert!(!t.contains("PASS"), "{t}");
    // Without a gate there is nothing to decide: exit 0.
    let out = run(&["compare", e, "--against", e]);
    assert_eq!(out.status.code(), Some(0));
}
