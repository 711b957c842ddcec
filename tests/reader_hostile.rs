// Own test binary: one test reads the process's peak RSS (VmHWM), which other tests would raise.
//! The record reader on hostile input: a valid stream, damaged in many
//! seeded ways (byte flips, every truncation, inserted garbage, huge length
//! prefixes, deep nesting, values that are not records), never makes it
//! panic, read without bound or lose a record before the damage, and every
//! error names the byte offset of the record concerned.

use std::io::{self, Read};

use dynostats::{Error, Record, RecordKind, record::Detail, record::RecordReader};

#[path = "common/rng.rs"]
mod rng;
use rng::Rng;

/// Records of every kind, with optional fields, labels and a detail map.
fn records() -> Vec<Record> {
    let mut request = Record::new(RecordKind::Request, "/users/{id}");
    request.method = Some("GET".into());
    request.status = Some(503);
    request.set_label("host", "web-1").set_label("build", "é1");
    request.instructions = Some(u64::MAX);
    request.cpu_ns = Some(1);
    request.error = Some("upstream timeout".into());
    let mut region = Record::new(RecordKind::Region, "parse");
    region.wall_ns = 70_000;
    region.cancelled = true;
    region.forced = true;
    region.weight = 0;
    let mut status = Record::new(RecordKind::Status, "dynostats");
    let mut detail = Detail::default();
    detail.counters.insert("instructions".into(), "ok".into());
    detail.stats.insert("records_dropped".into(), 3);
    detail
        .sinks
        .entry("file".into())
        .or_default()
        .insert("bytes_written".into(), 1 << 40);
    detail.errors.insert("udp".into(), "ECONNREFUSED".into());
    status.detail = Some(Box::new(detail));
    let mut profile = Record::new(RecordKind::Profile, "");
    profile.scaled = true;
    profile.polls = Some(7);
    let mut records = vec![
        request,
        Record::new(RecordKind::Region, "a"),
        region,
        status,
        profile,
        Record::new(RecordKind::Region, &"x".repeat(300)),
    ];
    // The same stream on every call and in every process.
    for (i, r) in records.iter_mut().enumerate() {
        r.ts = 1_700_000_000_000_000_000 + i as u64;
        r.pid = 4242;
    }
    records
}

/// The records, their encoding back to back, and the offset at which each
/// starts followed by the stream's length.
fn stream() -> (Vec<Record>, Vec<u8>, Vec<usize>) {
    let records = records();
    let mut bytes = Vec::new();
    let mut starts = Vec::new();
    for r in &records {
        starts.push(bytes.len());
        r.write_msgpack(&mut bytes);
    }
    starts.push(bytes.len());
    (records, bytes, starts)
}

/// One item of the iteration, with the reader's offset before and after.
struct Item {
    start: u64,
    end: u64,
    result: Result<Record, Error>,
}

/// Reads `input` to the end, checking what holds for any input: the items
/// tile the input from offset 0, a record decodes from exactly its bytes
/// (the same object an independent MessagePack decoder finds there), an
/// error names the offset at which its object starts, inside the input.
fn read_checked(input: &[u8], case: &str) -> Vec<Item> {
    let mut reader = dynostats::read(input);
    let mut items: Vec<Item> = Vec::new();
    loop {
        let start = reader.offset();
        let Some(result) = reader.next() else { break };
        let end = reader.offset();
        assert!(
            items.len() <= input.len(),
            "{case}: more items than input bytes"
        );
        let expected_start = items.last().map_or(0, |i| i.end);
        assert_eq!(start, expected_start, "{case}: items must tile the input");
        assert!(end <= input.len() as u64, "{case}: read past the input");
        let span = &input[start as usize..end as usize];
        match &result {
            Ok(record) => {
                assert!(end > start, "{case}: an empty record");
                assert_eq!(
                    Record::from_msgpack(span).as_ref().ok(),
                    Some(record),
                    "{case}: record at {start} differs from its bytes"
                );
                let mut rest = &input[start as usize..];
                rmpv::decode::read_value(&mut rest).expect("a record is MessagePack");
                assert_eq!(
                    input.len() - rest.len(),
                    end as usize,
                    "{case}: record at {start} framed differently from rmpv"
                );
            }
            Err(Error::Decode { offset, .. }) | Err(Error::Truncated { offset }) => {
                assert_eq!(*offset, start, "{case}: error offset is not the object's");
                assert!(
                    *offset < input.len() as u64,
                    "{case}: offset {offset} outside"
                );
            }
            Err(other) => panic!("{case}: unexpected error {other:?}"),
        }
        if matches!(result, Err(Error::Truncated { .. })) {
            assert_eq!(end, input.len() as u64, "{case}: truncated before the end");
        }
        items.push(Item { start, end, result });
    }
    assert!(reader.next().is_none(), "{case}: items after the end");
    // An error the iteration went on from framed a whole map that does not
    // decode as a record.
    for item in items.iter().rev().skip(1) {
        if item.result.is_err() {
            let span = &input[item.start as usize..item.end as usize];
            assert!(matches!(item.result, Err(Error::Decode { .. })), "{case}");
            assert!(
                Record::from_msgpack(span).is_err(),
                "{case}: at {}",
                item.start
            );
        }
    }
    match items.last() {
        // Clean end, or an object framed whole that is not a record: all
        // input was consumed.
        None | Some(Item { result: Ok(_), .. }) => {
            assert_eq!(reader.offset(), input.len() as u64, "{case}: stopped early")
        }
        Some(_) => {}
    }
    items
}

