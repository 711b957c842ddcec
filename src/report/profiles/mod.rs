//! Call trees of many `profile` records summed per timer: per scope name
//! (recursion counted once), per (caller, callee) edge and per full path,
//! each amount multiplied by the record's weight. What `dynostats top` and
//! `dynostats flamegraph` read ([`Profiles`]).

mod calls;
mod flame;
mod folded;
mod pprof;
mod top;

pub(crate) use calls::Scratch;
pub use calls::{CallEdge, Calls, Function};
pub use flame::{FlameDiff, FlameLabels, Verdict};
pub use pprof::Pprof;
pub use top::{TopSort, TopTable};

use std::collections::HashMap;
use std::fmt::Write;

use super::Summarize;
use super::filter::LabelFilters;
use super::metric::Metric;
use super::output::escape_name;
use crate::profile::Timer;
use crate::record::{IdText, Record, RecordKind};

/// The call trees of many `profile` records, summed, in memory bounded by
/// the number of distinct scope names, edges and paths (each capped:
/// beyond [`ProfilesBuilder::max_paths`], further ones are folded into
/// `<other>` and counted), not by the number of records.
///
/// Amounts of different timers are never added: each timer has its own
/// [`Calls`]; [`Profiles::calls`] picks one.
///
/// ```
/// use dynostats::record::{Detail, ProfileNode};
/// use dynostats::report::profiles::Profiles;
/// use dynostats::{Record, RecordKind};
///
/// let node = |name: &str, parent: Option<u32>, inclusive, exclusive| {
///     let mut n = ProfileNode::default();
///     n.name = name.into();
///     n.parent = parent;
///     n.calls = 1;
///     n.inclusive = inclusive;
///     n.exclusive = exclusive;
///     n
/// };
/// let mut record = Record::new(RecordKind::Profile, "/checkout");
/// record.weight = 10;
/// let mut detail = Detail::default();
/// detail.timer = Some("instructions".into());
/// detail.nodes = vec![node("/checkout", None, 100, 10), node("price", Some(0), 90, 60), node("tax", Some(1), 30, 30)];
/// record.detail = Some(Box::new(detail));
///
/// let mut profiles = Profiles::new();
/// profiles.add(&record);
/// let calls = profiles.calls(None).unwrap();
/// assert_eq!(calls.total(), 1000);
/// let price = calls.function("price").unwrap();
/// assert_eq!((price.inclusive, price.exclusive, price.calls), (900, 600, 10));
/// assert_eq!(calls.folded(), "/checkout 100\n/checkout;price 600\n/checkout;price;tax 300\n");
/// ```
#[derive(Debug)]
pub struct Profiles {
    filters: LabelFilters,
    pub(crate) endpoint: Option<String>,
    max_paths: usize,
    records: u64,
    profile_records: u64,
    filtered: u64,
    malformed: u64,
    newer_versions: u64,
    fallback: Option<(String, String)>,
    timers: Vec<Calls>,
    scratch: Scratch,
    labels: LabelSets,
}

/// The record labels a [`Profiles`] sums its paths by
/// ([`ProfilesBuilder::sample_label`]): the keys, and every distinct
/// tuple of their values met, interned (id 0 is every value `<other>`,
/// where sets beyond the cap go).
#[derive(Debug, Default)]
struct LabelSets {
    keys: Vec<String>,
    sets: Vec<Vec<Option<String>>>,
    index: HashMap<Box<str>, u32>,
    key: String,
    folded: u64,
}

impl LabelSets {
    /// The id of `record`'s values of the keys; `None` without keys.
    fn id(&mut self, record: &Record, max: usize) -> Option<u32> {
        if self.keys.is_empty() {
            return None;
        }
        self.with_other();
        // One reused byte key per record: each value length-prefixed, so
        // no value can pass for another.
        self.key.clear();
        let mut digits = IdText::default();
        for k in &self.keys {
            let v = record.label_or_field(k, &mut digits);
            LabelSets::push_key(&mut self.key, v);
        }
        Some(self.intern(max, 1, |keys| {
            keys.iter()
                .map(|k| record.label_or_field(k, &mut digits).map(str::to_string))
                .collect()
        }))
    }

