//! [`Metric`]: a quantity measured per record, and what a group's records
//! say about it ([`MetricStats`]).

use serde::Serialize;

use crate::record::Record;

/// A quantity measured per record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Metric {
    /// User-space instructions retired (`instructions`).
    Instructions,
    /// User-space CPU cycles (`cycles`).
    Cycles,
    /// CPU time in nanoseconds (`cpu_ns`).
    CpuNs,
    /// Wall-clock time in nanoseconds (`wall_ns`, always present).
    WallNs,
    /// Change of the process's resident set size in bytes, `rss_end -
    /// rss_start` (negative when memory was returned); present when both
    /// are.
    RssChange,
}

impl Metric {
    /// Every metric, in the order of the record's fields.
    pub const ALL: [Metric; 5] = [
        Metric::Instructions,
        Metric::Cycles,
        Metric::CpuNs,
        Metric::WallNs,
        Metric::RssChange,
    ];

    /// The metric's name: the record field (`instructions`, `cycles`,
    /// `cpu_ns`, `wall_ns`) or `rss_change`.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Instructions => "instructions",
            Metric::Cycles => "cycles",
            Metric::CpuNs => "cpu_ns",
            Metric::WallNs => "wall_ns",
            Metric::RssChange => "rss_change",
        }
    }

    /// The metric's value in `record`, `None` when the record does not
    /// carry it. Values beyond `i64` (over 292 years of nanoseconds) are
    /// clamped to `i64::MAX`.
    pub fn value(self, record: &Record) -> Option<i64> {
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        match self {
            Metric::Instructions => record.instructions.map(clamp),
            Metric::Cycles => record.cycles.map(clamp),
            Metric::CpuNs => record.cpu_ns.map(clamp),
            Metric::WallNs => Some(clamp(record.wall_ns)),
            Metric::RssChange => {
                let change = i128::from(record.rss_end?) - i128::from(record.rss_start?);
                Some(change.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
            }
        }
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }
}

/// What a group's records say about one [`Metric`].
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct MetricStats {
    /// Completed sampled records that carry the metric.
    pub samples: u64,
    /// Completed sampled records that do not (not measured; never counted
    /// as 0).
    pub absent: u64,
    /// Estimated total over every event: `sum(weight * value)`.
    pub total: i128,
    /// `total` divided by the summed weights of the records that carry the
    /// metric: the mean per event. `None` without such records.
    pub mean_per_event: Option<f64>,
    /// Median of the sampled values (unweighted), exact: nearest rank in
    /// the sorted values, no interpolation.
    pub p50: Option<i64>,
    /// 99th percentile of the sampled values, exact like `p50`.
    pub p99: Option<i64>,
}

/// The `percent`-th percentile of `sorted` by nearest rank: the smallest
/// value with at least `percent`% of the values at or below it.
pub(super) fn nearest_rank(sorted: &[i64], percent: u64) -> Option<i64> {
    let n = sorted.len() as u64;
    if n == 0 {
        return None;
    }
    // 1-based rank ceil(n * percent / 100), in integers.
    let rank = (n * percent).div_ceil(100).max(1);
    Some(sorted[(rank - 1) as usize])
}

/// The values of one metric in one group.
#[derive(Clone, Debug, Default)]
pub(super) struct Values {
    pub(super) values: Vec<i64>,
    total: i128,
    weight: u128,
    absent: u64,
}

impl Values {
    pub(super) fn add(&mut self, value: Option<i64>, weight: u64) {
        match value {
            Some(v) => {
                self.values.push(v);
                self.total = self
                    .total
                    .saturating_add(i128::from(v).saturating_mul(i128::from(weight)));
                self.weight += u128::from(weight);
            }
            None => self.absent += 1,
        }
    }

    pub(super) fn stats(&self) -> MetricStats {
        let mut sorted = self.values.clone();
        sorted.sort_unstable();
        MetricStats {
            samples: sorted.len() as u64,
            absent: self.absent,
            total: self.total,
            mean_per_event: (self.weight > 0).then(|| self.total as f64 / self.weight as f64),
            p50: nearest_rank(&sorted, 50),
            p99: nearest_rank(&sorted, 99),
        }
    }
}
