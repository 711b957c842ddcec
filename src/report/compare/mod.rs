//! [`compare`]: two sets of records (a base and a candidate: two builds,
//! two windows) compared per endpoint, region and profiled function, with
//! confidence intervals of the relative delta and a deploy gate.
//!
//! Each side is read into a [`Side`]: per group, streaming weighted
//! [`Moments`] of instructions, cycles, CPU time and wall time (memory
//! bounded by the number of groups, not of records). [`compare`] turns
//! two sides into a [`Comparison`]: per group the cost per event of each
//! side, the absolute and relative delta, the interval of the relative
//! delta (Welch with the delta method, see [`Moments`] and `docs/compare.md`), whether
//! it is significant, and the verdict against `fail_above`; an overall
//! figure mix-adjusted (the candidate's per-endpoint costs weighted by the
//! base's traffic mix) beside the raw one. Rows are sorted by the absolute
//! change of total cost, `(cand - base) per event x candidate events`.

mod gate;
mod render;

use super::metric::Metric;
pub(crate) use super::side::TestSettings;
pub use super::side::{COMPARED, RowKind, Side, SideBuilder};
use super::side::{Groups, RowKey, row_label, slot};
use super::stats::{Estimate, Interval, Moments, RatioTest, t_quantile};
use super::summary::Summary;
use gate::{gate, judgeable};

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
    /// With a gate: not judged to regress above the threshold.
    Pass,
    /// With a gate: a regression significantly above the threshold.
    Fail,
    /// Without a gate: the interval lies above 0, the candidate costs more.
    Slower,
    /// Without a gate: the interval lies below 0, the candidate costs less.
    Faster,
    /// Without a gate: the interval holds 0, no change the samples can
    /// see.
    NoChange,
    /// Too few samples, or no cost on a side: not decided, with why.
    Undecided(String),
}

