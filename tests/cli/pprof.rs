//! `dynostats pprof`, read back two ways: by the real `go tool pprof`
//! (its `-top`, `-traces` and `-tagfocus` must show the numbers of
//! `dynostats top` and `dynostats flamegraph --folded`), and by an
//! independent decoder (`tests/pprof/decode.go`, Go's standard library and
//! a protobuf reader of its own) whose every sample must equal the sums
//! that `tests/pprof/expected.py` computes from the record files with
//! Python's msgpack.
//!
//! Skipped, with the reason printed, where `go` cannot be run (or, for the
//! independent check, `python3` cannot import `msgpack`), unless
//! `DYNOSTATS_REQUIRE_GO=1` (or `DYNOSTATS_REQUIRE_PYTHON=1`): then that
//! is a failure. CI installs both and sets both.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use dynostats::Record;
use serde_json::Value;

use crate::cli::{Node, json, profile, run, text, write};

use crate::rng;

const REQUIRE_GO: &str = "DYNOSTATS_REQUIRE_GO";
const REQUIRE_PYTHON: &str = "DYNOSTATS_REQUIRE_PYTHON";

/// Skips (prints why, returns false) or, when `require` is set to 1,
/// fails.
fn available(test: &str, require: &str, probe: &mut Command, what: &str) -> bool {
    let reason = match probe.output() {
        Ok(out) if out.status.success() => return true,
        Ok(out) => format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => format!("{what} cannot be run: {e}"),
    };
    if std::env::var(require).as_deref() == Ok("1") {
        panic!("{require}=1, but {test} would skip: {reason}");
    }
    eprintln!("SKIP {test}: {reason}");
    false
}

pub(crate) fn go_available(test: &str) -> bool {
    available(test, REQUIRE_GO, go().arg("version"), "go version")
}

fn python_available(test: &str) -> bool {
    available(
        test,
        REQUIRE_PYTHON,
        Command::new("python3").args(["-c", "import msgpack"]),
        "python3 -c 'import msgpack'",
    )
}

/// `go`, with its build cache and pprof's temporary files under the
/// target directory (nothing in the user's home) and the local toolchain
/// only (never a download).
fn go() -> Command {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let mut go = Command::new("go");
    go.env("GOCACHE", tmp.join("go-build"))
        .env("PPROF_TMPDIR", tmp.join("pprof"))
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "");
    go
}

/// `go tool pprof ARGS`: its standard output.
pub(crate) fn pprof(args: &[&str]) -> String {
    let out = go().args(["tool", "pprof"]).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "go tool pprof {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pprof")
}

const ENDPOINTS: [&str; 4] = ["/checkout", "/users/{id}", "/users", "batch"];
const SCOPES: [&str; 6] = [
    "db::query",
    "db::decode",
    "render",
    "auth",
    "cache get",
    "json::to_vec",
];

/// `n` random call trees of `timer`, consistent as the profiler writes
/// them (a node's inclusive amount is its exclusive one plus its
/// children's; the root's also holds the overhead), with recursion
/// (a name under itself), weights 1, 10 or 100 (or `weight`), and the
/// labels `build` (always) and `host` (on some).
fn records(seed: u64, n: usize, timer: &str, weight: Option<u64>) -> Vec<Record> {
    let mut rng = rng::Rng(seed);
    (0..n)
        .map(|_| {
            let root = ENDPOINTS[rng.index(ENDPOINTS.len())];
            let count = 1 + rng.index(9);
            let mut parents: Vec<Option<u32>> = vec![None];
            let mut depth = vec![0];
            for i in 1..count {
                // A parent among the earlier nodes, 5 levels at most.
                let mut p = rng.index(i);
                while depth[p] >= 5 {
                    p = parents[p].unwrap() as usize;
                }
                parents.push(Some(p as u32));
                depth.push(depth[p] + 1);
            }
            let names: Vec<&'static str> = (0..count)
                .map(|i| {
                    if i == 0 {
                        root
                    } else {
                        SCOPES[rng.index(SCOPES.len())]
                    }
                })
                .collect();
            // CPU time has clock noise: some scopes come out slightly
            // negative (written as they are, summed as they are).
            let low = if timer == "cpu_ns" { -500 } else { 1 };
            let exclusive: Vec<i64> = (0..count).map(|_| low + rng.below(10_000) as i64).collect();
            let overhead = rng.below(3) as i64 * 40;
            let mut inclusive = exclusive.clone();
            for i in (1..count).rev() {
                let p = parents[i].unwrap() as usize;
                inclusive[p] += inclusive[i];
            }
            inclusive[0] += overhead;
            let nodes: Vec<Node> = (0..count)
                .map(|i| {
                    let calls = if i == 0 { 1 } else { 1 + rng.below(4) };
                    (names[i], parents[i], calls, inclusive[i], exclusive[i])
                })
                .collect();
            let w = weight.unwrap_or([1, 10, 100][rng.index(3)]);
            let mut r = profile(root, w, timer, overhead, &nodes);
            r.set_label("build", ["v1", "v2"][rng.index(2)]);
            if rng.below(3) == 0 {
                r.set_label("host", "web-1");
            }
            r
        })
        .collect()
}

