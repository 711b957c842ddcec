//! How every subcommand prints: its result on standard output (buffered),
//! in JSON inside the envelope that lists the inputs (`files`), as a table
//! followed by the inputs that were damaged, or as CSV; a reader that
//! stops early (`| head`) is not an error.

use std::io::{self, BufWriter, Write};

use dynostats::report::Format;
use dynostats::report::output::{escape_name, json_string};

use crate::input::FileRead;
use crate::{EXIT_IO, EXIT_OK};

/// Standard output, buffered: where every subcommand prints its result.
pub(crate) type Stdout = BufWriter<io::StdoutLock<'static>>;

/// Prints a subcommand's result in `format`: as JSON, the inputs' `files`
/// and then `"KEY":` followed by what `body` writes, closed; as CSV, what
/// `body` writes; as a table, followed by the inputs that were damaged.
/// Returns `EXIT_OK`, or `EXIT_IO` (said on stderr, naming `what`) when
/// standard output cannot be written. A reader that stopped early
/// (`| head`) is not an error.
pub(crate) fn print(
    what: &str,
    format: Format,
    files: &[FileRead],
    key: &str,
    body: impl FnOnce(&mut Stdout) -> io::Result<()>,
) -> u8 {
    let mut out = BufWriter::with_capacity(64 << 10, io::stdout().lock());
    let written = (|| -> io::Result<()> {
        if format == Format::Json {
            write_files_json_as(&mut out, files, key)?;
        }
        body(&mut out)?;
        match format {
            Format::Json => writeln!(out, "}}")?,
            Format::Table => write_troubled(&mut out, files)?,
            _ => {}
        }
        out.flush()
    })();
    match written {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            eprintln!("dynostats: cannot write the {what}: {e}");
            EXIT_IO
        }
        _ => EXIT_OK,
    }
}

/// The INCOMPLETE and SKIPPED lines below a table, one per troubled file.
pub(crate) fn write_troubled(out: &mut impl Write, files: &[FileRead]) -> io::Result<()> {
    let troubled: Vec<&FileRead> = files
        .iter()
        .filter(|f| f.error.is_some() || f.skipped_total() > 0)
        .collect();
    if !troubled.is_empty() {
        writeln!(out)?;
    }
    for f in troubled {
        if let Some(error) = &f.error {
            writeln!(out, "INCOMPLETE: {}", escape_name(error))?;
        }
        if f.skipped_total() > 0 {
            writeln!(
                out,
                "SKIPPED: {}: {} records that are not records this reader \
                 understands (see stderr)",
                f.path,
                f.skipped_total()
            )?;
        }
    }
    Ok(())
}

/// The `files` part of the JSON output, then `"KEY":` for what follows.
fn write_files_json_as(out: &mut impl Write, files: &[FileRead], key: &str) -> io::Result<()> {
    write!(out, "{{\"files\":[")?;
    for (i, f) in files.iter().enumerate() {
        write!(
            out,
            "{}\n{{\"path\":{},\"records\":{},\"skipped\":{{",
            if i > 0 { "," } else { "" },
            json_string(&f.path),
            f.records
        )?;
        for (j, (reason, n)) in f.skipped.iter().enumerate() {
            write!(
                out,
                "{}{}:{n}",
                if j > 0 { "," } else { "" },
                json_string(reason)
            )?;
        }
        write!(out, "}},\"newer_versions\":{}", f.newer_versions)?;
        if let Some(c) = f.compression {
            write!(out, ",\"compression\":{}", json_string(c))?;
        }
        if let Some((offset, message)) = &f.first_skip {
            write!(
                out,
                ",\"first_skip\":{{\"offset\":{offset},\"message\":{}}}",
                json_string(message)
            )?;
        }
        if let Some(error) = &f.error {
            write!(out, ",\"error\":{}", json_string(error))?;
        }
        if let Some(offset) = f.offset {
            write!(out, ",\"offset\":{offset}")?;
        }
        write!(out, "}}")?;
    }
    write!(out, "\n],{}:", json_string(key))
}
