//! `dynostats clickhouse init`, `load` and `export` against real
//! ClickHouse: Debian's `clickhouse-server` 18.16, started here on
//! 127.0.0.1 (one server, and two shards behind a `Distributed` table),
//! and PyPI's `chdb` (the current engine, in process) through
//! `tests/clickhouse/answers.py`. Every answer is compared with the same
//! answer computed from the record files by Python's msgpack alone.
//!
//! Skipped, with the reason printed, where the server binary (or `chdb`)
//! is missing, unless `DYNOSTATS_REQUIRE_CLICKHOUSE=1`: then that is a
//! failure. CI installs both and sets it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use dynostats::record::Detail;
use dynostats::report::Sketch;
use dynostats::{Record, RecordKind};

use crate::ch::{Server, free_port, skip};
use crate::cli::{Node, profile, run, text, write};

use crate::rng;

const ANSWERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clickhouse/answers.py");

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

const NODES: [&[Node]; 2] = [
    &[
        ("/users/{id}", None, 1, 9_000, 2_000),
        ("db::query", Some(0), 2, 5_000, 4_000),
        ("db::decode", Some(1), 2, 1_000, 1_000),
        ("render", Some(0), 1, 2_000, 2_000),
    ],
    &[
        ("/search \"q\"; ü", None, 1, 700, 100),
        ("rank", Some(0), 3, 600, -50),
        ("rank", Some(1), 1, 650, 650),
    ],
];

/// Records of every kind, from `start_ns` over `minutes` minutes: some
/// counters absent, labels present or not, names with quotes, `;` and
/// non-ASCII letters, weights from 1 to 1000, values up to 2^40.
fn records(seed: u64, n: usize, start_ns: u64, minutes: u64) -> Vec<Record> {
    let mut rng = rng::Rng(seed);
    let names = ["/users/{id}", "/search \"q\"; ü", "/health", "job::nightly"];
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let ts = start_ns + rng.below(minutes * 60_000_000_000);
        let which = rng.index(names.len());
        let mut r = match rng.below(20) {
            0 => {
                let nodes = NODES[rng.index(2)];
                let timer = ["instructions", "cpu_ns"][rng.index(2)];
                profile(nodes[0].0, 1 + rng.below(100), timer, 40, nodes)
            }
            1 if i % 7 == 0 => {
                let mut r = Record::new(RecordKind::Status, "dynostats");
                let mut d = Detail::default();
                d.stats
                    .insert("records_dropped_queue_full".into(), rng.below(5));
                d.stats
                    .insert("records_emitted".into(), rng.below(1_000_000));
                if rng.below(2) == 0 {
                    d.errors.insert("udp".into(), "connection refused".into());
                }
                r.detail = Some(Box::new(d));
                r
            }
            _ => {
                let kind = if which == 3 {
                    RecordKind::Region
                } else {
                    RecordKind::Request
                };
                let mut r = Record::new(kind, names[which]);
                r.weight = [1, 10, 100, 1000][rng.index(4)];
                r.wall_ns = rng.below(1 << 30);
                let mut maybe = |bits: u32| (rng.below(5) != 0).then(|| rng.below(1 << bits));
                r.cpu_ns = maybe(28);
                r.instructions = maybe(40);
                r.cycles = maybe(36);
                r.page_faults = maybe(6);
                if rng.below(3) != 0 {
                    r.rss_start = Some(40 << 20);
                    r.rss_end = Some((40 << 20) + rng.below(1 << 20));
                }
                if kind == RecordKind::Request {
                    r.method = Some(["GET", "POST"][rng.index(2)].into());
                    r.status = (rng.below(10) != 0).then_some(200);
                }
                r.cancelled = rng.below(50) == 0;
                if rng.below(40) == 0 {
                    r.error = Some("timeout".into());
                }
                r
            }
        };
        r.ts = ts;
        r.pid = 1000 + (i % 3) as u32;
        if rng.below(10) != 0 {
            r.labels.insert("host", ["web-0", "web-1"][rng.index(2)]);
        }
        if rng.below(10) != 0 {
            r.labels.insert("build", ["a1b2", "c3d4"][rng.index(2)]);
        }
        if rng.below(4) == 0 {
            r.labels.insert("region", "eu=west");
        }
        out.push(r);
    }
    out
}

type Answers = BTreeMap<String, Vec<Vec<String>>>;

fn python(args: &[&str]) -> Output {
    Command::new("python3")
        .arg(ANSWERS)
        .args(args)
        .output()
        .expect("python3")
}

