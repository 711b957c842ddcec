//! The command's input layer: files, rotated sets, `-` for standard input,
//! gzip and zstd found by their magic bytes, a progress bar on a terminal;
//! each input read into any summary (`dynostats::report::Summarize`) with
//! what happened to it.
//!
//! Decompression lives here, not in the library, so that programs using
//! the library do not build zstd's C code; `dynostats::read` takes any
//! `Read`, a decoder included.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use dynostats::Error;
use dynostats::profile::Timer;
use dynostats::record::RecordReader;
use dynostats::report::Metric;
use dynostats::report::Summarize;
use dynostats::report::output::escape_name;
use dynostats::report::profiles::{Calls, Profiles, ProfilesBuilder};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::args::{Inputs, ProfileInput};
use crate::{EXIT_DAMAGED, EXIT_IO, EXIT_OK};

/// How one input ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Read to its end.
    Whole,
    /// Framing damage, or a compressed stream cut short, ended it early.
    Damaged,
    /// It could not be opened or read.
    Io,
}

/// What happened to one input (shown in JSON, and on stderr).
pub(crate) struct FileRead {
    pub(crate) path: String,
    pub(crate) compression: Option<&'static str>,
    pub(crate) records: u64,
    pub(crate) skipped: BTreeMap<String, u64>,
    pub(crate) newer_versions: u64,
    pub(crate) ending: Ending,
    /// Why reading stopped early, if it did.
    pub(crate) error: Option<String>,
    /// Byte offset (in the decompressed stream) of the damaged record.
    pub(crate) offset: Option<u64>,
    /// Byte offset and sentence of the first skipped record.
    pub(crate) first_skip: Option<(u64, String)>,
}

/// True when no input gave a record and one could not be opened or read,
/// or was not records at all: its error (said on stderr while reading) is
/// the whole answer, with no empty table or "no records" after it.
pub(crate) fn only_failures(files: &[FileRead]) -> bool {
    files.iter().all(|f| f.records == 0) && files.iter().any(|f| f.ending != Ending::Whole)
}

impl FileRead {
    fn failed(path: String, error: String) -> FileRead {
        FileRead {
            path,
            compression: None,
            records: 0,
            skipped: BTreeMap::new(),
            newer_versions: 0,
            ending: Ending::Io,
            error: Some(error),
            offset: None,
            first_skip: None,
        }
    }

    pub(crate) fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }
}

/// The inputs named by `args`, with each file's rotated files before it
/// (oldest first) when `rotated`.
fn expand(args: &[String], rotated: bool) -> Vec<String> {
    let mut inputs = Vec::new();
    for arg in args {
        if rotated && arg != "-" {
            let older: Vec<String> = (1..)
                .map(|n| format!("{arg}.{n}"))
                .take_while(|p| Path::new(p).exists())
                .collect();
            inputs.extend(older.into_iter().rev());
        }
        inputs.push(arg.clone());
    }
    inputs
}

/// Counts the bytes read from the source, for the progress bar, and notes
/// whether the source itself failed (so that a decompressor's error can be
/// told from the file's).
struct Counted<R> {
    inner: R,
    bar: Option<ProgressBar>,
    failed: Rc<Cell<bool>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) => {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.failed.set(true);
                }
                return Err(e);
            }
        };
        if let Some(bar) = &self.bar {
            bar.inc(n as u64);
        }
        Ok(n)
    }
}

/// Why a compressed stream ended early, and after how many decompressed
/// bytes.
struct Cut {
    why: String,
    at: u64,
}

/// A decompressed stream whose decompressor's errors (a gzip or zstd file
/// cut short, or damaged) end the stream like the end of a file, noted in
/// `cut`: the records before are read, and the input is damaged (exit 3),
/// not unreadable. An error of the source under it stays an error.
struct Decompressed<'a> {
    inner: Box<dyn Read + 'a>,
    source_failed: Rc<Cell<bool>>,
    cut: Rc<RefCell<Option<Cut>>>,
    produced: u64,
}

impl Read for Decompressed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cut.borrow().is_some() {
            return Ok(0);
        }
        match self.inner.read(buf) {
            Ok(n) => {
                self.produced += n as u64;
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted || self.source_failed.get() => Err(e),
            Err(e) => {
                *self.cut.borrow_mut() = Some(Cut {
                    why: e.to_string(),
                    at: self.produced,
                });
                Ok(0)
            }
        }
    }
}

