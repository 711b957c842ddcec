//! Where records go: the [`Sink`] trait and the sinks shipped with the crate.
//!
//! The pipeline's background writer hands each sink a [`Batch`] of encoded
//! records. Each sink runs on a thread of its own, never on a measured
//! thread nor on the writer's, so `write_batch` and `flush` may block on
//! I/O; the getters (`dropped`, `buffered`, `resent`) must be cheap.
//!
//! | sink | where | delivery |
//! | --- | --- | --- |
//! | [`FileSink`] | a file of concatenated MessagePack records, rotated by size (256 MiB by default) | written when `write_batch` returns; a crash can cut the last record, which the next open repairs |
//! | [`UdpSink`] | datagrams of packed records | best effort: losses the kernel does not report are not seen |
//! | [`ForwardSink`] (feature `forward`) | a Fluentd Forward collector (Fluentd, Fluent Bit, Vector) | acknowledged chunks, resent after a reconnect with the same chunk id, at most `max_sends` times: at least once (Fluent Bit keeps repeats) |
//! | [`MemorySink`] | memory, for tests | kept until cleared |
//!
//! A sink of your own implements [`Sink`]:
//!
//! ```
//! use dynostats::sink::{Batch, Sink};
//!
//! /// Counts records instead of writing them.
//! struct Counting(u64);
//!
//! impl Sink for Counting {
//!     fn name(&self) -> String {
//!         "counting".to_string()
//!     }
//!     fn write_batch(&mut self, batch: &Batch) -> std::io::Result<()> {
//!         self.0 += batch.len() as u64;
//!         Ok(())
//!     }
//! }
//!
//! let pipeline = dynostats::Pipeline::builder().sink(Counting(0)).build().unwrap();
//! # drop(pipeline);
//! ```

mod file;
#[cfg(feature = "forward")]
mod forward;
mod memory;
mod udp;

use std::io;

use crate::record::Record;

pub use file::{FileSink, FileSinkBuilder};
#[cfg(feature = "forward")]
pub use forward::{ForwardSink, ForwardSinkBuilder, ForwardStats, TimeEncoding};
pub use memory::MemorySink;
pub use udp::{UdpSink, UdpSinkBuilder, UdpStats};

/// A batch of records, each already encoded as one MessagePack map.
///
/// The encoded records are stored back to back in one buffer, which is
/// exactly the file format (a plain concatenation of MessagePack objects).
#[derive(Clone, Debug, Default)]
pub struct Batch {
    bytes: Vec<u8>,
    /// End offset in `bytes` of each record.
    ends: Vec<usize>,
    /// `ts` of each record, Unix nanoseconds.
    times: Vec<u64>,
}

/// One encoded record of a [`Batch`].
#[derive(Clone, Copy, Debug)]
pub struct EncodedRecord<'a> {
    /// The record's `ts` field: Unix time in nanoseconds.
    pub ts: u64,
    /// The record as one MessagePack map.
    pub bytes: &'a [u8],
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Encodes `record` and appends it.
    pub fn push(&mut self, record: &Record) {
        record.write_msgpack(&mut self.bytes);
        self.ends.push(self.bytes.len());
        self.times.push(record.ts);
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// All records, back to back.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The records one by one.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = EncodedRecord<'_>> + '_ {
        self.ends.iter().enumerate().map(move |(i, &end)| {
            let start = if i == 0 { 0 } else { self.ends[i - 1] };
            EncodedRecord {
                ts: self.times[i],
                bytes: &self.bytes[start..end],
            }
        })
    }

    /// Empties the batch, keeping its allocation.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
        self.times.clear();
    }
}

/// A destination for records.
///
/// Implement it to ship records anywhere. The pipeline calls every method
/// from the sink's own thread only (one thread per sink), never from a
/// measured thread or the writer: `write_batch` and `flush` may block on
/// I/O, and only this sink's copies wait for them.
///
/// The getters [`dropped`](Sink::dropped), [`buffered`](Sink::buffered)
/// and [`resent`](Sink::resent) are called after each group of
/// `write_batch` calls (the batches the writer hands over together, those
/// it found queued in one round) and after every `flush`, and must be cheap: return a counter, do no I/O and wait on no
/// lock that I/O holds. The pipeline calls them before it takes the lock
/// it shares with the writer and `Pipeline::stats()`, so a slow getter
/// delays only its own sink, but it delays every batch of that sink.
pub trait Sink: Send + 'static {
    /// A short name for status records and errors, e.g. `"file:/var/log/app.msgpack"`.
    fn name(&self) -> String;

    /// Writes (or buffers) every record of `batch`. An error means the
    /// whole batch was not written: the pipeline counts its records as
    /// dropped for "sink error" and reports the error in its status.
    fn write_batch(&mut self, batch: &Batch) -> io::Result<()>;

    /// Makes everything written so far durable or delivered, as far as the
    /// sink can. Called by `flush` and at shutdown.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Records this sink accepted in `write_batch` and later dropped by
    /// itself (e.g. a network sink whose buffer overflowed while its
    /// collector was down). Reported in status records.
    fn dropped(&self) -> u64 {
        0
    }

    /// Records this sink accepted in `write_batch` and has not delivered
    /// yet (e.g. a network sink's buffer, or a chunk awaiting its ack).
    /// What it still holds when the pipeline shuts down is counted as lost
    /// ([`SinkStats::lost_at_shutdown`](crate::pipeline::SinkStats::lost_at_shutdown)).
    fn buffered(&self) -> u64 {
        0
    }

    /// Records this sink sent more than once (an unacknowledged Forward
    /// chunk sent again after a reconnect): a collector that keeps repeats
    /// may hold this many extra copies. Reported in status records
    /// (`records_resent`).
    fn resent(&self) -> u64 {
        0
    }
}

impl Sink for Box<dyn Sink> {
    fn name(&self) -> String {
        (**self).name()
    }
    fn write_batch(&mut self, batch: &Batch) -> io::Result<()> {
        (**self).write_batch(batch)
    }
    fn flush(&mut self) -> io::Result<()> {
        (**self).flush()
    }
    fn dropped(&self) -> u64 {
        (**self).dropped()
    }
    fn buffered(&self) -> u64 {
        (**self).buffered()
    }
    fn resent(&self) -> u64 {
        (**self).resent()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RecordKind;

    #[test]
    fn batch_iter_splits_records() {
        let mut b = Batch::new();
        let mut r1 = Record::new(RecordKind::Region, "a");
        r1.ts = 7;
        let r2 = Record::new(RecordKind::Region, "bb");
        b.push(&r1);
        b.push(&r2);
        let parts: Vec<_> = b.iter().collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].ts, 7);
        assert_eq!(Record::from_msgpack(parts[0].bytes).unwrap(), r1);
        assert_eq!(Record::from_msgpack(parts[1].bytes).unwrap(), r2);
        assert_eq!(parts[0].bytes.len() + parts[1].bytes.len(), b.bytes().len());
    }
}
