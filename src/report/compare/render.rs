//! A [`Comparison`] written as a table, JSON or CSV.

use std::io::{self, Write};

use super::{Comparison, MetricDelta, RowComparison, RowKind, Side, Verdict};
use crate::report::grid::{Align, Cell, Grid};
use crate::report::metric::Metric;
use crate::report::output::{
    Paint, Render, TextStyle, csv_text, cut, escape_name, human, json_num, json_string, pct,
    write_metric_line, write_wrapped,
};
use crate::report::stats::Interval;

fn pct_opt(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), pct)
}

fn human_mean(metric: Metric, x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), |v| human(metric, v))
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

/// A verdict as JSON and CSV write it: `pass`, `fail`, `slower`,
/// `faster`, `no_change` or `undecided`.
fn verdict_name(v: &Verdict) -> &'static str {
    match v {
        Verdict::NoChange => "no_change",
        Verdict::Fail => "fail",
        v => v.as_str(),
    }
}

/// The `change`, `verdict` (`null` without a gate) and, when undecided,
/// `undecided_because` members of a row or of the overall figure.
fn verdict_json(verdict: &Verdict, change: &Verdict, gated: bool) -> String {
    let mut json = format!(
        "\"change\":\"{}\",\"verdict\":{}",
        verdict_name(change),
        if gated {
            format!("\"{}\"", verdict_name(verdict))
        } else {
            "null".to_string()
        }
    );
    if let Verdict::Undecided(why) = verdict {
        json.push_str(&format!(",\"undecided_because\":{}", json_string(why)));
    }
    json
}

/// The colour of a verdict on a terminal.
fn paint(v: &Verdict) -> Option<Paint> {
    match v {
        Verdict::Fail => Some(Paint::Alarm),
        Verdict::Slower => Some(Paint::Worse),
        Verdict::Faster => Some(Paint::Better),
        _ => None,
    }
}

/// `[low, high]` of an interval, `-` without one.
fn bounds(i: Option<Interval>) -> String {
    i.map_or_else(
        || "-".to_string(),
        |i| format!("[{}, {}]", pct(i.low), pct(i.high)),
    )
}

impl Render for Comparison {
    /// The printed table, with the overall figure and the gate's summary,
    /// laid out by the default [`TextStyle`].
    fn write_text<W: Write>(&self, out: &mut W) -> io::Result<()> {
        self.write_text_styled(&TextStyle::default(), out)
    }

