//! `dynostats timeseries FILES... --window 10m`: per window, endpoints by
//! hits with their cost per request, and `--alert` against the preceding
//! windows.

use dynostats::report::output::Render;
use dynostats::report::timeseries::{Timeseries, TimeseriesOptions};

use crate::args::{Common, parse_duration, parse_percent};
use crate::fleet::Fleet;
use crate::input::only_failures;
use crate::output::print;
use crate::{EXIT_OK, EXIT_REGRESSION, EXIT_UNDECIDED};

/// How `timeseries` alerts (shown in `--help`).
pub(crate) const METHOD: &str = "\
METHOD:
  Records go to the window of their `ts` (windows aligned to multiples of --window
  since the epoch). Per window: endpoints (or regions, without requests) by hits, the
  cost per event and total, the change against the previous window. With --alert P%,
  a window ALERTS when its cost per request, against the records of up to --baseline
  preceding windows together, rose significantly AND by more than P. The figure and
  its interval are compare's mix-adjusted overall figure (per-endpoint weighted
  moments at the baseline's traffic mix, Welch, delta method), so one noisy window or
  a shift of traffic between endpoints is not an alert; a window or baseline under
  --min-samples samples is undecided and never alerts; with --alert and no window
  judged at all, the exit status is 5, not 0.
  Each window is a test at --confidence: over many windows of unchanged code a few
  alert by chance (12 in 440 noise-only windows at --alert 1% and 95%). --consecutive 2
  alerts only on two windows in a row, which makes a chance alert roughly its square.
  Windows are labelled with their start in UTC (ISO 8601).";

/// `timeseries`' own exit codes (every code: `dynostats --help`).
pub(crate) const EXIT_STATUS_ALERT: &str = "\
EXIT STATUS: 4 an alert (--alert), 5 no window could be judged (--alert);
0-3 as every subcommand (see dynostats --help)";

/// `dynostats timeseries`' examples (in `--help`).
pub(crate) const EXAMPLES: &str = "\
EXAMPLES:
  dynostats timeseries --window 10m records.msgpack
  dynostats timeseries --window 1h --alert 2% --consecutive 2 records.msgpack
  dynostats timeseries --clickhouse http://127.0.0.1:8123/ --since 1d \\
      --window 1h --alert 1%";

/// The arguments of `dynostats timeseries`.
#[derive(clap::Args)]
pub(crate) struct TimeseriesArgs {
    /// Record files, read in order.
    #[arg(required_unless_present = "clickhouse", conflicts_with = "clickhouse")]
    files: Vec<String>,
    #[command(flatten)]
    fleet: Fleet,
    /// The window length: `10m`, `30s`, `1h`, `500ms`.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    window: u64,
    /// Alerts (exit 4) on windows whose cost per request rose
    /// significantly and by more than P (`2%` or `0.02`) against the
    /// baseline.
    #[arg(long, value_name = "P%", value_parser = parse_percent)]
    alert: Option<f64>,
    /// Alerts only when N windows in a row (at least 1) each rose above
    /// the threshold.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    consecutive: u64,
    /// Preceding windows pooled into the baseline (at least 1).
    #[arg(long, value_name = "N", default_value_t = 6, value_parser = clap::value_parser!(u64).range(1..))]
    baseline: u64,
    /// Windows or baselines with fewer samples do not alert (at least 2).
    #[arg(long, value_name = "N", default_value_t = 30, value_parser = clap::value_parser!(u64).range(2..))]
    min_samples: u64,
    #[command(flatten)]
    common: Common,
}

/// Runs `dynostats timeseries` and returns the exit status.
pub(crate) fn run(args: &TimeseriesArgs) -> u8 {
    let c = &args.common;
    let mut builder = Timeseries::builder(args.window);
    for (k, v) in &c.inputs.labels {
        builder = builder.filter_label(k, v);
    }
    let (series, files) = if args.fleet.active() {
        let answer = args
            .fleet
            .selection(&c.inputs.labels)
            .and_then(|selection| {
                let db = args.fleet.connect()?;
                let series = db.timeseries(&selection, args.window);
                args.fleet.answer(&db, series)
            });
        match answer {
            Ok(series) => (series, Vec::new()),
            Err(status) => return status,
        }
    } else {
        let mut series = builder.build();
        let files = c.inputs.read(&mut series, &args.files);
        if only_failures(&files) {
            return c.inputs.status(&files);
        }
        (series, files)
    };
    let analysed = series.analyse(
        TimeseriesOptions::new()
            .metric(c.metric)
            .confidence(c.confidence)
            .min_samples(args.min_samples)
            .alert(args.alert)
            .baseline_windows(usize::try_from(args.baseline).unwrap_or(usize::MAX))
            .consecutive(usize::try_from(args.consecutive).unwrap_or(usize::MAX)),
    );
    let format = c.output.format();
    let style = c.output.style();
    match print("time series", format, &files, "report", |out| {
        analysed.write_styled(format, &style, out)
    }) {
        EXIT_OK => match c.inputs.status(&files) {
            EXIT_OK if analysed.alerts().next().is_some() => EXIT_REGRESSION,
            EXIT_OK if analysed.nothing_judged() => EXIT_UNDECIDED,
            status => status,
        },
        status => status,
    }
}
