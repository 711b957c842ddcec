//! What reading records back costs, per record, from memory (no I/O):
//!
//! - `decode/serde`: the baseline, rmp-serde's derived `Deserialize`
//!   over the same stream (what the reader did before, after a separate
//!   framing pass).
//! - `decode/reader`: the streaming reader, `RecordReader::next_into`
//!   (framing and decoding in one pass, one record reused).
//! - `report/reader`: records read and aggregated into a `Report` (200
//!   groups, five sketches each), labels skipped as the report does.
//! - `report/by_label`: the same split by a label, so labels are decoded.
//!
//! The whole-file figures (10,000,000 records, peak RSS) come from
//! `examples/gen_records.rs` and `/usr/bin/time -v dynostats report`; see
//! BENCHMARKS.md.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dynostats::record::{RecordReader, Step};
use dynostats::report::{Report, Split, Summarize};
use dynostats::sink::Batch;
use dynostats::{Record, RecordKind};
use serde::Deserialize;

const RECORDS: u64 = 100_000;

/// 100,000 realistic requests over 200 endpoints, as the file sink writes them.
fn stream() -> Vec<u8> {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut batch = Batch::new();
    for i in 0..RECORDS {
        let e = next() % 200;
        let mut r = Record::new(RecordKind::Request, &format!("/api/v1/endpoint{e}/{{id}}"));
        r.method = Some("GET".into());
        r.status = Some(200);
        r.weight = 100;
        r.instructions = Some(10_000 + next() % 10_000_000);
        r.cycles = Some(5_000 + next() % 5_000_000);
        r.cpu_ns = Some(1_000 + next() % 1_000_000);
        r.wall_ns = 2_000 + next() % 2_000_000;
        r.rss_start = Some(40 << 20);
        r.rss_end = Some((40 << 20) + next() % 65_536);
        r.page_faults = Some(next() % 10);
        r.context_switches = Some(next() % 3);
        r.polls = Some(1 + next() % 4);
        r.threads = Some(1);
        r.set_label("host", &format!("web-{}", i % 4));
        r.set_label("build", "abc123");
        batch.push(&r);
    }
    batch.bytes().to_vec()
}

fn decode(c: &mut Criterion) {
    let bytes = stream();
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(RECORDS));
    group.bench_function("serde", |b| {
        b.iter(|| {
            let mut de = rmp_serde::Deserializer::from_read_ref(&bytes[..]);
            let mut n = 0u64;
            while let Ok(r) = Record::deserialize(&mut de) {
                n += black_box(r.wall_ns) & 1;
            }
            n
        })
    });
    group.bench_function("reader", |b| {
        b.iter(|| {
            let mut reader = RecordReader::new(&bytes[..]);
            let mut record = Record::new(RecordKind::Region, "");
            let mut n = 0u64;
            while let Ok(Step::Record) = reader.next_into(&mut record) {
                n += black_box(record.wall_ns) & 1;
            }
            n
        })
    });
    group.finish();
}

fn report(c: &mut Criterion) {
    let bytes = stream();
    let mut group = c.benchmark_group("report");
    group.throughput(Throughput::Elements(RECORDS));
    group.bench_function("reader", |b| {
        b.iter(|| {
            let (report, damage) = Report::from_reader(&bytes[..]);
            assert_eq!(damage.records, RECORDS);
            black_box(report)
        })
    });
    group.bench_function("by_label", |b| {
        b.iter(|| {
            let mut report = Report::builder().split(Split::Label("host".into())).build();
            let damage = report.read_from(&bytes[..]);
            assert_eq!(damage.records, RECORDS);
            black_box(report)
        })
    });
    group.finish();
}

criterion_group!(benches, decode, report);
criterion_main!(benches);
