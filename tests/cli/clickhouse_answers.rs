//! `report`, `compare` and `timeseries` with `--clickhouse URL`: the same
//! answers as from the record files, on both engines: Debian's
//! `clickhouse-server` 18.16 (one server, and two shards behind a
//! `Distributed` table) and chdb (the current engine) behind the HTTP
//! stand-in `tests/clickhouse/chdb_http.py`.
//!
//! Equal means: every count, total and quantile identical, every float
//! (means, deltas, interval bounds, mix-adjusted figures) within 1e-9
//! relative, the same verdicts, alerts and exit codes. Skipped, with the
//! reason printed, where the server or chdb is missing, unless
//! `DYNOSTATS_REQUIRE_CLICKHOUSE=1`.

use std::path::Path;
use std::process::Output;
use std::time::{SystemTime, UNIX_EPOCH};

use dynostats::{Record, RecordKind};
use serde_json::Value;

use crate::ch::{Server, free_port};
use crate::cli::{run, text, write};
use crate::rng;

/// A label value no SQL may see unescaped.
const HOSTILE: &str = "eu'west\\\"; DROP TABLE dynostats.records; --\t\n{p0:String}";

/// A label key no SQL may see unescaped, on some profile records
/// (`pprof --label-key`).
const HOSTILE_KEY: &str = "k'ey\\\"; DROP TABLE dynostats.profile_nodes; --{p0:String}";

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// Records of one build over the last `minutes` minutes before `end_ns`:
/// endpoints with quotes, `;`, a tab and non-ASCII in their names, a
/// region, weights 1 to 1000, counters absent at times, cancelled and
/// failed requests, small groups (a handful of distinct values, kept
/// exactly) and large ones (bucketed), a hostile label on some records.
/// `slower` scales `/feed`'s costs (the regression); `mix` shifts traffic
/// towards `/health`.
fn build(seed: u64, build: &str, n: usize, end_ns: u64, slower: f64, mix: u64) -> Vec<Record> {
    let mut rng = rng::Rng(seed);
    let endpoints = [
        "/feed",
        "/users/{id}",
        "/search \"q\"; ü",
        "/health",
        "/tab\there",
        "/rare",
    ];
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut which = rng.index(endpoints.len());
        if which == 0 && rng.below(100) < mix {
            which = 3;
        }
        if i % 9 == 4 {
            let endpoint = endpoints[rng.index(3)];
            out.push(tree(&mut rng, endpoint, build, end_ns, slower));
            continue;
        }
        let region = i % 11 == 0;
        let name = if region {
            "job::compact"
        } else {
            endpoints[which]
        };
        let mut r = Record::new(
            if region {
                RecordKind::Region
            } else {
                RecordKind::Request
            },
            name,
        );
        r.ts = end_ns - 1 - rng.below(50 * 60_000_000_000);
        r.weight = 1 + rng.below(1000);
        let base = [400_000u64, 90_000, 250_000, 8_000, 30_000, 1_000][which];
        let scale = if which == 0 && !region { slower } else { 1.0 };
        let value = |rng: &mut rng::Rng, b: u64| {
            if which == 5 {
                // Few distinct values: the sketch stays exact.
                b * (1 + rng.below(6))
            } else {
                b + rng.below(b / 4 + 1)
            }
        };
        let instructions = value(&mut rng, base * 10);
        r.instructions = (rng.below(25) != 0).then_some((instructions as f64 * scale) as u64);
        r.cycles = (rng.below(3) != 0).then(|| value(&mut rng, base * 14));
        let cpu = value(&mut rng, base);
        r.cpu_ns = (rng.below(30) != 0).then_some((cpu as f64 * scale) as u64);
        r.wall_ns = value(&mut rng, base * 3);
        if rng.below(2) == 0 {
            r.rss_start = Some(50 << 20);
            r.rss_end = Some((50 << 20) + rng.below(1 << 16) - (1 << 15));
        }
        if !region {
            r.method = Some(["GET", "POST"][rng.index(2)].into());
            r.status = [Some(200), Some(200), Some(404), Some(503), None][rng.index(5)];
        }
        r.cancelled = rng.below(80) == 0;
        if rng.below(60) == 0 {
            r.error = Some("timeout".into());
        }
        r.forced = rng.below(200) == 0;
        if r.forced {
            r.weight = 0;
        }
        r.labels.insert("build", build);
        r.labels.insert("host", ["web-0", "web-1"][rng.index(2)]);
        trace(&mut r, i);
        if rng.below(3) == 0 {
            r.labels.insert("zone", HOSTILE);
        } else if rng.below(2) == 0 {
            r.labels.insert("zone", "us");
        }
        out.push(r);
    }
    out
}

/// Every fifth record of a build's stream: the trace context of trace
/// `i % 7` (seven traces, each over many records), with a span of its own.
fn trace(r: &mut Record, i: usize) {
    if i % 5 == 0 {
        let header = format!("00-{:032x}-{:016x}-01", TRACE_BASE + (i % 7) as u128, 1 + i);
        r.set_trace_context(dynostats::record::TraceContext::from_traceparent(
            header.as_bytes(),
        ));
    }
}

/// The first trace id [`trace`] gives.
const TRACE_BASE: u128 = 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736;

/// A profile record: the endpoint, `db::query` calling `db::decode`
/// calling `db::query` again (recursion), `render`; amounts drawn per
/// record, `db::decode` `slower` in the candidate; timers instructions or
/// CPU time; now and then cancelled.
fn tree(rng: &mut rng::Rng, name: &str, build: &str, end_ns: u64, slower: f64) -> Record {
    let decode = (40_000.0 * slower) as i64 + rng.below(10_000) as i64;
    let inner = 5_000 + rng.below(2_000) as i64;
    let query = 20_000 + rng.below(5_000) as i64;
    let render = 30_000 + rng.below(9_000) as i64;
    let own = 1_000 + rng.below(500) as i64;
    let db = query + decode + inner;
    // `render` comes first: a record's paths are met in the order of its
    // nodes, not of their names, and that order decides what a cap keeps.
    let nodes: [crate::cli::Node; 5] = [
        ("", None, 1, own + db + render, own),
        ("render", Some(0), 1, render, render),
        ("db::query", Some(0), 1 + rng.below(3), db, query),
        ("db::decode", Some(2), 1, decode + inner, decode),
        ("db::query", Some(3), 1, inner, inner),
    ];
    let timer = ["instructions", "cpu_ns"][rng.index(2)];
    let mut r = crate::cli::profile("", 1 + rng.below(1000), timer, 40, &nodes);
    r.name = name.into();
    if let Some(d) = r.detail.as_mut() {
        d.nodes[0].name = name.into();
        d.nodes[4].recursive = true;
    }
    r.ts = end_ns - 1 - rng.below(50 * 60_000_000_000);
    r.cancelled = rng.below(50) == 0;
    trace(&mut r, rng.index(1000));
    r.labels.insert("build", build);
    r.labels.insert("host", ["web-0", "web-1"][rng.index(2)]);
    if rng.below(3) == 0 {
        r.labels.insert("zone", HOSTILE);
    }
    if r.weight % 3 != 0 {
        r.labels
            .insert(HOSTILE_KEY, ["odd", HOSTILE][(r.weight % 2) as usize]);
    }
    r
}

