//! FileSink in a directory someone else can write to: it never follows a
//! symbolic link planted at its path, never writes to anything but a
//! regular file, and never cuts bytes from a file it did not validate as a
//! record file.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, symlink};
use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use dynostats::{Error, Record, RecordKind, sink::FileSink};

fn record(i: u64) -> Record {
    let mut r = Record::new(RecordKind::Region, "r");
    r.wall_ns = i;
    r
}

#[test]
fn a_symlink_at_the_path_is_refused_and_its_target_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("victim");
    // Ends like a partial record (a fixmap header with its "v" key), so a
    // tail repair that followed the link would cut it.
    let mut victim = b"precious data ".to_vec();
    victim.extend_from_slice(&record(1).to_msgpack()[..5]);
    fs::write(&target, &victim).unwrap();
    let path = dir.path().join("records.msgpack");
    symlink(&target, &path).unwrap();
    let err = FileSink::create(&path).unwrap_err();
    assert!(
        matches!(&err, Error::Io { .. }) && err.to_string().contains("symbolic link"),
        "{err}"
    );
    assert_eq!(fs::read(&target).unwrap(), victim);
    // A dangling link is refused too, and nothing is created behind it.
    let path = dir.path().join("dangling.msgpack");
    symlink(dir.path().join("nowhere"), &path).unwrap();
    assert!(FileSink::create(&path).is_err());
    assert!(!dir.path().join("nowhere").exists());
}

#[test]
fn a_foreign_file_whose_end_looks_like_a_partial_record_is_not_cut() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.msgpack");
    // 13 bytes that MessagePack frames as fixints then an incomplete
    // object: not a record file, must be left alone.
    let foreign = b"0123456789\x92\x01\xc4".to_vec();
    fs::write(&path, &foreign).unwrap();
    assert!(matches!(FileSink::create(&path), Err(Error::Decode { .. })));
    assert_eq!(fs::read(&path).unwrap(), foreign);
    // Records, then foreign bytes that end like a partial record: refused
    // as well, nothing cut.
    let mut mixed: Vec<u8> = (0..3).flat_map(|i| record(i).to_msgpack()).collect();
    mixed.extend_from_slice(b"\x85not a record\xde");
    fs::write(&path, &mixed).unwrap();
    assert!(matches!(FileSink::create(&path), Err(Error::Decode { .. })));
    assert_eq!(fs::read(&path).unwrap(), mixed);
}

/// Runs `f` on a thread of its own and returns what it returns, or `None`
/// when it has not returned within `limit` (the thread is left behind, so
/// that a test of "never blocks" fails instead of hanging).
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

/// Opens `path` for reading without waiting for a writer.
fn open_reader(path: &Path) -> fs::File {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .unwrap()
}

#[test]
fn a_fifo_is_refused_at_once_with_or_without_a_reader() {
    // A FIFO at the sink's path, as someone who can write to the directory
    // may plant: opening its write end waits for a reader unless the
    // open does not block (O_NONBLOCK, or read-write). The sink must
    // return at once, refuse it and write nothing into it.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.msgpack");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string and mode.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let limit = Duration::from_secs(5);
    let unblock = |path: &Path| {
        // Lets an open that waits for a reader return, so that the thread
        // left behind does not hang the test binary.
        drop(open_reader(path));
    };

    // No reader: a blocking write-only open would wait for ever.
    let path = fifo.clone();
    let started = Instant::now();
    let Some(result) = within(limit, move || FileSink::create(&path).map(drop)) else {
        unblock(&fifo);
        panic!("FileSink::create on a FIFO without a reader did not return within {limit:?}");
    };
    let err = result.unwrap_err();
    assert!(
        matches!(&err, Error::Io { .. }) && err.to_string().contains("not a regular file"),
        "{err}"
    );
    assert!(started.elapsed() < limit);

    // A reader holding the FIFO open: a write-only open would succeed at
    // once; the sink must still refuse it and write nothing.
    let mut reader = open_reader(&fifo);
    let path = fifo.clone();
    let Some(result) = within(limit, move || {
        FileSink::builder(&path)
            .max_bytes(u64::MAX)
            .build()
            .map(drop)
    }) else {
        panic!("FileSink::builder(..).build() on a FIFO with a reader did not return");
    };
    let err = result.unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
    let mut got = Vec::new();
    match reader.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}"),
    }
    assert!(
        got.is_empty(),
        "the sink wrote {} bytes into the FIFO",
        got.len()
    );
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
}

#[test]
fn a_hard_link_is_refused_and_left_whole() {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original");
    let bytes: Vec<u8> = (0..2).flat_map(|i| record(i).to_msgpack()).collect();
    fs::write(&original, &bytes).unwrap();
    let linked = dir.path().join("linked.msgpack");
    fs::hard_link(&original, &linked).unwrap();
    let err = FileSink::create(&linked).unwrap_err();
    assert!(err.to_string().contains("hard links"), "{err}");
    assert_eq!(fs::read(&original).unwrap(), bytes);
}

#[test]
fn only_the_tail_of_a_large_file_is_checked() {
    // Damage in the middle of a large file no longer stops the sink from
    // opening it: only its ends are read (the reader reports the damage).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.msgpack");
    let one = record(7).to_msgpack();
    let n = (4 * FileSink::TAIL_CHECK_BYTES as usize) / one.len();
    let mut bytes: Vec<u8> = one.repeat(n);
    let middle = (n / 2) * one.len();
    bytes[middle] = 0xc1; // never used in MessagePack
    let partial = &record(8).to_msgpack()[..6];
    bytes.extend_from_slice(partial);
    fs::write(&path, &bytes).unwrap();
    let sink = FileSink::create(&path).unwrap();
    drop(sink);
    // The incomplete last record was cut, nothing else.
    assert_eq!(fs::read(&path).unwrap().len(), bytes.len() - partial.len());
}
