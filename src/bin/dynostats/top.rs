//! `dynostats top`: scopes by share, from the profile records' call trees
//! summed by the library (`dynostats::report::profiles::Profiles`), printed by
//! `TopTable`.

use std::io::Write;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use dynostats::report::output::Render;
use dynostats::report::output::{escape_name, json_string};
use dynostats::report::profiles::TopSort;
use dynostats::report::{Format, Table};

use crate::args::{Output, ProfileInput};
use crate::input::{nothing, only_failures, warnings};
use crate::output::print;
use crate::{EXIT_OK, EXIT_USAGE};

/// `top`'s own exit codes (every code: `dynostats --help`).
pub(crate) const EXIT_STATUS_TOP: &str = "\
EXIT STATUS: 2 also for a --callers or --callees NAME the call trees do not
have; 0-3 as every subcommand (see dynostats --help)";

/// `dynostats top`'s examples (in `--help`).
pub(crate) const EXAMPLES: &str = "\
EXAMPLES:
  dynostats top -n 20 records.msgpack
  dynostats top --endpoint '/users/{id}' --sort inclusive records.msgpack
  dynostats top --callers compute::hash records.msgpack
  dynostats top --fleet 1000 --json records.msgpack";

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
    /// The callers of the scope NAME, each edge with its share (a NAME no
    /// scope has exits 2, naming close ones).
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

/// Runs `dynostats top` and returns the exit status.
pub(crate) fn run(args: &TopArgs) -> u8 {
    let (profiles, files) = match args.input.fleet_profiles(&args.input.inputs.labels) {
        Some(Ok(profiles)) => (profiles, Vec::new()),
        Some(Err(status)) => return status,
        None => args.input.read(&args.input.files),
    };
    if only_failures(&files) {
        return args.input.inputs.status(&files);
    }
    let format = args.output.format();
    let calls = profiles.calls(args.input.metric);
    // A drill-down into a name the trees do not have is a mistake to say,
    // not an empty table.
    let asked = [(&args.callers, false), (&args.callees, true)];
    for (name, roots) in asked {
        let (Some(name), Some(calls)) = (name, calls) else {
            continue;
        };
        if !calls.has_name(name, roots) {
            let like = calls.names_like(name, 5);
            eprintln!(
                "dynostats: no scope named {} in the call trees{}",
                escape_name(name),
                if like.is_empty() {
                    String::new()
                } else {
                    let like: Vec<String> = like.iter().map(|n| escape_name(n)).collect();
                    format!("; close names: {}", like.join(", "))
                }
            );
            return EXIT_USAGE;
        }
    }
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
                    Format::Json => write!(out, "null,\"note\":{}", json_string(&why))?,
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
                    .note(profiles.timer_note(calls));
                if let Some(name) = &args.callers {
                    table = table.callers(name);
                }
                if let Some(name) = &args.callees {
                    table = table.callees(name);
                }
                table.write_styled(format, &args.output.style(), out)?;
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