/// A record file of 400 instructions trees and 100 CPU-time ones (some
/// CPU-time scopes negative, as clock noise makes them).
fn record_file(dir: &Path) -> String {
    let mut all = records(7, 400, "instructions", None);
    all.extend(records(11, 100, "cpu_ns", Some(10)));
    let negative = all
        .iter()
        .flat_map(|r| &r.detail.as_ref().unwrap().nodes)
        .filter(|n| n.exclusive < 0)
        .count();
    assert!(negative > 5, "{negative} negative amounts");
    let path = dir.join("records.msgpack");
    write(&path, &all);
    path.to_str().unwrap().to_string()
}

/// `dynostats pprof ARGS -o DIR/NAME`: the profile's path.
pub(crate) fn dynostats_pprof(dir: &Path, name: &str, args: &[&str]) -> String {
    let out_path = dir.join(name);
    let out_path = out_path.to_str().unwrap();
    let mut all = vec!["pprof", "-o", out_path];
    all.extend(args);
    let out = run(&all);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    out_path.to_string()
}

/// One row of `go tool pprof -top`: flat, flat%, cum, cum%.
#[derive(Debug)]
struct TopRow {
    flat: i64,
    flat_share: f64,
    cum: i64,
    cum_share: f64,
}

/// The rows of `go tool pprof -top` by name; `unit` is the suffix of
/// every value (`ns` with `-unit=ns`, nothing for counts).
fn pprof_top(output: &str, unit: &str) -> BTreeMap<String, TopRow> {
    let mut rows = BTreeMap::new();
    let mut lines = output
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("flat  flat%"));
    lines.next().expect("a -top header");
    for line in lines {
        // Five columns, then the name, which may hold spaces.
        let mut rest = line.trim_start();
        let mut cols = Vec::new();
        for _ in 0..5 {
            let end = rest.find(' ').unwrap();
            cols.push(&rest[..end]);
            rest = rest[end..].trim_start();
        }
        let value = |s: &str| -> i64 {
            s.strip_suffix(unit)
                .unwrap_or_else(|| panic!("{s} in {unit}"))
                .parse()
                .unwrap_or_else(|_| panic!("{s}: not an exact integer"))
        };
        let share = |s: &str| -> f64 { s.strip_suffix('%').unwrap().parse().unwrap() };
        let row = TopRow {
            flat: value(cols[0]),
            flat_share: share(cols[1]),
            cum: value(cols[3]),
            cum_share: share(cols[4]),
        };
        assert!(rows.insert(rest.to_string(), row).is_none(), "{rest} twice");
    }
    rows
}

/// `dynostats top --json -n 0 ARGS`: the envelope's `top`.
fn dynostats_top(args: &[&str]) -> Value {
    let mut all = vec!["top", "--json", "-n", "0"];
    all.extend(args);
    let out = run(&all);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    json(&out)["top"].clone()
}

