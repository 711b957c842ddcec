//! [`Report`]: records grouped by kind, name and method (requests), split
//! further on demand ([`Split`]), with per group the counts, the events
//! they stand for and per [`Metric`] the weighted total and quantiles: the
//! summary behind `dynostats report`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io::Read;

use super::Summarize;
use super::drops::{DropTally, Drops};
use super::filter::LabelFilters;
use super::metric::{Metric, MetricStats};
use super::sketch::Sketch;
use super::summary::Summary;
use super::table::Table;
use crate::counters::Counter;
use crate::record::{Damage, Record, RecordKind};

/// A further split of groups beyond kind, name and method.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Split {
    /// By the class of the HTTP status: `2xx`, `4xx`, `5xx` ... or `none`
    /// for a request without a response (`-` for records that are not
    /// requests).
    StatusClass,
    /// By the value of the label with this key (`-` when a record does not
    /// carry it).
    Label(String),
}

impl Split {
    /// The column title: `status` or `label:KEY`.
    pub fn title(&self) -> String {
        match self {
            Split::StatusClass => "status".to_string(),
            Split::Label(key) => format!("label:{key}"),
        }
    }

    /// The split's value for `record`.
    fn value<'r>(&self, record: &'r Record, buf: &'r mut [u8; 3]) -> &'r str {
        match self {
            Split::StatusClass => {
                if record.kind != RecordKind::Request {
                    return "-";
                }
                match record.status {
                    None => "none",
                    Some(status) => {
                        let class = (status / 100).min(9) as u8;
                        *buf = [b'0' + class, b'x', b'x'];
                        std::str::from_utf8(&buf[..]).unwrap_or("?xx")
                    }
                }
            }
            Split::Label(key) => record.labels.get(key).unwrap_or("-"),
        }
    }
}

impl std::str::FromStr for Split {
    type Err = String;

    /// Parses `status` or `label=KEY`.
    fn from_str(s: &str) -> Result<Split, String> {
        match s {
            "status" => Ok(Split::StatusClass),
            _ => match s.strip_prefix("label=") {
                Some(key) if !key.is_empty() => Ok(Split::Label(key.to_string())),
                _ => Err(format!("unknown split {s:?}: expected status or label=KEY")),
            },
        }
    }
}

/// The records of one kind, name and method (requests), and split values,
/// in a [`Report`].
#[derive(Clone, Debug)]
pub struct Group {
    pub(super) kind: RecordKind,
    pub(super) name: String,
    pub(super) method: Option<String>,
    pub(super) split: Vec<String>,
    pub(super) other: bool,
    pub(super) summary: Summary,
}

impl Group {
    fn new(kind: RecordKind, name: &str, method: Option<&str>, split: Vec<String>) -> Group {
        Group {
            kind,
            name: name.to_string(),
            method: method.map(str::to_string),
            split,
            other: false,
            summary: Summary::default(),
        }
    }

    #[inline]
    fn add(&mut self, record: &Record) {
        self.summary.add(record);
    }

    fn merge(&mut self, other: &Group) {
        self.summary.merge(&other.summary);
    }

    /// The records' kind.
    pub fn kind(&self) -> RecordKind {
        self.kind
    }

    /// The region name, or the request's route template (`<other>` for
    /// the group of folded records, see [`Group::is_other`]).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The HTTP method (requests).
    pub fn method(&self) -> Option<&str> {
        self.method.as_deref()
    }

    /// The values of the report's [`Split`]s, in their order (empty for the
    /// `<other>` group).
    pub fn split(&self) -> &[String] {
        &self.split
    }

    /// True for the group of the records folded beyond
    /// [`ReportBuilder::max_groups`].
    pub fn is_other(&self) -> bool {
        self.other
    }

    /// What the group's records say: counts, events, and per metric the
    /// total, sketch and moments.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// Records picked by the sampler (forced ones excluded), whatever
    /// their outcome.
    pub fn sampled(&self) -> u64 {
        self.summary.sampled()
    }

    /// Estimated events: the sum of the sampled records' weights.
    pub fn events(&self) -> u128 {
        self.summary.events()
    }

    /// Sampled records marked `cancelled`.
    pub fn cancelled(&self) -> u64 {
        self.summary.cancelled()
    }

    /// Sampled records with an `error`.
    pub fn errors(&self) -> u64 {
        self.summary.errors()
    }

    /// Forced records (weight 0), left out of every other count.
    pub fn forced(&self) -> u64 {
        self.summary.forced()
    }

    /// The statistics of `metric` over the group's completed sampled
    /// records (neither cancelled nor failed).
    pub fn stats(&self, metric: Metric) -> MetricStats {
        self.summary.stats(metric)
    }

    /// The sketch of `metric`'s values over the group's completed sampled
    /// records, weighted by their weights: to merge with others, or for
    /// other quantiles than p50 and p99.
    pub fn sketch(&self, metric: Metric) -> &Sketch {
        self.summary.sketch(metric)
    }

    /// `GET /users/{id}` for requests, the name otherwise.
    pub fn label(&self) -> String {
        match &self.method {
            Some(method) => format!("{method} {}", self.name),
            None => self.name.clone(),
        }
    }

