//! The tables records are loaded into, as DDL: one description of every
//! column ([`Table::columns`]), from which both the `CREATE TABLE`
//! statements and the rows ([`super::rows`]) are made.

use std::fmt::Write as _;

mod functions;
mod ingest;
mod sketch;

#[cfg(feature = "clickhouse")]
pub(crate) use functions::{ADDED_IN_4, FUNCTIONS_VERSION};

#[cfg(feature = "clickhouse")]
pub(crate) use sketch::{SKETCHED, metric_tuples};

use crate::report::Metric;
use crate::report::Sketch;

/// The version of the tables' layout. Raised when a column changes its
/// meaning or type or is removed; adding a column keeps it (see
/// `docs/clickhouse.md`, "Upgrades"). The shipped DDL writes it into the
/// table `schema_version`; `dynostats load` and `ClickHouseSink` refuse a
/// database whose tables do not take their rows
/// ([`takes_rows_of_this_release`]). Version 3 added `rollup_sketch`;
/// version 4 the `profile_nodes` columns `scope_first` and
/// `scope_inclusive` and `rollup_functions`. `dynostats clickhouse init`
/// upgrades a version 2 or 3 database.
pub const SCHEMA_VERSION: u32 = 4;

/// The oldest schema version whose tables take the rows this release
/// writes. Versions 3 and 4 added rollup tables and two `profile_nodes`
/// columns, which a loader or sink of this release leaves out where the
/// table lacks them (`input_format_skip_unknown_fields`), so it writes
/// into a version 2 database too: a fleet upgrades its writers first,
/// then the database (`dynostats clickhouse init`), never both at once.
pub const ROWS_SINCE: u32 = 2;

/// Whether a database whose `schema_version` table says `version` (its
/// `max(version)`, as the server printed it) takes the rows this release
/// writes: a version from [`ROWS_SINCE`] to [`SCHEMA_VERSION`].
pub fn takes_rows_of_this_release(version: &str) -> bool {
    version
        .trim()
        .parse::<u32>()
        .is_ok_and(|v| (ROWS_SINCE..=SCHEMA_VERSION).contains(&v))
}

/// `scope_first` of a `profile_nodes` row whose `scope_inclusive` was not
/// computed (the column's default): a row written before schema version
/// 4, by a writer of an earlier release, or by a collector tier's view
/// made before version 4 and not yet given its new query. Per-function
/// answers group such records' rows by record.
pub(crate) const SCOPE_UNKNOWN: u8 = 0;
/// `scope_first` of the first node of its name below the root:
/// `scope_inclusive` holds the name's inclusive amount in the record,
/// recursion counted once (what a comparison counts per profiled function),
/// so per-function sums need no grouping by record.
pub(crate) const SCOPE_FIRST: u8 = 1;
/// `scope_first` of the other rows of a record whose amounts were
/// computed (the root, and every later node of a name): `scope_inclusive`
/// is 0.
pub(crate) const SCOPE_OTHER: u8 = 2;

/// The first version with `rollup_sketch`.
#[cfg(feature = "clickhouse")]
pub(crate) const SKETCH_VERSION: u32 = 3;

/// The ClickHouse the statements are for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Dialect {
    /// Current ClickHouse (22.8 and later): `LowCardinality`, codecs,
    /// `TTL`, 128- and 256-bit integers, the rollup.
    #[default]
    Current,
    /// ClickHouse 18.16 (Debian's package): no `LowCardinality` without a
    /// setting, no codecs, no `TTL`, no `Map`, no 128-bit integers. The raw
    /// tables only, with plain `String` columns; no rollup (its exact sums
    /// need 256-bit integers). Retention is then the operator's
    /// `ALTER TABLE ... DROP PARTITION`.
    Compat1816,
}

/// One column of a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Column {
    /// The column's name: the key of a row in `JSONEachRow`.
    pub name: &'static str,
    /// Its type on current ClickHouse.
    pub current: &'static str,
    /// Its type on ClickHouse 18.16.
    pub compat: &'static str,
    /// For a column computed by the server from others: its expression
    /// (`MATERIALIZED`); rows never carry it.
    pub materialized: Option<&'static str>,
}

impl Column {
    /// The column's type in `dialect`.
    pub fn type_in(&self, dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::Current => self.current,
            Dialect::Compat1816 => self.compat,
        }
    }
}

const fn col(name: &'static str, current: &'static str, compat: &'static str) -> Column {
    Column {
        name,
        current,
        compat,
        materialized: None,
    }
}

const fn same(name: &'static str, ty: &'static str) -> Column {
    col(name, ty, ty)
}

const fn low(name: &'static str) -> Column {
    col(name, "LowCardinality(String)", "String")
}

/// An array of [`low`] strings (plain strings on 18.16).
const fn low_array(name: &'static str) -> Column {
    col(name, "Array(LowCardinality(String))", "Array(String)")
}

/// `time`, the second of `ts`: the partition and ordering column.
const TIME: Column = Column {
    name: "time",
    current: "DateTime",
    compat: "DateTime",
    materialized: Some("toDateTime(intDiv(ts, 1000000000))"),
};

