//! [`Timeseries`]: records cut into windows of their timestamps, per
//! window the endpoints by hits with their cost per request, and alerts
//! where a window's cost per request rose beyond a threshold against the
//! preceding windows, with the interval machinery of `compare`: the
//! window against its baseline (the preceding windows' records together)
//! is compare's mix-adjusted overall figure, per-endpoint costs at the
//! baseline's traffic mix, with its interval ([`Moments`], `docs/compare.md`).
//!
//! Memory: per window, per group, the moments of [`Side`](super::compare::Side); the
//! number of windows is the records' time span over the window length.

use std::collections::BTreeMap;
use std::io::{self, Write};

use super::Summarize;
use super::compare::{CompareOptions, overall};
use super::filter::LabelFilters;
use super::metric::Metric;
use super::output::{
    Paint, Render, TextStyle, csv_text, cut, escape_name, human, json_num, json_string, pct, utc,
    wrap, write_metric_line, write_wrapped,
};
use super::side::{COMPARED, Groups, RowKind, TestSettings, row_label};
use super::stats::{Interval, Moments};
#[cfg(feature = "clickhouse")]
use super::summary::Summary;
use crate::record::{Record, RecordKind};

/// Builds a [`Timeseries`] ([`Timeseries::builder`]).
#[derive(Clone, Debug)]
#[must_use]
pub struct TimeseriesBuilder {
    window_ns: u64,
    filters: LabelFilters,
}

impl TimeseriesBuilder {
    /// Keeps only records whose label `key` is `value` (every filter must
    /// match); the others are counted in [`Timeseries::filtered`].
    pub fn filter_label(mut self, key: &str, value: &str) -> Self {
        self.filters.push(key, value);
        self
    }

    /// The empty time series.
    pub fn build(self) -> Timeseries {
        Timeseries {
            filters: self.filters,
            ..Timeseries::new(self.window_ns)
        }
    }
}

/// Records per window of time.
///
/// ```
/// use dynostats::report::timeseries::{Timeseries, TimeseriesOptions};
/// use dynostats::{Record, RecordKind};
///
/// let mut ts = Timeseries::new(60_000_000_000); // one minute
/// for minute in 0..3u64 {
///     for i in 0..50u64 {
///         let mut r = Record::new(RecordKind::Request, "/a");
///         r.ts = minute * 60_000_000_000 + i;
///         r.cpu_ns = Some(if minute == 2 { 2000 } else { 1000 } + i % 7);
///         ts.add(&r);
///     }
/// }
/// let series = ts.analyse(TimeseriesOptions::new().alert(Some(0.02)));
/// assert_eq!(series.windows.len(), 3);
/// let alerts: Vec<bool> = series.windows.iter().map(|w| w.alert).collect();
/// assert_eq!(alerts, [false, false, true]);
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct Timeseries {
    window_ns: u64,
    windows: BTreeMap<u64, Groups>,
    filters: LabelFilters,
    records: u64,
    filtered: u64,
}

impl Timeseries {
    /// Windows of `window_ns` nanoseconds (at least 1), aligned to
    /// multiples of it since the Unix epoch.
    pub fn new(window_ns: u64) -> Timeseries {
        Timeseries {
            window_ns: window_ns.max(1),
            windows: BTreeMap::new(),
            filters: LabelFilters::default(),
            records: 0,
            filtered: 0,
        }
    }

    /// A builder for filters, with windows of `window_ns` nanoseconds.
    pub fn builder(window_ns: u64) -> TimeseriesBuilder {
        TimeseriesBuilder {
            window_ns,
            filters: LabelFilters::default(),
        }
    }

    /// Adds one record to the window of its `ts`.
    pub fn add(&mut self, record: &Record) {
        self.records += 1;
        if !matches!(record.kind, RecordKind::Request | RecordKind::Region) {
            return;
        }
        if !self.filters.matches(record) {
            self.filtered += 1;
            return;
        }
        self.windows
            .entry(record.ts / self.window_ns)
            .or_default()
            .add(record);
    }

