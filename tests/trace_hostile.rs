// Own test binary: it installs the global pipeline, and the count of ignored
// headers it checks is the process's.
//! Hostile `traceparent` headers over real HTTP: 100,000 requests on
//! keep-alive connections to an axum service on 127.0.0.1 whose
//! `MeasureLayer` samples 1 in 3 with `.trace_context()`, written as raw
//! bytes (so that anything a client can put on the wire is sent: upper
//! case, all-zero ids, version `ff`, non-ASCII bytes, 16 KiB values,
//! the header twice, under two spellings of its name).
//!
//! Checked: every request is answered 200; each sampled request's record
//! carries exactly the ids of its valid header (version `00`, or a future
//! version's first fields) and none otherwise; nothing of a refused header
//! is in the file; the status records' `traceparent_ignored` grows by the
//! number of sampled requests whose header was refused (unsampled requests
//! are not looked at, so not counted); and the process's resident memory
//! does not grow with the requests.
#![cfg(feature = "axum")]

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use dynostats::record::Labels;
use dynostats::{Pipeline, Record, RecordKind, sink::FileSink, tower::MeasureLayer};
use std::io::{Read, Write};
use std::net::TcpStream;

const REQUESTS: usize = 100_000;
const CLIENTS: usize = 4;
const RATE: u64 = 3;
/// Requests before the first RSS reading: buffers, the allocator's arenas
/// and the file sink's batch have found their size by then.
const WARM_UP: usize = 10_000;
/// How much the resident set may grow between the readings (about 150
/// KiB when this was written). Were the oversized headers of sampled
/// requests kept, it would grow by 90,000 x 1/16 x 1/3 x 17 KiB = 31 MiB.
const RSS_GROWTH_MAX: u64 = 4 << 20;
/// In every refused header, never in a record.
const MARKER: &str = "HOSTILE";

/// What request `i` sends as its `traceparent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// Version 00, exactly 55 bytes.
    Valid,
    /// A future version: 00's fields, then `-` and more.
    Future,
    /// No header at all: nothing to count.
    Absent,
    Uppercase,
    ZeroTrace,
    ZeroSpan,
    VersionFf,
    Short,
    /// Version 00 with a field after the flags.
    Long,
    BadSeparator,
    /// Bytes 0x80-0xff where digits belong (HTTP's obs-text).
    NonAscii,
    Empty,
    /// 16 KiB: digits, or a valid header followed by a tail.
    Oversized,
    /// Two valid headers.
    Repeated,
    /// `traceparent` and `TraceParent`: one header name, twice.
    RepeatedOtherCase,
}

const KINDS: [Kind; 15] = [
    Kind::Valid,
    Kind::Future,
    Kind::Absent,
    Kind::Uppercase,
    Kind::ZeroTrace,
    Kind::ZeroSpan,
    Kind::VersionFf,
    Kind::Short,
    Kind::Long,
    Kind::BadSeparator,
    Kind::NonAscii,
    Kind::Empty,
    Kind::Oversized,
    Kind::Repeated,
    Kind::RepeatedOtherCase,
];

impl Kind {
    fn of(i: usize) -> Kind {
        // Valid headers twice as often as in a plain cycle.
        match i % (KINDS.len() + 1) {
            n if n == KINDS.len() => Kind::Valid,
            n => KINDS[n],
        }
    }

    fn name(self) -> String {
        format!("{self:?}")
    }

    /// Whether a sampled request of this kind is counted as ignored.
    fn refused(self) -> bool {
        !matches!(self, Kind::Valid | Kind::Future | Kind::Absent)
    }
}

/// The ids request `i` sends: distinct per request, never zero.
fn ids(i: usize) -> (String, String) {
    let n = i as u128 + 1;
    (
        format!(
            "{:032x}",
            n.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
        ),
        format!(
            "{:016x}",
            (n as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9) | 1
        ),
    )
}