/// What a row of a request, region or profile record shares: when, what,
/// who.
macro_rules! common_columns {
    () => {
        [
            col("ts", "UInt64 CODEC(Delta, ZSTD(1))", "UInt64"),
            TIME,
            low("kind"),
            low("name"),
            low("method"),
            same("status", "Nullable(UInt16)"),
            low("host"),
            low("build"),
            low_array("label_keys"),
            same("label_values", "Array(String)"),
            same("weight", "UInt64"),
        ]
    };
}

const RECORDS: &[Column] = &{
    let common = common_columns!();
    let rest = [
        same("wall_ns", "UInt64"),
        same("cpu_ns", "Nullable(UInt64)"),
        same("instructions", "Nullable(UInt64)"),
        same("cycles", "Nullable(UInt64)"),
        same("page_faults", "Nullable(UInt64)"),
        same("context_switches", "Nullable(UInt64)"),
        same("rss_start", "Nullable(UInt64)"),
        same("rss_end", "Nullable(UInt64)"),
        same("peak_rss", "Nullable(UInt64)"),
        same("polls", "Nullable(UInt64)"),
        same("threads", "Nullable(UInt64)"),
        low("source"),
        same("scaled", "UInt8"),
        same("cancelled", "UInt8"),
        same("forced", "UInt8"),
        low("error"),
        same("pid", "UInt32"),
        same("id", "Nullable(UInt64)"),
        same("trace_id", "String"),
        same("span_id", "String"),
        same("v", "UInt8"),
    ];
    concat::<11, 21, 32>(common, rest)
};

const PROFILE_NODES: &[Column] = &{
    let common = common_columns!();
    let rest = [
        same("forced", "UInt8"),
        same("cancelled", "UInt8"),
        low("error"),
        low("source"),
        same("scaled", "UInt8"),
        same("pid", "UInt32"),
        same("id", "Nullable(UInt64)"),
        same("trace_id", "String"),
        same("span_id", "String"),
        low("timer"),
        low("timer_requested"),
        same("node", "UInt32"),
        same("parent", "Nullable(UInt32)"),
        same("depth", "UInt16"),
        low("scope"),
        low_array("path"),
        same("calls", "UInt64"),
        same("inclusive", "Int64"),
        same("exclusive", "Int64"),
        same("recursive", "UInt8"),
        same("total", "Nullable(Int64)"),
        same("overhead", "Int64"),
        low_array("stat_names"),
        same("stat_values", "Array(UInt64)"),
        same("v", "UInt8"),
        // Last, where `ALTER TABLE ... ADD COLUMN` puts them on a table
        // made before schema version 4.
        same("scope_first", "UInt8"),
        same("scope_inclusive", "Int64"),
    ];
    concat::<11, 27, 38>(common, rest)
};

const STATUS: &[Column] = &[
    col("ts", "UInt64 CODEC(Delta, ZSTD(1))", "UInt64"),
    TIME,
    low("name"),
    low("host"),
    low("build"),
    low_array("label_keys"),
    same("label_values", "Array(String)"),
    same("pid", "UInt32"),
    low("source"),
    low("sink"),
    low_array("counter_names"),
    same("counter_states", "Array(String)"),
    low_array("source_names"),
    low_array("source_values"),
    low_array("stat_names"),
    same("stat_values", "Array(UInt64)"),
    low_array("sink_names"),
    low_array("sink_stats"),
    same("sink_values", "Array(UInt64)"),
    low_array("error_sinks"),
    same("error_texts", "Array(String)"),
    same("v", "UInt8"),
];

const fn concat<const A: usize, const B: usize, const N: usize>(
    a: [Column; A],
    b: [Column; B],
) -> [Column; N] {
    assert!(A + B == N);
    let mut out = [a[0]; N];
    let mut i = 0;
    while i < A {
        out[i] = a[i];
        i += 1;
    }
    while i < N {
        out[i] = b[i - A];
        i += 1;
    }
    out
}

/// A table of raw rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Table {
    /// `records`: one row per request or region record.
    Records,
    /// `profile_nodes`: one row per node of a profile record's call tree.
    ProfileNodes,
    /// `status`: one row per status record.
    Status,
}

impl Table {
    /// Every raw table.
    pub const ALL: [Table; 3] = [Table::Records, Table::ProfileNodes, Table::Status];

    /// The table's name (on a cluster: the `Distributed` table's; the
    /// shards' tables add `_local`).
    pub fn name(self) -> &'static str {
        match self {
            Table::Records => "records",
            Table::ProfileNodes => "profile_nodes",
            Table::Status => "status",
        }
    }

    /// Every column, materialized ones included, in the table's order.
    pub fn columns(self) -> &'static [Column] {
        match self {
            Table::Records => RECORDS,
            Table::ProfileNodes => PROFILE_NODES,
            Table::Status => STATUS,
        }
    }

    /// The columns a row carries (every column but the materialized ones),
    /// in order.
    pub fn row_columns(self) -> impl Iterator<Item = &'static Column> {
        self.columns().iter().filter(|c| c.materialized.is_none())
    }

    /// `name Type, ...` of the columns a row carries: the structure of
    /// ClickHouse's `file()` and `input()` table functions for this
    /// table's rows.
    pub fn structure(self, dialect: Dialect) -> String {
        let mut out = String::new();
        for c in self.row_columns() {
            if !out.is_empty() {
                out.push_str(", ");
            }
            // A codec is not part of the type.
            let ty = c.type_in(dialect);
            let ty = ty.split(" CODEC(").next().unwrap_or(ty);
            let _ = write!(out, "{} {ty}", c.name);
        }
        out
    }

    fn order_by(self) -> &'static str {
        match self {
            Table::Records => "(kind, name, build, time)",
            Table::ProfileNodes => "(name, build, time, scope)",
            Table::Status => "(host, time)",
        }
    }
}

