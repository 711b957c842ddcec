//! `dynostats`: reads record files back.
//!
//! ```text
//! dynostats report [--metric instructions|cycles|cpu|wall|rss]
//!                  [--sort total|mean|p50|p99|events|sampled|name]
//!                  [--kind request|region] [--by status|label=KEY]...
//!                  [--label KEY=VALUE]... [--max-groups N] [--wide]
//!                  [--format table|json|csv] [--strict] [--rotated] FILE...
//! dynostats compare BASE... --against CAND... [--fail-above P%]
//!                  [--min-samples N] [--confidence C] [common options]
//! dynostats timeseries FILE... [--window 10m] [--alert P%] [--baseline N]
//!                  [--min-samples N] [--confidence C] [common options]
//! ```
//!
//! ```text
//! dynostats top [--metric M] [--sort exclusive|inclusive|calls] [-n N]
//!               [--callers NAME | --callees NAME] [--fleet N] [--endpoint NAME]
//!               [--label KEY=VALUE]... [--format table|json|csv] FILE...
//! dynostats flamegraph [--metric M] [--endpoint NAME] [--label KEY=VALUE]...
//!                      [--folded] [--diff BASE...] -o OUT.svg FILE...
//! ```
//!
//! `report` prints one row per endpoint (requests) and per region, led by
//! instructions where the records carry them, else CPU time; `top` and
//! `flamegraph` read the profile records' call trees. See
//! `EXIT STATUS` in `--help` for the exit codes.
//!
//! `main` parses the command line and dispatches; `input` opens the
//! inputs (files, rotated sets, `-`, gzip and zstd) and reads them into a
//! report with damage accounting; `report` prints it; `compare` and
//! `timeseries` read through the same input layer into the library's
//! `Side` and `Timeseries` (docs/compare.md), `top` and `flamegraph` into
//! `Profiles` (the profile records' call trees).

mod compare;
mod flamegraph;
mod input;
mod report;
mod timeseries;
mod top;

use std::process::ExitCode;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Parser, Subcommand};
use dynostats::RecordKind;
use dynostats::report::{Format, Metric, Report, SortBy, Split};
use input::Inputs;

/// Exit status: every input was read whole.
const EXIT_OK: u8 = 0;
/// Exit status: an input could not be opened or read, or the output could
/// not be written.
const EXIT_IO: u8 = 1;
/// Exit status: bad arguments (clap's own usage error status).
#[allow(dead_code)]
const EXIT_USAGE: u8 = 2;
/// Exit status: an input was damaged: framing damage ended a file early,
/// or (`--strict`) a record was skipped.
const EXIT_DAMAGED: u8 = 3;
/// Exit status: `compare --fail-above` found a regression, or
/// `timeseries --alert` an alert.
const EXIT_REGRESSION: u8 = 4;
/// Exit status: `compare --fail-above` found no regression but could not
/// decide some group or the overall figure.
const EXIT_UNDECIDED: u8 = 5;

const EXIT_STATUS: &str = "\
EXIT STATUS:
  0  every input was read (records skipped without --strict are reported on stderr)
  1  an input could not be opened or read, or the output could not be written
  2  bad arguments
  3  damaged input: a file ended inside a record or in bytes that are not records
     (everything before the damage is in the report), or, with --strict, a record
     was skipped
  When both 1 and 3 apply, the status is 1.";

/// Reads dynostats record files (MessagePack, docs/records.md) back.
#[derive(Parser)]
#[command(name = "dynostats", version, after_help = EXIT_STATUS)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Per-endpoint and per-region costs of the records in FILE...
    #[command(after_help = EXIT_STATUS)]
    Report(ReportArgs),
    /// Cost per event of BASE... against CAND... per endpoint, region and
    /// profiled function, with confidence intervals and a deploy gate.
    #[command(after_help = format!("{}\n\n{}", compare::METHOD, compare::EXIT_STATUS_GATE))]
    Compare(compare::CompareArgs),
    /// Per time window: endpoints by hits, cost per request, change, and
    /// alerts against the preceding windows.
    #[command(after_help = format!("{}\n\n{}", timeseries::METHOD, compare::EXIT_STATUS_GATE))]
    Timeseries(timeseries::TimeseriesArgs),
    /// Scopes (functions) by their share of everything the profile records
    /// measured: inclusive and exclusive, calls per request, cost per call;
    /// --callers/--callees NAME to drill down, --fleet N in servers.
    #[command(after_help = EXIT_STATUS)]
    Top(top::TopArgs),
    /// A flame graph (SVG, drawn by inferno) of the profile records' call
    /// trees, weighted; --folded for folded stacks, --diff BASE... for a
    /// differential one.
    #[command(after_help = EXIT_STATUS)]
    Flamegraph(flamegraph::FlameArgs),
}

/// The options `compare` and `timeseries` share with `report`.
#[derive(clap::Args)]
struct Common {
    #[command(flatten)]
    inputs: Inputs,
    /// The metric compared: instructions, cycles, cpu or wall. Default:
    /// instructions where any record carries them, else cpu.
    #[arg(
        long,
        value_parser = PossibleValuesParser::new(
            dynostats::report::COMPARED.map(Metric::short_name)
        )
        .map(|s| s.parse::<Metric>().expect("a listed metric"))
    )]
    metric: Option<Metric>,
    #[command(flatten)]
    output: Output,
}

