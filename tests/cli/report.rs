//! `dynostats report`: records written by a real pipeline to a file, read
//! back by the binary; the numbers it prints, its JSON, and what it does
//! with damaged, missing and incomplete input.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use dynostats::{Pipeline, Record, RecordKind, sink::FileSink};

use crate::cli;
use cli::{run, text};

fn region(name: &str, weight: u64, instructions: Option<u64>) -> Record {
    let mut r = Record::new(RecordKind::Region, name);
    r.weight = weight;
    r.instructions = instructions;
    r
}

/// The records of the main test, through a pipeline (with its status
/// records) into `path`.
fn write_known_records(path: &Path) {
    let pipeline = Pipeline::builder()
        .sink(FileSink::create(path).unwrap())
        .build()
        .unwrap();
    let mut records = Vec::new();
    // parse: instructions 1000..=10000 and cpu 2000..=20000 ns, weight 100.
    for i in 1..=10 {
        let mut r = region("parse", 100, Some(i * 1_000));
        r.cpu_ns = Some(i * 2_000);
        records.push(r);
    }
    // Two more without instructions: absent, not 0.
    for _ in 0..2 {
        records.push(region("parse", 100, None));
    }
    // Forced: weight 0, and far out of range; it must move nothing.
    let mut forced = region("parse", 0, Some(1_000_000_000));
    forced.forced = true;
    records.push(forced);
    // A request endpoint: 4 completed, 1 cancelled, weight 10.
    for cancelled in [false, false, false, false, true] {
        let mut r = Record::new(RecordKind::Request, "/users/{id}");
        r.method = Some("GET".into());
        r.status = Some(200);
        r.weight = 10;
        r.instructions = Some(if cancelled { 1 } else { 5_000_000 });
        r.cancelled = cancelled;
        records.push(r);
    }
    for _ in 0..3 {
        records.push(region("render", 1, Some(7_000)));
    }
    for r in records {
        assert!(pipeline.emit(r));
    }
    pipeline.shutdown().unwrap();
}

/// The table's rows: the cells of each line that starts with a kind.
fn rows(stdout: &str) -> Vec<Vec<String>> {
    stdout
        .lines()
        .filter(|l| l.starts_with("region ") || l.starts_with("request "))
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect()
        })
        .collect()
}

#[test]
fn the_table_shows_weighted_totals_and_per_event_quantiles() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.msgpack");
    write_known_records(&path);
    let file = path.to_str().unwrap();

    let out = run(&["report", file]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.starts_with("headline: instructions"), "{stdout}");
    // Sorted by estimated instructions: 200M, 5.5M, 21k.
    let table = rows(&stdout);
    let names: Vec<&str> = table.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(names, ["GET /users/{id}", "parse", "render"], "{stdout}");
    // kind, name, sampled, events, cancelled, forced, total, /event, p50,
    // p99, absent, CPU /event; errors is 0 in every row, so not shown.
    assert_eq!(
        table[0][2..11],
        ["5", "50", "1", "0", "200M", "5.00M", "5.00M", "5.00M", "0"],
        "{stdout}"
    );
    assert_eq!(
        table[1][2..12],
        [
            "12", "1200", "0", "1", "5.50M", "5500", "5000", "10.0k", "2", "11.0 µs"
        ],
        "{stdout}"
    );
    assert_eq!(
        table[2][2..11],
        ["3", "3", "0", "0", "21.0k", "7000", "7000", "7000", "0"]
    );
    assert!(
        stdout.contains("not shown, 0 or none in every row: errors"),
        "{stdout}"
    );
    // The pipeline's status records: read, not rows, and no drops.
    assert!(
        stdout.contains("23 records read, 2 of them status records"),
        "{stdout}"
    );
    assert!(stdout.contains("no records dropped"), "{stdout}");

    let only_requests = text(&run(&["report", "--kind", "request", file]).stdout);
    assert_eq!(rows(&only_requests).len(), 1, "{only_requests}");
    let by_name = text(&run(&["report", "--sort", "name", file]).stdout);
    let names: Vec<String> = rows(&by_name).into_iter().map(|r| r[1].clone()).collect();
    assert_eq!(names, ["parse", "render", "GET /users/{id}"], "{by_name}");

    // JSON: the exact numbers, every metric.
    let out = run(&["report", "--json", file]);
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let report = &json["report"];
    assert_eq!(report["headline"], "instructions");
    assert_eq!(json["files"][0]["records"], 23);
    let parse = report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "parse")
        .unwrap();
    assert_eq!(parse["sampled"], 12);
    assert_eq!(parse["events"], 1200);
    assert_eq!(parse["forced"], 1);
    let instructions = &parse["metrics"]["instructions"];
    assert_eq!(instructions["total"], 5_500_000);
    assert_eq!(instructions["mean_per_event"], 5_500.0);
    assert_eq!(instructions["p50"], 5_000);
    assert_eq!(instructions["p99"], 10_000);
    assert_eq!(instructions["samples"], 10);
    assert_eq!(instructions["absent"], 2);
    let cpu = &parse["metrics"]["cpu_ns"];
    assert_eq!(
        (&cpu["total"], &cpu["absent"]),
        (&11_000_000.into(), &2.into())
    );
    assert!(parse["metrics"]["cycles"]["p50"].is_null());
    let users = &report["groups"][0];
    assert_eq!(
        (&users["method"], &users["cancelled"]),
        (&"GET".into(), &1.into())
    );
}

