//! Input files into a report, with what happened to each file.

use std::fs::File;
use std::path::PathBuf;

use dynostats::Report;
use serde::Serialize;

/// What happened to one input file (shown in `--json`).
#[derive(Serialize)]
pub(crate) struct FileRead {
    pub(crate) path: String,
    pub(crate) records: u64,
    /// Why reading stopped early, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    /// Byte offset of the damaged record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) offset: Option<u64>,
}

/// Reads `paths` in order into `report`; a file that cannot be opened or is
/// damaged is reported on stderr and in its `FileRead`, and the records
/// before the damage stay in the report.
pub(crate) fn read_files(report: &mut Report, paths: &[PathBuf]) -> Vec<FileRead> {
    let mut files = Vec::new();
    for path in paths {
        let shown = path.display().to_string();
        let read = match File::open(path) {
            Ok(file) => report.read_from(file).map_err(|e| {
                let message = format!(
                    "{shown}: {}; the {} records before it are in the report",
                    e.error, e.records_read
                );
                (message, e.records_read, e.offset())
            }),
            Err(e) => Err((format!("{shown}: cannot open: {e}"), 0, None)),
        };
        files.push(match read {
            Ok(records) => FileRead {
                path: shown,
                records,
                error: None,
                offset: None,
            },
            Err((message, records, offset)) => {
                eprintln!("dynostats: {message}");
                FileRead {
                    path: shown,
                    records,
                    error: Some(message),
                    offset,
                }
            }
        });
    }
    files
}
