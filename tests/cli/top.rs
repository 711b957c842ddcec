//! `dynostats top`: a known call tree written with the library, read back
//! by the binary; shares, calls per request, cost per call, callers and
//! callees and fleet counts equal values computed here from the nodes
//! (recursion counted once), and damaged, empty and foreign inputs behave
//! as in `dynostats report`.

use std::collections::BTreeMap;
use std::fs;
use std::process::Output;

use dynostats::{Record, RecordKind};
use serde_json::Value;

use crate::cli;
use cli::{json, profile, run, text, write};

/// Two endpoints' call trees: `tax` called from `price` and from both
/// roots, `fib` recursive under `price`.
fn known() -> Vec<Record> {
    let checkout = profile(
        "/checkout",
        10,
        "instructions",
        50,
        &[
            ("/checkout", None, 1, 1000, 100),
            ("price", Some(0), 2, 600, 200),
            ("tax", Some(1), 3, 300, 300),
            ("fib", Some(1), 1, 100, 40),
            ("fib", Some(3), 1, 60, 60),
            ("tax", Some(0), 1, 250, 250),
        ],
    );
    let search = profile(
        "/search",
        5,
        "instructions",
        0,
        &[
            ("/search", None, 1, 400, 100),
            ("tax", Some(0), 2, 300, 300),
        ],
    );
    let mut request = Record::new(RecordKind::Request, "/checkout");
    request.weight = 10;
    request.instructions = Some(1000);
    vec![request, checkout, search]
}

/// Per scope name, weighted: (calls, inclusive with recursion counted
/// once, exclusive), and per (caller, callee): (calls, inclusive), and the
/// weighted total and events: the reference the binary is checked against.
#[derive(Default)]
struct Expected {
    total: i128,
    events: u128,
    names: BTreeMap<String, (u128, i128, i128)>,
    edges: BTreeMap<(String, String), (u128, i128)>,
}

fn expected(records: &[Record]) -> Expected {
    let mut e = Expected::default();
    for r in records.iter().filter(|r| r.kind == RecordKind::Profile) {
        let w = r.weight as i128;
        let nodes = &r.detail.as_ref().unwrap().nodes;
        e.total += w * nodes[0].inclusive as i128;
        e.events += r.weight as u128;
        for (i, n) in nodes.iter().enumerate().skip(1) {
            // An ancestor below the root with the same name: already inside.
            let mut recursive = false;
            let mut at = n.parent.map(|p| p as usize);
            while let Some(a) = at.filter(|&a| a > 0) {
                recursive |= nodes[a].name == n.name;
                at = nodes[a].parent.map(|p| p as usize);
            }
            let entry = e.names.entry(n.name.clone()).or_default();
            entry.0 += r.weight as u128 * n.calls as u128;
            entry.2 += w * n.exclusive as i128;
            let caller = nodes[n.parent.unwrap() as usize].name.clone();
            let edge = e.edges.entry((caller, n.name.clone())).or_default();
            edge.0 += r.weight as u128 * n.calls as u128;
            if !recursive {
                entry.1 += w * n.inclusive as i128;
                edge.1 += w * n.inclusive as i128;
            }
            let _ = i;
        }
    }
    e
}

fn rows(json: &Value) -> Vec<Value> {
    json["top"]["rows"].as_array().unwrap().clone()
}

fn row<'a>(rows: &'a [Value], name: &str, kind: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["name"] == name && r["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} row {name}: {rows:?}"))
}

fn close(a: &Value, b: f64) -> bool {
    (a.as_f64().unwrap() - b).abs() <= 1e-9 * b.abs().max(1.0)
}

