//! A [`Comparison`] written as a table, JSON or CSV.

use std::io::{self, Write};

use super::{Comparison, MetricDelta, RowComparison, RowKind, Side, Verdict};
use crate::report::metric::Metric;
use crate::report::output::{
    Render, csv_text, cut, escape_name, human, json_num, json_string, pct, write_metric_line,
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

fn verdict_json(v: &Verdict) -> String {
    match v {
        Verdict::Undecided(why) => format!(
            "\"verdict\":\"undecided\",\"undecided_because\":{}",
            json_string(why)
        ),
        v => format!("\"verdict\":\"{}\"", v.as_str().to_lowercase()),
    }
}

impl Render for Comparison {
    /// The printed table, with the overall figure and the gate's summary.
    fn write_text<W: Write>(&self, out: &mut W) -> io::Result<()> {
        let m = self.metric;
        write_metric_line(out, m, self.fallback.as_deref())?;
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
                "DISAGREE: the metrics' deltas differ beyond their noise (e.g. instructions flat, time up: cache misses, contention)"
            )?;
        }
        if self.folded != (0, 0) {
            writeln!(
                out,
                "<other>: {} base and {} candidate records of groups beyond the first {} of a side are compared together in the <other> rows",
                self.folded.0,
                self.folded.1,
                Side::MAX_GROUPS
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
                if self.nothing_judged() {
                    writeln!(
                        out,
                        "UNDECIDED: the gate had nothing to judge (no group, and no overall figure, with --min-samples on both sides)"
                    )?;
                } else if offenders.is_empty() && !overall_failed {
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
    fn write_json<W: Write>(&self, out: &mut W) -> io::Result<()> {
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
    fn write_csv<W: Write>(&self, out: &mut W) -> io::Result<()> {
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