/// Checks that `input`, equal to the valid stream before `damage`, yields
/// every record that ends at or before the start of the damaged record
/// exactly as encoded, and no error before that record's start.
fn check_damage(input: &[u8], damage: usize, case: &str) -> Vec<Item> {
    let (records, bytes, starts) = stream();
    assert!(
        input[..damage] == bytes[..damage],
        "{case}: damaged before {damage}"
    );
    let items = read_checked(input, case);
    // The damaged record: the last one starting at or before `damage`.
    let k = starts.iter().rposition(|&s| s <= damage).unwrap();
    assert!(
        items.len() >= k,
        "{case}: only {} items before record {k}",
        items.len()
    );
    for (i, item) in items[..k].iter().enumerate() {
        let record = item
            .result
            .as_ref()
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(record, &records[i], "{case}: record {i}");
        assert_eq!(
            record.to_msgpack(),
            &input[starts[i]..starts[i + 1]],
            "{case}: record {i} re-encodes differently"
        );
    }
    for item in &items {
        if let Err(e) = &item.result {
            assert!(
                item.start >= starts[k] as u64,
                "{case}: error before {}: {e}",
                starts[k]
            );
        }
    }
    items
}

fn error_message<'a>(item: &'a Item, case: &str) -> &'a str {
    match &item.result {
        Err(Error::Decode { message, .. }) => message,
        Err(e) => panic!("{case}: expected a decode error, got {e}"),
        Ok(r) => panic!("{case}: expected a decode error, got {r:?}"),
    }
}

#[test]
fn the_valid_stream_reads_back_exactly() {
    let (records, bytes, starts) = stream();
    let items = read_checked(&bytes, "valid");
    let read: Vec<&Record> = items.iter().map(|i| i.result.as_ref().unwrap()).collect();
    assert_eq!(read, records.iter().collect::<Vec<_>>());
    let ends: Vec<usize> = items.iter().map(|i| i.end as usize).collect();
    assert_eq!(ends, starts[1..]);
}

#[test]
fn truncation_at_every_offset_yields_the_complete_records_then_the_offset() {
    let (_, bytes, starts) = stream();
    for cut in 0..bytes.len() {
        let case = format!("cut at {cut}");
        let items = check_damage(&bytes[..cut], cut, &case);
        let k = starts.iter().rposition(|&s| s <= cut).unwrap();
        if starts[k] == cut {
            // Cut between records: a clean end.
            assert_eq!(items.len(), k, "{case}");
        } else {
            assert_eq!(items.len(), k + 1, "{case}");
            assert!(
                matches!(items[k].result, Err(Error::Truncated { offset }) if offset == starts[k] as u64),
                "{case}"
            );
        }
    }
}