#[test]
fn a_known_call_tree_gives_exact_shares_with_recursion_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("known.msgpack");
    let records = known();
    write(&path, &records);
    let path = path.to_str().unwrap();
    let e = expected(&records);
    assert_eq!(e.total, 12_000);
    // fib's recursive call is inside its outer call: 1000, not 1600.
    assert_eq!(e.names["fib"].1, 1_000);

    let out = run(&["top", "--json", "--fleet", "4000", path]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json = json(&out);
    assert_eq!(json["top"]["timer"], "instructions");
    assert_eq!(json["top"]["total"], 12_000);
    assert_eq!(json["top"]["events"], 15);
    let rows = rows(&json);
    for (name, &(calls, inclusive, exclusive)) in &e.names {
        let r = row(&rows, name, "scope");
        assert_eq!(r["calls"], calls as u64, "{name}");
        assert_eq!(r["inclusive"], inclusive as i64, "{name}");
        assert_eq!(r["exclusive"], exclusive as i64, "{name}");
        let share = |x: i128| 100.0 * x as f64 / e.total as f64;
        assert!(
            close(&r["inclusive_share"], share(inclusive)),
            "{name}: {r}"
        );
        assert!(
            close(&r["exclusive_share"], share(exclusive)),
            "{name}: {r}"
        );
        assert!(close(
            &r["calls_per_request"],
            calls as f64 / e.events as f64
        ));
        assert!(close(&r["per_call"], inclusive as f64 / calls as f64));
        assert!(close(
            &r["servers_inclusive"],
            4000.0 * inclusive as f64 / e.total as f64
        ));
    }
    // The endpoints' own code (root exclusive), beside the scopes.
    assert_eq!(row(&rows, "/checkout", "endpoint")["exclusive"], 1000);
    assert_eq!(row(&rows, "/search", "endpoint")["exclusive"], 500);
    // Largest exclusive first: tax (7000), price (2000), ...
    assert_eq!(rows[0]["name"], "tax");

    // The table says it in words: "58.333% inclusive".
    let table = text(&run(&["top", "--fleet", "4000", path]).stdout);
    let tax = table.lines().find(|l| l.starts_with("tax ")).unwrap();
    assert!(tax.contains("58.333%"), "{table}");
    assert!(tax.contains("~2333.3"), "{table}");
    assert!(
        table.contains("by share of all instructions measured"),
        "{table}"
    );

    // CSV: one line per row under the header.
    let csv = text(&run(&["top", "--format", "csv", path]).stdout);
    assert!(csv.starts_with("timer,name,kind,calls,inclusive,"), "{csv}");
    assert!(csv.contains("\ninstructions,tax,scope,50,7000,"), "{csv}");
}

#[test]
fn callers_and_callees_carry_each_edge_with_its_share() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("known.msgpack");
    let records = known();
    write(&path, &records);
    let path = path.to_str().unwrap();
    let e = expected(&records);

    for (flag, name) in [
        ("--callers", "tax"),
        ("--callers", "fib"),
        ("--callees", "price"),
        ("--callees", "/checkout"),
    ] {
        let out = run(&["top", "--json", flag, name, path]);
        assert_eq!(out.status.code(), Some(0));
        let json = json(&out);
        let got: BTreeMap<(String, String), (u64, i64, f64)> = rows(&json)
            .iter()
            .map(|r| {
                let other = r["name"].as_str().unwrap().to_string();
                let key = if flag == "--callers" {
                    (other, name.to_string())
                } else {
                    (name.to_string(), other)
                };
                (
                    key,
                    (
                        r["calls"].as_u64().unwrap(),
                        r["inclusive"].as_i64().unwrap(),
                        r["inclusive_share"].as_f64().unwrap(),
                    ),
                )
            })
            .collect();
        let want: BTreeMap<(String, String), (u64, i64, f64)> = e
            .edges
            .iter()
            .filter(|((caller, callee), _)| {
                if flag == "--callers" {
                    callee == name
                } else {
                    caller == name
                }
            })
            .map(|(k, &(calls, inc))| {
                (
                    k.clone(),
                    (
                        calls as u64,
                        inc as i64,
                        100.0 * inc as f64 / e.total as f64,
                    ),
                )
            })
            .collect();
        assert_eq!(got.len(), want.len(), "{flag} {name}: {got:?}");
        for (k, w) in &want {
            let g = got[k];
            assert_eq!((g.0, g.1), (w.0, w.1), "{flag} {name} {k:?}");
            assert!((g.2 - w.2).abs() < 1e-9, "{flag} {name} {k:?}");
        }
    }
    // tax's callers split its 7000: price 3000 (42.9%), /checkout 2500,
    // /search 1500; the recursive edge fib -> fib adds no inclusive.
    let table = text(&run(&["top", "--callers", "tax", path]).stdout);
    let price = table.lines().find(|l| l.starts_with("price ")).unwrap();
    assert!(
        price.contains("25.000%") && price.contains("42.9%"),
        "{table}"
    );
    assert_eq!(e.edges[&("fib".into(), "fib".into())].1, 0);
}

