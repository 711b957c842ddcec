//! `dynostats flamegraph`: the profile records' call trees summed by the
//! library (`dynostats::report::profiles::Profiles`), as folded stacks
//! (`Calls::write_folded`, or `FlameDiff::write_folded` for two sides),
//! drawn by inferno and finished by the library (`FlameLabels`,
//! `FlameDiff`: the unit and the inputs in words that fit, colours by
//! significance).

use std::fs::File;
use std::io::{self, BufWriter, Write};

use dynostats::record::grouped;
use dynostats::report::output::escape_name;
use dynostats::report::profiles::{Calls, Profiles};

use crate::args::{ProfileInput, parse_confidence, parse_label};
use crate::input::{nothing, only_failures, warnings};
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
    /// speedscope and Pyroscope ingest) instead of an SVG; with --against,
    /// the differential form (`stack BASE CANDIDATE`).
    #[arg(long)]
    folded: bool,
    /// The candidate's record files: draws a differential flame graph of
    /// them against FILES, the base, as `compare BASE... --against
    /// CAND...` reads them (red: grew, blue: shrank, beyond noise; grey:
    /// within noise). With --clickhouse, the candidate's labels.
    #[arg(long, value_name = "CAND", num_args = 1..)]
    against: Vec<String>,
    /// With --clickhouse: the base's labels (`build=b41`, repeatable), as
    /// in compare.
    #[arg(long = "base", value_name = "KEY=VALUE", value_parser = parse_label, requires = "clickhouse")]
    base_labels: Vec<(String, String)>,
    /// The earlier spelling, `CAND --diff BASE` (one file each), or with
    /// --clickhouse the base's labels replacing the --label filters of
    /// their keys.
    #[arg(long, value_name = "BASE", hide = true)]
    diff: Vec<String>,
    /// With --against: scales the base so that both totals match (shows
    /// shape changes, not growth).
    #[arg(long)]
    normalize: bool,
    /// With --against: the confidence at which a frame's change must lie
    /// outside its noise to be coloured (`95%` or `0.95`).
    #[arg(long, value_name = "C", default_value = "95%", value_parser = parse_confidence)]
    confidence: f64,
    /// The graph's title (default: the metric and the inputs).
    #[arg(long)]
    title: Option<String>,
    /// Image width in pixels.
    #[arg(long, default_value_t = 1200)]
    width: usize,
}

/// inferno's font: size in pixels and width of a character as a share
/// of it (its defaults).
const FONT_SIZE: usize = 12;
const FONT_WIDTH: f64 = 0.59;

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

/// What was read, for the title: the first input and how many more.
pub(crate) fn source(inputs: &[String]) -> String {
    match inputs {
        [] => "standard input".to_string(),
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first} and {} more", rest.len()),
    }
}

/// The two sides of a differential graph, and what each was read from.
struct Sides<'a> {
    base: &'a Profiles,
    base_source: String,
    cand_source: String,
}

