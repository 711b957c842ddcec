//! [`Table`]: a report printed one row per group, or serialized.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::drops::Drops;
use super::format::{human, human_opt};
use super::metric::{Metric, MetricStats};
use super::{Group, Report};
use crate::record::RecordKind;

/// The order of a [`Table`]'s rows. Numbers sort largest first, rows
/// without a value last.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SortBy {
    /// The headline metric's estimated total.
    #[default]
    Total,
    /// The headline metric's mean per event.
    Mean,
    /// The headline metric's median.
    P50,
    /// The headline metric's 99th percentile.
    P99,
    /// Estimated events.
    Events,
    /// Sampled records.
    Sampled,
    /// Kind, name and method, alphabetically.
    Name,
}

impl SortBy {
    /// Every order, as the `dynostats report --sort` values list them.
    pub const ALL: [SortBy; 7] = [
        SortBy::Total,
        SortBy::Mean,
        SortBy::P50,
        SortBy::P99,
        SortBy::Events,
        SortBy::Sampled,
        SortBy::Name,
    ];

    /// The order's name: `total`, `mean`, `p50`, `p99`, `events`,
    /// `sampled` or `name`.
    pub fn name(self) -> &'static str {
        match self {
            SortBy::Total => "total",
            SortBy::Mean => "mean",
            SortBy::P50 => "p50",
            SortBy::P99 => "p99",
            SortBy::Events => "events",
            SortBy::Sampled => "sampled",
            SortBy::Name => "name",
        }
    }
}

impl fmt::Display for SortBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SortBy {
    type Err = String;

    /// Parses [`SortBy::name`].
    fn from_str(s: &str) -> Result<SortBy, String> {
        SortBy::ALL
            .into_iter()
            .find(|o| o.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = SortBy::ALL.iter().map(|o| o.name()).collect();
                format!("unknown order {s:?}: expected one of {}", names.join(", "))
            })
    }
}

/// A view of a [`Report`] for printing: one row per group, the headline
/// metric's statistics, wall time and RSS change, then the drops and the
/// unavailable counters. Serializes (with serde) to every metric's
/// statistics.
#[derive(Clone, Copy, Debug)]
pub struct Table<'a> {
    report: &'a Report,
    sort: SortBy,
    kind: Option<RecordKind>,
}