    fn heap_bytes(&self) -> usize {
        self.name.capacity()
            + self.method.as_ref().map_or(0, String::capacity)
            + self.split.capacity() * std::mem::size_of::<String>()
            + self.split.iter().map(String::capacity).sum::<usize>()
            + self.summary.heap_bytes()
    }
}

/// Builds a [`Report`] with splits, label filters and a group cap.
#[derive(Clone, Debug)]
#[must_use]
pub struct ReportBuilder {
    max_groups: usize,
    splits: Vec<Split>,
    filters: LabelFilters,
}

impl ReportBuilder {
    /// At most `groups` groups ([`Report::DEFAULT_MAX_GROUPS`]); records
    /// of further groups are folded into one `<other>` group per kind.
    pub fn max_groups(mut self, groups: usize) -> Self {
        self.max_groups = groups;
        self
    }

    /// Splits groups further, by status class or by a label.
    pub fn split(mut self, split: Split) -> Self {
        self.splits.push(split);
        self
    }

    /// Keeps only records whose label `key` is `value` (every filter must
    /// match; status records are always kept). Others are counted in
    /// [`Report::filtered`]. `trace_id` and `span_id` match the records'
    /// fields of those names (`dynostats report --trace-id ID`).
    pub fn filter_label(mut self, key: &str, value: &str) -> Self {
        self.filters.push(key, value);
        self
    }

    /// The empty report.
    pub fn build(self) -> Report {
        Report {
            index: HashMap::with_hasher(KeyHash::new()),
            groups: Vec::new(),
            scratch: Vec::new(),
            max_groups: self.max_groups,
            splits: self.splits,
            filters: self.filters,
            records: 0,
            status_records: 0,
            profile_records: 0,
            filtered: 0,
            folded: 0,
            newer_versions: 0,
            drops: DropTally::default(),
            unavailable: BTreeMap::new(),
        }
    }
}

/// Records aggregated per kind, name and method: what `dynostats report`
/// prints.
///
/// # How records count
///
/// - **Sampled** records (picked by the sampler) stand for `weight` events
///   each: estimated totals are `sum(weight * value)`, the mean per event
///   is that total divided by the weights of the records that carry the
///   value.
/// - **Forced** records (`forced: true`, [`crate::Region::forced`]) were not
///   picked by the sampler and have weight 0. They are counted in their own
///   column and left out of every statistic, so forcing the measurement of
///   a few interesting (slow, large) regions does not move the quantiles.
/// - **Cancelled** records and records with an **error** are sampled like
///   the rest (their weight counts in the estimated events) and counted in
///   their own columns, but left out of the metric statistics, which
///   describe completed work: a request cancelled half-way cost less than
///   one that finished.
/// - A counter absent from a record was not measured: the record is counted
///   in that metric's `absent` column, never as 0.
/// - **Quantiles describe events**: each record's value counts with its
///   weight, so p50 and p99 are those of the events the records stand
///   for, even where weights differ within a group (files of processes
///   sampling at different rates, a rate change).
/// - **Status** records are not rows of the table. The drops they report
///   (queue full, after shutdown, per sink) are summed in [`Drops`] and
///   printed below the table.
///
/// # Example
///
/// ```
/// use dynostats::{report::Metric, Record, RecordKind, Report};
///
/// let mut report = Report::new();
/// for (cpu_ns, weight) in [(100, 10), (300, 10), (200, 1)] {
///     let mut r = Record::new(RecordKind::Region, "parse");
///     r.cpu_ns = Some(cpu_ns);
///     r.weight = weight;
///     report.add(&r);
/// }
/// let mut unmeasured = Record::new(RecordKind::Region, "parse");
/// unmeasured.weight = 10; // no cpu_ns: absent, not 0
/// report.add(&unmeasured);
///
/// let parse = report.groups().next().unwrap();
/// assert_eq!((parse.sampled(), parse.events()), (4, 31));
/// let cpu = parse.stats(Metric::CpuNs);
/// assert_eq!(cpu.total, 100 * 10 + 300 * 10 + 200);
/// assert_eq!(cpu.mean_per_event, Some(4200.0 / 21.0));
/// // Quantiles describe events: 100 stands for 10 of the 21 events.
/// assert_eq!((cpu.p50, cpu.p99, cpu.absent), (Some(200), Some(300), 1));
/// // No record carries instructions: the table leads with CPU time.
/// assert_eq!(report.headline(), Metric::CpuNs);
/// println!("{report}");
/// ```
#[derive(Clone, Debug)]
pub struct Report {
    /// Group key (see [`Report::key`]) to index in `groups`.
    index: HashMap<Box<[u8]>, usize, KeyHash>,
    groups: Vec<Group>,
    /// The key being looked up, reused.
    scratch: Vec<u8>,
    max_groups: usize,
    splits: Vec<Split>,
    filters: LabelFilters,
    records: u64,
    status_records: u64,
    profile_records: u64,
    filtered: u64,
    folded: u64,
    newer_versions: u64,
    drops: DropTally,
    unavailable: BTreeMap<String, String>,
}

impl Default for Report {
    fn default() -> Report {
        Report::new()
    }
}

/// A fast hash for group keys (a multiply-rotate over 8-byte words, like
/// rustc's FxHash), seeded per report from the standard library's random
/// state so that a file cannot be built to collide in every report.
#[derive(Clone, Debug)]
struct KeyHash(u64);

