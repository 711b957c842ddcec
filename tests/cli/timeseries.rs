//! `dynostats timeseries FILES... --window W` through the binary: per
//! window the endpoints by hits with their cost per request, the change
//! against the previous window, and `--alert`: a step change in one
//! window raises one alert at that window and none before.

use dynostats::{Record, RecordKind};

use crate::cli;
use cli::{run, text};

const MINUTE: u64 = 60_000_000_000;
const T0: u64 = 1_764_000_000 * 1_000_000_000 / MINUTE * MINUTE;

/// 8 windows of a minute; endpoint /a costs 100,000 instructions (noise
/// of 20% from a fixed pattern) and /b 10,000 with twice /a's hits; from
/// window `step` on, /a costs 10% more.
fn records(step: u64) -> Vec<Record> {
    let mut out = Vec::new();
    for window in 0..8u64 {
        for i in 0..300u64 {
            let (name, base) = if i % 3 == 0 {
                ("/a", 100_000.0)
            } else {
                ("/b", 10_000.0)
            };
            let noise = 1.0 + 0.2 * (((i * 7919 + window * 104_729) % 41) as f64 / 20.0 - 1.0);
            let scale = if name == "/a" && window >= step {
                1.10
            } else {
                1.0
            };
            let mut r = Record::new(RecordKind::Request, name);
            r.method = Some("GET".into());
            r.ts = T0 + window * MINUTE + i * 1_000_000;
            r.weight = 10;
            r.instructions = Some((base * scale * noise) as u64);
            out.push(r);
        }
    }
    out
}

#[test]
fn windows_hits_costs_and_one_alert_at_the_step() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("series");
    let records = records(5);
    let bytes: Vec<u8> = records.iter().flat_map(Record::to_msgpack).collect();
    std::fs::write(&path, bytes).unwrap();
    let p = path.to_str().unwrap();

    let out = run(&["timeseries", p, "--window", "1m", "--alert", "2%", "--json"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let windows = v["report"]["windows"].as_array().unwrap();
    assert_eq!(windows.len(), 8);
    for (w, window) in windows.iter().enumerate() {
        assert_eq!(window["start_ns"], T0 + w as u64 * MINUTE);
        // Endpoints by hits: /b (200 records x 10) before /a (100 x 10).
        let rows = window["rows"].as_array().unwrap();
        assert_eq!(rows[0]["name"], "GET /b");
        assert_eq!(rows[0]["hits"], "2000");
        assert_eq!(rows[1]["hits"], "1000");
        // Cost per request and total, computed here.
        let mine: Vec<&Record> = records
            .iter()
            .filter(|r| r.ts / MINUTE == (T0 / MINUTE) + w as u64 && &*r.name == "/a")
            .collect();
        let total: f64 = mine
            .iter()
            .map(|r| r.instructions.unwrap() as f64 * 10.0)
            .sum();
        let mean = total / (mine.len() as f64 * 10.0);
        assert!((rows[1]["cost_per_event"].as_f64().unwrap() - mean).abs() < 1e-6 * mean);
        assert!((rows[1]["total"].as_f64().unwrap() - total).abs() < 1e-6 * total);
    }
    let alerts: Vec<usize> = windows
        .iter()
        .enumerate()
        .filter(|(_, w)| w["alert"] == true)
        .map(|(i, _)| i)
        .collect();
    // One alert at the step; the windows after it compare against
    // baselines that hold the step, and none alerts before it.
    assert_eq!(alerts.first(), Some(&5), "{alerts:?}");
    assert!(alerts.iter().all(|&i| i >= 5));
    // The change against the previous window at the step: /a +10% over
    // noise; the pooled cost per request rose by about 10% x (1/3 x 100k)
    // / (1/3 x 100k + 2/3 x 10k) = 8.3%.
    let change = windows[5]["change"].as_f64().unwrap();
    assert!(change > 0.04 && change < 0.13, "{change}");

    // Without a step: no alert, exit 0; the table says so.
    let flat = dir.path().join("flat");
    let bytes: Vec<u8> = self::records(99)
        .iter()
        .flat_map(Record::to_msgpack)
        .collect();
    std::fs::write(&flat, bytes).unwrap();
    let out = run(&[
        "timeseries",
        flat.to_str().unwrap(),
        "--window",
        "1m",
        "--alert",
        "2%",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let t = text(&out.stdout);
    assert!(t.contains("no alerts"), "{t}");
    assert_eq!(t.matches("\nwindow ").count(), 8, "{t}");
    // CSV: a line per window and one per endpoint in it.
    let out = run(&["timeseries", p, "--window", "1m", "--format", "csv"]);
    assert_eq!(text(&out.stdout).lines().count(), 1 + 8 * 3);
    // Two-minute windows: 4 of them.
    let out = run(&["timeseries", p, "--window", "2m", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["report"]["windows"].as_array().unwrap().len(), 4);
}

/// Windows are labelled with their UTC start; `--consecutive 2` waits for
/// a second window in a row; `--alert` with no window judged exits 5.
#[test]
fn utc_labels_consecutive_windows_and_nothing_judged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("series");
    // The step at window 7, the last: one window above the threshold.
    let bytes: Vec<u8> = records(7).iter().flat_map(Record::to_msgpack).collect();
    std::fs::write(&path, bytes).unwrap();
    let p = path.to_str().unwrap();

    let out = run(&["timeseries", p, "--window", "1m", "--alert", "2%"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stdout));
    let t = text(&out.stdout);
    // T0 is 2025-11-24T16:00:00Z; the alert is at its 8th minute.
    assert!(t.contains("\nwindow 2025-11-24T16:00:00Z (+0 s)"), "{t}");
    assert!(t.contains("  window 2025-11-24T16:07:00Z: +"), "{t}");
    assert!(!t.contains(&T0.to_string()), "{t}");
    // Two windows in a row: the single rising window does not alert.
    let out = run(&[
        "timeseries",
        p,
        "--window",
        "1m",
        "--alert",
        "2%",
        "--consecutive",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("no alerts"));
    // With the step at window 5, windows 5, 6 and 7 rise against their
    // baselines: from the second of them on, each alerts.
    let bytes: Vec<u8> = records(5).iter().flat_map(Record::to_msgpack).collect();
    std::fs::write(&path, bytes).unwrap();
    let out = run(&[
        "timeseries",
        p,
        "--window",
        "1m",
        "--alert",
        "2%",
        "--consecutive",
        "2",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(4));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let alerts: Vec<bool> = v["report"]["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["alert"].as_bool().unwrap())
        .collect();
    assert_eq!(
        alerts,
        [false, false, false, false, false, false, true, true]
    );

    // Too few samples in every window: nothing judged, exit 5, said.
    let out = run(&[
        "timeseries",
        p,
        "--window",
        "1m",
        "--alert",
        "2%",
        "--min-samples",
        "100000",
    ]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stdout));
    let t = text(&out.stdout);
    assert!(t.contains("UNDECIDED: no window could be judged"), "{t}");
    assert!(!t.contains("no alerts"), "{t}");
}
