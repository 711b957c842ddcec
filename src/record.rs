//! The record: one MessagePack map per sample.
//!
//! The schema is documented field by field in `docs/records.md`. Keys are
//! the field names below; a counter that was not measured is absent from the
//! map (never 0). Any MessagePack reader decodes a record without this crate.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::Delta;

/// The schema version written in every record's `v` field.
pub const SCHEMA_VERSION: u8 = 1;

/// Longest label key or value, in bytes; longer ones are cut at a character
/// boundary.
pub const MAX_LABEL_LEN: usize = 128;
/// Most labels one record carries; more are dropped.
pub const MAX_LABELS: usize = 16;
/// Longest record name, in bytes; longer ones are cut.
pub const MAX_NAME_LEN: usize = 256;

/// What a record describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
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

/// One sample: what a region or request cost.
///
/// Build one with [`Record::new`] and the setters, or let a guard, measured
/// future or the tower layer build it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Record {
    /// Schema version ([`SCHEMA_VERSION`]).
    pub v: u8,
    /// What the record describes.
    pub kind: RecordKind,
    /// Unix time of the start of the region, nanoseconds.
    pub ts: u64,
    /// Region name, or the endpoint's route template for requests.
    pub name: String,
    /// HTTP method (requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// HTTP status code (requests; absent when the service failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Small user labels (host, build, feature flags).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
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
    /// How counters were read: `"rdpmc"`, `"read"` or `"software"`
    /// (borrowed when set from a [`crate::ReadPath`]: no allocation).
    pub source: Cow<'static, str>,
    /// True when multiplexing scaled a count (the counts are estimates).
    #[serde(default, skip_serializing_if = "is_false")]
    pub scaled: bool,
    /// True when the region did not finish: a future dropped before
    /// completion, or a guard dropped while panicking.
    #[serde(default, skip_serializing_if = "is_false")]
    pub cancelled: bool,
    /// True when the region was measured because it was forced
    /// ([`crate::Region::forced`]), not picked by the sampler: its weight
    /// is then 0.
    #[serde(default, skip_serializing_if = "is_false")]
    pub forced: bool,
    /// The error, for a request whose service failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Process id of the writer.
    pub pid: u32,
    /// Extra fields of `status` and `profile` records, as a nested map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<Detail>,
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
}