    /// Adds the summary of one group's records in window `window` (`ts /
    /// window_ns`), computed elsewhere (a database, which also applied the
    /// filters).
    #[cfg(feature = "clickhouse")]
    pub(crate) fn add_summary(
        &mut self,
        window: u64,
        kind: RowKind,
        method: Option<&str>,
        name: &str,
        summary: &Summary,
    ) {
        self.windows
            .entry(window)
            .or_default()
            .add_summary(kind, method, name, summary);
    }

    /// Counts records read elsewhere: `records` in all, `filtered` of them
    /// left out by the label filters.
    #[cfg(feature = "clickhouse")]
    pub(crate) fn count_records(&mut self, records: u64, filtered: u64) {
        self.records += records;
        self.filtered += filtered;
    }

    /// The windows' length in nanoseconds.
    pub fn window_ns(&self) -> u64 {
        self.window_ns
    }

    /// Records added.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Records left out by the label filters.
    pub fn filtered(&self) -> u64 {
        self.filtered
    }

    /// The windows with their rows and alerts.
    pub fn analyse(&self, options: TimeseriesOptions) -> Series {
        let instructions = 0;
        let carries = self.windows.values().any(|g| g.carries(instructions));
        let (metric, fallback) = options.test.choose_metric(carries);
        let at = COMPARED
            .iter()
            .position(|&m| m == metric)
            .expect("compared");
        let kind = if self
            .windows
            .values()
            .any(|g| g.rows.iter().any(|(k, _)| k.0 == RowKind::Endpoint))
        {
            RowKind::Endpoint
        } else {
            RowKind::Region
        };
        let pooled: Vec<Moments> = self.windows.values().map(|g| g.pooled(kind, at)).collect();
        let groups_in_order: Vec<&Groups> = self.windows.values().collect();
        let mut windows = Vec::new();
        let mut previous: Option<&Groups> = None;
        // Windows in a row that rose above the threshold, for
        // `consecutive`.
        let mut run = 0;
        for (i, (&index, groups)) in self.windows.iter().enumerate() {
            let mut rows: Vec<WindowRow> = groups
                .rows
                .iter()
                .filter(|(k, _)| k.0 == kind)
                .map(|((_, method, name), row)| {
                    let m = &row.moments(COMPARED[at]);
                    let prev = previous
                        .and_then(|p| p.get(&(kind, method.clone(), name.clone())))
                        .and_then(|r| r.moments(COMPARED[at]).mean());
                    WindowRow {
                        label: row_label(method.as_deref(), name),
                        hits: row.events,
                        sampled: row.sampled,
                        cost_per_event: m.mean(),
                        total: m.mean().map(|x| x * m.weight()),
                        change: match (m.mean(), prev) {
                            (Some(now), Some(before)) if before != 0.0 => Some(now / before - 1.0),
                            _ => None,
                        },
                    }
                })
                .collect();
            rows.sort_by(|a, b| b.hits.cmp(&a.hits).then_with(|| a.label.cmp(&b.label)));
            let now = &pooled[i];
            let start = i.saturating_sub(options.baseline_windows);
            // The baseline: the preceding windows' records together, and
            // the window against it as compare's mix-adjusted overall
            // figure (per-endpoint means at the baseline's traffic mix),
            // so a shift of traffic between endpoints is not an alert.
            let mut baseline = Groups::default();
            for g in &groups_in_order[start..i] {
                baseline.merge(g);
            }
            let gate = CompareOptions::with_test(options.test);
            let figure = (i > start)
                .then(|| overall(&baseline, groups, at, &gate))
                .flatten();
            let against_baseline = figure.as_ref().and_then(|o| o.mix_adjusted);
            let decided = figure.as_ref().is_some_and(|o| {
                o.raw.samples.0 >= options.test.min_samples
                    && o.raw.samples.1 >= options.test.min_samples
            });
            let rose = match (options.alert, against_baseline) {
                (Some(p), Some(iv)) => decided && iv.low > 0.0 && iv.estimate > p,
                _ => false,
            };
            run = if rose { run + 1 } else { 0 };
            let alert = rose && run >= options.consecutive;
            let prev_mean = i.checked_sub(1).and_then(|j| pooled[j].mean());
            windows.push(Window {
                start_ns: index.saturating_mul(self.window_ns),
                hits: rows.iter().map(|r| r.hits).sum(),
                cost_per_event: now.mean(),
                change: match (now.mean(), prev_mean) {
                    (Some(a), Some(b)) if b != 0.0 => Some(a / b - 1.0),
                    _ => None,
                },
                against_baseline,
                baseline_windows: i - start,
                decided,
                alert,
                rows,
            });
            previous = Some(groups);
        }
        Series {
            metric,
            fallback,
            kind,
            window_ns: self.window_ns,
            alert_above: options.alert,
            confidence: options.test.confidence,
            windows,
        }
    }
}

