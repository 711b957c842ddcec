//! `dynostats flamegraph`: a known call tree written with the library,
//! drawn by the binary; the SVG parses as XML and holds every scope with
//! a width proportional to its weighted inclusive amount; the folded
//! stacks (plain, per endpoint, differential) equal the stacks computed
//! here from the nodes; damaged, empty and foreign inputs behave as in
//! `dynostats report`.

use std::collections::BTreeMap;
use std::fs;
use std::process::Output;

use dynostats::Record;

use crate::cli;
use cli::{profile, run, text, write};

/// `scale` multiplies `tax`'s amounts under `price` (a regression there).
fn known(scale: i64) -> Vec<Record> {
    let tax = 300 * scale;
    vec![
        profile(
            "/checkout",
            10,
            "instructions",
            50,
            &[
                ("/checkout", None, 1, 700 + tax, 100),
                ("price", Some(0), 2, 300 + tax, 200),
                ("tax", Some(1), 3, tax, tax),
                ("fib", Some(1), 1, 100, 40),
                ("fib", Some(3), 1, 60, 60),
                ("tax", Some(0), 1, 250, 250),
            ],
        ),
        profile(
            "/search",
            5,
            "instructions",
            0,
            &[
                ("/search", None, 1, 400, 100),
                ("tax", Some(0), 2, 300, 300),
            ],
        ),
    ]
}

/// inferno's SVG carries the SVG 1.1 DOCTYPE: parse with the DTD allowed.
fn parse(svg: &str) -> roxmltree::Document<'_> {
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    roxmltree::Document::parse_with_options(svg, options).expect("the SVG is XML")
}

/// Per full path from the root: (weighted exclusive, weighted inclusive),
/// computed from the nodes.
fn paths(records: &[Record]) -> BTreeMap<Vec<String>, (i64, i64)> {
    let mut paths: BTreeMap<Vec<String>, (i64, i64)> = BTreeMap::new();
    for r in records {
        let nodes = &r.detail.as_ref().unwrap().nodes;
        for (i, n) in nodes.iter().enumerate() {
            let mut path = vec![n.name.clone()];
            let mut at = n.parent;
            while let Some(p) = at {
                path.push(nodes[p as usize].name.clone());
                at = nodes[p as usize].parent;
            }
            path.reverse();
            let e = paths.entry(path).or_default();
            e.0 += r.weight as i64 * n.exclusive;
            e.1 += r.weight as i64 * n.inclusive;
            let _ = i;
        }
    }
    paths
}

fn folded(paths: &BTreeMap<Vec<String>, (i64, i64)>) -> String {
    paths
        .iter()
        .filter(|(_, (exclusive, _))| *exclusive > 0)
        .map(|(path, (exclusive, _))| format!("{} {exclusive}\n", path.join(";")))
        .collect()
}

#[test]
fn folded_output_equals_the_expected_stacks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("known.msgpack");
    let records = known(1);
    write(&path, &records);
    let path = path.to_str().unwrap();
    let want = folded(&paths(&records));
    assert!(want.contains("/checkout;price;fib;fib 600\n"), "{want}");

    let out = run(&["flamegraph", "--folded", path]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), want);

    // To a file with -o, the same bytes.
    let file = dir.path().join("out.folded");
    let out = run(&["flamegraph", "--folded", "-o", file.to_str().unwrap(), path]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(fs::read_to_string(&file).unwrap(), want);

    // One endpoint only.
    let search: Vec<Record> = records
        .iter()
        .filter(|r| r.name == "/search")
        .cloned()
        .collect();
    let out = run(&["flamegraph", "--folded", "--endpoint", "/search", path]);
    assert_eq!(text(&out.stdout), folded(&paths(&search)));
}