impl Verdict {
    /// `pass`, `FAIL`, `slower`, `faster`, `no change` or `undecided`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "FAIL",
            Verdict::Slower => "slower",
            Verdict::Faster => "faster",
            Verdict::NoChange => "no change",
            Verdict::Undecided(_) => "undecided",
        }
    }

    /// What an interval of the relative delta says without a gate.
    fn of_interval(interval: Option<Interval>) -> Verdict {
        match interval {
            Some(i) if i.low > 0.0 => Verdict::Slower,
            Some(i) if i.high < 0.0 => Verdict::Faster,
            _ => Verdict::NoChange,
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
    /// What the interval is made of, for the gate's test.
    test: Option<RatioTest>,
}

impl MetricDelta {
    fn new(base: &Moments, cand: &Moments, metric: Metric, confidence: f64) -> MetricDelta {
        let test = match (base.estimate(), cand.estimate()) {
            (Some(b), Some(c)) => RatioTest::new(&b, &c),
            _ => None,
        };
        MetricDelta {
            metric,
            samples: (base.count(), cand.count()),
            mean: (base.mean(), cand.mean()),
            relative: test.map(|t| t.interval(confidence)),
            test,
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
    /// True when the metrics tell different stories beyond their noise:
    /// two of them move significantly in opposite directions, or the
    /// difference of two metrics' relative deltas is significant (its
    /// interval, at the comparison's confidence, leaves out 0): e.g.
    /// instructions flat while CPU time rose by 10% (cache misses,
    /// contention). One delta significant and the other not is not enough:
    /// with both near the edge of their intervals that is noise.
    pub disagree: bool,
    /// `(cand - base) per event x candidate events` of the headline.
    pub total_change: Option<f64>,
    /// The verdict against the gate.
    pub verdict: Verdict,
}

impl RowComparison {
    /// What the headline's interval says, with a gate or without:
    /// [`Verdict::Slower`], [`Verdict::Faster`] or [`Verdict::NoChange`]
    /// (the interval holds 0), or the row's [`Verdict::Undecided`]. Without
    /// a gate this is the row's verdict.
    pub fn change(&self) -> Verdict {
        match &self.verdict {
            Verdict::Undecided(why) => Verdict::Undecided(why.clone()),
            _ => Verdict::of_interval(self.headline.relative),
        }
    }
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
    /// What the mix-adjusted interval is made of, for the gate's test.
    test: Option<RatioTest>,
}

impl Overall {
    /// What the mix-adjusted interval says, with a gate or without (see
    /// [`RowComparison::change`]).
    pub fn change(&self) -> Verdict {
        match &self.verdict {
            Verdict::Undecided(why) => Verdict::Undecided(why.clone()),
            _ => Verdict::of_interval(self.mix_adjusted),
        }
    }
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
    /// Base and candidate records (and profiled scopes) of groups beyond
    /// [`Side::MAX_GROUPS`], compared in the `<other>` rows.
    pub folded: (u64, u64),
}

/// Compares `cand` against `base`. See the module and
/// [`Moments`] and `docs/compare.md` for the method.
///
/// ```
/// use dynostats::report::compare::{CompareOptions, Side, Verdict, compare};
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
    let (metric, fallback) = options
        .test
        .choose_metric(b.carries(instructions) || c.carries(instructions));
    let at = slot(metric).expect("compared");
    let confidence = options.test.confidence;
    let empty = Summary::default();
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
                .find(|&i| rb.moments(COMPARED[i]).count() + rc.moments(COMPARED[i]).count() > 0)
                .unwrap_or(at)
        } else {
            at
        };
        let metrics: Vec<MetricDelta> = COMPARED
            .into_iter()
            .enumerate()
            .filter(|&(i, m)| {
                m != Metric::WallNs
                    && (rb.moments(COMPARED[i]).count() > 0 || rc.moments(COMPARED[i]).count() > 0)
            })
            .map(|(i, m)| {
                MetricDelta::new(
                    rb.moments(COMPARED[i]),
                    rc.moments(COMPARED[i]),
                    m,
                    confidence,
                )
            })
            .collect();
        let headline = MetricDelta::new(
            rb.moments(COMPARED[headline_at]),
            rc.moments(COMPARED[headline_at]),
            COMPARED[headline_at],
            confidence,
        );
        let disagree = disagree(&metrics, confidence);
        let total_change = headline.absolute().map(|d| d * rc.events() as f64);
        let verdict = judgeable(headline.relative, headline.samples, &options, &label);
        rows.push(RowComparison {
            kind: *kind,
            label,
            sampled: (rb.sampled(), rc.sampled()),
            events: (rb.events(), rc.events()),
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
    let mut overall = overall(b, c, at, &options);
    gate(&mut rows, overall.as_mut(), &options);
    Comparison {
        metric,
        fallback,
        confidence,
        fail_above: options.fail_above,
        min_samples: options.test.min_samples,
        rows,
        overall,
        folded: (base.folded(), cand.folded()),
    }
}

/// Whether `metrics` (one row's) tell different stories beyond their
/// noise: see [`RowComparison::disagree`]. The difference of two relative
/// deltas is taken with the sum of their variances (the metrics of one
/// record are positively correlated, so this overstates the variance and
/// flags less) and the smaller of their degrees of freedom.
fn disagree(metrics: &[MetricDelta], confidence: f64) -> bool {
    let directions: Vec<i8> = metrics
        .iter()
        .filter(|m| m.relative.is_some())
        .map(MetricDelta::direction)
        .collect();
    if directions.contains(&1) && directions.contains(&-1) {
        return true;
    }
    let tests: Vec<&RatioTest> = metrics.iter().filter_map(|m| m.test.as_ref()).collect();
    tests.iter().enumerate().any(|(i, a)| {
        tests[i + 1..].iter().any(|b| {
            let se = a.se.hypot(b.se);
            let t = t_quantile(0.5 + confidence / 2.0, a.df.min(b.df));
            (a.estimate - b.estimate).abs() > t * se
        })
    })
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
            let (eb, ec) = (
                rb.moments(COMPARED[at]).estimate()?,
                rc.moments(COMPARED[at]).estimate()?,
            );
            Some((eb, ec, rb.moments(COMPARED[at]).weight()))
        })
        .collect();
    let traffic: f64 = common.iter().map(|x| x.2).sum();
    let (mut eb, mut ec) = (Estimate::default(), Estimate::default());
    for (b, c, w) in &common {
        eb.add_scaled(b, w / traffic);
        ec.add_scaled(c, w / traffic);
    }
    let test = if common.is_empty() {
        None
    } else {
        RatioTest::new(&eb, &ec)
    };
    let mix_adjusted = test.map(|t| t.interval(options.test.confidence));
    let verdict = judgeable(mix_adjusted, raw.samples, options, "the overall figure");
    Some(Overall {
        kind,
        groups: common.len(),
        mix_adjusted_mean: (eb.mean, ec.mean),
        mix_adjusted,
        raw,
        verdict,
        test,
    })
}
