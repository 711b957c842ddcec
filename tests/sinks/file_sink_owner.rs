//! FileSink run as root where other users can write: it refuses an existing
//! file another user owns (unless told to accept it) and leaves it exactly
//! as it was, and it follows no symbolic link on the path, a linked parent
//! directory included (`openat2` with `RESOLVE_NO_SYMLINKS`; Linux 5.6 or
//! later, which these tests need).
//!
//! The ownership tests need root to give a file to another user (uid
//! 65534, `nobody`); run by another user they say so on stderr and check
//! nothing.

use std::fs;
use std::os::unix::fs::{MetadataExt, chown, symlink};
use std::path::Path;

use dynostats::sink::{Batch, FileSink, Sink};
use dynostats::{Error, Record, RecordKind};

const OTHER_UID: u32 = 65534;

fn record(i: u64) -> Record {
    let mut r = Record::new(RecordKind::Region, "r");
    r.wall_ns = i;
    r
}

/// Writes `bytes` to `path` and gives the file to [`OTHER_UID`]; false
/// when this process may not (not root).
fn foreign_file(path: &Path, bytes: &[u8]) -> bool {
    fs::write(path, bytes).unwrap();
    match chown(path, Some(OTHER_UID), Some(OTHER_UID)) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            eprintln!("not root: cannot give a file to uid {OTHER_UID}; nothing checked");
            false
        }
        Err(e) => panic!("chown: {e}"),
    }
}

#[test]
fn another_users_file_is_refused_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.msgpack");
    // A complete record, then the first 6 bytes of another: a tail the
    // sink would cut from a file of its own.
    let mut bytes = record(1).to_msgpack();
    bytes.extend_from_slice(&record(2).to_msgpack()[..6]);
    if !foreign_file(&path, &bytes) {
        return;
    }
    let err = FileSink::create(&path).unwrap_err();
    let message = err.to_string();
    assert!(matches!(&err, Error::Io { .. }), "{err:?}");
    for part in [
        path.display().to_string(),
        format!("uid {OTHER_UID}"),
        "allow_foreign_owner".to_string(),
    ] {
        assert!(message.contains(&part), "{part:?} not in {message}");
    }
    let meta = fs::metadata(&path).unwrap();
    assert_eq!(meta.len(), bytes.len() as u64);
    assert_eq!(meta.uid(), OTHER_UID);
    assert_eq!(fs::read(&path).unwrap(), bytes);
}

#[test]
fn the_opt_out_appends_to_another_users_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.msgpack");
    if !foreign_file(&path, &record(1).to_msgpack()) {
        return;
    }
    let mut sink = FileSink::builder(&path)
        .allow_foreign_owner(true)
        .build()
        .unwrap();
    let mut batch = Batch::new();
    batch.push(&record(2));
    sink.write_batch(&batch).unwrap();
    sink.flush().unwrap();
    drop(sink);
    let read: Vec<u64> = dynostats::read(fs::File::open(&path).unwrap())
        .map(|r| r.unwrap().wall_ns)
        .collect();
    assert_eq!(read, [1, 2]);
    // The file keeps its owner.
    assert_eq!(fs::metadata(&path).unwrap().uid(), OTHER_UID);
}

#[test]
fn a_symlinked_parent_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    fs::create_dir(&real).unwrap();
    let linked = dir.path().join("linked");
    symlink(&real, &linked).unwrap();

    // A new file behind the link: refused, nothing created.
    let err = FileSink::create(linked.join("new.msgpack")).unwrap_err();
    assert!(
        matches!(&err, Error::Io { .. }) && err.to_string().contains("symbolic link"),
        "{err}"
    );
    assert!(!real.join("new.msgpack").exists());

    // An existing record file behind the link, ending in a partial record:
    // refused, neither written to nor cut.
    let mut bytes = record(1).to_msgpack();
    bytes.extend_from_slice(&record(2).to_msgpack()[..6]);
    fs::write(real.join("old.msgpack"), &bytes).unwrap();
    let err = FileSink::create(linked.join("old.msgpack")).unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert_eq!(fs::read(real.join("old.msgpack")).unwrap(), bytes);

    // The same directory named without the link is accepted.
    let mut sink = FileSink::create(real.join("new.msgpack")).unwrap();
    let mut batch = Batch::new();
    batch.push(&record(3));
    sink.write_batch(&batch).unwrap();
    sink.flush().unwrap();
}