#[test]
fn a_damaged_file_prints_what_was_read_and_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.msgpack");
    write_known_records(&path);
    let good = fs::metadata(&path).unwrap().len();
    // A writer that crashed mid-record.
    let partial = region("late", 1, Some(1)).to_msgpack();
    OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&partial[..partial.len() / 2])
        .unwrap();
    let file = path.to_str().unwrap();

    let out = run(&["report", file]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(3), "{stdout}{stderr}");
    assert!(stdout.contains("23 records read"), "{stdout}");
    assert_eq!(rows(&stdout).len(), 3, "{stdout}");
    assert!(!stdout.contains("late"), "{stdout}");
    let expected = format!("truncated record at byte offset {good}");
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(stderr.contains("the 23 records before it"), "{stderr}");
    assert!(
        stdout.contains(&format!("INCOMPLETE: {file}: {expected}")),
        "{stdout}"
    );

    let out = run(&["report", "--json", file]);
    assert_eq!(out.status.code(), Some(3));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["files"][0]["offset"], good);
    assert_eq!(json["files"][0]["records"], 23);
    assert_eq!(json["report"]["groups"].as_array().unwrap().len(), 3);

    // Garbage: not a record stream at all.
    let garbage = dir.path().join("garbage");
    fs::write(&garbage, b"hello, not msgpack").unwrap();
    let out = run(&["report", garbage.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("byte offset 0"));

    // A missing file among good ones: the good ones are still reported,
    // and the status says it was an I/O error.
    let out = run(&["report", file, "/nonexistent/records.msgpack"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/nonexistent/records.msgpack: cannot open"));
    assert_eq!(rows(&text(&out.stdout)).len(), 3);
}

#[test]
fn records_the_writer_dropped_are_reported() {
    // A queue of 8 and a burst far faster than the writer encodes: most of
    // the burst is refused at the queue, and the final status record says
    // how many.
    const BURST: usize = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.msgpack");
    let pipeline = Pipeline::builder()
        .sink(FileSink::create(&path).unwrap())
        .queue_capacity(8)
        // The file sink's own backlog holds the whole burst: this test is
        // about the queue's drops, not the sink's.
        .sink_backlog(BURST as u64)
        .build()
        .unwrap();
    let accepted = (0..BURST)
        .filter(|_| pipeline.emit(region("r", 1, Some(1))))
        .count();
    let stats = pipeline.shutdown().unwrap();
    assert_eq!(stats.accepted, accepted as u64);
    assert!(stats.dropped_queue_full > 0, "{stats:?}");

    let out = run(&["report", path.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let expected = format!(
        "WARNING: the writer dropped records, the table is missing them: {} (queue full)",
        BURST - accepted
    );
    assert!(stdout.contains(&expected), "{stdout}");
    assert_eq!(rows(&stdout)[0][2], accepted.to_string(), "{stdout}");
}

#[test]
fn processes_of_one_id_on_two_hosts_are_two_writers() {
    // A fleet's hosts reuse process ids: status records of pid 4242 on
    // web-0 and on web-1 are two processes, whose cumulative drops add up
    // (were they one, the larger count alone would be kept).
    let mut records = Vec::new();
    for (host, drops) in [("web-0", [3u64, 7]), ("web-1", [5, 11])] {
        for (i, n) in drops.into_iter().enumerate() {
            let mut r = dynostats::Record::new(dynostats::RecordKind::Status, "dynostats");
            r.pid = 4242;
            r.ts = 1_000 + i as u64;
            r.labels.insert("host", host);
            let mut d = dynostats::record::Detail::default();
            d.stats.insert("records_dropped_queue_full".into(), n);
            r.detail = Some(Box::new(d));
            records.push(r);
        }
    }
    records.push(region("r", 1, Some(1)));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.msgpack");
    crate::cli::write(&path, &records);
    let out = run(&["report", "--json", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let drops = &j["report"]["drops"];
    assert_eq!(drops["processes"], 2, "{drops}");
    assert_eq!(drops["queue_full"], 7 + 11, "{drops}");
}

/// A file sink held up on its first batch (like a slow disk), so that the
/// writer drops its copies of every later batch for a full backlog.
struct HeldFileSink {
    file: FileSink,
    release: std::sync::mpsc::Receiver<()>,
    held: bool,
}

impl dynostats::sink::Sink for HeldFileSink {
    fn name(&self) -> String {
        dynostats::sink::Sink::name(&self.file)
    }
    fn write_batch(&mut self, batch: &dynostats::sink::Batch) -> std::io::Result<()> {
        if !self.held {
            self.held = true;
            let _ = self.release.recv();
        }
        dynostats::sink::Sink::write_batch(&mut self.file, batch)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        dynostats::sink::Sink::flush(&mut self.file)
    }
}

#[test]
fn the_drops_of_the_sink_that_wrote_the_file_are_reported() {
    // Each sink's copy of a status record names that sink (`detail.sink`),
    // so the report knows which drops are missing from the file it reads:
    // here the file sink's own, for a full backlog, not the queue's.
    const RECORDS: u64 = 200;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.msgpack");
    let (release, held) = std::sync::mpsc::channel();
    let pipeline = Pipeline::builder()
        .sink(HeldFileSink {
            file: FileSink::create(&path).unwrap(),
            release: held,
            held: false,
        })
        .sink(dynostats::sink::MemorySink::new())
        .sink_backlog(1)
        .build()
        .unwrap();
    for _ in 0..RECORDS {
        assert!(pipeline.emit(region("r", 1, Some(1))));
    }
    // The file sink holds the first status record; every later batch is
    // dropped for it alone.
    let started = std::time::Instant::now();
    while pipeline.stats().sinks[0].received < RECORDS + 1 {
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    release.send(()).unwrap();
    let stats = pipeline.shutdown().unwrap();
    assert_eq!(stats.sinks[0].dropped_sink_full, RECORDS, "{stats:?}");
    assert_eq!(stats.sinks[1].lost(), 0, "{stats:?}");
    let out = run(&["report", path.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    // Every region record was dropped for the file, none at the queue.
    assert!(rows(&stdout).is_empty(), "{stdout}");
    let expected = format!(
        "WARNING: the sink that wrote these records lost {RECORDS} of them: \
         {RECORDS} (its backlog was full), 0 (on errors), 0 (by itself)"
    );
    assert!(stdout.contains(&expected), "{stdout}");
    // The memory sink lost nothing: only the file sink's drops are "own".
    let json = run(&["report", "--format", "json", path.to_str().unwrap()]);
    let json = text(&json.stdout);
    assert!(
        json.contains(&format!(
            "\"own\":{{\"sink_full\":{RECORDS},\"sink_error\":0,\"by_sink\":0}}"
        )),
        "{json}"
    );
}

/// A counter no record carried has no total: empty in CSV, null in JSON,
/// never 0; a counter that was measured as 0 is 0.
#[test]
fn an_absent_counter_has_no_total_in_csv_or_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records");
    let mut bytes = Vec::new();
    for i in 0..3 {
        // No instructions; cycles measured as 0.
        let mut r = region("parse", 1, None);
        r.cycles = Some(0);
        r.cpu_ns = Some(1000 + i);
        bytes.extend(r.to_msgpack());
    }
    fs::write(&path, bytes).unwrap();
    let p = path.to_str().unwrap();
    let out = run(&["report", "--format", "csv", p]);
    let t = text(&out.stdout);
    let mut lines = t.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let row: Vec<&str> = lines.next().unwrap().split(',').collect();
    let cell = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
    assert_eq!(cell("instructions_absent"), "3");
    assert_eq!(cell("instructions_total"), "");
    assert_eq!(cell("cycles_total"), "0");
    assert_eq!(cell("cpu_ns_total"), "3003");
    let out = run(&["report", "--json", p]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let metrics = &v["report"]["groups"][0]["metrics"];
    assert!(metrics["instructions"]["total"].is_null(), "{metrics}");
    assert_eq!(metrics["cycles"]["total"], 0);
}
