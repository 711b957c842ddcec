//! `dynostats report` on the inputs a fleet gives it: a bad record between
//! two good ones for every reason a record is skipped, `--strict`, newer
//! schema versions, integer keys, gzip and zstd files, standard input,
//! rotated sets, counts beyond `u64` (through the debug binary, where an
//! overflow would panic), hostile names, and the output formats and
//! splits.

use std::fs;
use std::io::Write;
use std::path::Path;

use dynostats::record::Detail;
use dynostats::sink::FileSink;
use dynostats::{Pipeline, Record, RecordKind};
use rmpv::Value;
use unicode_width::UnicodeWidthStr;

use crate::cli;
use cli::{json, run, run_stdin, text};

fn region(name: &str, instructions: u64) -> Record {
    let mut r = Record::new(RecordKind::Region, name);
    r.instructions = Some(instructions);
    r.weight = 10;
    r
}

/// The record as an rmpv map, to damage by hand.
fn as_value(r: &Record) -> Vec<(Value, Value)> {
    match rmpv::decode::read_value(&mut &r.to_msgpack()[..]).unwrap() {
        Value::Map(entries) => entries,
        other => panic!("{other:?}"),
    }
}

fn encode(entries: Vec<(Value, Value)>) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &Value::Map(entries)).unwrap();
    out
}

fn set(entries: &mut Vec<(Value, Value)>, key: &str, value: Value) {
    match entries.iter_mut().find(|(k, _)| k.as_str() == Some(key)) {
        Some(entry) => entry.1 = value,
        None => entries.push((Value::from(key), value)),
    }
}

/// good("first"), `bad`, good("second") in one file.
fn sandwich(dir: &Path, name: &str, bad: &[u8]) -> (String, u64) {
    let mut bytes = region("first", 1_000).to_msgpack();
    let offset = bytes.len() as u64;
    bytes.extend_from_slice(bad);
    bytes.extend(region("second", 2_000).to_msgpack());
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    (path.to_str().unwrap().to_string(), offset)
}

fn group_names(report: &serde_json::Value) -> Vec<String> {
    let mut names: Vec<String> = report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn a_bad_record_costs_only_itself_for_every_reason() {
    let dir = tempfile::tempdir().unwrap();
    let good = as_value(&region("bad", 5));
    let mut cases: Vec<(&str, Vec<u8>, &str)> = Vec::new();

    let mut unknown_kind = good.clone();
    set(&mut unknown_kind, "kind", Value::from("span"));
    cases.push(("unknown_kind", encode(unknown_kind), "unknown kind"));

    let mut float = good.clone();
    set(&mut float, "instructions", Value::F64(1.5));
    cases.push((
        "bad_type",
        encode(float),
        "bad type of field `instructions`",
    ));

    let mut string_ts = good.clone();
    set(&mut string_ts, "ts", Value::from("yesterday"));
    cases.push(("bad_type_ts", encode(string_ts), "bad type of field `ts`"));

    // Positional encoding: integer keys.
    let integer_keys: Vec<(Value, Value)> = good
        .iter()
        .enumerate()
        .map(|(i, (_, v))| (Value::from(i as u64), v.clone()))
        .collect();
    cases.push(("integer_keys", encode(integer_keys), "integer keys"));

    // Integer keys mixed with string keys.
    let mut mixed = good.clone();
    mixed.push((Value::from(3u64), Value::from("region")));
    cases.push(("mixed_keys", encode(mixed), "integer keys"));

    let mut missing = good.clone();
    missing.retain(|(k, _)| k.as_str() != Some("weight"));
    cases.push(("missing", encode(missing), "missing field `weight`"));

    let mut duplicate = good.clone();
    duplicate.push((Value::from("kind"), Value::from("region")));
    cases.push(("duplicate", encode(duplicate), "duplicate field `kind`"));

    let mut status = good.clone();
    set(&mut status, "status", Value::from(70_000u64));
    cases.push(("bad_value", encode(status), "bad value of field `status`"));

    for (name, bad, reason) in cases {
        let (path, offset) = sandwich(dir.path(), name, &bad);
        let out = run(&["report", "--json", &path]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{name}: {stderr}");
        let json = json(&out);
        assert_eq!(
            group_names(&json["report"]),
            ["first", "second"],
            "{name}: {stderr}"
        );
        let file = &json["files"][0];
        assert_eq!(file["records"], 2, "{name}");
        assert_eq!(file["skipped"][reason], 1, "{name}: {file}");
        assert_eq!(file["first_skip"]["offset"], offset, "{name}");
        // Once per file on stderr, with the offset and the reason.
        assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("byte offset {offset}")) && stderr.contains(reason),
            "{name}: {stderr}"
        );

        let strict = run(&["report", "--strict", &path]);
        assert_eq!(strict.status.code(), Some(3), "{name}");
        assert!(text(&strict.stdout).contains("second"), "{name}");
    }
}

