//! An independent decoder: Python's `msgpack` package reads the file sink's
//! output (`scripts/check_msgpack.py`), checks it against the documented
//! schema, and its view of every record must equal ours field by field.
//!
//! Skipped, with the reason printed, when `python3` cannot import
//! `msgpack`, unless `DYNOSTATS_REQUIRE_PYTHON=1`, in which case that is a
//! failure (CI installs the package and sets it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use dynostats::{Pipeline, Record, RecordKind, sink::FileSink};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check_msgpack.py")
}

/// Whether the check can run; panics when it must run and cannot.
fn python_available() -> bool {
    let probe = Command::new("python3")
        .args(["-c", "import msgpack"])
        .output();
    let reason = match probe {
        Ok(out) if out.status.success() => return true,
        Ok(out) => format!(
            "python3 cannot import msgpack: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => format!("python3 cannot be run: {e}"),
    };
    if std::env::var("DYNOSTATS_REQUIRE_PYTHON").as_deref() == Ok("1") {
        panic!("DYNOSTATS_REQUIRE_PYTHON=1 but {reason} (pip install msgpack)");
    }
    eprintln!("SKIPPED: {reason}; `pip install msgpack` to run this cross-check");
    false
}

fn run_check(path: &Path) -> std::process::Output {
    Command::new("python3")
        .arg(script())
        .arg(path)
        .output()
        .expect("running python3")
}

fn sample_records() -> Vec<Record> {
    let mut request = Record::new(RecordKind::Request, "/users/{id}");
    request.method = Some("POST".into());
    request.status = Some(201);
    request.weight = 1000;
    request.wall_ns = 1_234_567;
    request.cpu_ns = Some(987_654);
    request.instructions = Some(u64::MAX);
    request.cycles = Some(0);
    request.rss_start = Some(40 << 20);
    request.rss_end = Some(41 << 20);
    request.polls = Some(4);
    request.threads = Some(2);
    request.source = dynostats::counters::ReadPath::Rdpmc;
    request.scaled = true;
    request.set_label("host", "web-1").set_label("flag", "é-ü");
    request.set_trace_context(dynostats::record::TraceContext::from_traceparent(
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ));

    let mut region = Record::new(RecordKind::Region, "parse");
    region.wall_ns = 10;
    region.forced = true;
    region.weight = 0;
    region.cancelled = true;

    let mut failed = Record::new(RecordKind::Request, "/upload");
    failed.error = Some("body too large".into());
    vec![request, region, failed]
}

#[test]
fn python_decodes_the_file_sink_output_field_by_field() {
    if !python_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cross.msgpack");
    let pipeline = Pipeline::builder()
        .sink(FileSink::create(&path).unwrap())
        .status_interval(Some(Duration::from_secs(3600)))
        .label("build", "b42")
        .build()
        .unwrap();
    for r in sample_records() {
        assert!(pipeline.emit(r));
    }
    pipeline.shutdown().unwrap();

    let out = run_check(&path);
    assert!(
        out.status.success(),
        "check_msgpack.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let python: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let ours: Vec<Record> = dynostats::read(std::fs::File::open(&path).unwrap())
        .collect::<Result<_, _>>()
        .unwrap();
    // status at start, the three records, status at shutdown
    assert_eq!(python.len(), 5);
    assert_eq!(ours.len(), 5);
    for (i, (py, rs)) in python.iter().zip(&ours).enumerate() {
        // The same serde attributes give the JSON view of our record: the
        // same keys (absent stays absent) and the same values.
        assert_eq!(py, &serde_json::to_value(rs).unwrap(), "record {i}");
    }
    // And a few values spelled out, as Python saw them.
    assert_eq!(python[1]["instructions"], serde_json::json!(u64::MAX));
    assert_eq!(python[1]["labels"]["flag"], "é-ü");
    assert_eq!(python[1]["labels"]["build"], "b42");
    assert_eq!(python[1]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(python[1]["span_id"], "00f067aa0ba902b7");
    assert!(python[3].get("trace_id").is_none());
    assert!(python[2].get("cpu_ns").is_none());
    assert_eq!(python[2]["forced"], true);
    assert_eq!(python[3]["error"], "body too large");
    assert_eq!(python[4]["kind"], "status");
    assert_eq!(python[4]["detail"]["stats"]["records_accepted"], 3);
}

#[test]
fn python_rejects_nil_counters_and_trailing_bytes() {
    if !python_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A record whose `cycles` is nil: unmeasured values must be absent.
    let nil = rmpv::Value::Map(vec![
        ("v".into(), 1.into()),
        ("kind".into(), "region".into()),
        ("ts".into(), 1.into()),
        ("name".into(), "x".into()),
        ("weight".into(), 1.into()),
        ("wall_ns".into(), 5.into()),
        ("source".into(), "software".into()),
        ("pid".into(), 1.into()),
        ("cycles".into(), rmpv::Value::Nil),
    ]);
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, &nil).unwrap();
    let path = dir.path().join("nil.msgpack");
    std::fs::write(&path, &bytes).unwrap();
    let out = run_check(&path);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cycles is nil"));

    // A trace id in upper case: not the documented form.
    let mut upper = vec![
        ("v".into(), 1.into()),
        ("kind".into(), "request".into()),
        ("ts".into(), 1.into()),
        ("name".into(), "/x".into()),
        ("weight".into(), 1.into()),
        ("wall_ns".into(), 5.into()),
        ("source".into(), "software".into()),
        ("pid".into(), 1.into()),
    ];
    upper.push(("trace_id".into(), "4BF92F3577B34DA6A3CE929D0E0E4736".into()));
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, &rmpv::Value::Map(upper)).unwrap();
    let path = dir.path().join("upper.msgpack");
    std::fs::write(&path, &bytes).unwrap();
    let out = run_check(&path);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("trace_id: not 32 lowercase hex digits"),
        "{stderr}"
    );

    // A valid record followed by half of another.
    let record = Record::new(RecordKind::Region, "ok").to_msgpack();
    let mut cut = record.clone();
    cut.extend_from_slice(&record[..record.len() / 2]);
    let path = dir.path().join("cut.msgpack");
    std::fs::write(&path, &cut).unwrap();
    let out = run_check(&path);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "after the last complete record at byte {}",
            record.len()
        )),
        "{stderr}"
    );
}

