//! The record: one MessagePack map per sample.
//!
//! The schema is documented field by field in `docs/records.md`. Keys are
//! the field names below; a counter that was not measured is absent from the
//! map (never 0). Any MessagePack reader decodes a record without this crate.
//!
//! - [`Record`] and [`RecordKind`]: the fields, and what a record describes.
//! - [`Labels`]: the one label rule (bounded count and length), and
//!   [`Name`]: a record's name without an allocation on the measured thread.
//! - [`read()`] and [`RecordReader`]: records back from a file or stream,
//!   framed and decoded in one pass; a record that is not understood is
//!   skipped and counted ([`Damage`], [`SkipReason`]) with its byte offset.
//! - [`TraceContext`], [`TraceId`], [`SpanId`]: the W3C trace a request
//!   belongs to, read from its `traceparent` header
//!   ([`TraceContext::from_traceparent`]), in the `trace_id` and `span_id`
//!   fields.
//!
//! ```
//! use dynostats::{Record, RecordKind};
//!
//! let mut r = Record::new(RecordKind::Region, "parse");
//! r.instructions = Some(12_345);
//! r.set_label("build", "abc123");
//! let bytes = r.to_msgpack();
//! let back: Vec<Record> = dynostats::read(&bytes[..]).collect::<Result<_, _>>().unwrap();
//! assert_eq!(back, [r]);
//! ```

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

mod encode;
mod labels;
mod name;
mod read;
mod text;
mod trace;

pub use labels::Labels;
pub(crate) use labels::truncate;
pub use name::Name;
pub(crate) use read::decode;
pub use read::{Damage, MAX_DEPTH, RecordReader, Skip, SkipReason, Step, read};
pub use text::{escape_name, grouped};
pub(crate) use trace::IdText;
#[cfg(feature = "tower")]
pub(crate) use trace::note_ignored_traceparent;
pub use trace::{InvalidId, SpanId, TRACEPARENT, TraceContext, TraceId, traceparent_ignored};

use crate::counters::{Delta, NameVisitor, ReadPath};

/// What a record describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecordKind {
    /// One request through the tower layer.
    Request,
    /// One code region (a guard or a measured future).
    Region,
    /// A sampled profile (call tree).
    Profile,
    /// The pipeline's own status: counters available, records written and
    /// dropped.
    Status,
}

impl RecordKind {
    /// Every kind.
    pub const ALL: [RecordKind; 4] = [
        RecordKind::Request,
        RecordKind::Region,
        RecordKind::Profile,
        RecordKind::Status,
    ];

    /// The name written in the `kind` field.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Request => "request",
            RecordKind::Region => "region",
            RecordKind::Profile => "profile",
            RecordKind::Status => "status",
        }
    }
}

impl Serialize for RecordKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Only the names: an integer is not read as a variant index.
impl<'de> Deserialize<'de> for RecordKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RecordKind, D::Error> {
        deserializer.deserialize_str(NameVisitor::new("request, region, profile or status"))
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RecordKind {
    type Err = String;

    /// Parses the name written in the `kind` field.
    fn from_str(s: &str) -> Result<RecordKind, String> {
        RecordKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!("unknown record kind {s:?}: expected request, region, profile or status")
            })
    }
}