/// Where the tables go: database, cluster, retention, dialect.
///
/// ```
/// use dynostats::clickhouse::Schema;
///
/// let ddl = Schema::new().database("perf").ttl_days(14).sql();
/// assert!(ddl.contains("CREATE TABLE IF NOT EXISTS perf.records"));
/// assert!(ddl.contains("TTL time + INTERVAL 14 DAY"));
/// ```
#[derive(Clone, Debug)]
pub struct Schema {
    database: String,
    cluster: Option<String>,
    replicated: bool,
    ttl_days: Option<u32>,
    rollup_ttl_days: Option<u32>,
    dialect: Dialect,
}

impl Default for Schema {
    fn default() -> Schema {
        Schema::new()
    }
}

/// One statement of the schema, with what it makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// What the statement makes (`database`, `records`, `rollup_mv` ...).
    pub makes: String,
    /// The SQL, without a trailing `;`.
    pub sql: String,
}

impl Schema {
    /// Retention of the raw tables unless told otherwise: 30 days.
    pub const DEFAULT_TTL_DAYS: u32 = 30;
    /// Retention of the rollup unless told otherwise: 400 days.
    pub const DEFAULT_ROLLUP_TTL_DAYS: u32 = 400;
    /// The rollup's time bucket, in seconds.
    pub const ROLLUP_BUCKET_SECONDS: u32 = 60;

    /// Database `dynostats`, one server, the current dialect, raw rows kept
    /// [`Schema::DEFAULT_TTL_DAYS`], the rollup
    /// [`Schema::DEFAULT_ROLLUP_TTL_DAYS`].
    pub fn new() -> Schema {
        Schema {
            database: "dynostats".to_string(),
            cluster: None,
            replicated: true,
            ttl_days: Some(Schema::DEFAULT_TTL_DAYS),
            rollup_ttl_days: Some(Schema::DEFAULT_ROLLUP_TTL_DAYS),
            dialect: Dialect::Current,
        }
    }

    /// The database (an identifier: letters, digits, `_`; see
    /// [`Schema::check`]).
    pub fn database(mut self, name: &str) -> Schema {
        self.database = name.to_string();
        self
    }

    /// The database's name.
    pub fn database_name(&self) -> &str {
        &self.database
    }

    /// On a cluster (`remote_servers` name): each shard holds `*_local`
    /// tables (`ReplicatedMergeTree` with the `{shard}` and `{replica}`
    /// macros), `records`, `profile_nodes` and `status` are `Distributed`
    /// over them, and every statement runs `ON CLUSTER`.
    pub fn cluster(mut self, name: &str) -> Schema {
        self.cluster = Some(name.to_string());
        self
    }

    /// On a cluster whose shards have no replicas and no ZooKeeper/Keeper:
    /// plain `MergeTree` shard tables and no `ON CLUSTER` (run the
    /// statements on every server). Without [`Schema::cluster`] it changes
    /// nothing.
    pub fn without_replication(mut self) -> Schema {
        self.replicated = false;
        self
    }

    /// How long raw rows are kept, in days; `None` keeps them until they
    /// are dropped by hand.
    pub fn ttl_days(mut self, days: impl Into<Option<u32>>) -> Schema {
        self.ttl_days = days.into();
        self
    }

    /// How long the rollup is kept, in days; `None` for ever.
    pub fn rollup_ttl_days(mut self, days: impl Into<Option<u32>>) -> Schema {
        self.rollup_ttl_days = days.into();
        self
    }

    /// The raw tables' retention, in days.
    pub fn retention_days(&self) -> Option<u32> {
        self.ttl_days
    }

    /// The ClickHouse the statements are for.
    pub fn dialect(mut self, dialect: Dialect) -> Schema {
        self.dialect = dialect;
        self
    }

    /// Refuses names that would need quoting: the database and the cluster
    /// are identifiers (ASCII letters, digits and `_`, not starting with a
    /// digit), so no user input reaches the statements unchecked.
    pub fn check(&self) -> Result<(), String> {
        check_identifier("database", &self.database)?;
        if let Some(c) = &self.cluster {
            check_identifier("cluster", c)?;
        }
        if self.ttl_days == Some(0) || self.rollup_ttl_days == Some(0) {
            return Err("a retention of 0 days would drop every row on insert".to_string());
        }
        Ok(())
    }

