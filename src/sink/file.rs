//! A sink that appends records to a file, with rotation by size.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{Batch, Sink};
use crate::error::{ConfigError, ConfigErrorKind, Error};
use crate::record::{RecordReader, read};
use crate::sys;

/// Appends records to a file as a plain concatenation of MessagePack maps,
/// readable by [`crate::read()`] or any MessagePack stream decoder.
///
/// The file is rotated before it would grow past
/// [`FileSinkBuilder::max_bytes`] ([`FileSink::DEFAULT_MAX_BYTES`], 256 MiB,
/// by default): `path` becomes `path.1`, `path.1` becomes `path.2` and so
/// on, keeping [`FileSinkBuilder::keep`] old files ([`FileSink::DEFAULT_KEEP`]),
/// so by default the sink's files take at most 6 × 256 MiB = 1.5 GiB. Records are
/// never split across files. New files get mode 0640 ([`FileSink::MODE`]).
///
/// A write error (disk full, permissions) is returned to the pipeline,
/// which counts the batch's records as dropped and reports the error in
/// its stats and status records. A failed write is cut back to the last
/// complete record, so that the file stays readable; so is an incomplete
/// record found at the end of an existing file when the sink opens it (see
/// [`FileSinkBuilder::build`]).
///
/// ```
/// use dynostats::{sink::FileSink, Pipeline, Record, RecordKind};
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("records.msgpack");
/// let sink = FileSink::builder(&path).max_bytes(1 << 20).keep(3).build().unwrap();
/// let pipeline = Pipeline::builder().sink(sink).status_interval(None).build().unwrap();
/// pipeline.emit(Record::new(RecordKind::Region, "load"));
/// pipeline.shutdown().unwrap();
///
/// let records: Vec<_> = dynostats::read(std::fs::File::open(&path).unwrap())
///     .collect::<Result<_, _>>()
///     .unwrap();
/// assert_eq!(records[0].name, "load");
/// ```
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    file: Option<File>,
    /// Bytes in the current file.
    len: u64,
    /// The current file is a regular file this sink created or validated:
    /// the only kind it ever cuts back.
    regular: bool,
    max_bytes: Option<u64>,
    keep: usize,
    sync_on_flush: bool,
    /// Appends to an existing file owned by another user too.
    allow_foreign_owner: bool,
    /// Reported by the next `flush`: a rotation failure (the records went
    /// to the current file instead, so none were lost), or the incomplete
    /// record cut off at opening.
    deferred: Option<io::Error>,
}

/// Settings of a [`FileSink`].
#[derive(Clone, Debug)]
#[must_use]
pub struct FileSinkBuilder {
    path: PathBuf,
    max_bytes: Option<u64>,
    keep: usize,
    sync_on_flush: bool,
    allow_foreign_owner: bool,
}

