// Own test binary: one test sets the process's umask.
//! FileSink: round trip, rotation by size, file mode, and write errors that
//! are counted and reported instead of panicking.

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use dynostats::{Pipeline, Record, RecordKind, sink::FileSink, sink::MemorySink};

fn read_file(path: &Path) -> Vec<Record> {
    dynostats::read(File::open(path).unwrap())
        .collect::<Result<_, _>>()
        .unwrap()
}

fn numbered(i: u64) -> Record {
    let mut r = Record::new(RecordKind::Region, &format!("r{i}"));
    r.ts = 1_700_000_000_000_000_000 + i;
    r.instructions = Some(i * 1000);
    r.wall_ns = i;
    r
}

#[test]
fn round_trip_through_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.msgpack");
    let pipeline = Pipeline::builder()
        .sink(FileSink::create(&path).unwrap())
        .status_interval(None)
        .build()
        .unwrap();
    let sent: Vec<Record> = (0..100).map(numbered).collect();
    for r in &sent {
        assert!(pipeline.emit(r.clone()));
    }
    pipeline.shutdown().unwrap();
    assert_eq!(read_file(&path), sent);

    // Reopening appends after what is there.
    let pipeline = Pipeline::builder()
        .sink(FileSink::create(&path).unwrap())
        .status_interval(None)
        .build()
        .unwrap();
    pipeline.emit(numbered(100));
    pipeline.shutdown().unwrap();
    let all = read_file(&path);
    assert_eq!(all.len(), 101);
    assert_eq!(all[100], numbered(100));
}

#[test]
fn new_files_have_mode_0640_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    for (umask, name) in [
        (0o022, "a.msgpack"),
        (0o077, "b.msgpack"),
        (0o002, "c.msgpack"),
    ] {
        // SAFETY: umask only sets the process's file mode mask; the other
        // tests of this binary create files whose mode does not depend on it.
        let previous = unsafe { libc::umask(umask) };
        let path = dir.path().join(name);
        let sink = FileSink::create(&path);
        // SAFETY: as above.
        unsafe { libc::umask(previous) };
        drop(sink.unwrap());
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "umask {umask:o}: mode {mode:o}");
    }
}

#[test]
fn rotation_by_size_keeps_k_files_and_never_splits_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rot.msgpack");
    let one = numbered(10).to_msgpack().len() as u64;
    let max = one * 10 + one / 2; // room for 10 records, not 11
    let sink = FileSink::builder(&path)
        .max_bytes(max)
        .keep(2)
        .build()
        .unwrap();
    let pipeline = Pipeline::builder()
        .sink(sink)
        .batch_size(7) // batches straddle file boundaries
        .status_interval(None)
        .build()
        .unwrap();
    // Records 10..=44 all encode to the same length.
    let sent: Vec<Record> = (10..45).map(numbered).collect();
    assert!(sent.iter().all(|r| r.to_msgpack().len() as u64 == one));
    for r in &sent {
        pipeline.emit(r.clone());
    }
    pipeline.shutdown().unwrap();

    let rotated = |n: usize| dir.path().join(format!("rot.msgpack.{n}"));
    // 35 records, 10 per file: 10 (dropped by keep=2) | 10 in .2 | 10 in .1 | 5 current.
    assert!(!rotated(3).exists());
    let older = read_file(&rotated(2));
    let newer = read_file(&rotated(1));
    let current = read_file(&path);
    assert_eq!(older, sent[10..20]);
    assert_eq!(newer, sent[20..30]);
    assert_eq!(current, sent[30..35]);
    for p in [rotated(2), rotated(1), path.clone()] {
        let len = fs::metadata(&p).unwrap().len();
        assert!(len <= max, "{} is {len} bytes > {max}", p.display());
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }
}

#[test]
fn write_errors_are_counted_and_reported_in_status() {
    // /dev/full fails every write with ENOSPC, like a full disk.
    let full = FileSink::create("/dev/full").unwrap();
    let mem = MemorySink::new();
    let pipeline = Pipeline::builder()
        .sink(full)
        .sink(mem.clone())
        .build()
        .unwrap();
    for i in 0..10 {
        assert!(pipeline.emit(numbered(i)));
    }
    let err = pipeline.flush().unwrap_err();
    assert!(err.to_string().contains("file:/dev/full"), "{err}");
    let stats = pipeline.shutdown().unwrap();
    let file_stats = &stats.sinks[0];
    assert_eq!(file_stats.name, "file:/dev/full");
    assert_eq!(file_stats.written, 0);
    // The 10 records and the status records written at start and at
    // shutdown: the status record at shutdown is the last record seen.
    assert_eq!(file_stats.dropped_sink_error, 10 + stats.status_records);
    assert!(file_stats.errors >= 1);
    let last_error = file_stats.last_error.as_deref().unwrap();
    assert!(last_error.contains("No space left"), "{last_error}");
    // The memory sink got everything, including the status records that
    // describe the file sink's failure.
    assert_eq!(stats.sinks[1].written, 10 + stats.status_records);
    let status = mem.records_of(RecordKind::Status);
    let last = status.last().unwrap().detail.as_ref().unwrap();
    assert_eq!(
        last.sinks["file:/dev/full"]["records_dropped_sink_error"],
        10 + 1 // the 10 records and the start status record
    );
    assert!(last.errors["file:/dev/full"].contains("No space left"));
}

#[test]
fn opening_a_file_in_a_missing_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = FileSink::create(dir.path().join("no/such/dir/x.msgpack")).unwrap_err();
    assert!(matches!(err, dynostats::Error::Io { .. }));
    assert!(err.to_string().contains("no/such/dir"), "{err}");
}

#[test]
fn an_incomplete_last_record_is_cut_before_appending() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crashed.msgpack");
    let sent: Vec<Record> = (0..3).map(numbered).collect();
    let mut bytes: Vec<u8> = sent.iter().flat_map(|r| r.to_msgpack()).collect();
    let whole = bytes.len() as u64;
    // A crash in the middle of the fourth record.
    let partial = numbered(3).to_msgpack();
    bytes.extend_from_slice(&partial[..partial.len() / 2]);
    fs::write(&path, &bytes).unwrap();

    let pipeline = Pipeline::builder()
        .sink(FileSink::create(&path).unwrap())
        .status_interval(None)
        .build()
        .unwrap();
    pipeline.emit(numbered(4));
    let err = pipeline.flush().unwrap_err().to_string();
    assert!(
        err.contains(&format!("incomplete record at byte offset {whole}")),
        "{err}"
    );
    let stats = pipeline.shutdown().unwrap();
    assert_eq!(stats.sinks[0].written, 1);
    assert_eq!(stats.sinks[0].errors, 1);
    // Every record is readable: the three before the crash, then the new one.
    let mut expected = sent;
    expected.push(numbered(4));
    assert_eq!(read_file(&path), expected);
}

#[test]
fn a_file_that_is_not_a_record_file_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    fs::write(&path, "not MessagePack\n").unwrap();
    match FileSink::create(&path) {
        Err(dynostats::Error::Decode { offset, message }) => {
            assert_eq!(offset, 0);
            assert!(message.contains("move it away"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fs::read_to_string(&path).unwrap(), "not MessagePack\n");
}
