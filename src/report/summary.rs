//! [`Summary`]: what one group's records say, in a form that merges. The
//! one summary every answer is computed from: a report's groups, each side
//! of a comparison and each window of a time series hold one per group.

use super::metric::{Metric, MetricStats};
use super::sketch::Sketch;
use super::stats::Moments;
use crate::record::Record;

/// What one group's records say, mergeable: counts by outcome, the events
/// they stand for, and per [`Metric`] the weighted total, a quantile
/// [`Sketch`] and the weighted [`Moments`] (docs/compare.md).
///
/// Every part is a sum or merges like one, so a summary of many files,
/// threads, hosts or hours is the merge of theirs, and a source that
/// aggregates by itself (a database grouping by endpoint) can hand over
/// the same parts.
///
/// # How records count
///
/// - **Forced** records (weight 0) are only counted ([`Summary::forced`]).
/// - **Sampled** records count in [`Summary::sampled`] and their weights
///   in [`Summary::events`], whatever their outcome.
/// - **Cancelled** and **failed** ones are counted
///   ([`Summary::cancelled`], [`Summary::errors`]) and left out of the
///   metrics, which describe completed work.
/// - A metric a record does not carry is absent, never 0.
///
/// ```
/// use dynostats::report::{Metric, Summary};
/// use dynostats::{Record, RecordKind};
///
/// let (mut a, mut b) = (Summary::default(), Summary::default());
/// for (cpu_ns, weight) in [(100, 10), (300, 10)] {
///     let mut r = Record::new(RecordKind::Region, "parse");
///     r.cpu_ns = Some(cpu_ns);
///     r.weight = weight;
///     a.add(&r);
/// }
/// let mut cancelled = Record::new(RecordKind::Region, "parse");
/// cancelled.cancelled = true;
/// b.add(&cancelled);
/// a.merge(&b);
/// assert_eq!((a.sampled(), a.events(), a.cancelled()), (3, 21, 1));
/// assert_eq!(a.stats(Metric::CpuNs).total, 4000);
/// assert_eq!(a.moments(Metric::CpuNs).mean(), Some(200.0));
/// ```
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub(crate) sampled: u64,
    pub(crate) events: u128,
    pub(crate) cancelled: u64,
    pub(crate) errors: u64,
    pub(crate) forced: u64,
    pub(crate) metrics: [Values; 5],
    /// True for a summary that keeps no sketches ([`Summary::without_quantiles`]).
    no_quantiles: bool,
}

impl Summary {
    /// A summary that keeps no quantile sketch: counts, totals and
    /// moments only, what comparisons and alerts test, at a third less
    /// cost per record. Its [`MetricStats`] have no `p50` or `p99`, its
    /// sketches stay empty; merged with any summary, the result keeps
    /// none either.
    pub fn without_quantiles() -> Summary {
        Summary {
            no_quantiles: true,
            ..Summary::default()
        }
    }

    /// Whether the summary keeps quantile sketches.
    pub fn has_quantiles(&self) -> bool {
        !self.no_quantiles
    }

    /// A summary from parts summed elsewhere (a database): the counts of
    /// [How records count](Summary#how-records-count) and one [`Values`]
    /// per metric, in [`Metric::ALL`]'s order.
    #[cfg(feature = "clickhouse")]
    pub(crate) fn from_parts(
        [sampled, cancelled, errors, forced]: [u64; 4],
        events: u128,
        metrics: [Values; 5],
        quantiles: bool,
    ) -> Summary {
        Summary {
            sampled,
            events,
            cancelled,
            errors,
            forced,
            metrics,
            no_quantiles: !quantiles,
        }
    }

