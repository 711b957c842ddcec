//! What happened to records: [`PipelineStats`] and [`SinkStats`].

use std::fmt;

use crate::record::grouped;
#[allow(unused_imports)] // Named by the docs.
use crate::sink::Sink;

/// Counts of what happened to records, read with [`Pipeline::stats`](super::Pipeline::stats).
///
/// Every record accepted ends, for each sink, as delivered or as a counted
/// drop with its reason. Once [`Pipeline::flush`](super::Pipeline::flush)
/// has returned, for every sink `received == accepted + status_records`
/// (counting the records accepted before the flush) and
/// `received == written + dropped_sink_full + dropped_sink_error`; once
/// [`Pipeline::shutdown`](super::Pipeline::shutdown) has returned,
/// `written == delivered + dropped_by_sink + lost_at_shutdown` as well
/// ([`SinkStats::lost`] sums the drops).
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

impl PipelineStats {
    /// Records lost: dropped by the queue (full or closed), plus every
    /// sink's lost copies ([`SinkStats::lost`]; a record lost by two sinks
    /// counts twice). After [`Pipeline::shutdown`](super::Pipeline::shutdown),
    /// 0 means every accepted record reached every sink and was delivered.
    pub fn lost(&self) -> u64 {
        self.dropped_queue_full
            + self.dropped_closed
            + self.sinks.iter().map(SinkStats::lost).sum::<u64>()
    }
}

/// One line a service can log: records accepted (and the status records
/// the pipeline made, which each sink writes too), what each sink wrote
/// and delivered, and every loss with its reason (only the losses that are
/// not 0).
///
/// ```
/// use dynostats::Pipeline;
/// use dynostats::sink::MemorySink;
///
/// let pipeline = Pipeline::builder().sink(MemorySink::new()).build().unwrap();
/// let _scope = pipeline.scoped();
/// dynostats::emit(dynostats::Record::new(dynostats::RecordKind::Region, "a"));
/// pipeline.flush().unwrap();
/// let line = pipeline.stats().to_string();
/// assert!(line.starts_with("dynostats: 1 record accepted"), "{line}");
/// assert!(line.contains("memory: "), "{line}");
/// assert!(line.ends_with("none lost"), "{line}");
/// ```
impl fmt::Display for PipelineStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural =
            |n: u64, what: &str| format!("{} {what}{}", grouped(n), if n == 1 { "" } else { "s" });
        write!(f, "dynostats: {} accepted", plural(self.accepted, "record"))?;
        if self.status_records > 0 {
            // Sinks write them too: without this, "400 accepted ... 402
            // written" reads as records appearing from nowhere.
            write!(
                f,
                " (and {} of its own)",
                plural(self.status_records, "status record")
            )?;
        }
        if self.dropped_queue_full > 0 {
            write!(
                f,
                ", {} dropped (queue full)",
                grouped(self.dropped_queue_full)
            )?;
        }
        if self.dropped_closed > 0 {
            write!(
                f,
                ", {} dropped (after shutdown)",
                grouped(self.dropped_closed)
            )?;
        }
        for sink in &self.sinks {
            write!(
                f,
                "; {}: {} written, {} delivered",
                sink.name,
                grouped(sink.written),
                grouped(sink.delivered)
            )?;
            for (n, why) in [
                (sink.dropped_sink_full, "sink behind"),
                (sink.dropped_sink_error, "sink errors"),
                (sink.dropped_by_sink, "dropped by the sink"),
                (sink.lost_at_shutdown, "lost at shutdown"),
            ] {
                if n > 0 {
                    write!(f, ", {} {why}", grouped(n))?;
                }
            }
        }
        match self.lost() {
            0 => write!(f, "; none lost"),
            n => write!(f, "; {} lost", plural(n, "record")),
        }
    }
}

/// What happened to the records handed to one sink. Each sink runs on its
/// own thread: its drops are its own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SinkStats {
    /// The sink's name (made unique within the pipeline).
    pub name: String,
    /// Records the writer offered this sink.
    pub received: u64,
    /// Records the writer did not hand to this sink because its backlog was
    /// full (it fell behind: a stalled collector, a slow disk); see
    /// [`PipelineBuilder::sink_backlog`](super::PipelineBuilder::sink_backlog).
    pub dropped_sink_full: u64,
    /// Records the sink accepted (`write_batch` returned `Ok`).
    pub written: u64,
    /// Records accepted and delivered: `written` less what the sink dropped,
    /// still holds ([`Sink::buffered`]) or lost at shutdown. For a sink with
    /// acknowledgements (Forward), acknowledged.
    pub delivered: u64,
    /// Records the sink accepted and still holds, undelivered (a network
    /// sink's buffer while its collector is away).
    pub buffered_by_sink: u64,
    /// Records the sink still held, undelivered, when the pipeline shut
    /// down: lost (a Forward chunk sent but never acknowledged counts here,
    /// although the collector may have kept it).
    pub lost_at_shutdown: u64,
    /// Bytes of the records the sink accepted.
    pub bytes_written: u64,
    /// Records lost because the sink returned an error (or panicked).
    pub dropped_sink_error: u64,
    /// Records the sink accepted and later dropped by itself
    /// ([`Sink::dropped`]).
    pub dropped_by_sink: u64,
    /// Records the sink sent more than once ([`Sink::resent`]): at-least-once
    /// delivery's possible duplicates. Not a loss.
    pub resent: u64,
    /// Number of failed `write_batch` or `flush` calls.
    pub errors: u64,
    /// The last error, if any.
    pub last_error: Option<String>,
}

impl SinkStats {
    /// This sink's lost copies: dropped because it fell behind, on its
    /// errors, by itself, and at shutdown.
    pub fn lost(&self) -> u64 {
        self.dropped_sink_full
            + self.dropped_sink_error
            + self.dropped_by_sink
            + self.lost_at_shutdown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_names_every_loss_and_its_reason() {
        let stats = PipelineStats {
            accepted: 10,
            dropped_queue_full: 2,
            sinks: vec![SinkStats {
                name: "file".into(),
                written: 9,
                delivered: 8,
                dropped_sink_error: 1,
                lost_at_shutdown: 1,
                ..SinkStats::default()
            }],
            ..PipelineStats::default()
        };
        assert_eq!(
            stats.to_string(),
            "dynostats: 10 records accepted, 2 dropped (queue full); file: 9 written, \
             8 delivered, 1 sink errors, 1 lost at shutdown; 4 records lost"
        );
    }

    #[test]
    fn counts_are_grouped_by_thousands() {
        let stats = PipelineStats {
            accepted: 12_345,
            dropped_queue_full: 5,
            sinks: vec![SinkStats {
                name: "file:requests.msgpack".into(),
                written: 12_340,
                delivered: 12_340,
                ..SinkStats::default()
            }],
            ..PipelineStats::default()
        };
        assert_eq!(
            stats.to_string(),
            "dynostats: 12,345 records accepted, 5 dropped (queue full); \
             file:requests.msgpack: 12,340 written, 12,340 delivered; 5 records lost"
        );
    }
}
