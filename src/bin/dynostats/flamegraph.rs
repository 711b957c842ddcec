//! `dynostats flamegraph`: the profile records' call trees summed by the
//! library (`dynostats::report::profiles::Profiles`), as folded stacks
//! (`Calls::write_folded`), drawn by inferno.

use std::fs::File;
use std::io::{self, BufWriter, Write};

use dynostats::report::profiles::{Calls, Profiles};

use crate::EXIT_IO;
use crate::args::ProfileInput;
use crate::input::{nothing, warnings};

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
    /// against them (red: grew, blue: shrank).
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

fn folded_bytes(calls: Option<&Calls>) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(calls) = calls {
        let _ = calls.write_folded(&mut out);
    }
    out
}

fn draw(args: &FlameArgs, profiles: &Profiles, base: Option<&Profiles>) -> io::Result<bool> {
    let Some(calls) = profiles.calls(args.input.metric) else {
        eprintln!("dynostats: {}", nothing(profiles, args.input.metric));
        return Ok(false);
    };
    for line in warnings(profiles, Some(calls)) {
        eprintln!("dynostats: {line}");
    }
    let mut folded = folded_bytes(Some(calls));
    if let Some(base) = base {
        // The base in the candidate's timer: amounts of different timers
        // are never drawn against each other.
        let theirs = base.calls(calls.metric());
        if theirs.is_none() {
            eprintln!(
                "dynostats: the base has no profile records measured in {}",
                calls.timer()
            );
        }
        let before = folded_bytes(theirs);
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
        out.write_all(&folded)?;
        out.flush()?;
        return Ok(true);
    }
    let mut opt = inferno::flamegraph::Options::default();
    opt.title = args.title.clone();
    opt.count_name = calls.timer().to_string();
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

/// Runs `dynostats flamegraph` and returns the exit status: that of the
/// inputs (nothing to draw is not an error of theirs; it is said on
/// stderr and no file is written), or 1 when the output cannot be written.
pub(crate) fn run(args: &FlameArgs) -> u8 {
    let (profiles, mut files) = args.input.read(&args.input.files);
    let base = (!args.diff.is_empty()).then(|| {
        let (base, read) = args.input.read(&args.diff);
        files.extend(read);
        base
    });
    match draw(args, &profiles, base.as_ref()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            eprintln!("dynostats: cannot write the flame graph: {e}");
            EXIT_IO
        }
        _ => args.input.inputs.status(&files),
    }
}
