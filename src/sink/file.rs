//! A sink that appends records to a file, with rotation by size.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{Batch, Sink};
use crate::error::Error;

/// Appends records to a file as a plain concatenation of MessagePack maps,
/// readable by [`crate::read()`] or any MessagePack stream decoder.
///
/// With [`FileSinkBuilder::max_bytes`], the file is rotated before it would
/// grow past that size: `path` becomes `path.1`, `path.1` becomes `path.2`
/// and so on, keeping [`FileSinkBuilder::keep`] old files. Records are
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
    max_bytes: Option<u64>,
    keep: usize,
    sync_on_flush: bool,
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
}

impl FileSinkBuilder {
    /// Rotates the file before it would grow past `bytes` (a record larger
    /// than that gets a file of its own). Without it the file grows forever.
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

    /// Opens (or creates) the file.
    ///
    /// An existing file is read once to check that it ends with a complete
    /// record, so that new records are not appended where no reader can
    /// find them. An incomplete last record (left by a crash mid-write) is
    /// cut off, and reported by the sink's first flush. A file that is not a
    /// record file, or is damaged before its end, is left alone and the
    /// call fails with [`Error::Decode`] naming the offset.
    pub fn build(self) -> Result<FileSink, Error> {
        if self.max_bytes == Some(0) {
            return Err(Error::InvalidConfig(
                "FileSink max_bytes must be at least 1".to_string(),
            ));
        }
        let opening = |source| Error::Io {
            context: format!("opening {}", self.path.display()),
            source,
        };
        let (file, mut len) = open_append(&self.path).map_err(opening)?;
        let mut deferred = None;
        if len > 0 && file.metadata().map_err(opening)?.is_file() {
            let existing = File::open(&self.path).map_err(opening)?;
            match crate::record::check_framing(existing) {
                Ok(_) => {}
                Err(Error::Truncated { offset }) => {
                    file.set_len(offset).map_err(|source| Error::Io {
                        context: format!(
                            "cutting the incomplete record at byte offset {offset} of {}",
                            self.path.display()
                        ),
                        source,
                    })?;
                    deferred = Some(io::Error::other(format!(
                        "cut {} bytes of an incomplete record at byte offset {offset} of {} \
                         (left by an earlier crash) before appending",
                        len - offset,
                        self.path.display()
                    )));
                    len = offset;
                }
                Err(Error::Decode { offset, message }) => {
                    return Err(Error::Decode {
                        offset,
                        message: format!(
                            "{} is not a record file or is damaged ({message}); \
                             FileSink does not append to it: move it away",
                            self.path.display()
                        ),
                    });
                }
                Err(e) => return Err(e),
            }
        }
        Ok(FileSink {
            path: self.path,
            file: Some(file),
            len,
            max_bytes: self.max_bytes,
            keep: self.keep,
            sync_on_flush: self.sync_on_flush,
            deferred,
        })
    }
}

/// Opens `path` for appending, creating it with mode [`FileSink::MODE`]
/// (whatever the umask) if it does not exist. Returns the file and its
/// length.
fn open_append(path: &Path) -> io::Result<(File, u64)> {
    let created = OpenOptions::new()
        .append(true)
        .create_new(true)
        .mode(FileSink::MODE)
        .open(path);
    let file = match created {
        Ok(file) => {
            file.set_permissions(Permissions::from_mode(FileSink::MODE))?;
            file
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            OpenOptions::new().append(true).open(path)?
        }
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    Ok((file, len))
}

impl FileSink {
    /// Mode of the files the sink creates: owner read/write, group read.
    pub const MODE: u32 = 0o640;
    /// Rotated files kept by default.
    pub const DEFAULT_KEEP: usize = 5;

    /// A sink appending to `path` (created if missing), without rotation.
    pub fn create(path: impl AsRef<Path>) -> Result<FileSink, Error> {
        FileSink::builder(path).build()
    }

    /// Settings for a sink appending to `path`.
    pub fn builder(path: impl AsRef<Path>) -> FileSinkBuilder {
        FileSinkBuilder {
            path: path.as_ref().to_path_buf(),
            max_bytes: None,
            keep: FileSink::DEFAULT_KEEP,
            sync_on_flush: false,
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
            let (file, len) = open_append(&self.path)?;
            self.file = Some(file);
            self.len = len;
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
                let _ = file.set_len(self.len);
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
        let (file, len) = open_append(&self.path)?;
        self.file = Some(file);
        self.len = len;
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