#[test]
fn newer_versions_are_read_for_the_fields_known_and_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut newer = as_value(&region("newer", 7_000));
    set(&mut newer, "v", Value::from(2u64));
    set(&mut newer, "flamegraph_id", Value::from("abc"));
    set(&mut newer, "kind", Value::from("region"));
    let mut bytes = encode(newer.clone());
    let mut v99 = newer;
    set(&mut v99, "v", Value::from(99u64));
    bytes.extend(encode(v99));
    let (path, offset) = sandwich(dir.path(), "newer", &bytes);

    let out = run(&["report", "--strict", "--json", &path]);
    let stderr = text(&out.stderr);
    // Read, not damage: --strict passes.
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let json = json(&out);
    assert_eq!(group_names(&json["report"]), ["first", "newer", "second"]);
    assert_eq!(json["files"][0]["newer_versions"], 2);
    assert_eq!(json["report"]["newer_versions"], 2);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("2 records of a newer schema version"),
        "{stderr}"
    );
    let table = text(&run(&["report", &path]).stdout);
    assert!(
        table.contains("WARNING: 2 records of a newer schema version"),
        "{table}"
    );
    let _ = offset;
}

#[test]
fn framing_damage_ends_the_file_and_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = region("first", 1).to_msgpack();
    let offset = bytes.len();
    // A string length of 4 GiB at a record boundary.
    bytes.extend_from_slice(&[0x81, 0xdb, 0xff, 0xff, 0xff, 0xff]);
    bytes.extend(region("lost", 1).to_msgpack());
    let path = dir.path().join("framing");
    fs::write(&path, bytes).unwrap();
    let out = run(&["report", "--json", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let json = json(&out);
    assert_eq!(group_names(&json["report"]), ["first"]);
    assert_eq!(json["files"][0]["offset"], offset as u64);
    assert!(text(&out.stderr).contains("limit"), "{}", text(&out.stderr));

    // An empty file is said, not silent.
    let empty = dir.path().join("empty");
    fs::write(&empty, b"").unwrap();
    let out = run(&["report", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("empty: no records"));
}

fn plain_file(dir: &Path) -> (Vec<u8>, String) {
    let mut bytes = Vec::new();
    for i in 0..50 {
        bytes.extend(region(&format!("r{}", i % 5), 100 + i).to_msgpack());
    }
    let path = dir.join("plain.msgpack");
    fs::write(&path, &bytes).unwrap();
    (bytes, path.to_str().unwrap().to_string())
}

#[test]
fn compressed_files_and_standard_input_read_like_plain_files() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, plain) = plain_file(dir.path());
    let expected = json(&run(&["report", "--json", &plain]))["report"].clone();
    assert_eq!(expected["records"], 50);

    // Named without a telling extension: found by the magic bytes.
    let gz = dir.path().join("records.bin");
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(&bytes[..bytes.len() / 2]).unwrap();
    let mut gz_bytes = encoder.finish().unwrap();
    // A second gzip member appended: one stream.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(&bytes[bytes.len() / 2..]).unwrap();
    gz_bytes.extend(encoder.finish().unwrap());
    fs::write(&gz, &gz_bytes).unwrap();
    let zst = dir.path().join("records.zst");
    fs::write(&zst, zstd::encode_all(&bytes[..], 3).unwrap()).unwrap();

    for path in [gz.to_str().unwrap(), zst.to_str().unwrap()] {
        let out = run(&["report", "--json", path]);
        assert_eq!(out.status.code(), Some(0), "{path}: {}", text(&out.stderr));
        let got = json(&out);
        assert_eq!(got["report"], expected, "{path}");
        assert!(got["files"][0]["compression"].is_string());
    }

    let out = run_stdin(&["report", "--json", "-"], &bytes);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let got = json(&out);
    assert_eq!(got["report"], expected);
    assert_eq!(got["files"][0]["path"], "<stdin>");
    let zst_bytes = fs::read(&zst).unwrap();
    let out = run_stdin(&["report", "--json", "-"], &zst_bytes);
    assert_eq!(json(&out)["report"], expected);

    // A truncated gzip file: what was decompressed is reported, and the
    // status says the input is damaged or unreadable.
    let cut = dir.path().join("cut.gz");
    fs::write(&cut, &gz_bytes[..gz_bytes.len() / 3]).unwrap();
    let out = run(&["report", cut.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
}

/// The complete records at the start of `bytes`.
fn complete_records(bytes: &[u8]) -> u64 {
    dynostats::read(bytes).take_while(Result::is_ok).count() as u64
}

/// What `decoder` yields before its error or end.
fn decompressed_prefix(mut decoder: impl std::io::Read) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = decoder.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

#[test]
fn a_compressed_file_cut_short_is_damaged_and_says_how_many_records_were_kept() {
    // Before: the decompressor's error was taken for an unreadable file
    // (exit 1, "cannot read"), with no word of the records read before it.
    let dir = tempfile::tempdir().unwrap();
    let bytes: Vec<u8> = (0..5_000)
        .flat_map(|i| region(&format!("region {}", i % 37), 1_000 + i).to_msgpack())
        .collect();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(&bytes).unwrap();
    let gz = encoder.finish().unwrap();
    let zst = zstd::encode_all(&bytes[..], 3).unwrap();
    let gz_cut = &gz[..gz.len() / 2];
    let zst_cut = &zst[..zst.len() * 2 / 3];
    // What an independent decoder recovers from the same cut files.
    let gz_kept = complete_records(&decompressed_prefix(flate2::read::MultiGzDecoder::new(
        gz_cut,
    )));
    let zst_kept = complete_records(&decompressed_prefix(
        zstd::stream::read::Decoder::new(zst_cut).unwrap(),
    ));
    for (name, cut, kept, compression) in [
        ("cut.gz", gz_cut, gz_kept, "gzip"),
        ("cut.zst", zst_cut, zst_kept, "zstd"),
    ] {
        assert!(
            kept > 0 && kept < 5_000,
            "{name}: {kept} records before the cut"
        );
        let path = dir.path().join(name);
        fs::write(&path, cut).unwrap();
        for out in [
            run(&["report", "--json", path.to_str().unwrap()]),
            run_stdin(&["report", "--json", "-"], cut),
        ] {
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(3), "{name}: {stderr}");
            let got = json(&out);
            let file = &got["files"][0];
            assert_eq!(file["records"], kept, "{name}");
            assert_eq!(got["report"]["records"], kept, "{name}");
            assert_eq!(file["compression"], compression);
            let said = format!("the {kept} records before it are in the report");
            assert!(stderr.contains(&said), "{name}: {stderr}");
            assert!(
                stderr.contains(&format!("the {compression} stream is cut short")),
                "{name}: {stderr}"
            );
            assert!(file["offset"].as_u64().is_some(), "{name}: {file}");
        }
        // The table says it below the rows too.
        let out = run(&["report", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(3));
        assert!(text(&out.stdout).contains("INCOMPLETE:"), "{name}");
    }
}

#[test]
fn rotated_sets_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.msgpack");
    let pipeline = Pipeline::builder()
        .sink(
            FileSink::builder(&path)
                .max_bytes(2_000)
                .keep(100)
                .build()
                .unwrap(),
        )
        .status_interval(None)
        .build()
        .unwrap();
    for i in 0..200 {
        assert!(pipeline.emit(region("rotated", i)));
    }
    pipeline.shutdown().unwrap();
    let file = path.to_str().unwrap();
    assert!(Path::new(&format!("{file}.2")).exists());

    let out = run(&["report", "--json", "--rotated", file]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json = json(&out);
    let files = json["files"].as_array().unwrap();
    assert!(files.len() >= 3);
    assert!(
        files.last().unwrap()["path"]
            .as_str()
            .unwrap()
            .ends_with("app.msgpack")
    );
    let group = &json["report"]["groups"][0];
    assert_eq!(group["sampled"], 200);
    // Without --rotated, only the newest file.
    let newest = run(&["report", "--json", file]);
    assert!(
        serde_json::from_slice::<serde_json::Value>(&newest.stdout).unwrap()["report"]["groups"][0]
            ["sampled"]
            .as_u64()
            .unwrap()
            < 200
    );
}

fn status(pid: u32, queue_full: u64) -> Record {
    let mut r = Record::new(RecordKind::Status, "dynostats");
    r.weight = 0;
    r.pid = pid;
    let mut detail = Detail::default();
    detail
        .stats
        .insert("records_dropped_queue_full".into(), queue_full);
    detail
        .sinks
        .entry("file:x".into())
        .or_default()
        .insert("records_dropped_by_sink".into(), queue_full);
    r.detail = Some(Box::new(detail));
    r
}

#[test]
fn counts_beyond_u64_are_exact_in_the_debug_binary() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = Vec::new();
    for pid in [1, 2, 3] {
        bytes.extend(status(pid, u64::MAX).to_msgpack());
    }
    let mut huge = region("huge", u64::MAX);
    huge.weight = 1;
    huge.cpu_ns = Some(u64::MAX);
    bytes.extend(huge.to_msgpack());
    let mut heavy = region("heavy", u64::MAX);
    heavy.weight = u64::MAX;
    for _ in 0..3 {
        bytes.extend(heavy.to_msgpack());
    }
    let path = dir.path().join("overflow");
    fs::write(&path, bytes).unwrap();
    let file = path.to_str().unwrap();

    let out = run(&["report", file]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let three_max = (3 * u128::from(u64::MAX)).to_string();
    assert!(
        stdout.contains(&format!("{three_max} (queue full)")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "sink file:x lost {three_max} records: 0 (its backlog was full), 0 (on errors), \
             {three_max} (by itself)"
        )),
        "{stdout}"
    );
    // 3 * (2^64-1)^2 exceeds i128: saturated, and said.
    assert!(stdout.contains(">="), "{stdout}");

    let out = run(&["report", "--json", file]);
    let json = json(&out);
    let report = &json["report"];
    assert_eq!(report["drops"]["queue_full"], three_max.as_str());
    let huge = report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "huge")
        .unwrap();
    // Above 2^53: strings, exact.
    assert_eq!(
        huge["metrics"]["instructions"]["total"],
        u64::MAX.to_string()
    );
    assert_eq!(huge["metrics"]["instructions"]["p50"], u64::MAX.to_string());
    assert_eq!(huge["metrics"]["cpu_ns"]["total"], u64::MAX.to_string());
    let heavy = report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "heavy")
        .unwrap();
    assert_eq!(heavy["metrics"]["instructions"]["saturated"], true);
    assert_eq!(heavy["events"], (3 * u128::from(u64::MAX)).to_string());
    assert_eq!(
        heavy["metrics"]["instructions"]["total"],
        i128::MAX.to_string()
    );
    // Small numbers stay numbers.
    assert_eq!(heavy["sampled"], 3);
}