/// The status records of three writer processes over the records' time
/// span: cumulative counts growing per process (one restarted, its counts
/// lower after), two sinks each (one named in the records as their own),
/// a fourth process with the first one's id on another host (a process of
/// its own), counters it could not read, and a status record of a process
/// without drops. What `report` says of drops and unavailable counters
/// must come from them.
fn status_records(end_ns: u64) -> Vec<Record> {
    let sinks = ["file:/var/log/it's \"here\".msgpack", "udp:collector:5170"];
    let mut out = Vec::new();
    for (p, pid) in [7001u32, 7002, 7003].into_iter().enumerate() {
        for step in 0..5u64 {
            let mut r = Record::new(RecordKind::Status, "dynostats");
            r.pid = pid;
            r.ts = end_ns - 1 - (48 - 9 * step - p as u64) * 60_000_000_000;
            let mut d = dynostats::record::Detail::default();
            // The second process restarts before its last status record.
            let n = if pid == 7002 && step == 4 {
                1
            } else {
                10 * step + 3 * p as u64
            };
            d.stats.insert("records_emitted".into(), 1_000 * n);
            d.stats.insert("records_dropped_queue_full".into(), n);
            d.stats.insert(
                "records_dropped_closed".into(),
                u64::from(step == 4 && p == 0),
            );
            for (i, sink) in sinks.iter().enumerate() {
                let mut c = std::collections::BTreeMap::new();
                c.insert("bytes_written".into(), 100 * n);
                c.insert("records_dropped_sink_error".into(), n * (i as u64 + 1));
                c.insert("records_dropped_by_sink".into(), n / 2);
                if i == 1 {
                    c.insert("records_dropped_sink_full".into(), 2 * n + p as u64);
                }
                d.sinks.insert(sink.to_string(), c);
            }
            d.sink = Some(sinks[usize::from(pid == 7003)].to_string());
            r.detail = Some(Box::new(d));
            r.labels.insert("host", ["web-0", "web-1"][p % 2]);
            out.push(r);
        }
    }
    // Process 7001 of another host: its counts are its own, not a restart
    // of web-0's 7001.
    for step in 0..3u64 {
        let mut r = Record::new(RecordKind::Status, "dynostats");
        r.pid = 7001;
        r.ts = end_ns - 1 - (40 - 7 * step) * 60_000_000_000;
        let mut d = dynostats::record::Detail::default();
        d.stats
            .insert("records_dropped_queue_full".into(), 5 * step + 2);
        let mut c = std::collections::BTreeMap::new();
        c.insert("records_dropped_sink_error".into(), step);
        d.sinks.insert(sinks[0].to_string(), c);
        d.sink = Some(sinks[0].to_string());
        d.counters
            .insert("instructions".into(), "no hardware PMU (ENOENT)".into());
        d.counters.insert("cpu_ns".into(), "ok".into());
        d.counters.insert(
            "cycles".into(),
            "perf_event_open: 'quoted' \\ denied (EACCES)".into(),
        );
        r.detail = Some(Box::new(d));
        r.labels.insert("host", "web-9");
        out.push(r);
    }
    let mut quiet = Record::new(RecordKind::Status, "dynostats");
    quiet.pid = 7004;
    quiet.ts = end_ns - 30 * 60_000_000_000;
    let mut d = dynostats::record::Detail::default();
    d.stats.insert("records_dropped_queue_full".into(), 0);
    quiet.detail = Some(Box::new(d));
    out.push(quiet);
    out
}

/// Status records [`status_records`] makes.
const STATUS_RECORDS: usize = 19;

/// The `report` object of a JSON answer (the drops of the status records
/// too).
fn answer(out: &Output, key: &str) -> Value {
    let mut v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            text(&out.stdout),
            text(&out.stderr)
        )
    });
    v[key].take()
}

/// Whether `a` and `b` are equal, floats to 1e-9 relative; the first
/// difference otherwise. With `bucketed`, `b`'s quantiles (`p50`, `p99`)
/// may be its sketch buckets' (within 1/128 of `a`'s) and its `exact`
/// flags false.
fn same_but(a: &Value, b: &Value, path: &str, bucketed: bool) -> Result<(), String> {
    let last = path.rsplit('.').next().unwrap_or("");
    if bucketed && last == "exact" {
        return Ok(());
    }
    if bucketed && (last == "p50" || last == "p99") {
        if let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) {
            return if (x - y).abs() <= x.abs() / 128.0 + 0.5 {
                Ok(())
            } else {
                Err(format!("{path}: {x} against {y}, beyond 1/128"))
            };
        }
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                same_but(
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    &format!("{path}.{k}"),
                    bucketed,
                )?;
            }
            Ok(())
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                return Err(format!("{path}: {} against {} elements", x.len(), y.len()));
            }
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                same_but(p, q, &format!("{path}[{i}]"), bucketed)?;
            }
            Ok(())
        }
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            let scale = x.abs().max(y.abs()).max(1e-300);
            if (x - y).abs() <= 1e-9 * scale {
                Ok(())
            } else {
                Err(format!("{path}: {x} against {y}"))
            }
        }
        _ if a == b => Ok(()),
        _ => Err(format!("{path}: {a} against {b}")),
    }
}

/// Runs the file form and the ClickHouse form of a question and asserts
/// the same answer and exit status.
fn agree(what: &str, files: &[&str], clickhouse: &[&str]) -> Value {
    agree_but(what, files, clickhouse, false)
}

/// [`agree`], with [`same_but`]'s `bucketed`.
fn agree_but(what: &str, files: &[&str], clickhouse: &[&str], bucketed: bool) -> Value {
    let (f, c) = (run(files), run(clickhouse));
    assert_eq!(
        f.status.code(),
        c.status.code(),
        "{what}: exit status\nfiles: {}\nclickhouse: {}",
        text(&f.stderr),
        text(&c.stderr)
    );
    let key = if files[0] == "top" { "top" } else { "report" };
    let (a, b) = (answer(&f, key), answer(&c, key));
    if let Err(e) = same_but(&a, &b, what, bucketed) {
        panic!(
            "{what}: the answers differ at {e}\nclickhouse said: {}",
            text(&c.stderr)
        );
    }
    assert!(
        text(&c.stderr).contains("answered by ClickHouse"),
        "{what}: {}",
        text(&c.stderr)
    );
    b
}

