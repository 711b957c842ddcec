//! [`compare`]: two sets of records (a base and a candidate: two builds,
//! two windows) compared per endpoint, region and profiled function, with
//! confidence intervals of the relative delta and a deploy gate.
//!
//! Each side is read into a [`Side`]: per group, streaming weighted
//! [`Moments`] of instructions, cycles, CPU time and wall time (memory
//! bounded by the number of groups, not of records). [`compare`] turns
//! two sides into a [`Comparison`]: per group the cost per event of each
//! side, the absolute and relative delta, the interval of the relative
//! delta (Welch with the delta method, see [`ratio_interval`](super::ratio_interval) and [`Moments`](super::Moments)), whether
//! it is significant, and the verdict against `fail_above`; an overall
//! figure mix-adjusted (the candidate's per-endpoint costs weighted by the
//! base's traffic mix) beside the raw one. Rows are sorted by the absolute
//! change of total cost, `(cand - base) per event x candidate events`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};

use super::filter::LabelFilters;
use super::format::{cut, escape_name, human};
use super::interval::{Estimate, Interval, Moments, ratio_interval};
use super::metric::Metric;
use crate::record::{Damage, Record, RecordKind, RecordReader};

/// The metrics a comparison keeps moments of, in this order.
pub const COMPARED: [Metric; 4] = [
    Metric::Instructions,
    Metric::Cycles,
    Metric::CpuNs,
    Metric::WallNs,
];