    /// A rollup table (`rollup`, `rollup_sketch`) and its materialized
    /// view `{local}_mv`, which feeds it with `select` (a whole `SELECT`
    /// over the shard's raw records), the view right after the shard's
    /// table. The table is an `AggregatingMergeTree` ordered by `order_by`,
    /// in monthly partitions of its `time_column`, kept for the rollup's
    /// retention, with a deduplication window of its own: a batch sent
    /// again under its deduplication token is dropped by the raw table, but
    /// its view's insert reaches the rollup again (current ClickHouse
    /// deduplicates each table on its own), so without the window the
    /// rollup counts the batch twice.
    pub(crate) fn rollup_table(
        &self,
        name: &str,
        columns: &str,
        order_by: &str,
        time_column: &str,
        select: &str,
    ) -> Vec<Statement> {
        let db = &self.database;
        let on = self.on_cluster();
        let local = self.local(name);
        let mut after = format!("\nPARTITION BY toYYYYMM({time_column})");
        if let Some(days) = self.rollup_ttl_days {
            let _ = write!(after, "\nTTL {time_column} + INTERVAL {days} DAY");
        }
        after.push_str("\nSETTINGS non_replicated_deduplication_window = 10000");
        let mut out = self.table(
            name,
            (columns, None),
            "AggregatingMergeTree",
            order_by,
            &after,
        );
        out.insert(
            1,
            Statement {
                makes: format!("{local}_mv"),
                sql: format!(
                    "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{local}_mv{on} TO {db}.{local} AS \
                     {select}"
                ),
            },
        );
        out
    }

    /// Every statement, in the order they must run.
    ///
    /// # Panics
    /// When [`Schema::check`] refuses the names (check them first).
    pub fn statements(&self) -> Vec<Statement> {
        if let Err(e) = self.check() {
            panic!("Schema::statements: {e}");
        }
        let db = &self.database;
        let mut out = Vec::new();
        let on = self.on_cluster();
        out.push(Statement {
            makes: "database".to_string(),
            sql: format!("CREATE DATABASE IF NOT EXISTS {db}{on}"),
        });
        out.push(Statement {
            makes: "schema_version".to_string(),
            sql: format!(
                "CREATE TABLE IF NOT EXISTS {db}.schema_version{on} (version UInt32, \
                 applied DateTime DEFAULT now()) ENGINE = {}",
                self.engine("schema_version", "MergeTree", "tuple()")
            ),
        });
        for table in Table::ALL {
            out.extend(self.raw_table(table));
        }
        out.extend(self.loads());
        if self.dialect == Dialect::Current {
            out.extend(self.rollup());
            // A rollup made by an earlier `init` lacks its deduplication
            // window (see `rollup`): given here, as often as `init` runs.
            let local = self.local("rollup");
            out.push(Statement {
                makes: format!("{local} deduplication window"),
                sql: format!(
                    "ALTER TABLE {db}.{local}{on} MODIFY SETTING \
                     non_replicated_deduplication_window = 10000"
                ),
            });
            out.extend(self.rollup_sketch());
            out.extend(self.rollup_functions());
            out.extend(self.ingest());
        }
        out.push(Statement {
            makes: "schema_version row".to_string(),
            sql: format!(
                "INSERT INTO {db}.schema_version (version) SELECT {SCHEMA_VERSION} WHERE \
                 (SELECT count() FROM {db}.schema_version WHERE version = {SCHEMA_VERSION}) = 0"
            ),
        });
        out
    }

    /// The statements as one script: `;` after each, a comment before each
    /// saying what it makes.
    pub fn sql(&self) -> String {
        let mut out = format!(
            "-- dynostats schema version {SCHEMA_VERSION} ({}); see docs/clickhouse.md\n",
            match self.dialect {
                Dialect::Current => "current ClickHouse",
                Dialect::Compat1816 => "ClickHouse 18.16",
            }
        );
        for s in self.statements() {
            let _ = write!(out, "\n-- {}\n{};\n", s.makes, s.sql);
        }
        out
    }

    fn on_cluster(&self) -> String {
        match &self.cluster {
            Some(c) if self.replicated => format!(" ON CLUSTER {c}"),
            _ => String::new(),
        }
    }

    /// The name of the table that holds `name`'s rows on this server.
    fn local(&self, name: &str) -> String {
        match &self.cluster {
            Some(_) => format!("{name}_local"),
            None => name.to_string(),
        }
    }

    /// `ENGINE = ...` (without the keyword) of a table holding rows.
    fn engine(&self, name: &str, engine: &str, order_by: &str) -> String {
        let engine = match (&self.cluster, self.replicated) {
            (Some(_), true) => format!(
                "Replicated{engine}('/clickhouse/tables/{{shard}}/{}/{name}', '{{replica}}')",
                self.database
            ),
            _ => engine.to_string(),
        };
        format!("{engine} ORDER BY {order_by}")
    }