/// pprof's flat and cum of every scope and endpoint equal top's exclusive
/// and inclusive amounts, their shares to 0.01%, `<overhead>` is the
/// profiler's own amount, and nothing else is shown.
fn check_top_against(top: &Value, rows: &BTreeMap<String, TopRow>, shares: bool) {
    let top_rows = top["rows"].as_array().unwrap();
    assert!(top_rows.len() >= 5, "{top}");
    for r in top_rows {
        let name = r["name"].as_str().unwrap();
        let p = rows
            .get(name)
            .unwrap_or_else(|| panic!("{name} not in pprof's -top: {rows:?}"));
        assert_eq!(p.flat, r["exclusive"].as_i64().unwrap(), "flat of {name}");
        assert_eq!(p.cum, r["inclusive"].as_i64().unwrap(), "cum of {name}");
        if shares {
            let exclusive = r["exclusive_share"].as_f64().unwrap();
            let inclusive = r["inclusive_share"].as_f64().unwrap();
            assert!(
                (p.flat_share - exclusive).abs() <= 0.01,
                "{name}: {p:?} {r}"
            );
            assert!((p.cum_share - inclusive).abs() <= 0.01, "{name}: {p:?} {r}");
        }
    }
    let overhead = &rows["<overhead>"];
    assert_eq!(overhead.flat, top["overhead"].as_i64().unwrap());
    assert_eq!(overhead.cum, overhead.flat);
    assert_eq!(rows.len(), top_rows.len() + 1, "{rows:?}");
}

#[test]
fn go_tool_pprof_top_shows_the_figures_of_dynostats_top() {
    if !go_available("go_tool_pprof_top_shows_the_figures_of_dynostats_top") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let records = record_file(dir.path());
    let profile = dynostats_pprof(dir.path(), "p.pb.gz", &[&records]);

    // Instructions, the default sample type.
    let top = dynostats_top(&[&records]);
    let rows = pprof_top(&pprof(&["-top", "-nodefraction=0", &profile]), "");
    check_top_against(&top, &rows, true);
    let named = pprof(&[
        "-top",
        "-nodefraction=0",
        "-sample_index=instructions",
        &profile,
    ]);
    assert_eq!(pprof_top(&named, "").len(), rows.len());

    // Calls: pprof's flat is top's weighted calls.
    let calls = pprof_top(
        &pprof(&["-top", "-nodefraction=0", "-sample_index=calls", &profile]),
        "",
    );
    for r in top["rows"].as_array().unwrap() {
        let name = r["name"].as_str().unwrap();
        assert_eq!(
            calls[name].flat,
            r["calls"].as_i64().unwrap(),
            "calls of {name}"
        );
    }

    // CPU time: named cpu, in nanoseconds, never instructions.
    let cpu = dynostats_pprof(dir.path(), "cpu.pb.gz", &["--metric", "cpu", &records]);
    let out = pprof(&["-top", "-nodefraction=0", "-unit=ns", &cpu]);
    assert!(out.contains("Type: cpu\n"), "{out}");
    let top = dynostats_top(&["--metric", "cpu", &records]);
    assert_eq!(top["timer"], "cpu_ns");
    // Some CPU-time amounts are negative: pprof's total adds absolute
    // values, so its shares differ from top's; the amounts do not.
    check_top_against(&top, &pprof_top(&out, "ns"), false);
}

/// The samples of `go tool pprof -traces`: (labels, value, stack root
/// first joined with `;`).
pub(crate) fn pprof_traces(output: &str) -> Vec<(BTreeMap<String, String>, i64, String)> {
    let separator = "-----------+-------------------------------------------------------";
    let mut traces = Vec::new();
    for block in output.split(separator).skip(1) {
        let lines: Vec<&str> = block.lines().filter(|l| !l.is_empty()).collect();
        if lines.is_empty() {
            continue;
        }
        let mut labels = BTreeMap::new();
        let mut value = None;
        let mut frames = Vec::new();
        for line in lines {
            // Labels are "%10s:  %s", frames "%10s   %s" (the value on the
            // first frame only).
            if line.get(10..13) == Some(":  ") {
                labels.insert(line[..10].trim().to_string(), line[13..].to_string());
            } else {
                let (v, name) = line.split_at(10);
                if !v.trim().is_empty() {
                    value = Some(v.trim().parse::<i64>().unwrap());
                }
                frames.push(name.strip_prefix("   ").unwrap());
            }
        }
        frames.reverse();
        traces.push((labels, value.expect("a value"), frames.join(";")));
    }
    traces
}