impl Summarize for Timeseries {
    fn add(&mut self, record: &Record) {
        Timeseries::add(self, record);
    }

    fn needs_labels(&self) -> bool {
        !self.filters.is_empty()
    }
}

/// Options of [`Timeseries::analyse`].
#[derive(Clone, Debug)]
#[must_use]
pub struct TimeseriesOptions {
    test: TestSettings,
    alert: Option<f64>,
    baseline_windows: usize,
    consecutive: usize,
}

impl Default for TimeseriesOptions {
    fn default() -> TimeseriesOptions {
        TimeseriesOptions {
            test: TestSettings::default(),
            alert: None,
            baseline_windows: 6,
            consecutive: 1,
        }
    }
}

impl TimeseriesOptions {
    /// The defaults: metric from the records, 95% confidence, 30 samples,
    /// no alert, a baseline of the 6 preceding windows.
    pub fn new() -> TimeseriesOptions {
        TimeseriesOptions::default()
    }

    /// The metric (instructions, cycles, cpu or wall); `None`:
    /// instructions where records carry them, else CPU time.
    pub fn metric(mut self, metric: Option<Metric>) -> Self {
        self.test.metric = metric;
        self
    }

    /// The confidence of the intervals, in (0, 1).
    pub fn confidence(mut self, confidence: f64) -> Self {
        self.test.set_confidence(confidence);
        self
    }

    /// A window or baseline with fewer samples raises no alert.
    pub fn min_samples(mut self, n: u64) -> Self {
        self.test.set_min_samples(n);
        self
    }

    /// Alerts on a significant rise of the cost per request above
    /// `fraction` (0.02 for 2%) against the baseline.
    pub fn alert(mut self, fraction: Option<f64>) -> Self {
        self.alert = fraction;
        self
    }

    /// The baseline: up to this many preceding windows, pooled (at least 1).
    pub fn baseline_windows(mut self, n: usize) -> Self {
        self.baseline_windows = n.max(1);
        self
    }

    /// Alerts only when this many windows in a row (at least 1) each rose
    /// significantly above the threshold. Each window is a test at the
    /// confidence's level, so over many windows of unchanged code a few
    /// alert by chance (about `1 - confidence` of them, halved by the
    /// one-sided threshold); two in a row makes that chance roughly its
    /// square.
    pub fn consecutive(mut self, n: usize) -> Self {
        self.consecutive = n.max(1);
        self
    }
}

/// One group in one window.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct WindowRow {
    /// `GET /users/{id}` or the region name.
    pub label: String,
    /// Estimated events (hits).
    pub hits: u128,
    /// Sampled records.
    pub sampled: u64,
    /// Cost per event.
    pub cost_per_event: Option<f64>,
    /// Estimated total cost.
    pub total: Option<f64>,
    /// Relative change of the cost per event against the previous window.
    pub change: Option<f64>,
}

/// One window.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Window {
    /// Start, nanoseconds since the Unix epoch.
    pub start_ns: u64,
    /// Estimated events of all rows.
    pub hits: u128,
    /// Cost per request (or region) of the window, all groups pooled.
    pub cost_per_event: Option<f64>,
    /// Its change against the previous window.
    pub change: Option<f64>,
    /// The relative delta of the mix-adjusted cost per request against
    /// the baseline, with its interval.
    pub against_baseline: Option<Interval>,
    /// Windows in the baseline.
    pub baseline_windows: usize,
    /// Whether window and baseline had enough samples to decide.
    pub decided: bool,
    /// True when the rise is significant and above the threshold.
    pub alert: bool,
    /// Groups by hits.
    pub rows: Vec<WindowRow>,
}