#[test]
fn hostile_names_cannot_forge_rows_or_escape_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let names = [
        "/ok".to_string(),
        "/a\nregion  forged  1  2  3".to_string(),
        "\u{1b}[2J\u{1b}]0;owned\u{7}/esc".to_string(),
        "x".repeat(256),
        "/日本語/エンドポイント/{id}".to_string(),
        "/rtl\u{202e}txt.exe".to_string(),
    ];
    let mut bytes = Vec::new();
    for name in &names {
        bytes.extend(region(name, 1_000).to_msgpack());
    }
    let path = dir.path().join("hostile");
    fs::write(&path, bytes).unwrap();
    let file = path.to_str().unwrap();

    let out = run(&["report", "--sort", "name", file]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        !stdout.contains('\u{1b}') && !stdout.contains('\u{7}') && !stdout.contains('\u{202e}')
    );
    assert!(stdout.contains("\\e[2J\\e]0;owned\\x07/esc"), "{stdout}");
    assert!(stdout.contains("/a\\nregion  forged"), "{stdout}");
    // Header + one row per name, every row exactly as wide as the header
    // in terminal columns (wide characters included), none of them long.
    let table: Vec<&str> = stdout
        .lines()
        .take_while(|l| !l.is_empty())
        .skip(1)
        .collect();
    assert_eq!(table.len(), 1 + names.len(), "{stdout}");
    let width = table[0].width();
    for line in &table {
        assert_eq!(line.width(), width, "{line}");
    }
    assert!(width < 250, "{width}");
    assert!(stdout.contains(&format!("{}…", "x".repeat(59))), "{stdout}");

    // --wide: whole names.
    let wide = text(&run(&["report", "--wide", file]).stdout);
    assert!(wide.contains(&"x".repeat(256)));

    // JSON keeps the names exact; CSV keeps one row per line.
    let json = json(&run(&["report", "--json", file]));
    let mut got = group_names(&json["report"]);
    let mut expected = names.to_vec();
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
    let csv = text(&run(&["report", "--format", "csv", file]).stdout);
    assert_eq!(csv.lines().count(), 1 + names.len(), "{csv}");
    assert!(!csv.contains('\u{1b}'));
}