fn slot(metric: Metric) -> Option<usize> {
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

/// The moments of one group of one side.
#[derive(Clone, Debug, Default)]
pub(super) struct Row {
    /// Sampled records, whatever their outcome.
    pub(super) sampled: u64,
    /// Their summed weights.
    pub(super) events: u128,
    pub(super) metrics: [Moments; 4],
}

impl Row {
    fn merge(&mut self, other: &Row) {
        self.sampled += other.sampled;
        self.events = self.events.saturating_add(other.events);
        for (a, b) in self.metrics.iter_mut().zip(&other.metrics) {
            a.merge(b);
        }
    }
}

/// Groups of records with their moments: one side of a comparison, or one
/// window of a time series.
#[derive(Clone, Debug, Default)]
pub(super) struct Groups {
    /// Key bytes (kind, method, name) to index in `rows`.
    index: HashMap<Box<[u8]>, usize>,
    pub(super) rows: Vec<(RowKey, Row)>,
    scratch: Vec<u8>,
    /// The row of the last record: records of one group often come in
    /// runs (a file of one endpoint's load test, a profile's functions).
    last: Option<usize>,
    pub(super) dropped: u64,
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
    #[inline]
    fn row(&mut self, kind: RowKind, method: Option<&str>, name: &str) -> Option<&mut Row> {
        if let Some(i) = self.last {
            let (k, m, n) = &self.rows[i].0;
            if *k == kind && m.as_deref() == method && n == name {
                return Some(&mut self.rows[i].1);
            }
        }
        key_bytes(&mut self.scratch, kind, method, name);
        if let Some(&i) = self.index.get(&self.scratch[..]) {
            self.last = Some(i);
            return Some(&mut self.rows[i].1);
        }
        if self.rows.len() >= Side::MAX_GROUPS {
            self.dropped += 1;
            return None;
        }
        self.index
            .insert(self.scratch.clone().into_boxed_slice(), self.rows.len());
        self.last = Some(self.rows.len());
        self.rows.push((
            (kind, method.map(str::to_string), name.to_string()),
            Row::default(),
        ));
        self.rows.last_mut().map(|r| &mut r.1)
    }

    /// The row of `key`, if any.
    pub(super) fn get(&self, key: &RowKey) -> Option<&Row> {
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
        let Some(row) = self.row(kind, method, &record.name) else {
            return;
        };
        row.sampled += 1;
        row.events = row.events.saturating_add(u128::from(record.weight));
        if record.cancelled || record.error.is_some() {
            return;
        }
        let w = record.weight;
        let [instructions, cycles, cpu, wall] = &mut row.metrics;
        if let Some(v) = record.instructions {
            instructions.add(v as f64, w);
        }
        if let Some(v) = record.cycles {
            cycles.add(v as f64, w);
        }
        if let Some(v) = record.cpu_ns {
            cpu.add(v as f64, w);
        }
        wall.add(record.wall_ns as f64, w);
    }

    fn add_profile(&mut self, record: &Record) {
        if record.forced || record.cancelled || record.error.is_some() {
            return;
        }
        let Some(detail) = &record.detail else { return };
        let Some(at) = detail
            .timer
            .as_deref()
            .and_then(|t| t.parse::<Metric>().ok())
            .and_then(slot)
        else {
            return;
        };
        // Per name: the inclusive amount, recursion counted once.
        let mut names: Vec<(&str, i64)> = Vec::new();
        for node in detail.nodes.iter().skip(1) {
            if node.recursive {
                if !names.iter().any(|(n, _)| *n == node.name) {
                    names.push((&node.name, 0));
                }
                continue;
            }
            match names.iter_mut().find(|(n, _)| *n == node.name) {
                Some((_, amount)) => *amount = amount.saturating_add(node.inclusive),
                None => names.push((&node.name, node.inclusive)),
            }
        }
        for (name, amount) in names {
            if let Some(row) = self.row(RowKind::Function, None, name) {
                row.sampled += 1;
                row.events = row.events.saturating_add(u128::from(record.weight));
                row.metrics[at].add(amount as f64, record.weight);
            }
        }
    }

    pub(super) fn merge(&mut self, other: &Groups) {
        self.dropped += other.dropped;
        for ((kind, method, name), row) in &other.rows {
            if let Some(mine) = self.row(*kind, method.as_deref(), name) {
                mine.merge(row);
            }
        }
    }

    /// Moments of every endpoint (or, without requests, every region)
    /// together: the raw cost per request.
    pub(super) fn pooled(&self, kind: RowKind, at: usize) -> Moments {
        let mut pooled = Moments::default();
        for ((k, _, _), row) in &self.rows {
            if *k == kind {
                pooled.merge(&row.metrics[at]);
            }
        }
        pooled
    }

    /// Whether any row carries `metric`.
    pub(super) fn carries(&self, at: usize) -> bool {
        self.rows
            .iter()
            .any(|((k, _, _), r)| *k != RowKind::Function && r.metrics[at].count() > 0)
    }
}

/// The label of a row: `GET /users/{id}` for endpoints, the name otherwise.
pub(super) fn row_label(method: Option<&str>, name: &str) -> String {
    match method {
        Some(m) => format!("{m} {name}"),
        None => name.to_string(),
    }
}

/// One side of a comparison: records read into per-group moments, with
/// label filters.
///
/// ```
/// use dynostats::report::Side;
/// use dynostats::{Record, RecordKind};
///
/// let mut side = Side::new().filter_label("build", "b2");
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
    groups: Groups,
    filters: LabelFilters,
    records: u64,
    filtered: u64,
}

impl Side {
    /// Groups a side holds; records of further groups are counted in
    /// [`Side::dropped`] and left out (a comparison of an `<other>` mix
    /// would mean nothing).
    pub const MAX_GROUPS: usize = 10_000;

    /// An empty side.
    pub fn new() -> Side {
        Side::default()
    }