    /// The id of a tuple of values (one per key) met elsewhere (a
    /// database), standing for `records` records: as [`LabelSets::id`]
    /// interns a record's.
    #[cfg(feature = "clickhouse")]
    fn id_of(&mut self, values: &[Option<String>], records: u64, max: usize) -> u32 {
        self.with_other();
        self.key.clear();
        for v in values {
            LabelSets::push_key(&mut self.key, v.as_deref());
        }
        self.intern(max, records, |_| values.to_vec())
    }

    /// Makes the set of `<other>` values, id 0, if need be.
    fn with_other(&mut self) {
        if self.sets.is_empty() {
            self.sets
                .push(vec![Some(Profiles::OTHER.to_string()); self.keys.len()]);
        }
    }

    /// Appends a value (`None`: no such label) to a key of values.
    fn push_key(key: &mut String, v: Option<&str>) {
        match v {
            Some(v) => {
                // Into the reused key: no allocation per record.
                let _ = write!(key, "{}:", v.len());
                key.push_str(v);
            }
            None => key.push('-'),
        }
    }

    /// The id of the values whose key is `self.key`, made from `values`
    /// while fewer than `max` sets are known; beyond, the `<other>` set
    /// (id 0), and its `records` counted as folded.
    fn intern(
        &mut self,
        max: usize,
        records: u64,
        values: impl FnOnce(&[String]) -> Vec<Option<String>>,
    ) -> u32 {
        if let Some(&id) = self.index.get(self.key.as_str()) {
            return id;
        }
        if self.sets.len() > max {
            self.folded += records;
            return 0;
        }
        let id = self.sets.len() as u32;
        let values = values(&self.keys);
        self.sets.push(values);
        self.index.insert(self.key.as_str().into(), id);
        id
    }

    /// The keys, in the order given.
    fn keys(&self) -> &[String] {
        &self.keys
    }

    /// The values of set `id`, one per key (`None`: the record had no
    /// such label).
    fn values(&self, id: u32) -> &[Option<String>] {
        &self.sets[id as usize]
    }
}

/// Builds a [`Profiles`] ([`Profiles::builder`]).
#[derive(Debug)]
#[must_use]
pub struct ProfilesBuilder {
    filters: LabelFilters,
    pub(crate) endpoint: Option<String>,
    max_paths: usize,
    sample_labels: Vec<String>,
}

impl ProfilesBuilder {
    /// Keeps only records whose label `key` is `value` (all filters must
    /// match); `trace_id` and `span_id` match the records' fields of those
    /// names.
    pub fn filter_label(mut self, key: &str, value: &str) -> Self {
        self.filters.push(key, value);
        self
    }

    /// Keeps only the call trees of this endpoint or region (the record's
    /// name, the root of its tree).
    pub fn endpoint(mut self, name: &str) -> Self {
        self.endpoint = Some(name.to_string());
        self
    }

    /// At most `n` distinct scope names, edges and paths each, per timer
    /// ([`Profiles::DEFAULT_MAX_PATHS`]); beyond, further names and paths
    /// are counted under [`Profiles::OTHER`] (so shares still add up) and
    /// further edges are left out of callers and callees, all counted
    /// ([`Calls::folded_beyond_cap`]).
    pub fn max_paths(mut self, n: usize) -> Self {
        self.max_paths = n.max(1);
        self
    }

    /// Also sums every path per value of the record label `key`
    /// (repeatable; a key given twice counts once), for outputs whose
    /// samples carry labels ([`Pprof`]: `dynostats pprof --label-key`).
    /// `trace_id` and `span_id` are the records' fields of those names
    /// (one value per traced request: a sample per path and request, so
    /// mind the cap below).
    /// Distinct tuples of values beyond [`ProfilesBuilder::max_paths`],
    /// and (path, values) pairs beyond it, are summed under `<other>`
    /// values, counted ([`Profiles::label_sets_beyond_cap`],
    /// [`Calls::folded_beyond_cap`]). The top table and folded stacks do
    /// not change.
    pub fn sample_label(mut self, key: &str) -> Self {
        if !self.sample_labels.iter().any(|k| k == key) {
            self.sample_labels.push(key.to_string());
        }
        self
    }