#[test]
fn metric_splits_and_label_filters() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = Vec::new();
    for (status, build, cycles) in [
        (200, "abc", 10),
        (201, "abc", 20),
        (503, "abc", 30),
        (200, "old", 40),
        (404, "old", 50),
    ] {
        let mut r = Record::new(RecordKind::Request, "/users/{id}");
        r.method = Some("GET".into());
        r.status = Some(status);
        r.weight = 1;
        r.cycles = Some(cycles);
        r.set_label("build", build);
        bytes.extend(r.to_msgpack());
    }
    let path = dir.path().join("split");
    fs::write(&path, bytes).unwrap();
    let file = path.to_str().unwrap();

    let out = run(&[
        "report",
        "--json",
        "--by",
        "status",
        "--by",
        "label=build",
        file,
    ]);
    let json = json(&out);
    let mut keys: Vec<(String, String, u64)> = json["report"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["split"]["status"].as_str().unwrap().to_string(),
                g["split"]["label:build"].as_str().unwrap().to_string(),
                g["sampled"].as_u64().unwrap(),
            )
        })
        .collect();
    keys.sort();
    let expected = [
        ("2xx", "abc", 2),
        ("2xx", "old", 1),
        ("4xx", "old", 1),
        ("5xx", "abc", 1),
    ];
    assert_eq!(
        keys,
        expected.map(|(a, b, n)| (a.to_string(), b.to_string(), n))
    );

    let out = run(&["report", "--metric", "cycles", "--label", "build=abc", file]);
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("headline: cycles"), "{stdout}");
    assert!(
        stdout.contains("2 records left out by the label filters"),
        "{stdout}"
    );
    // cycles of the build abc: 10 + 20 + 30.
    assert!(stdout.contains("  60  "), "{stdout}");

    let csv = text(&run(&["report", "--format", "csv", "--by", "status", file]).stdout);
    let header = csv.lines().next().unwrap();
    assert!(
        header.starts_with("kind,name,method,status,other,sampled"),
        "{header}"
    );

    // Bad arguments: status 2.
    assert_eq!(
        run(&["report", "--by", "colour", file]).status.code(),
        Some(2)
    );
    assert_eq!(
        run(&["report", "--metric", "joules", file]).status.code(),
        Some(2)
    );
    // Every exit status in the top-level help; each subcommand's help
    // ends with examples and names its own codes in one line.
    let help = text(&run(&["--help"]).stdout);
    assert!(
        help.contains("EXIT STATUS") && help.contains("3  damaged input"),
        "{help}"
    );
    for sub in [
        "report",
        "compare",
        "timeseries",
        "top",
        "flamegraph",
        "pprof",
    ] {
        let help = text(&run(&[sub, "--help"]).stdout);
        assert!(
            help.contains("EXIT STATUS: ") && help.contains("see dynostats --help"),
            "{help}"
        );
        assert!(!help.contains("3  damaged input"), "{help}");
        let examples = &help[help.find("EXAMPLE").expect("examples")..];
        assert!(
            examples.lines().skip(1).all(|l| l.starts_with("  ")),
            "{sub}: the help ends with its examples:\n{help}"
        );
    }
}

