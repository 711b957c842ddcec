//! A sink that keeps records in memory, for tests and for embedding.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Batch, Sink};
use crate::error::Error;
use crate::record::{Record, RecordKind};

/// Keeps every record written to it in memory, as encoded MessagePack.
///
/// `MemorySink` is a cheap cloneable handle: give one clone to a pipeline
/// and keep another to read back what the pipeline wrote. Reading decodes
/// the stored bytes, so a test that reads records back also checks their
/// encoding.
///
/// Status records written by the pipeline are stored too; use
/// [`MemorySink::records_of`] to pick one kind.
///
/// ```
/// use dynostats::{sink::MemorySink, Pipeline, Record, RecordKind};
///
/// let mem = MemorySink::new();
/// let pipeline = Pipeline::builder().sink(mem.clone()).build().unwrap();
/// assert!(pipeline.emit(Record::new(RecordKind::Region, "parse")));
/// pipeline.flush().unwrap();
/// let regions = mem.records_of(RecordKind::Region);
/// assert_eq!(regions.len(), 1);
/// assert_eq!(regions[0].name, "parse");
/// ```
#[derive(Clone, Debug, Default)]
pub struct MemorySink {
    inner: Arc<Mutex<Stored>>,
}

#[derive(Debug, Default)]
struct Stored {
    bytes: Vec<u8>,
    count: usize,
}

impl MemorySink {
    /// An empty memory sink.
    pub fn new() -> MemorySink {
        MemorySink::default()
    }

    fn lock(&self) -> MutexGuard<'_, Stored> {
        // A panic while holding the lock cannot leave `Stored` half-updated
        // in a way that matters (bytes and count are updated together
        // after the append), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of records written so far.
    pub fn len(&self) -> usize {
        self.lock().count
    }

    /// Whether no record has been written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Everything written so far: the records back to back, exactly as a
    /// [`FileSink`](super::FileSink) would have written them.
    pub fn bytes(&self) -> Vec<u8> {
        self.lock().bytes.clone()
    }

    /// Decodes every record written so far.
    ///
    /// Fails only if a record does not decode, which would be a bug in the
    /// encoder (the error names the byte offset).
    pub fn try_records(&self) -> Result<Vec<Record>, Error> {
        let bytes = self.bytes();
        crate::record::read(&bytes[..]).collect()
    }

    /// Every record written so far, in order.
    ///
    /// # Panics
    ///
    /// If a stored record does not decode (see [`MemorySink::try_records`]);
    /// meant for tests, where that is a failure to report.
    pub fn records(&self) -> Vec<Record> {
        match self.try_records() {
            Ok(records) => records,
            Err(e) => panic!("MemorySink holds an undecodable record: {e}"),
        }
    }

    /// The records of one kind, in order (e.g. leave out status records).
    ///
    /// # Panics
    ///
    /// As [`MemorySink::records`].
    pub fn records_of(&self, kind: RecordKind) -> Vec<Record> {
        self.records()
            .into_iter()
            .filter(|r| r.kind == kind)
            .collect()
    }

    /// Forgets everything written so far.
    pub fn clear(&self) {
        let mut stored = self.lock();
        stored.bytes.clear();
        stored.count = 0;
    }
}

impl Sink for MemorySink {
    fn name(&self) -> String {
        "memory".to_string()
    }

    fn write_batch(&mut self, batch: &Batch) -> io::Result<()> {
        let mut stored = self.lock();
        stored.bytes.extend_from_slice(batch.bytes());
        stored.count += batch.len();
        Ok(())
    }
}