#[test]
fn python_decodes_profile_records_and_their_tree_adds_up() {
    if !python_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("profile.msgpack");
    let pipeline = Pipeline::builder()
        .sink(FileSink::create(&path).unwrap())
        .status_interval(None)
        .build()
        .unwrap();
    pipeline.in_scope(|| {
        dynostats::Region::forced("checkout").run(|| {
            let _outer = dynostats::scope("price");
            dynostats::scope_fn("tax", || std::hint::black_box((0..1000u64).sum::<u64>()));
        })
    });
    pipeline.shutdown().unwrap();

    let out = run_check(&path);
    assert!(
        out.status.success(),
        "check_msgpack.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let python: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let ours: Vec<Record> = dynostats::read(std::fs::File::open(&path).unwrap())
        .collect::<Result<_, _>>()
        .unwrap();
    for (py, rs) in python.iter().zip(&ours) {
        assert_eq!(py, &serde_json::to_value(rs).unwrap());
    }
    let region = python.iter().find(|r| r["kind"] == "region").unwrap();
    let profile = python.iter().find(|r| r["kind"] == "profile").unwrap();
    assert_eq!(region["id"], profile["id"]);
    let nodes = profile["detail"]["nodes"].as_array().unwrap();
    let names: Vec<&str> = nodes.iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["checkout", "price", "tax"]);
    assert_eq!(nodes[2]["parent"], 1);
    assert!(nodes[0].get("parent").is_none());
}