    /// Adds one record (see [How records count](Summary#how-records-count)).
    #[inline]
    pub fn add(&mut self, record: &Record) {
        if record.forced {
            self.forced += 1;
            return;
        }
        self.sampled += 1;
        self.events = self.events.saturating_add(u128::from(record.weight));
        self.cancelled += u64::from(record.cancelled);
        self.errors += u64::from(record.error.is_some());
        if record.cancelled || record.error.is_some() {
            return;
        }
        for metric in Metric::ALL {
            self.metrics[metric.index()].add(
                metric.value(record),
                record.weight,
                !self.no_quantiles,
            );
        }
    }

    /// Adds one sampled event of `weight` whose only value is `amount` of
    /// `metric`: a profiled scope's amount in one call tree.
    pub(crate) fn add_amount(&mut self, metric: Metric, amount: i128, weight: u64) {
        self.sampled += 1;
        self.events = self.events.saturating_add(u128::from(weight));
        self.metrics[metric.index()].add(Some(amount), weight, !self.no_quantiles);
    }

    /// Adds everything `other` holds: afterwards `self` summarises both
    /// groups of records.
    pub fn merge(&mut self, other: &Summary) {
        self.sampled = self.sampled.saturating_add(other.sampled);
        self.events = self.events.saturating_add(other.events);
        self.cancelled = self.cancelled.saturating_add(other.cancelled);
        self.errors = self.errors.saturating_add(other.errors);
        self.forced = self.forced.saturating_add(other.forced);
        for (mine, theirs) in self.metrics.iter_mut().zip(&other.metrics) {
            mine.merge(theirs);
        }
        if other.no_quantiles && !self.no_quantiles {
            // Quantiles of a part of the records would describe nothing.
            self.no_quantiles = true;
            for values in &mut self.metrics {
                values.sketch = Sketch::new();
            }
        }
    }

    /// Records picked by the sampler (forced ones excluded), whatever
    /// their outcome.
    pub fn sampled(&self) -> u64 {
        self.sampled
    }

    /// Estimated events: the sum of the sampled records' weights.
    pub fn events(&self) -> u128 {
        self.events
    }

    /// Sampled records marked `cancelled`.
    pub fn cancelled(&self) -> u64 {
        self.cancelled
    }

    /// Sampled records with an `error`.
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// Forced records (weight 0), left out of every other count.
    pub fn forced(&self) -> u64 {
        self.forced
    }

    /// The statistics of `metric` over the completed sampled records.
    pub fn stats(&self, metric: Metric) -> MetricStats {
        self.metrics[metric.index()].stats(!self.no_quantiles)
    }

    /// The sketch of `metric`'s values, weighted (empty without
    /// quantiles).
    pub fn sketch(&self, metric: Metric) -> &Sketch {
        &self.metrics[metric.index()].sketch
    }

    /// The weighted moments of `metric`'s values: the cost per event and
    /// the variance of that mean, what comparisons and alerts test.
    pub fn moments(&self, metric: Metric) -> &Moments {
        &self.metrics[metric.index()].moments
    }

    /// Heap bytes held (the sketches).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.metrics.iter().map(Values::heap_bytes).sum()
    }
}

/// What one group's records say about one metric: the weighted total
/// (saturating), the quantile sketch, the weighted moments, and how many
/// records lacked it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Values {
    pub(crate) sketch: Sketch,
    pub(crate) moments: Moments,
    /// Values added (weight 0 included), and their summed weights.
    pub(crate) samples: u64,
    pub(crate) weight: u128,
    pub(crate) total: i128,
    pub(crate) saturated: bool,
    pub(crate) absent: u64,
}

impl Values {
    /// Adds a value (`None`: absent) standing for `weight` events; into
    /// the sketch too when `quantiles`.
    #[inline]
    pub(crate) fn add(&mut self, value: Option<i128>, weight: u64, quantiles: bool) {
        match value {
            Some(v) => {
                if quantiles {
                    self.sketch.add(v, weight);
                }
                self.samples += 1;
                self.weight = self.weight.saturating_add(u128::from(weight));
                self.moments.add(v as f64, weight);
                match v
                    .checked_mul(i128::from(weight))
                    .and_then(|x| self.total.checked_add(x))
                {
                    Some(total) => self.total = total,
                    None => {
                        self.saturated = true;
                        self.total = self
                            .total
                            .saturating_add(v.saturating_mul(i128::from(weight)));
                    }
                }
            }
            None => self.absent += 1,
        }
    }