impl KeyHash {
    fn new() -> KeyHash {
        KeyHash(std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64))
    }
}

impl BuildHasher for KeyHash {
    type Hasher = KeyHasher;

    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(self.0)
    }
}

struct KeyHasher(u64);

impl KeyHasher {
    #[inline]
    fn word(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for KeyHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.word(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.word(u64::from_le_bytes(last));
        }
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.word(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // Mix the high bits down: hashbrown takes its control bits from
        // the top and its bucket from the bottom.
        self.0 ^ (self.0 >> 29)
    }
}

/// Appends one part of a group key, length first, so no two different
/// keys have the same bytes.
fn key_part(key: &mut Vec<u8>, part: &str) {
    key.extend_from_slice(&(part.len() as u32).to_le_bytes());
    key.extend_from_slice(part.as_bytes());
}

impl Report {
    /// Groups a report holds by default before folding further ones into
    /// `<other>`: 10,000. With the sketches' bounds this keeps a report of
    /// any input under a few hundred MB, and a realistic one (values over a
    /// few decades) under about 100 MB.
    pub const DEFAULT_MAX_GROUPS: usize = 10_000;

    /// An empty report with the defaults: no splits, no filters,
    /// [`Report::DEFAULT_MAX_GROUPS`].
    pub fn new() -> Report {
        Report::builder().build()
    }

    /// A builder for a report with splits, filters or another group cap.
    ///
    /// ```
    /// use dynostats::{Record, RecordKind, Report, report::Split};
    ///
    /// let mut report = Report::builder()
    ///     .split(Split::StatusClass)
    ///     .filter_label("build", "abc123")
    ///     .build();
    /// for (status, build) in [(200, "abc123"), (503, "abc123"), (200, "old")] {
    ///     let mut r = Record::new(RecordKind::Request, "/users/{id}");
    ///     r.method = Some("GET".into());
    ///     r.status = Some(status);
    ///     r.set_label("build", build);
    ///     report.add(&r);
    /// }
    /// let classes: Vec<_> = report.groups().map(|g| g.split()[0].clone()).collect();
    /// assert_eq!(classes, ["2xx", "5xx"]);
    /// assert_eq!(report.filtered(), 1);
    /// ```
    pub fn builder() -> ReportBuilder {
        ReportBuilder {
            max_groups: Report::DEFAULT_MAX_GROUPS,
            splits: Vec::new(),
            filters: LabelFilters::default(),
        }
    }

    /// Reads every record of `reader` into a new report: the report of
    /// every record read, and the damage met (skipped records per reason,
    /// newer versions, and what ended the stream early, if anything).
    ///
    /// ```
    /// use dynostats::{Record, RecordKind, Report};
    ///
    /// let mut bytes = Record::new(RecordKind::Region, "a").to_msgpack();
    /// bytes.extend_from_slice(&[0x81, 0xa4, b'k', b'i', b'n', b'd', 0x05]); // not a record
    /// bytes.extend(Record::new(RecordKind::Region, "b").to_msgpack());
    /// let (report, damage) = Report::from_reader(&bytes[..]);
    /// assert_eq!(report.groups().count(), 2);
    /// assert_eq!(damage.skipped_total(), 1);
    /// assert!(damage.to_string().contains("field `kind`"), "{damage}");
    /// ```
    pub fn from_reader(reader: impl Read) -> (Report, Damage) {
        let mut report = Report::new();
        let damage = report.read_from(reader);
        (report, damage)
    }

    /// Builds the group key of `record` into `self.scratch`.
    #[inline]
    fn key(&mut self, record: &Record) {
        let key = &mut self.scratch;
        key.clear();
        key.push(record.kind as u8);
        match &record.method {
            Some(method) if record.kind == RecordKind::Request => {
                key.push(1);
                key_part(key, method);
            }
            _ => key.push(0),
        }
        key_part(key, &record.name);
        for split in &self.splits {
            let mut buf = [0u8; 3];
            key_part(key, split.value(record, &mut buf));
        }
    }

    /// Adds one record.
    pub fn add(&mut self, record: &Record) {
        self.records += 1;
        if record.v > Record::SCHEMA_VERSION {
            self.newer_versions += 1;
        }
        if record.kind == RecordKind::Status {
            self.add_status(record);
            return;
        }
        if record.kind == RecordKind::Profile {
            // A call tree beside its region or request record, which holds
            // the costs: not a row of its own.
            self.profile_records += 1;
            return;
        }
        if !self.filters.matches(record) {
            self.filtered += 1;
            return;
        }
        self.key(record);
        if let Some(&i) = self.index.get(&self.scratch[..]) {
            self.groups[i].add(record);
            return;
        }
        let group = if self.groups.len() >= self.max_groups {
            self.folded += 1;
            // One `<other>` group per kind, keyed apart from any name.
            self.scratch.clear();
            self.scratch.extend_from_slice(&[record.kind as u8, 2]);
            if let Some(&i) = self.index.get(&self.scratch[..]) {
                self.groups[i].add(record);
                return;
            }
            let mut other = Group::new(record.kind, "<other>", None, Vec::new());
            other.other = true;
            other
        } else {
            let method = match &record.method {
                Some(m) if record.kind == RecordKind::Request => Some(m.as_ref()),
                _ => None,
            };
            let split = self
                .splits
                .iter()
                .map(|s| s.value(record, &mut [0u8; 3]).to_string())
                .collect();
            Group::new(record.kind, &record.name, method, split)
        };
        self.index
            .insert(self.scratch.clone().into_boxed_slice(), self.groups.len());
        self.groups.push(group);
        self.groups.last_mut().expect("just pushed").add(record);
    }