#[test]
fn seeded_byte_flips_and_inserted_garbage() {
    let (_, bytes, _) = stream();
    let mut rng = Rng(0x5eed_d1a0_57a7_5001);
    let mut noticed = 0;
    for n in 0..3000 {
        let mut input = bytes.clone();
        let damage;
        let case;
        if n % 2 == 0 {
            // One to three bytes changed; the damage is at the first.
            let flips: Vec<(usize, u8)> = (0..1 + rng.index(3))
                .map(|_| (rng.index(bytes.len()), 1 | rng.byte()))
                .collect();
            for &(at, mask) in &flips {
                input[at] ^= mask;
            }
            damage = flips.iter().map(|f| f.0).min().unwrap();
            case = format!("case {n}: flips {flips:?}");
        } else {
            // Up to 16 random bytes inserted anywhere, the end included.
            damage = rng.index(bytes.len() + 1);
            let garbage: Vec<u8> = (0..1 + rng.index(16)).map(|_| rng.byte()).collect();
            input.splice(damage..damage, garbage.iter().copied());
            case = format!("case {n}: {garbage:02x?} inserted at {damage}");
        }
        let items = check_damage(&input, damage, &case);
        noticed += usize::from(items.iter().any(|i| i.result.is_err()));
    }
    // Most damage is noticed (a flip inside a string or a number can leave
    // a valid record; 2688 of these 3000 are noticed).
    assert!(
        noticed > 2500,
        "only {noticed} of 3000 damaged streams noticed"
    );
}

/// The stream with record `k` replaced by `hostile`.
fn replace_record(k: usize, hostile: &[u8]) -> Vec<u8> {
    let (_, bytes, starts) = stream();
    let mut input = bytes[..starts[k]].to_vec();
    input.extend_from_slice(hostile);
    input.extend_from_slice(&bytes[starts[k + 1]..]);
    input
}

#[test]
fn huge_length_prefixes_are_refused_at_the_record_offset() {
    let (_, _, starts) = stream();
    let mut rng = Rng(0x1e49_7600_0000_0001);
    // str32, bin32, ext32, array32, map32, then their 16-bit forms.
    let markers = [0xdb, 0xc6, 0xc9, 0xdd, 0xdf, 0xda, 0xc5, 0xc8, 0xdc, 0xde];
    for &marker in &markers {
        for n in 0..40 {
            let wide = matches!(marker, 0xdb | 0xc6 | 0xc9 | 0xdd | 0xdf);
            // Beyond the limit for 32-bit lengths; beyond the end of the
            // stream (but within the limit) for 16-bit ones.
            let len: u32 = match n {
                _ if !wide => rng.next() as u16 as u32 | 1 << 15,
                0 => u32::MAX,
                1 => RecordReader::<&[u8]>::DEFAULT_MAX_RECORD_LEN as u32 + 1,
                _ => rng.next() as u32 | 1 << 31,
            };
            let mut prefix = vec![marker];
            if wide {
                prefix.extend_from_slice(&len.to_be_bytes());
            } else {
                prefix.extend_from_slice(&(len as u16).to_be_bytes());
            }
            let k = 1 + rng.index(starts.len() - 2);
            // As the record itself (a map marker only for map32/map16), and
            // as the value of the first key of a one-entry map.
            for hostile in [prefix.clone(), [&[0x81, 0xa1, b'v'][..], &prefix].concat()] {
                let input = replace_record(k, &hostile);
                let case = format!("marker {marker:#x} length {len} as record {k}: {hostile:02x?}");
                let items = check_damage(&input, starts[k], &case);
                let item = &items[k];
                let not_a_map = hostile[0] == marker && !matches!(marker, 0xde | 0xdf);
                match &item.result {
                    Err(Error::Decode { offset, message }) if not_a_map => {
                        assert_eq!(*offset, starts[k] as u64, "{case}");
                        assert!(message.contains("expected a MessagePack map"), "{case}");
                    }
                    // A payload longer, or a map or array with more
                    // entries, than the limit allows: refused as read.
                    Err(Error::Decode { offset, message }) if wide => {
                        assert_eq!(*offset, starts[k] as u64, "{case}");
                        assert!(message.contains("limit"), "{case}: {message}");
                    }
                    // A 16-bit length fits the limit but runs past the end
                    // of the stream.
                    Err(Error::Truncated { offset }) if !wide => {
                        assert_eq!(*offset, starts[k] as u64, "{case}");
                    }
                    Ok(r) => panic!("{case}: read as record {:?}", r.name),
                    Err(e) => panic!("{case}: {e}"),
                }
                // The next record boundary is unknown: the iteration ends.
                assert_eq!(items.len(), k + 1, "{case}");
            }
        }
    }
}

