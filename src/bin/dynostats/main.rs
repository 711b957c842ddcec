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
//!                      [--folded] -o OUT.svg FILE... [--against CAND...]
//! dynostats pprof [--metric M] [--endpoint NAME] [--label KEY=VALUE]...
//!                 [--label-key KEY]... -o OUT.pb.gz FILE...
//! ```
//!
//! `report` prints one row per endpoint (requests) and per region, led by
//! instructions where the records carry them, else CPU time; `top`,
//! `flamegraph` and `pprof` read the profile records' call trees. See
//! `EXIT STATUS` in `--help` for the exit codes.
//!
//! `main` parses the command line and dispatches; `args` declares what
//! the subcommands' arguments share (inputs, `--metric`, output format,
//! profile inputs, parsers); `input` opens the inputs (files, rotated
//! sets, `-`, gzip and zstd) and reads them into any of the library's
//! summaries (`dynostats::report::Summarize`) with damage accounting;
//! `output` prints every result (the JSON envelope, the damaged-input
//! lines). Each subcommand's file (`report`, `compare`, `timeseries`,
//! `top`, `flamegraph`, `pprof`) holds its own arguments and its `run`.

mod args;
mod clickhouse;
mod compare;
mod export;
mod flamegraph;
mod fleet;
mod input;
mod load;
mod output;
mod parquet;
mod pprof;
mod report;
mod timeseries;
mod top;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit status: every input was read whole.
const EXIT_OK: u8 = 0;
/// Exit status: an input could not be opened or read, or the output could
/// not be written.
const EXIT_IO: u8 = 1;
/// Exit status: bad arguments (clap's own usage error status, and a
/// `top --callers/--callees` name the call trees do not have).
const EXIT_USAGE: u8 = 2;
/// Exit status: an input was damaged: framing damage ended a file early,
/// a compressed stream was cut short or damaged, or (`--strict`) a record
/// was skipped.
const EXIT_DAMAGED: u8 = 3;
/// Exit status: `compare --fail-above` found a regression, or
/// `timeseries --alert` an alert.
const EXIT_REGRESSION: u8 = 4;
/// Exit status: `compare --fail-above` found no regression but could not
/// decide some group or the overall figure.
const EXIT_UNDECIDED: u8 = 5;
/// Exit status: ClickHouse refused a statement or an insert (a missing
/// table, a wrong password, records older than the tables' TTL).
const EXIT_REFUSED: u8 = 6;

/// Every exit status, said once: in `dynostats --help` (each subcommand's
/// help names its own codes in one line).
const EXIT_STATUS: &str = "\
EXIT STATUS (every subcommand):
  0  done: every input was read whole (records skipped without --strict are reported on
     stderr)
  1  an input could not be opened or read, or the output could not be written
  2  bad arguments
  3  damaged input: a file ended inside a record or in bytes that are not records, or a
     gzip or zstd stream was cut short or damaged (everything before the damage is in
     the answer, and stderr says how many records that is), or, with --strict, a record
     was skipped
  4  compare --fail-above: a regression; timeseries --alert: an alert
  5  compare --fail-above: no regression, but something could not be decided;
     timeseries --alert: no window could be judged
  6  ClickHouse refused a statement or an insert
  1 and 3 take precedence over 4 and 5.";

/// The exit status line of a subcommand without codes of its own.
const EXIT_COMMON: &str = "\
EXIT STATUS: 0 done, 1 unreadable input or output, 2 bad arguments,
3 damaged input (see dynostats --help)";

/// A subcommand's help after its options: its exit status line, then
/// its `examples`.
fn short_help(examples: &str, exit: &str) -> String {
    format!("{exit}\n\n{examples}")
}

/// A subcommand's long help (`--help`) after its options: how it decides
/// (`method`), its exit status line, then its `examples`.
fn long_help(method: &str, examples: &str, exit: &str) -> String {
    format!("{method}\n\n{exit}\n\n{examples}")
}

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
    #[command(after_help = short_help(report::EXAMPLES, EXIT_COMMON))]
    Report(report::ReportArgs),
    /// Cost per event of BASE... against CAND... per endpoint, region and
    /// profiled function, with confidence intervals and a deploy gate.
    #[command(
        after_help = short_help(compare::EXAMPLES, compare::EXIT_STATUS_GATE),
        after_long_help = long_help(compare::METHOD, compare::EXAMPLES, compare::EXIT_STATUS_GATE)
    )]
    Compare(compare::CompareArgs),
    /// Per time window: endpoints by hits, cost per request, change, and
    /// alerts against the preceding windows.
    #[command(
        after_help = short_help(timeseries::EXAMPLES, timeseries::EXIT_STATUS_ALERT),
        after_long_help = long_help(timeseries::METHOD, timeseries::EXAMPLES, timeseries::EXIT_STATUS_ALERT)
    )]
    Timeseries(timeseries::TimeseriesArgs),
    /// Scopes (functions) by their share of everything the profile records
    /// measured: inclusive and exclusive, calls per request (of every
    /// endpoint read: --endpoint NAME for one endpoint's), cost per call;
    /// --callers/--callees NAME to drill down, --fleet N in servers.
    #[command(after_help = short_help(top::EXAMPLES, top::EXIT_STATUS_TOP))]
    Top(top::TopArgs),
    /// A flame graph (SVG, drawn by inferno) of the profile records' call
    /// trees, weighted; --folded for folded stacks, BASE... --against
    /// CAND... for a differential one (as compare).
    #[command(after_help = short_help(FLAMEGRAPH_EXAMPLES, EXIT_COMMON))]
    Flamegraph(flamegraph::FlameArgs),
    /// A pprof profile (gzip-compressed profile.proto) of the profile
    /// records' call trees, weighted, for `go tool pprof`, Pyroscope,
    /// Parca, Grafana: flat is the exclusive amount, cum the inclusive one
    /// (as in `top`), samples labelled with their endpoint and the
    /// --label-key labels.
    #[command(after_help = short_help(pprof::EXAMPLE, EXIT_COMMON))]
    Pprof(pprof::PprofArgs),
    /// Inserts record files into ClickHouse's tables (`dynostats
    /// clickhouse init` makes them), batch by batch; run again, it goes on
    /// where it stopped.
    #[command(after_help = load::HELP)]
    Load(load::LoadArgs),
    /// Writes record files as rows of the ClickHouse tables, for other
    /// engines and bulk loads (JSON lines, one file per table).
    #[command(after_help = export::HELP)]
    Export(export::ExportArgs),
    /// The ClickHouse schema: `schema` prints it, `init` makes it on a
    /// server.
    Clickhouse(clickhouse::ClickhouseArgs),
}

/// `dynostats flamegraph`'s examples (in `--help`).
const FLAMEGRAPH_EXAMPLES: &str = "\
EXAMPLES:
  dynostats flamegraph records.msgpack -o flame.svg
  dynostats flamegraph --endpoint '/users/{id}' records.msgpack -o users.svg
  dynostats flamegraph old.msgpack --against new.msgpack -o diff.svg";

fn main() -> ExitCode {
    let status = match Cli::parse().command {
        Command::Report(args) => report::run(&args),
        Command::Compare(args) => compare::run(&args),
        Command::Timeseries(args) => timeseries::run(&args),
        Command::Top(args) => top::run(&args),
        Command::Flamegraph(args) => flamegraph::run(&args),
        Command::Pprof(args) => pprof::run(&args),
        Command::Load(args) => load::run(&args),
        Command::Export(args) => export::run(&args),
        Command::Clickhouse(args) => clickhouse::run(&args),
    };
    ExitCode::from(status)
}