const GZIP: [u8; 2] = [0x1f, 0x8b];
const ZSTD: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// `source` decompressed when its first bytes are gzip's or zstd's magic
/// bytes, with the name of the compression.
fn decompressed<'a>(
    mut source: impl Read + 'a,
) -> io::Result<(Box<dyn Read + 'a>, Option<&'static str>)> {
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < head.len() {
        match source.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let whole = io::Cursor::new(head[..got].to_vec()).chain(source);
    let bytes = &head[..got];
    Ok(if bytes.starts_with(&GZIP) {
        // Several gzip members one after the other (files appended to) are
        // one stream.
        (
            Box::new(flate2::read::MultiGzDecoder::new(io::BufReader::new(whole))),
            Some("gzip"),
        )
    } else if bytes.starts_with(&ZSTD) {
        (
            Box::new(zstd::stream::read::Decoder::new(whole)?),
            Some("zstd"),
        )
    } else {
        (Box::new(whole), None)
    })
}

/// A progress bar over `total` bytes on stderr, when stderr is a terminal.
fn progress(total: Option<u64>, quiet: bool) -> Option<ProgressBar> {
    if quiet || !io::stderr().is_terminal() {
        return None;
    }
    let bar = match total {
        Some(total) => ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
            .with_style(
                ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            ),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template("{spinner} {bytes} {bytes_per_sec} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    Some(bar)
}

impl Inputs {
    /// Reads `files` (with their rotated files under `--rotated`) into
    /// `into`.
    pub(crate) fn read(&self, into: &mut impl Summarize, files: &[String]) -> Vec<FileRead> {
        read_inputs(into, &expand(files, self.rotated), self.quiet)
    }

    /// The inputs `files` name, with their rotated files under `--rotated`
    /// (oldest first), one by one.
    pub(crate) fn expanded(&self, files: &[String]) -> Vec<String> {
        expand(files, self.rotated)
    }

    /// Reads `inputs` as given (no rotated files added) into `into`.
    pub(crate) fn read_each(&self, into: &mut impl Summarize, inputs: &[String]) -> Vec<FileRead> {
        read_inputs(into, inputs, self.quiet)
    }

    /// The exit status `files` call for: 1 when one could not be read, 3
    /// when one was damaged (or, under `--strict`, had a skipped record),
    /// else 0.
    pub(crate) fn status(&self, files: &[FileRead]) -> u8 {
        if files.iter().any(|f| f.ending == Ending::Io) {
            EXIT_IO
        } else if files.iter().any(|f| f.ending == Ending::Damaged)
            || (self.strict && files.iter().any(|f| f.skipped_total() > 0))
        {
            EXIT_DAMAGED
        } else {
            EXIT_OK
        }
    }
}

/// Reads `inputs` in order into `report`. A file that cannot be opened or
/// read, or is damaged, is reported on stderr (once per file, with the
/// byte offset) and in its `FileRead`; the records before the damage stay
/// in the report.
fn read_inputs(report: &mut impl Summarize, inputs: &[String], quiet: bool) -> Vec<FileRead> {
    let sizes: Option<u64> = inputs
        .iter()
        .map(|p| {
            (p != "-")
                .then(|| std::fs::metadata(p).ok().map(|m| m.len()))
                .flatten()
        })
        .sum();
    let bar = progress(sizes, quiet);
    let mut files = Vec::new();
    for input in inputs {
        let shown = if input == "-" {
            "<stdin>".to_string()
        } else {
            escape_name(input)
        };
        if let Some(bar) = &bar {
            bar.set_message(shown.clone());
        }
        let read = if input == "-" {
            read_one(report, io::stdin().lock(), &shown, bar.clone())
        } else {
            match File::open(PathBuf::from(input)) {
                Ok(file) => read_one(report, file, &shown, bar.clone()),
                Err(e) => FileRead::failed(shown.clone(), format!("{shown}: cannot open: {e}")),
            }
        };
        report_on_stderr(&read, bar.as_ref());
        files.push(read);
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    files
}

fn read_one(
    report: &mut impl Summarize,
    source: impl Read,
    shown: &str,
    bar: Option<ProgressBar>,
) -> FileRead {
    let source_failed = Rc::new(Cell::new(false));
    let counted = Counted {
        inner: source,
        bar,
        failed: source_failed.clone(),
    };
    let (stream, compression) = match decompressed(counted) {
        Ok(s) => s,
        Err(e) => return FileRead::failed(shown.to_string(), format!("{shown}: cannot read: {e}")),
    };
    let cut = Rc::new(RefCell::new(None));
    let damage = match compression {
        Some(_) => report.read_records(RecordReader::new(Decompressed {
            inner: stream,
            source_failed,
            cut: cut.clone(),
            produced: 0,
        })),
        None => report.read_records(RecordReader::new(stream)),
    };
    let cut = cut.borrow_mut().take();
    let (ending, error, offset) = match (&damage.cut, cut) {
        // The decompressor found the stream cut short or damaged: what was
        // decompressed before is read, like a plain file cut there.
        (None | Some(Error::Truncated { .. } | Error::Decode { .. }), Some(cut)) => {
            let offset = match &damage.cut {
                Some(Error::Truncated { offset } | Error::Decode { offset, .. }) => *offset,
                _ => cut.at,
            };
            (
                Ending::Damaged,
                Some(format!(
                    "{shown}: the {} stream is cut short or damaged after {} decompressed \
                     bytes ({}); the {} records before it are in the report",
                    compression.unwrap_or("compressed"),
                    cut.at,
                    cut.why,
                    damage.records
                )),
                Some(offset),
            )
        }
        (None, None) => (Ending::Whole, None, None),
        (Some(e @ Error::Io { .. }), _) => (Ending::Io, Some(format!("{shown}: {e}")), None),
        // Damage at the first byte, nothing read: not a record file at all
        // (JSON, text, another format), said as such.
        (Some(e @ Error::Decode { offset: 0, .. }), None)
            if damage.records == 0 && damage.first_skip.is_none() =>
        {
            (
                Ending::Damaged,
                Some(format!(
                    "{shown}: not a dynostats record file (MessagePack records, \
                     docs/records.md): {e}"
                )),
                Some(0),
            )
        }
        (Some(e @ (Error::Truncated { offset } | Error::Decode { offset, .. })), None) => (
            Ending::Damaged,
            Some(format!(
                "{shown}: {e}; the {} records before it are in the report",
                damage.records
            )),
            Some(*offset),
        ),
        (Some(e), _) => (Ending::Io, Some(format!("{shown}: {e}")), None),
    };
    FileRead {
        path: shown.to_string(),
        compression,
        records: damage.records,
        skipped: damage
            .skipped
            .iter()
            .map(|(reason, n)| (reason.to_string(), *n))
            .collect(),
        newer_versions: damage.newer_versions,
        ending,
        error,
        offset,
        first_skip: damage
            .first_skip
            .as_ref()
            .map(|s| (s.offset, s.message.clone())),
    }
}

/// One line per kind of trouble with the file, on stderr.
fn report_on_stderr(read: &FileRead, bar: Option<&ProgressBar>) {
    let mut lines = Vec::new();
    let shown = &read.path;
    if let Some((offset, message)) = &read.first_skip {
        let reasons: Vec<String> = read
            .skipped
            .iter()
            .map(|(reason, n)| format!("{n} {reason}"))
            .collect();
        lines.push(format!(
            "{shown}: {} records skipped ({}); the first at byte offset {offset}: {}",
            read.skipped_total(),
            reasons.join(", "),
            escape_name(message)
        ));
    }
    if read.newer_versions > 0 {
        lines.push(format!(
            "{shown}: {} records of a newer schema version than {} were read for the fields \
             this reader knows",
            read.newer_versions,
            dynostats::Record::SCHEMA_VERSION
        ));
    }
    if let Some(error) = &read.error {
        lines.push(escape_name(error));
    } else if read.records == 0 && read.first_skip.is_none() {
        lines.push(format!("{shown}: empty: no records"));
    }
    for line in lines {
        let line = format!("dynostats: {line}");
        match bar {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }
}

impl ProfileInput {
    /// The summed call trees of `files` (or of `files` given), and what
    /// happened to each input.
    pub(crate) fn read(&self, files: &[String]) -> (Profiles, Vec<FileRead>) {
        self.read_into(self.builder().build(), files)
    }

    /// With `--clickhouse`: the call trees summed by the server over the
    /// records of `labels` (the `--label` filters and, for a differential
    /// flame graph, its base's), or the exit status of a failure; `None`
    /// without `--clickhouse`.
    pub(crate) fn fleet_profiles(
        &self,
        labels: &[(String, String)],
    ) -> Option<Result<Profiles, u8>> {
        if !self.fleet.active() {
            return None;
        }
        Some(self.fleet.selection(labels).and_then(|selection| {
            let db = self.fleet.connect()?;
            let profiles = db.profiles(&selection, self.endpoint.as_deref(), self.max_paths);
            self.fleet.answer(&db, profiles)
        }))
    }

    /// A builder with the filters and caps of these options, for a
    /// subcommand that sets more (`pprof`'s sample labels).
    pub(crate) fn builder(&self) -> ProfilesBuilder {
        let mut builder = Profiles::builder().max_paths(self.max_paths);
        for (k, v) in &self.inputs.labels {
            builder = builder.filter_label(k, v);
        }
        if let Some(e) = &self.endpoint {
            builder = builder.endpoint(e);
        }
        builder
    }

    /// Reads `files` into `profiles`.
    pub(crate) fn read_into(
        &self,
        mut profiles: Profiles,
        files: &[String],
    ) -> (Profiles, Vec<FileRead>) {
        let read = self.inputs.read(&mut profiles, files);
        (profiles, read)
    }
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
            "{} scopes beyond --max-paths were counted under <other>",
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
            Timer::from(m).name(),
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