/// The process id, cached: `getpid` is a system call, and a record is made
/// on every sampled region. The cache is keyed by the fork generation, so a
/// forked child reads its own pid.
fn current_pid() -> u32 {
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

/// Cuts `s` to at most `max` bytes, at a character boundary.
pub(crate) fn bounded(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

impl Record {
    /// A record of `kind` named `name` (cut to [`MAX_NAME_LEN`]), weight 1,
    /// stamped with the current Unix time and process id, no counters.
    pub fn new(kind: RecordKind, name: &str) -> Record {
        Record {
            v: SCHEMA_VERSION,
            kind,
            ts: crate::sys::realtime_ns(),
            name: bounded(name, MAX_NAME_LEN),
            method: None,
            status: None,
            labels: BTreeMap::new(),
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
            source: Cow::Borrowed(crate::ReadPath::Software.as_str()),
            scaled: false,
            cancelled: false,
            forced: false,
            error: None,
            pid: current_pid(),
            detail: None,
        }
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
        self.source = Cow::Borrowed(delta.source.as_str());
        self
    }

    /// Adds a label, bounded to [`MAX_LABEL_LEN`] bytes per key and value
    /// and [`MAX_LABELS`] labels; extra labels are ignored.
    pub fn set_label(&mut self, key: &str, value: &str) -> &mut Record {
        let key = bounded(key, MAX_LABEL_LEN);
        if self.labels.len() < MAX_LABELS || self.labels.contains_key(&key) {
            self.labels.insert(key, bounded(value, MAX_LABEL_LEN));
        }
        self
    }

    /// Encodes the record as one MessagePack map (field names as keys).
    pub fn to_msgpack(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(192);
        self.write_msgpack(&mut buf);
        buf
    }

    /// Appends the record's MessagePack encoding to `buf`.
    ///
    /// The same bytes as serde's named encoding (`rmp_serde`), written
    /// directly: this runs once per record on the writer thread.
    pub fn write_msgpack(&self, buf: &mut Vec<u8>) {
        // No `..`: a field added to `Record` must be added here too.
        let Record {
            v,
            kind,
            ts,
            name,
            method,
            status,
            labels,
            weight,
            wall_ns,
            cpu_ns,
            instructions,
            cycles,
            page_faults,
            context_switches,
            rss_start,
            rss_end,
            peak_rss,
            polls,
            threads,
            source,
            scaled,
            cancelled,
            forced,
            error,
            pid,
            detail,
        } = self;
        let optional_counters = [
            ("cpu_ns", cpu_ns),
            ("instructions", instructions),
            ("cycles", cycles),
            ("page_faults", page_faults),
            ("context_switches", context_switches),
            ("rss_start", rss_start),
            ("rss_end", rss_end),
            ("peak_rss", peak_rss),
            ("polls", polls),
            ("threads", threads),
        ];
        let flags = [
            ("scaled", scaled),
            ("cancelled", cancelled),
            ("forced", forced),
        ];
        let len = 8
            + usize::from(method.is_some())
            + usize::from(status.is_some())
            + usize::from(!labels.is_empty())
            + optional_counters
                .iter()
                .filter(|(_, c)| c.is_some())
                .count()
            + flags.iter().filter(|(_, f)| **f).count()
            + usize::from(error.is_some())
            + usize::from(detail.is_some());
        let w = &mut msgpack::Writer(buf);
        w.map_len(len);
        w.uint("v", u64::from(*v));
        w.str("kind", kind.as_str());
        w.uint("ts", *ts);
        w.str("name", name);
        if let Some(method) = method {
            w.str("method", method);
        }
        if let Some(status) = status {
            w.uint("status", u64::from(*status));
        }
        if !labels.is_empty() {
            w.key("labels");
            w.map_len(labels.len());
            for (key, value) in labels {
                w.str(key, value);
            }
        }
        w.uint("weight", *weight);
        w.uint("wall_ns", *wall_ns);
        for (key, value) in &optional_counters[..] {
            if let Some(value) = value {
                w.uint(key, *value);
            }
        }
        w.str("source", source);
        for (key, flag) in flags {
            if *flag {
                w.bool(key, true);
            }
        }
        if let Some(error) = error {
            w.str("error", error);
        }
        w.uint("pid", u64::from(*pid));
        if let Some(detail) = detail {
            w.key("detail");
            // Rare (status and profile records): serde's encoding.
            let _ = rmp_serde::encode::write_named(w.0, detail);
        }
    }

    /// Decodes one record from a MessagePack map.
    ///
    /// Arrays and maps nested more than 32 levels deep (counting the record
    /// itself; they can only hide in fields this crate does not know) are
    /// an error, so a hostile record cannot exhaust the stack.
    pub fn from_msgpack(bytes: &[u8]) -> Result<Record, crate::Error> {
        decode(bytes).map_err(|e| crate::Error::Decode {
            offset: 0,
            message: e.to_string(),
        })
    }
}

/// Direct MessagePack writing into a `Vec`, which cannot fail.
mod msgpack {
    pub(super) struct Writer<'a>(pub(super) &'a mut Vec<u8>);

    impl Writer<'_> {
        pub(super) fn map_len(&mut self, len: usize) {
            let _ = rmp::encode::write_map_len(self.0, len as u32);
        }
        pub(super) fn key(&mut self, key: &str) {
            let _ = rmp::encode::write_str(self.0, key);
        }
        pub(super) fn uint(&mut self, key: &str, value: u64) {
            self.key(key);
            let _ = rmp::encode::write_uint(self.0, value);
        }
        pub(super) fn str(&mut self, key: &str, value: &str) {
            self.key(key);
            let _ = rmp::encode::write_str(self.0, value);
        }
        pub(super) fn bool(&mut self, key: &str, value: bool) {
            self.key(key);
            let _ = rmp::encode::write_bool(self.0, value);
        }
    }
}

/// Deepest nesting of MessagePack arrays and maps the record decoder
/// follows (the record map itself is level 1). Records written by this
/// crate nest 4 levels; the decoder recurses once per level, and
/// rmp-serde's own default (1023 levels) overflows a 2 MiB thread stack in
/// debug builds.
pub(crate) const MAX_DEPTH: usize = 32;