/// One sample: what a region or request cost.
///
/// Build one with [`Record::new`] and the setters, or let a guard, measured
/// future or the tower layer build it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Record {
    /// Schema version ([`Record::SCHEMA_VERSION`]).
    pub v: u8,
    /// What the record describes.
    pub kind: RecordKind,
    /// Unix time of the start of the region, nanoseconds.
    pub ts: u64,
    /// Region name, or the endpoint's route template for requests (kept in
    /// the record, without an allocation, up to [`Name::INLINE`] bytes).
    pub name: Name,
    /// HTTP method (requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Cow<'static, str>>,
    /// HTTP status code (requests; absent when the service failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Small user labels (host, build, feature flags).
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
    /// Sampling rate in force: this record stands for `weight` events.
    pub weight: u64,
    /// Wall-clock nanoseconds.
    pub wall_ns: u64,
    /// CPU nanoseconds of the measuring thread(s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ns: Option<u64>,
    /// User-space instructions retired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<u64>,
    /// User-space CPU cycles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cycles: Option<u64>,
    /// Page faults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_faults: Option<u64>,
    /// Context switches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_switches: Option<u64>,
    /// Process RSS at the start, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_start: Option<u64>,
    /// Process RSS at the end, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_end: Option<u64>,
    /// Peak process RSS at the end, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss: Option<u64>,
    /// Number of polls summed (futures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polls: Option<u64>,
    /// Number of distinct threads that polled the future.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<u64>,
    /// How counters were read: `"rdpmc"`, `"read"` or `"software"`.
    pub source: ReadPath,
    /// True when multiplexing scaled a count (the counts are estimates).
    #[serde(default, skip_serializing_if = "is_false")]
    pub scaled: bool,
    /// True when the region did not finish: a future dropped before
    /// completion, or a guard dropped while panicking.
    #[serde(default, skip_serializing_if = "is_false")]
    pub cancelled: bool,
    /// True when the region was measured because it was forced
    /// ([`crate::instrument::Region::forced`]), not picked by the sampler: its weight
    /// is then 0.
    #[serde(default, skip_serializing_if = "is_false")]
    pub forced: bool,
    /// The error, for a request whose service failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Cow<'static, str>>,
    /// Process id of the writer.
    pub pid: u32,
    /// Links a region or request record to its `profile` record: both carry
    /// the same id, present only when the region or request entered
    /// profiler scopes (see [`crate::profile`]). Unique within the process
    /// (`pid`), and across processes with high probability (a random
    /// per-process base plus a counter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// The W3C trace id of the request (its `traceparent` header, or the
    /// layer's trace hook: see
    /// [`MeasureLayer::trace_context`](crate::tower::MeasureLayer::trace_context)),
    /// written as 32 lowercase hex digits; on its profile record too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<TraceId>,
    /// The span id that goes with [`trace_id`](Self::trace_id): from a
    /// `traceparent` header, the caller's span (the parent of the span
    /// that handled the request); 16 lowercase hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<SpanId>,
    /// Extra fields of `status` and `profile` records, as a nested map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<Box<Detail>>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The nested `detail` map of `status` and `profile` records.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Detail {
    /// Status: per counter, `"ok"` or the reason it is unavailable.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counters: BTreeMap<String, String>,
    /// Status: per available counter, where its values come from
    /// ([`CounterSource`](crate::counters::CounterSource) names: `"rdpmc"`,
    /// `"read"`, `"software_event"`, `"clock"`, `"statm"`, `"getrusage"`).
    /// Empty in records written before it was added.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sources: BTreeMap<String, String>,
    /// Status: named statistics of the pipeline (records written, dropped
    /// per reason, bytes written ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stats: BTreeMap<String, u64>,
    /// Status: per sink (by name), its counts: `records_written`,
    /// `bytes_written`, `records_dropped_sink_error`,
    /// `records_dropped_by_sink`, `errors`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sinks: BTreeMap<String, BTreeMap<String, u64>>,
    /// Status: the last error of each sink, by sink name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, String>,
    /// Status: the name of the sink this copy of the status record was
    /// written to: its entry in [`sinks`](Self::sinks) holds the counts of
    /// the file or stream being read (what *it* lost). Each sink gets its
    /// own copy of every status record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink: Option<String>,
    /// Profile: the timer the amounts are in (`"instructions"`, `"cycles"`,
    /// `"cpu_ns"`, `"wall_ns"` or `"rss"`), the one actually read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timer: Option<String>,
    /// Profile: the timer that was asked for, when it could not be read
    /// and [`timer`](Self::timer) is the fallback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timer_requested: Option<String>,
    /// Profile: why the requested timer could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timer_fallback: Option<String>,
    /// Profile: the region's or request's total in the timer's unit (the
    /// root node's inclusive amount).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
    /// Profile: the profiler's own amount, taken off the scopes (the
    /// calibrated cost of its enter/exit pairs and poll resumptions), so
    /// that the exclusive amounts of all nodes plus this equal
    /// [`total`](Self::total).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overhead: Option<i64>,
    /// Profile: the call tree, root (the region or request itself) first;
    /// every node's parent comes before it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<ProfileNode>,
}