    /// Adds the summary of one group's records computed elsewhere (a
    /// database, which also applied the report's filters): the group of
    /// `kind`, `method` (requests), `name` and the values of the report's
    /// splits, or `<other>` beyond the group cap, as if its records had
    /// been added one by one. Counts nothing in [`Report::records`]: see
    /// [`Report::count_records`].
    #[cfg(feature = "clickhouse")]
    pub(crate) fn add_summary(
        &mut self,
        kind: RecordKind,
        method: Option<&str>,
        name: &str,
        split: &[String],
        summary: &Summary,
    ) {
        let key = &mut self.scratch;
        key.clear();
        key.push(kind as u8);
        match method {
            Some(method) if kind == RecordKind::Request => {
                key.push(1);
                key_part(key, method);
            }
            _ => key.push(0),
        }
        key_part(key, name);
        for value in split {
            key_part(key, value);
        }
        if let Some(&i) = self.index.get(&self.scratch[..]) {
            self.groups[i].summary.merge(summary);
            return;
        }
        let group = if self.groups.len() >= self.max_groups {
            self.folded += summary.sampled() + summary.forced();
            self.scratch.clear();
            self.scratch.extend_from_slice(&[kind as u8, 2]);
            if let Some(&i) = self.index.get(&self.scratch[..]) {
                self.groups[i].summary.merge(summary);
                return;
            }
            let mut other = Group::new(kind, "<other>", None, Vec::new());
            other.other = true;
            other
        } else {
            let method = method.filter(|_| kind == RecordKind::Request);
            Group::new(kind, name, method, split.to_vec())
        };
        self.index
            .insert(self.scratch.clone().into_boxed_slice(), self.groups.len());
        self.groups.push(group);
        self.groups
            .last_mut()
            .expect("just pushed")
            .summary
            .merge(summary);
    }

    /// Counts records read elsewhere (a database): `records` in all,
    /// `filtered` of them left out by the label filters, `profiles` and
    /// `status` of them profile and status records.
    #[cfg(feature = "clickhouse")]
    pub(crate) fn count_records(
        &mut self,
        records: u64,
        filtered: u64,
        profiles: u64,
        status: u64,
    ) {
        self.records += records;
        self.status_records += status;
        self.filtered += filtered;
        self.profile_records += profiles;
    }

    /// Takes in the drops that status records of process `pid` on `host`
    /// say (`detail`), read elsewhere (a database, whose status records
    /// [`Report::count_records`] counts): as the file reader takes in each
    /// status record's.
    #[cfg(feature = "clickhouse")]
    pub(crate) fn add_drops(&mut self, host: &str, pid: u32, detail: &crate::record::Detail) {
        self.drops.add((host.to_string(), pid), detail);
    }

    /// Takes in a counter that status records read elsewhere (a database)
    /// say was unavailable, and why: as the file reader keeps the first
    /// reason of at most 64 counters.
    #[cfg(feature = "clickhouse")]
    pub(crate) fn add_unavailable(&mut self, counter: &str, why: &str) {
        self.note_unavailable(counter, why);
    }

    /// Keeps `counter`'s first reason, for at most 64 counters.
    fn note_unavailable(&mut self, counter: &str, why: &str) {
        if self.unavailable.len() < 64 {
            self.unavailable
                .entry(
                    counter
                        .parse::<Counter>()
                        .map_or_else(|_| counter.to_string(), |c| c.name().to_string()),
                )
                .or_insert_with(|| why.to_string());
        }
    }

    fn add_status(&mut self, record: &Record) {
        self.status_records += 1;
        if let Some(detail) = &record.detail {
            let host = record.labels.get("host").unwrap_or_default();
            self.drops.add((host.to_string(), record.pid), detail);
            for (counter, state) in &detail.counters {
                if state != "ok" {
                    self.note_unavailable(counter, state);
                }
            }
        }
    }