    fn raw_table(&self, table: Table) -> Vec<Statement> {
        let mut columns = String::new();
        // The Distributed table's: a derived column is an ALIAS there (it
        // is computed on the shards; ClickHouse 18.16 refuses an insert
        // into a Distributed table with a MATERIALIZED column), codecs
        // stay with the shards' tables.
        let mut distributed = String::new();
        for c in table.columns() {
            let ty = c.type_in(self.dialect);
            let plain = ty.split(" CODEC(").next().unwrap_or(ty);
            let _ = match c.materialized {
                Some(expr) => {
                    let _ = write!(distributed, "\n    {} {plain} ALIAS {expr},", c.name);
                    write!(columns, "\n    {} {ty} MATERIALIZED {expr},", c.name)
                }
                None => {
                    let _ = write!(distributed, "\n    {} {plain},", c.name);
                    write!(columns, "\n    {} {ty},", c.name)
                }
            };
        }
        columns.pop();
        distributed.pop();
        let mut settings = String::from("\nPARTITION BY toYYYYMMDD(time)");
        if self.dialect == Dialect::Current {
            if let Some(days) = self.ttl_days {
                let _ = write!(settings, "\nTTL time + INTERVAL {days} DAY");
            }
            // Lets a load that is run again drop the batches it already
            // inserted (`insert_deduplication_token`) on tables without
            // replication too.
            settings.push_str("\nSETTINGS non_replicated_deduplication_window = 10000");
        }
        self.table(
            table.name(),
            (&columns, Some(&distributed)),
            "MergeTree",
            table.order_by(),
            &settings,
        )
    }

    /// What `dynostats load` has loaded: per input (identified by its
    /// first record), how many of its records are in.
    fn loads(&self) -> Vec<Statement> {
        let columns = "\n    file String,\n    records UInt64,\n    rows UInt64,\
                       \n    time DateTime DEFAULT now()";
        self.table("loads", (columns, None), "MergeTree", "(file, records)", "")
    }

    /// The statements of a table `name` with `columns`: on one server the
    /// table; on a cluster the shards' `name_local` and a `Distributed`
    /// `name` over them (with the columns `columns.1`, else those of
    /// `name_local`). `after_order` follows `ORDER BY` (partitioning is
    /// moved before it).
    fn table(
        &self,
        name: &str,
        (columns, distributed): (&str, Option<&str>),
        engine: &str,
        order_by: &str,
        after_order: &str,
    ) -> Vec<Statement> {
        let db = &self.database;
        let on = self.on_cluster();
        let local = self.local(name);
        let (partition, rest) = match after_order.strip_prefix("\nPARTITION BY ") {
            Some(tail) => match tail.split_once('\n') {
                Some((p, rest)) => (format!("\nPARTITION BY {p}"), format!("\n{rest}")),
                None => (format!("\nPARTITION BY {tail}"), String::new()),
            },
            None => (String::new(), after_order.to_string()),
        };
        let engine = self.engine(&local, engine, order_by).replacen(
            " ORDER BY",
            &format!("{partition}\nORDER BY"),
            1,
        );
        let mut out = vec![Statement {
            makes: local.clone(),
            sql: format!(
                "CREATE TABLE IF NOT EXISTS {db}.{local}{on} ({columns}\n) ENGINE = {engine}{rest}"
            ),
        }];
        if let Some(cluster) = &self.cluster {
            let shape = match distributed {
                Some(columns) => format!(" ({columns}\n)"),
                None => format!(" AS {db}.{local}"),
            };
            out.push(Statement {
                makes: name.to_string(),
                sql: format!(
                    "CREATE TABLE IF NOT EXISTS {db}.{name}{on}{shape} \
                     ENGINE = Distributed({cluster}, {db}, {local}, rand())"
                ),
            });
        }
        out
    }

    /// The rollup: per (kind, name, method, build, minute), the mergeable
    /// summary of every metric, fed from the shard's raw records table,
    /// counted as [`Summary`](crate::report::Summary) counts records:
    /// forced records apart, metrics over completed records only.
    fn rollup(&self) -> Vec<Statement> {
        let db = &self.database;
        let source = self.local("records");
        let mut columns = String::from(
            "\n    kind LowCardinality(String),\n    name LowCardinality(String),\
             \n    method LowCardinality(String),\
             \n    build LowCardinality(String),\n    bucket DateTime,\
             \n    samples SimpleAggregateFunction(sum, UInt64),\
             \n    events SimpleAggregateFunction(sum, UInt128),\
             \n    cancelled SimpleAggregateFunction(sum, UInt64),\
             \n    errors SimpleAggregateFunction(sum, UInt64),\
             \n    forced SimpleAggregateFunction(sum, UInt64),\
             \n    scaled SimpleAggregateFunction(sum, UInt64)",
        );
        let mut select = String::from(
            "kind, name, method, build, toStartOfMinute(time) AS bucket, \
             countIf(r.forced = 0) AS samples, sumIf(toUInt128(weight), r.forced = 0) AS events, \
             countIf(r.forced = 0 AND r.cancelled = 1) AS cancelled, \
             countIf(r.forced = 0 AND r.error != '') AS errors, countIf(r.forced = 1) AS forced, \
             sum(toUInt64(scaled)) AS scaled",
        );
        // Columns by the table's alias `r`: the view's own `forced` and
        // `cancelled` would shadow them.
        let completed = "r.forced = 0 AND r.cancelled = 0 AND r.error = ''";
        for metric in Metric::ALL {
            let m = metric.name();
            let (present, value) = metric_sql(metric);
            let p = format!("{completed} AND {present}");
            moments(
                (&mut columns, &mut select),
                m,
                (&p, &format!("countIf({completed} AND NOT ({present}))")),
                ("weight", &format!("toInt256({value})")),
            );
            let _ = write!(
                columns,
                ",\n    {m}_sketch AggregateFunction(sumMap, Array(Int16), Array(UInt64))"
            );
            let _ = write!(
                select,
                ", sumMapStateIf([{bucket}], [weight], {p} AND weight > 0) AS {m}_sketch",
                bucket = bucket_sql(&format!("toInt128({value})")),
            );
        }
        self.rollup_table(
            "rollup",
            &columns,
            "(kind, name, build, method, bucket)",
            "bucket",
            &format!(
                "SELECT {select} FROM {db}.{source} AS r GROUP BY kind, name, method, build, bucket"
            ),
        )
    }
}