    /// Keeps only records whose label `key` is `value` (every filter must
    /// match).
    pub fn filter_label(mut self, key: &str, value: &str) -> Side {
        self.filters.push(key, value);
        self
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

    /// Adds every record of `reader` and returns the damage met, like
    /// [`super::Report::read_records`].
    pub fn read_records<R: Read>(&mut self, reader: RecordReader<R>) -> Damage {
        reader
            .skip_labels(self.filters.is_empty())
            .for_each_record(|record| self.add(record))
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

    /// Records left out by the label filters.
    pub fn filtered(&self) -> u64 {
        self.filtered
    }

    /// Records left out because the group cap was reached.
    pub fn dropped(&self) -> u64 {
        self.groups.dropped
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

    /// Sets the minimum samples, at least 2 (a variance needs two).
    pub(crate) fn set_min_samples(&mut self, n: u64) {
        self.min_samples = n.max(2);
    }
}

/// Options of [`compare`] (by value, like every builder of the crate).
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct CompareOptions {
    test: TestSettings,
    fail_above: Option<f64>,
}

impl CompareOptions {
    /// The defaults: metric chosen from the records, 95% confidence, 30
    /// samples per side at least, no gate.
    pub fn new() -> CompareOptions {
        CompareOptions::default()
    }

    /// Options testing with `test`, without a gate.
    pub(crate) fn with_test(test: TestSettings) -> CompareOptions {
        CompareOptions {
            test,
            fail_above: None,
        }
    }

    /// The metric rows lead with (instructions, cycles, cpu or wall);
    /// `None`: instructions where records carry them, else CPU time.
    pub fn metric(mut self, metric: Option<Metric>) -> Self {
        self.test.metric = metric;
        self
    }

    /// The confidence of the intervals, in (0, 1).
    pub fn confidence(mut self, confidence: f64) -> Self {
        self.test.set_confidence(confidence);
        self
    }

    /// Groups with fewer samples on either side are undecided.
    pub fn min_samples(mut self, n: u64) -> Self {
        self.test.set_min_samples(n);
        self
    }

    /// The gate: a relative regression above `fraction` (0.02 for 2%) that
    /// is significant fails.
    pub fn fail_above(mut self, fraction: Option<f64>) -> Self {
        self.fail_above = fraction;
        self
    }
}

/// The verdict on one row or on the overall figure.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// No significant regression above the threshold (or no gate, and the
    /// interval could be computed).
    Pass,
    /// A significant regression above the threshold.
    Fail,
    /// Too few samples, or no cost on a side: not decided, with why.
    Undecided(String),
}

impl Verdict {
    /// `pass`, `FAIL` or `undecided`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "FAIL",
            Verdict::Undecided(_) => "undecided",
        }
    }
}

/// One metric of one row on both sides.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct MetricDelta {
    /// The metric.
    pub metric: Metric,
    /// Base and candidate samples carrying it.
    pub samples: (u64, u64),
    /// Base and candidate cost per event.
    pub mean: (Option<f64>, Option<f64>),
    /// The relative delta `cand / base - 1` with its interval, when both
    /// sides have at least two samples and the base cost is positive.
    pub relative: Option<Interval>,
}

impl MetricDelta {
    fn new(base: &Moments, cand: &Moments, metric: Metric, confidence: f64) -> MetricDelta {
        let relative = match (base.estimate(), cand.estimate()) {
            (Some(b), Some(c)) => ratio_interval(&b, &c, confidence),
            _ => None,
        };
        MetricDelta {
            metric,
            samples: (base.count(), cand.count()),
            mean: (base.mean(), cand.mean()),
            relative,
        }
    }

    /// The absolute delta per event, `cand - base`.
    pub fn absolute(&self) -> Option<f64> {
        Some(self.mean.1? - self.mean.0?)
    }

    /// +1 significantly up, -1 significantly down, 0 not significant or
    /// not known.
    pub fn direction(&self) -> i8 {
        match self.relative {
            Some(i) if i.low > 0.0 => 1,
            Some(i) if i.high < 0.0 => -1,
            _ => 0,
        }
    }
}

/// One row of a [`Comparison`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RowComparison {
    /// Endpoint, region or function.
    pub kind: RowKind,
    /// `GET /users/{id}` for endpoints, the name otherwise (unescaped).
    pub label: String,
    /// Base and candidate sampled records.
    pub sampled: (u64, u64),
    /// Base and candidate estimated events.
    pub events: (u128, u128),
    /// The headline metric.
    pub headline: MetricDelta,
    /// Instructions, cycles, CPU time and wall time side by side (a
    /// profile function has only its timer's).
    pub metrics: Vec<MetricDelta>,
    /// True when the metrics' directions differ, each direction being up
    /// or down when its interval leaves out 0 and flat otherwise: e.g.
    /// instructions flat while CPU time rose (cache misses, contention).
    pub disagree: bool,
    /// `(cand - base) per event x candidate events` of the headline.
    pub total_change: Option<f64>,
    /// The verdict against the gate.
    pub verdict: Verdict,
}