impl FileSinkBuilder {
    /// Rotates the file before it would grow past `bytes` (a record larger
    /// than that gets a file of its own); default
    /// [`FileSink::DEFAULT_MAX_BYTES`]. `u64::MAX` lets the file grow
    /// without bound.
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = Some(bytes);
        self
    }

    /// How many rotated files to keep ([`FileSink::DEFAULT_KEEP`]); 0 keeps none.
    pub fn keep(mut self, files: usize) -> Self {
        self.keep = files;
        self
    }

    /// Calls `fsync` on every flush (and before rotating), so records
    /// survive a machine crash, not just a process crash. Off by default.
    pub fn sync_on_flush(mut self, sync: bool) -> Self {
        self.sync_on_flush = sync;
        self
    }

    /// Appends to an existing file owned by another user too (off by
    /// default: see [`FileSinkBuilder::build`]). The file keeps its owner,
    /// who can read every record written to it and add records of their
    /// own that readers will take for this process's. Turn it on only when
    /// that user is trusted, e.g. a log directory prepared by a deploy
    /// tool running as another user.
    pub fn allow_foreign_owner(mut self, allow: bool) -> Self {
        self.allow_foreign_owner = allow;
        self
    }

    /// Opens (or creates) the file.
    ///
    /// No component of the path may be a symbolic link: the file is
    /// opened with `openat2(2)` and `RESOLVE_NO_SYMLINKS`, so a link
    /// planted in a shared directory, at the path or at any directory on
    /// it, is refused. Where the kernel has no `openat2` (before Linux 5.6,
    /// or a seccomp filter refuses it) only a link as the last component
    /// is refused (`O_NOFOLLOW`). Resolve links yourself first
    /// ([`std::fs::canonicalize`]) to log through a trusted link such as
    /// `/var/run`.
    ///
    /// The path must name a regular file with one link, or a character
    /// device such as `/dev/null` (written to, never checked or cut):
    /// anything else (a FIFO, a socket) is refused with [`Error::Io`], and
    /// nothing is written to it.
    ///
    /// An existing regular file must be owned by the process's effective
    /// user: another user's file (pre-created where this process, perhaps
    /// root, will write) is refused with [`Error::Io`] naming the path, its
    /// owner's uid and the opt-out, [`FileSinkBuilder::allow_foreign_owner`];
    /// a refused file is neither written to nor cut.
    ///
    /// An existing file is checked at both ends, never read whole: it must
    /// begin with a record, and its last bytes (up to
    /// [`FileSink::TAIL_CHECK_BYTES`], more when a record is longer) must
    /// end with a complete record, so that new records are not appended
    /// where no reader can find them. An incomplete last record (left by a
    /// crash mid-write) is cut off, and reported by the sink's first flush;
    /// only bytes that begin like a record are ever cut. A file that does
    /// not look like a record file at either end is left alone and the
    /// call fails with [`Error::Decode`] naming the offset.
    pub fn build(self) -> Result<FileSink, Error> {
        if self.max_bytes == Some(0) {
            let setting = "FileSinkBuilder::max_bytes";
            return Err(ConfigError::new(setting, ConfigErrorKind::Zero).into());
        }
        let opened = open_append(&self.path, self.allow_foreign_owner)?;
        Ok(FileSink {
            path: self.path,
            file: Some(opened.file),
            len: opened.len,
            regular: opened.regular,
            max_bytes: self.max_bytes,
            keep: self.keep,
            sync_on_flush: self.sync_on_flush,
            allow_foreign_owner: self.allow_foreign_owner,
            deferred: opened.repaired,
        })
    }
}

/// A file opened for appending by [`open_append`].
struct Opened {
    file: File,
    len: u64,
    /// What was cut from an existing file's end, to report.
    repaired: Option<io::Error>,
    /// A regular file (else a character device, never cut).
    regular: bool,
}

/// Opens `path` for appending, creating it with mode [`FileSink::MODE`]
/// (whatever the umask) if it does not exist, refusing links, anything but
/// a regular file and (unless `allow_foreign_owner`) another user's file,
/// and checking an existing file's ends (see [`FileSinkBuilder::build`]).
fn open_append(path: &Path, allow_foreign_owner: bool) -> Result<Opened, Error> {
    let opening = |source| Error::Io {
        context: format!("opening {}", path.display()),
        source,
    };
    let links = |e: io::Error| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            opening(io::Error::new(
                e.kind(),
                "it, or a directory on its path, is a symbolic link; \
                 FileSink does not follow links",
            ))
        } else {
            opening(e)
        }
    };
    let (file, created) = match open_no_links(path, true) {
        Ok(file) => (file, true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            (open_no_links(path, false).map_err(links)?, false)
        }
        Err(e) => return Err(links(e)),
    };
    let meta = file.metadata().map_err(opening)?;
    if meta.file_type().is_char_device() {
        // `/dev/null`, `/dev/full`: written to, never checked or cut.
        return Ok(Opened {
            file,
            len: 0,
            repaired: None,
            regular: false,
        });
    }
    if !meta.file_type().is_file() {
        return Err(opening(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file; FileSink only appends to regular files",
        )));
    }
    if created {
        file.set_permissions(Permissions::from_mode(FileSink::MODE))
            .map_err(opening)?;
        return Ok(Opened {
            file,
            len: 0,
            repaired: None,
            regular: true,
        });
    }
    let me = sys::effective_uid();
    if meta.uid() != me && !allow_foreign_owner {
        // Checked before anything is read or cut.
        return Err(opening(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "it is owned by uid {}, not by this process's effective uid {me}; \
                 FileSink does not append to another user's file (that user could \
                 read every record and add records of their own): remove it, or \
                 accept it with FileSinkBuilder::allow_foreign_owner(true)",
                meta.uid()
            ),
        )));
    }
    if meta.nlink() != 1 {
        return Err(opening(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "it has {} hard links; FileSink only appends to a file with one",
                meta.nlink()
            ),
        )));
    }
    let len = meta.len();
    let repaired = if len == 0 {
        None
    } else {
        check_ends(&file, len, path)?
    };
    let len = file.metadata().map_err(opening)?.len();
    Ok(Opened {
        file,
        len,
        repaired,
        regular: true,
    })
}

