//! The collector tier's way in: a table that takes the records as a
//! collector writes them (the record map as one JSON object per line, what
//! Fluent Bit's `out_http` and Vector's `clickhouse` sink make of a Forward
//! record), and materialized views that turn each into the rows of the raw
//! tables, as [`Rows`](super::super::Rows) does. Current ClickHouse only:
//! it needs `Map` and the JSON functions.

use std::fmt::Write as _;

use super::{SCOPE_FIRST, SCOPE_OTHER, Schema, Statement, Table};

/// Levels of a call tree the views follow up from a node to make its path:
/// twice the profiler's default `max_depth` (64), its root and its overflow
/// bucket. A deeper node's path keeps its deepest levels.
pub(super) const PATH_LEVELS: usize = 132;

/// The ingest table's columns: the record's keys (docs/records.md), the
/// nested `labels` as a `Map`, `detail` as its JSON text.
const COLUMNS: &str = "
    v UInt8,
    kind LowCardinality(String),
    ts UInt64,
    name String,
    method String,
    status Nullable(UInt16),
    labels Map(String, String),
    weight UInt64,
    wall_ns UInt64,
    cpu_ns Nullable(UInt64),
    instructions Nullable(UInt64),
    cycles Nullable(UInt64),
    page_faults Nullable(UInt64),
    context_switches Nullable(UInt64),
    rss_start Nullable(UInt64),
    rss_end Nullable(UInt64),
    peak_rss Nullable(UInt64),
    polls Nullable(UInt64),
    threads Nullable(UInt64),
    source String,
    scaled UInt8,
    cancelled UInt8,
    forced UInt8,
    error String,
    pid UInt32,
    id Nullable(UInt64),
    trace_id String,
    span_id String,
    detail String";

/// The expression of a raw table's column over the ingest table, where it
/// is not the column of the same name.
fn common(column: &str) -> Option<&'static str> {
    Some(match column {
        "host" => "labels['host']",
        "build" => "labels['build']",
        "label_keys" => "mapKeys(labels)",
        "label_values" => "mapValues(labels)",
        _ => return None,
    })
}

/// Per-node expressions of `profile_nodes` (the views' `ARRAY JOIN` makes
/// one row per node `i`, 1-based, its JSON `node_json`). They read no
/// array or text of the whole record: a window follows, which keeps every
/// column it is given.
fn profile(column: &str) -> Option<String> {
    let at_root = |then: &str, otherwise: &str| format!("if(i = 1, {then}, {otherwise})");
    Some(match column {
        "timer" => "d_timer".into(),
        "timer_requested" => "d_timer_requested".into(),
        "node" => "toUInt32(i - 1)".into(),
        "parent" => "JSONExtract(node_json, 'parent', 'Nullable(UInt32)')".into(),
        "depth" => "toUInt16(length(node_path) - 1)".into(),
        "scope" => "node_name".into(),
        "path" => "node_path".into(),
        "calls" => "JSONExtractUInt(node_json, 'calls')".into(),
        "inclusive" => "JSONExtractInt(node_json, 'inclusive')".into(),
        "exclusive" => "JSONExtractInt(node_json, 'exclusive')".into(),
        "recursive" => "toUInt8(JSONExtractBool(node_json, 'recursive'))".into(),
        "total" => at_root("d_total", "CAST(NULL, 'Nullable(Int64)')"),
        "overhead" => at_root("d_overhead", "0"),
        "stat_names" => at_root("arrayMap(x -> x.1, stats)", "[]"),
        "stat_values" => at_root("arrayMap(x -> x.2, stats)", "CAST([], 'Array(UInt64)')"),
        "scope_first" => format!("toUInt8(if(node_first, {SCOPE_FIRST}, {SCOPE_OTHER}))"),
        "scope_inclusive" => "toInt64(if(node_first, greatest(least(sum(contrib) OVER \
             (PARTITION BY rn, node_name), toInt128('9223372036854775807')), \
             toInt128('-9223372036854775808')), 0))"
            .into(),
        _ => return None,
    })
}