    /// The printed table, with the overall figure and the gate's summary,
    /// fitted to `style`.
    fn write_text_styled<W: Write>(&self, style: &TextStyle, out: &mut W) -> io::Result<()> {
        let m = self.metric;
        write_metric_line(out, m, self.fallback.as_deref())?;
        write_wrapped(
            out,
            style,
            2,
            None,
            &format!(
                "{:.0}% intervals of the relative delta (Welch, delta method); rows by |change of total cost|",
                self.confidence * 100.0
            ),
        )?;
        writeln!(out)?;
        let side_metrics = [
            (Metric::Instructions, "instr"),
            (Metric::Cycles, "cycles"),
            (Metric::CpuNs, "cpu"),
        ];
        let mut grid = Grid::new();
        grid.column("kind", Align::Left).key();
        grid.column("name", Align::Left).key().shrink_to(16);
        grid.column("n base", Align::Right);
        grid.column("n cand", Align::Right).joined();
        grid.column("base", Align::Right);
        grid.column("cand", Align::Right).joined();
        grid.column("delta", Align::Right).joined();
        grid.column("rel", Align::Right).first();
        grid.column("interval", Align::Right).first().joined();
        grid.column("total chg", Align::Right);
        for (_, header) in side_metrics {
            grid.column(header, Align::Right).optional();
        }
        grid.column("verdict", Align::Left).first();
        grid.column("", Align::Left).first().optional().joined();
        for r in &self.rows {
            let hm = r.headline.metric;
            let mut line: Vec<Cell> = vec![
                r.kind.as_str().into(),
                cut(&escape_name(&r.label), 40).into(),
                r.headline.samples.0.to_string().into(),
                r.headline.samples.1.to_string().into(),
                human_mean(hm, r.headline.mean.0).into(),
                human_mean(hm, r.headline.mean.1).into(),
                human_mean(hm, r.headline.absolute()).into(),
                pct_opt(r.headline.relative.map(|i| i.estimate)).into(),
                bounds(r.headline.relative).into(),
                human_mean(hm, r.total_change).into(),
            ];
            for (sm, _) in side_metrics {
                line.push(
                    r.metrics
                        .iter()
                        .find(|d| d.metric == sm)
                        .and_then(|d| d.relative)
                        .map_or_else(|| "-".to_string(), |i| pct(i.estimate))
                        .into(),
                );
            }
            line.push(Cell::painted(r.verdict.as_str(), paint(&r.verdict)));
            line.push(Cell::painted(
                if r.disagree { "DISAGREE" } else { "" },
                Some(Paint::Caution),
            ));
            grid.row(line);
        }
        if grid.is_empty() {
            grid.write(out, style)?;
            writeln!(out, "(no records)")?;
        } else {
            grid.write(out, style)?;
        }
        if let Some(o) = &self.overall {
            writeln!(out)?;
            let per = if o.kind == RowKind::Endpoint {
                "request"
            } else {
                "region"
            };
            let mut grid = Grid::new();
            grid.column(format!("overall, per {per}"), Align::Left)
                .key()
                .shrink_to(12);
            grid.column("base", Align::Right);
            grid.column("cand", Align::Right).joined();
            grid.column("rel", Align::Right).first();
            grid.column("interval", Align::Right).first().joined();
            grid.column("verdict", Align::Left).first();
            grid.row(vec![
                format!("mix-adjusted ({} groups)", o.groups).into(),
                human(m, o.mix_adjusted_mean.0).into(),
                human(m, o.mix_adjusted_mean.1).into(),
                pct_opt(o.mix_adjusted.map(|i| i.estimate)).into(),
                bounds(o.mix_adjusted).into(),
                Cell::painted(o.verdict.as_str(), paint(&o.verdict)),
            ]);
            grid.row(vec![
                "raw".into(),
                human_mean(m, o.raw.mean.0).into(),
                human_mean(m, o.raw.mean.1).into(),
                pct_opt(o.raw.relative.map(|i| i.estimate)).into(),
                bounds(o.raw.relative).into(),
                "".into(),
            ]);
            grid.write(out, style)?;
            write_wrapped(
                out,
                style,
                2,
                None,
                "mix-adjusted: the candidate's cost per group at the base's traffic mix (the groups both sides have), so a shift of traffic is not a change in code; raw: each side's own mix",
            )?;
        }
        writeln!(out)?;
        if self.rows.iter().any(|r| r.disagree) {
            write_wrapped(
                out,
                style,
                2,
                Some(Paint::Caution),
                "DISAGREE: the metrics' deltas differ beyond their noise (e.g. instructions flat, time up: cache misses, contention)",
            )?;
        }
        if self.folded != (0, 0) {
            write_wrapped(
                out,
                style,
                2,
                None,
                &format!(
                    "<other>: {} base and {} candidate records of groups beyond the first {} of a side are compared together in the <other> rows",
                    self.folded.0,
                    self.folded.1,
                    Side::MAX_GROUPS
                ),
            )?;
        }
        match self.fail_above {
            None => write_wrapped(
                out,
                style,
                2,
                None,
                "gate: none (--fail-above not given): each row says what its interval says (slower, faster, no change)",
            )?,
            Some(p) => {
                let offenders: Vec<&RowComparison> = self.offenders().collect();
                let overall_failed = self
                    .overall
                    .as_ref()
                    .is_some_and(|o| o.verdict == Verdict::Fail);
                if self.nothing_judged() {
                    write_wrapped(
                        out,
                        style,
                        2,
                        Some(Paint::Caution),
                        "UNDECIDED: the gate had nothing to judge (no group, and no overall figure, with --min-samples on both sides)",
                    )?;
                } else if offenders.is_empty() && !overall_failed {
                    writeln!(
                        out,
                        "PASS: no significant regression above {}",
                        pct(p).trim_start_matches('+')
                    )?;
                } else {
                    write_wrapped(
                        out,
                        style,
                        2,
                        Some(Paint::Alarm),
                        &format!(
                            "FAIL: significant regressions above {}:",
                            pct(p).trim_start_matches('+')
                        ),
                    )?;
                    for r in offenders {
                        write_wrapped(
                            out,
                            style,
                            4,
                            None,
                            &format!(
                                "  {} {}: {} {}",
                                r.kind.as_str(),
                                escape_name(&r.label),
                                pct_opt(r.headline.relative.map(|i| i.estimate)),
                                bounds(r.headline.relative),
                            ),
                        )?;
                    }
                    if let Some(o) = self.overall.as_ref().filter(|_| overall_failed) {
                        writeln!(
                            out,
                            "  overall (mix-adjusted): {} {}",
                            pct_opt(o.mix_adjusted.map(|i| i.estimate)),
                            bounds(o.mix_adjusted),
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
                    write_wrapped(
                        out,
                        style,
                        4,
                        None,
                        &format!("  {}: {}", r.kind.as_str(), escape_name(why)),
                    )?;
                }
            }
        }
        if let Some(Verdict::Undecided(why)) = self.overall.as_ref().map(|o| &o.verdict) {
            write_wrapped(out, style, 2, None, &format!("UNDECIDED overall: {why}"))?;
        }
        Ok(())
    }

    /// The comparison as one JSON object.
    fn write_json<W: Write>(&self, out: &mut W) -> io::Result<()> {
        let gated = self.fail_above.is_some();
        write!(
            out,
            "{{\"metric\":\"{}\",\"fallback\":{},\"confidence\":{},\"fail_above\":{},\"min_samples\":{},\"failed\":{},\"rows\":[",
            self.metric.name(),
            self.fallback
                .as_deref()
                .map_or_else(|| "null".to_string(), json_string),
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
                json_string(&r.label),
                r.sampled.0,
                r.sampled.1,
                r.events.0,
                r.events.1,
                metric_json(&r.headline),
                metrics.join(","),
                r.disagree,
                json_num(r.total_change),
                verdict_json(&r.verdict, &r.change(), gated)
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
                verdict_json(&o.verdict, &o.change(), gated)
            )?,
        }
        writeln!(out, "}}")
    }

    /// One CSV line per row (the overall figure last, kind `overall`).
    fn write_csv<W: Write>(&self, out: &mut W) -> io::Result<()> {
        writeln!(
            out,
            "kind,name,metric,samples_base,samples_cand,events_base,events_cand,mean_base,mean_cand,absolute,relative,low,high,total_change,instructions_rel,cycles_rel,cpu_ns_rel,disagree,change,verdict"
        )?;
        let f = |x: Option<f64>| x.map_or_else(String::new, |v| format!("{v}"));
        let gated = |v: &Verdict| {
            if self.fail_above.is_some() {
                verdict_name(v)
            } else {
                ""
            }
        };
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
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                r.kind.as_str(),
                csv_text(&r.label),
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
                verdict_name(&r.change()),
                gated(&r.verdict)
            )?;
        }
        if let Some(o) = &self.overall {
            writeln!(
                out,
                "overall,mix-adjusted,{},{},{},,,{},{},{},{},{},{},,,,,,{},{}",
                self.metric.name(),
                o.raw.samples.0,
                o.raw.samples.1,
                o.mix_adjusted_mean.0,
                o.mix_adjusted_mean.1,
                o.mix_adjusted_mean.1 - o.mix_adjusted_mean.0,
                f(o.mix_adjusted.map(|i| i.estimate)),
                f(o.mix_adjusted.map(|i| i.low)),
                f(o.mix_adjusted.map(|i| i.high)),
                verdict_name(&o.change()),
                gated(&o.verdict)
            )?;
        }
        Ok(())
    }
}
