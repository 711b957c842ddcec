//! What the subcommands' arguments share, declared once: where records
//! come from ([`Inputs`]), the one `--metric` parser ([`metric`]), the
//! output format ([`Output`]), what `compare` and `timeseries` share
//! ([`Common`]), the inputs of `top`, `flamegraph` and `pprof`
//! ([`ProfileInput`]),
//! and the parsers of percentages, confidences, durations, labels and
//! splits. Each subcommand's own arguments live in its file.

use clap::builder::{PossibleValuesParser, TypedValueParser};
use dynostats::report::compare::COMPARED;
use dynostats::report::profiles::Profiles;
use dynostats::report::{Format, Metric, Split, TextStyle};

/// The `--metric` values: `metrics` by their short names
/// (`instructions`, `cycles`, `cpu`, `wall`, `rss`).
pub(crate) fn metric(
    metrics: impl IntoIterator<Item = Metric>,
) -> impl TypedValueParser<Value = Metric> {
    PossibleValuesParser::new(metrics.into_iter().map(Metric::short_name))
        .map(|s| s.parse::<Metric>().expect("a listed metric"))
}

/// Where the records come from, and how strictly they are read: the
/// options every subcommand that reads records shares.
#[derive(clap::Args)]
pub(crate) struct Inputs {
    /// Also read the rotated files of each FILE (FILE.1, FILE.2 ... as the
    /// file sink names them), oldest first.
    #[arg(long)]
    pub(crate) rotated: bool,
    /// Keeps only records whose label KEY is VALUE. Repeatable: all must
    /// match.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub(crate) labels: Vec<(String, String)>,
    /// Exits with 3 when any record was skipped, not only when a file was
    /// cut.
    #[arg(long)]
    pub(crate) strict: bool,
    /// No progress bar (it shows only on a terminal anyway).
    #[arg(long, short)]
    pub(crate) quiet: bool,
}

/// The options `compare` and `timeseries` share: inputs, the metric
/// tested, the confidence of the intervals, the output format.
#[derive(clap::Args)]
pub(crate) struct Common {
    #[command(flatten)]
    pub(crate) inputs: Inputs,
    /// The metric compared: instructions, cycles, cpu or wall. Default:
    /// instructions where any record carries them, else cpu.
    #[arg(
        long,
        value_parser = metric(COMPARED)
    )]
    pub(crate) metric: Option<Metric>,
    /// Confidence of the intervals (`95%` or `0.95`); with a gate, also
    /// the chance that an unchanged deploy passes it.
    #[arg(long, value_name = "C", default_value = "95%", value_parser = parse_confidence)]
    pub(crate) confidence: f64,
    #[command(flatten)]
    pub(crate) output: Output,
}

/// The output format every subcommand that prints a result takes.
#[derive(clap::Args)]
pub(crate) struct Output {
    /// Output format. json and csv have every figure of every row; JSON
    /// integers beyond 2^53 are strings of digits.
    #[arg(
        long,
        default_value = "table",
        value_parser = PossibleValuesParser::new(["table", "json", "csv"])
            .map(|s| s.parse::<Format>().expect("a listed format"))
    )]
    pub(crate) format: Format,
    /// Same as --format json.
    #[arg(long, conflicts_with = "format")]
    pub(crate) json: bool,
    /// Colours FAIL, ALERT, slower and faster in tables: auto on a
    /// terminal unless NO_COLOR is set, always, or never.
    #[arg(long, value_name = "WHEN", default_value = "auto", value_parser = ["auto", "always", "never"])]
    pub(crate) color: String,
}

impl Output {
    pub(crate) fn format(&self) -> Format {
        if self.json { Format::Json } else { self.format }
    }

    /// How tables are laid out: fitted to the width of the terminal
    /// (`COLUMNS`, else standard output's terminal; no limit when neither
    /// says), coloured by `--color`.
    pub(crate) fn style(&self) -> TextStyle {
        use std::io::IsTerminal;
        let terminal = std::io::stdout().is_terminal();
        let columns = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.trim().parse::<usize>().ok())
            .filter(|&c| c > 0)
            .or_else(|| {
                terminal_size::terminal_size_of(std::io::stdout())
                    .map(|(terminal_size::Width(w), _)| usize::from(w))
            });
        let color = match self.color.as_str() {
            "always" => true,
            "never" => false,
            _ => {
                terminal
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
            }
        };
        TextStyle::new().width(columns).color(color)
    }
}

/// The inputs, metric and filters `top`, `flamegraph` and `pprof` share.
#[derive(clap::Args)]
pub(crate) struct ProfileInput {
    /// Record files, read in order: `-` is standard input; gzip and zstd
    /// files are decompressed; rotated files with --rotated. Only
    /// `profile` records (call trees) count.
    #[arg(required_unless_present = "clickhouse", conflicts_with = "clickhouse")]
    pub(crate) files: Vec<String>,
    /// The timer of the call trees to use. Default: instructions where any
    /// profile record was measured in them, else CPU time (labelled so).
    #[arg(
        long,
        value_parser = metric(Metric::ALL)
    )]
    pub(crate) metric: Option<Metric>,
    /// Only the call trees of this endpoint or region (the record's name).
    #[arg(long, value_name = "NAME")]
    pub(crate) endpoint: Option<String>,
    /// At most N distinct scope names, edges and paths each; further ones
    /// are counted under `<other>`.
    #[arg(long, value_name = "N", default_value_t = Profiles::DEFAULT_MAX_PATHS)]
    pub(crate) max_paths: usize,
    #[command(flatten)]
    pub(crate) inputs: Inputs,
    #[command(flatten)]
    pub(crate) fleet: crate::fleet::Fleet,
}

/// One rule for every share the command takes (`--fail-above`, `--alert`,
/// `--confidence`): with `%` a percentage (`2%`, `0.5%`, `95%`), without
/// a fraction of 1 (`0.02`, `0.95`). A bare number of 1 or more (`2`,
/// `95`) is refused: it reads as a percentage to some and as a fraction to
/// others.
pub(crate) fn parse_share(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (number, percent) = match t.strip_suffix('%') {
        Some(n) => (n.trim(), true),
        None => (t, false),
    };
    let n: f64 = number
        .parse()
        .map_err(|_| format!("expected a percentage like 2% or a fraction like 0.02, got {s:?}"))?;
    if !n.is_finite() || n < 0.0 {
        return Err(format!("expected a value >= 0, got {s:?}"));
    }
    if percent {
        Ok(n / 100.0)
    } else if n >= 1.0 {
        Err(format!(
            "{s:?} is ambiguous: write {n}% for a percentage, or a fraction below 1 (0.02 is 2%)"
        ))
    } else {
        Ok(n)
    }
}

/// A threshold (`--fail-above`, `--alert`) by [`parse_share`].
pub(crate) fn parse_percent(s: &str) -> Result<f64, String> {
    parse_share(s)
}

/// A confidence by [`parse_share`], inside (0, 1).
pub(crate) fn parse_confidence(s: &str) -> Result<f64, String> {
    match parse_share(s)? {
        c if c > 0.0 && c < 1.0 => Ok(c),
        _ => Err(format!(
            "expected a confidence between 0 and 100%, got {s:?}"
        )),
    }
}

/// `10m`, `30s`, `1h`, `500ms`, `2d` as nanoseconds.
pub(crate) fn parse_duration(s: &str) -> Result<u64, String> {
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

pub(crate) fn parse_split(s: &str) -> Result<Split, String> {
    s.parse()
}

pub(crate) fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}