/// Expressions of `status` over the ingest table.
fn status(column: &str) -> Option<&'static str> {
    Some(match column {
        "sink" => "JSONExtractString(detail, 'sink')",
        "counter_names" => {
            "arrayMap(x -> x.1, JSONExtractKeysAndValues(detail, 'counters', 'String'))"
        }
        "counter_states" => {
            "arrayMap(x -> x.2, JSONExtractKeysAndValues(detail, 'counters', 'String'))"
        }
        "source_names" => {
            "arrayMap(x -> x.1, JSONExtractKeysAndValues(detail, 'sources', 'String'))"
        }
        "source_values" => {
            "arrayMap(x -> x.2, JSONExtractKeysAndValues(detail, 'sources', 'String'))"
        }
        "stat_names" => "arrayMap(x -> x.1, JSONExtractKeysAndValues(detail, 'stats', 'UInt64'))",
        "stat_values" => "arrayMap(x -> x.2, JSONExtractKeysAndValues(detail, 'stats', 'UInt64'))",
        "sink_names" => {
            "arrayFlatten(arrayMap(s -> arrayMap(k -> s.1, JSONExtractKeys(s.2)), \
             JSONExtractKeysAndValuesRaw(detail, 'sinks')))"
        }
        "sink_stats" => {
            "arrayFlatten(arrayMap(s -> JSONExtractKeys(s.2), \
             JSONExtractKeysAndValuesRaw(detail, 'sinks')))"
        }
        "sink_values" => {
            "arrayFlatten(arrayMap(s -> arrayMap(x -> x.2, JSONExtractKeysAndValues(s.2, 'UInt64')), \
             JSONExtractKeysAndValuesRaw(detail, 'sinks')))"
        }
        "error_sinks" => "arrayMap(x -> x.1, JSONExtractKeysAndValues(detail, 'errors', 'String'))",
        "error_texts" => "arrayMap(x -> x.2, JSONExtractKeysAndValues(detail, 'errors', 'String'))",
        _ => return None,
    })
}

/// `SELECT` list of a view into `table`: every column rows carry, by name.
fn select(table: Table, expr: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    for c in table.columns().iter().filter(|c| c.materialized.is_none()) {
        if !out.is_empty() {
            out.push_str(", ");
        }
        match expr(c.name) {
            Some(e) => {
                let _ = write!(out, "{e} AS {}", c.name);
            }
            None => out.push_str(c.name),
        }
    }
    out
}

impl Schema {
    /// `records_in` (engine `Null`: it keeps nothing) and one view per
    /// raw table into the tables the loader writes (the `Distributed`
    /// ones on a cluster).
    pub(super) fn ingest(&self) -> Vec<Statement> {
        let db = &self.database;
        let on = self.on_cluster();
        let mut out = vec![Statement {
            makes: "records_in".to_string(),
            sql: format!(
                "CREATE TABLE IF NOT EXISTS {db}.records_in{on} ({COLUMNS}\n) ENGINE = Null"
            ),
        }];
        let view = |table: Table, select: String, tail: &str| Statement {
            makes: format!("records_in_{}", table.name()),
            sql: format!(
                "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.records_in_{t}{on} TO {db}.{t} AS \
                 SELECT {select} FROM {db}.records_in {tail}",
                t = table.name()
            ),
        };
        out.push(view(
            Table::Records,
            select(Table::Records, |c| common(c).map(str::to_string)),
            "WHERE kind IN ('request', 'region')",
        ));
        out.push(view(
            Table::Status,
            select(Table::Status, |c| {
                common(c).or_else(|| status(c)).map(str::to_string)
            }),
            "WHERE kind = 'status'",
        ));
        let profile_view = Statement {
            makes: "records_in_profile_nodes".to_string(),
            sql: format!(
                "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.records_in_profile_nodes{on} \
                 TO {db}.profile_nodes AS {}",
                self.profile_view_select()
            ),
        };
        out.push(profile_view);
        out
    }

    /// The statement that gives the collector tier's view into
    /// `profile_nodes`, made before schema version 4, this release's query
    /// (each record's amounts per function, `scope_first` and
    /// `scope_inclusive`), in place: `ALTER TABLE ... MODIFY QUERY`, one
    /// step, so no insert into `records_in` meets no view. Run it with
    /// the setting `allow_experimental_alter_materialized_view_structure
    /// = 1` where the server has it. `dynostats clickhouse init` runs it
    /// when the view's query lacks `scope_first`.
    ///
    /// # Panics
    /// For the 18.16 dialect (it has no collector tier's tables).
    pub fn collector_view_upgrade(&self) -> Statement {
        assert!(
            self.dialect == super::Dialect::Current,
            "Schema::collector_view_upgrade: ClickHouse 18.16 has no records_in"
        );
        Statement {
            makes: "records_in_profile_nodes query of schema version 4".to_string(),
            sql: format!(
                "ALTER TABLE {}.records_in_profile_nodes{} MODIFY QUERY {}",
                self.database,
                self.on_cluster(),
                self.profile_view_select()
            ),
        }
    }