    /// The empty [`Profiles`].
    pub fn build(self) -> Profiles {
        Profiles {
            filters: self.filters,
            endpoint: self.endpoint,
            max_paths: self.max_paths,
            records: 0,
            profile_records: 0,
            filtered: 0,
            malformed: 0,
            newer_versions: 0,
            fallback: None,
            timers: Vec::new(),
            scratch: Scratch::default(),
            labels: LabelSets {
                keys: self.sample_labels,
                ..LabelSets::default()
            },
        }
    }
}

impl Default for Profiles {
    fn default() -> Self {
        Profiles::new()
    }
}

impl Profiles {
    /// Default cap on distinct names, edges and paths per timer.
    pub const DEFAULT_MAX_PATHS: usize = 100_000;

    /// The name under which scopes beyond the caps are counted.
    pub const OTHER: &'static str = "<other>";

    /// Empty, without filters.
    pub fn new() -> Profiles {
        Profiles::builder().build()
    }

    /// A builder for filters and caps.
    pub fn builder() -> ProfilesBuilder {
        ProfilesBuilder {
            filters: LabelFilters::default(),
            endpoint: None,
            max_paths: Profiles::DEFAULT_MAX_PATHS,
            sample_labels: Vec::new(),
        }
    }

    /// Adds one record: a `profile` record's call tree, weighted by its
    /// `weight`; other kinds are only counted.
    pub fn add(&mut self, record: &Record) {
        self.records += 1;
        if record.v > Record::SCHEMA_VERSION {
            self.newer_versions += 1;
        }
        if record.kind != RecordKind::Profile {
            return;
        }
        self.profile_records += 1;
        if !self.filters.matches(record)
            || self.endpoint.as_ref().is_some_and(|e| *e != record.name)
        {
            self.filtered += 1;
            return;
        }
        let Some(detail) = &record.detail else {
            self.malformed += 1;
            return;
        };
        let nodes = &detail.nodes;
        let Some(timer) = detail.timer.as_deref() else {
            self.malformed += 1;
            return;
        };
        // Parents come first, the root alone has none: anything else is a
        // damaged tree, left out whole rather than guessed at.
        if nodes.is_empty()
            || nodes[0].parent.is_some()
            || nodes
                .iter()
                .enumerate()
                .skip(1)
                .any(|(i, n)| n.parent.is_none_or(|p| p as usize >= i))
        {
            self.malformed += 1;
            return;
        }
        if let (None, Some(requested), Some(why)) = (
            &self.fallback,
            &detail.timer_requested,
            &detail.timer_fallback,
        ) {
            self.fallback = Some((requested.clone(), why.clone()));
        }
        let at = self.timer_at(timer);
        let overhead = detail.overhead.unwrap_or(0);
        let label_set = self.labels.id(record, self.max_paths);
        self.timers[at].add(
            record.weight,
            record.ts,
            overhead,
            nodes,
            label_set,
            self.max_paths,
            &mut self.scratch,
        );
    }

    /// The index in `timers` of `timer`'s call trees, made if need be.
    fn timer_at(&mut self, timer: &str) -> usize {
        match self.timers.iter().position(|c| c.timer == timer) {
            Some(at) => at,
            None => {
                self.timers.push(Calls::new(timer));
                self.timers.len() - 1
            }
        }
    }

    /// The summed call trees of `timer`, made if need be, with the
    /// scratch and cap their sums need: for a source that sums call
    /// trees by itself (a database), which feeds them with
    /// [`Calls::add_summed_totals`] and [`Calls::add_summed_path`].
    #[cfg(feature = "clickhouse")]
    pub(crate) fn summed_timer(&mut self, timer: &str) -> (&mut Calls, &mut Scratch, usize) {
        let at = self.timer_at(timer);
        (&mut self.timers[at], &mut self.scratch, self.max_paths)
    }

    /// The keys of the sample labels ([`ProfilesBuilder::sample_label`]),
    /// in the order given.
    #[cfg(feature = "clickhouse")]
    pub(crate) fn sample_label_keys(&self) -> &[String] {
        self.labels.keys()
    }

    /// The id of a tuple of sample label values (one per key, `None`: no
    /// such label) summed elsewhere (a database) over `records` profile
    /// records, for [`Calls::add_summed_path`]; `None` values for every
    /// key beyond the cap are the `<other>` set. Tuples are interned as
    /// [`Profiles::add`] interns records' (the first `max_paths`, then
    /// `<other>`, the records counted in [`Profiles::label_sets_beyond_cap`]),
    /// so a source hands them over in the order it met them.
    #[cfg(feature = "clickhouse")]
    pub(crate) fn summed_label_set(
        &mut self,
        values: Option<&[Option<String>]>,
        records: u64,
    ) -> u32 {
        match values {
            Some(values) => self.labels.id_of(values, records, self.max_paths),
            None => {
                self.labels.with_other();
                self.labels.folded += records;
                0
            }
        }
    }