/// Bytes pulled from the source, shared with the test.
struct Counting<R> {
    inner: R,
    pulled: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pulled.set(self.pulled.get() + n as u64);
        Ok(n)
    }
}

/// Reads one record from `prefix` followed by an endless run of `fill`
/// bytes, with a record size limit of `limit`; returns the error and how
/// many bytes the reader pulled from the source.
fn read_endless(prefix: &[u8], fill: u8, limit: usize) -> (Error, u64) {
    let pulled = std::rc::Rc::default();
    let source = Counting {
        inner: prefix.chain(io::repeat(fill)),
        pulled: std::rc::Rc::clone(&pulled),
    };
    let mut reader = dynostats::read(source).max_record_len(limit);
    let err = match reader.next() {
        Some(Err(e)) => e,
        other => panic!("{prefix:02x?}: {:?}", other.map(|r| r.map(|r| r.name))),
    };
    assert!(reader.next().is_none());
    (err, pulled.get())
}

/// Peak resident memory of this process (VmHWM), bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib << 10
}

#[test]
fn a_hostile_length_reads_no_further_than_the_limit() {
    // The reader buffers its source 8 KiB at a time.
    const SLACK: u64 = 8 << 10;
    let before = peak_rss();
    // A 5-byte input announcing a 4 GiB string: refused before reading on.
    for marker in [0xdb, 0xc6, 0xc9] {
        let (err, pulled) = read_endless(
            &[0x81, 0xa1, b'k', marker, 0xff, 0xff, 0xff, 0xff],
            b'x',
            RecordReader::<&[u8]>::DEFAULT_MAX_RECORD_LEN,
        );
        assert!(matches!(&err, Error::Decode { offset: 0, message } if message.contains("limit")));
        assert!(pulled <= SLACK, "{marker:#x}: pulled {pulled} bytes");
    }
    let (err, pulled) = read_endless(
        &[0xdf, 0xff, 0xff, 0xff, 0xff],
        0,
        RecordReader::<&[u8]>::DEFAULT_MAX_RECORD_LEN,
    );
    assert!(matches!(&err, Error::Decode { offset: 0, message } if message.contains("limit")));
    assert!(pulled <= SLACK);
    // Endless nesting, and an endless stream of one-byte map entries.
    let limit = 64 << 10;
    for (prefix, fill) in [
        (&[0x81, 0xa1, b'k'][..], 0x91),
        (&[0x81, 0xa1, b'k'][..], 0x81),
    ] {
        let (err, pulled) = read_endless(prefix, fill, limit);
        assert!(matches!(&err, Error::Decode { offset: 0, message } if message.contains("limit")));
        assert!(
            pulled >= limit as u64 / 2,
            "{fill:#x}: pulled {pulled} bytes"
        );
        assert!(
            pulled <= limit as u64 + SLACK,
            "{fill:#x}: pulled {pulled} bytes"
        );
    }
    let grown = peak_rss().saturating_sub(before);
    assert!(grown < 16 << 20, "peak RSS grew by {grown} bytes");
}

