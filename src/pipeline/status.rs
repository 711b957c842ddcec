//! The status record: which counters work on the writer thread, where
//! they come from and why not (the probe's answer,
//! `Counters::sources`), and the pipeline's counts so far (format in
//! `docs/records.md`).

use super::stats::PipelineStats;
use crate::counters::{descriptor_use, with_thread_counters};
use crate::record::{Detail, Record, RecordKind, traceparent_ignored};
use crate::sample::sample_rate;

/// A status record of `totals` (with its sinks' counts) and the queue's
/// current length.
pub(super) fn record(totals: &PipelineStats, queue_len: u64) -> Record {
    let mut record = Record::new(RecordKind::Status, "dynostats");
    record.weight = 0;
    let mut detail = Detail::default();
    // The probe's answer for this thread's counters: per counter "ok" or
    // why not, and where the available ones come from.
    if let Some(sources) = with_thread_counters(|counters| counters.sources()) {
        for state in &sources.counters {
            let name = state.counter.name().to_string();
            if let Ok(source) = state.source {
                detail
                    .sources
                    .insert(name.clone(), source.as_str().to_string());
            }
            detail.counters.insert(name, state.verdict());
        }
        record.source = sources.path;
    }
    let descriptors = descriptor_use();
    let stats = [
        ("records_accepted", totals.accepted),
        ("records_dropped_queue_full", totals.dropped_queue_full),
        ("records_dropped_closed", totals.dropped_closed),
        ("status_records", totals.status_records),
        ("queue_capacity", totals.queue_capacity),
        ("queue_len", queue_len),
        ("sample_rate", sample_rate()),
        ("perf_groups_held", descriptors.perf_groups_held),
        ("perf_descriptors_held", descriptors.perf_descriptors_held),
        ("perf_threads_refused", descriptors.threads_refused),
        ("perf_refusals", descriptors.refusals),
        (
            "withdrawn_user_reads",
            crate::counters::withdrawn_user_reads(),
        ),
        ("traceparent_ignored", traceparent_ignored()),
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
    record.detail = Some(Box::new(detail));
    record
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::{Counter, CounterSource};
    use crate::fake_kernel::{FakeKernel, HARDWARE, SOFTWARE};

    #[test]
    fn a_status_record_carries_the_threads_sources_and_reasons() {
        let kernel = FakeKernel::new();
        kernel
            .fail_type(HARDWARE, libc::EACCES)
            .fail_type(SOFTWARE, libc::EACCES);
        let _hooks = kernel.install();
        let record = record(&PipelineStats::default(), 0);
        let detail = record.detail.as_ref().unwrap();
        let sources = with_thread_counters(|c| c.sources()).unwrap();
        assert_eq!(record.source, sources.path);
        assert_eq!(detail.counters.len(), sources.counters.len());
        for state in &sources.counters {
            let name = state.counter.name();
            assert_eq!(detail.counters[name], state.verdict(), "{name}");
            assert_eq!(
                detail.sources.get(name).map(String::as_str),
                state.source.as_ref().ok().map(|s| s.as_str()),
                "{name}"
            );
        }
        // Every perf event refused: CPU time from the clock, "ok"; no
        // source for the absent hardware counters, and their reason.
        let cpu = Counter::CpuTime.name();
        assert_eq!(detail.counters[cpu], "ok");
        assert_eq!(detail.sources[cpu], CounterSource::Clock.as_str());
        let instructions = Counter::Instructions.name();
        assert!(detail.counters[instructions].contains("EACCES"));
        assert!(!detail.sources.contains_key(instructions));
    }
}