/// An input that cannot be read, or is not records at all, is the whole
/// answer of every subcommand: its error on stderr, alone (no empty
/// table, no "no record carries instructions", no "no profile records"),
/// nothing on standard output, the exit status of the input (1 for a
/// missing file, 3 for one that is not records), no file written.
#[test]
fn an_unreadable_or_foreign_input_is_said_first_and_alone() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.msgpack");
    let mut records = Vec::new();
    for i in 0..40 {
        let mut r = Record::new(RecordKind::Request, "/checkout");
        r.method = Some("GET".into());
        r.weight = 1;
        r.cpu_ns = Some(1_000 + i);
        r.wall_ns = 2_000 + i;
        records.push(r);
    }
    cli::write(&good, &records);
    let good = good.to_str().unwrap();
    let missing = dir.path().join("missing.msgpack");
    let json_file = dir.path().join("requests.json");
    fs::write(&json_file, b"{\"name\": \"/checkout\", \"cpu_ns\": 1000}\n").unwrap();
    let text_file = dir.path().join("notes.txt");
    fs::write(&text_file, b"GET /checkout 200 12ms\n").unwrap();
    let out_file = dir.path().join("out");
    let out_path = out_file.to_str().unwrap();
    for (bad, status, says) in [
        (&missing, 1, "cannot open"),
        (&json_file, 3, "not a dynostats record file"),
        (&text_file, 3, "not a dynostats record file"),
    ] {
        let bad = bad.to_str().unwrap();
        for args in [
            vec!["report", bad],
            vec!["report", "--json", bad],
            vec!["top", bad],
            vec!["flamegraph", "-o", out_path, bad],
            vec!["flamegraph", "--folded", good, "--against", bad],
            vec!["pprof", "-o", out_path, bad],
            vec!["compare", good, "--against", bad],
            vec!["compare", bad, "--against", good],
            vec!["timeseries", bad],
        ] {
            let out = run(&args);
            let said = text(&out.stderr);
            assert_eq!(out.status.code(), Some(status), "{args:?}: {said}");
            assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
            assert_eq!(said.lines().count(), 1, "{args:?}: {said}");
            assert!(said.contains(says), "{args:?}: {said}");
            assert!(
                said.starts_with(&format!("dynostats: {bad}: ")),
                "{args:?}: {said}"
            );
            assert!(!out_file.exists(), "{args:?} wrote a file");
        }
    }
    // Among readable inputs, a missing one is reported below the table of
    // the others (the exit status still says so).
    let out = run(&["report", good, missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("/checkout"));
    assert!(text(&out.stdout).contains("INCOMPLETE:"));
}

/// `report` says on stderr how many profile records it read and what
/// reads them; without any, nothing.
#[test]
fn report_points_to_top_for_its_profile_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.msgpack");
    let mut request = Record::new(RecordKind::Request, "/checkout");
    request.method = Some("GET".into());
    let profiles: Vec<Record> = (0..3)
        .map(|_| {
            cli::profile(
                "/checkout",
                4,
                "instructions",
                0,
                &[("/checkout", None, 1, 100, 100)],
            )
        })
        .collect();
    cli::write(&path, &[vec![request.clone()], profiles].concat());
    let out = run(&["report", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let said = text(&out.stderr);
    assert!(
        said.contains("3 profile records (call trees) read") && said.contains("`dynostats top`"),
        "{said}"
    );
    cli::write(&path, &[request]);
    let out = run(&["report", path.to_str().unwrap()]);
    assert!(
        !text(&out.stderr).contains("profile records"),
        "{}",
        text(&out.stderr)
    );
}