/// The overall figure: cost per request across endpoints.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Overall {
    /// The kind of rows pooled: endpoints, or regions when there are no
    /// requests.
    pub kind: RowKind,
    /// Groups on both sides (the mix-adjusted figure's terms).
    pub groups: usize,
    /// Base cost per event and candidate cost per event at the base's mix.
    pub mix_adjusted_mean: (f64, f64),
    /// The mix-adjusted relative delta with its interval.
    pub mix_adjusted: Option<Interval>,
    /// The raw figures: each side's own mix.
    pub raw: MetricDelta,
    /// The verdict of the mix-adjusted figure against the gate.
    pub verdict: Verdict,
}

/// What [`compare`] returns: rows, overall figure and verdicts.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Comparison {
    /// The headline metric.
    pub metric: Metric,
    /// Why the headline is not instructions, when the user did not choose.
    pub fallback: Option<String>,
    /// The interval's confidence.
    pub confidence: f64,
    /// The gate, as a fraction.
    pub fail_above: Option<f64>,
    /// The minimum samples per side.
    pub min_samples: u64,
    /// Rows, the largest absolute change of total cost first.
    pub rows: Vec<RowComparison>,
    /// The overall figure (absent without endpoints and regions).
    pub overall: Option<Overall>,
}

fn decide(
    interval: Option<Interval>,
    samples: (u64, u64),
    options: &CompareOptions,
    what: &str,
) -> Verdict {
    if samples.0 < options.test.min_samples || samples.1 < options.test.min_samples {
        return Verdict::Undecided(format!(
            "{} base and {} candidate samples of {what}, fewer than --min-samples {}",
            samples.0, samples.1, options.test.min_samples
        ));
    }
    let Some(interval) = interval else {
        return Verdict::Undecided(format!("no positive base cost of {what}"));
    };
    match options.fail_above {
        Some(p) if interval.low > 0.0 && interval.estimate > p => Verdict::Fail,
        _ => Verdict::Pass,
    }
}

/// Compares `cand` against `base`. See the module and
/// [`ratio_interval`](super::ratio_interval) and [`Moments`](super::Moments) for the method.
///
/// ```
/// use dynostats::report::{CompareOptions, Side, Verdict, compare};
/// use dynostats::{Record, RecordKind};
///
/// let (mut base, mut cand) = (Side::new(), Side::new());
/// for i in 0..200u64 {
///     let mut r = Record::new(RecordKind::Request, "/a");
///     r.method = Some("GET".into());
///     r.cpu_ns = Some(1000 + i % 20);
///     base.add(&r);
///     r.cpu_ns = Some(1100 + i % 20); // 10% more
///     cand.add(&r);
/// }
/// let c = compare(&base, &cand, CompareOptions::new().fail_above(Some(0.02)));
/// let row = &c.rows[0];
/// assert_eq!(row.label, "GET /a");
/// assert!(row.headline.relative.unwrap().low > 0.09);
/// assert_eq!(row.verdict, Verdict::Fail);
/// assert!(c.failed());
/// ```
pub fn compare(base: &Side, cand: &Side, options: CompareOptions) -> Comparison {
    let (b, c) = (&base.groups, &cand.groups);
    let instructions = slot(Metric::Instructions).expect("compared");
    let (metric, fallback) = match options.test.metric.filter(|m| slot(*m).is_some()) {
        Some(m) => (m, None),
        None if b.carries(instructions) || c.carries(instructions) => (Metric::Instructions, None),
        None => (
            Metric::CpuNs,
            Some(
                "no record carries instructions (no hardware PMU?): costs are CPU time".to_string(),
            ),
        ),
    };
    let at = slot(metric).expect("compared");
    let confidence = options.test.confidence;
    let empty = Row::default();
    let mut keys: Vec<&RowKey> = b.rows.iter().map(|r| &r.0).collect();
    keys.extend(c.rows.iter().map(|r| &r.0).filter(|k| b.get(k).is_none()));
    let mut rows = Vec::new();
    for key in keys {
        let (rb, rc) = (b.get(key).unwrap_or(&empty), c.get(key).unwrap_or(&empty));
        let (kind, method, name) = key;
        let label = row_label(method.as_deref(), name);
        let headline_at = if *kind == RowKind::Function {
            // A function has its profile timer's amounts only.
            (0..COMPARED.len())
                .find(|&i| rb.metrics[i].count() + rc.metrics[i].count() > 0)
                .unwrap_or(at)
        } else {
            at
        };
        let metrics: Vec<MetricDelta> = COMPARED
            .into_iter()
            .enumerate()
            .filter(|&(i, m)| {
                m != Metric::WallNs && (rb.metrics[i].count() > 0 || rc.metrics[i].count() > 0)
            })
            .map(|(i, m)| MetricDelta::new(&rb.metrics[i], &rc.metrics[i], m, confidence))
            .collect();
        let headline = MetricDelta::new(
            &rb.metrics[headline_at],
            &rc.metrics[headline_at],
            COMPARED[headline_at],
            confidence,
        );
        let directions: Vec<i8> = metrics
            .iter()
            .filter(|m| m.relative.is_some())
            .map(MetricDelta::direction)
            .collect();
        let disagree = directions.windows(2).any(|w| w[0] != w[1]);
        let total_change = headline.absolute().map(|d| d * rc.events as f64);
        let verdict = decide(headline.relative, headline.samples, &options, &label);
        rows.push(RowComparison {
            kind: *kind,
            label,
            sampled: (rb.sampled, rc.sampled),
            events: (rb.events, rc.events),
            headline,
            metrics,
            disagree,
            total_change,
            verdict,
        });
    }
    rows.sort_by(|x, y| {
        let key = |r: &RowComparison| r.total_change.map_or(-1.0, f64::abs);
        key(y)
            .total_cmp(&key(x))
            .then_with(|| (x.kind, &x.label).cmp(&(y.kind, &y.label)))
    });
    let overall = overall(b, c, at, &options);
    Comparison {
        metric,
        fallback,
        confidence,
        fail_above: options.fail_above,
        min_samples: options.test.min_samples,
        rows,
        overall,
    }
}

