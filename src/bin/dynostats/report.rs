//! `dynostats report`: the table, JSON or CSV of a report, streamed to
//! standard output.

use clap::builder::{PossibleValuesParser, TypedValueParser};
use dynostats::RecordKind;
use dynostats::record::TraceId;
use dynostats::report::output::Render;
use dynostats::report::{Metric, Report, SortBy, Split, Table};

use crate::EXIT_OK;
use crate::args::{Inputs, Output, metric, parse_split};
use crate::fleet::Fleet;
use crate::input::only_failures;
use crate::output::print;

/// `dynostats report`'s examples (in `--help`).
pub(crate) const EXAMPLES: &str = "\
EXAMPLES:
  dynostats report records.msgpack
  dynostats report --rotated --by status --sort p99 records.msgpack
  dynostats report --json records.msgpack.zst | jq '.report.groups[0]'
  dynostats report --clickhouse http://127.0.0.1:8123/ --since 1h";

/// The arguments of `dynostats report`.
#[derive(clap::Args)]
pub(crate) struct ReportArgs {
    /// Record files, read in order into one report: `-` is standard input;
    /// gzip and zstd files are decompressed (found by their magic bytes);
    /// rotated files too (FILE.2 FILE.1 FILE, or FILE with --rotated).
    #[arg(required_unless_present = "clickhouse", conflicts_with = "clickhouse")]
    files: Vec<String>,
    /// The metric the table leads with. Default: instructions where any
    /// record carries them, else cpu.
    #[arg(
        long,
        value_parser = metric(Metric::ALL)
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
    /// Only the records of the trace ID (32 hex digits, as in a
    /// `traceparent` header or a tracing backend): what that request cost
    /// here. The same as --label trace_id=ID (with --clickhouse, from the
    /// raw rows' `trace_id` column).
    #[arg(long, value_name = "ID", value_parser = parse_trace_id)]
    trace_id: Option<String>,
    #[command(flatten)]
    inputs: Inputs,
    #[command(flatten)]
    fleet: Fleet,
    #[command(flatten)]
    output: Output,
    /// Shows names whole in the table (default: cut to 60 columns with …).
    #[arg(long)]
    wide: bool,
    /// Shows every column of the table, also those that are 0 or empty in
    /// every row (cancelled, errors, forced, absent ...).
    #[arg(long)]
    all_columns: bool,
}

/// A trace id as records write it: its hex digits in lower case (upper
/// case is accepted and lowered), not all zero.
fn parse_trace_id(s: &str) -> Result<String, String> {
    let id = s.trim().to_ascii_lowercase();
    id.parse::<TraceId>().map_err(|e| format!("{s:?}: {e}"))?;
    Ok(id)
}

/// The report of the records in ClickHouse (`--clickhouse`).
fn from_clickhouse(args: &ReportArgs) -> Result<Report, u8> {
    let mut labels = args.inputs.labels.clone();
    if let Some(id) = &args.trace_id {
        labels.push(("trace_id".to_string(), id.clone()));
    }
    let selection = args.fleet.selection(&labels)?;
    let db = args.fleet.connect()?;
    let report = db.report(&selection, &args.by, args.max_groups);
    args.fleet.answer(&db, report)
}

/// Runs `dynostats report` and returns the exit status.
pub(crate) fn run(args: &ReportArgs) -> u8 {
    let mut builder = Report::builder().max_groups(args.max_groups);
    for split in &args.by {
        builder = builder.split(split.clone());
    }
    for (k, v) in &args.inputs.labels {
        builder = builder.filter_label(k, v);
    }
    if let Some(id) = &args.trace_id {
        builder = builder.filter_label("trace_id", id);
    }
    let (report, files) = if args.fleet.active() {
        match from_clickhouse(args) {
            Ok(report) => (report, Vec::new()),
            Err(status) => return status,
        }
    } else {
        let mut report = builder.build();
        let files = args.inputs.read(&mut report, &args.files);
        if only_failures(&files) {
            return args.inputs.status(&files);
        }
        (report, files)
    };
    if report.profile_records() > 0 {
        eprintln!(
            "dynostats: {} profile records (call trees) read: they are not rows of this \
             table; `dynostats top` and `dynostats flamegraph` read them",
            report.profile_records()
        );
    }
    let format = args.output.format();
    let table = report
        .table()
        .sort(args.sort)
        .kind(args.kind)
        .metric(args.metric)
        .name_width(if args.wide {
            None
        } else {
            Some(Table::DEFAULT_NAME_WIDTH)
        });
    let style = args.output.style().all_columns(args.all_columns);
    match print("report", format, &files, "report", |out| {
        table.write_styled(format, &style, out)
    }) {
        EXIT_OK => args.inputs.status(&files),
        status => status,
    }
}
