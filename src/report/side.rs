//! Per-group moments of records: one side of a comparison ([`Side`]) or
//! one window of a time series. What `compare` and `timeseries` share:
//! the groups (endpoints, regions, profiled functions) with their weighted
//! [`Moments`] of each compared metric, and the settings of a test of
//! costs.

use std::collections::HashMap;

use super::Summarize;
use super::filter::LabelFilters;
use super::metric::Metric;
use super::stats::Moments;
use super::summary::Summary;
use crate::profile::view::scope_amounts;
use crate::record::{Record, RecordKind};

/// The metrics a comparison keeps moments of, in this order.
pub const COMPARED: [Metric; 4] = [
    Metric::Instructions,
    Metric::Cycles,
    Metric::CpuNs,
    Metric::WallNs,
];

pub(super) fn slot(metric: Metric) -> Option<usize> {
    COMPARED.iter().position(|&m| m == metric)
}

/// What a row of a comparison stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum RowKind {
    /// Request records of one method and route.
    Endpoint,
    /// Region records of one name.
    Region,
    /// A profiler scope, from profile records: its inclusive amount
    /// (recursion counted once) per profiled record that entered it, in
    /// the profile's timer unit.
    Function,
}

impl RowKind {
    /// `endpoint`, `region` or `function`.
    pub fn as_str(self) -> &'static str {
        match self {
            RowKind::Endpoint => "endpoint",
            RowKind::Region => "region",
            RowKind::Function => "function",
        }
    }
}

/// Groups of records with their moments: one side of a comparison, or one
/// window of a time series.
#[derive(Clone, Debug, Default)]
pub(super) struct Groups {
    /// Key bytes (kind, method, name) to index in `rows`.
    index: HashMap<Box<[u8]>, usize>,
    pub(super) rows: Vec<(RowKey, Summary)>,
    scratch: Vec<u8>,
    /// The row of the last record: records of one group often come in
    /// runs (a file of one endpoint's load test, a profile's functions).
    last: Option<usize>,
    /// Records (and profiled scopes) of groups beyond the cap, counted in
    /// their kind's `<other>` row.
    pub(super) folded: u64,
}

/// Kind, method (endpoints) and name of a row.
pub(super) type RowKey = (RowKind, Option<String>, String);

fn key_bytes(key: &mut Vec<u8>, kind: RowKind, method: Option<&str>, name: &str) {
    key.clear();
    key.push(kind as u8);
    for part in [method.unwrap_or(""), name] {
        key.extend_from_slice(&(part.len() as u32).to_le_bytes());
        key.extend_from_slice(part.as_bytes());
    }
    key.push(u8::from(method.is_some()));
}

impl Groups {
    /// The row of a group, made if need be; beyond [`Side::MAX_GROUPS`]
    /// the `<other>` row of the group's kind, with `true`.
    #[inline]
    fn row(&mut self, kind: RowKind, method: Option<&str>, name: &str) -> (&mut Summary, bool) {
        if let Some(i) = self.last {
            let (k, m, n) = &self.rows[i].0;
            if *k == kind && m.as_deref() == method && n == name {
                return (&mut self.rows[i].1, false);
            }
        }
        key_bytes(&mut self.scratch, kind, method, name);
        if let Some(&i) = self.index.get(&self.scratch[..]) {
            self.last = Some(i);
            return (&mut self.rows[i].1, false);
        }
        let folded = self.rows.len() >= Side::MAX_GROUPS;
        let (method, name) = if folded {
            // One `<other>` row per kind, keyed apart from any group (no
            // method), made beyond the cap.
            key_bytes(&mut self.scratch, kind, None, Side::OTHER);
            if let Some(&i) = self.index.get(&self.scratch[..]) {
                return (&mut self.rows[i].1, true);
            }
            (None, Side::OTHER)
        } else {
            (method, name)
        };
        self.index
            .insert(self.scratch.clone().into_boxed_slice(), self.rows.len());
        self.last = (!folded).then_some(self.rows.len());
        self.rows.push((
            (kind, method.map(str::to_string), name.to_string()),
            // Comparisons and alerts test moments: no sketches to fill.
            Summary::without_quantiles(),
        ));
        let row = &mut self.rows.last_mut().expect("just pushed").1;
        (row, folded)
    }

