//! `rollup_sketch`: the quantile sketches of the rollup as rows, one per
//! (kind, endpoint, build, hour, metric, sketch bucket), so that a plain
//! `GROUP BY ... sum(weight)` merges them (merging `sumMap` states costs
//! far more than summing rows). Current ClickHouse only, like the rollup.

use std::fmt::Write as _;

use super::{Schema, Statement, bucket_sql, metric_sql};
use crate::report::Metric;

/// The SQL of an array with one tuple `(metric, bucket, value)` per metric
/// a records row (columns prefixed `r.`) carries: what
/// `ARRAY JOIN ... AS s` turns into one row per present metric. The value
/// is an `Int128`, the bucket [`bucket_sql`]'s.
pub(crate) fn metric_tuples() -> String {
    let mut out = String::from("arrayFilter(t -> t.4, [");
    for (i, metric) in Metric::ALL.into_iter().enumerate() {
        let (present, value) = metric_sql(metric);
        let value = format!("toInt128({})", prefixed(value));
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(
            out,
            "tuple('{}', {}, {value}, toUInt8({}))",
            metric.name(),
            bucket_sql(&value),
            prefixed(present),
        );
    }
    out.push_str("])");
    out
}

/// `expr` with the records columns it names prefixed by the table alias
/// `r.` (the sketch view's own `weight` would shadow the column).
fn prefixed(expr: &str) -> String {
    let mut out = expr.to_string();
    for column in [
        "instructions",
        "cycles",
        "cpu_ns",
        "wall_ns",
        "rss_start",
        "rss_end",
    ] {
        out = out.replace(column, &format!("r.{column}"));
    }
    out
}

/// Completed records of positive weight: those whose values a sketch
/// holds (as [`Summary`](crate::report::Summary) counts them).
pub(crate) const SKETCHED: &str =
    "r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND r.weight > 0";

impl Schema {
    /// The sketches' time bucket, in seconds: an hour (of the epoch, in
    /// every time zone). See
    /// `docs/clickhouse.md` ("rollup_sketch") for why not a minute.
    pub const SKETCH_BUCKET_SECONDS: u32 = 3600;

    /// `rollup_sketch` and its view `rollup_sketch_mv` from the shard's
    /// raw records table: per kind, name, method, build, hour, metric and
    /// [`Sketch::bucket`](crate::report::Sketch::bucket) key, the summed
    /// weight and the smallest and largest value in the bucket (equal
    /// when the bucket holds one value: then its quantiles are exact).
    pub(super) fn rollup_sketch(&self) -> Vec<Statement> {
        let columns = "\n    kind LowCardinality(String),\n    name LowCardinality(String),\
             \n    method LowCardinality(String),\n    build LowCardinality(String),\
             \n    hour DateTime,\n    metric LowCardinality(String),\n    key Int16,\
             \n    weight SimpleAggregateFunction(sum, UInt64),\
             \n    lo SimpleAggregateFunction(min, Int128),\
             \n    hi SimpleAggregateFunction(max, Int128)";
        self.rollup_table(
            "rollup_sketch",
            columns,
            "(kind, name, build, method, hour, metric, key)",
            "hour",
            &self.sketch_select(None),
        )
    }

    /// The `SELECT` that makes `rollup_sketch` rows from the shard's raw
    /// records (those before `until_s`, seconds since the epoch, when
    /// given).
    fn sketch_select(&self, until_s: Option<u64>) -> String {
        let db = &self.database;
        let source = self.local("records");
        let before = match until_s {
            Some(s) => format!(" AND r.time < toDateTime({s})"),
            None => String::new(),
        };
        format!(
            "SELECT kind, name, method, build, \
             toDateTime(intDiv(toUInt32(r.time), {grain}) * {grain}) AS hour, s.1 AS metric, \
             s.2 AS key, sum(r.weight) AS weight, min(s.3) AS lo, max(s.3) AS hi \
             FROM {db}.{source} AS r ARRAY JOIN {tuples} AS s WHERE {SKETCHED}{before} \
             GROUP BY kind, name, method, build, hour, metric, key",
            grain = Schema::SKETCH_BUCKET_SECONDS,
            tuples = metric_tuples(),
        )
    }

    /// The statements that make `rollup_sketch` whole for the records
    /// before `until_s` (seconds since the epoch, on an hour): its rows of
    /// those hours deleted, then made again from the raw records still
    /// kept. For a database upgraded from schema version 2, whose records
    /// loaded before the upgrade have no sketch rows: `until_s` is the
    /// hour after the upgrade (`dynostats clickhouse init --backfill`).
    /// On a cluster, the shard's own rows from its own records: run them on
    /// one server of every shard (a replicated shard's replicas follow).
    ///
    /// # Panics
    /// When [`Schema::check`] refuses the names, or for the 18.16
    /// dialect (it has no rollup).
    pub fn sketch_backfill(&self, until_s: u64) -> Vec<Statement> {
        if let Err(e) = self.check() {
            panic!("Schema::sketch_backfill: {e}");
        }
        assert!(
            self.dialect == super::Dialect::Current,
            "Schema::sketch_backfill: ClickHouse 18.16 has no rollup"
        );
        let db = &self.database;
        let local = self.local("rollup_sketch");
        vec![
            Statement {
                makes: format!("{local} rows before the backfill's end (deleted)"),
                sql: format!(
                    "ALTER TABLE {db}.{local} DELETE WHERE hour < toDateTime({until_s}) \
                     SETTINGS mutations_sync = 2"
                ),
            },
            Statement {
                makes: format!("{local} rows from the raw records"),
                sql: format!(
                    "INSERT INTO {db}.{local} {}",
                    self.sketch_select(Some(until_s))
                ),
            },
        ]
    }
}
