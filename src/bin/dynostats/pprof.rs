//! `dynostats pprof`: the profile records' call trees summed by the library
//! (`dynostats::report::profiles::Profiles`), written as a pprof profile
//! (`Pprof::write`) and gzipped here: the library writes the message
//! uncompressed, since gzip (flate2) is a dependency of the command only.

use std::fs::File;
use std::io::{self, BufWriter, Write};

use dynostats::report::profiles::{Pprof, Profiles};
use flate2::Compression;
use flate2::write::GzEncoder;

use crate::EXIT_IO;
use crate::args::ProfileInput;
use crate::input::{nothing, only_failures, warnings};

/// An example for `--help`.
pub(crate) const EXAMPLE: &str = "\
EXAMPLE:
  dynostats pprof requests.msgpack --label-key build -o profile.pb.gz
  go tool pprof -top profile.pb.gz                      # flat = exclusive, cum = inclusive
  go tool pprof -top -sample_index=calls profile.pb.gz  # weighted calls
  go tool pprof -top -tagfocus 'endpoint=^/users/\\{id\\}$' profile.pb.gz
  go tool pprof -http :8080 -tagfocus build=v42 profile.pb.gz";

/// The arguments of `dynostats pprof`.
#[derive(clap::Args)]
pub(crate) struct PprofArgs {
    #[command(flatten)]
    input: ProfileInput,
    /// Carries the record label KEY (build, host ...) as a pprof label of
    /// each sample, so that pprof's -tagfocus KEY=VALUE works; repeatable.
    /// `trace_id` and `span_id` carry the records' trace ids (one sample
    /// per path and traced request). Every sample carries `endpoint` (its
    /// endpoint or region) anyway.
    #[arg(long = "label-key", value_name = "KEY", value_parser = parse_label_key)]
    label_keys: Vec<String>,
    /// Where to write the profile (gzip-compressed `profile.proto`, as
    /// pprof reads it); `-` is standard output.
    #[arg(long, short, value_name = "FILE")]
    output: String,
}

/// A `--label-key`: any record label but `endpoint`, which every sample
/// carries already.
fn parse_label_key(s: &str) -> Result<String, String> {
    if s == Pprof::ENDPOINT_LABEL {
        Err(format!(
            "every sample carries the label {s:?} (its endpoint or region) already"
        ))
    } else if s.is_empty() {
        Err("expected a label key".to_string())
    } else {
        Ok(s.to_string())
    }
}

fn write(args: &PprofArgs, profiles: &Profiles) -> io::Result<bool> {
    let Some(pprof) = profiles.pprof(args.input.metric) else {
        eprintln!("dynostats: {}", nothing(profiles, args.input.metric));
        return Ok(false);
    };
    let calls = pprof.calls();
    for line in warnings(profiles, Some(calls)) {
        eprintln!("dynostats: {line}");
    }
    if profiles.label_sets_beyond_cap() > 0 {
        eprintln!(
            "dynostats: {} profile records had label values beyond --max-paths distinct \
             tuples: their samples carry <other>",
            profiles.label_sets_beyond_cap()
        );
    }
    if let Some(note) = profiles.timer_note(calls) {
        eprintln!("dynostats: {note}");
    }
    for note in pprof.notes() {
        eprintln!("dynostats: {note}");
    }
    let out: Box<dyn Write> = match args.output.as_str() {
        "-" => Box::new(io::stdout().lock()),
        path => Box::new(File::create(path)?),
    };
    // flate2's header has no time or name: the same input gives the same
    // bytes.
    let mut gz = GzEncoder::new(BufWriter::new(out), Compression::default());
    pprof.write(&mut gz)?;
    gz.finish()?.flush()?;
    Ok(true)
}

/// With `--clickhouse`: the call trees summed by the server, each path per
/// tuple of the `--label-key` values, or the exit status of a failure.
fn from_clickhouse(args: &PprofArgs) -> Result<Profiles, u8> {
    let input = &args.input;
    let selection = input.fleet.selection(&input.inputs.labels)?;
    let db = input.fleet.connect()?;
    let profiles = db.labelled_profiles(
        &selection,
        input.endpoint.as_deref(),
        input.max_paths,
        &args.label_keys,
    );
    input.fleet.answer(&db, profiles)
}

/// Runs `dynostats pprof` and returns the exit status: that of the inputs
/// (nothing to write is said on stderr and no file is written), or 1 when
/// the output cannot be written.
pub(crate) fn run(args: &PprofArgs) -> u8 {
    let mut builder = args.input.builder();
    for key in &args.label_keys {
        builder = builder.sample_label(key);
    }
    let (profiles, files) = if args.input.fleet.active() {
        match from_clickhouse(args) {
            Ok(profiles) => (profiles, Vec::new()),
            Err(status) => return status,
        }
    } else {
        args.input.read_into(builder.build(), &args.input.files)
    };
    if only_failures(&files) {
        return args.input.inputs.status(&files);
    }
    match write(args, &profiles) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            eprintln!("dynostats: cannot write the profile: {e}");
            EXIT_IO
        }
        _ => args.input.inputs.status(&files),
    }
}
