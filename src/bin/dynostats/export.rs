//! `dynostats export`: record files as the rows of the ClickHouse tables
//! (`dynostats::clickhouse::Rows`), one JSON-lines or Parquet file per
//! table, for other engines (DuckDB, Spark) and bulk loads.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use dynostats::Record;
use dynostats::clickhouse::{Rows, Table};
use dynostats::report::Summarize;
use dynostats::report::output::escape_name;

use crate::EXIT_IO;
use crate::args::Inputs;
use crate::parquet::ParquetTable;

/// The end of `dynostats export --help`.
pub(crate) const HELP: &str = "\
OUTPUT:
  DIR/records.EXT        one row per request or region record
  DIR/profile_nodes.EXT  one row per node of a profile record's call tree
  DIR/status.EXT         one row per status record
  EXT is jsonl or parquet (zstd-compressed, a row group per 65,536 rows).
  The columns of docs/clickhouse.md, in its order; an absent counter is
  null. ClickHouse loads them with INSERT INTO dynostats.records FORMAT
  JSONEachRow, or INSERT INTO dynostats.records SELECT * FROM
  file('records.parquet', Parquet); DuckDB with read_json or read_parquet.

EXAMPLES:
  dynostats export --format jsonl --rotated records.msgpack -o out/
  dynostats export --format parquet records.msgpack.1 records.msgpack -o out/

EXIT STATUS: 3 damaged input (the records before the damage were written);
0-3 as every subcommand (see dynostats --help)";

/// The arguments of `dynostats export`.
#[derive(clap::Args)]
pub(crate) struct ExportArgs {
    /// Record files, in order: `-` is standard input; gzip and zstd are
    /// decompressed; --rotated adds FILE.N ... FILE.1 before FILE.
    #[arg(required = true)]
    files: Vec<String>,
    /// The output format: jsonl (JSON lines, ClickHouse's JSONEachRow) or
    /// parquet (Parquet, zstd-compressed; the same columns and values).
    #[arg(long, default_value = "jsonl", value_parser = ["jsonl", "parquet"])]
    format: String,
    /// The directory the files are written to (made if missing).
    #[arg(long, short, value_name = "DIR")]
    output: PathBuf,
    #[command(flatten)]
    inputs: Inputs,
}

/// Where one table's rows go.
enum Output {
    /// JSON lines: the rows' text as it is.
    Jsonl(BufWriter<File>),
    /// Parquet: the rows' text decoded into Arrow columns.
    Parquet(Box<ParquetTable>),
}

impl Output {
    fn write(&mut self, text: &str) -> io::Result<()> {
        match self {
            Output::Jsonl(file) => file.write_all(text.as_bytes()),
            Output::Parquet(table) => table.write(text),
        }
    }

    /// Writes what is buffered (for Parquet: the last row group and the
    /// footer).
    fn finish(self) -> io::Result<()> {
        match self {
            Output::Jsonl(mut file) => file.flush(),
            Output::Parquet(table) => table.finish(),
        }
    }
}

/// Writes each record's rows to the table files, a batch at a time.
struct Writer {
    rows: Rows,
    files: Vec<(Table, Output)>,
    labels: Vec<(String, String)>,
    error: Option<io::Error>,
    records: u64,
}

impl Writer {
    const BATCH_BYTES: usize = 4 << 20;

    fn flush(&mut self) {
        if self.error.is_some() {
            return;
        }
        for (table, file) in &mut self.files {
            if let Err(e) = file.write(self.rows.text(*table)) {
                self.error = Some(e);
                return;
            }
        }
        self.rows.clear();
    }
}

impl Summarize for Writer {
    fn add(&mut self, record: &Record) {
        if !self
            .labels
            .iter()
            .all(|(k, v)| record.labels.get(k) == Some(v.as_str()))
        {
            return;
        }
        self.rows.push(record);
        self.records += 1;
        if self.rows.bytes() >= Writer::BATCH_BYTES {
            self.flush();
        }
    }

    fn needs_labels(&self) -> bool {
        true
    }
}

fn create(dir: &Path, format: &str) -> io::Result<Vec<(Table, Output)>> {
    std::fs::create_dir_all(dir)?;
    Table::ALL
        .into_iter()
        .map(|t| {
            let path = dir.join(format!("{}.{format}", t.name()));
            let output = match format {
                "parquet" => Output::Parquet(Box::new(ParquetTable::create(t, &path)?)),
                _ => Output::Jsonl(BufWriter::new(File::create(path)?)),
            };
            Ok((t, output))
        })
        .collect()
}

/// Runs `dynostats export` and returns the exit status.
pub(crate) fn run(args: &ExportArgs) -> u8 {
    let shown = escape_name(&args.output.display().to_string());
    let files = match create(&args.output, &args.format) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("dynostats: cannot write to {shown}: {e}");
            return EXIT_IO;
        }
    };
    let mut writer = Writer {
        rows: Rows::new(),
        files,
        labels: args.inputs.labels.clone(),
        error: None,
        records: 0,
    };
    let reads = args.inputs.read(&mut writer, &args.files);
    writer.flush();
    for (_, file) in std::mem::take(&mut writer.files) {
        if let Err(e) = file.finish() {
            writer.error.get_or_insert(e);
        }
    }
    if let Some(e) = &writer.error {
        eprintln!("dynostats: writing to {shown}: {e}");
        return EXIT_IO;
    }
    eprintln!(
        "dynostats: wrote the rows of {} records to {shown}",
        writer.records
    );
    args.inputs.status(&reads)
}