    /// The row of `key`, if any.
    pub(super) fn get(&self, key: &RowKey) -> Option<&Summary> {
        let mut bytes = Vec::new();
        key_bytes(&mut bytes, key.0, key.1.as_deref(), &key.2);
        self.index.get(&bytes[..]).map(|&i| &self.rows[i].1)
    }

    /// Adds a region or request record (others are ignored).
    pub(super) fn add(&mut self, record: &Record) {
        let kind = match record.kind {
            RecordKind::Request => RowKind::Endpoint,
            RecordKind::Region => RowKind::Region,
            RecordKind::Profile => return self.add_profile(record),
            _ => return,
        };
        if record.forced {
            return;
        }
        let method = match kind {
            RowKind::Endpoint => record.method.as_deref(),
            _ => None,
        };
        let (row, folded) = self.row(kind, method, &record.name);
        row.add(record);
        self.folded += u64::from(folded);
    }

    fn add_profile(&mut self, record: &Record) {
        if record.forced || record.cancelled || record.error.is_some() {
            return;
        }
        let Some(detail) = &record.detail else { return };
        let Some(metric) = detail
            .timer
            .as_deref()
            .and_then(Metric::of_timer)
            .filter(|&m| slot(m).is_some())
        else {
            return;
        };
        // Per name: the inclusive amount, recursion counted once.
        let nodes = &detail.nodes;
        for (first, amount) in scope_amounts(nodes) {
            let (row, folded) = self.row(RowKind::Function, None, &nodes[first].name);
            row.add_amount(metric, i128::from(amount), record.weight);
            self.folded += u64::from(folded);
        }
    }

    /// Adds a group's summary computed elsewhere (a database): as if its
    /// records had been added one by one.
    #[cfg(feature = "clickhouse")]
    pub(crate) fn add_summary(
        &mut self,
        kind: RowKind,
        method: Option<&str>,
        name: &str,
        summary: &Summary,
    ) {
        let (row, folded) = self.row(kind, method, name);
        row.merge(summary);
        if folded {
            self.folded += summary.sampled();
        }
    }

    pub(super) fn merge(&mut self, other: &Groups) {
        self.folded += other.folded;
        for ((kind, method, name), row) in &other.rows {
            let (mine, folded) = self.row(*kind, method.as_deref(), name);
            mine.merge(row);
            if folded && !(method.is_none() && name == Side::OTHER) {
                self.folded += row.sampled();
            }
        }
    }

    /// Moments of every endpoint (or, without requests, every region)
    /// together: the raw cost per request.
    pub(super) fn pooled(&self, kind: RowKind, at: usize) -> Moments {
        let mut pooled = Moments::default();
        for ((k, _, _), row) in &self.rows {
            if *k == kind {
                pooled.merge(row.moments(COMPARED[at]));
            }
        }
        pooled
    }

    /// Whether any row carries `metric`.
    pub(super) fn carries(&self, at: usize) -> bool {
        self.rows
            .iter()
            .any(|((k, _, _), r)| *k != RowKind::Function && r.moments(COMPARED[at]).count() > 0)
    }
}

/// The label of a row: `GET /users/{id}` for endpoints, the name otherwise.
pub(super) fn row_label(method: Option<&str>, name: &str) -> String {
    match method {
        Some(m) => format!("{m} {name}"),
        None => name.to_string(),
    }
}

/// Builds a [`Side`] ([`Side::builder`]).
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct SideBuilder {
    filters: LabelFilters,
}

impl SideBuilder {
    /// Keeps only records whose label `key` is `value` (every filter must
    /// match); the others are counted in [`Side::filtered`].
    pub fn filter_label(mut self, key: &str, value: &str) -> Self {
        self.filters.push(key, value);
        self
    }

    /// The empty side.
    pub fn build(self) -> Side {
        Side {
            filters: self.filters,
            ..Side::default()
        }
    }
}

/// One side of a comparison: records read into per-group moments, with
/// label filters.
///
/// ```
/// use dynostats::report::compare::Side;
/// use dynostats::{Record, RecordKind};
///
/// let mut side = Side::builder().filter_label("build", "b2").build();
/// let mut r = Record::new(RecordKind::Region, "parse");
/// r.set_label("build", "b2");
/// r.cpu_ns = Some(1000);
/// side.add(&r);
/// r.set_label("build", "b1");
/// side.add(&r);
/// assert_eq!((side.records(), side.filtered()), (2, 1));
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct Side {
    pub(super) groups: Groups,
    pub(super) filters: LabelFilters,
    pub(super) records: u64,
    pub(super) filtered: u64,
}

