//! Drops: records the writers lost, from their status records.

use std::collections::BTreeMap;

use crate::record::Detail;

/// Records the writers dropped, from the status records read.
///
/// Status records carry counts cumulative since their pipeline started, so
/// per process (its `host` label and process id: hosts of a fleet reuse
/// process ids) the largest count seen is kept (files can be read in any
/// order), and the processes are summed. Two pipelines of one process
/// writing to the same files would be under-counted, and so would two
/// processes of one id on hosts that write no `host` label. Records dropped after
/// a writer's last status record are not seen. Sums are `u128`, so the
/// counts of any number of processes (each up to `u64::MAX`) add up
/// exactly.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Drops {
    /// Status records read.
    pub status_records: u64,
    /// Writer processes (distinct `host` label and `pid`) whose status
    /// records were read.
    pub processes: u64,
    /// Records dropped because the pipeline's queue was full
    /// (`records_dropped_queue_full`).
    pub queue_full: u128,
    /// Records emitted after the pipeline shut down
    /// (`records_dropped_closed`).
    pub closed: u128,
    /// Per sink name: records lost by that sink alone.
    pub sinks: BTreeMap<String, SinkDrops>,
    /// The drops of the sinks that wrote the records read: per process,
    /// the entries of [`sinks`](Self::sinks) its status records name as
    /// their own (`detail.sink`). These are the records missing from what
    /// was read; other sinks' drops are missing elsewhere.
    pub own: SinkDrops,
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
    /// Never handed to the sink: it fell behind and its backlog was full
    /// (`records_dropped_sink_full`).
    pub sink_full: u128,
}

impl SinkDrops {
    /// Every record this sink lost.
    pub fn total(&self) -> u128 {
        self.sink_error
            .saturating_add(self.by_sink)
            .saturating_add(self.sink_full)
    }

    fn add(&mut self, counts: Counts) {
        self.sink_error = self.sink_error.saturating_add(u128::from(counts.0));
        self.by_sink = self.by_sink.saturating_add(u128::from(counts.1));
        self.sink_full = self.sink_full.saturating_add(u128::from(counts.2));
    }
}

/// One sink's (sink_error, by_sink, sink_full) in one process.
type Counts = (u64, u64, u64);

fn max_counts(mine: &mut Counts, theirs: Counts) {
    mine.0 = mine.0.max(theirs.0);
    mine.1 = mine.1.max(theirs.1);
    mine.2 = mine.2.max(theirs.2);
}

impl Drops {
    /// True when any record was dropped, by the queue or by any sink.
    pub fn any(&self) -> bool {
        self.queue_full > 0 || self.closed > 0 || self.sinks.values().any(|s| s.total() > 0)
    }
}

/// The largest cumulative counts seen in one process's status records.
#[derive(Clone, Debug, Default)]
struct ProcessDrops {
    queue_full: u64,
    closed: u64,
    sinks: BTreeMap<String, Counts>,
    /// The sinks this process's status records named as the one they were
    /// written to.
    own: std::collections::BTreeSet<String>,
}

/// A writer process: its `host` label (empty without) and its process id.
pub(crate) type ProcessKey = (String, u32);

/// Drops summed over processes: per process (host and id), the largest
/// cumulative counts its status records gave.
#[derive(Clone, Debug, Default)]
pub(super) struct DropTally {
    // Bounded by the processes seen: a few bytes per writer process.
    processes: BTreeMap<ProcessKey, ProcessDrops>,
}

impl DropTally {
    /// Takes in the `detail` of a status record of `process`.
    pub(super) fn add(&mut self, process: ProcessKey, detail: &Detail) {
        let process = self.processes.entry(process).or_default();
        let stat = |key: &str| detail.stats.get(key).copied().unwrap_or(0);
        process.queue_full = process.queue_full.max(stat("records_dropped_queue_full"));
        process.closed = process.closed.max(stat("records_dropped_closed"));
        for (sink, counts) in &detail.sinks {
            let drops = process.sinks.entry(sink.clone()).or_default();
            let count = |key: &str| counts.get(key).copied().unwrap_or(0);
            max_counts(
                drops,
                (
                    count("records_dropped_sink_error"),
                    count("records_dropped_by_sink"),
                    count("records_dropped_sink_full"),
                ),
            );
        }
        if let Some(own) = &detail.sink {
            if !process.own.contains(own) {
                process.own.insert(own.clone());
            }
        }
    }

    /// Takes in every process of `other`.
    pub(super) fn merge(&mut self, other: &DropTally) {
        for (key, theirs) in &other.processes {
            let mine = self.processes.entry(key.clone()).or_default();
            mine.queue_full = mine.queue_full.max(theirs.queue_full);
            mine.closed = mine.closed.max(theirs.closed);
            for (sink, counts) in &theirs.sinks {
                max_counts(mine.sinks.entry(sink.clone()).or_default(), *counts);
            }
            mine.own.extend(theirs.own.iter().cloned());
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
                drops.sinks.entry(sink.clone()).or_default().add(*counts);
                if process.own.contains(sink) {
                    drops.own.add(*counts);
                }
            }
        }
        drops
    }
}