/// Decodes one record, following at most [`MAX_DEPTH`] levels of nesting.
pub(crate) fn decode(bytes: &[u8]) -> Result<Record, rmp_serde::decode::Error> {
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    // rmp-serde refuses the level at which its budget reaches 0.
    de.set_max_depth(MAX_DEPTH + 1);
    Record::deserialize(&mut de)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference encoding: serde's, field names as keys.
    fn serde_encoding(r: &Record) -> Vec<u8> {
        let mut buf = Vec::new();
        rmp_serde::encode::write_named(&mut buf, r).unwrap();
        buf
    }

    #[test]
    fn direct_encoding_is_byte_for_byte_serde_s() {
        let bare = Record::new(RecordKind::Region, "bare");
        let mut full = Record::new(RecordKind::Request, "/users/{id}");
        full.method = Some("GET".into());
        full.status = Some(503);
        full.set_label("host", "web-1").set_label("é", "ü");
        full.weight = 1_000_000;
        full.wall_ns = u64::MAX;
        full.cpu_ns = Some(0);
        full.instructions = Some(127);
        full.cycles = Some(128);
        full.page_faults = Some(255);
        full.context_switches = Some(65_536);
        full.rss_start = Some(1 << 32);
        full.rss_end = Some(u64::from(u32::MAX));
        full.peak_rss = Some(300);
        full.polls = Some(1);
        full.threads = Some(2);
        full.source = "rdpmc".into();
        full.scaled = true;
        full.cancelled = true;
        full.forced = true;
        full.error = Some("boom".into());
        let mut status = Record::new(RecordKind::Status, "dynostats");
        let mut detail = Detail::default();
        detail.counters.insert("instructions".into(), "ok".into());
        detail.stats.insert("records_accepted".into(), 5);
        detail
            .sinks
            .insert("memory".into(), [("records_written".to_string(), 4)].into());
        detail.errors.insert("file:/x".into(), "disk full".into());
        status.detail = Some(detail);
        let mut kinds = Vec::new();
        for kind in [RecordKind::Profile, RecordKind::Status] {
            kinds.push(Record::new(kind, "k"));
        }
        for r in [bare, full, status].iter().chain(&kinds) {
            assert_eq!(r.to_msgpack(), serde_encoding(r), "{r:?}");
            assert_eq!(&Record::from_msgpack(&r.to_msgpack()).unwrap(), r);
        }
    }

    #[test]
    fn absent_counters_are_absent_keys() {
        let mut r = Record::new(RecordKind::Region, "x");
        r.instructions = Some(42);
        let bytes = r.to_msgpack();
        let v: rmpv::Value = rmpv::decode::read_value(&mut &bytes[..]).unwrap();
        let keys: Vec<String> = v
            .as_map()
            .unwrap()
            .iter()
            .map(|(k, _)| k.as_str().unwrap().to_string())
            .collect();
        assert!(keys.contains(&"instructions".to_string()));
        assert!(!keys.contains(&"cycles".to_string()));
        assert!(!keys.contains(&"scaled".to_string()));
        assert_eq!(Record::from_msgpack(&bytes).unwrap(), r);
    }

    /// The record `{..fields of r, "z": [[[...nil...]]]}` with the record
    /// map and `arrays` arrays: `arrays + 1` levels in all.
    fn nested(arrays: usize) -> Vec<u8> {
        let mut bytes = Record::new(RecordKind::Region, "deep").to_msgpack();
        // Bump the fixmap's entry count by one for the extra key.
        assert!(matches!(bytes[0], 0x80..=0x8e), "{:#x}", bytes[0]);
        bytes[0] += 1;
        bytes.extend_from_slice(&[0xa1, b'z']);
        bytes.extend(std::iter::repeat_n(0x91, arrays));
        bytes.push(0xc0);
        bytes
    }

    #[test]
    fn nesting_is_bounded_without_exhausting_the_stack() {
        // 32 levels decode (the unknown field is ignored); 33 do not.
        assert_eq!(Record::from_msgpack(&nested(31)).unwrap().name, "deep");
        let err = Record::from_msgpack(&nested(32)).unwrap_err();
        assert!(err.to_string().contains("depth"), "{err}");
        // Far deeper than the old limit, on a thread with a small stack.
        std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(|| Record::from_msgpack(&nested(100_000)).unwrap_err())
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn labels_and_names_are_bounded() {
        let long = "é".repeat(200);
        let mut r = Record::new(RecordKind::Region, &long);
        assert!(r.name.len() <= MAX_NAME_LEN);
        for i in 0..40 {
            r.set_label(&format!("k{i}"), &long);
        }
        assert_eq!(r.labels.len(), MAX_LABELS);
        assert!(r.labels.values().all(|v| v.len() <= MAX_LABEL_LEN));
    }
}
