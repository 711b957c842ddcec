//! Records into ClickHouse: the tables, the rows, and (feature
//! `clickhouse`) a client for its HTTP interface.
//!
//! At fleet scale the records of thousands of hosts go into ClickHouse,
//! through a collector tier (Fluent Bit, Vector) or straight from a loader,
//! and are answered there. This module holds what every path shares:
//!
//! - [`Schema`]: the DDL of the raw tables (`records`, `profile_nodes`,
//!   `status`), the rollup (per endpoint, build and minute: the mergeable
//!   summaries `dynostats compare` and `timeseries` need), retention, a
//!   cluster's `Distributed` tables, and the dialect of ClickHouse 18.16.
//!   `dynostats clickhouse schema` prints it.
//! - [`Rows`]: records as rows of those tables, in `JSONEachRow`.
//!   `dynostats load` inserts them, `dynostats export` writes them.
//! - [`ClickHouseSink`] (feature `clickhouse`): the same rows inserted
//!   straight from a service's pipeline, for fleets without a collector
//!   tier.
//!
//! `docs/clickhouse.md` explains each choice of the schema and how to load.
//!
//! ```
//! use dynostats::clickhouse::{Rows, Table};
//! use dynostats::{Record, RecordKind};
//!
//! let mut r = Record::new(RecordKind::Request, "/users/{id}");
//! r.weight = 100;
//! r.cpu_ns = Some(52_000);
//! let mut rows = Rows::new();
//! rows.push(&r);
//! let line = rows.text(Table::Records);
//! assert!(line.contains(r#""cpu_ns":52000,"instructions":null"#));
//! ```

#[cfg(feature = "clickhouse")]
mod answers;
#[cfg(feature = "clickhouse")]
mod client;
mod rows;
mod schema;
#[cfg(feature = "clickhouse")]
mod sink;

#[cfg(feature = "clickhouse")]
pub use answers::{AnswerError, ClickHouse, Query, Selection, Source};
#[cfg(feature = "clickhouse")]
pub use client::{ClickHouseError, Client, Server};
pub use rows::Rows;
pub use schema::{
    Column, Dialect, ROWS_SINCE, SCHEMA_VERSION, Schema, Statement, Table, bucket_sql,
    takes_rows_of_this_release,
};
#[cfg(feature = "clickhouse")]
pub use sink::{ClickHouseSink, ClickHouseSinkBuilder, ClickHouseStats};
