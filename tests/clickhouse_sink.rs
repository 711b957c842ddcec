//! `ClickHouseSink` in a running pipeline against a real ClickHouse
//! (Debian's 18.16, started here on 127.0.0.1, and the current engine,
//! chdb, behind the HTTP stand-in; `tests/common/clickhouse.rs`):
//! every record the pipeline accepts ends delivered (in the tables, counted
//! by SQL) or in a counted drop, a server that is down, refuses or lacks
//! the schema blocks nothing, and the password is never written anywhere.
#![cfg(feature = "clickhouse")]

#[path = "common/clickhouse.rs"]
mod ch;

use std::time::{Duration, Instant};

use dynostats::clickhouse::{ClickHouseSink, Dialect, Schema};
use dynostats::{Pipeline, Record, RecordKind};

use ch::{Server, free_port};

fn schema_18_16() -> Vec<String> {
    Schema::new()
        .dialect(Dialect::Compat1816)
        .statements()
        .into_iter()
        .map(|s| s.sql)
        .collect()
}

fn init(server: &Server) {
    let statements = schema_18_16();
    server.apply(statements.iter().map(String::as_str));
}

/// `n` records: requests of two endpoints, weights 1 to 4, instructions
/// absent on every third.
fn records(n: u64) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let name = if i % 2 == 0 { "/a" } else { "/b" };
            let mut r = Record::new(RecordKind::Request, name);
            r.ts = 1_800_000_000_000_000_000 + i * 1_000_000;
            r.weight = 1 + i % 4;
            r.wall_ns = 1000 + i;
            r.instructions = (i % 3 != 0).then_some(10_000 + i);
            r.labels.insert("host", "h1");
            r
        })
        .collect()
}

/// Per name: records, their weights, those without instructions, and
/// weighted instructions, as strings, sorted by name.
const SUMS: &str = "SELECT name, toString(count()), toString(sum(weight)), \
     toString(countIf(instructions IS NULL)), toString(sum(weight * ifNull(instructions, 0))) \
     FROM dynostats.records GROUP BY name";

/// [`SUMS`] as the records say they must be.
fn sums(recs: &[Record]) -> Vec<Vec<String>> {
    let mut want = Vec::new();
    for name in ["/a", "/b"] {
        let of: Vec<&Record> = recs.iter().filter(|r| r.name.as_str() == name).collect();
        want.push(vec![
            name.to_string(),
            of.len().to_string(),
            of.iter().map(|r| r.weight).sum::<u64>().to_string(),
            of.iter()
                .filter(|r| r.instructions.is_none())
                .count()
                .to_string(),
            of.iter()
                .map(|r| r.weight * r.instructions.unwrap_or(0))
                .sum::<u64>()
                .to_string(),
        ]);
    }
    want
}

fn pipeline(sink: ClickHouseSink) -> Pipeline {
    Pipeline::builder()
        .sink(sink)
        .status_interval(None)
        .batch_interval(Duration::from_millis(20))
        .build()
        .unwrap()
}

/// Emits `recs` through `p`, shuts it down, and checks that its one sink
/// delivered every record, with nothing dropped, buffered or lost.
fn deliver_all(p: Pipeline, recs: &[Record]) -> dynostats::pipeline::PipelineStats {
    for r in recs {
        assert!(p.emit(r.clone()));
    }
    p.flush().unwrap();
    let stats = p.shutdown().unwrap();
    let sink = &stats.sinks[0];
    let n = recs.len() as u64;
    assert_eq!(stats.accepted, n);
    assert_eq!(sink.delivered, n, "{sink:?}");
    assert_eq!(
        sink.dropped_by_sink + sink.buffered_by_sink + sink.lost(),
        0,
        "{sink:?}"
    );
    stats
}

#[test]
fn every_accepted_record_is_delivered_and_in_the_tables() {
    let test = "every_accepted_record_is_delivered_and_in_the_tables";
    let Some(server) = Server::start(test, free_port(), &[]) else {
        return;
    };
    init(&server);
    let sink = ClickHouseSink::builder(&server.url())
        .chunk_records(700)
        .build()
        .unwrap();
    let p = pipeline(sink);
    let recs = records(5_000);
    deliver_all(p, &recs);

    assert_eq!(server.query(SUMS), sums(&recs));
}