/// The `traceparent` lines of request `i`.
fn traceparent_lines(i: usize) -> Vec<u8> {
    let (trace, span) = ids(i);
    let valid = format!("00-{trace}-{span}-01");
    let line = |value: &str| format!("traceparent: {value}\r\n").into_bytes();
    match Kind::of(i) {
        Kind::Valid => line(&valid),
        Kind::Future => line(&format!("cc-{trace}-{span}-01-{MARKER}")),
        Kind::Absent => Vec::new(),
        Kind::Uppercase => line(&format!("00-{}-{span}-01", trace.to_uppercase())),
        Kind::ZeroTrace => line(&format!("00-{}-{span}-01", "0".repeat(32))),
        Kind::ZeroSpan => line(&format!("00-{trace}-{}-01", "0".repeat(16))),
        Kind::VersionFf => line(&format!("ff-{trace}-{span}-01")),
        Kind::Short => line(&valid[..54]),
        Kind::Long => line(&format!("{valid}-{MARKER}")),
        Kind::BadSeparator => line(&valid.replace('-', "_")),
        Kind::NonAscii => {
            let mut l = b"traceparent: 00-".to_vec();
            l.extend(std::iter::repeat_n(0xe9u8, 32));
            l.extend(format!("-{span}-01\r\n").bytes());
            l
        }
        Kind::Empty => b"traceparent: \r\n".to_vec(),
        Kind::Oversized if i % 2 == 0 => line(&format!("00-{}-{span}-01", "a".repeat(16 << 10))),
        Kind::Oversized => line(&format!("{valid}{}", format!("-{MARKER}").repeat(2340))),
        Kind::Repeated => [line(&valid), line(&valid)].concat(),
        Kind::RepeatedOtherCase => {
            let mut l = line(&valid);
            l.extend(format!("TraceParent: {valid}\r\n").bytes());
            l
        }
    }
}

fn request_bytes(i: usize) -> Vec<u8> {
    let mut r = format!(
        "GET /r HTTP/1.1\r\nhost: 127.0.0.1\r\nx-i: {i}\r\nx-kind: {}\r\n",
        Kind::of(i).name()
    )
    .into_bytes();
    r.extend(traceparent_lines(i));
    r.extend(b"\r\n");
    r
}

/// Sends request `i` on `stream` and reads its response; returns the
/// status code.
fn round_trip(stream: &mut TcpStream, buf: &mut Vec<u8>, i: usize) -> u16 {
    stream.write_all(&request_bytes(i)).unwrap();
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end])
                .unwrap()
                .to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .expect("a content-length");
            while buf.len() < end + 4 + length {
                let n = stream.read(&mut chunk).unwrap();
                assert!(n > 0, "connection closed mid-body");
                buf.extend_from_slice(&chunk[..n]);
            }
            assert_eq!(buf.len(), end + 4 + length, "one response at a time");
            return head[9..12].parse().unwrap();
        }
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed before the response");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Requests `range` from `CLIENTS` threads, each on its own keep-alive
/// connection (blocking sockets: the server's runtime is not theirs).
fn send_all(addr: std::net::SocketAddr, range: std::ops::Range<usize>) {
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let range = range.clone();
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                stream.set_nodelay(true).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(60)))
                    .unwrap();
                let mut buf = Vec::new();
                for i in range.skip(c).step_by(CLIENTS) {
                    let status = round_trip(&mut stream, &mut buf, i);
                    assert_eq!(status, 200, "request {i} ({:?})", Kind::of(i));
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
}

/// The process's resident set (`VmRSS` of `/proc/self/status`).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .map(|v| v.trim().parse().unwrap())
        .expect("VmRSS in /proc/self/status");
    kib << 10
}

/// The label hook: the request's index and kind, from headers only the
/// test sends.
fn label(request: &http::Request<axum::body::Body>, labels: &mut Labels) {
    for name in ["x-i", "x-kind"] {
        if let Some(v) = request.headers().get(name).and_then(|v| v.to_str().ok()) {
            labels.insert(name, v);
        }
    }
}

fn ignored_in(status: &Record) -> u64 {
    status.detail.as_ref().expect("detail").stats["traceparent_ignored"]
}