/// Folded stacks as (stack, amount).
fn folded(args: &[&str]) -> BTreeMap<String, i64> {
    let mut all = vec!["flamegraph", "--folded"];
    all.extend(args);
    let out = run(&all);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| {
            let (stack, amount) = l.rsplit_once(' ').unwrap();
            (stack.to_string(), amount.parse().unwrap())
        })
        .collect()
}

#[test]
fn go_tool_pprof_traces_show_each_path_once() {
    if !go_available("go_tool_pprof_traces_show_each_path_once") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let records = record_file(dir.path());
    let stacks = folded(&[&records]);
    let top = dynostats_top(&[&records]);
    assert!(stacks.len() > 50, "{}", stacks.len());

    // Without label keys: each path once, with its folded amount; the
    // overhead under each endpoint that has one.
    let profile = dynostats_pprof(dir.path(), "p.pb.gz", &[&records]);
    let traces = pprof_traces(&pprof(&["-traces", &profile]));
    let mut seen = BTreeMap::new();
    let mut overhead = 0;
    for (labels, value, stack) in &traces {
        let root = stack.split(';').next().unwrap();
        assert_eq!(
            labels.get("endpoint").map(String::as_str),
            Some(root),
            "{stack}"
        );
        assert_eq!(labels.len(), 1, "{labels:?}");
        assert!(
            seen.insert(stack.clone(), *value).is_none(),
            "{stack} twice"
        );
        if stack.ends_with(";<overhead>") {
            overhead += value;
        }
    }
    assert_eq!(overhead, top["overhead"].as_i64().unwrap());
    seen.retain(|stack, _| !stack.ends_with(";<overhead>"));
    assert_eq!(seen, stacks);

    // With --label-key build: each (path, build) once, summing to the path.
    let profile = dynostats_pprof(dir.path(), "b.pb.gz", &["--label-key", "build", &records]);
    let traces = pprof_traces(&pprof(&["-traces", &profile]));
    let mut seen = BTreeMap::new();
    let mut per_path: BTreeMap<String, i64> = BTreeMap::new();
    for (labels, value, stack) in &traces {
        let build = labels["build"].clone();
        assert!(build == "v1" || build == "v2", "{labels:?}");
        assert!(
            seen.insert((stack.clone(), build), *value).is_none(),
            "{stack} twice"
        );
        if !stack.ends_with(";<overhead>") {
            *per_path.entry(stack.clone()).or_default() += value;
        }
    }
    assert_eq!(per_path, stacks);
    assert!(seen.len() > stacks.len(), "both builds on some paths");
}

#[test]
fn go_tool_pprof_tagfocus_keeps_one_endpoint_or_label() {
    if !go_available("go_tool_pprof_tagfocus_keeps_one_endpoint_or_label") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let records = record_file(dir.path());
    let profile = dynostats_pprof(
        dir.path(),
        "p.pb.gz",
        &["--label-key", "build", "--label-key", "host", &records],
    );

    let out = pprof(&[
        "-top",
        "-nodefraction=0",
        "-tagfocus",
        "endpoint=/users/{id}",
        &profile,
    ]);
    let rows = pprof_top(&out, "");
    assert!(rows.contains_key("/users/{id}"), "{out}");
    for other in ["/checkout", "/users", "batch"] {
        assert!(!rows.contains_key(other), "{other} kept: {out}");
    }
    // Shares are of the whole profile in pprof, of the endpoint in top:
    // amounts only.
    let top = dynostats_top(&["--endpoint", "/users/{id}", &records]);
    check_top_against(&top, &rows, false);

    let out = pprof(&["-top", "-nodefraction=0", "-tagfocus", "build=v2", &profile]);
    let top = dynostats_top(&["--label", "build=v2", &records]);
    check_top_against(&top, &pprof_top(&out, ""), false);
    let out = pprof(&[
        "-top",
        "-nodefraction=0",
        "-tagfocus",
        "host=web-1",
        &profile,
    ]);
    let top = dynostats_top(&["--label", "host=web-1", &records]);
    check_top_against(&top, &pprof_top(&out, ""), false);
}

