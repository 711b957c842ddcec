//! Drops: records the writers lost, from their status records.

use std::collections::BTreeMap;

use crate::record::Detail;

/// Records the writers dropped, from the status records read.
///
/// Status records carry counts cumulative since their pipeline started, so
/// per process id the largest count seen is kept (files can be read in any
/// order), and the processes are summed. Two pipelines of one process
/// writing to the same files would be under-counted. Records dropped after
/// a writer's last status record are not seen. Sums are `u128`, so the
/// counts of any number of processes (each up to `u64::MAX`) add up
/// exactly.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Drops {
    /// Status records read.
    pub status_records: u64,
    /// Writer processes (distinct `pid`) whose status records were read.
    pub processes: u64,
    /// Records dropped because the pipeline's queue was full
    /// (`records_dropped_queue_full`).
    pub queue_full: u128,
    /// Records emitted after the pipeline shut down
    /// (`records_dropped_closed`).
    pub closed: u128,
    /// Per sink name: records lost by that sink alone.
    pub sinks: BTreeMap<String, SinkDrops>,
}

/// Records one sink lost (see [`Drops`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SinkDrops {
    /// The sink returned an error for their batch
    /// (`records_dropped_sink_error`).
    pub sink_error: u128,
    /// Accepted, then dropped by the sink itself, e.g. a full network
    /// buffer (`records_dropped_by_sink`).
    pub by_sink: u128,
}

impl Drops {
    /// True when any record was dropped, by the queue or by any sink.
    pub fn any(&self) -> bool {
        self.queue_full > 0
            || self.closed > 0
            || self
                .sinks
                .values()
                .any(|s| s.sink_error > 0 || s.by_sink > 0)
    }
}

/// The largest cumulative counts seen in one process's status records.
#[derive(Clone, Debug, Default)]
struct ProcessDrops {
    queue_full: u64,
    closed: u64,
    /// Per sink: (sink_error, by_sink).
    sinks: BTreeMap<String, (u64, u64)>,
}

/// Drops summed over processes: per process id, the largest cumulative
/// counts its status records gave.
#[derive(Clone, Debug, Default)]
pub(super) struct DropTally {
    // Bounded by the processes seen: a few bytes per writer process.
    processes: BTreeMap<u32, ProcessDrops>,
}

impl DropTally {
    /// Takes in the `detail` of a status record of process `pid`.
    pub(super) fn add(&mut self, pid: u32, detail: &Detail) {
        let process = self.processes.entry(pid).or_default();
        let stat = |key: &str| detail.stats.get(key).copied().unwrap_or(0);
        process.queue_full = process.queue_full.max(stat("records_dropped_queue_full"));
        process.closed = process.closed.max(stat("records_dropped_closed"));
        for (sink, counts) in &detail.sinks {
            let drops = process.sinks.entry(sink.clone()).or_default();
            let count = |key: &str| counts.get(key).copied().unwrap_or(0);
            drops.0 = drops.0.max(count("records_dropped_sink_error"));
            drops.1 = drops.1.max(count("records_dropped_by_sink"));
        }
    }

    /// Takes in every process of `other`.
    pub(super) fn merge(&mut self, other: &DropTally) {
        for (pid, theirs) in &other.processes {
            let mine = self.processes.entry(*pid).or_default();
            mine.queue_full = mine.queue_full.max(theirs.queue_full);
            mine.closed = mine.closed.max(theirs.closed);
            for (sink, (e, b)) in &theirs.sinks {
                let d = mine.sinks.entry(sink.clone()).or_default();
                d.0 = d.0.max(*e);
                d.1 = d.1.max(*b);
            }
        }
    }

    /// The totals over every process, from `status_records` status records.
    pub(super) fn totals(&self, status_records: u64) -> Drops {
        let mut drops = Drops {
            status_records,
            processes: self.processes.len() as u64,
            ..Drops::default()
        };
        for process in self.processes.values() {
            drops.queue_full = drops
                .queue_full
                .saturating_add(u128::from(process.queue_full));
            drops.closed = drops.closed.saturating_add(u128::from(process.closed));
            for (sink, counts) in &process.sinks {
                let total = drops.sinks.entry(sink.clone()).or_default();
                total.sink_error = total.sink_error.saturating_add(u128::from(counts.0));
                total.by_sink = total.by_sink.saturating_add(u128::from(counts.1));
            }
        }
        drops
    }
}
