//! `dynostats report`: the table (or JSON) of a report.

use std::io::Write;

use dynostats::Report;
use dynostats::report::Table;
use serde::Serialize;

use crate::input::{FileRead, read_files};
use crate::{EXIT_DAMAGED, EXIT_IO, EXIT_OK, ReportArgs};

#[derive(Serialize)]
struct JsonOutput<'a> {
    files: Vec<FileRead>,
    report: Table<'a>,
}

/// Runs `dynostats report` and returns the exit status.
pub(crate) fn run(args: &ReportArgs) -> u8 {
    let mut report = Report::new();
    let files = read_files(&mut report, &args.files);
    let table = report.table().sort(args.sort).kind(args.kind);
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
                return EXIT_IO;
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
            return EXIT_IO;
        }
        _ => {}
    }
    if incomplete { EXIT_DAMAGED } else { EXIT_OK }
}
