//! [`Metric`]: a quantity measured per record, and what a group's records
//! say about it ([`MetricStats`]).

use std::str::FromStr;

use crate::profile::Timer;
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
    /// carry it. Exact for every `u64` (no clamping).
    #[inline]
    pub fn value(self, record: &Record) -> Option<i128> {
        match self {
            Metric::Instructions => record.instructions.map(i128::from),
            Metric::Cycles => record.cycles.map(i128::from),
            Metric::CpuNs => record.cpu_ns.map(i128::from),
            Metric::WallNs => Some(i128::from(record.wall_ns)),
            Metric::RssChange => Some(i128::from(record.rss_end?) - i128::from(record.rss_start?)),
        }
    }

    /// The short name `dynostats report --metric` takes: `instructions`,
    /// `cycles`, `cpu`, `wall` or `rss`.
    pub fn short_name(self) -> &'static str {
        match self {
            Metric::Instructions => "instructions",
            Metric::Cycles => "cycles",
            Metric::CpuNs => "cpu",
            Metric::WallNs => "wall",
            Metric::RssChange => "rss",
        }
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }
}

impl FromStr for Metric {
    type Err = String;

    /// Parses [`Metric::short_name`] or [`Metric::name`].
    fn from_str(s: &str) -> Result<Metric, String> {
        Metric::ALL
            .into_iter()
            .find(|m| m.short_name() == s || m.name() == s)
            .ok_or_else(|| {
                format!("unknown metric {s:?}: expected instructions, cycles, cpu, wall or rss")
            })
    }
}

/// The metric a profile [`Timer`] measures: a call tree's amounts in
/// `detail.timer` are of that metric.
///
/// ```
/// use dynostats::profile::Timer;
/// use dynostats::report::Metric;
///
/// assert_eq!(Metric::from(Timer::CpuTime), Metric::CpuNs);
/// assert_eq!(Timer::from(Metric::RssChange).name(), "rss");
/// ```
impl From<Timer> for Metric {
    fn from(timer: Timer) -> Metric {
        match timer {
            Timer::Instructions => Metric::Instructions,
            Timer::Cycles => Metric::Cycles,
            Timer::CpuTime => Metric::CpuNs,
            Timer::WallTime => Metric::WallNs,
            Timer::Rss => Metric::RssChange,
        }
    }
}

/// The profile [`Timer`] that measures a metric (RSS for the change of
/// RSS).
impl From<Metric> for Timer {
    fn from(metric: Metric) -> Timer {
        match metric {
            Metric::Instructions => Timer::Instructions,
            Metric::Cycles => Timer::Cycles,
            Metric::CpuNs => Timer::CpuTime,
            Metric::WallNs => Timer::WallTime,
            Metric::RssChange => Timer::Rss,
        }
    }
}

impl Metric {
    /// The metric of a profile's `detail.timer` name (`instructions`,
    /// `cycles`, `cpu_ns`, `wall_ns`, `rss`), when it is one.
    pub(crate) fn of_timer(timer: &str) -> Option<Metric> {
        timer.parse::<Timer>().ok().map(Metric::from)
    }
}

/// Which side of the exact figure a saturated one is on
/// ([`MetricStats::bound`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Bound {
    /// The exact figure is at least this (the sum stopped at `i128::MAX`).
    Lower,
    /// The exact figure is at most this (the sum stopped at `i128::MIN`).
    Upper,
}

impl Bound {
    /// `lower` or `upper`, as JSON output names it.
    pub fn name(self) -> &'static str {
        match self {
            Bound::Lower => "lower",
            Bound::Upper => "upper",
        }
    }
}

/// What a group's records say about one [`Metric`].
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct MetricStats {
    /// Completed sampled records that carry the metric.
    pub samples: u64,
    /// Completed sampled records that do not (not measured; never counted
    /// as 0).
    pub absent: u64,
    /// Estimated total over every event: `sum(weight * value)`, saturated
    /// at the bounds of `i128` (see `saturated`).
    pub total: i128,
    /// True when `total` reached a bound of `i128` and stopped there.
    pub saturated: bool,
    /// Summed weights of the records that carry the metric: the events
    /// they stand for.
    pub events: u128,
    /// `total` divided by `events`: the mean per event. `None` without
    /// such records. When `total` saturated it is a bound too
    /// ([`MetricStats::bound`]), never exact.
    pub mean_per_event: Option<f64>,
    /// Median per event: the records' values weighted by their weights
    /// (nearest rank), from the group's [`Sketch`](super::Sketch): exact while it is
    /// ([`Sketch::is_exact`](super::Sketch::is_exact)), else within
    /// [`Sketch::RELATIVE_ERROR`](super::Sketch::RELATIVE_ERROR).
    pub p50: Option<i128>,
    /// 99th percentile per event, like `p50`.
    pub p99: Option<i128>,
    /// Whether `p50` and `p99` are exact.
    pub exact: bool,
}

impl MetricStats {
    /// `None` while `total` (and so `mean_per_event`) is exact; when it
    /// saturated, which bound it is: [`Bound::Lower`] at `i128::MAX`,
    /// [`Bound::Upper`] at `i128::MIN` (a sum that saturated one way and
    /// then moved back the other way is a bound on the same side only as
    /// long as its amounts all have one sign).
    pub fn bound(&self) -> Option<Bound> {
        match (self.saturated, self.total < 0) {
            (false, _) => None,
            (true, false) => Some(Bound::Lower),
            (true, true) => Some(Bound::Upper),
        }
    }
}