    /// Counts records read elsewhere (a database, which also applied the
    /// filters): `records` of every kind, `profiles` of them profile
    /// records, `filtered` of those left out, `malformed` without a timer.
    #[cfg(feature = "clickhouse")]
    pub(crate) fn count_records(
        &mut self,
        records: u64,
        profiles: u64,
        filtered: u64,
        malformed: u64,
    ) {
        self.records += records;
        self.profile_records += profiles;
        self.filtered += filtered;
        self.malformed += malformed;
    }

    /// The amounts of the timer that measures `metric`; `None` for the
    /// default: instructions where any record has them, else CPU time,
    /// else the timer of the most records. `None` when there is none.
    pub fn calls(&self, metric: Option<Metric>) -> Option<&Calls> {
        let find = |m: Metric| {
            self.timers
                .iter()
                .find(|c| c.timer == Timer::from(m).name())
        };
        match metric {
            Some(m) => find(m),
            None => find(Metric::Instructions)
                .or_else(|| find(Metric::CpuNs))
                .or_else(|| self.timers.iter().max_by_key(|c| c.records)),
        }
    }

    /// What to say about the timer of `calls` when it is not instructions
    /// (every output says so): e.g. "amounts are CPU time (cpu_ns), not
    /// instructions: no profile record carries instructions (the profiler
    /// fell back from instructions: no hardware PMU ...)".
    pub fn timer_note(&self, calls: &Calls) -> Option<String> {
        if calls.timer() == "instructions" {
            return None;
        }
        let mut note = format!(
            "amounts are {}, not instructions",
            flame::timer_words(calls)
        );
        if self.calls(Some(Metric::Instructions)).is_none() {
            note.push_str(": no profile record carries instructions");
            if let Some((requested, why)) = self.fallback() {
                note.push_str(&format!(
                    " (the profiler fell back from {requested}: {})",
                    escape_name(why)
                ));
            }
        }
        Some(note)
    }

    /// The top table ([`Calls::top`]) of the timer that measures `metric`
    /// (`None`: the default of [`Profiles::calls`]), with the
    /// [`timer note`](Profiles::timer_note); `None` without such records.
    pub fn top(&self, metric: Option<Metric>) -> Option<TopTable<'_>> {
        let calls = self.calls(metric)?;
        Some(calls.top().note(self.timer_note(calls)))
    }

    /// Every timer met, in the order first met.
    pub fn timers(&self) -> impl Iterator<Item = &Calls> {
        self.timers.iter()
    }

    /// Records added, of every kind.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// `profile` records added (filtered and malformed ones included).
    pub fn profile_records(&self) -> u64 {
        self.profile_records
    }

    /// `profile` records left out by the label or endpoint filters.
    pub fn filtered(&self) -> u64 {
        self.filtered
    }

    /// `profile` records left out because their tree is damaged (no timer,
    /// no nodes, or a parent that is not an earlier node).
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    /// Records whose values of the sample labels
    /// ([`ProfilesBuilder::sample_label`]) were a new tuple beyond the cap,
    /// summed under `<other>` values.
    pub fn label_sets_beyond_cap(&self) -> u64 {
        self.labels.folded
    }

    /// Records of a newer schema version, read for the fields this reader
    /// knows.
    pub fn newer_versions(&self) -> u64 {
        self.newer_versions
    }

    /// The first timer fallback met: the timer that was requested and why
    /// it could not be read (e.g. no hardware PMU), from
    /// `detail.timer_requested` and `detail.timer_fallback`.
    pub fn fallback(&self) -> Option<(&str, &str)> {
        self.fallback
            .as_ref()
            .map(|(t, why)| (t.as_str(), why.as_str()))
    }
}

impl Summarize for Profiles {
    fn add(&mut self, record: &Record) {
        Profiles::add(self, record);
    }

    fn needs_labels(&self) -> bool {
        !self.filters.is_empty() || !self.labels.keys.is_empty()
    }
}