    /// Adds every group and count of `other`, a report built with the same
    /// splits and filters (e.g. over other files, on another thread):
    /// afterwards `self` is the report of both inputs, up to the group cap.
    pub fn merge(&mut self, other: &Report) {
        self.records = self.records.saturating_add(other.records);
        self.status_records = self.status_records.saturating_add(other.status_records);
        self.profile_records = self.profile_records.saturating_add(other.profile_records);
        self.filtered = self.filtered.saturating_add(other.filtered);
        self.folded = self.folded.saturating_add(other.folded);
        self.newer_versions = self.newer_versions.saturating_add(other.newer_versions);
        self.drops.merge(&other.drops);
        for (k, v) in &other.unavailable {
            self.unavailable
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
        let mut keys: Vec<(&[u8], usize)> = other.index.iter().map(|(k, &i)| (&k[..], i)).collect();
        keys.sort_unstable_by_key(|&(_, i)| i);
        for (key, i) in keys {
            let theirs = &other.groups[i];
            if let Some(&mine) = self.index.get(key) {
                self.groups[mine].merge(theirs);
                continue;
            }
            if self.groups.len() >= self.max_groups && !theirs.other {
                self.folded = self
                    .folded
                    .saturating_add(theirs.sampled() + theirs.forced());
                let other_key = [theirs.kind as u8, 2];
                let at = match self.index.get(&other_key[..]) {
                    Some(&at) => at,
                    None => {
                        let mut g = Group::new(theirs.kind, "<other>", None, Vec::new());
                        g.other = true;
                        self.index.insert(Box::new(other_key), self.groups.len());
                        self.groups.push(g);
                        self.groups.len() - 1
                    }
                };
                self.groups[at].merge(theirs);
                continue;
            }
            self.index.insert(key.into(), self.groups.len());
            self.groups.push(theirs.clone());
        }
    }

    /// Records added, status records included.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Profile records read (call trees; they are not rows: their region or
    /// request record is).
    pub fn profile_records(&self) -> u64 {
        self.profile_records
    }

    /// Records left out by the label filters.
    pub fn filtered(&self) -> u64 {
        self.filtered
    }

    /// Records folded into an `<other>` group because the group cap was
    /// reached when their group first appeared.
    pub fn folded(&self) -> u64 {
        self.folded
    }

    /// The group cap ([`ReportBuilder::max_groups`]).
    pub fn max_groups(&self) -> usize {
        self.max_groups
    }

    /// Records of a newer schema version than [`Record::SCHEMA_VERSION`]
    /// (read for the fields this crate knows).
    pub fn newer_versions(&self) -> u64 {
        self.newer_versions
    }

    /// The splits of the report's groups, in order.
    pub fn splits(&self) -> &[Split] {
        &self.splits
    }

    /// The groups, ordered by kind, name, method and split values
    /// (`<other>` groups last in their kind).
    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        let mut sorted: Vec<&Group> = self.groups.iter().collect();
        sorted.sort_by(|a, b| {
            (a.kind.as_str(), a.other, &a.name, &a.method, &a.split).cmp(&(
                b.kind.as_str(),
                b.other,
                &b.name,
                &b.method,
                &b.split,
            ))
        });
        sorted.into_iter()
    }

    /// The group of `kind` and `name` (and `method`, for requests), in a
    /// report without splits.
    pub fn group(&self, kind: RecordKind, name: &str, method: Option<&str>) -> Option<&Group> {
        self.groups.iter().find(|g| {
            g.kind == kind
                && !g.other
                && g.name == name
                && (kind != RecordKind::Request || g.method.as_deref() == method)
        })
    }

    /// Records the writers dropped, from the status records (see
    /// [`Drops`]).
    pub fn drops(&self) -> Drops {
        self.drops.totals(self.status_records)
    }

    /// Counters the status records say were unavailable, with the first
    /// reason given (e.g. `instructions` → `"no hardware PMU: ...
    /// (ENOENT)"`).
    pub fn unavailable(&self) -> &BTreeMap<String, String> {
        &self.unavailable
    }

    /// The metric the table leads with by default: [`Metric::Instructions`]
    /// when any completed sampled record carries instructions, else
    /// [`Metric::CpuNs`] (machines without a hardware PMU).
    pub fn headline(&self) -> Metric {
        if self.carries(Metric::Instructions) {
            Metric::Instructions
        } else {
            Metric::CpuNs
        }
    }

    /// Whether any completed sampled record carries `metric`.
    pub fn carries(&self, metric: Metric) -> bool {
        self.groups
            .iter()
            .any(|g| g.summary.sketch(metric).count() > 0)
    }

    /// Bytes the report holds on the heap, by its own account: groups
    /// (names, sketches), the group index and its key buffer. Bounded by
    /// the number of groups, not of records.
    pub fn heap_bytes(&self) -> usize {
        let index_entry = std::mem::size_of::<(Box<[u8]>, usize)>() + 1;
        self.groups.capacity() * std::mem::size_of::<Group>()
            + self.groups.iter().map(Group::heap_bytes).sum::<usize>()
            + self.index.capacity() * index_entry
            + self.index.keys().map(|k| k.len()).sum::<usize>()
            + self.scratch.capacity()
    }

    /// A table of the report, to print ([`fmt::Display`]) or write as
    /// text, JSON or CSV, sorted by the headline's estimated total.
    pub fn table(&self) -> Table<'_> {
        Table::new(self)
    }
}

impl Summarize for Report {
    fn add(&mut self, record: &Record) {
        Report::add(self, record);
    }

