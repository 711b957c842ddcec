//! `dynostats flamegraph`: the profile records' call trees summed by the
//! library (`dynostats::report::profiles::Profiles`), as folded stacks
//! (`Calls::write_folded`), drawn by inferno.

use std::fs::File;
use std::io::{self, BufWriter, Write};

use dynostats::report::profiles::{Calls, Profiles};

use crate::args::ProfileInput;
use crate::input::{nothing, warnings};
use crate::{EXIT_IO, EXIT_USAGE};

/// The arguments of `dynostats flamegraph`.
#[derive(clap::Args)]
pub(crate) struct FlameArgs {
    #[command(flatten)]
    input: ProfileInput,
    /// Where to write the SVG (or the folded stacks); `-` is standard
    /// output. Required unless --folded.
    #[arg(long, short, value_name = "FILE", required_unless_present = "folded")]
    output: Option<String>,
    /// Writes folded stacks (`root;scope;scope AMOUNT`, what inferno,
    /// speedscope and Pyroscope ingest) instead of an SVG; with --diff,
    /// the differential form (`stack BASE CANDIDATE`).
    #[arg(long)]
    folded: bool,
    /// Base record files: draws a differential flame graph of FILES
    /// against them (red: grew, blue: shrank). With --clickhouse, the
    /// base's labels instead (`build=b41`: they replace the --label
    /// filters of the same keys).
    #[arg(long, value_name = "BASE", num_args = 1..)]
    diff: Vec<String>,
    /// With --diff: scales the base so that both totals match (shows shape
    /// changes, not growth).
    #[arg(long, requires = "diff")]
    normalize: bool,
    /// The graph's title.
    #[arg(long, default_value = "dynostats")]
    title: String,
    /// Image width in pixels.
    #[arg(long, default_value_t = 1200)]
    width: usize,
}

/// The folded stacks of `calls`, every amount divided by `scale`.
fn folded_bytes(calls: Option<&Calls>, scale: u128) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(calls) = calls {
        let _ = calls.write_folded_scaled(&mut out, scale);
    }
    out
}

/// `10^k` for a power of ten `scale`.
fn power_of_ten(scale: u128) -> String {
    format!("10^{}", scale.max(1).ilog10())
}

fn draw(args: &FlameArgs, profiles: &Profiles, base: Option<&Profiles>) -> io::Result<bool> {
    let Some(calls) = profiles.calls(args.input.metric) else {
        eprintln!("dynostats: {}", nothing(profiles, args.input.metric));
        return Ok(false);
    };
    for line in warnings(profiles, Some(calls)) {
        eprintln!("dynostats: {line}");
    }
    if calls.saturated() {
        eprintln!(
            "dynostats: sums reached the bounds of 128-bit integers and stopped there \
             (saturated): the amounts drawn are bounds, not exact"
        );
    }
    // The base in the candidate's timer: amounts of different timers are
    // never drawn against each other.
    let theirs = base.map(|base| base.calls(calls.metric()));
    // inferno adds the amounts up in 64 bits: beyond, both sides are
    // divided by one power of ten (1 on every input that fits).
    let scale = calls
        .folded_scale()
        .max(theirs.flatten().map_or(1, Calls::folded_scale));
    let scaled = (scale > 1).then(|| {
        format!(
            "amounts divided by {} (rounded down) so that flame graph tools can add them \
             up in 64 bits: their sum, {}, exceeds 2^63",
            power_of_ten(scale),
            calls
                .folded_sum()
                .max(theirs.flatten().map_or(0, Calls::folded_sum))
        )
    });
    let mut folded = folded_bytes(Some(calls), scale);
    if let Some(theirs) = theirs {
        if theirs.is_none() {
            eprintln!(
                "dynostats: the base has no profile records measured in {}",
                calls.timer()
            );
        }
        let before = folded_bytes(theirs, scale);
        let mut pairs = Vec::new();
        let opt = inferno::differential::Options {
            normalize: args.normalize,
            ..Default::default()
        };
        inferno::differential::from_readers(opt, &before[..], &folded[..], &mut pairs)?;
        folded = pairs;
    }
    let mut out: Box<dyn Write> = match args.output.as_deref() {
        None | Some("-") => Box::new(BufWriter::new(io::stdout().lock())),
        Some(path) => Box::new(BufWriter::new(File::create(path)?)),
    };
    if args.folded {
        if let Some(scaled) = &scaled {
            eprintln!("dynostats: folded {scaled}");
        }
        out.write_all(&folded)?;
        out.flush()?;
        return Ok(true);
    }
    let mut opt = inferno::flamegraph::Options::default();
    opt.title = args.title.clone();
    opt.count_name = if scale > 1 {
        format!("x {} {}", power_of_ten(scale), calls.timer())
    } else {
        calls.timer().to_string()
    };
    opt.image_width = Some(args.width);
    opt.deterministic = true;
    let mut subtitle = format!(
        "{} profile records standing for {} events, weighted",
        calls.records(),
        calls.events()
    );
    if let Some(note) = profiles.timer_note(calls) {
        subtitle = format!("{note}; {subtitle}");
    }
    if base.is_some() {
        subtitle.push_str("; red grew, blue shrank against the base");
    }
    if scale > 1 {
        subtitle.push_str(&format!(
            "; amounts in units of {} {}",
            power_of_ten(scale),
            calls.timer()
        ));
        if let Some(scaled) = &scaled {
            eprintln!("dynostats: {scaled}");
        }
    }
    opt.subtitle = Some(subtitle);
    if folded.is_empty() {
        // inferno refuses an empty graph; say so rather than write nothing.
        eprintln!("dynostats: no positive amounts to draw");
        return Ok(false);
    }
    inferno::flamegraph::from_reader(&mut opt, &folded[..], &mut out)?;
    out.flush()?;
    Ok(true)
}