/// One node of a profile's call tree: one full path of scopes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProfileNode {
    /// The scope name (the region or request name for the root).
    pub name: String,
    /// Index of the parent node in [`Detail::nodes`]; absent for the root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<u32>,
    /// How many times the scope was entered on this path (exact).
    pub calls: u64,
    /// Amount from entering to leaving the scope, the profiler's own cost
    /// taken off; a scope on the stack more than once on this node is
    /// counted once.
    pub inclusive: i64,
    /// [`inclusive`](Self::inclusive) minus the inclusive amounts of the
    /// node's children: what the scope spent itself.
    pub exclusive: i64,
    /// True when a node of the same name is an ancestor: its inclusive
    /// amount is already inside that ancestor's, so a per-name inclusive
    /// total leaves it out.
    #[serde(default, skip_serializing_if = "is_false")]
    pub recursive: bool,
}

/// The process id, cached: `getpid` is a system call, and a record is made
/// on every sampled region. The cache is keyed by the fork generation, so a
/// forked child reads its own pid.
pub(crate) fn current_pid() -> u32 {
    static CACHE: AtomicU64 = AtomicU64::new(0);
    // Generation + 1 in the high half, so that 0 means "not cached".
    let generation = u64::from((crate::sys::fork_generation() as u32).wrapping_add(1));
    let cached = CACHE.load(Ordering::Relaxed);
    if cached >> 32 == generation {
        return cached as u32;
    }
    let pid = std::process::id();
    CACHE.store((generation << 32) | u64::from(pid), Ordering::Relaxed);
    pid
}

impl Record {
    /// The schema version written in every record's `v` field.
    pub const SCHEMA_VERSION: u8 = 1;
    /// Longest record name, in bytes; longer ones are cut at a character
    /// boundary.
    pub const MAX_NAME_LEN: usize = 256;
    /// Longest label key or value, in bytes ([`Labels::MAX_LEN`]).
    pub const MAX_LABEL_LEN: usize = Labels::MAX_LEN;
    /// Most labels one record carries ([`Labels::MAX`]).
    pub const MAX_LABELS: usize = Labels::MAX;

    /// A record of `kind` named `name` (cut to [`Record::MAX_NAME_LEN`]), weight 1,
    /// stamped with the current Unix time and process id, no counters.
    pub fn new(kind: RecordKind, name: &str) -> Record {
        Record {
            v: Record::SCHEMA_VERSION,
            kind,
            ts: crate::sys::realtime_ns(),
            name: Name::new(truncate(name, Record::MAX_NAME_LEN)),
            method: None,
            status: None,
            labels: Labels::default(),
            weight: 1,
            wall_ns: 0,
            cpu_ns: None,
            instructions: None,
            cycles: None,
            page_faults: None,
            context_switches: None,
            rss_start: None,
            rss_end: None,
            peak_rss: None,
            polls: None,
            threads: None,
            source: ReadPath::Software,
            scaled: false,
            cancelled: false,
            forced: false,
            error: None,
            pid: current_pid(),
            id: None,
            trace_id: None,
            span_id: None,
            detail: None,
        }
    }

    /// A record with every field empty (not stamped with time or pid):
    /// what a reader decodes into.
    pub(crate) fn empty() -> Record {
        Record {
            v: Record::SCHEMA_VERSION,
            kind: RecordKind::Region,
            ts: 0,
            name: Name::default(),
            method: None,
            status: None,
            labels: Labels::default(),
            weight: 0,
            wall_ns: 0,
            cpu_ns: None,
            instructions: None,
            cycles: None,
            page_faults: None,
            context_switches: None,
            rss_start: None,
            rss_end: None,
            peak_rss: None,
            polls: None,
            threads: None,
            source: ReadPath::Software,
            scaled: false,
            cancelled: false,
            forced: false,
            error: None,
            pid: 0,
            id: None,
            trace_id: None,
            span_id: None,
            detail: None,
        }
    }

    /// Empties every field like [`Record::empty`], keeping the labels' map
    /// and `method` and `error` as they are: the reader sets or clears
    /// those two once it knows whether the record has them, so their
    /// allocations are reused.
    pub(crate) fn clear(&mut self) {
        let mut labels = std::mem::take(&mut self.labels);
        let method = self.method.take();
        let error = self.error.take();
        labels.clear();
        *self = Record {
            labels,
            method,
            error,
            ..Record::empty()
        };
    }