#[test]
fn without_instructions_the_amounts_are_cpu_time_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cpu.msgpack");
    let mut r = profile(
        "/checkout",
        1,
        "cpu_ns",
        0,
        &[
            ("/checkout", None, 1, 900, 300),
            ("price", Some(0), 1, 600, 600),
        ],
    );
    let detail = r.detail.as_mut().unwrap();
    detail.timer_requested = Some("instructions".into());
    detail.timer_fallback = Some("no hardware PMU: perf_event_open (ENOENT)".into());
    write(&path, &[r]);
    let path = path.to_str().unwrap();
    let table = text(&run(&["top", path]).stdout);
    assert!(
        table.contains("amounts are CPU time (cpu_ns), not instructions"),
        "{table}"
    );
    assert!(table.contains("no hardware PMU"), "{table}");
    assert!(table.contains("by share of all cpu_ns measured"), "{table}");
    let json = json(&run(&["top", "--json", path]));
    assert_eq!(json["top"]["timer"], "cpu_ns");
    assert!(json["top"]["note"].as_str().unwrap().contains("CPU time"));
    assert_eq!(row(&rows(&json), "price", "scope")["inclusive"], 600);
    // Asking for instructions that are not there: said, not invented.
    let out = run(&["top", "--metric", "instructions", path]);
    assert!(
        text(&out.stderr)
            .contains("no profile records measured in instructions; these have: cpu_ns"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn label_and_endpoint_filters_keep_only_their_trees() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("known.msgpack");
    let mut records = known();
    records[1].set_label("build", "b1");
    records[2].set_label("build", "b2");
    write(&path, &records);
    let path = path.to_str().unwrap();
    for args in [
        vec!["top", "--json", "--label", "build=b2", path],
        vec!["top", "--json", "--endpoint", "/search", path],
    ] {
        let json = json(&run(&args));
        assert_eq!(json["top"]["total"], 2_000, "{args:?}");
        assert_eq!(row(&rows(&json), "tax", "scope")["inclusive"], 1_500);
    }
}

/// Runs `report` and `top` on `path`: the same exit status and the same
/// lines about the file on stderr.
fn same_as_report(path: &str) -> (Output, Output) {
    let report = run(&["report", path]);
    let top = run(&["top", path]);
    assert_eq!(top.status.code(), report.status.code(), "{path}");
    let about_file = |o: &Output| -> Vec<String> {
        text(&o.stderr)
            .lines()
            .filter(|l| {
                !l.contains("no profile records")
                    && !l.contains("profile records (call trees) read")
            })
            .map(String::from)
            .collect()
    };
    assert_eq!(about_file(&top), about_file(&report), "{path}");
    (report, top)
}

#[test]
fn damaged_empty_and_foreign_inputs_behave_as_in_report() {
    let dir = tempfile::tempdir().unwrap();
    let records = known();

    // Cut inside the last record: what came before is counted, exit 3.
    let cut = dir.path().join("cut.msgpack");
    let mut bytes: Vec<u8> = records.iter().flat_map(|r| r.to_msgpack()).collect();
    let search_len = records[2].to_msgpack().len();
    bytes.truncate(bytes.len() - search_len / 2);
    fs::write(&cut, &bytes).unwrap();
    let (_, top) = same_as_report(cut.to_str().unwrap());
    assert_eq!(top.status.code(), Some(3));
    let got = json(&run(&["top", "--json", cut.to_str().unwrap()]));
    assert_eq!(got["top"]["total"], 10_000);
    assert!(got["files"][0]["error"].is_string());
    let table = text(&top.stdout);
    assert!(table.contains("INCOMPLETE: "), "{table}");

    // Empty: said on stderr, exit 0, nothing made up.
    let empty = dir.path().join("empty.msgpack");
    fs::write(&empty, b"").unwrap();
    let (_, top) = same_as_report(empty.to_str().unwrap());
    assert_eq!(top.status.code(), Some(0));
    assert!(text(&top.stderr).contains("empty: no records"));
    assert!(text(&top.stdout).contains("no profile records in the inputs"));

    // Foreign: a text file, and MessagePack that is not records.
    let text_file = dir.path().join("notes.txt");
    fs::write(&text_file, b"GET /checkout 200 12ms\n").unwrap();
    let (_, top) = same_as_report(text_file.to_str().unwrap());
    assert_ne!(top.status.code(), Some(0));
    let foreign = dir.path().join("foreign.msgpack");
    let mut bytes = vec![0x81, 0xa3, b'f', b'o', b'o', 0x01]; // {"foo": 1}
    bytes.extend(records[2].to_msgpack());
    fs::write(&foreign, &bytes).unwrap();
    let (_, top) = same_as_report(foreign.to_str().unwrap());
    assert_eq!(top.status.code(), Some(0));
    assert!(text(&top.stdout).contains("SKIPPED: "));
    let strict = run(&["top", "--strict", foreign.to_str().unwrap()]);
    assert_eq!(strict.status.code(), Some(3));
    assert_eq!(
        json(&run(&["top", "--json", foreign.to_str().unwrap()]))["top"]["total"],
        2_000
    );

    // A missing file: exit 1, as report.
    let (_, top) = same_as_report(dir.path().join("missing").to_str().unwrap());
    assert_eq!(top.status.code(), Some(1));

    // A call tree whose parent is not an earlier node is left out whole.
    let bad = dir.path().join("bad-tree.msgpack");
    let mut broken = records[2].clone();
    broken.detail.as_mut().unwrap().nodes[1].parent = Some(1);
    write(&bad, &[records[1].clone(), broken]);
    let out = run(&["top", "--json", bad.to_str().unwrap()]);
    assert_eq!(json(&out)["top"]["total"], 10_000);
    assert!(
        text(&out.stderr).contains("1 profile records left out: their call tree is damaged"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn scopes_beyond_the_cap_are_counted_under_other() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("known.msgpack");
    let records = known();
    write(&path, &records);
    let out = run(&["top", "--json", "--max-paths", "3", path.to_str().unwrap()]);
    let got = json(&out);
    // Nothing is lost: the shares still add up to the same total.
    assert_eq!(got["top"]["total"], 12_000);
    let exclusive: i64 = rows(&got)
        .iter()
        .map(|r| r["exclusive"].as_i64().unwrap())
        .sum();
    let overhead = got["top"]["overhead"].as_i64().unwrap();
    assert_eq!(exclusive + overhead, 12_000);
    assert!(rows(&got).iter().any(|r| r["name"] == "<other>"));
    assert!(text(&out.stderr).contains("counted under <other>"));
}

/// Calls per request divide by every endpoint's requests (as documented),
/// per request of one endpoint with `--endpoint`.
#[test]
fn calls_per_request_are_of_every_endpoint_read_or_of_the_one_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two.msgpack");
    let records = [
        profile(
            "/a",
            10,
            "instructions",
            0,
            &[("/a", None, 1, 100, 50), ("only_a", Some(0), 1, 50, 50)],
        ),
        profile("/b", 10, "instructions", 0, &[("/b", None, 1, 100, 100)]),
    ];
    write(&path, &records);
    let path = path.to_str().unwrap();
    let per_request = |args: &[&str]| {
        let out = run(args);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let j = json(&out);
        j["top"]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "only_a")
            .unwrap()["calls_per_request"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(per_request(&["top", "--json", path]), 0.5);
    assert_eq!(
        per_request(&["top", "--json", "--endpoint", "/a", path]),
        1.0
    );
}

/// A drill-down into a name the trees do not have says so, with close
/// names, and exits 2 instead of printing an empty table.
#[test]
fn a_drill_down_into_an_unknown_name_says_so_with_close_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("known.msgpack");
    write(&path, &known());
    let path = path.to_str().unwrap();
    let out = run(&["top", "--callers", "prise", path]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let said = text(&out.stderr);
    assert!(said.contains("no scope named prise"), "{said}");
    assert!(said.contains("close names: price"), "{said}");
    // An endpoint is a caller, not a scope: --callers refuses it, --callees
    // takes it.
    let out = run(&["top", "--callers", "/checkout", path]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["top", "--callees", "/checkout", path]);
    assert_eq!(out.status.code(), Some(0));
    let out = run(&["top", "--callees", "zzzzzzzzzz", path]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!text(&out.stderr).contains("close names"));
}