struct Fixture {
    _dir: tempfile::TempDir,
    base: String,
    cand: String,
    all: String,
    recent: String,
    older: String,
    /// `all` in the order of `ts`: the order the server meets records in
    /// when it keeps the first of them (pprof's label tuples under a cap).
    sorted: String,
    /// `all` followed by a record cut in its middle.
    damaged: String,
    recent_from: u64,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let end = now_ns();
    let base = build(11, "b41", 6_000, end, 1.0, 0);
    let cand = build(12, "b42", 6_000, end, 1.06, 20);
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (b, c, a, r) = (
        path("base.msgpack"),
        path("cand.msgpack"),
        path("all.msgpack"),
        path("recent.msgpack"),
    );
    write(Path::new(&b), &base);
    write(Path::new(&c), &cand);
    let mut all: Vec<Record> = base.iter().chain(&cand).cloned().collect();
    all.extend(status_records(end));
    write(Path::new(&a), &all);
    let mut sorted = all.clone();
    sorted.sort_by_key(|r| r.ts);
    let s = path("sorted.msgpack");
    write(Path::new(&s), &sorted);
    let recent_from = end - 20 * 60_000_000_000;
    let recent: Vec<Record> = all
        .iter()
        .filter(|r| r.ts >= recent_from)
        .cloned()
        .collect();
    write(Path::new(&r), &recent);
    let older: Vec<Record> = all.iter().filter(|r| r.ts < recent_from).cloned().collect();
    let o = path("older.msgpack");
    write(Path::new(&o), &older);
    let d = path("damaged.msgpack");
    let mut bytes = std::fs::read(&a).unwrap();
    let last = base[0].to_msgpack();
    bytes.extend_from_slice(&last[..last.len() / 2]);
    std::fs::write(&d, bytes).unwrap();
    Fixture {
        _dir: dir,
        base: b,
        cand: c,
        all: a,
        recent: r,
        older: o,
        sorted: s,
        damaged: d,
        recent_from,
    }
}

