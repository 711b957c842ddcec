//! `dynostats top`: scopes by share, from the profile records' call trees
//! summed by the library (`dynostats::report::Profiles`), printed by
//! `TopTable`.

use std::io::Write;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use dynostats::report::{Calls, Format, Metric, Profiles, Table, TopSort};

use crate::input::{FileRead, Inputs};
use crate::report::print;
use crate::{EXIT_OK, Output};

/// The inputs, metric and filters `top` and `flamegraph` share.
#[derive(clap::Args)]
pub(crate) struct ProfileInput {
    /// Record files, read in order: `-` is standard input; gzip and zstd
    /// files are decompressed; rotated files with --rotated. Only
    /// `profile` records (call trees) count.
    #[arg(required = true)]
    pub(crate) files: Vec<String>,
    /// The timer of the call trees to use. Default: instructions where any
    /// profile record was measured in them, else CPU time (labelled so).
    #[arg(
        long,
        value_parser = PossibleValuesParser::new(Metric::ALL.map(Metric::short_name))
            .map(|s| s.parse::<Metric>().expect("a listed metric"))
    )]
    pub(crate) metric: Option<Metric>,
    /// Only the call trees of this endpoint or region (the record's name).
    #[arg(long, value_name = "NAME")]
    pub(crate) endpoint: Option<String>,
    /// At most N distinct scope names, edges and paths each; further ones
    /// are counted under `[other]`.
    #[arg(long, value_name = "N", default_value_t = Profiles::DEFAULT_MAX_PATHS)]
    pub(crate) max_paths: usize,
    #[command(flatten)]
    pub(crate) inputs: Inputs,
}

impl ProfileInput {
    /// The summed call trees of `files` (or of `files` given), and what
    /// happened to each input.
    pub(crate) fn read(&self, files: &[String]) -> (Profiles, Vec<FileRead>) {
        let mut builder = Profiles::builder().max_paths(self.max_paths);
        for (k, v) in &self.inputs.labels {
            builder = builder.filter_label(k, v);
        }
        if let Some(e) = &self.endpoint {
            builder = builder.endpoint(e);
        }
        let mut profiles = builder.build();
        let read = self.inputs.read(&mut profiles, files);
        (profiles, read)
    }
}

/// The arguments of `dynostats top`.
#[derive(clap::Args)]
pub(crate) struct TopArgs {
    #[command(flatten)]
    pub(crate) input: ProfileInput,
    /// Row order, largest first.
    #[arg(
        long,
        default_value = "exclusive",
        value_parser = PossibleValuesParser::new(["exclusive", "inclusive", "calls"])
            .map(|s| s.parse::<TopSort>().expect("a listed order"))
    )]
    sort: TopSort,
    /// At most N rows (0: all).
    #[arg(long, short = 'n', value_name = "N", default_value_t = 30)]
    limit: usize,
    /// The callers of the scope NAME, each edge with its share.
    #[arg(long, value_name = "NAME", conflicts_with = "callees")]
    callers: Option<String>,
    /// What the scope (or endpoint) NAME calls, each edge with its share.
    #[arg(long, value_name = "NAME")]
    callees: Option<String>,
    /// Adds how many of N servers each row's share amounts to (share x N:
    /// it holds when the profiled requests are what the servers spend
    /// their CPU on).
    #[arg(long, value_name = "N")]
    fleet: Option<u64>,
    /// Shows names whole in the table (default: cut to 60 columns with …).
    #[arg(long)]
    wide: bool,
    #[command(flatten)]
    output: Output,
}

/// What to say about the timer the amounts are in, when it is not
/// instructions: every output says so.
pub(crate) fn timer_note(profiles: &Profiles, calls: &Calls) -> Option<String> {
    profiles.timer_note(calls)
}

/// Lines about call trees left out or folded, for stderr.
pub(crate) fn warnings(profiles: &Profiles, calls: Option<&Calls>) -> Vec<String> {
    let mut lines = Vec::new();
    if profiles.malformed() > 0 {
        lines.push(format!(
            "{} profile records left out: their call tree is damaged (no timer, no nodes, or a \
             parent that is not an earlier node)",
            profiles.malformed()
        ));
    }
    if let Some(c) = calls.filter(|c| c.folded_beyond_cap() > 0) {
        lines.push(format!(
            "{} scopes beyond --max-paths were counted under [other]",
            c.folded_beyond_cap()
        ));
    }
    lines
}

/// Why there is nothing to show.
pub(crate) fn nothing(profiles: &Profiles, metric: Option<Metric>) -> String {
    let timers: Vec<&str> = profiles.timers().map(|c| c.timer()).collect();
    match metric {
        Some(m) if !timers.is_empty() => format!(
            "no profile records measured in {}; these have: {}",
            dynostats::report::timer_name(m),
            timers.join(", ")
        ),
        _ => format!(
            "no profile records in the inputs ({} records read, {} profile records, {} left \
             out by filters, {} damaged call trees)",
            profiles.records(),
            profiles.profile_records(),
            profiles.filtered(),
            profiles.malformed()
        ),
    }
}

/// Runs `dynostats top` and returns the exit status.
pub(crate) fn run(args: &TopArgs) -> u8 {
    let (profiles, files) = args.input.read(&args.input.files);
    let format = args.output.format();
    let calls = profiles.calls(args.input.metric);
    let warnings = warnings(&profiles, calls);
    for line in &warnings {
        eprintln!("dynostats: {line}");
    }
    let printed = print("table", format, &files, "top", |out| {
        match calls {
            None => {
                let why = nothing(&profiles, args.input.metric);
                eprintln!("dynostats: {why}");
                match format {
                    Format::Json => write!(
                        out,
                        "null,\"note\":\"{}\"",
                        why.replace('\\', "\\\\").replace('"', "\\\"")
                    )?,
                    Format::Csv => {}
                    _ => writeln!(out, "{why}")?,
                }
            }
            Some(calls) => {
                let mut table = calls
                    .top()
                    .sort(args.sort)
                    .limit((args.limit > 0).then_some(args.limit))
                    .fleet(args.fleet)
                    .name_width((!args.wide).then_some(Table::DEFAULT_NAME_WIDTH))
                    .note(timer_note(&profiles, calls));
                if let Some(name) = &args.callers {
                    table = table.callers(name);
                }
                if let Some(name) = &args.callees {
                    table = table.callees(name);
                }
                table.write(format, out)?;
            }
        }
        if format == Format::Table {
            for line in &warnings {
                writeln!(out, "WARNING: {line}")?;
            }
        }
        Ok(())
    });
    match printed {
        EXIT_OK => args.input.inputs.status(&files),
        status => status,
    }
}
