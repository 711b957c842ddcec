//! `rollup_functions`: per profiled function, build and minute, the
//! moments of its inclusive amount per profile record (recursion counted
//! once), what `dynostats compare` tests per function. Fed row by row from
//! the shard's `profile_nodes`: each record's amount per name is on one of
//! its rows (`scope_first`, written by [`Rows`](super::super::Rows)), so
//! the view groups no record and a record split over insert blocks or
//! shards still counts once. Current ClickHouse only, like the rollup.
//!
//! The columns `scope_first` and `scope_inclusive` came with schema
//! version 4; a table made before gets them from
//! [`Schema::column_upgrades`].

use std::fmt::Write as _;

use super::{Column, PROFILE_NODES, SCOPE_FIRST, SCOPE_UNKNOWN, Schema, Statement, moments};

/// The first schema version with `rollup_functions` and the
/// `profile_nodes` columns `scope_first` and `scope_inclusive`.
#[cfg(feature = "clickhouse")]
pub(crate) const FUNCTIONS_VERSION: u32 = 4;

/// The columns `profile_nodes` gained in schema version 4.
pub(crate) const ADDED_IN_4: [&str; 2] = ["scope_first", "scope_inclusive"];

/// Profile rows of completed records that carry their name's amount.
const COUNTED: &str = "r.node > 0 AND r.forced = 0 AND r.cancelled = 0 AND r.error = ''";

impl Schema {
    /// `rollup_functions` and its view from the shard's `profile_nodes`:
    /// per name (the profile's endpoint or region), build, timer, scope
    /// and minute, the moments of the scope's amounts in the columns the
    /// rollup has per metric (`amount_samples`, `_events`, `_absent`
    /// (always 0: a function's amount is never absent), `_n`, `_sum`
    /// (`Σw·x`), `_sum_sq`, `_w2`, `_w2_sum`, `_w2_sum_sq`); and, on the
    /// row of the root's scope, the profile records (`profiles`) and
    /// those of them written without their amounts (`unknown`): an answer
    /// takes the rollup's functions only where `unknown` is 0.
    pub(super) fn rollup_functions(&self) -> Vec<Statement> {
        let db = &self.database;
        let source = self.local("profile_nodes");
        let mut columns = String::from(
            "\n    name LowCardinality(String),\n    build LowCardinality(String),\
             \n    timer LowCardinality(String),\n    scope LowCardinality(String),\
             \n    bucket DateTime,\
             \n    profiles SimpleAggregateFunction(sum, UInt64),\
             \n    unknown SimpleAggregateFunction(sum, UInt64)",
        );
        let mut select = format!(
            "SELECT name, build, timer, scope, toStartOfMinute(r.time) AS bucket, \
             countIf(r.node = 0) AS profiles, \
             countIf(r.node = 0 AND r.scope_first = {SCOPE_UNKNOWN}) AS unknown"
        );
        // A function's amount is never absent.
        moments(
            (&mut columns, &mut select),
            "amount",
            (
                &format!("{COUNTED} AND r.scope_first = {SCOPE_FIRST}"),
                "toUInt64(0)",
            ),
            ("r.weight", "toInt256(r.scope_inclusive)"),
        );
        let _ = write!(
            select,
            " FROM {db}.{source} AS r GROUP BY name, build, timer, scope, bucket"
        );
        self.rollup_table(
            "rollup_functions",
            &columns,
            "(name, build, timer, scope, bucket)",
            "bucket",
            &select,
        )
    }

    /// The `ALTER TABLE` statements that give `profile_nodes` tables made
    /// before schema version 4 their columns `scope_first` and
    /// `scope_inclusive` (added last, as the `CREATE TABLE` of this
    /// release has them; rows already in read their defaults, 0: not
    /// computed). `columns(table)` says which columns a table of this
    /// database has on the server, `None` when there is no such table (a
    /// new database: its `CREATE TABLE` has them). `dynostats clickhouse
    /// init` asks the server (`system.columns`) and runs these before the
    /// other statements (ClickHouse 18.16 has no `ADD COLUMN IF NOT
    /// EXISTS`). On a cluster: the shards' table and the `Distributed` one.
    pub fn column_upgrades(&self, columns: &dyn Fn(&str) -> Option<Vec<String>>) -> Vec<Statement> {
        let db = &self.database;
        let on = self.on_cluster();
        let mut tables = vec![self.local("profile_nodes")];
        if self.cluster.is_some() {
            tables.push("profile_nodes".to_string());
        }
        let mut out = Vec::new();
        for table in tables {
            let Some(has) = columns(&table) else {
                continue;
            };
            let missing: Vec<&Column> = PROFILE_NODES
                .iter()
                .filter(|c| ADDED_IN_4.contains(&c.name) && !has.iter().any(|h| h == c.name))
                .collect();
            if missing.is_empty() {
                continue;
            }
            let adds: Vec<String> = missing
                .iter()
                .map(|c| format!("ADD COLUMN {} {}", c.name, c.type_in(self.dialect)))
                .collect();
            out.push(Statement {
                makes: format!("{table} columns of schema version 4"),
                sql: format!("ALTER TABLE {db}.{table}{on} {}", adds.join(", ")),
            });
        }
        out
    }
}