fn draw(
    args: &FlameArgs,
    profiles: &Profiles,
    source: &str,
    sides: Option<Sides>,
) -> io::Result<bool> {
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
    let theirs = sides.as_ref().map(|s| s.base.calls(calls.metric()));
    // inferno adds the amounts up in 64 bits: beyond, both sides are
    // divided by one power of ten (1 on every input that fits).
    let scale = calls
        .folded_scale()
        .max(theirs.flatten().map_or(1, Calls::folded_scale));
    if scale > 1 {
        eprintln!(
            "dynostats: {}amounts divided by {} (rounded down) so that flame graph tools can \
             add them up in 64 bits: their sum, {}, exceeds 2^63",
            if args.folded { "folded " } else { "" },
            power_of_ten(scale),
            calls
                .folded_sum()
                .max(theirs.flatten().map_or(0, Calls::folded_sum))
        );
    }
    let diff = theirs.map(|theirs| {
        if theirs.is_none() {
            eprintln!(
                "dynostats: the base has no profile records measured in {}",
                calls.timer()
            );
        }
        calls.diff_against(theirs, args.normalize, scale, args.confidence)
    });
    let folded = match &diff {
        Some(diff) => {
            let mut pairs = Vec::new();
            diff.write_folded(&mut pairs)?;
            pairs
        }
        None => folded_bytes(Some(calls), scale),
    };
    let stacks = folded.iter().filter(|&&b| b == b'\n').count();
    let path = args.output.as_deref().unwrap_or("-");
    let mut out: Box<dyn Write> = match path {
        "-" => Box::new(BufWriter::new(io::stdout().lock())),
        path => Box::new(BufWriter::new(File::create(path)?)),
    };
    let shown = if path == "-" {
        "standard output".to_string()
    } else {
        escape_name(path)
    };
    let mut labels = profiles.flame_labels(calls, source, scale);
    if args.folded {
        out.write_all(&folded)?;
        out.flush()?;
        eprintln!(
            "dynostats: wrote {shown}: {} folded stacks of {} profile records, amounts in {}{}",
            grouped(stacks as u64),
            grouped(calls.records()),
            labels.count_name,
            if diff.is_some() {
                " (base, then candidate)"
            } else {
                " (each stack's own, exclusive)"
            }
        );
        return Ok(true);
    }
    if folded.is_empty() {
        // inferno refuses an empty graph; say so rather than write nothing.
        eprintln!("dynostats: no positive amounts to draw");
        return Ok(false);
    }
    if let (Some(diff), Some(sides)) = (&diff, &sides) {
        labels = labels.differential(&sides.cand_source, &sides.base_source, diff);
    }
    if let Some(title) = &args.title {
        labels.title = title.clone();
    }
    labels.fit(args.width, FONT_SIZE, FONT_WIDTH);
    let mut opt = inferno::flamegraph::Options::default();
    opt.title = labels.title.clone();
    opt.subtitle = labels.subtitle.first().cloned();
    opt.count_name = labels.count_name.clone();
    opt.name_type = "Scope:".to_string();
    opt.font_size = FONT_SIZE;
    opt.font_width = FONT_WIDTH;
    opt.image_width = Some(args.width);
    opt.deterministic = true;
    let mut drawn = Vec::new();
    inferno::flamegraph::from_reader(&mut opt, &folded[..], &mut drawn)?;
    let drawn = String::from_utf8_lossy(&drawn).into_owned();
    let finished = labels.finish_svg(&drawn).and_then(|svg| match &diff {
        Some(diff) => diff.finish_svg(&svg),
        None => Ok(svg),
    });
    let svg = finished.unwrap_or_else(|e| {
        eprintln!(
            "dynostats: the SVG is written as inferno drew it ({e}): its subtitle may be cut"
        );
        drawn
    });
    out.write_all(svg.as_bytes())?;
    out.flush()?;
    let verdicts = match &diff {
        Some(diff) if diff.judged() => format!(
            "; {} frames changed beyond noise ({:.0}% confidence), the others grey",
            diff.significant(),
            args.confidence * 100.0
        ),
        Some(_) => "; changes not judged against noise (no per-record spread)".to_string(),
        None => String::new(),
    };
    eprintln!(
        "dynostats: wrote {shown}: a flame graph of {} stacks from {} profile records, \
         frames as wide as their inclusive {}{verdicts}",
        grouped(stacks as u64),
        grouped(calls.records()),
        labels.count_name,
    );
    Ok(true)
}

/// With `--clickhouse`: the call trees of the `--label` records and, for
/// a differential graph, of the base's: `--base KEY=VALUE` against
/// `--against KEY=VALUE` (each with the `--label` filters), or the
/// earlier `--diff KEY=VALUE` (the `--label` filters, those of its keys
/// replaced by its values).
fn from_fleet(args: &FlameArgs) -> Result<(Profiles, Option<Profiles>), u8> {
    let labels = &args.input.inputs.labels;
    let mut against = Vec::new();
    for label in args.against.iter().chain(&args.diff) {
        match crate::args::parse_label(label) {
            Ok(kv) => against.push(kv),
            Err(e) => {
                eprintln!("dynostats: --against and --base with --clickhouse take labels: {e}");
                return Err(EXIT_USAGE);
            }
        }
    }
    if !args.diff.is_empty() {
        let profiles = args
            .input
            .fleet_profiles(labels)
            .unwrap_or(Err(EXIT_USAGE))?;
        // The base's labels replace the --label filters of the same keys.
        let mut base_labels: Vec<(String, String)> = labels
            .iter()
            .filter(|(k, _)| !against.iter().any(|(d, _)| d == k))
            .cloned()
            .collect();
        base_labels.extend(against);
        let base = args
            .input
            .fleet_profiles(&base_labels)
            .unwrap_or(Err(EXIT_USAGE))?;
        return Ok((profiles, Some(base)));
    }
    let with = |side: &[(String, String)]| [labels.as_slice(), side].concat();
    let profiles = args
        .input
        .fleet_profiles(&with(&against))
        .unwrap_or(Err(EXIT_USAGE))?;
    if args.against.is_empty() && args.base_labels.is_empty() {
        return Ok((profiles, None));
    }
    let base = args
        .input
        .fleet_profiles(&with(&args.base_labels))
        .unwrap_or(Err(EXIT_USAGE))?;
    Ok((profiles, Some(base)))
}