/// With `--clickhouse`: the call trees of the `--label` records and, with
/// `--diff KEY=VALUE...`, of the base's (the `--label` filters, those of
/// the keys `--diff` names replaced by its values).
fn from_fleet(args: &FlameArgs) -> Result<(Profiles, Option<Profiles>), u8> {
    let labels = &args.input.inputs.labels;
    let profiles = args
        .input
        .fleet_profiles(labels)
        .unwrap_or(Err(EXIT_USAGE))?;
    if args.diff.is_empty() {
        return Ok((profiles, None));
    }
    let mut diff = Vec::new();
    for label in &args.diff {
        match crate::args::parse_label(label) {
            Ok(kv) => diff.push(kv),
            Err(e) => {
                eprintln!("dynostats: --diff with --clickhouse takes the base's labels: {e}");
                return Err(EXIT_USAGE);
            }
        }
    }
    // The base's labels replace the --label filters of the same keys.
    let mut base_labels: Vec<(String, String)> = labels
        .iter()
        .filter(|(k, _)| !diff.iter().any(|(d, _)| d == k))
        .cloned()
        .collect();
    base_labels.extend(diff);
    let base = args
        .input
        .fleet_profiles(&base_labels)
        .unwrap_or(Err(EXIT_USAGE))?;
    Ok((profiles, Some(base)))
}

/// Runs `dynostats flamegraph` and returns the exit status: that of the
/// inputs (nothing to draw is not an error of theirs; it is said on
/// stderr and no file is written), or 1 when the output cannot be written.
pub(crate) fn run(args: &FlameArgs) -> u8 {
    let (profiles, base, files) = if args.input.fleet.active() {
        match from_fleet(args) {
            Ok((profiles, base)) => (profiles, base, Vec::new()),
            Err(status) => return status,
        }
    } else {
        let (profiles, mut files) = args.input.read(&args.input.files);
        let base = (!args.diff.is_empty()).then(|| {
            let (base, read) = args.input.read(&args.diff);
            files.extend(read);
            base
        });
        (profiles, base, files)
    };
    match draw(args, &profiles, base.as_ref()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            eprintln!("dynostats: cannot write the flame graph: {e}");
            EXIT_IO
        }
        _ => args.input.inputs.status(&files),
    }
}