/// The columns of a rollup's moments of one value `m` (`{m}_samples`,
/// `_events`, `_absent`, `_n`, `_sum` = Σw·x, `_sum_sq`, `_w2`, `_w2_sum`,
/// `_w2_sum_sq`: what [`Summary`](crate::report::Summary) merges) into
/// `columns`, and into `select` the view's aggregates of them over the
/// rows where `p` holds, `absent` counting the rows without the value,
/// with weight column `weight` and value `x` (an `Int256` expression).
fn moments(
    (columns, select): (&mut String, &mut String),
    m: &str,
    (p, absent): (&str, &str),
    (weight, x): (&str, &str),
) {
    let _ = write!(
        columns,
        ",\n    {m}_samples SimpleAggregateFunction(sum, UInt64),\
         \n    {m}_events SimpleAggregateFunction(sum, UInt128),\
         \n    {m}_absent SimpleAggregateFunction(sum, UInt64),\
         \n    {m}_n SimpleAggregateFunction(sum, UInt64),\
         \n    {m}_sum SimpleAggregateFunction(sum, Int256),\
         \n    {m}_sum_sq SimpleAggregateFunction(sum, Int256),\
         \n    {m}_w2 SimpleAggregateFunction(sum, Int256),\
         \n    {m}_w2_sum SimpleAggregateFunction(sum, Int256),\
         \n    {m}_w2_sum_sq SimpleAggregateFunction(sum, Int256)"
    );
    let w = format!("toInt256({weight})");
    let _ = write!(
        select,
        ", countIf({p}) AS {m}_samples, \
         sumIf(toUInt128({weight}), {p}) AS {m}_events, \
         {absent} AS {m}_absent, \
         countIf({p} AND {weight} > 0) AS {m}_n, \
         sumIf({w} * {x}, {p}) AS {m}_sum, \
         sumIf({w} * {x} * {x}, {p}) AS {m}_sum_sq, \
         sumIf({w} * {w}, {p}) AS {m}_w2, \
         sumIf({w} * {w} * {x}, {p}) AS {m}_w2_sum, \
         sumIf({w} * {w} * {x} * {x}, {p}) AS {m}_w2_sum_sq"
    );
}

/// The condition under which a raw records row carries `metric`, and its
/// value (an SQL expression over the `records` columns).
pub(crate) fn metric_sql(metric: Metric) -> (&'static str, &'static str) {
    match metric {
        Metric::Instructions => ("instructions IS NOT NULL", "assumeNotNull(instructions)"),
        Metric::Cycles => ("cycles IS NOT NULL", "assumeNotNull(cycles)"),
        Metric::CpuNs => ("cpu_ns IS NOT NULL", "assumeNotNull(cpu_ns)"),
        Metric::WallNs => ("1", "wall_ns"),
        Metric::RssChange => (
            "rss_start IS NOT NULL AND rss_end IS NOT NULL",
            "toInt128(assumeNotNull(rss_end)) - toInt128(assumeNotNull(rss_start))",
        ),
    }
}

/// The SQL of [`Sketch::bucket`] for an `Int128` expression: the same
/// bucket key, computed by the server (the rollup's quantile sketch).
pub fn bucket_sql(value: &str) -> String {
    // Magnitude as UInt64 (values beyond it are clamped into the last
    // bucket, as the sketch does), the exact floor(log2) by a float guess
    // corrected by one either way, then the log-linear bucket. ClickHouse
    // evaluates both arms of `if`, so the logarithmic arm works on the
    // magnitude raised to the linear range (no log2(0), no negative
    // shift) and is used only above it. Shifts are by a UInt8: shifting
    // a UInt64 by a signed amount makes the result signed, and 2^63 >> 57
    // came out as -64. The guess stays below 64: near 2^64 the float
    // rounds up, and a shift by 64 is undefined.
    let a = format!("toUInt64(least(abs({value}), toInt128(18446744073709551615)))");
    bucket_of(value, &a)
}

