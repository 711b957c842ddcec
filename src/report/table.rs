//! [`Table`]: a report printed one row per group, or written as JSON or
//! CSV, streamed row by row.

use std::cmp::Reverse;
use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use super::grid::{Align, Cell, Grid};
use super::groups::{Group, Report};
use super::metric::{Bound, Metric, MetricStats};
use super::output::{
    Render, TextStyle, csv_text, cut, escape_name, human, human_opt, json_int, json_num,
    json_opt_int, json_string, write_wrapped,
};
use super::sketch::Sketch;
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
    /// The headline metric's median (per event).
    P50,
    /// The headline metric's 99th percentile (per event).
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
/// metric's statistics, CPU and cycles per event, wall time and RSS
/// change, then the drops and the unavailable counters. Written as text
/// ([`fmt::Display`], [`Table::write_text`]), JSON ([`Table::write_json`])
/// or CSV ([`Table::write_csv`]).
#[derive(Clone, Copy, Debug)]
pub struct Table<'a> {
    report: &'a Report,
    sort: SortBy,
    kind: Option<RecordKind>,
    metric: Option<Metric>,
    name_width: Option<usize>,
}

impl<'a> Table<'a> {
    /// Longest name shown in the table by default, in terminal columns;
    /// longer ones are cut with `…` ([`Table::name_width`]).
    pub const DEFAULT_NAME_WIDTH: usize = 60;

    /// All groups of `report`, sorted by the headline's total.
    pub(super) fn new(report: &'a Report) -> Table<'a> {
        Table {
            report,
            sort: SortBy::default(),
            kind: None,
            metric: None,
            name_width: Some(Table::DEFAULT_NAME_WIDTH),
        }
    }

    /// Sorts the rows by `sort`.
    #[must_use]
    pub fn sort(mut self, sort: SortBy) -> Self {
        self.sort = sort;
        self
    }

    /// Keeps only the rows of `kind` (`None`: every kind).
    #[must_use]
    pub fn kind(mut self, kind: Option<RecordKind>) -> Self {
        self.kind = kind;
        self
    }

    /// Leads with `metric` instead of the report's headline
    /// ([`Report::headline`]; `None` keeps it).
    #[must_use]
    pub fn metric(mut self, metric: Option<Metric>) -> Self {
        self.metric = metric;
        self
    }

    /// Cuts names in the text table to `columns` terminal columns
    /// ([`Table::DEFAULT_NAME_WIDTH`]); `None` shows them whole. Names are
    /// escaped either way.
    #[must_use]
    pub fn name_width(mut self, columns: Option<usize>) -> Self {
        self.name_width = columns;
        self
    }

    /// The metric the table leads with.
    pub fn headline(&self) -> Metric {
        self.metric.unwrap_or_else(|| self.report.headline())
    }

    /// The rows, filtered and sorted, with the headline's statistics.
    fn rows(&self) -> Vec<(&'a Group, MetricStats)> {
        let headline = self.headline();
        let mut rows: Vec<_> = self
            .report
            .groups()
            .filter(|g| self.kind.is_none_or(|k| g.kind == k))
            .map(|g| (g, g.stats(headline)))
            .collect();
        // Stable: equal keys stay in name order.
        match self.sort {
            SortBy::Name => {}
            SortBy::Events => rows.sort_by_key(|r| Reverse(r.0.events())),
            SortBy::Sampled => rows.sort_by_key(|r| Reverse(r.0.sampled())),
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

    fn short(metric: Metric) -> &'static str {
        match metric {
            Metric::Instructions => "instr",
            Metric::Cycles => "cycles",
            Metric::CpuNs => "CPU",
            Metric::WallNs => "wall",
            Metric::RssChange => "RSS Δ",
        }
    }

    fn title(&self) -> String {
        let headline = self.headline();
        match (self.metric, headline) {
            (None, Metric::Instructions) => "instructions (user space)".to_string(),
            (None, _) => "CPU time (cpu_ns): no record carries instructions".to_string(),
            (Some(Metric::Instructions), _) => "instructions (user space)".to_string(),
            (Some(Metric::Cycles), _) => "cycles (user space)".to_string(),
            (Some(Metric::CpuNs), _) => "CPU time (cpu_ns)".to_string(),
            (Some(Metric::WallNs), _) => "wall time (wall_ns)".to_string(),
            (Some(Metric::RssChange), _) => "RSS change (rss_end - rss_start)".to_string(),
        }
    }
}

/// A total, or a mean per event computed from it, as the table and the CSV
/// write it: as is, or, when the total saturated ([`MetricStats::saturated`]),
/// `>=` before it (a lower bound: the sum stopped at `i128::MAX`) or `<=`
/// (an upper bound, at `i128::MIN`).
fn bounded(stats: &MetricStats, cell: String) -> String {
    match stats.bound() {
        None => cell,
        Some(Bound::Lower) => format!(">={cell}"),
        Some(Bound::Upper) => format!("<={cell}"),
    }
}

impl fmt::Display for Table<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = Vec::new();
        self.write_text(&mut text).map_err(|_| fmt::Error)?;
        f.write_str(&String::from_utf8_lossy(&text))
    }
}

