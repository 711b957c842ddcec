//! What happened to records: [`PipelineStats`] and [`SinkStats`].

#[allow(unused_imports)] // Named by the docs.
use crate::sink::Sink;

/// Counts of what happened to records, read with [`Pipeline::stats`](super::Pipeline::stats).
///
/// Once [`Pipeline::flush`](super::Pipeline::flush) has returned, for every sink
/// `accepted + status_records == written + dropped_sink_error` (counting
/// the records accepted before the flush).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PipelineStats {
    /// Records accepted on the queue.
    pub accepted: u64,
    /// Records dropped because the queue was full.
    pub dropped_queue_full: u64,
    /// Records dropped because the pipeline was shut down (or its writer
    /// stopped).
    pub dropped_closed: u64,
    /// Status records the writer produced (written like any other record).
    pub status_records: u64,
    /// Queue capacity, in records.
    pub queue_capacity: u64,
    /// One entry per sink, in the order they were added.
    pub sinks: Vec<SinkStats>,
}

/// What happened to the records handed to one sink.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SinkStats {
    /// The sink's name (made unique within the pipeline).
    pub name: String,
    /// Records the sink accepted.
    pub written: u64,
    /// Bytes of the records the sink accepted.
    pub bytes_written: u64,
    /// Records lost because the sink returned an error (or panicked).
    pub dropped_sink_error: u64,
    /// Records the sink accepted and later dropped by itself
    /// ([`Sink::dropped`]).
    pub dropped_by_sink: u64,
    /// Number of failed `write_batch` or `flush` calls.
    pub errors: u64,
    /// The last error, if any.
    pub last_error: Option<String>,
}
