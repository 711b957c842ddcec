//! `dynostats compare BASE... --against CAND...`: per endpoint, region and
//! profiled function, the candidate's cost per event against the base's,
//! with intervals and the `--fail-above` gate.

use dynostats::report::Format;
use dynostats::report::compare::{CompareOptions, Side, compare};
use dynostats::report::output::Render;
use dynostats::report::output::escape_name;

use crate::args::{Common, parse_label, parse_percent};
use crate::fleet::{Fleet, parse_time};
use crate::input::only_failures;
use crate::output::print;
use crate::{EXIT_OK, EXIT_REGRESSION, EXIT_UNDECIDED, EXIT_USAGE};

/// How `compare` decides (shown in `--help`).
pub(crate) const METHOD: &str = "\
METHOD:
  Per group and side, streaming weighted moments of each record's value (weight = the
  events a sampled record stands for): the cost per event is the weighted mean, its
  variance the linearised estimate sum(w^2 (x - mean)^2) / (sum w)^2 * n/(n-1). The
  relative delta cand/base - 1 has by the delta method the variance
  (v_cand + R^2 v_base) / base^2 (R = cand/base); the interval uses Student's t with
  Welch-Satterthwaite degrees of freedom. Memory does not grow with the records.
  Assumes independent records, positive means large against their errors (>= 30
  samples per side by default), weights not correlated with values.
  The gate (--fail-above P) judges every group with --min-samples samples on both sides,
  and the overall figure, together: each is a one-sided test of 'its relative delta is
  at most P', and Holm's correction over all of them keeps the chance that an unchanged
  deploy fails at 1 - --confidence, however many endpoints it has. A group FAILS when
  its test rejects: the data say its delta lies above P. With fewer than --min-samples
  samples on a side it is UNDECIDED; a gate with nothing to judge is undecided (exit 5).
  Groups beyond the first 10,000 of a side are compared together in <other> rows.
  The overall figure is mix-adjusted: the candidate's per-endpoint costs weighted by
  the base's traffic mix (groups on both sides), so a shift of traffic between
  endpoints is not a regression; the raw figure (each side's own mix) is shown beside
  it. Where records carry no instructions (no PMU) the metric is CPU time, labelled.
  Rows are sorted by |(cand - base) per event x candidate events|.";

/// `compare`'s own exit codes (every code: `dynostats --help`).
pub(crate) const EXIT_STATUS_GATE: &str = "\
EXIT STATUS: 4 a regression (--fail-above), 5 no regression but something
undecided (--fail-above); 0-3 as every subcommand (see dynostats --help)";

/// `dynostats compare`'s examples (in `--help`).
pub(crate) const EXAMPLES: &str = "\
EXAMPLES:
  dynostats compare old.msgpack --against new.msgpack
  dynostats compare old.msgpack --against new.msgpack --fail-above 2%  # a gate
  dynostats compare base.msgpack --against cand.msgpack --format csv > cmp.csv
  dynostats compare --clickhouse http://127.0.0.1:8123/ \\
      --base build=b41 --against build=b42";

/// The arguments of `dynostats compare`.
#[derive(clap::Args)]
pub(crate) struct CompareArgs {
    /// The base's record files (the build or window compared against).
    #[arg(required_unless_present = "clickhouse", conflicts_with = "clickhouse")]
    base: Vec<String>,
    /// The candidate's record files; with --clickhouse, the candidate's
    /// labels (`build=b42`, repeatable: all must match), or nothing when
    /// the sides differ in time only.
    #[arg(long, required_unless_present = "clickhouse", num_args = 1.., value_name = "CAND")]
    against: Vec<String>,
    /// With --clickhouse: the base's labels (`build=b41`, repeatable: all
    /// must match).
    #[arg(long = "base", value_name = "KEY=VALUE", value_parser = parse_label, requires = "clickhouse")]
    base_labels: Vec<(String, String)>,
    /// With --clickhouse: the base is the records from TIME (UTC
    /// `2026-12-05T10:00:00Z` or nanoseconds) to --base-until, the
    /// candidate those of --since/--from/--until: last week against this
    /// one, before a deploy against after.
    #[arg(long, value_name = "TIME", value_parser = parse_time, requires_all = ["clickhouse", "base_until"])]
    base_from: Option<u64>,
    /// With --clickhouse: the end of the base's time range (excluded).
    #[arg(long, value_name = "TIME", value_parser = parse_time, requires_all = ["clickhouse", "base_from"])]
    base_until: Option<u64>,
    #[command(flatten)]
    fleet: Fleet,
    /// Fails (exit 4) when a group's or the overall regression lies
    /// significantly above P (`2%` or `0.02`), all groups judged together.
    #[arg(long, value_name = "P%", value_parser = parse_percent)]
    fail_above: Option<f64>,
    /// Groups with fewer samples on a side are undecided (at least 2: a
    /// variance needs two).
    #[arg(long, value_name = "N", default_value_t = 30, value_parser = clap::value_parser!(u64).range(2..))]
    min_samples: u64,
    /// Shows every column of the table, also those that are empty in
    /// every row.
    #[arg(long)]
    all_columns: bool,
    #[command(flatten)]
    common: Common,
}

/// Both sides from the records in ClickHouse (`--clickhouse`): the base
/// by `--base` labels and `--base-from`/`--base-until` (else the time
/// range), the candidate by `--against` labels and the time range, both
/// with the `--label` filters.
fn from_clickhouse(args: &CompareArgs) -> Result<(Side, Side), u8> {
    let mut cand_labels = Vec::new();
    for label in &args.against {
        match parse_label(label) {
            Ok(kv) => cand_labels.push(kv),
            Err(e) => {
                eprintln!("dynostats: --against with --clickhouse takes labels: {e}");
                return Err(EXIT_USAGE);
            }
        }
    }
    let by_time = args.base_from.is_some();
    if args.base_labels.is_empty() && cand_labels.is_empty() && !by_time {
        eprintln!(
            "dynostats: --clickhouse compares records chosen by labels (--base KEY=VALUE \
             --against KEY=VALUE) or by time (--base-from and --base-until against --since, \
             --from or --until)"
        );
        return Err(EXIT_USAGE);
    }
    let labels = &args.common.inputs.labels;
    let with = |side: &[(String, String)]| [labels.as_slice(), side].concat();
    let cand = args.fleet.selection(&with(&cand_labels))?;
    let base = if by_time {
        args.fleet
            .selection_between(&with(&args.base_labels), args.base_from, args.base_until)
    } else {
        args.fleet.selection(&with(&args.base_labels))?
    };
    let db = args.fleet.connect()?;
    let sides = db.side(&base).and_then(|b| Ok((b, db.side(&cand)?)));
    args.fleet.answer(&db, sides)
}

/// Runs `dynostats compare` and returns the exit status.
pub(crate) fn run(args: &CompareArgs) -> u8 {
    let c = &args.common;
    let mut builder = Side::builder();
    for (k, v) in &c.inputs.labels {
        builder = builder.filter_label(k, v);
    }
    let (base, cand, files) = if args.fleet.active() {
        match from_clickhouse(args) {
            Ok((base, cand)) => (base, cand, Vec::new()),
            Err(status) => return status,
        }
    } else {
        let mut base = builder.build();
        let mut cand = base.clone();
        let mut files = c.inputs.read(&mut base, &args.base);
        let cand_files = c.inputs.read(&mut cand, &args.against);
        // A side of which nothing could be read: its errors are the answer.
        let failed = only_failures(&files) || only_failures(&cand_files);
        files.extend(cand_files);
        if failed {
            return c.inputs.status(&files);
        }
        (base, cand, files)
    };
    let comparison = compare(
        &base,
        &cand,
        CompareOptions::new()
            .metric(c.metric)
            .confidence(c.confidence)
            .min_samples(args.min_samples)
            .fail_above(args.fail_above),
    );
    let format = c.output.format();
    let style = c.output.style().all_columns(args.all_columns);
    let printed = print("comparison", format, &files, "report", |out| {
        comparison.write_styled(format, &style, out)
    });
    if printed != EXIT_OK {
        return printed;
    }
    if format != Format::Table {
        // The table has its summary; other formats get it on stderr.
        for r in comparison.offenders() {
            eprintln!(
                "dynostats: FAIL: {} {}",
                r.kind.as_str(),
                escape_name(&r.label)
            );
        }
    }
    match c.inputs.status(&files) {
        EXIT_OK if comparison.failed() => EXIT_REGRESSION,
        EXIT_OK if args.fail_above.is_some() && comparison.any_undecided() => EXIT_UNDECIDED,
        status => status,
    }
}