impl Render for Table<'_> {
    /// Writes the text table, its notes and the drops to `out`, laid out
    /// by the default [`TextStyle`].
    fn write_text<W: Write>(&self, out: &mut W) -> io::Result<()> {
        self.write_text_styled(&TextStyle::default(), out)
    }

    /// Writes the text table, its notes and the drops to `out`, fitted to
    /// `style` (see [`TextStyle`]).
    fn write_text_styled<W: Write>(&self, style: &TextStyle, out: &mut W) -> io::Result<()> {
        let report = self.report;
        let headline = self.headline();
        writeln!(out, "headline: {}", self.title())?;
        let short = Self::short(headline);
        let cpu_column = headline != Metric::CpuNs;
        let cycles_column = headline != Metric::Cycles && report.carries(Metric::Cycles);
        let splits = report.splits();
        let mut grid = Grid::new();
        grid.column("kind", Align::Left).key();
        grid.column("name", Align::Left).key().shrink_to(16);
        for split in splits {
            grid.column(split.title(), Align::Left).key().shrink_to(8);
        }
        grid.column("sampled", Align::Right);
        grid.column("events", Align::Right);
        for count in ["cancelled", "errors", "forced"] {
            grid.column(count, Align::Right).optional();
        }
        grid.column(format!("{short} total"), Align::Right);
        grid.column("/event", Align::Right);
        grid.column("p50", Align::Right);
        grid.column("p99", Align::Right).joined();
        grid.column("absent", Align::Right).optional();
        if cpu_column {
            grid.column("CPU /event", Align::Right).optional();
        }
        if cycles_column {
            grid.column("cycles /event", Align::Right).optional();
        }
        grid.column("wall p50", Align::Right).optional();
        grid.column("wall p99", Align::Right).optional().joined();
        grid.column("RSS Δ p50", Align::Right).optional();
        let mut approximate = false;
        for (group, stats) in self.rows() {
            approximate |= !stats.exact;
            let wall = group.stats(Metric::WallNs);
            let mut name = escape_name(&group.label());
            if let Some(max) = self.name_width {
                name = cut(&name, max);
            }
            let mut line: Vec<Cell> = vec![group.kind.as_str().into(), name.into()];
            for i in 0..splits.len() {
                line.push(Cell::from(match group.split.get(i) {
                    Some(v) => cut(&escape_name(v), self.name_width.unwrap_or(usize::MAX)),
                    None => "-".into(),
                }));
            }
            line.extend(
                [
                    group.sampled().to_string(),
                    group.events().to_string(),
                    group.cancelled().to_string(),
                    group.errors().to_string(),
                    group.forced().to_string(),
                    if stats.samples > 0 {
                        bounded(&stats, human(headline, stats.total as f64))
                    } else {
                        "-".into()
                    },
                    stats
                        .mean_per_event
                        .map_or_else(|| "-".into(), |m| bounded(&stats, human(headline, m))),
                    human_opt(headline, stats.p50),
                    human_opt(headline, stats.p99),
                    stats.absent.to_string(),
                ]
                .map(Cell::from),
            );
            for (show, metric) in [(cpu_column, Metric::CpuNs), (cycles_column, Metric::Cycles)] {
                if show {
                    let s = group.stats(metric);
                    line.push(Cell::from(
                        s.mean_per_event
                            .map_or_else(|| "-".into(), |m| bounded(&s, human(metric, m))),
                    ));
                }
            }
            approximate |= !wall.exact;
            line.push(human_opt(Metric::WallNs, wall.p50).into());
            line.push(human_opt(Metric::WallNs, wall.p99).into());
            line.push(human_opt(Metric::RssChange, group.stats(Metric::RssChange).p50).into());
            grid.row(line);
        }
        let empty = grid.is_empty();
        let dropped = grid.write(out, style)?;
        if empty {
            writeln!(out, "(no records)")?;
        }
        writeln!(out)?;
        if !dropped.is_empty() && !empty {
            write_wrapped(
                out,
                style,
                2,
                None,
                &format!(
                    "not shown, 0 or none in every row: {} (--all-columns shows them)",
                    dropped.join(", ")
                ),
            )?;
        }
        let drops = report.drops();
        write_wrapped(
            out,
            style,
            2,
            None,
            &format!(
                "{} records read, {} of them status records",
                report.records(),
                drops.status_records
            ),
        )?;
        if report.filtered() > 0 {
            write_wrapped(
                out,
                style,
                2,
                None,
                &format!(
                    "{} records left out by the label filters",
                    report.filtered()
                ),
            )?;
        }
        if report.folded() > 0 {
            write_wrapped(
                out,
                style,
                2,
                None,
                &format!(
                    "{} records of groups beyond the first {} folded into <other> (--max-groups)",
                    report.folded(),
                    report.max_groups()
                ),
            )?;
        }
        if report.newer_versions() > 0 {
            write_wrapped(
                out,
                style,
                2,
                None,
                &format!(
                    "WARNING: {} records of a newer schema version than {} were read for the fields \
                 this reader knows",
                    report.newer_versions(),
                    crate::record::Record::SCHEMA_VERSION
                ),
            )?;
        }
        if drops.status_records == 0 {
            write_wrapped(
                out,
                style,
                2,
                None,
                "no status records: whether the writer dropped records is unknown",
            )?;
        } else if drops.any() {
            write_wrapped(
                out,
                style,
                2,
                None,
                &format!(
                    "WARNING: the writer dropped records, the table is missing them: \
                 {} (queue full), {} (emitted after shutdown)",
                    drops.queue_full, drops.closed
                ),
            )?;
            if drops.own.total() > 0 {
                write_wrapped(
                    out,
                    style,
                    2,
                    None,
                    &format!(
                        "WARNING: the sink that wrote these records lost {} of them: \
                     {} (its backlog was full), {} (on errors), {} (by itself)",
                        drops.own.total(),
                        drops.own.sink_full,
                        drops.own.sink_error,
                        drops.own.by_sink
                    ),
                )?;
            }
            for (sink, d) in &drops.sinks {
                if d.total() > 0 {
                    write_wrapped(
                        out,
                        style,
                        2,
                        None,
                        &format!(
                            "WARNING: sink {} lost {} records: {} (its backlog was full), \
                         {} (on errors), {} (by itself)",
                            escape_name(sink),
                            d.total(),
                            d.sink_full,
                            d.sink_error,
                            d.by_sink
                        ),
                    )?;
                }
            }
        } else {
            write_wrapped(
                out,
                style,
                2,
                None,
                "no records dropped (as of each writer's last status record)",
            )?;
        }
        for (counter, why) in report.unavailable() {
            write_wrapped(
                out,
                style,
                2,
                None,
                &format!(
                    "unavailable: {}: {}",
                    escape_name(counter),
                    escape_name(why)
                ),
            )?;
        }
        let quantiles = if approximate {
            format!(
                "within {:.1}% where a group has more than {} distinct values, else exact",
                Sketch::RELATIVE_ERROR * 100.0,
                Sketch::EXACT_MAX
            )
        } else {
            "exact".to_string()
        };
        for note in [
            format!(
                "events = estimated events (sum of weights). Over completed sampled records: \
                 total = estimated total (sum of weight x value), /event = total / their events, \
                 p50 and p99 = quantiles per event (each value weighted by its record's weight), \
                 {quantiles}; absent = records without the counter (not measured, not 0)."
            ),
            "Cancelled, failed and forced (weight 0) records are counted, not measured."
                .to_string(),
        ] {
            write_wrapped(out, style, 0, None, &note)?;
        }
        Ok(())
    }

    /// Writes the table as one JSON object, streamed group by group:
    /// `headline`, `quantiles` (what p50 and p99 mean), `records`,
    /// `filtered`, `folded`, `newer_versions`, `drops`, `unavailable` and
    /// `groups` (each with every metric's statistics). Integers beyond
    /// 2^53 ([`JSON_MAX_SAFE_INTEGER`](super::output::JSON_MAX_SAFE_INTEGER)) are written as strings of digits,
    /// so jq and JavaScript keep them exact.
    fn write_json<W: Write>(&self, out: &mut W) -> io::Result<()> {
        let report = self.report;
        let drops = report.drops();
        write!(
            out,
            "{{\"headline\":{},\"quantiles\":{},\"relative_error\":{},\"records\":{},\
             \"filtered\":{},\"folded\":{},\"max_groups\":{},\"newer_versions\":{},",
            json_string(self.headline().name()),
            json_string("per event: values weighted by their records' weights, nearest rank"),
            Sketch::RELATIVE_ERROR,
            json_int(i128::from(report.records())),
            json_int(i128::from(report.filtered())),
            json_int(i128::from(report.folded())),
            json_int(report.max_groups() as i128),
            json_int(i128::from(report.newer_versions())),
        )?;
        let big = |x: u128| json_int(i128::try_from(x).unwrap_or(i128::MAX));
        write!(
            out,
            "\"drops\":{{\"status_records\":{},\"processes\":{},\"queue_full\":{},\"closed\":{},\
             \"sinks\":{{",
            json_int(i128::from(drops.status_records)),
            json_int(i128::from(drops.processes)),
            big(drops.queue_full),
            big(drops.closed)
        )?;
        let counts = |d: &super::SinkDrops| {
            format!(
                "{{\"sink_full\":{},\"sink_error\":{},\"by_sink\":{}}}",
                big(d.sink_full),
                big(d.sink_error),
                big(d.by_sink)
            )
        };
        for (i, (sink, d)) in drops.sinks.iter().enumerate() {
            write!(
                out,
                "{}{}:{}",
                if i > 0 { "," } else { "" },
                json_string(sink),
                counts(d)
            )?;
        }
        write!(
            out,
            "}},\"own\":{}}},\"unavailable\":{{",
            counts(&drops.own)
        )?;
        for (i, (counter, why)) in report.unavailable().iter().enumerate() {
            let sep = if i > 0 { "," } else { "" };
            write!(out, "{sep}{}:{}", json_string(counter), json_string(why))?;
        }
        write!(out, "}},\"groups\":[")?;
        for (i, (g, _)) in self.rows().into_iter().enumerate() {
            write!(
                out,
                "{}\n{{\"kind\":{},\"name\":{},",
                if i > 0 { "," } else { "" },
                json_string(g.kind.as_str()),
                json_string(&g.name)
            )?;
            if let Some(method) = &g.method {
                write!(out, "\"method\":{},", json_string(method))?;
            }
            if g.other {
                write!(out, "\"other\":true,")?;
            }
            if !report.splits().is_empty() {
                write!(out, "\"split\":{{")?;
                for (j, (split, value)) in report.splits().iter().zip(&g.split).enumerate() {
                    let sep = if j > 0 { "," } else { "" };
                    write!(
                        out,
                        "{sep}{}:{}",
                        json_string(&split.title()),
                        json_string(value)
                    )?;
                }
                write!(out, "}},")?;
            }
            write!(
                out,
                "\"sampled\":{},\"events\":{},\"cancelled\":{},\"errors\":{},\"forced\":{},\
                 \"metrics\":{{",
                json_int(i128::from(g.sampled())),
                big(g.events()),
                json_int(i128::from(g.cancelled())),
                json_int(i128::from(g.errors())),
                json_int(i128::from(g.forced()))
            )?;
            for (j, metric) in Metric::ALL.into_iter().enumerate() {
                let s = g.stats(metric);
                write!(
                    out,
                    "{}{}:{{\"samples\":{},\"absent\":{},\"total\":{},\"saturated\":{},\
                     \"events\":{},\"mean_per_event\":{},\"p50\":{},\"p99\":{},\"exact\":{}",
                    if j > 0 { "," } else { "" },
                    json_string(metric.name()),
                    json_int(i128::from(s.samples)),
                    json_int(i128::from(s.absent)),
                    // Absent is never 0: no record carried the metric.
                    if s.samples == 0 {
                        "null".to_string()
                    } else {
                        json_int(s.total)
                    },
                    s.saturated,
                    big(s.events),
                    json_num(s.mean_per_event),
                    json_opt_int(s.p50),
                    json_opt_int(s.p99),
                    s.exact
                )?;
                // Only when saturated: every other input's output is unchanged.
                if let Some(b) = s.bound() {
                    write!(out, ",\"mean_per_event_bound\":{}", json_string(b.name()))?;
                }
                write!(out, "}}")?;
            }
            write!(out, "}}}}")?;
        }
        writeln!(out, "\n]}}")
    }

    /// Writes one CSV line per group after a header line: kind, name
    /// (escaped like the table's, whole), method, the splits, the counts,
    /// and for every metric its samples, absent, total, mean per event, p50
    /// and p99 (empty when there is none). Integers are exact; a saturated
    /// total and its mean per event are written `>=N` (`<=N` at the
    /// negative bound), as in the table.
    fn write_csv<W: Write>(&self, out: &mut W) -> io::Result<()> {
        let mut header = vec!["kind".to_string(), "name".into(), "method".into()];
        header.extend(self.report.splits().iter().map(|s| s.title()));
        header.extend(
            [
                "other",
                "sampled",
                "events",
                "cancelled",
                "errors",
                "forced",
            ]
            .map(String::from),
        );
        for metric in Metric::ALL {
            for what in ["samples", "absent", "total", "mean_per_event", "p50", "p99"] {
                header.push(format!("{}_{what}", metric.name()));
            }
        }
        let header: Vec<String> = header.iter().map(|h| csv_text(h)).collect();
        writeln!(out, "{}", header.join(","))?;
        let opt = |x: Option<i128>| x.map_or_else(String::new, |v| v.to_string());
        for (g, _) in self.rows() {
            let mut line = vec![
                g.kind.as_str().to_string(),
                csv_text(&g.name),
                csv_text(g.method.as_deref().unwrap_or("")),
            ];
            line.extend(g.split.iter().map(|v| csv_text(v)));
            line.extend([
                g.other.to_string(),
                g.sampled().to_string(),
                g.events().to_string(),
                g.cancelled().to_string(),
                g.errors().to_string(),
                g.forced().to_string(),
            ]);
            for metric in Metric::ALL {
                let s = g.stats(metric);
                line.extend([
                    s.samples.to_string(),
                    s.absent.to_string(),
                    // Absent is never 0: no record carried the metric.
                    if s.samples == 0 {
                        String::new()
                    } else {
                        bounded(&s, s.total.to_string())
                    },
                    s.mean_per_event
                        .map_or_else(String::new, |m| bounded(&s, m.to_string())),
                    opt(s.p50),
                    opt(s.p99),
                ]);
            }
            writeln!(out, "{}", line.join(","))?;
        }
        Ok(())
    }
}