/// The new spelling of a differential flame graph, for errors.
const SPELLING: &str = "dynostats flamegraph BASE... --against CAND... -o OUT.svg (as compare \
                        reads its sides; with --clickhouse: --base KEY=VALUE --against KEY=VALUE)";

/// The candidate's and the base's files: `FILES --against CAND...`, or
/// the earlier `CAND --diff BASE` (one file each, either order), or a
/// usage error that says the spelling.
fn file_sides(args: &FlameArgs) -> Result<(Vec<String>, Option<Vec<String>>), u8> {
    let files = args.input.files.clone();
    if args.diff.is_empty() {
        if args.against.is_empty() {
            return Ok((files, None));
        }
        return Ok((args.against.clone(), Some(files)));
    }
    if !args.against.is_empty() || args.diff.len() != 1 || files.len() != 1 {
        eprintln!(
            "dynostats: --diff reads one base and one candidate file; a differential flame \
             graph is now written {SPELLING}"
        );
        return Err(EXIT_USAGE);
    }
    Ok((files, Some(args.diff.clone())))
}

/// Runs `dynostats flamegraph` and returns the exit status: that of the
/// inputs (nothing to draw is not an error of theirs; it is said on
/// stderr and no file is written), or 1 when the output cannot be written.
pub(crate) fn run(args: &FlameArgs) -> u8 {
    let differential =
        !args.against.is_empty() || !args.diff.is_empty() || !args.base_labels.is_empty();
    if args.normalize && !differential {
        eprintln!("dynostats: --normalize draws a differential graph: {SPELLING}");
        return EXIT_USAGE;
    }
    let (profiles, base, files, sources) = if args.input.fleet.active() {
        match from_fleet(args) {
            Ok((profiles, base)) => {
                let mut cand: Vec<String> = args
                    .input
                    .inputs
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                cand.extend(args.against.iter().cloned());
                let mut theirs: Vec<String> = args
                    .base_labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                theirs.extend(args.diff.iter().cloned());
                let say = |l: Vec<String>| {
                    if l.is_empty() {
                        "ClickHouse".to_string()
                    } else {
                        format!("ClickHouse {}", l.join(" "))
                    }
                };
                (profiles, base, Vec::new(), (say(cand), say(theirs)))
            }
            Err(status) => return status,
        }
    } else {
        let (cand, theirs) = match file_sides(args) {
            Ok(sides) => sides,
            Err(status) => return status,
        };
        let (profiles, mut files) = args.input.read(&cand);
        let mut failed = only_failures(&files);
        let base = theirs.as_ref().map(|theirs| {
            let (base, read) = args.input.read(theirs);
            failed |= only_failures(&read);
            files.extend(read);
            base
        });
        if failed {
            return args.input.inputs.status(&files);
        }
        let sources = (
            source(&cand),
            theirs.as_deref().map(source).unwrap_or_default(),
        );
        (profiles, base, files, sources)
    };
    let sides = base.as_ref().map(|base| Sides {
        base,
        base_source: sources.1.clone(),
        cand_source: sources.0.clone(),
    });
    match draw(args, &profiles, &sources.0, sides) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            eprintln!("dynostats: cannot write the flame graph: {e}");
            EXIT_IO
        }
        _ => args.input.inputs.status(&files),
    }
}