/// The SQL of [`Sketch::bucket`] for a signed expression `value` whose
/// magnitude, as a `UInt64`, is the expression `a` (for dialects without
/// 128-bit integers).
pub(crate) fn bucket_of(value: &str, a: &str) -> String {
    let big = format!("greatest({a}, toUInt64({}))", Sketch::LINEAR);
    let guess = format!("least(toUInt8(floor(log2(toFloat64({big})))), 63)");
    let e = format!(
        "({guess} - (bitShiftRight({big}, {guess}) = 0) + (bitShiftRight({big}, {guess}) >= 2))"
    );
    let i = format!(
        "if({a} < {linear}, toInt32({a}), toInt32({linear} + ({e} - {linear_bits}) * {sub} + \
         (toInt64(bitShiftRight({big}, toUInt8({e} - {mantissa}))) - {sub})))",
        linear = Sketch::LINEAR,
        linear_bits = Sketch::LINEAR_BITS,
        sub = Sketch::SUB,
        mantissa = Sketch::MANTISSA_BITS,
    );
    format!("toInt16(if({value} < 0, -1 - {i}, {i}))")
}

pub(crate) fn check_identifier(what: &str, s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && !s.as_bytes()[0].is_ascii_digit()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the {what} name {s:?} is not an identifier: use ASCII letters, digits and _, \
             not starting with a digit, at most 64 bytes"
        ))
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn writers_take_the_versions_whose_tables_hold_their_rows() {
        for v in ["2", "3", "4", "4\n", " 2 "] {
            assert!(takes_rows_of_this_release(v), "{v:?}");
        }
        // Before the raw tables took these rows, after this release, and
        // what a server prints for an empty table or a broken answer.
        for v in ["1", "5", "0", "", "x", "-3"] {
            assert!(!takes_rows_of_this_release(v), "{v:?}");
        }
    }
    use super::*;

    #[test]
    fn identifiers_are_checked() {
        assert!(Schema::new().database("a-b").check().is_err());
        assert!(Schema::new().database("1a").check().is_err());
        assert!(Schema::new().database("x; DROP TABLE y").check().is_err());
        assert!(Schema::new().cluster("c`").check().is_err());
        assert!(
            Schema::new()
                .database("perf_2")
                .cluster("c1")
                .check()
                .is_ok()
        );
        assert!(Schema::new().ttl_days(0).check().is_err());
    }

    #[test]
    fn compat_has_no_feature_the_old_server_lacks() {
        let sql = Schema::new().dialect(Dialect::Compat1816).sql();
        for word in [
            "LowCardinality",
            "CODEC",
            "TTL",
            "Map(",
            "Int128",
            "Int256",
            "SETTINGS",
        ] {
            assert!(!sql.contains(word), "{word} in the 18.16 schema:\n{sql}");
        }
        assert!(sql.contains("CREATE TABLE IF NOT EXISTS dynostats.records ("));
    }

    #[test]
    fn cluster_tables_are_distributed_over_local_ones() {
        let sql = Schema::new().cluster("fleet").sql();
        assert!(
            sql.contains("CREATE TABLE IF NOT EXISTS dynostats.records_local ON CLUSTER fleet")
        );
        assert!(sql.contains(
            "ReplicatedMergeTree('/clickhouse/tables/{shard}/dynostats/records_local', '{replica}')"
        ));
        assert!(sql.contains("ENGINE = Distributed(fleet, dynostats, records_local, rand())"));
        assert!(sql.contains("FROM dynostats.records_local AS r GROUP BY"));
        let plain = Schema::new().cluster("fleet").without_replication().sql();
        assert!(!plain.contains("ON CLUSTER") && !plain.contains("Replicated"));
    }

    #[test]
    fn sketches_are_rows_of_their_own_table_fed_from_the_shards_records() {
        let sql = Schema::new().sql();
        assert!(sql.starts_with("-- dynostats schema version 4"), "{sql}");
        assert!(sql.contains(
            "CREATE TABLE IF NOT EXISTS dynostats.rollup_sketch (\n    kind LowCardinality(String)"
        ));
        assert!(sql.contains("ORDER BY (kind, name, build, method, hour, metric, key)"));
        assert!(sql.contains("TTL hour + INTERVAL 400 DAY"));
        assert!(sql.contains(
            "CREATE MATERIALIZED VIEW IF NOT EXISTS dynostats.rollup_sketch_mv TO \
             dynostats.rollup_sketch AS SELECT"
        ));
        // The view comes after its table, before the version row.
        let at = |what: &str| sql.find(what).unwrap();
        assert!(at("dynostats.rollup_sketch (") < at("rollup_sketch_mv TO"));
        assert!(at("rollup_sketch_mv TO") < at("INSERT INTO dynostats.schema_version"));
        let cluster = Schema::new().cluster("fleet").sql();
        assert!(cluster.contains(
            "ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/dynostats/rollup_sketch_local'"
        ));
        assert!(cluster.contains(
            "CREATE TABLE IF NOT EXISTS dynostats.rollup_sketch ON CLUSTER fleet AS \
             dynostats.rollup_sketch_local ENGINE = Distributed(fleet, dynostats, \
             rollup_sketch_local, rand())"
        ));
        assert!(cluster.contains(
            "rollup_sketch_local_mv ON CLUSTER fleet TO dynostats.rollup_sketch_local AS"
        ));
        assert!(cluster.contains("FROM dynostats.records_local AS r ARRAY JOIN"));
        let old = Schema::new().dialect(Dialect::Compat1816).sql();
        assert!(!old.contains("rollup_sketch"));
    }

    #[test]
    fn functions_are_summed_per_minute_from_the_rows_that_carry_them() {
        let sql = Schema::new().sql();
        assert!(sql.contains("scope_first UInt8,\n    scope_inclusive Int64\n) ENGINE"));
        assert!(sql.contains(
            "CREATE MATERIALIZED VIEW IF NOT EXISTS dynostats.rollup_functions_mv TO \
             dynostats.rollup_functions AS SELECT name, build, timer, scope"
        ));
        assert!(sql.contains(
            "countIf(r.node = 0 AND r.scope_first = 0) AS unknown, countIf(r.node > 0 AND \
             r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND r.scope_first = 1) AS \
             amount_samples"
        ));
        assert!(sql.contains("FROM dynostats.profile_nodes AS r GROUP BY"));
        let at = |what: &str| sql.find(what).unwrap();
        assert!(at("dynostats.profile_nodes (") < at("rollup_functions_mv TO"));
        let cluster = Schema::new().cluster("fleet").sql();
        assert!(cluster.contains("FROM dynostats.profile_nodes_local AS r GROUP BY"));
        let old = Schema::new().dialect(Dialect::Compat1816).sql();
        assert!(!old.contains("rollup_functions"));
        assert!(old.contains("scope_first UInt8"));
    }

    #[test]
    fn the_collector_view_is_given_the_amounts_in_place() {
        let view = Schema::new().collector_view_upgrade().sql;
        assert!(
            view.starts_with(
                "ALTER TABLE dynostats.records_in_profile_nodes MODIFY QUERY SELECT ts, kind"
            ),
            "{view}"
        );
        assert!(view.contains("AS scope_first") && view.contains("AS scope_inclusive"));
        // The same query the view is made with.
        let made = Schema::new().sql();
        let query = view.split_once(" MODIFY QUERY ").unwrap().1;
        assert!(made.contains(&format!("TO dynostats.profile_nodes AS {query};")));
        let cluster = Schema::new().cluster("fleet").collector_view_upgrade().sql;
        assert!(cluster.contains("records_in_profile_nodes ON CLUSTER fleet MODIFY QUERY"));
    }

    #[test]
    fn tables_made_before_version_4_get_its_columns() {
        let old: Vec<String> = ["ts", "node", "v"].map(String::from).to_vec();
        let one: Vec<String> = ["ts", "scope_first"].map(String::from).to_vec();
        let s = Schema::new();
        assert!(s.column_upgrades(&|_| None).is_empty(), "a new database");
        let sql: Vec<String> = s
            .column_upgrades(&|t| (t == "profile_nodes").then(|| old.clone()))
            .into_iter()
            .map(|s| s.sql)
            .collect();
        assert_eq!(
            sql,
            [
                "ALTER TABLE dynostats.profile_nodes ADD COLUMN scope_first UInt8, \
              ADD COLUMN scope_inclusive Int64"
            ]
        );
        let sql: Vec<String> = s
            .column_upgrades(&|_| Some(one.clone()))
            .into_iter()
            .map(|s| s.sql)
            .collect();
        assert_eq!(
            sql,
            ["ALTER TABLE dynostats.profile_nodes ADD COLUMN scope_inclusive Int64"]
        );
        let all = PROFILE_NODES
            .iter()
            .map(|c| c.name.to_string())
            .collect::<Vec<_>>();
        assert!(s.column_upgrades(&|_| Some(all.clone())).is_empty());
        let cluster = Schema::new().cluster("fleet");
        let sql: Vec<String> = cluster
            .column_upgrades(&|_| Some(old.clone()))
            .into_iter()
            .map(|s| s.sql)
            .collect();
        assert_eq!(sql.len(), 2);
        assert!(
            sql[0].starts_with("ALTER TABLE dynostats.profile_nodes_local ON CLUSTER fleet ADD")
        );
        assert!(sql[1].starts_with("ALTER TABLE dynostats.profile_nodes ON CLUSTER fleet ADD"));
    }

    #[test]
    fn a_backfill_remakes_the_sketch_rows_before_its_end_from_the_raw_rows() {
        let s = Schema::new().database("perf").cluster("fleet");
        let sql: Vec<String> = s.sketch_backfill(7200).into_iter().map(|s| s.sql).collect();
        assert_eq!(sql.len(), 2);
        assert_eq!(
            sql[0],
            "ALTER TABLE perf.rollup_sketch_local DELETE WHERE hour < toDateTime(7200) \
             SETTINGS mutations_sync = 2"
        );
        assert!(sql[1].starts_with("INSERT INTO perf.rollup_sketch_local SELECT"));
        assert!(sql[1].contains(
            "FROM perf.records_local AS r ARRAY JOIN arrayFilter(t -> t.4, [tuple('instructions'"
        ));
        assert!(sql[1].contains("AND r.time < toDateTime(7200) GROUP BY"));
    }

    #[test]
    fn structure_leaves_out_materialized_columns_and_codecs() {
        let s = Table::Records.structure(Dialect::Current);
        assert!(
            s.starts_with("ts UInt64, kind LowCardinality(String)"),
            "{s}"
        );
        assert!(!s.contains("time") && !s.contains("CODEC"));
    }
}
