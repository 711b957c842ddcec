//! `dynostats`: reads record files back.
//!
//! ```text
//! dynostats report [--sort total|mean|p50|p99|events|sampled|name]
//!                  [--kind request|region|profile] [--json] FILE...
//! ```
//!
//! Prints one row per endpoint (requests) and per region, led by
//! instructions where the records carry them, else CPU time. Exits with 2
//! when a file cannot be opened or is damaged, after printing the report of
//! every record read before the damage.
//!
//! `main` parses the command line and dispatches; `input` reads files
//! into a report with damage accounting; `report` prints it.

mod input;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Parser, Subcommand};
use dynostats::RecordKind;
use dynostats::report::SortBy;

/// Exit status: the report is complete.
const EXIT_OK: u8 = 0;
/// Exit status: the output could not be written.
const EXIT_IO: u8 = 1;
/// Exit status: an input was missing or damaged (the report holds every
/// record read before the damage).
const EXIT_DAMAGED: u8 = 2;

/// Reads dynostats record files (MessagePack, docs/records.md) back.
///
/// Exit status: 0 when every file was read whole, 2 when a file could not
/// be opened or was damaged (the report then holds every record before the
/// damage), 1 when the output could not be written, 2 for bad arguments.
#[derive(Parser)]
#[command(name = "dynostats", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Per-endpoint and per-region costs of the records in FILE...
    Report(ReportArgs),
}

/// The arguments of `dynostats report`.
#[derive(clap::Args)]
struct ReportArgs {
    /// Record files, read in order into one report (rotated files too:
    /// FILE.2 FILE.1 FILE).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Row order: the headline metric's estimated total (instructions, else
    /// CPU time), its mean per event, median or 99th percentile per sample,
    /// estimated events, sampled records, or kind and name. Numbers sort
    /// largest first.
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
            RecordKind::ALL.into_iter().filter(|k| *k != RecordKind::Status).map(RecordKind::as_str)
        )
        .map(|s| s.parse::<RecordKind>().expect("a listed kind"))
    )]
    kind: Option<RecordKind>,
    /// Prints JSON with every metric's statistics instead of the table.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let status = match Cli::parse().command {
        Command::Report(args) => report::run(&args),
    };
    ExitCode::from(status)
}