/// What [`Timeseries::analyse`] returns.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Series {
    /// The metric.
    pub metric: Metric,
    /// Why it is not instructions, when not chosen.
    pub fallback: Option<String>,
    /// Endpoints, or regions when there are no requests.
    pub kind: RowKind,
    /// The window length.
    pub window_ns: u64,
    /// The alert threshold, as a fraction.
    pub alert_above: Option<f64>,
    /// The intervals' confidence.
    pub confidence: f64,
    /// The windows, oldest first.
    pub windows: Vec<Window>,
}

impl Series {
    /// True when alerts were asked for and no window could be judged (the
    /// first window has no baseline; others too few samples): "no alerts"
    /// would then mean nothing.
    pub fn nothing_judged(&self) -> bool {
        self.alert_above.is_some() && !self.windows.iter().any(|w| w.decided)
    }

    /// Windows that raised an alert.
    pub fn alerts(&self) -> impl Iterator<Item = &Window> {
        self.windows.iter().filter(|w| w.alert)
    }
}

impl Render for Series {
    /// The printed table: one block per window, laid out by the default
    /// [`TextStyle`].
    fn write_text<W: Write>(&self, out: &mut W) -> io::Result<()> {
        self.write_text_styled(&TextStyle::default(), out)
    }

    /// The printed table: one block per window, its first line broken to
    /// fit `style`'s width, alerts coloured where it has colour.
    fn write_text_styled<W: Write>(&self, style: &TextStyle, out: &mut W) -> io::Result<()> {
        let m = self.metric;
        write_metric_line(out, m, self.fallback.as_deref())?;
        writeln!(
            out,
            "windows of {} s; alerts: {}",
            self.window_ns as f64 / 1e9,
            self.alert_above.map_or_else(
                || "none (--alert not given)".to_string(),
                |p| format!(
                    "a significant ({:.0}%) rise above {} against the preceding windows",
                    self.confidence * 100.0,
                    pct(p).trim_start_matches('+')
                )
            )
        )?;
        if self.windows.is_empty() {
            writeln!(out, "(no records)")?;
        }
        for w in &self.windows {
            writeln!(out)?;
            let line = format!(
                "window {} (+{} s): {} hits, {} per {}, {} vs previous, {} vs baseline of {} {}{}",
                utc(w.start_ns),
                (w.start_ns - self.windows[0].start_ns) as f64 / 1e9,
                w.hits,
                w.cost_per_event
                    .map_or_else(|| "-".to_string(), |x| human(m, x)),
                if self.kind == RowKind::Endpoint {
                    "request"
                } else {
                    "region"
                },
                w.change.map_or_else(|| "-".to_string(), pct),
                w.against_baseline.map_or_else(
                    || "-".to_string(),
                    |i| format!("{} [{}, {}]", pct(i.estimate), pct(i.low), pct(i.high))
                ),
                w.baseline_windows,
                if w.baseline_windows == 1 {
                    "window"
                } else {
                    "windows"
                },
                if w.alert {
                    "  ALERT"
                } else if !w.decided && w.baseline_windows > 0 {
                    "  (undecided: too few samples)"
                } else {
                    ""
                }
            );
            let alert = Paint::Alarm.apply("ALERT", style.color);
            for line in wrap(&line, style.width, 4) {
                match line.strip_suffix(" ALERT") {
                    Some(rest) if w.alert => writeln!(out, "{rest} {alert}")?,
                    _ => writeln!(out, "{line}")?,
                }
            }
            for r in &w.rows {
                writeln!(
                    out,
                    "  {:<40} {:>10} hits {:>10}/event {:>10} total {:>8}",
                    cut(&escape_name(&r.label), 40),
                    r.hits,
                    r.cost_per_event
                        .map_or_else(|| "-".to_string(), |x| human(m, x)),
                    r.total.map_or_else(|| "-".to_string(), |x| human(m, x)),
                    r.change.map_or_else(|| "-".to_string(), pct),
                )?;
            }
        }
        writeln!(out)?;
        let alerts: Vec<&Window> = self.alerts().collect();
        if self.alert_above.is_some() {
            if self.nothing_judged() {
                write_wrapped(
                    out,
                    style,
                    2,
                    Some(Paint::Caution),
                    "UNDECIDED: no window could be judged (a window needs a baseline and --min-samples samples on both)",
                )?;
            } else if alerts.is_empty() {
                writeln!(out, "no alerts")?;
            } else {
                writeln!(
                    out,
                    "{} in {} windows:",
                    Paint::Alarm.apply("ALERT", style.color),
                    alerts.len()
                )?;
                for w in alerts {
                    writeln!(
                        out,
                        "  window {}: {}",
                        utc(w.start_ns),
                        w.against_baseline
                            .map_or_else(|| "-".to_string(), |i| pct(i.estimate))
                    )?;
                }
            }
        }
        Ok(())
    }

