//! `dynostats report`: the table, JSON or CSV of a report, streamed to
//! standard output.

use std::io::{self, BufWriter, Write};

use dynostats::report::{Format, Report};

use crate::input::{Ending, FileRead, expand, read_inputs};
use crate::{EXIT_DAMAGED, EXIT_IO, EXIT_OK, ReportArgs};

/// `s` as a JSON string (the library's table escapes its own).
fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
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
            writeln!(out, "INCOMPLETE: {}", dynostats::report::escape_name(error))?;
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

/// The exit status the inputs call for: 1 when one could not be read, 3
/// when one was damaged (or, `strict`, had a skipped record), else 0.
pub(crate) fn input_status(files: &[FileRead], strict: bool) -> u8 {
    if files.iter().any(|f| f.ending == Ending::Io) {
        EXIT_IO
    } else if files.iter().any(|f| f.ending == Ending::Damaged)
        || (strict && files.iter().any(|f| f.skipped_total() > 0))
    {
        EXIT_DAMAGED
    } else {
        EXIT_OK
    }
}

/// The `files` part of the JSON output, then the key of the report.
pub(crate) fn write_files_json(out: &mut impl Write, files: &[FileRead]) -> io::Result<()> {
    write_files_json_as(out, files, "report")
}

/// The `files` part of the JSON output, then `"KEY":` for what follows.
pub(crate) fn write_files_json_as(
    out: &mut impl Write,
    files: &[FileRead],
    key: &str,
) -> io::Result<()> {
    write!(out, "{{\"files\":[")?;
    for (i, f) in files.iter().enumerate() {
        write!(
            out,
            "{}\n{{\"path\":{},\"records\":{},\"skipped\":{{",
            if i > 0 { "," } else { "" },
            json_str(&f.path),
            f.records
        )?;
        for (j, (reason, n)) in f.skipped.iter().enumerate() {
            write!(
                out,
                "{}{}:{n}",
                if j > 0 { "," } else { "" },
                json_str(reason)
            )?;
        }
        write!(out, "}},\"newer_versions\":{}", f.newer_versions)?;
        if let Some(c) = f.compression {
            write!(out, ",\"compression\":{}", json_str(c))?;
        }
        if let Some((offset, message)) = &f.first_skip {
            write!(
                out,
                ",\"first_skip\":{{\"offset\":{offset},\"message\":{}}}",
                json_str(message)
            )?;
        }
        if let Some(error) = &f.error {
            write!(out, ",\"error\":{}", json_str(error))?;
        }
        if let Some(offset) = f.offset {
            write!(out, ",\"offset\":{offset}")?;
        }
        write!(out, "}}")?;
    }
    write!(out, "\n],{}:", json_str(key))
}

/// Runs `dynostats report` and returns the exit status.
pub(crate) fn run(args: &ReportArgs) -> u8 {
    let mut builder = Report::builder().max_groups(args.max_groups);
    for split in &args.by {
        builder = builder.split(split.clone());
    }
    for (k, v) in &args.labels {
        builder = builder.filter_label(k, v);
    }
    let mut report = builder.build();
    let inputs = expand(&args.files, args.rotated);
    let files = read_inputs(&mut report, &inputs, args.quiet);
    let format = if args.json { Format::Json } else { args.format };
    let table = report
        .table()
        .sort(args.sort)
        .kind(args.kind)
        .metric(args.metric)
        .name_width(if args.wide {
            None
        } else {
            Some(dynostats::report::Table::DEFAULT_NAME_WIDTH)
        });

    let stdout = io::stdout().lock();
    let mut out = BufWriter::with_capacity(64 << 10, stdout);
    let written = (|| -> io::Result<()> {
        if format == Format::Json {
            write_files_json(&mut out, &files)?;
            table.write_json(&mut out)?;
            writeln!(out, "}}")?;
        } else {
            table.write(format, &mut out)?;
            if format == Format::Table {
                write_troubled(&mut out, &files)?;
            }
        }
        out.flush()
    })();
    match written {
        // A reader that stopped early (`| head`) is not an error.
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            eprintln!("dynostats: cannot write the report: {e}");
            return EXIT_IO;
        }
        _ => {}
    }
    input_status(&files, args.strict)
}