    pub(crate) fn merge(&mut self, other: &Values) {
        self.sketch.merge(&other.sketch);
        self.moments.merge(&other.moments);
        self.samples = self.samples.saturating_add(other.samples);
        self.weight = self.weight.saturating_add(other.weight);
        match self.total.checked_add(other.total) {
            Some(t) => self.total = t,
            None => {
                self.saturated = true;
                self.total = self.total.saturating_add(other.total);
            }
        }
        self.saturated |= other.saturated;
        self.absent = self.absent.saturating_add(other.absent);
    }

    /// The statistics; without a sketch (`quantiles` false) no p50 or p99.
    pub(crate) fn stats(&self, quantiles: bool) -> MetricStats {
        let events = self.weight;
        let quantile = |q| self.sketch.quantile(q).filter(|_| quantiles);
        MetricStats {
            samples: self.samples,
            absent: self.absent,
            total: self.total,
            saturated: self.saturated,
            events,
            mean_per_event: (events > 0).then(|| self.total as f64 / events as f64),
            p50: quantile(0.50),
            p99: quantile(0.99),
            exact: quantiles && self.sketch.is_exact(),
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.sketch.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RecordKind;

    fn region(cpu_ns: Option<u64>, weight: u64) -> Record {
        let mut r = Record::new(RecordKind::Region, "r");
        r.cpu_ns = cpu_ns;
        r.weight = weight;
        r
    }

    #[test]
    fn halves_merge_into_the_summary_of_all() {
        let records: Vec<Record> = (0..200u64)
            .map(|i| region((i % 7 != 0).then_some(1000 + i * 13), 1 + i % 3))
            .collect();
        let (mut all, mut a, mut b) = (Summary::default(), Summary::default(), Summary::default());
        for (i, r) in records.iter().enumerate() {
            all.add(r);
            if i < 77 { a.add(r) } else { b.add(r) }
        }
        a.merge(&b);
        let m = Metric::CpuNs;
        assert_eq!((a.sampled(), a.events()), (all.sampled(), all.events()));
        assert_eq!(a.stats(m), all.stats(m));
        assert_eq!(a.sketch(m), all.sketch(m));
        let (x, y) = (a.moments(m), all.moments(m));
        assert_eq!((x.count(), x.weight()), (y.count(), y.weight()));
        let rel = (x.mean().unwrap() / y.mean().unwrap() - 1.0).abs();
        assert!(rel < 1e-12, "{rel}");
        let rel = (x.variance_of_mean().unwrap() / y.variance_of_mean().unwrap() - 1.0).abs();
        assert!(rel < 1e-9, "{rel}");
    }

    #[test]
    fn without_quantiles_keeps_everything_but_the_sketch() {
        let (mut full, mut lean) = (Summary::default(), Summary::without_quantiles());
        for i in 0..100u64 {
            let r = region(Some(500 + i), 10);
            full.add(&r);
            lean.add(&r);
        }
        let m = Metric::CpuNs;
        let (f, l) = (full.stats(m), lean.stats(m));
        assert_eq!(
            (l.samples, l.events, l.total),
            (f.samples, f.events, f.total)
        );
        assert_eq!(l.mean_per_event, f.mean_per_event);
        assert!(f.p50.is_some() && l.p50.is_none() && l.p99.is_none() && !l.exact);
        assert_eq!(lean.moments(m), full.moments(m));
        assert!(lean.sketch(m).count() == 0 && !lean.has_quantiles());
        // Merged with a lean one, a full summary keeps no partial quantiles.
        full.merge(&lean);
        assert!(!full.has_quantiles() && full.stats(m).p50.is_none());
        assert_eq!(full.stats(m).samples, 200);
    }
}
