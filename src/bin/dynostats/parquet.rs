//! `dynostats export --format parquet`: the rows of one table
//! (`dynostats::clickhouse::Rows`) as a Parquet file.
//!
//! The Arrow schema is made from the table's columns
//! (`Table::row_columns`, their current ClickHouse types) by [`schema`],
//! so a column added to the table is a Parquet column too. The values are
//! the rows' own `JSONEachRow` text, decoded into Arrow columns of that
//! schema (arrow-json, strict: a key the schema lacks, a missing non-null
//! column or a value out of its type's range is an error): the Parquet
//! file holds exactly what the JSON-lines export writes, nulls and arrays
//! included.

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::Path;
use std::sync::Arc;

use arrow_json::reader::{Decoder, ReaderBuilder};
use arrow_schema::{DataType, Field, Schema};
use dynostats::clickhouse::Table;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

/// Rows per row group: a row group is written (and its memory freed) each
/// time this many rows have come.
const ROW_GROUP_ROWS: usize = 64 * 1024;

/// The Arrow type of a ClickHouse column type, and whether it is nullable:
/// `UInt8`..`UInt64` and `Int8`..`Int64` the same integers, `String` and
/// `LowCardinality(String)` `Utf8`, `Nullable(T)` a nullable `T`,
/// `Array(T)` a `List` of `T`. A codec (`UInt64 CODEC(...)`) is not part
/// of the type. Any other type is an error naming it.
pub(crate) fn arrow_type(ty: &str) -> Result<(DataType, bool), String> {
    let ty = ty.split(" CODEC(").next().unwrap_or(ty).trim();
    let inner = |prefix: &str| {
        ty.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(')'))
    };
    if let Some(t) = inner("Nullable(") {
        let (data_type, nullable) = arrow_type(t)?;
        if nullable {
            return Err(format!("no Parquet type for the ClickHouse type {ty}"));
        }
        return Ok((data_type, true));
    }
    if let Some(t) = inner("LowCardinality(") {
        return arrow_type(t);
    }
    if let Some(t) = inner("Array(") {
        let (item, nullable) = arrow_type(t)?;
        return Ok((
            DataType::List(Arc::new(Field::new_list_field(item, nullable))),
            false,
        ));
    }
    let data_type = match ty {
        "UInt8" => DataType::UInt8,
        "UInt16" => DataType::UInt16,
        "UInt32" => DataType::UInt32,
        "UInt64" => DataType::UInt64,
        "Int8" => DataType::Int8,
        "Int16" => DataType::Int16,
        "Int32" => DataType::Int32,
        "Int64" => DataType::Int64,
        "String" => DataType::Utf8,
        _ => return Err(format!("no Parquet type for the ClickHouse type {ty}")),
    };
    Ok((data_type, false))
}

/// The Arrow schema of `table`'s rows: every column a row carries, in the
/// table's order, typed by [`arrow_type`].
pub(crate) fn schema(table: Table) -> Result<Schema, String> {
    let fields = table
        .row_columns()
        .map(|c| {
            let (data_type, nullable) =
                arrow_type(c.current).map_err(|e| format!("{}.{}: {e}", table.name(), c.name))?;
            Ok(Field::new(c.name, data_type, nullable))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Schema::new(fields))
}

/// One table's Parquet file, written a row group at a time.
pub(crate) struct ParquetTable {
    decoder: Decoder,
    writer: ArrowWriter<BufWriter<File>>,
}

fn other(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::other(e)
}

impl ParquetTable {
    /// Creates (or empties) `path` for `table`'s rows, zstd-compressed.
    pub(crate) fn create(table: Table, path: &Path) -> io::Result<ParquetTable> {
        let schema = Arc::new(schema(table).map_err(io::Error::other)?);
        let decoder = ReaderBuilder::new(schema.clone())
            .with_batch_size(ROW_GROUP_ROWS)
            .with_strict_mode(true)
            .build_decoder()
            .map_err(other)?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .build();
        let file = BufWriter::new(File::create(path)?);
        let writer = ArrowWriter::try_new(file, schema, Some(props)).map_err(other)?;
        Ok(ParquetTable { decoder, writer })
    }

    /// Adds rows given as `JSONEachRow` text (whole lines). The writer
    /// writes a row group whenever [`ROW_GROUP_ROWS`] rows have come.
    pub(crate) fn write(&mut self, text: &str) -> io::Result<()> {
        let mut bytes = text.as_bytes();
        while !bytes.is_empty() {
            let read = self.decoder.decode(bytes).map_err(other)?;
            bytes = &bytes[read..];
            if self.decoder.len() >= ROW_GROUP_ROWS {
                self.flush_decoded()?;
            } else if read == 0 {
                return Err(io::Error::other("the rows' text could not be decoded"));
            }
        }
        self.flush_decoded()
    }

    fn flush_decoded(&mut self) -> io::Result<()> {
        if let Some(batch) = self.decoder.flush().map_err(other)? {
            self.writer.write(&batch).map_err(other)?;
        }
        Ok(())
    }

    /// Writes the last row group and the footer.
    pub(crate) fn finish(mut self) -> io::Result<()> {
        self.flush_decoded()?;
        let mut file = self.writer.into_inner().map_err(other)?;
        std::io::Write::flush(&mut file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_of_every_table_has_an_arrow_type() {
        for table in Table::ALL {
            let schema = schema(table).unwrap();
            let names: Vec<&str> = table.row_columns().map(|c| c.name).collect();
            let fields: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            assert_eq!(fields, names, "{table:?}");
        }
    }

    #[test]
    fn clickhouse_types_map_to_arrow_types() {
        let list = |t| DataType::List(Arc::new(Field::new_list_field(t, false)));
        for (ty, want) in [
            ("UInt64 CODEC(Delta, ZSTD(1))", (DataType::UInt64, false)),
            ("Nullable(UInt16)", (DataType::UInt16, true)),
            ("LowCardinality(String)", (DataType::Utf8, false)),
            (
                "Array(LowCardinality(String))",
                (list(DataType::Utf8), false),
            ),
            ("Array(UInt64)", (list(DataType::UInt64), false)),
            ("Nullable(Int64)", (DataType::Int64, true)),
        ] {
            assert_eq!(arrow_type(ty).unwrap(), want, "{ty}");
        }
        for ty in [
            "DateTime",
            "Nullable(Nullable(UInt8))",
            "Map(String, UInt64)",
            "UInt64)",
        ] {
            assert!(arrow_type(ty).is_err(), "{ty}");
        }
    }
}