    /// Labels cost allocations; only splits and filters look at them.
    fn needs_labels(&self) -> bool {
        !self.filters.is_empty() || self.splits.iter().any(|s| matches!(s, Split::Label(_)))
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.table(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::record::{Detail, SkipReason};
    use crate::report::table::SortBy;

    fn region(name: &str, weight: u64, instructions: Option<u64>) -> Record {
        let mut r = Record::new(RecordKind::Region, name);
        r.weight = weight;
        r.instructions = instructions;
        r
    }

    fn only_group(report: &Report) -> &Group {
        let groups: Vec<_> = report.groups().collect();
        assert_eq!(groups.len(), 1);
        groups[0]
    }

    #[test]
    fn totals_and_means_are_weighted() {
        let mut report = Report::new();
        for (weight, n) in [(100, 1_000), (100, 3_000), (1, 50_000)] {
            report.add(&region("r", weight, Some(n)));
        }
        let g = only_group(&report);
        assert_eq!((g.sampled(), g.events()), (3, 201));
        let s = g.stats(Metric::Instructions);
        assert_eq!(s.total, 100 * 1_000 + 100 * 3_000 + 50_000);
        assert_eq!(s.mean_per_event, Some(450_000.0 / 201.0));
        // Per event: the weight-1 record stands for 1 of 201 events.
        assert_eq!((s.p50, s.p99), (Some(3_000), Some(3_000)));
        assert!(s.exact);
    }

    #[test]
    fn absent_counters_are_counted_never_zero() {
        let mut report = Report::new();
        report.add(&region("r", 10, Some(500)));
        report.add(&region("r", 10, None));
        report.add(&region("r", 10, None));
        let s = only_group(&report).stats(Metric::Instructions);
        assert_eq!((s.samples, s.absent), (1, 2));
        assert_eq!(s.total, 5_000);
        // Were absent 0, the mean would be 5000 / 30 and the median 0.
        assert_eq!(s.mean_per_event, Some(500.0));
        assert_eq!(s.p50, Some(500));
        // Nothing carries cycles: no statistic at all.
        let cycles = only_group(&report).stats(Metric::Cycles);
        assert_eq!((cycles.samples, cycles.absent, cycles.total), (0, 3, 0));
        assert_eq!(
            (cycles.mean_per_event, cycles.p50, cycles.p99),
            (None, None, None)
        );
        assert_eq!(report.headline(), Metric::Instructions);
    }

    #[test]
    fn forced_records_are_counted_but_move_nothing() {
        let mut plain = Report::new();
        let mut with_forced = Report::new();
        for i in 1..=10 {
            plain.add(&region("r", 4, Some(i * 100)));
            with_forced.add(&region("r", 4, Some(i * 100)));
        }
        for _ in 0..5 {
            let mut forced = region("r", 0, Some(1_000_000_000));
            forced.forced = true;
            with_forced.add(&forced);
        }
        let (a, b) = (only_group(&plain), only_group(&with_forced));
        assert_eq!((b.forced(), b.sampled(), b.events()), (5, 10, 40));
        for metric in Metric::ALL {
            if metric != Metric::WallNs {
                assert_eq!(a.stats(metric), b.stats(metric), "{metric:?}");
            }
        }
        let s = b.stats(Metric::Instructions);
        assert_eq!((s.p50, s.p99, s.total), (Some(500), Some(1_000), 4 * 5_500));
    }

    #[test]
    fn cancelled_and_failed_records_are_counted_apart() {
        let mut report = Report::new();
        let mut ok = Record::new(RecordKind::Request, "/a");
        ok.method = Some("GET".into());
        ok.weight = 2;
        ok.cpu_ns = Some(1_000);
        report.add(&ok);
        let mut cancelled = ok.clone();
        cancelled.cancelled = true;
        cancelled.cpu_ns = Some(10);
        report.add(&cancelled);
        let mut failed = ok.clone();
        failed.error = Some("service_error".into());
        failed.cpu_ns = Some(20);
        report.add(&failed);
        let mut post = ok.clone();
        post.method = Some("POST".into());
        report.add(&post);

        let get = report
            .group(RecordKind::Request, "/a", Some("GET"))
            .unwrap();
        assert_eq!((get.sampled(), get.events()), (3, 6));
        assert_eq!((get.cancelled(), get.errors()), (1, 1));
        let cpu = get.stats(Metric::CpuNs);
        assert_eq!((cpu.samples, cpu.total, cpu.p99), (1, 2_000, Some(1_000)));
        let post = report
            .group(RecordKind::Request, "/a", Some("POST"))
            .unwrap();
        assert_eq!(post.sampled(), 1);
        assert_eq!(report.groups().count(), 2);
        // Only requests are split by method.
        let mut r = region("/a", 1, None);
        r.method = Some("GET".into());
        report.add(&r);
        report.add(&region("/a", 1, None));
        let a = report.group(RecordKind::Region, "/a", Some("GET")).unwrap();
        assert_eq!((a.sampled(), a.method()), (2, None));
    }

    #[test]
    fn rss_change_is_signed_and_needs_both_ends() {
        let mut report = Report::new();
        let mut grew = region("r", 1, None);
        grew.rss_start = Some(1 << 20);
        grew.rss_end = Some(3 << 20);
        let mut shrank = grew.clone();
        std::mem::swap(&mut shrank.rss_start, &mut shrank.rss_end);
        let mut half = grew.clone();
        half.rss_end = None;
        for r in [&grew, &shrank, &shrank, &half] {
            report.add(r);
        }
        let s = only_group(&report).stats(Metric::RssChange);
        assert_eq!((s.samples, s.absent), (3, 1));
        assert_eq!(s.total, -(2 << 20));
        assert_eq!((s.p50, s.p99), (Some(-(2 << 20)), Some(2 << 20)));
    }

    /// The naive definition: the smallest value with at least `q` of the
    /// weight at or below it.
    fn naive_quantile(values: &[(i128, u64)], q: f64) -> Option<i128> {
        let total: u64 = values.iter().map(|v| v.1).sum();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64 * q).ceil() as u64).max(1);
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        sorted
            .iter()
            .map(|v| v.0)
            .find(|&v| values.iter().filter(|x| x.0 <= v).map(|x| x.1).sum::<u64>() >= rank)
    }