/// A record with an extra unknown key `z` whose value is `arrays` nested
/// one-element arrays around nil.
fn nested(arrays: usize) -> Vec<u8> {
    let mut bytes = Record::new(RecordKind::Region, "deep").to_msgpack();
    assert!(matches!(bytes[0], 0x80..=0x8e));
    bytes[0] += 1;
    bytes.extend_from_slice(&[0xa1, b'z']);
    bytes.extend(std::iter::repeat_n(0x91, arrays));
    bytes.push(0xc0);
    bytes
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    // Regression: 1000 levels overflowed a 2 MiB stack in a debug build.
    // Run on a small stack, so the test does not depend on the default.
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(|| {
            let (records, _, starts) = stream();
            for depth in [1000, 100_000] {
                let input = replace_record(2, &nested(depth));
                let case = format!("depth {depth}");
                let items = check_damage(&input, starts[2], &case);
                assert!(error_message(&items[2], &case).contains("depth"), "{case}");
                // The object was framed whole: the records after it follow.
                let after: Vec<&Record> = items[3..]
                    .iter()
                    .map(|i| i.result.as_ref().unwrap())
                    .collect();
                assert_eq!(after, records[3..].iter().collect::<Vec<_>>(), "{case}");
            }
            // An unknown field nested a few levels deep is ignored.
            let input = replace_record(2, &nested(8));
            let items = check_damage(&input, starts[2], "depth 8");
            assert_eq!(items[2].result.as_ref().unwrap().name, "deep");
            assert_eq!(items.len(), records.len());
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn values_that_are_not_records() {
    let (records, bytes, starts) = stream();
    let k = 3;
    // Well-formed MessagePack but not a map: the boundary of the next record
    // is unknown, so the iteration ends at this offset.
    for not_a_map in [
        &[0x92, 0x01, 0x02][..],
        &[0xa2, b'h', b'i'],
        &[0x05],
        &[0xc0],
    ] {
        let input = replace_record(k, not_a_map);
        let case = format!("{not_a_map:02x?}");
        let items = check_damage(&input, starts[k], &case);
        assert_eq!(items.len(), k + 1, "{case}");
        assert!(
            error_message(&items[k], &case).contains("expected a MessagePack map"),
            "{case}"
        );
    }
    // Maps that are not records: an error at their offset, then the
    // records after them.
    use rmpv::Value;
    let valid = records[k].to_msgpack();
    let original: Value = rmpv::decode::read_value(&mut &valid[..]).unwrap();
    let with = |field: &str, value: &Value| -> Vec<u8> {
        let entries = original.as_map().unwrap().iter().map(|(key, v)| {
            let v = if key.as_str() == Some(field) {
                value
            } else {
                v
            };
            (key.clone(), v.clone())
        });
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, &Value::Map(entries.collect())).unwrap();
        bytes
    };
    let text = |s: &str| Value::from(s);
    let wrong: Vec<(&str, Vec<Value>)> = vec![
        (
            "v",
            vec![
                text("1"),
                Value::from(-1),
                Value::from(300),
                Value::from(1.5),
                Value::Nil,
            ],
        ),
        (
            "kind",
            vec![
                text("bogus"),
                // rmp-serde takes an integer as the variant's index: 1 is
                // `region`, 9 is none.
                Value::from(9),
                Value::Nil,
                Value::Array(vec![]),
            ],
        ),
        (
            "ts",
            vec![text("1"), Value::from(-1), Value::from(1.5), Value::Nil],
        ),
        (
            "name",
            vec![Value::from(5), Value::Nil, Value::Binary(vec![0xff])],
        ),
        ("weight", vec![Value::from(-1), text("1"), Value::Nil]),
        (
            "pid",
            vec![Value::from(-1), Value::from(1u64 << 40), text("1")],
        ),
        (
            "source",
            vec![Value::from(1), Value::Nil, Value::Array(vec![])],
        ),
        (
            "detail",
            vec![
                Value::from(5),
                text("x"),
                Value::Array(vec![Value::from(1)]),
            ],
        ),
    ];
    for (field, values) in &wrong {
        for value in values {
            let input = replace_record(k, &with(field, value));
            let case = format!("{field} = {value}");
            let items = check_damage(&input, starts[k], &case);
            assert_eq!(items.len(), records.len(), "{case}");
            assert!(
                error_message(&items[k], &case).contains("not a dynostats record"),
                "{case}"
            );
            let after: Vec<&Record> = items[k + 1..]
                .iter()
                .map(|i| i.result.as_ref().unwrap())
                .collect();
            assert_eq!(after, records[k + 1..].iter().collect::<Vec<_>>(), "{case}");
        }
    }
    // The same rewriting with a right type is read back: the errors above
    // are the types' doing.
    let input = replace_record(k, &with("pid", &Value::from(7)));
    let items = check_damage(&input, starts[k], "pid = 7");
    assert_eq!(items[k].result.as_ref().unwrap().pid, 7);
    assert_eq!(
        with("pid", &Value::from(records[k].pid)),
        bytes[starts[k]..starts[k + 1]]
    );
}