impl<'a> Table<'a> {
    /// All groups of `report`, sorted by the headline's total.
    pub(super) fn new(report: &'a Report) -> Table<'a> {
        Table {
            report,
            sort: SortBy::default(),
            kind: None,
        }
    }

    /// Orders the rows by `sort`.
    #[must_use]
    pub fn sort(mut self, sort: SortBy) -> Self {
        self.sort = sort;
        self
    }

    /// Keeps only the groups of `kind` (all kinds with `None`).
    #[must_use]
    pub fn kind(mut self, kind: Option<RecordKind>) -> Self {
        self.kind = kind;
        self
    }

    /// The rows, filtered and sorted, with the headline's statistics.
    fn rows(&self) -> Vec<(&'a Group, MetricStats)> {
        let headline = self.report.headline();
        let mut rows: Vec<_> = self
            .report
            .groups()
            .filter(|g| self.kind.is_none_or(|k| g.kind == k))
            .map(|g| (g, g.stats(headline)))
            .collect();
        // Stable: equal keys stay in name order.
        match self.sort {
            SortBy::Name => {}
            SortBy::Events => rows.sort_by_key(|r| Reverse(r.0.events)),
            SortBy::Sampled => rows.sort_by_key(|r| Reverse(r.0.sampled)),
            SortBy::Total => rows.sort_by_key(|r| Reverse((r.1.samples > 0, r.1.total))),
            SortBy::Mean => rows.sort_by(|a, b| {
                let key = |s: &MetricStats| s.mean_per_event.unwrap_or(f64::NEG_INFINITY);
                key(&b.1).total_cmp(&key(&a.1))
            }),
            // `None` sorts below any value: last once reversed.
            SortBy::P50 => rows.sort_by_key(|r| Reverse(r.1.p50)),
            SortBy::P99 => rows.sort_by_key(|r| Reverse(r.1.p99)),
        }
        rows
    }
}

impl fmt::Display for Table<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let report = self.report;
        let headline = report.headline();
        let (short, title) = match headline {
            Metric::Instructions => ("instr", "instructions (user space)".to_string()),
            _ => (
                "CPU",
                "CPU time (cpu_ns): no record carries instructions".to_string(),
            ),
        };
        writeln!(f, "headline: {title}")?;
        let cpu_column = headline != Metric::CpuNs;
        let mut header: Vec<String> = [
            "kind",
            "name",
            "sampled",
            "est.events",
            "cancelled",
            "errors",
            "forced",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for what in ["total", "/event", "p50", "p99", "absent"] {
            header.push(format!("{short} {what}"));
        }
        if cpu_column {
            header.push("CPU /event".into());
        }
        header.extend(["wall p50", "wall p99", "RSS Δ p50"].map(String::from));
        let mut lines = vec![header];
        for (group, stats) in self.rows() {
            let wall = group.stats(Metric::WallNs);
            let mut line = vec![
                group.kind.as_str().to_string(),
                group.label(),
                group.sampled.to_string(),
                group.events.to_string(),
                group.cancelled.to_string(),
                group.errors.to_string(),
                group.forced.to_string(),
                if stats.samples > 0 {
                    human(headline, stats.total as f64)
                } else {
                    "-".into()
                },
                stats
                    .mean_per_event
                    .map_or_else(|| "-".into(), |m| human(headline, m)),
                human_opt(headline, stats.p50),
                human_opt(headline, stats.p99),
                stats.absent.to_string(),
            ];
            if cpu_column {
                line.push(
                    group
                        .stats(Metric::CpuNs)
                        .mean_per_event
                        .map_or_else(|| "-".into(), |m| human(Metric::CpuNs, m)),
                );
            }
            line.push(human_opt(Metric::WallNs, wall.p50));
            line.push(human_opt(Metric::WallNs, wall.p99));
            line.push(human_opt(
                Metric::RssChange,
                group.stats(Metric::RssChange).p50,
            ));
            lines.push(line);
        }
        let columns = lines[0].len();
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                lines
                    .iter()
                    .map(|l| l[c].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for line in &lines {
            let mut text = String::new();
            for (c, cell) in line.iter().enumerate() {
                let pad = widths[c] - cell.chars().count();
                if c > 0 {
                    text.push_str("  ");
                }
                // Kind and name to the left, numbers to the right.
                if c < 2 {
                    text.push_str(cell);
                    text.extend(std::iter::repeat_n(' ', pad));
                } else {
                    text.extend(std::iter::repeat_n(' ', pad));
                    text.push_str(cell);
                }
            }
            writeln!(f, "{}", text.trim_end())?;
        }
        if lines.len() == 1 {
            writeln!(f, "(no records)")?;
        }

        writeln!(f)?;
        let drops = report.drops();
        writeln!(
            f,
            "{} records read, {} of them status records",
            report.records, drops.status_records
        )?;
        if drops.status_records == 0 {
            writeln!(
                f,
                "no status records: whether the writer dropped records is unknown"
            )?;
        } else if drops.any() {
            writeln!(
                f,
                "WARNING: the writer dropped records, the table is missing them: \
                 {} (queue full), {} (emitted after shutdown)",
                drops.queue_full, drops.closed
            )?;
            for (sink, d) in &drops.sinks {
                if d.sink_error > 0 || d.by_sink > 0 {
                    writeln!(
                        f,
                        "WARNING: sink {sink} dropped {} records on errors, {} itself",
                        d.sink_error, d.by_sink
                    )?;
                }
            }
        } else {
            writeln!(
                f,
                "no records dropped (as of each writer's last status record)"
            )?;
        }
        for (counter, why) in &report.unavailable {
            writeln!(f, "unavailable: {counter}: {why}")?;
        }
        f.write_str(
            "est.events = sum of weights. Over completed sampled records: total = estimated \
             total (sum of weight x value),\n/event = total / their events, p50 and p99 = \
             exact nearest-rank quantiles of the sampled values (unweighted),\nabsent = records \
             without the counter (not measured, not 0). Cancelled, failed and forced (weight 0) \
             records are counted, not measured.\n",
        )
    }
}

/// One group in the serialized table.
#[derive(Serialize)]
struct GroupView<'a> {
    kind: &'static str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<&'a str>,
    sampled: u64,
    events: u128,
    cancelled: u64,
    errors: u64,
    forced: u64,
    metrics: BTreeMap<&'static str, MetricStats>,
}

/// The serialized table.
#[derive(Serialize)]
struct TableView<'a> {
    headline: &'static str,
    records: u64,
    drops: Drops,
    unavailable: &'a BTreeMap<String, String>,
    groups: Vec<GroupView<'a>>,
}

impl Serialize for Table<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let groups = self
            .rows()
            .into_iter()
            .map(|(g, _)| GroupView {
                kind: g.kind.as_str(),
                name: &g.name,
                method: g.method.as_deref(),
                sampled: g.sampled,
                events: g.events,
                cancelled: g.cancelled,
                errors: g.errors,
                forced: g.forced,
                metrics: Metric::ALL
                    .iter()
                    .map(|&m| (m.name(), g.stats(m)))
                    .collect(),
            })
            .collect();
        TableView {
            headline: self.report.headline().name(),
            records: self.report.records,
            drops: self.report.drops(),
            unavailable: &self.report.unavailable,
            groups,
        }
        .serialize(serializer)
    }
}