    /// The series as one JSON object.
    fn write_json<W: Write>(&self, out: &mut W) -> io::Result<()> {
        write!(
            out,
            "{{\"metric\":\"{}\",\"fallback\":{},\"kind\":\"{}\",\"window_ns\":{},\"alert_above\":{},\"confidence\":{},\"windows\":[",
            self.metric.name(),
            self.fallback
                .as_deref()
                .map_or_else(|| "null".to_string(), json_string),
            self.kind.as_str(),
            self.window_ns,
            json_num(self.alert_above),
            self.confidence
        )?;
        for (i, w) in self.windows.iter().enumerate() {
            let rows: Vec<String> = w
                .rows
                .iter()
                .map(|r| {
                    format!(
                        "{{\"name\":{},\"hits\":\"{}\",\"sampled\":{},\"cost_per_event\":{},\"total\":{},\"change\":{}}}",
                        json_string(&r.label),
                        r.hits,
                        r.sampled,
                        json_num(r.cost_per_event),
                        json_num(r.total),
                        json_num(r.change)
                    )
                })
                .collect();
            let baseline = w.against_baseline.map_or_else(
                || "null".to_string(),
                |iv| {
                    format!(
                        "{{\"estimate\":{},\"low\":{},\"high\":{}}}",
                        json_num(Some(iv.estimate)),
                        json_num(Some(iv.low)),
                        json_num(Some(iv.high))
                    )
                },
            );
            write!(
                out,
                "{}\n{{\"start_ns\":{},\"start\":{},\"hits\":\"{}\",\"cost_per_event\":{},\"change\":{},\"against_baseline\":{},\"baseline_windows\":{},\"decided\":{},\"alert\":{},\"rows\":[{}]}}",
                if i > 0 { "," } else { "" },
                w.start_ns,
                json_string(&utc(w.start_ns)),
                w.hits,
                json_num(w.cost_per_event),
                json_num(w.change),
                baseline,
                w.baseline_windows,
                w.decided,
                w.alert,
                rows.join(",")
            )?;
        }
        writeln!(out, "\n],\"alerts\":{}}}", self.alerts().count())
    }

    /// One CSV line per window and group, the window's own line with an
    /// empty name.
    fn write_csv<W: Write>(&self, out: &mut W) -> io::Result<()> {
        writeln!(
            out,
            "window_start_ns,window_start,name,hits,cost_per_event,total,change,baseline_relative,baseline_low,baseline_high,alert"
        )?;
        let f = |x: Option<f64>| x.map_or_else(String::new, |v| format!("{v}"));
        for w in &self.windows {
            writeln!(
                out,
                "{},{},,{},{},,{},{},{},{},{}",
                w.start_ns,
                utc(w.start_ns),
                w.hits,
                f(w.cost_per_event),
                f(w.change),
                f(w.against_baseline.map(|i| i.estimate)),
                f(w.against_baseline.map(|i| i.low)),
                f(w.against_baseline.map(|i| i.high)),
                w.alert
            )?;
            for r in &w.rows {
                writeln!(
                    out,
                    "{},{},{},{},{},{},{},,,,",
                    w.start_ns,
                    utc(w.start_ns),
                    csv_text(&r.label),
                    r.hits,
                    f(r.cost_per_event),
                    f(r.total),
                    f(r.change)
                )?;
            }
        }
        Ok(())
    }
}