/// The output format every subcommand that prints a result takes.
#[derive(clap::Args)]
struct Output {
    /// Output format. json and csv have every figure of every row; JSON
    /// integers beyond 2^53 are strings of digits.
    #[arg(
        long,
        default_value = "table",
        value_parser = PossibleValuesParser::new(["table", "json", "csv"])
            .map(|s| s.parse::<Format>().expect("a listed format"))
    )]
    format: Format,
    /// Same as --format json.
    #[arg(long, conflicts_with = "format")]
    json: bool,
}

impl Output {
    fn format(&self) -> Format {
        if self.json { Format::Json } else { self.format }
    }
}

/// `2%`, `2` or `0.5%` as a fraction (0.02, 0.02, 0.005).
fn parse_percent(s: &str) -> Result<f64, String> {
    let n: f64 = s
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("expected a percentage like 2%, got {s:?}"))?;
    if !n.is_finite() || n < 0.0 {
        return Err(format!("expected a percentage >= 0, got {s:?}"));
    }
    Ok(n / 100.0)
}

/// `95%`, `95` or `0.95` as a fraction in (0, 1).
fn parse_confidence(s: &str) -> Result<f64, String> {
    let n: f64 = s
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("expected a confidence like 95%, got {s:?}"))?;
    let c = if s.contains('%') || n > 1.0 {
        n / 100.0
    } else {
        n
    };
    if c > 0.0 && c < 1.0 {
        Ok(c)
    } else {
        Err(format!(
            "expected a confidence between 0 and 100%, got {s:?}"
        ))
    }
}

/// `10m`, `30s`, `1h`, `500ms`, `2d` as nanoseconds.
fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: f64 = n
        .parse()
        .map_err(|_| format!("expected a duration like 10m, got {s:?}"))?;
    let scale = match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" | "" => 1e9,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        "d" => 86400e9,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {s:?}: ns, us, ms, s, m, h, d"
            ));
        }
    };
    let ns = n * scale;
    if ns >= 1.0 && ns < u64::MAX as f64 {
        Ok(ns as u64)
    } else {
        Err(format!("expected a positive duration, got {s:?}"))
    }
}

/// The arguments of `dynostats report`.
#[derive(clap::Args)]
struct ReportArgs {
    /// Record files, read in order into one report: `-` is standard input;
    /// gzip and zstd files are decompressed (found by their magic bytes);
    /// rotated files too (FILE.2 FILE.1 FILE, or FILE with --rotated).
    #[arg(required = true)]
    files: Vec<String>,
    /// The metric the table leads with. Default: instructions where any
    /// record carries them, else cpu.
    #[arg(
        long,
        value_parser = PossibleValuesParser::new(Metric::ALL.map(Metric::short_name))
            .map(|s| s.parse::<Metric>().expect("a listed metric"))
    )]
    metric: Option<Metric>,
    /// Row order: the headline metric's estimated total, its mean per
    /// event, median or 99th percentile per event, estimated events,
    /// sampled records, or kind and name. Numbers sort largest first.
    #[arg(
        long,
        default_value = "total",
        value_parser = PossibleValuesParser::new(SortBy::ALL.map(SortBy::name))
            .map(|s| s.parse::<SortBy>().expect("a listed order"))
    )]
    sort: SortBy,
    /// Only rows of this kind of record.
    #[arg(
        long,
        value_parser = PossibleValuesParser::new(
            RecordKind::ALL.into_iter().filter(|k| matches!(k, RecordKind::Request | RecordKind::Region)).map(RecordKind::as_str)
        )
        .map(|s| s.parse::<RecordKind>().expect("a listed kind"))
    )]
    kind: Option<RecordKind>,
    /// Splits rows further: `status` (status class of requests: 2xx, 4xx,
    /// 5xx, none) or `label=KEY` (the label's value). Repeatable.
    #[arg(long = "by", value_name = "status|label=KEY", value_parser = parse_split)]
    by: Vec<Split>,
    /// At most N groups; records of further groups are folded into one
    /// `<other>` row per kind, and counted.
    #[arg(long, value_name = "N", default_value_t = Report::DEFAULT_MAX_GROUPS)]
    max_groups: usize,
    #[command(flatten)]
    inputs: Inputs,
    #[command(flatten)]
    output: Output,
    /// Shows names whole in the table (default: cut to 60 columns with …).
    #[arg(long)]
    wide: bool,
}

fn parse_split(s: &str) -> Result<Split, String> {
    s.parse()
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

fn main() -> ExitCode {
    let status = match Cli::parse().command {
        Command::Report(args) => report::run(&args),
        Command::Compare(args) => compare::run(&args),
        Command::Timeseries(args) => timeseries::run(&args),
        Command::Top(args) => top::run(&args),
        Command::Flamegraph(args) => flamegraph::run(&args),
    };
    ExitCode::from(status)
}