/// The overall figure of `c` against `b` (see [`Overall`]); `at` is the
/// metric's slot in [`COMPARED`].
pub(super) fn overall(
    b: &Groups,
    c: &Groups,
    at: usize,
    options: &CompareOptions,
) -> Option<Overall> {
    let has = |k: RowKind| b.rows.iter().chain(&c.rows).any(|(key, _)| key.0 == k);
    let kind = if has(RowKind::Endpoint) {
        RowKind::Endpoint
    } else if has(RowKind::Region) {
        RowKind::Region
    } else {
        return None;
    };
    let raw = MetricDelta::new(
        &b.pooled(kind, at),
        &c.pooled(kind, at),
        COMPARED[at],
        options.test.confidence,
    );
    // The base's mix over the groups both sides have, with an estimate.
    let common: Vec<(Estimate, Estimate, f64)> = b
        .rows
        .iter()
        .filter(|(key, _)| key.0 == kind)
        .filter_map(|(key, rb)| {
            let rc = c.get(key)?;
            let (eb, ec) = (rb.metrics[at].estimate()?, rc.metrics[at].estimate()?);
            Some((eb, ec, rb.metrics[at].weight()))
        })
        .collect();
    let traffic: f64 = common.iter().map(|x| x.2).sum();
    let (mut eb, mut ec) = (Estimate::default(), Estimate::default());
    for (b, c, w) in &common {
        eb.add_scaled(b, w / traffic);
        ec.add_scaled(c, w / traffic);
    }
    let mix_adjusted = if common.is_empty() {
        None
    } else {
        ratio_interval(&eb, &ec, options.test.confidence)
    };
    let verdict = decide(mix_adjusted, raw.samples, options, "the overall figure");
    Some(Overall {
        kind,
        groups: common.len(),
        mix_adjusted_mean: (eb.mean, ec.mean),
        mix_adjusted,
        raw,
        verdict,
    })
}

/// Formats a fraction as a signed percentage.
pub(super) fn pct(x: f64) -> String {
    format!("{:+.2}%", x * 100.0)
}

fn pct_opt(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), pct)
}

fn human_mean(metric: Metric, x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), |v| human(metric, v))
}

/// `s` as a JSON string.
pub(super) fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A finite number as JSON, else `null`.
pub(super) fn json_num(x: Option<f64>) -> String {
    match x {
        Some(v) if v.is_finite() => format!("{v}"),
        _ => "null".to_string(),
    }
}