    #[test]
    fn quantiles_match_the_naive_definition() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for n in (0..=130).chain([199, 200, 201, 1000]) {
            // Small ranges give many ties (exact); wide ones none (exact up
            // to Sketch::EXACT_MAX values, then within the error).
            let range = if n % 2 == 0 { 7 } else { 1_000_000 };
            let values: Vec<(i128, u64)> = (0..n)
                .map(|_| {
                    let v = (next() % range) as i128 - range as i128 / 2;
                    (v, 1 + next() % 5)
                })
                .collect();
            let mut report = Report::new();
            for &(v, w) in &values {
                let mut r = region("q", w, None);
                r.rss_start = Some(1 << 40);
                r.rss_end = Some(((1i128 << 40) + v) as u64);
                report.add(&r);
            }
            let stats = report
                .groups()
                .next()
                .map(|g| g.stats(Metric::RssChange))
                .unwrap_or_default();
            for (got, q) in [(stats.p50, 0.5), (stats.p99, 0.99)] {
                let expected = naive_quantile(&values, q);
                if n <= Sketch::EXACT_MAX || range == 7 {
                    assert_eq!(got, expected, "n {n} q {q}");
                } else {
                    let (got, expected) = (got.unwrap(), expected.unwrap());
                    let err = (got - expected).abs() as f64;
                    assert!(
                        err <= expected.abs() as f64 * Sketch::RELATIVE_ERROR,
                        "n {n} q {q}: {got} vs {expected}"
                    );
                }
            }
        }
    }

    fn status(pid: u32, queue_full: u64, sink_error: u64) -> Record {
        let mut r = Record::new(RecordKind::Status, "dynostats");
        r.weight = 0;
        r.pid = pid;
        let mut detail = Detail::default();
        detail
            .counters
            .insert("instructions".into(), "no hardware PMU (ENOENT)".into());
        detail.counters.insert("cpu_time".into(), "ok".into());
        detail
            .stats
            .insert("records_dropped_queue_full".into(), queue_full);
        detail.stats.insert("records_dropped_closed".into(), 0);
        detail.sinks.insert(
            "file:/x".into(),
            [("records_dropped_sink_error".to_string(), sink_error)].into(),
        );
        r.detail = Some(Box::new(detail));
        r
    }

    #[test]
    fn old_and_new_status_counter_names_are_one_counter() {
        let mut report = Report::new();
        for name in ["wall_time", "wall_ns"] {
            let mut r = status(9, 0, 0);
            let counters = &mut r.detail.as_mut().unwrap().counters;
            counters.insert(name.into(), format!("refused as {name}"));
            report.add(&r);
        }
        // The first reason is kept, under the record field's name.
        let unavailable = report.unavailable();
        assert_eq!(
            unavailable.get("wall_ns").map(String::as_str),
            Some("refused as wall_time")
        );
        assert!(!unavailable.contains_key("wall_time"));
    }

    #[test]
    fn profile_records_are_counted_and_not_rows() {
        let mut report = Report::new();
        report.add(&region("r", 1, None));
        report.add(&Record::new(RecordKind::Profile, "r"));
        assert_eq!(report.profile_records(), 1);
        assert_eq!(report.records(), 2);
        assert_eq!(report.groups().count(), 1);
        assert!(report.groups().all(|g| g.kind() != RecordKind::Profile));
    }

    #[test]
    fn status_records_give_drops_and_are_not_rows() {
        let mut report = Report::new();
        report.add(&region("r", 1, None));
        assert!(report.to_string().contains("no status records"));
        // Cumulative counts: the largest per process, in any order.
        for r in [
            status(7, 3, 0),
            status(7, 9, 2),
            status(7, 5, 1),
            status(8, 1, 0),
        ] {
            report.add(&r);
        }
        assert_eq!(report.groups().count(), 1);
        assert_eq!(report.records(), 5);
        let drops = report.drops();
        assert_eq!((drops.status_records, drops.queue_full), (4, 10));
        assert_eq!(drops.sinks["file:/x"].sink_error, 2);
        assert!(drops.any());
        let text = report.to_string();
        assert!(
            text.contains("WARNING: the writer dropped records"),
            "{text}"
        );
        assert!(text.contains("10 (queue full)"), "{text}");
        assert!(
            text.contains("sink file:/x lost 2 records: 0 (its backlog was full), 2 (on errors)"),
            "{text}"
        );
        assert!(
            text.contains("unavailable: instructions: no hardware PMU"),
            "{text}"
        );
        assert!(!text.contains("cpu_time:"), "{text}");
        assert!(!text.contains("cpu_ns:"), "{text}");

        let mut clean = Report::new();
        clean.add(&status(7, 0, 0));
        assert!(!clean.drops().any());
        assert!(clean.to_string().contains("no records dropped"));
    }

    #[test]
    fn the_table_labels_its_headline_and_sorts() {
        let mut report = Report::new();
        for (name, cpu, weight) in [
            ("small", 1_000, 1_000),
            ("big", 2_000_000, 1),
            ("mid", 50_000, 100),
        ] {
            let mut r = region(name, weight, None);
            r.cpu_ns = Some(cpu);
            report.add(&r);
        }
        let text = report.to_string();
        assert!(text.starts_with("headline: CPU time (cpu_ns): no record carries instructions"));
        let order = |text: &str| -> Vec<String> {
            text.lines()
                .filter(|l| l.starts_with("region"))
                .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
                .collect()
        };
        // Totals: small 1 ms, big 2 ms, mid 5 ms.
        assert_eq!(order(&text), ["mid", "big", "small"]);
        let by_p50 = report.table().sort(SortBy::P50).to_string();
        assert_eq!(order(&by_p50), ["big", "mid", "small"]);
        let by_name = report.table().sort(SortBy::Name).to_string();
        assert_eq!(order(&by_name), ["big", "mid", "small"]);
        let mid = text.lines().find(|l| l.starts_with("region  mid")).unwrap();
        let cells: Vec<&str> = mid
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        // sampled, events, total, /event, p50 (cancelled, errors and
        // forced are 0 in every row: not shown).
        assert_eq!(&cells[2..7], ["1", "100", "5.00 ms", "50.0 µs", "50.0 µs"]);
        assert!(
            report
                .table()
                .kind(Some(RecordKind::Request))
                .to_string()
                .contains("(no records)")
        );

        report.add(&region("instr", 1, Some(12_345_678)));
        let text = report.to_string();
        assert!(text.starts_with("headline: instructions"), "{text}");
        assert!(text.contains("12.3M"), "{text}");
    }

    #[test]
    fn damage_costs_one_record_and_framing_damage_ends_the_stream() {
        let mut bytes = Vec::new();
        for i in 0..3 {
            bytes.extend(region("r", 1, Some(i)).to_msgpack());
        }
        let good = bytes.len() as u64;
        // A well-formed map that is not a record: skipped, counted.
        bytes.extend_from_slice(&[0x81, 0xa4, b'n', b'a', b'm', b'e', 0x05]);
        bytes.extend(region("r", 1, Some(9)).to_msgpack());
        let whole = bytes.len();
        bytes.extend_from_slice(&region("r", 1, Some(9)).to_msgpack()[..5]);

        let mut report = Report::new();
        let damage = report.read_from(&bytes[..]);
        assert_eq!(damage.records, 4);
        assert_eq!(
            damage.skipped[&SkipReason::BadType { field: "name" }],
            1,
            "{damage}"
        );
        assert_eq!(damage.first_skip.as_ref().unwrap().offset, good);
        assert!(matches!(damage.cut, Some(Error::Truncated { offset }) if offset == whole as u64));
        assert!(damage.framing() && !damage.is_clean());
        assert_eq!(only_group(&report).sampled(), 4);
        let text = damage.to_string();
        assert!(text.contains(&format!("byte offset {good}")), "{text}");

        let (clean, damage) = Report::from_reader(&bytes[..whole]);
        assert_eq!(clean.records(), 4);
        assert!(damage.cut.is_none());
        assert_eq!(damage.skipped_total(), 1);
    }

    #[test]
    fn merging_reports_is_reading_both() {
        let mut a = Report::new();
        let mut b = Report::new();
        let mut both = Report::new();
        for i in 0..300u64 {
            let r = region(if i % 3 == 0 { "x" } else { "y" }, 1 + i % 7, Some(i * 977));
            both.add(&r);
            if i % 2 == 0 { a.add(&r) } else { b.add(&r) }
        }
        a.merge(&b);
        assert_eq!(a.records(), both.records());
        for (g, h) in a.groups().zip(both.groups()) {
            assert_eq!(
                (g.name(), g.sampled(), g.events()),
                (h.name(), h.sampled(), h.events())
            );
            assert_eq!(g.stats(Metric::Instructions), h.stats(Metric::Instructions));
            assert_eq!(
                g.sketch(Metric::Instructions),
                h.sketch(Metric::Instructions)
            );
        }
    }

    #[test]
    fn groups_beyond_the_cap_fold_into_other() {
        let mut report = Report::builder().max_groups(3).build();
        for i in 0..10u64 {
            report.add(&region(&format!("r{i}"), 2, Some(i)));
        }
        report.add(&region("r0", 2, Some(0)));
        let names: Vec<&str> = report.groups().map(Group::name).collect();
        assert_eq!(names, ["r0", "r1", "r2", "<other>"]);
        assert_eq!(report.folded(), 7);
        let other = report.groups().last().unwrap();
        assert!(other.is_other());
        assert_eq!((other.sampled(), other.events()), (7, 14));
        assert!(
            report
                .to_string()
                .contains("7 records of groups beyond the first 3")
        );
    }

    #[test]
    fn values_beyond_i64_stay_exact_and_totals_saturate_visibly() {
        let mut report = Report::new();
        report.add(&region("r", 1, Some(u64::MAX)));
        let s = only_group(&report).stats(Metric::Instructions);
        assert_eq!(
            (s.total, s.p50),
            (i128::from(u64::MAX), Some(i128::from(u64::MAX)))
        );
        assert!(!s.saturated);
        for _ in 0..3 {
            report.add(&region("r", u64::MAX, Some(u64::MAX)));
        }
        let s = only_group(&report).stats(Metric::Instructions);
        assert!(s.saturated);
        assert_eq!(s.total, i128::MAX);
        assert!(report.to_string().contains(">="), "{report}");
    }
}