    /// The `SELECT` of the view `records_in_profile_nodes`.
    fn profile_view_select(&self) -> String {
        let db = &self.database;
        // Per profile record: its nodes, their names, each node's parent
        // as a 1-based index (0 for none; a parent that does not come
        // before its node is taken as the root, as `Rows` does), then per
        // node the chain of ancestors up to the root, reversed into the
        // path of names.
        // Each level named (a nested `parents[parents[...]]` would grow
        // quadratically).
        let mut with = String::new();
        let _ = write!(with, "i AS a0");
        for k in 1..PATH_LEVELS {
            let _ = write!(with, ", parents[a{}] AS a{k}", k - 1);
        }
        let ancestors: Vec<String> = (0..PATH_LEVELS).map(|k| format!("a{k}")).collect();
        let columns = select(Table::ProfileNodes, |c| {
            common(c).map(str::to_string).or_else(|| profile(c))
        });
        // Inside out: the record's arrays, one row per node, its chain of
        // ancestors and path, then the columns (a view's output must be
        // exactly the target's columns).
        let per_record = format!(
            "SELECT *, JSONExtractArrayRaw(detail, 'nodes') AS ns, \
             arrayMap(n -> JSONExtractString(n, 'name'), ns) AS names, \
             arrayMap((n, k) -> if(JSONHas(n, 'parent'), \
             if(JSONExtractUInt(n, 'parent') + 1 < k, toUInt32(JSONExtractUInt(n, 'parent') + 1), \
             toUInt32(k > 1)), toUInt32(0)), ns, arrayEnumerate(ns)) AS parents, \
             JSONExtractKeysAndValues(detail, 'stats', 'UInt64') AS stats, \
             JSONExtractString(detail, 'timer') AS d_timer, \
             JSONExtractString(detail, 'timer_requested') AS d_timer_requested, \
             JSONExtract(detail, 'total', 'Nullable(Int64)') AS d_total, \
             JSONExtractInt(detail, 'overhead') AS d_overhead \
             FROM {db}.records_in WHERE kind = 'profile'"
        );
        // Per record and name below the root: its first node and its
        // amount, recursion counted once (`Rows` writes the same from
        // `scope_amounts`). Per record: `rn`, its number in the insert,
        // and whether each node is the first of its name below the root
        // (its occurrence among the names, one more where the root has
        // the name). Per node: recursive when an ancestor below the root
        // (index 1) has its name, looked up by element from the chain of
        // ancestors the path is made of (not in a lambda: ClickHouse
        // copies what a lambda captures for every element, a cost that
        // grows with the square of a record's nodes); then per record and
        // name the sum of its nodes' amounts, a window over the insert's
        // node rows. A window keeps every column it is given, so the node
        // rows carry their own JSON (`ARRAY JOIN ns AS node_json`) and
        // the record's fields they need, not the record's arrays or text.
        let per_record = format!(
            "SELECT *, rowNumberInAllBlocks() AS rn, names[1] AS root_name, \
             arrayMap((u, nm, k) -> k > 1 AND u = 1 + (nm = root_name), \
             arrayEnumerateUniq(names), names, arrayEnumerate(names)) AS firsts \
             FROM ({per_record})"
        );
        let above: Vec<String> = (1..PATH_LEVELS)
            .map(|k| format!("if(a{k} > 1, names[a{k}], NULL)"))
            .collect();
        let per_node = format!(
            "SELECT *, i, node_json, {with}, \
             arrayReverse(arrayMap(j -> names[j], arrayFilter(j -> j > 0, [{list}]))) AS node_path, \
             names[i] AS node_name, firsts[i] AS node_first, \
             if(i > 1 AND NOT has([{above}], node_name), \
             toInt128(JSONExtractInt(node_json, 'inclusive')), toInt128(0)) AS contrib \
             FROM ({per_record}) ARRAY JOIN ns AS node_json, arrayEnumerate(ns) AS i",
            list = ancestors.join(", "),
            above = above.join(", "),
        );
        format!("SELECT {columns} FROM ({per_node})")
    }
}