#[test]
fn the_svg_parses_and_holds_each_scope_as_wide_as_its_inclusive_amount() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("known.msgpack");
    let records = known(1);
    write(&path, &records);
    let svg_path = dir.path().join("out.svg");
    let out = run(&[
        "flamegraph",
        "-o",
        svg_path.to_str().unwrap(),
        path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let svg = fs::read_to_string(&svg_path).unwrap();
    let doc = parse(&svg);

    // Every frame: a <g> with a <title> "NAME (AMOUNT instructions, P%)"
    // and a <rect> whose width is its share of the image.
    let mut frames: Vec<(String, f64)> = Vec::new();
    for g in doc.descendants().filter(|n| n.has_tag_name("g")) {
        let title = g.children().find(|c| c.has_tag_name("title"));
        let rect = g.children().find(|c| c.has_tag_name("rect"));
        let (Some(title), Some(rect)) = (title, rect) else {
            continue;
        };
        let title = title.text().unwrap_or_default();
        let Some((name, _)) = title.rsplit_once(" (") else {
            continue;
        };
        let width = rect.attribute("width").unwrap().trim_end_matches('%');
        frames.push((name.to_string(), width.parse::<f64>().unwrap()));
    }
    let all = frames
        .iter()
        .find(|(n, _)| n == "all")
        .expect("the root frame")
        .1;
    let paths = paths(&records);
    // The whole: every positive exclusive amount (the root's overhead is
    // not drawn).
    let drawn: i64 = paths.values().map(|(e, _)| (*e).max(0)).sum();
    for (path, (_, inclusive)) in &paths {
        let name = path.last().unwrap();
        // A frame is as wide as what is drawn under it: its inclusive
        // amount, less the profiler's overhead for a root.
        let amount = if path.len() == 1 {
            let overhead: i64 = records
                .iter()
                .filter(|r| r.name == *name)
                .map(|r| r.weight as i64 * r.detail.as_ref().unwrap().overhead.unwrap())
                .sum();
            inclusive - overhead
        } else {
            *inclusive
        };
        let want = all * amount as f64 / drawn as f64;
        assert!(
            frames
                .iter()
                .any(|(n, w)| n == name && (w - want).abs() < 0.01),
            "{path:?}: no frame {name} of width {want:.4} in {frames:?}"
        );
    }
    assert!(svg.contains("instructions"));
}

#[test]
fn diff_draws_a_differential_graph_from_folded_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.msgpack");
    let candidate = dir.path().join("candidate.msgpack");
    write(&base, &known(1));
    write(&candidate, &known(2));
    let (base, candidate) = (base.to_str().unwrap(), candidate.to_str().unwrap());

    let out = run(&["flamegraph", "--folded", candidate, "--diff", base]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let before = paths(&known(1));
    let after = paths(&known(2));
    let mut want = Vec::new();
    for (path, (e, _)) in &after {
        let b = before.get(path).map_or(0, |x| x.0);
        if *e > 0 || b > 0 {
            want.push(format!("{} {} {}", path.join(";"), b.max(0), (*e).max(0)));
        }
    }
    let mut got: Vec<String> = text(&out.stdout).lines().map(String::from).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    assert!(got.contains(&"/checkout;price;tax 3000 6000".to_string()));

    let svg = dir.path().join("diff.svg");
    let out = run(&[
        "flamegraph",
        "-o",
        svg.to_str().unwrap(),
        candidate,
        "--diff",
        base,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let svg = fs::read_to_string(&svg).unwrap();
    parse(&svg);
    // The grown frame carries its change, as a share of the candidate's
    // whole, in its title.
    let whole: i64 = after.values().map(|(e, _)| (*e).max(0)).sum();
    let title = format!(
        "tax (6,000 instructions, {:.2}%; {:+.2}%)",
        100.0 * 6000.0 / whole as f64,
        100.0 * 3000.0 / whole as f64
    );
    assert!(svg.contains(&title), "{title} not in the SVG");
}

/// `report` and `flamegraph --folded` on `path`: the same exit status and
/// the same lines about the file on stderr.
fn same_as_report(path: &str) -> Output {
    let report = run(&["report", path]);
    let flame = run(&["flamegraph", "--folded", path]);
    assert_eq!(flame.status.code(), report.status.code(), "{path}");
    let about_file = |o: &Output| -> Vec<String> {
        text(&o.stderr)
            .lines()
            .filter(|l| !l.contains("no profile records"))
            .map(String::from)
            .collect()
    };
    assert_eq!(about_file(&flame), about_file(&report), "{path}");
    flame
}

#[test]
fn damaged_empty_and_foreign_inputs_behave_as_in_report() {
    let dir = tempfile::tempdir().unwrap();
    let records = known(1);
    let cut = dir.path().join("cut.msgpack");
    let mut bytes: Vec<u8> = records.iter().flat_map(|r| r.to_msgpack()).collect();
    bytes.truncate(bytes.len() - records[1].to_msgpack().len() / 2);
    fs::write(&cut, &bytes).unwrap();
    let out = same_as_report(cut.to_str().unwrap());
    assert_eq!(out.status.code(), Some(3));
    // What came before the damage is drawn.
    assert_eq!(text(&out.stdout), folded(&paths(&records[..1])));

    let empty = dir.path().join("empty.msgpack");
    fs::write(&empty, b"").unwrap();
    let out = same_as_report(empty.to_str().unwrap());
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("no profile records in the inputs"));
    // No SVG is written from nothing.
    let svg = dir.path().join("empty.svg");
    run(&[
        "flamegraph",
        "-o",
        svg.to_str().unwrap(),
        empty.to_str().unwrap(),
    ]);
    assert!(!svg.exists());

    let notes = dir.path().join("notes.txt");
    fs::write(&notes, b"GET /checkout 200 12ms\n").unwrap();
    assert_ne!(
        same_as_report(notes.to_str().unwrap()).status.code(),
        Some(0)
    );
    let foreign = dir.path().join("foreign.msgpack");
    let mut bytes = vec![0x81, 0xa3, b'f', b'o', b'o', 0x01];
    bytes.extend(records[1].to_msgpack());
    fs::write(&foreign, &bytes).unwrap();
    let out = same_as_report(foreign.to_str().unwrap());
    assert_eq!(text(&out.stdout), folded(&paths(&records[1..])));
    assert_eq!(
        same_as_report(dir.path().join("missing").to_str().unwrap())
            .status
            .code(),
        Some(1)
    );
}