    /// Copies the counters of `delta` into the record.
    pub fn set_delta(&mut self, delta: &Delta) -> &mut Record {
        self.wall_ns = delta.wall_ns;
        self.cpu_ns = delta.cpu_ns;
        self.instructions = delta.instructions;
        self.cycles = delta.cycles;
        self.page_faults = delta.page_faults;
        self.context_switches = delta.context_switches;
        self.rss_start = delta.rss_start;
        self.rss_end = delta.rss_end;
        self.peak_rss = delta.peak_rss;
        self.scaled = delta.scaled;
        self.source = delta.source;
        self
    }

    /// Sets [`trace_id`](Self::trace_id) and [`span_id`](Self::span_id)
    /// from `context` (both absent for `None`).
    pub fn set_trace_context(&mut self, context: Option<TraceContext>) -> &mut Record {
        self.trace_id = context.map(|c| c.trace_id);
        self.span_id = context.map(|c| c.span_id);
        self
    }

    /// The value a filter or a sample label of key `key` sees in the
    /// record: for `trace_id` and `span_id`, the record's field of that
    /// name when it has one, written into `buf`; otherwise its label
    /// `key`. One rule for `--label KEY=VALUE` and `--label-key KEY`.
    pub(crate) fn label_or_field<'a>(&'a self, key: &str, buf: &'a mut IdText) -> Option<&'a str> {
        match key {
            "trace_id" if self.trace_id.is_some() => self.trace_id.map(|id| buf.hold(id.hex())),
            "span_id" if self.span_id.is_some() => self.span_id.map(|id| buf.hold(id.hex())),
            _ => self.labels.get(key),
        }
    }

    /// Adds a label by the one label rule ([`Labels::insert`]): keys and
    /// values cut to [`Labels::MAX_LEN`] bytes, at most [`Labels::MAX`]
    /// labels; extra labels are ignored.
    pub fn set_label(&mut self, key: &str, value: &str) -> &mut Record {
        self.labels.insert(key, value);
        self
    }

    /// Decodes one record from a MessagePack map.
    ///
    /// Arrays and maps nested more than [`MAX_DEPTH`] levels deep
    /// (counting the record itself; they can only hide in fields this
    /// crate does not know) are an error, and are followed without
    /// recursion, so a hostile record cannot exhaust the stack. Errors name
    /// the field concerned.
    pub fn from_msgpack(bytes: &[u8]) -> Result<Record, crate::error::Error> {
        decode(bytes).map_err(|message| crate::error::Error::Decode { offset: 0, message })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every sampled region moves a `Record` into the queue: `detail`
    /// (status and profile records only, 272 bytes inline) is boxed so
    /// that a request record is not twice its size (608 bytes before).
    /// The trace ids (24 bytes, kept as bytes rather than their 48 hex
    /// digits) took it from 352 to 368.
    #[test]
    fn a_record_stays_small_to_move() {
        assert!(
            std::mem::size_of::<Record>() <= 368,
            "Record is {} bytes",
            std::mem::size_of::<Record>()
        );
        assert_eq!(
            std::mem::size_of::<Option<Box<Detail>>>(),
            std::mem::size_of::<usize>()
        );
    }

    #[test]
    fn kinds_parse_back() {
        for k in RecordKind::ALL {
            assert_eq!(k.to_string().parse::<RecordKind>(), Ok(k));
        }
        assert!("requests".parse::<RecordKind>().is_err());
    }

    #[test]
    fn labels_and_names_are_bounded() {
        let long = "é".repeat(200);
        let mut r = Record::new(RecordKind::Region, &long);
        assert!(r.name.len() <= Record::MAX_NAME_LEN);
        for i in 0..40 {
            r.set_label(&format!("k{i}"), &long);
        }
        assert_eq!(r.labels.len(), Record::MAX_LABELS);
        assert!(
            r.labels
                .iter()
                .all(|(_, v)| v.len() <= Record::MAX_LABEL_LEN)
        );
    }
}