#[test]
fn hostile_traceparent_headers_leave_only_valid_ids_and_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("records.msgpack");
    let pipeline = Pipeline::builder()
        .sink(FileSink::create(&file).unwrap())
        // One status record at the start and one at shutdown.
        .status_interval(Some(Duration::from_secs(3600)))
        .build()
        .unwrap();
    let pipeline = dynostats::install(pipeline).unwrap();
    let app = Router::new().route("/r", get(|| async { "ok" })).layer(
        MeasureLayer::new(RATE)
            .labels(label)
            .axum_body()
            .trace_context(),
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    let middle = (WARM_UP + REQUESTS) / 2;
    send_all(addr, 0..WARM_UP);
    let rss_warm = rss_bytes();
    send_all(addr, WARM_UP..middle);
    let rss_middle = rss_bytes();
    send_all(addr, middle..REQUESTS);
    let rss_end = rss_bytes();
    let _ = stop.send(());
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), server)
            .await
            .expect("graceful shutdown finishes")
            .unwrap()
            .unwrap();
    });
    drop(rt);
    let stats = pipeline.shutdown().unwrap();
    assert_eq!(stats.lost(), 0, "{stats}");
    eprintln!(
        "RSS after {WARM_UP} requests {rss_warm} bytes, at {} {rss_middle}, at {REQUESTS} {rss_end}",
        (WARM_UP + REQUESTS) / 2
    );

    // Memory: flat across the last 90,000 requests.
    for (from, to) in [(rss_warm, rss_middle), (rss_middle, rss_end)] {
        assert!(
            to.saturating_sub(from) < RSS_GROWTH_MAX,
            "RSS grew from {from} to {to} bytes (warm {rss_warm}, middle {rss_middle}, end {rss_end})"
        );
    }

    let bytes = std::fs::read(&file).unwrap();
    assert!(
        !bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()),
        "a refused header's bytes reached the file"
    );
    let records: Vec<Record> = dynostats::read(&bytes[..])
        .collect::<Result<_, _>>()
        .unwrap();
    let statuses: Vec<&Record> = records
        .iter()
        .filter(|r| r.kind == RecordKind::Status)
        .collect();
    assert_eq!(
        statuses.len(),
        2,
        "a status record at start and at shutdown"
    );
    let requests: Vec<&Record> = records
        .iter()
        .filter(|r| r.kind == RecordKind::Request)
        .collect();
    // 1 in 3 sampled: about 33,333, the countdown's spread is ~150.
    assert!(
        (30_000..=37_000).contains(&requests.len()),
        "{} sampled",
        requests.len()
    );

    let mut sampled_per_kind: BTreeMap<Kind, u64> = BTreeMap::new();
    let mut refused_sampled = 0;
    let mut expected_trace_ids = std::collections::BTreeSet::new();
    for r in &requests {
        let i: usize = r.labels.get("x-i").expect("x-i label").parse().unwrap();
        let kind = Kind::of(i);
        assert_eq!(r.labels.get("x-kind"), Some(kind.name().as_str()));
        *sampled_per_kind.entry(kind).or_default() += 1;
        assert_eq!(r.status, Some(200));
        let got = (
            r.trace_id.map(|t| t.to_string()),
            r.span_id.map(|s| s.to_string()),
        );
        match kind {
            Kind::Valid | Kind::Future => {
                let (trace, span) = ids(i);
                expected_trace_ids.insert(trace.clone());
                assert_eq!(got, (Some(trace), Some(span)), "request {i} ({kind:?})");
            }
            _ => assert_eq!(got, (None, None), "request {i} ({kind:?})"),
        }
        if kind.refused() {
            refused_sampled += 1;
        }
    }
    // Every kind was sampled (so every kind was checked) ...
    assert_eq!(sampled_per_kind.len(), KINDS.len(), "{sampled_per_kind:?}");
    // ... and exactly the valid ids of sampled requests are in records.
    let recorded: std::collections::BTreeSet<String> = requests
        .iter()
        .filter_map(|r| r.trace_id.map(|t| t.to_string()))
        .collect();
    assert_eq!(recorded, expected_trace_ids);
    assert_eq!(
        recorded.len() as u64,
        sampled_per_kind[&Kind::Valid] + sampled_per_kind[&Kind::Future]
    );

    // The status records count the refused headers of sampled requests,
    // one per request, and nothing of unsampled ones.
    let first = ignored_in(statuses[0]);
    let last = ignored_in(statuses[statuses.len() - 1]);
    assert_eq!(last - first, refused_sampled);
    assert_eq!(last, dynostats::record::traceparent_ignored());
    let refused_sent = (0..REQUESTS).filter(|&i| Kind::of(i).refused()).count() as u64;
    assert!(
        refused_sampled < refused_sent / 2,
        "unsampled ones are not counted"
    );
}