/// `s` as a CSV field (RFC 4180 quoting; a leading `=+-@` is prefixed
/// with `'` so a spreadsheet does not run it).
pub(super) fn csv_str(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn interval_json(i: Option<Interval>) -> String {
    match i {
        Some(i) => format!(
            "{{\"estimate\":{},\"low\":{},\"high\":{}}}",
            json_num(Some(i.estimate)),
            json_num(Some(i.low)),
            json_num(Some(i.high))
        ),
        None => "null".to_string(),
    }
}

fn metric_json(m: &MetricDelta) -> String {
    format!(
        "{{\"metric\":\"{}\",\"samples\":[{},{}],\"base\":{},\"candidate\":{},\"absolute\":{},\"relative\":{}}}",
        m.metric.name(),
        m.samples.0,
        m.samples.1,
        json_num(m.mean.0),
        json_num(m.mean.1),
        json_num(m.absolute()),
        interval_json(m.relative)
    )
}

fn verdict_json(v: &Verdict) -> String {
    match v {
        Verdict::Undecided(why) => format!(
            "\"verdict\":\"undecided\",\"undecided_because\":{}",
            json_str(why)
        ),
        v => format!("\"verdict\":\"{}\"", v.as_str().to_lowercase()),
    }
}

impl Comparison {
    /// True when a row or the overall figure failed the gate.
    pub fn failed(&self) -> bool {
        self.offenders().next().is_some()
            || self
                .overall
                .as_ref()
                .is_some_and(|o| o.verdict == Verdict::Fail)
    }

    /// The rows that failed the gate.
    pub fn offenders(&self) -> impl Iterator<Item = &RowComparison> {
        self.rows.iter().filter(|r| r.verdict == Verdict::Fail)
    }

    /// The rows that could not be decided.
    pub fn undecided(&self) -> impl Iterator<Item = &RowComparison> {
        self.rows
            .iter()
            .filter(|r| matches!(r.verdict, Verdict::Undecided(_)))
    }

    /// Whether anything (a row or the overall figure) is undecided.
    pub fn any_undecided(&self) -> bool {
        self.undecided().next().is_some()
            || self
                .overall
                .as_ref()
                .is_some_and(|o| matches!(o.verdict, Verdict::Undecided(_)))
    }

    /// Writes the comparison as a table, JSON or CSV.
    pub fn write(&self, format: super::Format, out: &mut impl Write) -> io::Result<()> {
        match format {
            super::Format::Json => self.write_json(out),
            super::Format::Csv => self.write_csv(out),
            _ => self.write_text(out),
        }
    }

    /// The printed table, with the overall figure and the gate's summary.
    pub fn write_text(&self, out: &mut impl Write) -> io::Result<()> {
        let m = self.metric;
        match &self.fallback {
            Some(why) => writeln!(out, "metric: CPU time (cpu_ns): {why}")?,
            None => writeln!(out, "metric: {}", m.name())?,
        }
        writeln!(
            out,
            "{:.0}% intervals of the relative delta (Welch, delta method); rows by |change of total cost|",
            self.confidence * 100.0
        )?;
        writeln!(out)?;
        let side_metrics = [Metric::Instructions, Metric::Cycles, Metric::CpuNs];
        writeln!(
            out,
            "{:<9} {:<40} {:>8} {:>8} {:>10} {:>10} {:>10} {:>8} {:>19} {:>10} {:>8} {:>8} {:>8}  verdict",
            "kind",
            "name",
            "n base",
            "n cand",
            "base",
            "cand",
            "delta",
            "rel",
            "interval",
            "total chg",
            "instr",
            "cycles",
            "cpu",
        )?;
        if self.rows.is_empty() {
            writeln!(out, "(no records)")?;
        }
        for r in &self.rows {
            let hm = r.headline.metric;
            let interval = r.headline.relative.map_or_else(
                || "-".to_string(),
                |i| format!("[{}, {}]", pct(i.low), pct(i.high)),
            );
            let side: Vec<String> = side_metrics
                .iter()
                .map(|sm| {
                    r.metrics
                        .iter()
                        .find(|d| d.metric == *sm)
                        .and_then(|d| d.relative)
                        .map_or_else(|| "-".to_string(), |i| pct(i.estimate))
                })
                .collect();
            writeln!(
                out,
                "{:<9} {:<40} {:>8} {:>8} {:>10} {:>10} {:>10} {:>8} {:>19} {:>10} {:>8} {:>8} {:>8}  {}{}",
                r.kind.as_str(),
                cut(&escape_name(&r.label), 40),
                r.headline.samples.0,
                r.headline.samples.1,
                human_mean(hm, r.headline.mean.0),
                human_mean(hm, r.headline.mean.1),
                human_mean(hm, r.headline.absolute()),
                pct_opt(r.headline.relative.map(|i| i.estimate)),
                interval,
                human_mean(hm, r.total_change),
                side[0],
                side[1],
                side[2],
                r.verdict.as_str(),
                if r.disagree { "  DISAGREE" } else { "" },
            )?;
        }
        if let Some(o) = &self.overall {
            writeln!(out)?;
            let per = if o.kind == RowKind::Endpoint {
                "request"
            } else {
                "region"
            };
            writeln!(
                out,
                "overall cost per {per}, mix-adjusted (candidate at the base's traffic mix, {} groups): {} -> {}  {}  {}  {}",
                o.groups,
                human(m, o.mix_adjusted_mean.0),
                human(m, o.mix_adjusted_mean.1),
                pct_opt(o.mix_adjusted.map(|i| i.estimate)),
                o.mix_adjusted.map_or_else(
                    || "-".to_string(),
                    |i| format!("[{}, {}]", pct(i.low), pct(i.high))
                ),
                o.verdict.as_str()
            )?;
            writeln!(
                out,
                "overall cost per {per}, raw (each side's own mix):                      {} -> {}  {}  {}",
                human_mean(m, o.raw.mean.0),
                human_mean(m, o.raw.mean.1),
                pct_opt(o.raw.relative.map(|i| i.estimate)),
                o.raw.relative.map_or_else(
                    || "-".to_string(),
                    |i| format!("[{}, {}]", pct(i.low), pct(i.high))
                ),
            )?;
        }
        writeln!(out)?;
        if self.rows.iter().any(|r| r.disagree) {
            writeln!(
                out,
                "DISAGREE: metrics moved in different directions (e.g. instructions flat, time up: cache misses, contention)"
            )?;
        }
        match self.fail_above {
            None => writeln!(out, "gate: none (--fail-above not given)")?,
            Some(p) => {
                let offenders: Vec<&RowComparison> = self.offenders().collect();
                let overall_failed = self
                    .overall
                    .as_ref()
                    .is_some_and(|o| o.verdict == Verdict::Fail);
                if offenders.is_empty() && !overall_failed {
                    writeln!(
                        out,
                        "PASS: no significant regression above {}",
                        pct(p).trim_start_matches('+')
                    )?;
                } else {
                    writeln!(
                        out,
                        "FAIL: significant regressions above {}:",
                        pct(p).trim_start_matches('+')
                    )?;
                    for r in offenders {
                        writeln!(
                            out,
                            "  {} {}: {} [{}, {}]",
                            r.kind.as_str(),
                            escape_name(&r.label),
                            pct_opt(r.headline.relative.map(|i| i.estimate)),
                            pct_opt(r.headline.relative.map(|i| i.low)),
                            pct_opt(r.headline.relative.map(|i| i.high)),
                        )?;
                    }
                    if let Some(o) = self.overall.as_ref().filter(|_| overall_failed) {
                        writeln!(
                            out,
                            "  overall (mix-adjusted): {}",
                            pct_opt(o.mix_adjusted.map(|i| i.estimate))
                        )?;
                    }
                }
            }
        }
        let undecided: Vec<&RowComparison> = self.undecided().collect();
        if !undecided.is_empty() {
            writeln!(out, "UNDECIDED ({}):", undecided.len())?;
            for r in undecided {
                if let Verdict::Undecided(why) = &r.verdict {
                    writeln!(out, "  {}: {}", r.kind.as_str(), escape_name(why))?;
                }
            }
        }
        if let Some(Verdict::Undecided(why)) = self.overall.as_ref().map(|o| &o.verdict) {
            writeln!(out, "UNDECIDED overall: {why}")?;
        }
        Ok(())
    }

    /// The comparison as one JSON object.
    pub fn write_json(&self, out: &mut impl Write) -> io::Result<()> {
        write!(
            out,
            "{{\"metric\":\"{}\",\"fallback\":{},\"confidence\":{},\"fail_above\":{},\"min_samples\":{},\"failed\":{},\"rows\":[",
            self.metric.name(),
            self.fallback
                .as_deref()
                .map_or_else(|| "null".to_string(), json_str),
            self.confidence,
            json_num(self.fail_above),
            self.min_samples,
            self.failed()
        )?;
        for (i, r) in self.rows.iter().enumerate() {
            let metrics: Vec<String> = r.metrics.iter().map(metric_json).collect();
            write!(
                out,
                "{}\n{{\"kind\":\"{}\",\"name\":{},\"sampled\":[{},{}],\"events\":[\"{}\",\"{}\"],\"headline\":{},\"metrics\":[{}],\"disagree\":{},\"total_change\":{},{}}}",
                if i > 0 { "," } else { "" },
                r.kind.as_str(),
                json_str(&r.label),
                r.sampled.0,
                r.sampled.1,
                r.events.0,
                r.events.1,
                metric_json(&r.headline),
                metrics.join(","),
                r.disagree,
                json_num(r.total_change),
                verdict_json(&r.verdict)
            )?;
        }
        write!(out, "\n],\"overall\":")?;
        match &self.overall {
            None => write!(out, "null")?,
            Some(o) => write!(
                out,
                "{{\"kind\":\"{}\",\"groups\":{},\"mix_adjusted\":{{\"base\":{},\"candidate\":{},\"relative\":{}}},\"raw\":{},{}}}",
                o.kind.as_str(),
                o.groups,
                json_num(Some(o.mix_adjusted_mean.0)),
                json_num(Some(o.mix_adjusted_mean.1)),
                interval_json(o.mix_adjusted),
                metric_json(&o.raw),
                verdict_json(&o.verdict)
            )?,
        }
        writeln!(out, "}}")
    }

    /// One CSV line per row (the overall figure last, kind `overall`).
    pub fn write_csv(&self, out: &mut impl Write) -> io::Result<()> {
        writeln!(
            out,
            "kind,name,metric,samples_base,samples_cand,events_base,events_cand,mean_base,mean_cand,absolute,relative,low,high,total_change,instructions_rel,cycles_rel,cpu_ns_rel,disagree,verdict"
        )?;
        let f = |x: Option<f64>| x.map_or_else(String::new, |v| format!("{v}"));
        for r in &self.rows {
            let side = |m: Metric| {
                f(r.metrics
                    .iter()
                    .find(|d| d.metric == m)
                    .and_then(|d| d.relative)
                    .map(|i| i.estimate))
            };
            writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                r.kind.as_str(),
                csv_str(&r.label),
                r.headline.metric.name(),
                r.headline.samples.0,
                r.headline.samples.1,
                r.events.0,
                r.events.1,
                f(r.headline.mean.0),
                f(r.headline.mean.1),
                f(r.headline.absolute()),
                f(r.headline.relative.map(|i| i.estimate)),
                f(r.headline.relative.map(|i| i.low)),
                f(r.headline.relative.map(|i| i.high)),
                f(r.total_change),
                side(Metric::Instructions),
                side(Metric::Cycles),
                side(Metric::CpuNs),
                r.disagree,
                r.verdict.as_str().to_lowercase()
            )?;
        }
        if let Some(o) = &self.overall {
            writeln!(
                out,
                "overall,mix-adjusted,{},{},{},,,{},{},{},{},{},{},,,,,,{}",
                self.metric.name(),
                o.raw.samples.0,
                o.raw.samples.1,
                o.mix_adjusted_mean.0,
                o.mix_adjusted_mean.1,
                o.mix_adjusted_mean.1 - o.mix_adjusted_mean.0,
                f(o.mix_adjusted.map(|i| i.estimate)),
                f(o.mix_adjusted.map(|i| i.low)),
                f(o.mix_adjusted.map(|i| i.high)),
                o.verdict.as_str().to_lowercase()
            )?;
        }
        Ok(())
    }
}