impl Side {
    /// Groups a side holds; records of further groups are compared
    /// together in one `<other>` row per kind ([`Side::OTHER`]), and
    /// counted ([`Side::folded`]), so a regression beyond the cap still
    /// reaches the gate.
    pub const MAX_GROUPS: usize = 10_000;

    /// The name of the row of each kind that holds the groups beyond
    /// [`Side::MAX_GROUPS`].
    pub const OTHER: &'static str = "<other>";

    /// An empty side, without filters.
    pub fn new() -> Side {
        Side::default()
    }

    /// A builder for filters.
    pub fn builder() -> SideBuilder {
        SideBuilder::default()
    }

    /// Adds one record.
    pub fn add(&mut self, record: &Record) {
        self.records += 1;
        if !self.filters.matches(record) {
            self.filtered += 1;
            return;
        }
        self.groups.add(record);
    }

    /// Adds every record of `other` (a side with the same filters, e.g.
    /// read on another thread).
    pub fn merge(&mut self, other: &Side) {
        self.records += other.records;
        self.filtered += other.filtered;
        self.groups.merge(&other.groups);
    }

    /// Records added.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Adds a group's summary computed elsewhere (a database, which also
    /// applied the filters), as if its records had been added.
    #[cfg(feature = "clickhouse")]
    pub(crate) fn add_summary(
        &mut self,
        kind: RowKind,
        method: Option<&str>,
        name: &str,
        summary: &Summary,
    ) {
        self.groups.add_summary(kind, method, name, summary);
    }

    /// Counts records read elsewhere: `records` in all, `filtered` of them
    /// left out by the label filters.
    #[cfg(feature = "clickhouse")]
    pub(crate) fn count_records(&mut self, records: u64, filtered: u64) {
        self.records += records;
        self.filtered += filtered;
    }

    /// Records left out by the label filters.
    pub fn filtered(&self) -> u64 {
        self.filtered
    }

    /// Records (and profiled scopes) of groups beyond
    /// [`Side::MAX_GROUPS`], compared in the `<other>` rows.
    pub fn folded(&self) -> u64 {
        self.groups.folded
    }
}

impl Summarize for Side {
    fn add(&mut self, record: &Record) {
        Side::add(self, record);
    }

    fn needs_labels(&self) -> bool {
        !self.filters.is_empty()
    }
}

/// What a test of costs is made of, shared by [`CompareOptions`] and
/// [`TimeseriesOptions`](super::TimeseriesOptions) so that each bound
/// stands once.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TestSettings {
    /// The metric; `None`: instructions where records carry them, else CPU
    /// time.
    pub(crate) metric: Option<Metric>,
    /// The confidence of the intervals, in (0, 1).
    pub(crate) confidence: f64,
    /// Fewer samples on a side leave a figure undecided (at least 2).
    pub(crate) min_samples: u64,
}

impl Default for TestSettings {
    fn default() -> TestSettings {
        TestSettings {
            metric: None,
            confidence: 0.95,
            min_samples: 30,
        }
    }
}

impl TestSettings {
    /// Sets the confidence, kept inside (0, 1).
    pub(crate) fn set_confidence(&mut self, confidence: f64) {
        self.confidence = confidence.clamp(1e-6, 1.0 - 1e-9);
    }

    /// The metric tested, and why it is not instructions when the user
    /// did not choose: the chosen one if it is compared, else
    /// instructions where any record carries them (`carries_instructions`),
    /// else CPU time.
    pub(crate) fn choose_metric(&self, carries_instructions: bool) -> (Metric, Option<String>) {
        match self.metric.filter(|m| slot(*m).is_some()) {
            Some(m) => (m, None),
            None if carries_instructions => (Metric::Instructions, None),
            None => (
                Metric::CpuNs,
                Some(
                    "no record carries instructions (no hardware PMU?): costs are CPU time"
                        .to_string(),
                ),
            ),
        }
    }

    /// Sets the minimum samples, at least 2 (a variance needs two).
    pub(crate) fn set_min_samples(&mut self, n: u64) {
        self.min_samples = n.max(2);
    }
}