/// The independent decoder's view of `profile`.
pub(crate) fn decode(profile: &str) -> Value {
    let out = go()
        .arg("run")
        .arg(tests_dir().join("decode.go"))
        .arg(profile)
        .output()
        .unwrap();
    assert!(out.status.success(), "decode.go: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// What `expected.py` computes from the record files.
fn expected(timer: &str, args: &[&str]) -> Value {
    let out = Command::new("python3")
        .arg(tests_dir().join("expected.py"))
        .arg(timer)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "expected.py: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Samples by (stack, labels) -> values; a key twice fails.
fn by_key(samples: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for s in samples.as_array().unwrap() {
        let key = format!("{} {}", s["stack"], s["labels"]);
        assert!(
            out.insert(key.clone(), s["values"].clone()).is_none(),
            "{key} twice"
        );
    }
    out
}

#[test]
fn an_independent_decoder_finds_every_sample_summed_from_the_records() {
    let test = "an_independent_decoder_finds_every_sample_summed_from_the_records";
    if !go_available(test) || !python_available(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let records = record_file(dir.path());
    let keys = ["--label-key", "build", "--label-key", "host"];
    for (metric, timer, sample_type) in [
        ("instructions", "instructions", ["instructions", "count"]),
        ("cpu", "cpu_ns", ["cpu", "nanoseconds"]),
    ] {
        let mut args = vec!["--metric", metric];
        args.extend(keys);
        args.push(&records);
        let profile = dynostats_pprof(dir.path(), &format!("{metric}.pb.gz"), &args);
        let decoded = decode(&profile);
        let mut py_args = keys.to_vec();
        py_args.push(&records);
        let want = expected(timer, &py_args);

        assert_eq!(
            decoded["sample_types"],
            serde_json::json!([sample_type, ["calls", "count"]])
        );
        assert_eq!(decoded["default_sample_type"], sample_type[0]);
        assert_eq!(
            decoded["period_type"],
            serde_json::json!(["events", "count"])
        );
        assert_eq!(decoded["period"], want["period"], "{metric}");
        let got = by_key(&decoded["samples"]);
        let want = by_key(&want["samples"]);
        assert!(want.len() > 100, "{}", want.len());
        assert_eq!(got, want, "{metric}");
        let comments = decoded["comments"].as_array().unwrap();
        assert!(
            comments
                .iter()
                .any(|c| c.as_str().unwrap().contains("not code")),
            "{comments:?}"
        );
    }
}

#[test]
fn the_same_records_give_the_same_bytes_and_misuse_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let records = record_file(dir.path());
    let args = [
        "--label-key",
        "host",
        "--label-key",
        "build",
        records.as_str(),
    ];
    let a = dynostats_pprof(dir.path(), "a.pb.gz", &args);
    let b = dynostats_pprof(dir.path(), "b.pb.gz", &args);
    let a = std::fs::read(a).unwrap();
    assert_eq!(a[..2], [0x1f, 0x8b], "gzip");
    assert_eq!(a, std::fs::read(b).unwrap());
    // Standard output takes the same bytes.
    let out = run(&[
        "pprof",
        "-o",
        "-",
        "--label-key",
        "host",
        "--label-key",
        "build",
        &records,
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, a);

    // `endpoint` is every sample's label already.
    let out = run(&[
        "pprof",
        "-o",
        "x.pb.gz",
        "--label-key",
        "endpoint",
        &records,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("already"),
        "{}",
        text(&out.stderr)
    );

    // Nothing to write: said, and no file.
    let empty = dir.path().join("empty.msgpack");
    std::fs::write(&empty, b"").unwrap();
    let target = dir.path().join("none.pb.gz");
    let out = run(&[
        "pprof",
        "-o",
        target.to_str().unwrap(),
        empty.to_str().unwrap(),
    ]);
    assert!(
        text(&out.stderr).contains("no profile records"),
        "{}",
        text(&out.stderr)
    );
    assert!(!target.exists());
}
