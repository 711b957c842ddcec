//! A `FileSink` built with the defaults does not grow without bound: it
//! rotates at `FileSink::DEFAULT_MAX_BYTES`. The file is made sparse so the
//! test writes kilobytes, not 256 MiB.

use std::fs::{self, OpenOptions};
use std::io::Write;

use dynostats::{Pipeline, Record, RecordKind, sink::FileSink};

#[test]
fn a_default_file_sink_rotates_at_the_default_cap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.msgpack");
    // A record file just under the cap: a record, a hole, records at the
    // end (FileSink checks only the ends).
    let record = Record::new(RecordKind::Region, "old").to_msgpack();
    let mut tail = Vec::new();
    for _ in 0..20 {
        tail.extend_from_slice(&record);
    }
    let len = FileSink::DEFAULT_MAX_BYTES - 10;
    {
        let mut file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)
            .unwrap();
        file.write_all(&record).unwrap();
        file.set_len(len - tail.len() as u64).unwrap();
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&tail)
            .unwrap();
    }
    assert_eq!(fs::metadata(&path).unwrap().len(), len);

    let pipeline = Pipeline::builder()
        .sink(FileSink::create(&path).unwrap())
        .status_interval(None)
        .build()
        .unwrap();
    for _ in 0..5 {
        assert!(pipeline.emit(Record::new(RecordKind::Region, "new")));
    }
    pipeline.shutdown().unwrap();

    let rotated = dir.path().join("records.msgpack.1");
    assert_eq!(
        fs::metadata(&rotated).map(|m| m.len()).ok(),
        Some(len),
        "the full file was rotated away"
    );
    let records: Vec<_> = dynostats::read(fs::File::open(&path).unwrap())
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(records.len(), 5);
    assert!(records.iter().all(|r| r.name == "new"));
}