/// Opens `path` for appending (`create`: a new file, `O_EXCL`; else an
/// existing one, also for reading) without following symbolic links: in no
/// component where the kernel has `openat2`, else in the last one only.
/// `O_NONBLOCK`: opening a FIFO does not wait for a reader (it has no
/// effect on regular files).
fn open_no_links(path: &Path, create: bool) -> io::Result<File> {
    let flags = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_APPEND;
    let access = if create {
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL
    } else {
        libc::O_RDWR
    };
    if let Some(opened) = sys::open_no_symlinks(path, flags | access, FileSink::MODE) {
        return opened;
    }
    // O_NOFOLLOW: a symbolic link as the last component fails (ELOOP).
    // With O_EXCL a link is never followed.
    let flags = libc::O_NOFOLLOW | libc::O_NONBLOCK;
    if create {
        OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(FileSink::MODE)
            .custom_flags(flags)
            .open(path)
    } else {
        OpenOptions::new()
            .read(true)
            .append(true)
            .custom_flags(flags)
            .open(path)
    }
}

/// Whether `bytes` begin the way every record this crate writes begins: a
/// map header, then the key `"v"`. A prefix of that counts (a crash can
/// leave one).
fn starts_like_record(bytes: &[u8]) -> bool {
    let key_at = match bytes.first() {
        Some(0x80..=0x8f) => 1,
        Some(0xde) => 3,
        Some(_) => return false,
        None => return true,
    };
    let want = [0xa1, b'v'];
    let have = bytes.get(key_at..).unwrap_or(&[]);
    have.iter().zip(want).all(|(a, b)| *a == b)
}

/// Checks an existing file's first record and its last bytes; cuts an
/// incomplete last record that begins like a record. Returns the cut to
/// report.
fn check_ends(file: &File, len: u64, path: &Path) -> Result<Option<io::Error>, Error> {
    let reading = |source| Error::Io {
        context: format!("checking the end of {}", path.display()),
        source,
    };
    let not_records = |offset: u64, why: &str| Error::Decode {
        offset,
        message: format!(
            "{} is not a record file or is damaged ({why}); \
             FileSink does not append to it: move it away",
            path.display()
        ),
    };
    let mut head = [0u8; 8];
    let n = file.read_at(&mut head, 0).map_err(reading)?;
    if !starts_like_record(&head[..n]) || (n as u64) < len.min(4) {
        return Err(not_records(0, "it does not begin with a record"));
    }
    // Read more of the tail until it holds the start of a record from which
    // everything frames to the end (a record longer than the window needs
    // a larger one), up to the largest record a reader accepts.
    let max = RecordReader::<&[u8]>::DEFAULT_MAX_RECORD_LEN as u64 * 2;
    let mut window = FileSink::TAIL_CHECK_BYTES.min(len);
    loop {
        let base = len - window;
        let mut tail = vec![0u8; window as usize];
        file.read_exact_at(&mut tail, base).map_err(reading)?;
        if let Some(outcome) = check_tail(&tail, base) {
            let Some(cut) = outcome else {
                return Ok(None);
            };
            file.set_len(cut).map_err(|source| Error::Io {
                context: format!(
                    "cutting the incomplete record at byte offset {cut} of {}",
                    path.display()
                ),
                source,
            })?;
            return Ok(Some(io::Error::other(format!(
                "cut {} bytes of an incomplete record at byte offset {cut} of {} \
                 (left by an earlier crash) before appending",
                len - cut,
                path.display()
            ))));
        }
        if window == len || window >= max {
            return Err(not_records(
                base,
                "no complete record ends where the file ends",
            ));
        }
        window = (window * 4).min(len).min(max);
    }
}

/// Looks in `tail` (the file's bytes from offset `base` to its end) for the
/// first place where a record begins and everything after it decodes as
/// records: `Some(None)` when they end exactly at the end of the file,
/// `Some(Some(offset))` when the last one is incomplete and begins like a
/// record (cut there), `None` when no such place was found.
fn check_tail(tail: &[u8], base: u64) -> Option<Option<u64>> {
    for start in 0..tail.len() {
        let rest = &tail[start..];
        if !starts_like_record(rest) || (base > 0 && rest.len() < 3) {
            continue;
        }
        let mut cut = None;
        let mut decoded = 0;
        let mut ok = true;
        for record in read(rest) {
            match record {
                Ok(_) => decoded += 1,
                Err(Error::Truncated { offset })
                    if starts_like_record(&rest[offset as usize..]) =>
                {
                    cut = Some(base + start as u64 + offset);
                }
                Err(_) => ok = false,
            }
        }
        // A whole file with a single incomplete record is cut only from
        // its start (it began like a record, checked by the caller).
        if ok && (decoded > 0 || (base == 0 && start == 0)) {
            return Some(cut);
        }
    }
    None
}

