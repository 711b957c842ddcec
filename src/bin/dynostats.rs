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

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use dynostats::{RecordKind, Report, SortBy};
use serde::Serialize;

/// Reads dynostats record files (MessagePack, docs/records.md) back.
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

#[derive(clap::Args)]
struct ReportArgs {
    /// Record files, read in order into one report (rotated files too:
    /// FILE.2 FILE.1 FILE).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Row order; numbers sort largest first.
    #[arg(long, value_enum, default_value_t = Sort::Total)]
    sort: Sort,
    /// Only rows of this kind of record.
    #[arg(long, value_enum)]
    kind: Option<Kind>,
    /// Prints JSON with every metric's statistics instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Sort {
    /// Estimated total of the headline metric (instructions, else CPU time).
    Total,
    /// Headline metric per event.
    Mean,
    /// Median of the headline metric per sample.
    P50,
    /// 99th percentile of the headline metric per sample.
    P99,
    /// Estimated events (sum of weights).
    Events,
    /// Sampled records.
    Sampled,
    /// Kind, name and method.
    Name,
}

impl From<Sort> for SortBy {
    fn from(sort: Sort) -> SortBy {
        match sort {
            Sort::Total => SortBy::Total,
            Sort::Mean => SortBy::Mean,
            Sort::P50 => SortBy::P50,
            Sort::P99 => SortBy::P99,
            Sort::Events => SortBy::Events,
            Sort::Sampled => SortBy::Sampled,
            Sort::Name => SortBy::Name,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    /// Requests through the tower layer.
    Request,
    /// Guards and measured futures.
    Region,
    /// Sampled profiles.
    Profile,
}

impl From<Kind> for RecordKind {
    fn from(kind: Kind) -> RecordKind {
        match kind {
            Kind::Request => RecordKind::Request,
            Kind::Region => RecordKind::Region,
            Kind::Profile => RecordKind::Profile,
        }
    }
}

/// What happened to one input file, for `--json`.
#[derive(Serialize)]
struct FileRead {
    path: String,
    records: u64,
    /// Why reading stopped early, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// Byte offset of the damaged record.
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<u64>,
}

#[derive(Serialize)]
struct JsonOutput<'a> {
    files: Vec<FileRead>,
    report: dynostats::Table<'a>,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Report(args) => report(&args),
    }
}

fn report(args: &ReportArgs) -> ExitCode {
    let mut report = Report::new();
    let mut files = Vec::new();
    for path in &args.files {
        let shown = path.display().to_string();
        let read = match File::open(path) {
            Ok(file) => report.read_from(file).map_err(|e| {
                let message = format!(
                    "{shown}: {}; the {} records before it are in the report",
                    e.error, e.records_read
                );
                (message, e.records_read, e.offset())
            }),
            Err(e) => Err((format!("{shown}: cannot open: {e}"), 0, None)),
        };
        files.push(match read {
            Ok(records) => FileRead {
                path: shown,
                records,
                error: None,
                offset: None,
            },
            Err((message, records, offset)) => {
                eprintln!("dynostats: {message}");
                FileRead {
                    path: shown,
                    records,
                    error: Some(message),
                    offset,
                }
            }
        });
    }
    let table = report
        .table()
        .sort(args.sort.into())
        .kind(args.kind.map(RecordKind::from));
    let incomplete = files.iter().any(|f| f.error.is_some());
    let output = if args.json {
        let output = JsonOutput {
            files,
            report: table,
        };
        match serde_json::to_string_pretty(&output) {
            Ok(json) => json + "\n",
            Err(e) => {
                eprintln!("dynostats: cannot write JSON: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        let mut text = table.to_string();
        if incomplete {
            text.push('\n');
            for file in files.iter().filter_map(|f| f.error.as_deref()) {
                text.push_str(&format!("INCOMPLETE: {file}\n"));
            }
        }
        text
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(output.as_bytes())
        .and_then(|()| stdout.flush())
    {
        // A reader that stopped early (`| head`) is not an error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("dynostats: cannot write the report: {e}");
            return ExitCode::FAILURE;
        }
        _ => {}
    }
    if incomplete {
        return ExitCode::from(2);
    }
    ExitCode::SUCCESS
}