fn python_json<T: serde::de::DeserializeOwned>(args: &[&str]) -> T {
    let out = python(args);
    assert!(
        out.status.success(),
        "answers.py {args:?}: {}",
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Whether python3 can import `module`; skips (or fails under
/// DYNOSTATS_REQUIRE_CLICKHOUSE=1) when not.
fn python_has(test: &str, module: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .status()
        .is_ok_and(|s| s.success());
    ok || skip(
        test,
        &format!("python3 cannot import {module} (pip install {module})"),
    )
}

/// chdb: current ClickHouse, in process.
fn chdb_available(test: &str) -> bool {
    python_has(test, "chdb")
}

fn msgpack_available(test: &str) -> bool {
    python_has(test, "msgpack")
}

/// The queries' answers from `server` (database `db`).
fn answers(server: &Server, db: &str) -> Answers {
    let queries: BTreeMap<String, String> = python_json(&["queries"]);
    queries
        .into_iter()
        .map(|(name, sql)| {
            let rows = server.query(&sql.replace("{db}", db));
            (name, rows)
        })
        .collect()
}

fn assert_answers(what: &str, got: &Answers, want: &Answers) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (name, rows) in want {
        assert!(!rows.is_empty(), "{name}: the test data has no rows for it");
        let have = &got[name];
        for (g, w) in have.iter().zip(rows) {
            assert_eq!(g, w, "{what}, query {name}");
        }
        assert_eq!(have.len(), rows.len(), "{what}, query {name}: rows");
    }
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        text(&out.stderr)
    );
}

#[test]
fn load_into_clickhouse_18_16_answers_as_the_files_do() {
    let test = "load_into_clickhouse_18_16_answers_as_the_files_do";
    if !msgpack_available(test) {
        return;
    }
    let Some(server) = Server::start(test, free_port(), &[]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("records.msgpack");
    let now = now_ns();
    let all = records(7, 6_000, now - 3_600_000_000_000, 5);
    write(&file, &all[..4_000]);
    let file = file.to_str().unwrap();
    let url = server.url();

    ok(&run(&["clickhouse", "init", "--clickhouse", &url]));
    // init twice changes nothing.
    ok(&run(&["clickhouse", "init", "--clickhouse", &url]));
    assert_eq!(server.count("dynostats.schema_version"), 1);

    let out = run(&["load", "--clickhouse", &url, "--batch", "700", file]);
    ok(&out);
    assert!(
        text(&out.stderr).contains("inserted 4000 records"),
        "{}",
        text(&out.stderr)
    );
    let want: Answers = python_json(&["expected", file]);
    assert_answers(
        "after the first load",
        &answers(&server, "dynostats"),
        &want,
    );

    // Run again: nothing twice.
    let out = run(&["load", "--clickhouse", &url, "--batch", "700", file]);
    ok(&out);
    assert!(
        text(&out.stderr).contains("already"),
        "{}",
        text(&out.stderr)
    );
    assert_answers("after loading again", &answers(&server, "dynostats"), &want);

    // The file grows (the sink appended): only the new records go in.
    write(std::path::Path::new(file), &all);
    let out = run(&["load", "--clickhouse", &url, "--batch", "700", file]);
    ok(&out);
    let want: Answers = python_json(&["expected", file]);
    assert_answers("after the file grew", &answers(&server, "dynostats"), &want);
    // One progress row per batch of the first load, then more.
    assert!(server.count("dynostats.loads") >= 6);

    // Absent counters stay absent: the rows that carry none.
    let nulls = server.query("SELECT count() FROM dynostats.records WHERE instructions IS NULL");
    let absent = all
        .iter()
        .filter(|r| matches!(r.kind, RecordKind::Request | RecordKind::Region))
        .filter(|r| r.instructions.is_none())
        .count();
    assert_eq!(nulls[0][0], absent.to_string());
}

#[test]
fn refusals_say_why_and_exit_6() {
    let test = "refusals_say_why_and_exit_6";
    let Some(server) = Server::start(test, free_port(), &[]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("records.msgpack");
    let now = now_ns();
    write(&file, &records(11, 300, now - 60_000_000_000, 1));
    let file = file.to_str().unwrap();
    let url = server.url();

    // No schema yet.
    let out = run(&["load", "--clickhouse", &url, file]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("clickhouse init"),
        "{}",
        text(&out.stderr)
    );

    // A wrong password: refused, and the password is never printed.
    let wrong = format!("http://loader:not-the-pw@127.0.0.1:{}/", server.http);
    let out = run(&["clickhouse", "init", "--clickhouse", &wrong]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("not-the-pw"));
    assert!(!text(&out.stdout).contains("not-the-pw"));

    // The right one from the environment.
    let user = format!("http://loader@127.0.0.1:{}/", server.http);
    let out = Command::new(env!("CARGO_BIN_EXE_dynostats"))
        .args(["clickhouse", "init", "--ttl", "30", "--clickhouse", &user])
        .env("CLICKHOUSE_PASSWORD", "s3cret-pw")
        .output()
        .unwrap();
    ok(&out);

    // 18.16 has no TTL: init says so, rather than promise retention.
    assert!(
        text(&out.stderr).contains("no TTL"),
        "{}",
        text(&out.stderr)
    );

    // Nothing listens: exit 1 after the attempts, nothing half-said.
    let dead = format!("http://127.0.0.1:{}/", free_port());
    let out = run(&["load", "--attempts", "2", "--clickhouse", &dead, file]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));

    // A database that is not there.
    let out = run(&["load", "--database", "nope", "--clickhouse", &url, file]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));

    // Bad names never reach the server.
    let out = run(&["clickhouse", "schema", "--database", "x; DROP TABLE y"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn two_shards_behind_a_distributed_table() {
    let test = "two_shards_behind_a_distributed_table";
    if !msgpack_available(test) {
        return;
    }
    let ports = [free_port(), free_port()];
    let Some(a) = Server::start(test, ports[0], &ports) else {
        return;
    };
    let Some(b) = Server::start(test, ports[1], &ports) else {
        return;
    };
    for s in [&a, &b] {
        let init = [
            "clickhouse",
            "init",
            "--cluster",
            "two",
            "--without-replication",
            "--clickhouse",
        ];
        let url = s.url();
        ok(&run(&[&init[..], &[url.as_str()]].concat()));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("records.msgpack");
    write(&file, &records(21, 3_000, now_ns() - 600_000_000_000, 3));
    let file = file.to_str().unwrap();
    ok(&run(&[
        "load",
        "--batch",
        "1000",
        "--clickhouse",
        &a.url(),
        file,
    ]));

    // Both shards hold rows, and together exactly the records.
    let (on_a, on_b) = (
        a.count("dynostats.records_local"),
        b.count("dynostats.records_local"),
    );
    assert!(on_a > 0 && on_b > 0, "shards {on_a} and {on_b}");
    let want: Answers = python_json(&["expected", file]);
    assert_answers(
        "over the Distributed tables",
        &answers(&b, "dynostats"),
        &want,
    );
}

/// A profile record whose call tree is one chain 70 scopes deep (beyond
/// the profiler's default depth of 64), its last parent index pointing
/// forward (taken as the root's child, as `Rows` does).
fn deep_profile(ts: u64) -> Record {
    use dynostats::record::ProfileNode;
    let mut r = Record::new(RecordKind::Profile, "/deep");
    r.ts = ts;
    r.weight = 3;
    r.labels.insert("host", "web-0");
    let mut d = Detail::default();
    d.timer = Some("instructions".into());
    d.total = Some(7_000);
    d.overhead = Some(12);
    for i in 0..71u32 {
        let mut n = ProfileNode::default();
        n.name = if i == 0 {
            "/deep".into()
        } else {
            format!("level{}", i % 7)
        };
        n.parent = match i {
            0 => None,
            70 => Some(99),
            _ => Some(i - 1),
        };
        n.calls = u64::from(i) + 1;
        n.inclusive = 7_000 - i64::from(i) * 100;
        n.exclusive = 100;
        d.nodes.push(n);
    }
    r.detail = Some(Box::new(d));
    r
}

/// A profile record whose root's name recurs below it and sorts after
/// every other name, with recursion under it and names met again in
/// other branches: what the collector tier's view must sum per name as
/// `Rows` does (`scope_first`, `scope_inclusive`).
fn tangled_profile(ts: u64) -> Record {
    use dynostats::record::ProfileNode;
    let mut r = Record::new(RecordKind::Profile, "zz");
    r.ts = ts;
    r.weight = 2;
    r.labels.insert("host", "web-0");
    let mut d = Detail::default();
    d.timer = Some("instructions".into());
    // zz -> b -> zz -> a -> zz (recursive) ; zz -> b -> a ; zz -> a
    for (name, parent, inclusive) in [
        ("zz", None, 900),
        ("b", Some(0), 500),
        ("zz", Some(1), 400),
        ("a", Some(2), 300),
        ("zz", Some(3), 200),
        ("b", Some(0), 90),
        ("a", Some(5), 80),
        ("a", Some(0), 7),
    ] {
        let mut n = ProfileNode::default();
        n.name = name.into();
        n.parent = parent;
        n.calls = 1;
        n.inclusive = inclusive;
        d.nodes.push(n);
    }
    r.detail = Some(Box::new(d));
    r
}

/// The export in chdb (the current engine, with the rollup and its
/// materialized view): answers equal the files', the rollup equals the
/// raw rows, the SQL bucket equals `Sketch::bucket`; the records as a
/// collector writes them, into `records_in`, make exactly the same rows.
#[test]
fn export_and_collector_json_into_current_clickhouse_agree_and_roll_up_exactly() {
    let test = "export_and_collector_json_into_current_clickhouse_agree_and_roll_up_exactly";
    if !msgpack_available(test) {
        return;
    }
    if !chdb_available(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("records.msgpack");
    let mut recs = records(31, 5_000, now_ns() - 7_200_000_000_000, 4);
    recs.push(deep_profile(now_ns() - 3_600_000_000_000));
    recs.push(tangled_profile(now_ns() - 3_500_000_000_000));
    write(&file, &recs);
    let export = dir.path().join("export");
    ok(&run(&[
        "export",
        "--format",
        "jsonl",
        "-o",
        export.to_str().unwrap(),
        file.to_str().unwrap(),
    ]));
    let schema = dir.path().join("schema.sql");
    let out = run(&["clickhouse", "schema", "--ttl", "30"]);
    ok(&out);
    std::fs::write(&schema, &out.stdout).unwrap();
    let fleet = dir.path().join("fleet.sql");
    let out = run(&["clickhouse", "schema", "--ttl", "30", "--database", "fleet"]);
    ok(&out);
    std::fs::write(&fleet, &out.stdout).unwrap();

    let mut values: Vec<i128> = vec![0, 1, 127, 128, 129, 191, 192, 255, 256, 1000, 1 << 20];
    for e in 7..64 {
        let p = 1i128 << e;
        values.extend([p - 1, p, p + 1, p + (p >> 7), p + p / 2]);
    }
    values.extend([u64::MAX as i128, u64::MAX as i128 + 5, i64::MAX as i128]);
    let negatives: Vec<i128> = values.iter().map(|v| -v).collect();
    values.extend(negatives);
    let spec = serde_json::json!({
        "sql": dynostats::clickhouse::bucket_sql("v"),
        "values": values
            .iter()
            .map(|&v| (v.to_string(), Sketch::bucket(v)))
            .collect::<Vec<_>>(),
    });
    let buckets = dir.path().join("buckets.json");
    std::fs::write(&buckets, spec.to_string()).unwrap();

    let got: Answers = python_json(&[
        "chdb",
        schema.to_str().unwrap(),
        fleet.to_str().unwrap(),
        export.to_str().unwrap(),
        buckets.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    let want: Answers = python_json(&["expected", file.to_str().unwrap()]);
    assert_answers("chdb", &got, &want);
}

#[test]
fn export_writes_one_file_per_table_anew() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("records.msgpack");
    let recs = records(41, 500, 1_764_000_000_000_000_000, 2);
    write(&file, &recs);
    let export = dir.path().join("out");
    let args = [
        "export",
        "--format",
        "jsonl",
        "-o",
        export.to_str().unwrap(),
        file.to_str().unwrap(),
    ];
    ok(&run(&args));
    let lines = |t: &str| -> usize {
        std::fs::read_to_string(export.join(format!("{t}.jsonl")))
            .unwrap()
            .lines()
            .count()
    };
    let count = |k: RecordKind| recs.iter().filter(|r| r.kind == k).count();
    assert_eq!(
        lines("records"),
        count(RecordKind::Request) + count(RecordKind::Region)
    );
    assert_eq!(lines("status"), count(RecordKind::Status));
    let nodes: usize = recs
        .iter()
        .filter_map(|r| r.detail.as_ref().filter(|_| r.kind == RecordKind::Profile))
        .map(|d| d.nodes.len())
        .sum();
    assert_eq!(lines("profile_nodes"), nodes);
    // Every line is one JSON object.
    for t in ["records", "profile_nodes", "status"] {
        for l in std::fs::read_to_string(export.join(format!("{t}.jsonl")))
            .unwrap()
            .lines()
        {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert!(v.is_object());
        }
    }
    // Run again into the same directory: the files are written anew,
    // never appended to.
    ok(&run(&args));
    assert_eq!(lines("status"), count(RecordKind::Status));
}

/// A server killed in the middle of a load, started again, and the load
/// run again: no record lost, and at most the batch that was in flight
/// twice (18.16 without replication has no deduplication token: see
/// docs/clickhouse.md); everything else exactly once.
#[test]
fn a_load_cut_by_a_dead_server_goes_on_when_run_again() {
    let test = "a_load_cut_by_a_dead_server_goes_on_when_run_again";
    if !msgpack_available(test) {
        return;
    }
    let Some(mut server) = Server::start(test, free_port(), &[]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("records.msgpack");
    let all = records(51, 20_000, now_ns() - 600_000_000_000, 5);
    write(&file, &all);
    let file = file.to_str().unwrap();
    let url = server.url();
    ok(&run(&["clickhouse", "init", "--clickhouse", &url]));

    let batch = 250;
    let load = Command::new(env!("CARGO_BIN_EXE_dynostats"))
        .args(["load", "--attempts", "1", "--batch", &batch.to_string()])
        .args(["--clickhouse", &url, file])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Some batches in, then the server dies.
    let start = std::time::Instant::now();
    while server.count("dynostats.loads") < 3 {
        assert!(start.elapsed().as_secs() < 60, "no batch in after 60 s");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    server.kill();
    let out = load.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "the load was not cut: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("goes on where this one stopped"),
        "{}",
        text(&out.stderr)
    );

    server.restart();
    let out = run(&[
        "load",
        "--batch",
        &batch.to_string(),
        "--clickhouse",
        &url,
        file,
    ]);
    ok(&out);
    assert!(
        text(&out.stderr).contains("were in already"),
        "{}",
        text(&out.stderr)
    );

    let raw = all
        .iter()
        .filter(|r| matches!(r.kind, RecordKind::Request | RecordKind::Region))
        .count() as u64;
    let nodes: u64 = all
        .iter()
        .filter(|r| r.kind == RecordKind::Profile)
        .filter_map(|r| r.detail.as_ref())
        .map(|d| d.nodes.len() as u64)
        .sum();
    let counts = |sql: &str| -> (u64, u64) {
        let row = &server.query(sql)[0];
        (row[0].parse().unwrap(), row[1].parse().unwrap())
    };
    let (rows, distinct) =
        counts("SELECT count(), uniqExact(ts, pid, name) FROM dynostats.records");
    assert_eq!(distinct, raw, "records lost (or made up)");
    assert!(
        rows - distinct <= batch,
        "{} records twice",
        rows - distinct
    );
    let (rows, distinct) =
        counts("SELECT count(), uniqExact(ts, pid, name, node) FROM dynostats.profile_nodes");
    assert_eq!(distinct, nodes, "profile nodes lost (or made up)");
    let twice_nodes = rows - distinct;
    let records_rows = server.count("dynostats.records");
    eprintln!(
        "{test}: {} records and {twice_nodes} profile nodes in twice",
        records_rows - raw
    );
    if records_rows == raw && twice_nodes == 0 {
        // Nothing twice: every answer exact.
        let want: Answers = python_json(&["expected", file]);
        assert_answers("after the cut load", &answers(&server, "dynostats"), &want);
    }
}

/// Runs `dynostats export --format FORMAT -o DIR FILE` and returns it.
fn export(format: &str, dir: &Path, file: &Path) -> Output {
    run(&[
        "export",
        "--format",
        format,
        "-o",
        dir.to_str().unwrap(),
        file.to_str().unwrap(),
    ])
}

/// The Parquet file's Arrow schema and metadata, read by the parquet
/// crate (which fails on a file without its footer).
fn parquet_file(
    path: &Path,
) -> (
    arrow_schema::SchemaRef,
    std::sync::Arc<parquet::file::metadata::ParquetMetaData>,
) {
    let file = std::fs::File::open(path).unwrap();
    let builder =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    (builder.schema().clone(), builder.metadata().clone())
}

/// Every row of the Parquet file as a JSON object (nulls written out),
/// read back through Arrow.
fn parquet_rows(path: &Path) -> Vec<serde_json::Value> {
    let file = std::fs::File::open(path).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut writer = arrow_json::writer::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow_json::writer::LineDelimited>(Vec::new());
    for batch in reader {
        writer.write(&batch.unwrap()).unwrap();
    }
    writer.finish().unwrap();
    let text = String::from_utf8(writer.into_inner()).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn jsonl_rows(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The same record file exported as JSON lines and as Parquet: chdb
/// reads both, and every table holds the same rows both ways (nulls and
/// arrays included); the Parquet columns are the table's, in order, with
/// the documented types, zstd-compressed, in row groups of at most
/// 65,536 rows.
#[test]
fn parquet_export_holds_the_rows_of_the_jsonl_export() {
    use dynostats::clickhouse::{Dialect, Table};

    let test = "parquet_export_holds_the_rows_of_the_jsonl_export";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("records.msgpack");
    // More than a row group of records rows.
    // Recent, so that the shipped tables' TTL keeps them.
    let recs = records(53, 70_000, now_ns() - 7_200_000_000_000, 30);
    write(&file, &recs);
    let jsonl = dir.path().join("jsonl");
    let pq = dir.path().join("parquet");
    ok(&export("jsonl", &jsonl, &file));
    let out = export("parquet", &pq, &file);
    ok(&out);
    assert!(
        text(&out.stderr).contains("wrote the rows of 70000 records"),
        "{}",
        text(&out.stderr)
    );

    // The files as the parquet crate reads them.
    for table in Table::ALL {
        let path = pq.join(format!("{}.parquet", table.name()));
        let (schema, meta) = parquet_file(&path);
        let columns: Vec<_> = table.row_columns().collect();
        assert_eq!(schema.fields().len(), columns.len(), "{table:?}");
        for (field, column) in schema.fields().iter().zip(&columns) {
            assert_eq!(field.name(), column.name, "{table:?}");
            assert_eq!(
                field.is_nullable(),
                column.current.starts_with("Nullable("),
                "{table:?}.{}",
                column.name
            );
        }
        let rows: i64 = meta.row_groups().iter().map(|g| g.num_rows()).sum();
        assert_eq!(
            rows as usize,
            jsonl_rows(&jsonl.join(format!("{}.jsonl", table.name()))).len()
        );
        for group in meta.row_groups() {
            assert!(
                group.num_rows() <= 65_536,
                "{table:?}: {}",
                group.num_rows()
            );
            for c in group.columns() {
                assert!(
                    matches!(c.compression(), parquet::basic::Compression::ZSTD(_)),
                    "{table:?}: {:?}",
                    c.compression()
                );
            }
        }
        if table == Table::Records {
            assert!(meta.num_row_groups() >= 2, "{}", meta.num_row_groups());
        }
    }
    let (records_schema, _) = parquet_file(&pq.join("records.parquet"));
    let (nodes_schema, _) = parquet_file(&pq.join("profile_nodes.parquet"));
    use arrow_schema::DataType as T;
    let list = |t| {
        T::List(std::sync::Arc::new(arrow_schema::Field::new_list_field(
            t, false,
        )))
    };
    for (schema, name, want) in [
        (&records_schema, "ts", T::UInt64),
        (&records_schema, "name", T::Utf8),
        (&records_schema, "status", T::UInt16),
        (&records_schema, "label_keys", list(T::Utf8)),
        (&records_schema, "cpu_ns", T::UInt64),
        (&records_schema, "pid", T::UInt32),
        (&records_schema, "cancelled", T::UInt8),
        (&nodes_schema, "inclusive", T::Int64),
        (&nodes_schema, "total", T::Int64),
        (&nodes_schema, "path", list(T::Utf8)),
        (&nodes_schema, "stat_values", list(T::UInt64)),
    ] {
        assert_eq!(
            schema.field_with_name(name).unwrap().data_type(),
            &want,
            "{name}"
        );
    }

    // The values, read back through Arrow, equal the JSON lines'.
    for table in Table::ALL {
        let want = jsonl_rows(&jsonl.join(format!("{}.jsonl", table.name())));
        let got = parquet_rows(&pq.join(format!("{}.parquet", table.name())));
        assert!(!want.is_empty(), "{table:?}: no rows in the test data");
        assert_eq!(got.len(), want.len(), "{table:?}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "{table:?}, row {i}");
        }
    }

    // And as chdb (current ClickHouse) reads them.
    if !chdb_available(test) {
        return;
    }
    let structures: BTreeMap<&str, String> = Table::ALL
        .into_iter()
        .map(|t| (t.name(), t.structure(Dialect::Current)))
        .collect();
    let spec = dir.path().join("structures.json");
    std::fs::write(&spec, serde_json::to_string(&structures).unwrap()).unwrap();
    // The shipped schema.
    let schema = dir.path().join("schema.sql");
    let out = run(&["clickhouse", "schema"]);
    ok(&out);
    std::fs::write(&schema, &out.stdout).unwrap();
    let got: BTreeMap<String, serde_json::Value> = python_json(&[
        "parquet",
        schema.to_str().unwrap(),
        jsonl.to_str().unwrap(),
        pq.to_str().unwrap(),
        spec.to_str().unwrap(),
    ]);
    for table in Table::ALL {
        let t = &got[table.name()];
        // The columns as ClickHouse sees them: the table's types, without
        // codecs, LowCardinality(String) a String.
        let want: Vec<(String, String)> = table
            .row_columns()
            .map(|c| {
                let ty = c.current.split(" CODEC(").next().unwrap();
                (
                    c.name.to_string(),
                    ty.replace("LowCardinality(String)", "String"),
                )
            })
            .collect();
        let types: Vec<(String, String)> = serde_json::from_value(t["types"].clone()).unwrap();
        assert_eq!(types, want, "{table:?}");
        let rows = &t["rows"];
        assert_eq!(rows[0], rows[1], "{table:?}: rows jsonl, parquet");
        assert!(rows[0].as_u64().unwrap() > 0, "{table:?}");
        assert_eq!(t["only_jsonl"], serde_json::json!([]), "{table:?}");
        assert_eq!(t["only_parquet"], serde_json::json!([]), "{table:?}");
        assert_eq!(t["nulls_jsonl"], t["nulls_parquet"], "{table:?}");
        assert_eq!(t["elements_jsonl"], t["elements_parquet"], "{table:?}");
        // Loaded into the shipped table as docs/clickhouse.md says.
        assert_eq!(t["loaded"], rows[0], "{table:?}: rows loaded");
        assert_eq!(t["loaded_not_jsonl"], serde_json::json!([]), "{table:?}");
    }
    // The test data has absent counters, and arrays with elements.
    let nulls = &got["records"]["nulls_parquet"];
    for c in ["status", "cpu_ns", "instructions", "rss_start"] {
        let n = nulls[c].as_u64().unwrap();
        assert!(n > 0 && n < 70_000, "records.{c}: {n} nulls");
    }
    assert!(
        got["profile_nodes"]["nulls_parquet"]["total"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(
        got["profile_nodes"]["elements_parquet"]["path"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(
        got["status"]["elements_parquet"]["error_sinks"]
            .as_u64()
            .unwrap()
            > 0
    );
}

/// A damaged input: the Parquet files are whole (footer and all) and hold
/// the rows of the records before the damage, like the JSON lines; the
/// command exits 3.
#[test]
fn parquet_export_of_a_damaged_input_keeps_the_records_before_it_and_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let recs = records(59, 3_000, 1_764_000_000_000_000_000, 5);
    let mut bytes: Vec<u8> = recs[..2_000].iter().flat_map(|r| r.to_msgpack()).collect();
    // A string length of 4 GiB at a record boundary, then records that
    // are lost.
    bytes.extend_from_slice(&[0x81, 0xdb, 0xff, 0xff, 0xff, 0xff]);
    bytes.extend(recs[2_000..].iter().flat_map(|r| r.to_msgpack()));
    let file = dir.path().join("damaged.msgpack");
    std::fs::write(&file, bytes).unwrap();
    let kept = dir.path().join("kept.msgpack");
    write(&kept, &recs[..2_000]);

    let pq = dir.path().join("parquet");
    let out = export("parquet", &pq, &file);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("wrote the rows of 2000 records"),
        "{}",
        text(&out.stderr)
    );
    let jsonl = dir.path().join("jsonl");
    ok(&export("jsonl", &jsonl, &kept));
    for table in ["records", "profile_nodes", "status"] {
        let want = jsonl_rows(&jsonl.join(format!("{table}.jsonl")));
        let got = parquet_rows(&pq.join(format!("{table}.parquet")));
        assert!(!want.is_empty(), "{table}");
        assert_eq!(got, want, "{table}");
    }

    // An output that cannot be made: exit 1, said on stderr.
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"").unwrap();
    let out = export("parquet", &blocker, &kept);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot write to"),
        "{}",
        text(&out.stderr)
    );
}

/// A file loaded under one `--label` and then under another is two
/// inputs: the second load inserts its records (it used to find the
/// first's progress under the same file and skip them all), and each load
/// run again skips what it inserted.
#[test]
fn one_file_under_two_labels_is_two_inputs() {
    let test = "one_file_under_two_labels_is_two_inputs";
    let Some(server) = Server::start(test, free_port(), &[]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("records.msgpack");
    let mut recs = records(9, 2_000, now_ns() - 3_600_000_000_000, 5);
    for (i, r) in recs.iter_mut().enumerate() {
        r.labels
            .insert("build", if i % 3 == 0 { "b1" } else { "b2" });
    }
    write(&file, &recs);
    let file = file.to_str().unwrap();
    let url = server.url();
    ok(&run(&["clickhouse", "init", "--clickhouse", &url]));
    let rows = |build: &str| {
        recs.iter()
            .filter(|r| matches!(r.kind, RecordKind::Request | RecordKind::Region))
            .filter(|r| r.labels.get("build") == Some(build))
            .count() as u64
    };
    let load = |label: &str| {
        let out = run(&["load", "--clickhouse", &url, "--label", label, file]);
        ok(&out);
        text(&out.stderr)
    };
    load("build=b1");
    assert_eq!(server.count("dynostats.records"), rows("b1"));
    let said = load("build=b2");
    assert!(!said.contains("were in already"), "{said}");
    assert_eq!(server.count("dynostats.records"), rows("b1") + rows("b2"));
    for label in ["build=b1", "build=b2"] {
        let said = load(label);
        assert!(said.contains("were in already"), "{label}: {said}");
    }
    assert_eq!(server.count("dynostats.records"), rows("b1") + rows("b2"));
}

/// The totals of the raw tables and the rollups, as one row of strings:
/// records rows, their weights, profile node rows, status rows, records
/// the rollup counted, their weights, and the weights of the completed
/// records in `rollup_sketch`'s wall-time sketches.
const TOTALS: &str = "SELECT toString((SELECT count() FROM dynostats.records)), \
     toString((SELECT sum(weight) FROM dynostats.records)), \
     toString((SELECT count() FROM dynostats.profile_nodes)), \
     toString((SELECT count() FROM dynostats.status)), \
     toString((SELECT sum(samples) + sum(forced) FROM dynostats.rollup)), \
     toString((SELECT sum(events) FROM dynostats.rollup)), \
     toString((SELECT sum(weight) FROM dynostats.rollup_sketch WHERE metric = 'wall_ns'))";

/// [`TOTALS`] as the records say they must be, each raw row `times` over.
fn totals(recs: &[Record], times: u64) -> Vec<String> {
    let raw: Vec<&Record> = recs
        .iter()
        .filter(|r| matches!(r.kind, RecordKind::Request | RecordKind::Region))
        .collect();
    let weights: u64 = raw.iter().map(|r| r.weight).sum();
    let nodes: u64 = recs
        .iter()
        .filter(|r| r.kind == RecordKind::Profile)
        .filter_map(|r| r.detail.as_ref())
        .map(|d| d.nodes.len() as u64)
        .sum();
    let status = recs.iter().filter(|r| r.kind == RecordKind::Status).count() as u64;
    let completed: u64 = raw
        .iter()
        .filter(|r| !r.forced && !r.cancelled && r.error.is_none())
        .map(|r| r.weight)
        .sum();
    let raw = raw.len() as u64;
    [raw, weights, nodes, status, raw, weights, completed]
        .map(|n| (n * times).to_string())
        .to_vec()
}

/// A load whose progress rows are gone after its batches went in (as if
/// the loader had been killed between an insert and its line in `loads`)
/// sends every batch again under the same `insert_deduplication_token`,
/// and current ClickHouse (chdb behind the stand-in, which applies the
/// URL's settings) drops them all: the tables, and the rollup fed by its
/// materialized view, hold each record once. The tokens are the server's
/// to go by: the file's second batch holds the same records as its first
/// (which the server, going by the data alone, would drop as a repeat),
/// and both are kept. With another `--batch` the batches differ and the
/// same load does insert everything twice.
#[test]
fn a_batch_sent_again_with_its_token_is_dropped_by_current_clickhouse() {
    let test = "a_batch_sent_again_with_its_token_is_dropped_by_current_clickhouse";
    let Some(standin) = crate::ch::Standin::start(test) else {
        return;
    };
    let url = standin.url();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("records.msgpack");
    let mut recs = records(61, 3_000, now_ns() - 600_000_000_000, 5);
    // The second batch of 500 is the first again.
    for i in 500..1_000 {
        recs[i] = recs[i - 500].clone();
    }
    write(&file, &recs);
    let file = file.to_str().unwrap();
    ok(&run(&["clickhouse", "init", "--clickhouse", &url]));
    let load = |batch: &str| {
        let out = run(&["load", "--batch", batch, "--clickhouse", &url, file]);
        ok(&out);
        text(&out.stderr)
    };

    let err = load("500");
    assert!(err.contains("inserted 3000 records"), "{err}");
    assert_eq!(standin.query(TOTALS), [totals(&recs, 1)]);
    // Every insert of a batch carried its token, and the engine took it.
    let batches: Vec<serde_json::Value> = standin.inserts_into("dynostats.records");
    assert_eq!(batches.len(), 6, "{batches:?}");
    for b in &batches {
        assert_eq!(b["status"], 200, "{b}");
        assert_eq!(b["settings"]["insert_deduplicate"], "1", "{b}");
        assert!(
            b["settings"]["insert_deduplication_token"]
                .as_str()
                .is_some_and(|t| t.ends_with(":500:records")),
            "{b}"
        );
    }

    // The progress is lost: the same load sends every batch again, and
    // believes it inserted them; the server kept none of them twice.
    standin.query("TRUNCATE TABLE dynostats.loads");
    let err = load("500");
    assert!(err.contains("inserted 3000 records"), "{err}");
    assert!(!err.contains("were in already"), "{err}");
    assert_eq!(
        standin.query(TOTALS),
        [totals(&recs, 1)],
        "batches sent again under their tokens were inserted twice"
    );

    // Other batches, other tokens: everything twice. The check above
    // would have seen it.
    standin.query("TRUNCATE TABLE dynostats.loads");
    load("700");
    assert_eq!(standin.query(TOTALS), [totals(&recs, 2)]);
}

/// `load` reads the tables' TTL from current ClickHouse and refuses the
/// first record older than it (exit 6, naming the record and the way
/// out), after the batches before it; `--allow-expired` goes on from
/// there and inserts the old records too, which current ClickHouse drops
/// at its next merge (held here until `OPTIMIZE ... FINAL`).
#[test]
fn records_older_than_the_ttl_are_refused_unless_allowed() {
    let test = "records_older_than_the_ttl_are_refused_unless_allowed";
    let Some(standin) = crate::ch::Standin::start(test) else {
        return;
    };
    let url = standin.url();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("records.msgpack");
    let day = 86_400_000_000_000;
    let only_raw = |mut v: Vec<Record>| {
        v.retain(|r| matches!(r.kind, RecordKind::Request | RecordKind::Region));
        v
    };
    let recent = only_raw(records(71, 1_200, now_ns() - 600_000_000_000, 5));
    let old = only_raw(records(72, 300, now_ns() - 20 * day, 5));
    let older = only_raw(records(73, 300, now_ns() - 40 * day, 5));
    let all: Vec<Record> = recent.iter().chain(&old).chain(&older).cloned().collect();
    write(&file, &all);
    let file = file.to_str().unwrap();
    ok(&run(&[
        "clickhouse",
        "init",
        "--clickhouse",
        &url,
        "--ttl",
        "30",
    ]));

    let batch = recent.len().to_string();
    let out = run(&["load", "--batch", &batch, "--clickhouse", &url, file]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{err}");
    let first_expired = recent.len() + old.len() + 1;
    assert!(
        err.contains(&format!("record {first_expired} of this input (20"))
            && err.contains("older than the tables' TTL of 30 days")
            && err.contains("--allow-expired"),
        "{err}"
    );
    // The batch of recent records is in; nothing of the one that held
    // the expired record.
    assert_eq!(standin.count("dynostats.records"), recent.len() as u64);

    // Merges held, so that what goes in can be counted before the next
    // merge drops the expired rows (it may come within a second).
    standin.query("SYSTEM STOP MERGES dynostats.records");
    let out = run(&[
        "load",
        "--batch",
        &batch,
        "--allow-expired",
        "--clickhouse",
        &url,
        file,
    ]);
    ok(&out);
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("{} records were in already", recent.len())),
        "{err}"
    );
    assert_eq!(standin.count("dynostats.records"), all.len() as u64);
    // The next merge drops what the TTL says is gone: only the expired.
    standin.query("SYSTEM START MERGES dynostats.records");
    standin.query("OPTIMIZE TABLE dynostats.records FINAL");
    assert_eq!(
        standin.count("dynostats.records"),
        (recent.len() + old.len()) as u64
    );
}