impl FileSink {
    /// Mode of the files the sink creates: owner read/write, group read.
    pub const MODE: u32 = 0o640;
    /// Rotated files kept by default.
    pub const DEFAULT_KEEP: usize = 5;
    /// The size a file is rotated at unless [`FileSinkBuilder::max_bytes`]
    /// says otherwise: 256 MiB.
    pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;
    /// How much of an existing file's end is read when the sink opens it
    /// (more when its last record is longer).
    pub const TAIL_CHECK_BYTES: u64 = 64 << 10;

    /// A sink appending to `path` (created if missing), rotated at
    /// [`FileSink::DEFAULT_MAX_BYTES`] keeping [`FileSink::DEFAULT_KEEP`]
    /// old files.
    pub fn create(path: impl AsRef<Path>) -> Result<FileSink, Error> {
        FileSink::builder(path).build()
    }

    /// Settings for a sink appending to `path`.
    pub fn builder(path: impl AsRef<Path>) -> FileSinkBuilder {
        FileSinkBuilder {
            path: path.as_ref().to_path_buf(),
            max_bytes: Some(FileSink::DEFAULT_MAX_BYTES),
            keep: FileSink::DEFAULT_KEEP,
            sync_on_flush: false,
            allow_foreign_owner: false,
        }
    }

    /// The path of the current file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path.n`: the n-th most recent rotated file.
    fn rotated(&self, n: usize) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    /// Appends `bytes`; on failure cuts the file back to its previous
    /// length so no partial record stays behind.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        if self.file.is_none() {
            let opened =
                open_append(&self.path, self.allow_foreign_owner).map_err(io::Error::other)?;
            self.file = Some(opened.file);
            self.len = opened.len;
            self.regular = opened.regular;
            if let Some(cut) = opened.repaired {
                self.deferred.get_or_insert(cut);
            }
        }
        let Some(file) = self.file.as_mut() else {
            return Err(io::Error::other("file not open"));
        };
        match file.write_all(bytes) {
            Ok(()) => {
                self.len += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Best effort: a file we cannot shorten will show a
                // truncated record to readers, who report its offset.
                if self.regular {
                    let _ = file.set_len(self.len);
                }
                Err(e)
            }
        }
    }

    /// Moves `path` to `path.1` (shifting older files) and starts a new
    /// file.
    fn rotate(&mut self) -> io::Result<()> {
        if let Some(file) = self.file.take() {
            if self.sync_on_flush {
                file.sync_data()?;
            }
        }
        if self.keep == 0 {
            remove_if_exists(&self.path)?;
        } else {
            remove_if_exists(&self.rotated(self.keep))?;
            for n in (1..self.keep).rev() {
                rename_if_exists(&self.rotated(n), &self.rotated(n + 1))?;
            }
            rename_if_exists(&self.path, &self.rotated(1))?;
        }
        let opened = open_append(&self.path, self.allow_foreign_owner).map_err(io::Error::other)?;
        self.file = Some(opened.file);
        self.len = opened.len;
        self.regular = opened.regular;
        if let Some(cut) = opened.repaired {
            self.deferred.get_or_insert(cut);
        }
        Ok(())
    }
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn rename_if_exists(from: &Path, to: &Path) -> io::Result<()> {
    match fs::rename(from, to) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl Sink for FileSink {
    fn name(&self) -> String {
        format!("file:{}", self.path.display())
    }

    fn write_batch(&mut self, batch: &Batch) -> io::Result<()> {
        let bytes = batch.bytes();
        let Some(max) = self.max_bytes else {
            return self.append(bytes);
        };
        // Write runs of whole records, rotating between records.
        let mut run_start = 0;
        let mut pos = 0;
        for record in batch.iter() {
            let n = record.bytes.len();
            let run = (pos - run_start) as u64;
            if self.len + run > 0 && self.len + run + n as u64 > max {
                self.append(&bytes[run_start..pos])?;
                run_start = pos;
                if let Err(e) = self.rotate() {
                    // Keep writing to the current file (reopened if the
                    // rotation closed it): nothing is lost; report later.
                    self.deferred.get_or_insert(e);
                }
            }
            pos += n;
        }
        self.append(&bytes[run_start..pos])
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some(e) = self.deferred.take() {
            return Err(e);
        }
        match (&self.file, self.sync_on_flush) {
            (Some(file), true) => file.sync_data(),
            _ => Ok(()),
        }
    }
}
