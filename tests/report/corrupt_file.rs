//! Damaged record files: every complete record before the damage is read,
//! and the error names the byte offset of the damaged record.

use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use dynostats::{Error, Pipeline, Record, RecordKind, sink::FileSink};

const N: u64 = 20;

/// Writes N records through the file sink; returns them and the byte
/// offset at which each starts.
fn write_records(path: &Path) -> (Vec<Record>, Vec<u64>) {
    let records: Vec<Record> = (0..N)
        .map(|i| {
            let mut r = Record::new(RecordKind::Region, &"x".repeat(i as usize));
            r.cpu_ns = (i % 2 == 0).then_some(i);
            r
        })
        .collect();
    let pipeline = Pipeline::builder()
        .sink(FileSink::create(path).unwrap())
        .status_interval(None)
        .build()
        .unwrap();
    for r in &records {
        pipeline.emit(r.clone());
    }
    pipeline.shutdown().unwrap();
    // Offsets from an independent decoder of the same bytes.
    let bytes = fs::read(path).unwrap();
    let mut cursor = &bytes[..];
    let mut offsets = Vec::new();
    while !cursor.is_empty() {
        offsets.push((bytes.len() - cursor.len()) as u64);
        rmpv::decode::read_value(&mut cursor).unwrap();
    }
    assert_eq!(offsets.len() as u64, N);
    (records, offsets)
}

fn read_all(path: &Path) -> (Vec<Record>, Vec<Error>) {
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for item in dynostats::read(File::open(path).unwrap()) {
        match item {
            Ok(r) => ok.push(r),
            Err(e) => errors.push(e),
        }
    }
    (ok, errors)
}

#[test]
fn a_file_cut_mid_record_yields_every_complete_record_then_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.msgpack");
    let (records, offsets) = write_records(&path);
    let len = fs::metadata(&path).unwrap().len();
    let last = offsets[N as usize - 1];
    for cut in [last + 1, last + 5, len - 1] {
        fs::copy(&path, dir.path().join("copy")).unwrap();
        let copy = dir.path().join("copy");
        OpenOptions::new()
            .write(true)
            .open(&copy)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let (ok, errors) = read_all(&copy);
        assert_eq!(ok, records[..N as usize - 1], "cut at {cut}");
        assert_eq!(errors.len(), 1);
        match &errors[0] {
            Error::Truncated { offset } => assert_eq!(*offset, last),
            other => panic!("cut at {cut}: {other}"),
        }
        assert!(errors[0].to_string().contains(&last.to_string()));
    }
}

#[test]
fn garbage_in_the_middle_names_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.msgpack");
    let (records, offsets) = write_records(&path);
    let damaged = offsets[10];
    {
        let mut f = OpenOptions::new().write(true).open(&path).unwrap();
        f.seek(SeekFrom::Start(damaged)).unwrap();
        f.write_all(&[0xc1, 0xc1, 0xc1]).unwrap();
    }
    let (ok, errors) = read_all(&path);
    assert_eq!(ok, records[..10]);
    assert_eq!(errors.len(), 1);
    match &errors[0] {
        Error::Decode { offset, .. } => assert_eq!(*offset, damaged),
        other => panic!("{other}"),
    }
}

#[test]
fn a_hostile_length_prefix_is_refused_without_allocating_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.msgpack");
    let (records, offsets) = write_records(&path);
    // Record 5 becomes a map whose first key claims to be a 4 GiB string.
    {
        let mut f = OpenOptions::new().write(true).open(&path).unwrap();
        f.seek(SeekFrom::Start(offsets[5])).unwrap();
        f.write_all(&[0x81, 0xdb, 0xff, 0xff, 0xff, 0xf0]).unwrap();
    }
    let (ok, errors) = read_all(&path);
    assert_eq!(ok, records[..5]);
    match &errors[..] {
        [Error::Decode { offset, message }] => {
            assert_eq!(*offset, offsets[5]);
            assert!(message.contains("limit"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}