/// Every question both ways, on the records of `f` loaded at `url`.
fn questions_agree(engine: &str, url: &str, f: &Fixture) {
    let ch = |args: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.extend(["--clickhouse", url, "--source", "raw"].map(str::to_string));
        v
    };
    let call = |what: &str, files: Vec<&str>, clickhouse: Vec<String>| {
        let clickhouse: Vec<&str> = clickhouse.iter().map(String::as_str).collect();
        agree(&format!("{engine}: {what}"), &files, &clickhouse)
    };
    let zone = format!("zone={HOSTILE}");

    let r = call(
        "report",
        vec!["report", "--format", "json", &f.all],
        ch(&["report", "--format", "json", "--all"]),
    );
    assert_eq!(r["records"], 12_000 + STATUS_RECORDS);
    // The drops per process, from the status records.
    let drops = &r["drops"];
    assert_eq!(drops["processes"], 5, "{engine}: {drops}");
    assert_eq!(drops["queue_full"], 40 + 33 + 46 + 12, "{engine}: {drops}");
    // The counters the status records say could not be read, with why.
    let unavailable = &r["unavailable"];
    assert_eq!(
        unavailable["instructions"], "no hardware PMU (ENOENT)",
        "{engine}: {unavailable}"
    );
    assert_eq!(
        unavailable.as_object().map(|o| o.len()),
        Some(2),
        "{engine}: {unavailable}"
    );
    assert_eq!(drops["closed"], 1, "{engine}: {drops}");
    let r = call(
        "report by status and zone",
        vec![
            "report",
            "--format",
            "json",
            "--by",
            "status",
            "--by",
            "label=zone",
            &f.all,
        ],
        ch(&[
            "report",
            "--format",
            "json",
            "--all",
            "--by",
            "status",
            "--by",
            "label=zone",
        ]),
    );
    let groups = r["groups"].as_array().unwrap();
    assert!(
        groups
            .iter()
            .any(|g| g["metrics"]["instructions"]["exact"] == true)
            && groups
                .iter()
                .any(|g| g["metrics"]["instructions"]["exact"] == false),
        "{engine}: the fixture should hold exact and bucketed sketches"
    );
    let r = call(
        "report of a hostile label",
        vec!["report", "--format", "json", "--label", &zone, &f.all],
        ch(&[
            "report", "--format", "json", "--since", "2h", "--label", &zone,
        ]),
    );
    assert!(r["filtered"].as_u64().unwrap() > 0 && r["groups"].as_array().unwrap().len() > 3);
    call(
        "report of a time range",
        vec!["report", "--format", "json", &f.recent],
        ch(&[
            "report",
            "--format",
            "json",
            "--from",
            &f.recent_from.to_string(),
        ]),
    );

    let c = call(
        "compare with a gate",
        vec![
            "compare",
            "--format",
            "json",
            "--fail-above",
            "2%",
            &f.base,
            "--against",
            &f.cand,
        ],
        ch(&[
            "compare",
            "--format",
            "json",
            "--fail-above",
            "2%",
            "--all",
            "--base",
            "build=b41",
            "--against",
            "build=b42",
        ]),
    );
    let shown = c.to_string();
    assert!(
        shown.contains("\"fail\""),
        "{engine}: the regression on /feed is caught: {shown}"
    );
    let split = f.recent_from.to_string();
    call(
        "compare of two time ranges",
        vec![
            "compare",
            "--format",
            "json",
            "--fail-above",
            "5%",
            &f.older,
            "--against",
            &f.recent,
        ],
        ch(&[
            "compare",
            "--format",
            "json",
            "--fail-above",
            "5%",
            "--base-from",
            "0",
            "--base-until",
            &split,
            "--from",
            &split,
        ]),
    );
    call(
        "compare of one host without a gate",
        vec![
            "compare",
            "--format",
            "json",
            "--label",
            "host=web-1",
            &f.base,
            "--against",
            &f.cand,
        ],
        ch(&[
            "compare",
            "--format",
            "json",
            "--all",
            "--label",
            "host=web-1",
            "--base",
            "build=b41",
            "--against",
            "build=b42",
        ]),
    );
    call(
        "timeseries with alerts",
        vec![
            "timeseries",
            "--format",
            "json",
            "--window",
            "1m",
            "--alert",
            "2%",
            &f.all,
        ],
        ch(&[
            "timeseries",
            "--format",
            "json",
            "--window",
            "1m",
            "--alert",
            "2%",
            "--all",
        ]),
    );
    call(
        "timeseries of a hostile label",
        vec![
            "timeseries",
            "--format",
            "json",
            "--window",
            "5m",
            "--label",
            &zone,
            &f.all,
        ],
        ch(&[
            "timeseries",
            "--format",
            "json",
            "--window",
            "5m",
            "--all",
            "--label",
            &zone,
        ]),
    );

    // One trace's requests, and its call trees.
    let trace_id = format!("{:032x}", TRACE_BASE + 3);
    let r = call(
        "report of one trace",
        vec![
            "report",
            "--format",
            "json",
            "--trace-id",
            &trace_id,
            &f.all,
        ],
        ch(&[
            "report",
            "--format",
            "json",
            "--all",
            "--trace-id",
            &trace_id,
        ]),
    );
    let sampled: u64 = r["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["sampled"].as_u64().unwrap())
        .sum();
    assert!(
        sampled > 50 && sampled < 1_000,
        "{engine}: {sampled} records of one trace"
    );
    let label = format!("trace_id={trace_id}");
    call(
        "top of one trace",
        vec!["top", "--format", "json", "--label", &label, &f.all],
        ch(&["top", "--format", "json", "--all", "--label", &label]),
    );

    let t = call(
        "top",
        vec!["top", "--format", "json", &f.all],
        ch(&["top", "--format", "json", "--all"]),
    );
    assert!(t.to_string().contains("db::decode"), "{engine}: {t}");
    for drill in [
        ["--callers", "db::query"],
        ["--callees", "db::query"],
        ["--fleet", "500"],
    ] {
        call(
            &format!("top {}", drill.join(" ")),
            vec!["top", "--format", "json", drill[0], drill[1], &f.all],
            ch(&["top", "--format", "json", "--all", drill[0], drill[1]]),
        );
    }
    call(
        "top of one endpoint in CPU time, hostile label",
        vec![
            "top",
            "--format",
            "json",
            "--metric",
            "cpu",
            "--endpoint",
            "/feed",
            "--label",
            &zone,
            &f.all,
        ],
        ch(&[
            "top",
            "--format",
            "json",
            "--all",
            "--metric",
            "cpu",
            "--endpoint",
            "/feed",
            "--label",
            &zone,
        ]),
    );
    // Folded stacks, and the differential ones, byte for byte.
    for (files, clickhouse) in [
        (
            vec!["flamegraph", "--folded", &f.all],
            ch(&["flamegraph", "--folded", "--all"]),
        ),
        (
            vec!["flamegraph", "--folded", &f.cand, "--diff", &f.base],
            ch(&[
                "flamegraph",
                "--folded",
                "--all",
                "--label",
                "build=b42",
                "--diff",
                "build=b41",
            ]),
        ),
        (
            vec!["flamegraph", "--folded", &f.base, "--against", &f.cand],
            ch(&[
                "flamegraph",
                "--folded",
                "--all",
                "--base",
                "build=b41",
                "--against",
                "build=b42",
            ]),
        ),
    ] {
        let (a, b) = (run(&files), run_all(&clickhouse));
        assert!(
            a.status.success() && b.status.success(),
            "{}",
            text(&b.stderr)
        );
        assert!(!a.stdout.is_empty());
        // The same lines (differential stacks are written sorted; sorted
        // here too, the comparison does not rest on it).
        let lines = |o: &Output| {
            let mut l: Vec<String> = text(&o.stdout).lines().map(str::to_string).collect();
            l.sort();
            l
        };
        assert_eq!(lines(&a), lines(&b), "{engine}: {files:?}");
    }

    // The pprof profile: the same samples, as go tool pprof reads them
    // (function ids follow the order names were met, which differs).
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let (a, b) = (
        dirs[0].path().join("p.pb.gz"),
        dirs[1].path().join("p.pb.gz"),
    );
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let out = run(&["pprof", "-o", a, &f.all]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let args = ch(&["pprof", "--all", "-o", b]);
    let out = run_all(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    if crate::pprof::go_available(&format!("{engine} pprof")) {
        for index in ["instructions", "calls"] {
            let traces = |p: &str| {
                let mut lines: Vec<String> =
                    crate::pprof::pprof(&["-traces", &format!("-sample_index={index}"), p])
                        .lines()
                        .map(str::to_string)
                        .collect();
                lines.sort();
                lines
            };
            let (x, y) = (traces(a), traces(b));
            assert!(x.len() > 20, "{engine}: {x:?}");
            assert_eq!(x, y, "{engine}: pprof -traces -sample_index={index}");
        }
    }

    pprof_labels_agree(engine, f, &ch);

    // The queries shown are what ran, the hostile value only as a
    // parameter (current) or an escaped literal (18.16).
    let out = run_all(&ch(&["report", "--all", "--print-sql", "--label", &zone]));
    let err = crate::cli::text(&out.stderr);
    assert!(err.contains("FROM dynostats.records WHERE"), "{err}");
    assert!(err.contains("dynostats.status (raw rows)"), "{err}");
    assert!(!err.contains("DROP TABLE dynostats.records; --\t"), "{err}");
}

/// `pprof --label-key` both ways: the same samples with the same labels
/// (a hostile key, a hostile value, trace ids, labels absent on some
/// records), `-tagfocus` picking the same ones; beyond `--max-paths`
/// tuples, the same records folded as from the files in `ts` order.
fn pprof_labels_agree(engine: &str, f: &Fixture, ch: &dyn Fn(&[&str]) -> Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let go = crate::pprof::go_available(&format!("{engine} pprof --label-key"));
    // Samples by (stack, labels) -> values (a key twice fails), and every
    // (label, value) met.
    let samples = |profile: &str| {
        let mut out = std::collections::BTreeMap::new();
        let mut labels = std::collections::BTreeSet::new();
        for s in crate::pprof::decode(profile)["samples"].as_array().unwrap() {
            let key = format!("{} {}", s["stack"], s["labels"]);
            assert!(
                out.insert(key.clone(), s["values"].clone()).is_none(),
                "{key} twice"
            );
            for (k, v) in s["labels"].as_object().unwrap() {
                labels.insert((k.clone(), v.as_str().unwrap().to_string()));
            }
        }
        (out, labels)
    };
    let trace = format!("{TRACE_BASE:032x}");
    for (keys, want) in [
        (
            &["build", "zone"][..],
            &[("build", "b41"), ("build", "b42"), ("zone", HOSTILE)][..],
        ),
        (
            &["trace_id", HOSTILE_KEY, "host"],
            &[
                ("trace_id", trace.as_str()),
                (HOSTILE_KEY, HOSTILE),
                (HOSTILE_KEY, "odd"),
                ("host", "web-1"),
            ],
        ),
    ] {
        let mut args = vec!["pprof".to_string()];
        for k in keys {
            args.extend(["--label-key".to_string(), k.to_string()]);
        }
        let (a, b) = (path("files.pb.gz"), path("clickhouse.pb.gz"));
        let mut files: Vec<&str> = args.iter().map(String::as_str).collect();
        files.extend(["-o", &a, &f.all]);
        let out = run(&files);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let mut clickhouse: Vec<&str> = args.iter().map(String::as_str).collect();
        clickhouse.extend(["--all", "-o", &b]);
        let out = run_all(&ch(&clickhouse));
        assert!(
            out.status.success(),
            "{engine}: pprof {keys:?}: {}",
            text(&out.stderr)
        );
        if !go {
            continue;
        }
        let ((x, labels), (y, _)) = (samples(&a), samples(&b));
        for (k, v) in want {
            assert!(
                labels.contains(&(k.to_string(), v.to_string())),
                "{engine}: no {k}={v} in {labels:?}"
            );
        }
        assert!(x.len() > 40, "{engine}: {keys:?}: {x:?}");
        assert_eq!(x, y, "{engine}: pprof {keys:?}");
        if keys.contains(&"build") {
            // pprof's own filter by label: the same samples, fewer.
            let traces = |p: &str| {
                let mut lines: Vec<String> =
                    crate::pprof::pprof(&["-traces", "-tagfocus", "build=b42", p])
                        .lines()
                        .filter(|l| !l.starts_with("File:") && !l.starts_with("Showing"))
                        .map(str::to_string)
                        .collect();
                lines.sort();
                lines
            };
            let (x, y) = (traces(&a), traces(&b));
            assert!(
                x.iter().any(|l| l.contains("build:  b42")),
                "{engine}: {x:?}"
            );
            assert!(!x.iter().any(|l| l.contains("b41")), "{engine}: {x:?}");
            assert_eq!(x, y, "{engine}: -tagfocus build=b42");
        }
    }
    // Beyond the caps: the tuples and (path, tuple) pairs met first keep
    // their values, the others are summed under `<other>`, the records
    // folded counted: as from the files read in `ts` order.
    let (a, b) = (path("files.pb.gz"), path("clickhouse.pb.gz"));
    let cap = ["pprof", "--label-key", "span_id", "--max-paths", "60"];
    let files = run(&[&cap[..], &["-o", &a, &f.sorted]].concat());
    let args = [&cap[..], &["--all", "-o", &b]].concat();
    let clickhouse = run_all(&ch(&args));
    assert!(
        files.status.success() && clickhouse.status.success(),
        "{engine}: {}",
        text(&clickhouse.stderr)
    );
    // A count of what was met beyond the cap, the first number of the
    // stderr line saying `phrase`: the same from both, and above `least`.
    // The records folded by label tuple; the scopes, edges, paths and
    // (path, tuple) pairs counted once per node, as the files count them,
    // though the server sums each path's nodes into one row.
    let same_count = |phrase: &str, files: &Output, clickhouse: &Output, least: u64| {
        let count = |out: &Output| {
            text(&out.stderr)
                .lines()
                .find(|l| l.contains(phrase))
                .map(|l| l.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap())
        };
        assert!(
            count(files).is_some_and(|n| n > least),
            "{phrase}: {}",
            text(&files.stderr)
        );
        assert_eq!(
            count(files),
            count(clickhouse),
            "{engine}: {phrase}: {}",
            text(&clickhouse.stderr)
        );
    };
    same_count(
        "had label values beyond --max-paths",
        &files,
        &clickhouse,
        50,
    );
    same_count("scopes beyond --max-paths", &files, &clickhouse, 100);
    // The kept scopes, paths and edges too: the server hands the paths
    // over in the order the file reader meets their nodes.
    for cap in ["4", "9"] {
        let top = ["top", "--format", "json", "--max-paths", cap];
        let (x, y) = (
            run(&[&top[..], &[&f.sorted]].concat()),
            run_all(&ch(&[&top[..], &["--all"]].concat())),
        );
        if let Err(e) = same_but(&answer(&x, "top"), &answer(&y, "top"), "top", false) {
            panic!("{engine}: top --max-paths {cap}: the answers differ at {e}");
        }
        let folded = ["flamegraph", "--folded", "--max-paths", cap];
        let (x, y) = (
            run(&[&folded[..], &[&f.sorted]].concat()),
            run_all(&ch(&[&folded[..], &["--all"]].concat())),
        );
        assert!(text(&x.stdout).contains("<other>"), "{}", text(&x.stdout));
        assert_eq!(
            text(&x.stdout),
            text(&y.stdout),
            "{engine}: flamegraph --folded --max-paths {cap}"
        );
    }
    let (c, d) = (path("seven.pb.gz"), path("seven-clickhouse.pb.gz"));
    for (files, clickhouse) in [
        (
            run(&["top", "--max-paths", "4", &f.sorted]),
            run_all(&ch(&["top", "--max-paths", "4", "--all"])),
        ),
        (
            run(&["pprof", "--max-paths", "7", "-o", &c, &f.sorted]),
            run_all(&ch(&["pprof", "--max-paths", "7", "--all", "-o", &d])),
        ),
    ] {
        same_count("scopes beyond --max-paths", &files, &clickhouse, 100);
    }
    if go {
        let ((x, xl), (y, _)) = (samples(&a), samples(&b));
        let spans = xl.iter().filter(|(k, _)| k == "span_id").count();
        assert!(
            spans > 5 && spans <= 61 && xl.contains(&("span_id".into(), "<other>".into())),
            "{engine}: {xl:?}"
        );
        assert_eq!(x, y, "{engine}: pprof --label-key span_id --max-paths 60");
    }
}

fn load(url: &str, f: &Fixture) {
    let out = run(&["clickhouse", "init", "--clickhouse", url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    load_damaged(url, f);
}

/// Loads the damaged copy of every record: what comes before the damage
/// goes in (the answers then equal those of `f.all`), the load exits 3.
fn load_damaged(url: &str, f: &Fixture) {
    let out = run(&["load", "--clickhouse", url, "--batch", "2500", &f.damaged]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("inserted {} records", 12_000 + STATUS_RECORDS)),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn answers_from_clickhouse_18_16_equal_the_files() {
    let test = "answers_from_clickhouse_18_16_equal_the_files";
    let Some(server) = Server::start(test, free_port(), &[]) else {
        return;
    };
    let f = fixture();
    let url = server.url();
    load(&url, &f);
    questions_agree("18.16", &url, &f);

    // Errors: no time range, a missing table, a dead server.
    let out = run(&["report", "--clickhouse", &url]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--since"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&[
        "report",
        "--clickhouse",
        &url,
        "--all",
        "--database",
        "nope",
    ]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("database nope") && err.contains("clickhouse init"),
        "{err}"
    );
    assert!(out.stdout.is_empty() && !err.contains("answered"), "{err}");
    // An answer larger than the client reads is an error, never cut.
    let client =
        dynostats::clickhouse::Client::new(dynostats::clickhouse::Server::parse(&url).unwrap());
    let limit = dynostats::clickhouse::Client::MAX_ANSWER_BYTES;
    assert_eq!(
        // Lines of 8 digits and a newline: 9 bytes each.
        client.query(&format!(
            "SELECT toString(number + 10000000) FROM system.numbers LIMIT {}",
            limit / 9 + 10
        )),
        Err(dynostats::clickhouse::ClickHouseError::TooLarge(limit))
    );
    let just = client
        .query(&format!(
            "SELECT toString(number + 10000000) FROM system.numbers LIMIT {}",
            limit / 9
        ))
        .unwrap();
    assert_eq!(just.len() as u64, limit / 9 * 9);
    // A database without the tables.
    server.query("CREATE DATABASE bare");
    let out = run(&["top", "--clickhouse", &url, "--all", "--database", "bare"]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("bare.profile_nodes") && err.contains("clickhouse init"),
        "{err}"
    );
    let dead = format!("http://127.0.0.1:{}/", free_port());
    let out = run(&[
        "compare",
        "--clickhouse",
        &dead,
        "--all",
        "--base",
        "build=b41",
        "--against",
        "build=b42",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("127.0.0.1"),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "nothing printed as if complete");
}

#[test]
fn answers_from_two_shards_equal_the_files() {
    let test = "answers_from_two_shards_equal_the_files";
    let ports = [free_port(), free_port()];
    let Some(a) = Server::start(test, ports[0], &ports) else {
        return;
    };
    let Some(b) = Server::start(test, ports[1], &ports) else {
        return;
    };
    for s in [&a, &b] {
        let url = s.url();
        let out = run(&[
            "clickhouse",
            "init",
            "--cluster",
            "two",
            "--without-replication",
            "--clickhouse",
            &url,
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let f = fixture();
    load_damaged(&a.url(), &f);
    assert!(a.count("dynostats.records_local") > 0 && b.count("dynostats.records_local") > 0);
    questions_agree("two shards", &b.url(), &f);
}

/// The rollup's answers (current ClickHouse): compare and timeseries equal
/// to the files', the report's quantiles within the sketch's 1/128; what
/// the rollup cannot answer refused with `--source rollup` and read from
/// the raw rows with `auto`.
fn rollup_agrees(url: &str, f: &Fixture) {
    let ch = |args: &[&str], source: &str| -> Vec<String> {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.extend(["--clickhouse", url, "--source", source].map(str::to_string));
        v
    };
    let agree_from = |what: &str, files: &[&str], args: &[&str], bucketed: bool| {
        let clickhouse = ch(args, "rollup");
        let clickhouse: Vec<&str> = clickhouse.iter().map(String::as_str).collect();
        let out = run(&clickhouse);
        assert!(
            text(&out.stderr).contains(".rollup (per build and minute"),
            "{what}: {}",
            text(&out.stderr)
        );
        agree_but(&format!("rollup: {what}"), files, &clickhouse, bucketed)
    };
    let r = agree_from(
        "report",
        &["report", "--format", "json", &f.all],
        &["report", "--format", "json", "--all"],
        true,
    );
    assert!(r["groups"].as_array().unwrap().len() > 8);
    let files = answer(&run(&["report", "--format", "json", &f.all]), "report");
    sketches_agree("rollup: report", &files, &r);
    // A range that cuts an hour: the whole hours from rollup_sketch, the
    // rest from the raw rows; against the raw rows' answer.
    let from = (now_ns() - 40 * 60_000_000_000) / 60_000_000_000 * 60_000_000_000;
    let range = ["report", "--format", "json", "--from", &from.to_string()];
    let out = run_all(&ch(&range, "rollup"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let files = answer(&run_all(&ch(&range, "raw")), "report");
    let r = answer(&out, "report");
    if let Err(e) = same_but(&files, &r, "rollup: report of a range", true) {
        panic!("rollup: report of a range: {e}");
    }
    sketches_agree("rollup: report of a range", &files, &r);
    agree_from(
        "compare with a gate",
        &[
            "compare",
            "--format",
            "json",
            "--fail-above",
            "2%",
            &f.base,
            "--against",
            &f.cand,
        ],
        &[
            "compare",
            "--format",
            "json",
            "--fail-above",
            "2%",
            "--all",
            "--base",
            "build=b41",
            "--against",
            "build=b42",
        ],
        false,
    );
    agree_from(
        "timeseries with alerts",
        &[
            "timeseries",
            "--format",
            "json",
            "--window",
            "2m",
            "--alert",
            "2%",
            &f.all,
        ],
        &[
            "timeseries",
            "--format",
            "json",
            "--window",
            "2m",
            "--alert",
            "2%",
            "--all",
        ],
        false,
    );
    // With auto: time series and comparisons from the rollup, reports
    // too unless its sketch rows outnumber the records (as in these
    // sparse records).
    let by_builds = [
        "compare",
        "--all",
        "--base",
        "build=b41",
        "--against",
        "build=b42",
    ];
    for (args, table) in [
        (&["report", "--all"][..], ".records (raw rows)"),
        (
            &["timeseries", "--all", "--window", "1m"],
            ".rollup (per build",
        ),
        (&by_builds, ".rollup (per build"),
    ] {
        let out = run_all(&ch(args, "auto"));
        assert!(
            text(&out.stderr).contains(table),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    // Every profile record was written with its amounts per function:
    // a comparison's functions come from rollup_functions too.
    let out = run_all(&ch(&by_builds, "rollup"));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(".rollup_functions (profiled") && !stderr.contains(".profile_nodes (raw"),
        "{stderr}"
    );
    // Beyond the rollup: refused when asked for, raw rows with auto.
    for args in [
        &["report", "--all", "--by", "status"][..],
        &["report", "--all", "--label", "host=web-1"],
        &["timeseries", "--all", "--window", "90s"],
        &["report", "--from", "1000000001"],
    ] {
        let refused = run_all(&ch(args, "rollup"));
        assert_eq!(
            refused.status.code(),
            Some(6),
            "{args:?}: {}",
            text(&refused.stderr)
        );
        assert!(
            text(&refused.stderr).contains("the rollup"),
            "{}",
            text(&refused.stderr)
        );
        let auto = run_all(&ch(args, "auto"));
        assert!(
            auto.status.code().is_some_and(|c| c != 6),
            "{args:?}: {}",
            text(&auto.stderr)
        );
        assert!(
            text(&auto.stderr).contains(".records (raw rows)"),
            "{}",
            text(&auto.stderr)
        );
    }
}

/// Whether the report `b` (from the rollup) has the quantiles of the
/// report `a` (from files): identical where `a`'s sketch is bucketed
/// (the same buckets, so the same quantiles), and where `b`'s is exact
/// (then `a`'s is too); within 1/128 elsewhere (checked by [`same_but`]).
fn sketches_agree(what: &str, a: &Value, b: &Value) {
    let (ga, gb) = (
        a["groups"].as_array().unwrap(),
        b["groups"].as_array().unwrap(),
    );
    assert_eq!(ga.len(), gb.len(), "{what}: groups");
    let (mut bucketed, mut exact) = (0, 0);
    for (x, y) in ga.iter().zip(gb) {
        for (m, mx) in x["metrics"].as_object().unwrap() {
            let my = &y["metrics"][m];
            let strict = if mx["exact"] == false {
                bucketed += 1;
                true
            } else if my["exact"] == true {
                exact += 1;
                true
            } else {
                false
            };
            if strict {
                assert_eq!(
                    (&mx["p50"], &mx["p99"], &mx["exact"]),
                    (&my["p50"], &my["p99"], &my["exact"]),
                    "{what}: {} {m}",
                    x["name"]
                );
            }
        }
    }
    assert!(
        bucketed > 5 && exact > 5,
        "{what}: the fixture should hold bucketed ({bucketed}) and exact ({exact}) sketches"
    );
}

/// [`run`] of owned arguments.
fn run_all(args: &[String]) -> Output {
    run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn answers_from_current_clickhouse_equal_the_files() {
    let test = "answers_from_current_clickhouse_equal_the_files";
    let Some(standin) = crate::ch::Standin::start(test) else {
        return;
    };
    let url = standin.url();
    let f = fixture();
    load(&url, &f);
    questions_agree("chdb", &url, &f);
    rollup_agrees(&url, &f);
    let out = run(&[
        "report",
        "--clickhouse",
        &url,
        "--all",
        "--print-sql",
        "--label",
        "zone=x'y",
    ]);
    assert!(
        text(&out.stderr).contains("{p0:String}"),
        "{}",
        text(&out.stderr)
    );
    drop(standin);
}

/// A database of schema version 2 (`tests/clickhouse/schema_v2.sql`: what
/// `dynostats clickhouse schema` printed before version 3) holding
/// records: this release's loader writes into it (leaving out the
/// columns it lacks); `init` upgrades it (the sketch table and its view,
/// the columns of version 4 and `rollup_functions`, the version row) and
/// no answer goes wrong: the rollup's sketches, without the records
/// loaded before, are refused with `--source rollup` and passed over by
/// `auto`, except for a range of records loaded since; after `init
/// --backfill` the rollup answers as the files do. The profile records
/// loaded before have no amounts per function: comparisons read their
/// rows per record, beside the newer ones' amounts.
#[test]
fn a_version_2_database_upgrades_to_this_version() {
    use dynostats::clickhouse::{Client, Server};
    let test = "a_version_2_database_upgrades_to_this_version";
    let Some(standin) = crate::ch::Standin::start(test) else {
        return;
    };
    let url = standin.url();
    let client = Client::new(Server::parse(&url).unwrap());
    for statement in include_str!("../clickhouse/schema_v2.sql").split(";\n") {
        let sql: Vec<&str> = statement.lines().filter(|l| !l.starts_with("--")).collect();
        let sql = sql.join("\n");
        if !sql.trim().is_empty() {
            client.query(&sql).unwrap();
        }
    }
    let version = || {
        client
            .query("SELECT max(version) FROM dynostats.schema_version")
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(version(), "2");
    let dir = tempfile::tempdir().unwrap();
    let end = now_ns() / 60_000_000_000 * 60_000_000_000;
    let older = build(21, "b41", 3_000, end - 60 * 60_000_000_000, 1.0, 0);
    let mut newer = build(22, "b42", 3_000, end, 1.06, 20);
    // Dense records: many per hour, few distinct values, so fewer sketch
    // rows than records.
    let mut rng = rng::Rng(23);
    for i in 0..3_000u64 {
        let mut r = Record::new(RecordKind::Request, "/dense");
        r.method = Some("GET".into());
        r.ts = end - 1 - rng.below(50 * 60_000_000_000);
        r.weight = 1 + rng.below(100);
        r.wall_ns = 1_000_000 * (1 + rng.below(20));
        r.cpu_ns = Some(500_000 * (1 + i % 10));
        r.instructions = Some(1_000 * (1 + rng.below(100)));
        r.labels.insert("build", "b43");
        newer.push(r);
    }
    // Sparse records: one per endpoint, so a sketch row per metric and
    // record, more sketch rows than records.
    for i in 0..60u64 {
        let mut r = Record::new(RecordKind::Request, &format!("/sparse/{i}"));
        r.method = Some("GET".into());
        r.ts = end - 1 - rng.below(50 * 60_000_000_000);
        r.wall_ns = 1_000_000 + rng.below(1 << 30);
        r.cpu_ns = Some(1_000 + rng.below(1 << 28));
        r.instructions = Some(1_000 + rng.below(1 << 32));
        r.labels.insert("build", "b40");
        newer.push(r);
    }
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (o, n, a) = (path("older"), path("newer"), path("all"));
    write(Path::new(&o), &older);
    write(Path::new(&n), &newer);
    let all: Vec<Record> = older.iter().chain(&newer).cloned().collect();
    write(Path::new(&a), &all);
    // This release's loader writes into a version 2 database (its raw
    // tables are this release's): the older records go in before the
    // upgrade, so they have no sketch rows.
    let out = run(&["load", "--clickhouse", &url, "--batch", "2500", &o]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(version(), "2");
    let load = || run(&["load", "--clickhouse", &url, "--batch", "2500", &n]);
    let out = run(&["clickhouse", "init", "--clickhouse", &url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(version(), dynostats::clickhouse::SCHEMA_VERSION.to_string());
    assert!(client.has_scope_columns("dynostats").unwrap());
    let upgraded_view = "records_in_profile_nodes now writes each profile record's amounts";
    assert!(
        text(&out.stderr).contains(upgraded_view),
        "{}",
        text(&out.stderr)
    );
    let out = load();
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Init run again adds nothing (the columns are there, the view's
    // query is this release's).
    let out = run(&["clickhouse", "init", "--clickhouse", &url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains(upgraded_view),
        "{}",
        text(&out.stderr)
    );

    // The older profile records have no amounts per function (their rows
    // read 0 in the columns added) nor rows in rollup_functions: a
    // comparison groups their rows per record, the newer ones' are
    // summed as they are, and a side holding both adds the two.
    let unknown = client
        .query(
            "SELECT countIf(scope_first = 0), countIf(scope_first = 1) \
             FROM dynostats.profile_nodes FORMAT TabSeparated",
        )
        .unwrap();
    let counts: Vec<u64> = unknown
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(counts[0] > 0 && counts[1] > 0, "{unknown}");
    let split = (end - 50 * 60_000_000_000).to_string();
    let until = (end + 60_000_000_000).to_string();
    let mixed = [
        "compare",
        "--format",
        "json",
        "--base-from",
        "0",
        "--base-until",
        &until,
        "--from",
        &split,
        "--clickhouse",
        &url,
        "--source",
    ];
    let files = ["compare", "--format", "json", &a, "--against", &n];
    for (source, tables) in [
        ("raw", &[".profile_nodes (raw rows)"][..]),
        (
            "rollup",
            &[".profile_nodes (raw rows)", ".rollup_functions (profiled"][..],
        ),
    ] {
        let mut args = mixed.to_vec();
        args.push(source);
        let c = agree(&format!("mixed rows, {source}"), &files, &args);
        assert!(
            c.to_string().contains("\"function\""),
            "the fixture compares functions: {c}"
        );
        let stderr = text(&run_all(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>()).stderr);
        for table in tables {
            assert!(stderr.contains(table), "{source}: {table}: {stderr}");
        }
    }

    let report = |source: &str, range: &[&str]| {
        let mut args = vec!["report", "--format", "json", "--clickhouse", &url];
        args.extend(["--source", source]);
        args.extend(range);
        run(&args)
    };
    // Half filled: the rollup refuses, auto reads the raw rows.
    let out = report("rollup", &["--all"]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("init --backfill") && out.stdout.is_empty(),
        "{}",
        text(&out.stderr)
    );
    let files = answer(&run(&["report", "--format", "json", &a]), "report");
    let out = report("auto", &["--all"]);
    if let Err(e) = same_but(&files, &answer(&out, "report"), "half filled", false) {
        panic!("half filled, auto: {e}");
    }
    assert!(
        text(&out.stderr).contains(".records (raw rows)")
            && !text(&out.stderr).contains("dynostats.rollup"),
        "{}",
        text(&out.stderr)
    );
    // The records loaded since the upgrade have their sketches.
    let since = (end - 50 * 60_000_000_000).to_string();
    let out = report("rollup", &["--from", &since]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let newer_files = answer(&run(&["report", "--format", "json", &n]), "report");
    let r = answer(&out, "report");
    if let Err(e) = same_but(&newer_files, &r, "upgraded: newer", true) {
        panic!("upgraded, the records loaded since: {e}");
    }
    sketches_agree("upgraded: newer", &newer_files, &r);

    // Backfilled: the rollup answers for every record.
    let out = run(&["clickhouse", "init", "--backfill", "--clickhouse", &url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("backfilled dynostats.rollup_sketch"),
        "{}",
        text(&out.stderr)
    );
    let out = report("rollup", &["--all"]);
    assert!(
        text(&out.stderr).contains(".rollup_sketch (quantiles"),
        "{}",
        text(&out.stderr)
    );
    let r = answer(&out, "report");
    if let Err(e) = same_but(&files, &r, "backfilled", true) {
        panic!("backfilled: {e}");
    }
    sketches_agree("backfilled", &files, &r);
    // --since starts on a whole minute: the rollup answers it, as the
    // files (every record is within the last three hours).
    let out = report("rollup", &["--since", "3h"]);
    assert!(out.status.success(), "--since: {}", text(&out.stderr));
    if let Err(e) = same_but(&files, &answer(&out, "report"), "--since 3h", true) {
        panic!("--since 3h from the rollup: {e}");
    }
    // Auto reads the sketch rows where they are fewer than the records.
    let dense = answer(
        &run(&["report", "--format", "json", "--label", "build=b43", &a]),
        "report",
    );
    for (label, files, table) in [
        ("build=b43", &dense, ".rollup_sketch (quantiles"),
        (
            "build=b40",
            &answer(
                &run(&["report", "--format", "json", "--label", "build=b40", &a]),
                "report",
            ),
            ".records (raw rows)",
        ),
    ] {
        let out = report("auto", &["--all", "--label", label]);
        assert!(
            text(&out.stderr).contains(table),
            "{label}: {}",
            text(&out.stderr)
        );
        if let Err(e) = same_but(files, &answer(&out, "report"), label, true) {
            panic!("auto, {label}: {e}");
        }
    }
    assert_eq!(dense["groups"][0]["metrics"]["cpu_ns"]["exact"], true);

    // A backfill run again changes nothing.
    let before = answer(&report("rollup", &["--all"]), "report");
    let out = run(&["clickhouse", "init", "--backfill", "--clickhouse", &url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(answer(&report("rollup", &["--all"]), "report"), before);

    // The collector tier's view of version 2, given this release's query
    // in place, writes a record's amounts per function on its rows.
    let detail = r#"{"timer":"instructions","nodes":[{"name":"/collector","calls":1,"inclusive":10},{"name":"f","parent":0,"calls":1,"inclusive":6},{"name":"f","parent":1,"calls":1,"inclusive":4},{"name":"g","parent":0,"calls":1,"inclusive":3}]}"#;
    let record = serde_json::json!({
        "v": 1, "kind": "profile", "ts": end - 1, "name": "/collector",
        "labels": {"build": "b44"}, "weight": 1, "wall_ns": 0, "source": "test",
        "pid": 7, "detail": detail,
    });
    client
        .insert(
            "INSERT INTO dynostats.records_in FORMAT JSONEachRow",
            &[],
            record.to_string().as_bytes(),
        )
        .unwrap();
    let rows = client
        .query(
            "SELECT scope_first, scope_inclusive FROM dynostats.profile_nodes \
             WHERE name = '/collector' ORDER BY node FORMAT TabSeparated",
        )
        .unwrap();
    assert_eq!(rows, "2\t0\n1\t6\n2\t0\n1\t3\n");

    // A database of a version this release does not know is refused.
    client
        .query("INSERT INTO dynostats.schema_version (version) VALUES (5)")
        .unwrap();
    let out = load();
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("schema version 5, this loader writes into versions 2 to 4"),
        "{}",
        text(&out.stderr)
    );
    drop(standin);
}
