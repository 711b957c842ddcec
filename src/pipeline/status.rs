//! The status record: which counters work on the writer thread and why
//! not, and the pipeline's counts so far (format in `docs/records.md`).

use super::stats::PipelineStats;
use crate::counters::with_thread_counters;
use crate::record::{Detail, Record, RecordKind};
use crate::sample::sample_rate;

/// A status record of `totals` (with its sinks' counts) and the queue's
/// current length.
pub(super) fn record(totals: &PipelineStats, queue_len: u64) -> Record {
    let mut record = Record::new(RecordKind::Status, "dynostats");
    record.weight = 0;
    let mut detail = Detail::default();
    let source = with_thread_counters(|counters| {
        for counter in counters.set().iter() {
            let state = match counters.unavailable().iter().find(|u| u.counter == counter) {
                Some(u) => u.explanation(),
                None => "ok".to_string(),
            };
            detail.counters.insert(counter.name().to_string(), state);
        }
        counters.source()
    });
    if let Some(source) = source {
        record.source = source;
    }
    let stats = [
        ("records_accepted", totals.accepted),
        ("records_dropped_queue_full", totals.dropped_queue_full),
        ("records_dropped_closed", totals.dropped_closed),
        ("status_records", totals.status_records),
        ("queue_capacity", totals.queue_capacity),
        ("queue_len", queue_len),
        ("sample_rate", sample_rate()),
    ];
    detail.stats = stats.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    for st in &totals.sinks {
        let counts = [
            ("records_received", st.received),
            ("records_dropped_sink_full", st.dropped_sink_full),
            ("records_written", st.written),
            ("records_delivered", st.delivered),
            ("records_buffered_by_sink", st.buffered_by_sink),
            ("bytes_written", st.bytes_written),
            ("records_dropped_sink_error", st.dropped_sink_error),
            ("records_dropped_by_sink", st.dropped_by_sink),
            ("records_resent", st.resent),
            ("errors", st.errors),
        ];
        detail.sinks.insert(
            st.name.clone(),
            counts
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        );
        if let Some(e) = &st.last_error {
            detail.errors.insert(st.name.clone(), e.clone());
        }
    }
    record.detail = Some(detail);
    record
}