/// `n` profile records of one shape, `/p -> f -> g -> f` (the second `f`
/// recursive) and a second `g` under the root, with amounts varying by
/// record; per record the amounts a comparison counts: `f` its first
/// node's, `g` both of its nodes'.
fn profiles(n: u64) -> (Vec<Record>, [(&'static str, i64); 2]) {
    use dynostats::record::{Detail, ProfileNode};
    let (mut f, mut g) = (0, 0);
    let recs = (0..n)
        .map(|i| {
            let k = i as i64;
            let node = |name: &str, parent: Option<u32>, inclusive: i64| {
                let mut n = ProfileNode::default();
                n.name = name.into();
                n.parent = parent;
                n.calls = 1;
                n.inclusive = inclusive;
                n
            };
            let nodes = vec![
                node("/p", None, 1_000 + k),
                node("f", Some(0), 500 + k),
                node("g", Some(1), 300),
                node("f", Some(2), 200 + k),
                node("g", Some(0), 40 + 2 * k),
            ];
            f += 500 + k;
            g += 300 + 40 + 2 * k;
            let mut r = Record::new(RecordKind::Profile, "/p");
            r.ts = 1_800_000_000_000_000_000 + i * 1_000_000;
            let mut d = Detail::default();
            d.timer = Some("instructions".into());
            d.nodes = nodes;
            r.detail = Some(Box::new(d));
            r
        })
        .collect();
    (recs, [("f", f), ("g", g)])
}

/// A database of schema version 4 gets each record's amount per
/// function on the function's first row; one whose `profile_nodes` lacks
/// those columns (not yet upgraded) gets the rows without them, none
/// refused or dropped.
#[test]
fn profile_rows_go_into_tables_with_and_without_the_amounts_per_function() {
    let test = "profile_rows_go_into_tables_with_and_without_the_amounts_per_function";
    let Some(server) = Server::start(test, free_port(), &[]) else {
        return;
    };
    init(&server);
    let (recs, amounts) = profiles(40);
    let sink = || {
        ClickHouseSink::builder(&server.url())
            .chunk_records(15)
            .build()
            .unwrap()
    };
    deliver_all(pipeline(sink()), &recs);
    let per_scope = "SELECT scope, toString(count()), toString(sum(scope_inclusive)) \
         FROM dynostats.profile_nodes WHERE scope_first = 1 GROUP BY scope ORDER BY scope";
    let want: Vec<Vec<String>> = amounts
        .iter()
        .map(|(scope, sum)| vec![scope.to_string(), "40".into(), sum.to_string()])
        .collect();
    assert_eq!(server.query(per_scope), want);
    // The other rows: the roots, the recursive f, the second g.
    let others = "SELECT toString(count()), toString(sum(scope_inclusive)) \
         FROM dynostats.profile_nodes WHERE scope_first = 2";
    assert_eq!(server.query(others), [["120", "0"]]);

    server.apply([
        "ALTER TABLE dynostats.profile_nodes DROP COLUMN scope_first, \
         DROP COLUMN scope_inclusive",
    ]);
    deliver_all(pipeline(sink()), &recs);
    let inclusive: i64 = recs
        .iter()
        .flat_map(|r| &r.detail.as_ref().unwrap().nodes)
        .map(|n| n.inclusive)
        .sum();
    assert_eq!(
        server.query(
            "SELECT toString(count()), toString(sum(inclusive)) FROM dynostats.profile_nodes"
        ),
        [["400".to_string(), (2 * inclusive).to_string()]]
    );
}

#[test]
fn a_server_that_comes_late_gets_the_buffer() {
    let test = "a_server_that_comes_late_gets_the_buffer";
    if ch::server_binary().is_none() {
        ch::skip(test, "no clickhouse-server");
        return;
    }
    let (http, tcp) = (free_port(), free_port());
    let url = format!("http://127.0.0.1:{http}/");
    let sink = ClickHouseSink::builder(&url)
        .chunk_records(100)
        .flush_timeout(Duration::from_millis(300))
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
        .build()
        .unwrap();
    let p = pipeline(sink);
    for r in records(300) {
        assert!(p.emit(r));
    }
    // Nothing listens: the flush says so, the records stay buffered.
    let err = p.flush().unwrap_err().to_string();
    assert!(err.contains("300 records not delivered"), "{err}");
    let s = p.stats();
    assert_eq!(s.sinks[0].buffered_by_sink, 300, "{:?}", s.sinks[0]);
    assert_eq!(s.sinks[0].delivered, 0);

    let Some(server) = Server::start_at(test, http, tcp, &[]) else {
        return;
    };
    // The server is up but has no schema: still buffered, not dropped.
    let err = p.flush().unwrap_err().to_string();
    assert!(err.contains("schema"), "{err}");
    assert_eq!(p.stats().sinks[0].dropped_by_sink, 0);

    init(&server);
    // Each flush waits 300 ms at most; a loaded machine may need several
    // for three inserts into the old server. The buffer stays whole meanwhile.
    let give_up = Instant::now() + Duration::from_secs(60);
    while let Err(e) = p.flush() {
        assert!(Instant::now() < give_up, "never delivered: {e}");
        assert_eq!(p.stats().sinks[0].dropped_by_sink, 0);
    }
    let stats = p.shutdown().unwrap();
    assert_eq!(stats.sinks[0].delivered, 300, "{:?}", stats.sinks[0]);
    assert_eq!(server.count("dynostats.records"), 300);
}

#[test]
fn a_full_buffer_and_a_refused_insert_are_counted_drops() {
    let test = "a_full_buffer_and_a_refused_insert_are_counted_drops";
    let dead = format!("http://loader:pw-never-shown@127.0.0.1:{}/", free_port());
    let sink = ClickHouseSink::builder(&dead)
        .buffer_records(100)
        .chunk_records(50)
        .flush_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let p = pipeline(sink);
    for r in records(250) {
        assert!(p.emit(r));
    }
    let err = p.flush().unwrap_err().to_string();
    assert!(!err.contains("pw-never-shown"), "{err}");
    let stats = p.shutdown().unwrap();
    let sink = &stats.sinks[0];
    assert!(!sink.name.contains("pw-never-shown"), "{}", sink.name);
    assert_eq!(sink.dropped_by_sink, 150, "{sink:?}");
    assert_eq!(sink.lost_at_shutdown, 100, "{sink:?}");
    assert_eq!(sink.delivered, 0);

    // A table the server does not have: refused, dropped, said.
    let Some(server) = Server::start(test, free_port(), &[]) else {
        return;
    };
    init(&server);
    server.query("DROP TABLE dynostats.records");
    let sink = ClickHouseSink::builder(&server.url()).build().unwrap();
    let p = pipeline(sink);
    for r in records(40) {
        assert!(p.emit(r));
    }
    let err = p.flush().unwrap_err().to_string();
    assert!(err.contains("40 records dropped"), "{err}");
    assert!(err.contains("records"), "{err}");
    let stats = p.shutdown().unwrap();
    assert_eq!(stats.sinks[0].dropped_by_sink, 40, "{:?}", stats.sinks[0]);
}

#[test]
fn bad_settings_are_refused_when_built() {
    for bad in [
        ClickHouseSink::builder("ftp://x/").build(),
        ClickHouseSink::builder("http://127.0.0.1:8123/")
            .database("x; DROP TABLE y")
            .build(),
        ClickHouseSink::builder("http://127.0.0.1:8123/")
            .chunk_records(0)
            .build(),
        ClickHouseSink::builder("http://127.0.0.1:8123/")
            .backoff(Duration::from_secs(2), Duration::from_secs(1))
            .build(),
    ] {
        let e = bad.unwrap_err().to_string();
        assert!(e.contains("ClickHouseSink"), "{e}");
    }
}

/// The sink against current ClickHouse over HTTP (chdb behind the stand-in
/// `tests/clickhouse/chdb_http.py`, which applies each request's URL
/// settings in the engine and refuses the ones it does not know): it
/// finds asynchronous inserts and deduplication tokens in
/// `system.settings` and sends every insert with them, and the engine
/// takes them. Then the answer of one insert is lost after the server
/// executed it (the connection closes): the sink cannot know, sends the
/// chunk again under the same token and counts it as resent, and the
/// table holds every record once, with the sums of what was emitted; a
/// chunk that repeats an earlier one's records is kept (its own token).
///
/// chdb has no asynchronous insert queue (its `system.events` never count
/// an `AsyncInsertQuery`): it accepts the settings and writes the insert
/// at once, so what this shows of the asynchronous path is that a current
/// engine takes exactly the settings the sink sends, not the queue's own
/// deduplication.
#[test]
fn current_clickhouse_takes_async_inserts_and_keeps_a_resent_chunk_once() {
    let test = "current_clickhouse_takes_async_inserts_and_keeps_a_resent_chunk_once";
    let Some(standin) = ch::Standin::start(test) else {
        return;
    };
    for statement in Schema::new().statements() {
        standin.query(&statement.sql);
    }
    let sink = ClickHouseSink::builder(&standin.url())
        .chunk_records(700)
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
        .build()
        .unwrap();
    let p = pipeline(sink);
    // The third insert from now goes in, and its answer never comes.
    standin.lose_answer_of_insert(3);
    // The second chunk holds the same records as the first: a server
    // going by the data alone would drop it as a repeat, one going by
    // the chunks' tokens keeps both.
    let mut recs = records(5_000);
    for i in 700..1_400 {
        recs[i] = recs[i - 700].clone();
    }
    let stats = deliver_all(p, &recs);
    let sink = &stats.sinks[0];

    let inserts: Vec<serde_json::Value> = standin.inserts_into("dynostats.records");
    for i in &inserts {
        let s = &i["settings"];
        assert_eq!(
            (
                &s["async_insert"],
                &s["wait_for_async_insert"],
                &s["async_insert_deduplicate"],
                &s["insert_deduplicate"]
            ),
            (&"1".into(), &"1".into(), &"1".into(), &"1".into()),
            "{i}"
        );
        assert_eq!(
            i["status"], 200,
            "the engine refused the sink's settings: {i}"
        );
    }
    let lost: Vec<&serde_json::Value> = inserts.iter().filter(|i| i["lost"] == true).collect();
    assert_eq!(lost.len(), 1, "{inserts:?}");
    let token = &lost[0]["settings"]["insert_deduplication_token"];
    assert!(token.as_str().is_some_and(|t| !t.is_empty()), "{token}");
    // Sent twice under that token, and every other chunk once under its own.
    let with = |t: &serde_json::Value| {
        inserts
            .iter()
            .filter(|i| &i["settings"]["insert_deduplication_token"] == t)
            .count()
    };
    assert_eq!(with(token), 2, "{inserts:?}");
    for i in &inserts {
        let t = &i["settings"]["insert_deduplication_token"];
        if t != token {
            assert_eq!(with(t), 1, "{inserts:?}");
        }
    }
    // The resent chunk's records are counted, as many as it held.
    assert_eq!(Some(sink.resent), lost[0]["rows"].as_u64(), "{sink:?}");
    assert!(sink.resent > 0);

    // Each record once, the sums of what was emitted; in the rollup too
    // (fed by its materialized view, which sees every insert).
    assert_eq!(standin.count("dynostats.records"), 5_000);
    assert_eq!(standin.query(SUMS), sums(&recs));
    let weights: u64 = recs.iter().map(|r| r.weight).sum();
    assert_eq!(
        standin.query(
            "SELECT toString(sum(samples) + sum(forced)), toString(sum(events)) \
             FROM dynostats.rollup"
        ),
        [["5000".to_string(), weights.to_string()]]
    );
}
