//! Answers computed by ClickHouse: the summaries of `report`, `compare`
//! and `timeseries` aggregated by the server over the raw `records` table
//! or the per-minute `rollup` and its hourly `rollup_sketch` (see
//! `Source`), and the call trees of `top`,
//! `flamegraph` and `pprof` summed per distinct path over
//! `profile_nodes`, handed to the same answers that serve files.
//!
//! Each query returns one row per group (and window): the counts of
//! [How records count](crate::report::Summary#how-records-count), and per
//! metric the weighted total, the weighted moments (exact sums in 256-bit
//! integers, or `Decimal128` on ClickHouse 18.16, centred on the mean by
//! the server so the variance loses nothing), the number of distinct
//! values up to 64 and the weights per [`Sketch::bucket`](crate::report::Sketch::bucket)
//! key. Where a group holds at most 64 distinct values a second query
//! fetches them with their weights, as the file reader's sketch keeps them
//! exactly. So counts, totals and quantiles are identical to the answers
//! from files, and means and intervals equal to floating-point rounding.
//! Never the raw rows: what comes back grows with the groups, not the
//! records.
//!
//! User input (label keys and values) never reaches the SQL: on current
//! ClickHouse it travels as query parameters (`{p0:String}`), on 18.16,
//! which has none, as escaped string literals.

use std::fmt::Write as _;
use std::sync::Mutex;

use serde_json::Value;

use super::client::{ClickHouseError, Client};
use super::schema::{
    Dialect, FUNCTIONS_VERSION, SCHEMA_VERSION, SCOPE_FIRST, SCOPE_UNKNOWN, SKETCH_VERSION,
    SKETCHED, Schema, bucket_of, metric_tuples,
};
use crate::record::RecordKind;
use crate::report::compare::{RowKind, Side};
use crate::report::profiles::Profiles;
use crate::report::timeseries::Timeseries;
use crate::report::{Metric, Report, Split, Summary};
use crate::report::{Moments, Sketch, Values};

/// Which records a question is about: a time range (nanoseconds since
/// the Unix epoch, `from` included, `until` excluded) and labels that
/// must match (`build=b42`).
///
/// ```
/// use dynostats::clickhouse::Selection;
///
/// let s = Selection::new().from_ns(1_000).until_ns(2_000).label("build", "b42");
/// assert!(s.is_bounded());
/// assert!(!Selection::new().is_bounded());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct Selection {
    from_ns: Option<u64>,
    until_ns: Option<u64>,
    labels: Vec<(String, String)>,
}

impl Selection {
    /// Every record.
    pub fn new() -> Selection {
        Selection::default()
    }

    /// Records at or after `ns`.
    pub fn from_ns(mut self, ns: u64) -> Selection {
        self.from_ns = Some(ns);
        self
    }

    /// Records before `ns`.
    pub fn until_ns(mut self, ns: u64) -> Selection {
        self.until_ns = Some(ns);
        self
    }

    /// Records whose label `key` is `value` (every label must match).
    pub fn label(mut self, key: &str, value: &str) -> Selection {
        self.labels.push((key.to_string(), value.to_string()));
        self
    }

    /// Whether a time range bounds the records read: a question without
    /// one reads the whole table.
    pub fn is_bounded(&self) -> bool {
        self.from_ns.is_some() || self.until_ns.is_some()
    }
}

/// One query as sent: the SQL and the values of its parameters, and what
/// the server said about it.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    /// What the query answers (`report groups`, `report exact values of
    /// cpu_ns` ...).
    pub what: String,
    /// The SQL, with `{pN:String}` placeholders on current ClickHouse.
    pub sql: String,
    /// The placeholders' values, in order (`pN`, value).
    pub params: Vec<(String, String)>,
    /// What the server said it read, `(rows, bytes)`, once answered.
    pub read: Option<(u64, u64)>,
    /// Bytes of the answer (summaries, not rows).
    pub answer_bytes: usize,
    /// Seconds the server spent on it, as it says.
    pub elapsed_s: f64,
    /// Whether the answer was not read from its result: a query that chose
    /// where to read from, or a report's groups read from the rollup whose
    /// sketches turned out not to hold every record of the range (the
    /// report was then read from the raw rows).
    pub set_aside: bool,
}

/// SQL being built, with its parameters.
struct Sql {
    dialect: Dialect,
    text: String,
    params: Vec<(String, String)>,
}

impl Sql {
    fn new(dialect: Dialect) -> Sql {
        Sql {
            dialect,
            text: String::new(),
            params: Vec::new(),
        }
    }

    /// The SQL of a string value: a parameter, or on 18.16 an escaped
    /// literal.
    fn value(&mut self, v: &str) -> String {
        match self.dialect {
            Dialect::Compat1816 => literal(v),
            _ => {
                let name = format!("p{}", self.params.len());
                self.params.push((name.clone(), v.to_string()));
                format!("{{{name}:String}}")
            }
        }
    }
}

/// `v` as a ClickHouse string literal: quotes and backslashes escaped,
/// control bytes as `\xHH`.
fn literal(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('\'');
    for c in v.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A parameter's value as ClickHouse's HTTP interface parses it (the
/// escaped format of `TabSeparated`).
fn escaped(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out
}

/// What went wrong answering from ClickHouse.
#[derive(Debug)]
#[non_exhaustive]
pub enum AnswerError {
    /// The server could not be reached or refused a query.
    ClickHouse {
        /// What the query was for.
        what: String,
        /// The error.
        error: ClickHouseError,
    },
    /// The server answered something this reader does not understand.
    Response {
        /// What the query was for.
        what: String,
        /// What was wrong.
        why: String,
    },
}

impl AnswerError {
    /// Whether the server could not be reached (rather than refused).
    pub fn is_connect(&self) -> bool {
        matches!(
            self,
            AnswerError::ClickHouse {
                error: ClickHouseError::Connect(_),
                ..
            }
        )
    }
}

impl std::fmt::Display for AnswerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AnswerError::ClickHouse { what, error } => write!(f, "{what}: {error}"),
            AnswerError::Response { what, why } => {
                write!(f, "{what}: unexpected answer from ClickHouse: {why}")
            }
        }
    }
}

impl std::error::Error for AnswerError {}

/// Where the groups of `report`, `compare` and `timeseries` are read
/// from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Source {
    /// The raw `records` table: every question, quantiles identical to
    /// the files'.
    Raw,
    /// The per-minute `rollup` (current ClickHouse): endpoint and region
    /// costs by build and minute, read in a fraction of the time, kept
    /// longer; a report's quantiles from the hourly `rollup_sketch`
    /// (and the raw rows of the hours the range cuts): exact where a
    /// group's buckets each hold one value, else within 1/128. Questions
    /// it cannot answer (splits, other labels, ranges or windows not on
    /// whole minutes, sketches of a database of schema version 2, or
    /// missing records loaded before its upgrade) are refused.
    Rollup,
    /// The rollup where it can answer, else the raw rows; a report whose
    /// sketches the rollup does not hold whole from the raw rows.
    #[default]
    Auto,
}

/// What a group is keyed by, beyond kind, method and name.
#[derive(Clone, Debug)]
enum Extra {
    Split(Split),
    /// `intDiv(ts, window_ns)`.
    Window(u64),
}

/// Records per table in a time range, and of them those the labels keep.
struct Counts {
    records: (u64, u64),
    profiles: (u64, u64),
    status: (u64, u64),
}

impl Counts {
    /// Records of every kind in the range.
    fn all(&self) -> u64 {
        self.records.0 + self.profiles.0 + self.status.0
    }
}

/// One group as the server summed it.
struct Row {
    kind: RecordKind,
    method: Option<String>,
    name: String,
    extra: Vec<String>,
    summary: Summary,
}

/// The records of a ClickHouse database, answered by its server: every
/// summary of [`crate::report`] computed by SQL, equal to the summary of
/// the same records read from files.
///
/// ```no_run
/// use dynostats::clickhouse::{Client, ClickHouse, Selection, Server};
///
/// let client = Client::new(Server::parse("http://127.0.0.1:8123/")?);
/// let db = ClickHouse::connect(client, "dynostats")?;
/// let day = 86_400 * 1_000_000_000u64;
/// let now = 20_000 * day;
/// let report = db.report(&Selection::new().from_ns(now - day).until_ns(now), &[], 10_000)?;
/// println!("{report}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ClickHouse {
    client: Client,
    database: String,
    dialect: Dialect,
    source: Source,
    queries: Mutex<Vec<Query>>,
    /// The database's schema version, once asked.
    version: Mutex<Option<u32>>,
}

impl ClickHouse {
    /// Answers from `database` on the server of `client`, in the dialect
    /// its version speaks (asked once).
    pub fn connect(client: Client, database: &str) -> Result<ClickHouse, AnswerError> {
        let version = client.version().map_err(|error| AnswerError::ClickHouse {
            what: format!("asking {} for its version", client.server()),
            error,
        })?;
        let dialect = if version < (19, 0) {
            Dialect::Compat1816
        } else {
            Dialect::Current
        };
        ClickHouse::new(client, database, dialect)
    }

    /// Answers from `database` (an identifier) on the server of `client`
    /// in `dialect`, without asking the server anything.
    pub fn new(
        client: Client,
        database: &str,
        dialect: Dialect,
    ) -> Result<ClickHouse, AnswerError> {
        super::schema::check_identifier("database", database).map_err(|why| {
            AnswerError::Response {
                what: "the database".to_string(),
                why,
            }
        })?;
        Ok(ClickHouse {
            client,
            database: database.to_string(),
            dialect,
            source: Source::default(),
            queries: Mutex::new(Vec::new()),
            version: Mutex::new(None),
        })
    }

    /// Where the groups of `report`, `compare` and `timeseries` are read
    /// from ([`Source::Auto`] unless told).
    pub fn source(mut self, source: Source) -> ClickHouse {
        self.source = source;
        self
    }

    /// The dialect the queries are written in.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Every query run so far, in order (what `--print-sql` shows).
    pub fn queries(&self) -> Vec<Query> {
        self.queries.lock().map(|q| q.clone()).unwrap_or_default()
    }

    /// The report of the selected records, grouped by kind, method, name
    /// and `splits`, with at most `max_groups` groups (further ones in
    /// `<other>`, as [`Report`] does).
    pub fn report(
        &self,
        selection: &Selection,
        splits: &[Split],
        max_groups: usize,
    ) -> Result<Report, AnswerError> {
        let mut builder = Report::builder().max_groups(max_groups);
        for split in splits {
            builder = builder.split(split.clone());
        }
        let mut report = builder.build();
        let extra: Vec<Extra> = splits.iter().cloned().map(Extra::Split).collect();
        let mut rollup = self.use_rollup(selection, &extra, true)?;
        if rollup && self.source == Source::Auto {
            rollup = self.sketches_are_fewer(selection)?;
        }
        let asked = self.queries.lock().map_or(0, |q| q.len());
        let mut rows = self.groups("report", selection, &extra, true, rollup)?;
        if rollup && !self.rollup_sketches(selection, &mut rows)? {
            if self.source == Source::Rollup {
                return Err(AnswerError::Response {
                    what: "the rollup".into(),
                    why: "its sketches (rollup_sketch) do not hold every record of this range: \
                          records loaded before the upgrade to schema version 3 \
                          (`dynostats clickhouse init --backfill` makes their sketches from the \
                          raw rows still kept), or beyond the raw rows' retention at the \
                          range's edges (use --source raw, or whole hours)"
                        .into(),
                });
            }
            if let Ok(mut log) = self.queries.lock() {
                for q in log.iter_mut().skip(asked) {
                    q.set_aside = true;
                }
            }
            rollup = false;
            rows = self.groups("report", selection, &extra, true, false)?;
        }
        for row in rows {
            report.add_summary(
                row.kind,
                row.method.as_deref(),
                &row.name,
                &row.extra,
                &row.summary,
            );
        }
        let c = self.counts(selection, rollup)?;
        let (records, kept) = c.records;
        let (profiles, status) = (c.profiles.0, c.status.0);
        report.count_records(c.all(), records - kept, profiles, status);
        self.drops(selection, &mut report)?;
        Ok(report)
    }

    /// The drops and unavailable counters the status records in the time
    /// range of `selection` say (their labels do not matter, as for files),
    /// into `report`: per process (host and id) the largest of each
    /// cumulative count and the sinks its records name as their own, and
    /// per unavailable counter its earliest reason, as [`Report::drops`]
    /// and [`Report::unavailable`] take them from files.
    fn drops(&self, selection: &Selection, report: &mut Report) -> Result<(), AnswerError> {
        let unlabelled = Selection {
            labels: Vec::new(),
            ..selection.clone()
        };
        const PROCESS: [&str; 2] = ["records_dropped_queue_full", "records_dropped_closed"];
        const SINK: [&str; 3] = [
            "records_dropped_sink_error",
            "records_dropped_by_sink",
            "records_dropped_sink_full",
        ];
        // A row's process (host, pid) from its first two columns, and the
        // counts `names` from the columns from `first` on.
        let process = |row: &[Value], what: &str| -> Result<(String, u32), AnswerError> {
            Ok((text(row, 0, what)?, number::<u32>(row, 1, what)?))
        };
        let counts = |row: &[Value], first: usize, names: &[&str], what: &str| {
            names
                .iter()
                .enumerate()
                .map(|(i, name)| Ok((name.to_string(), number::<u64>(row, first + i, what)?)))
                .collect::<Result<std::collections::BTreeMap<String, u64>, AnswerError>>()
        };
        let db = &self.database;
        let mut sql = Sql::new(self.dialect);
        let range = self.filter(&mut sql, &unlabelled);
        let stats: Vec<String> = PROCESS
            .iter()
            .map(|name| format!("toString(max(stat_values[indexOf(stat_names, '{name}')]))"))
            .collect();
        sql.text = format!(
            "SELECT host, toString(pid), {}, groupUniqArray(sink) FROM {db}.status \
             WHERE {range} GROUP BY host, pid ORDER BY host, pid FORMAT JSONCompact",
            stats.join(", "),
        );
        let what = "report: drops per process";
        let mut processes = std::collections::BTreeMap::new();
        for row in self.run(what, sql)? {
            let detail = crate::record::Detail {
                stats: counts(&row, 2, &PROCESS, what)?,
                ..Default::default()
            };
            let own = match row.get(2 + PROCESS.len()).and_then(Value::as_array) {
                Some(sinks) => sinks
                    .iter()
                    .map(|s| s.as_str().map(str::to_string))
                    .collect::<Option<Vec<String>>>(),
                None => None,
            }
            .ok_or_else(|| AnswerError::Response {
                what: what.into(),
                why: "the sinks are not an array of names".into(),
            })?;
            processes.insert(process(&row, what)?, (detail, own));
        }
        let mut sql = Sql::new(self.dialect);
        let range = self.filter(&mut sql, &unlabelled);
        let sink_counts: Vec<String> = SINK
            .iter()
            .map(|name| format!("toString(max(if(sink_stat = '{name}', sink_value, 0)))"))
            .collect();
        sql.text = format!(
            "SELECT host, toString(pid), sink_name, {} FROM {db}.status \
             ARRAY JOIN sink_names AS sink_name, sink_stats AS sink_stat, \
             sink_values AS sink_value WHERE {range} GROUP BY host, pid, sink_name \
             ORDER BY host, pid, sink_name FORMAT JSONCompact",
            sink_counts.join(", "),
        );
        let what = "report: drops per process and sink";
        for row in self.run(what, sql)? {
            let (detail, _) = processes.entry(process(&row, what)?).or_default();
            detail
                .sinks
                .insert(text(&row, 2, what)?, counts(&row, 3, &SINK, what)?);
        }
        for ((host, pid), (mut detail, own)) in processes {
            // A status record names one sink as its own (`detail.sink`);
            // the empty name is a record without one.
            let own: Vec<String> = own.into_iter().filter(|s| !s.is_empty()).collect();
            detail.sink = own.first().cloned();
            report.add_drops(&host, pid, &detail);
            for sink in own.into_iter().skip(1) {
                let also = crate::record::Detail {
                    sink: Some(sink),
                    ..Default::default()
                };
                report.add_drops(&host, pid, &also);
            }
        }
        // Unavailable counters: each one's reason from its earliest status
        // record that does not say "ok" (the files' first, read in time
        // order), at most 64 counters, the earliest first.
        let mut sql = Sql::new(self.dialect);
        let range = self.filter(&mut sql, &unlabelled);
        sql.text = format!(
            "SELECT counter, argMin(state, ts) FROM {db}.status \
             ARRAY JOIN counter_names AS counter, counter_states AS state \
             WHERE {range} AND state != 'ok' GROUP BY counter \
             ORDER BY min(ts), counter LIMIT 64 FORMAT JSONCompact"
        );
        let what = "report: unavailable counters";
        for row in self.run(what, sql)? {
            report.add_unavailable(&text(&row, 0, what)?, &text(&row, 1, what)?);
        }
        Ok(())
    }

    /// One side of a comparison: the selected records' endpoints, regions
    /// and profiled functions with their moments.
    pub fn side(&self, selection: &Selection) -> Result<Side, AnswerError> {
        let mut side = Side::new();
        let rollup = self.use_rollup(selection, &[], false)?;
        for row in self.groups("compare side", selection, &[], false, rollup)? {
            if row.summary.sampled() == 0 {
                continue; // forced records only: no row in a comparison
            }
            side.add_summary(
                row_kind(row.kind),
                row.method.as_deref(),
                &row.name,
                &row.summary,
            );
        }
        // A side filters records of every kind.
        let c = self.counts(selection, rollup)?;
        let from_rollup = rollup && self.functions_rollup_holds(selection, c.profiles.1)?;
        for (_, scope, summary) in self.functions(selection, from_rollup)? {
            side.add_summary(RowKind::Function, None, &scope, &summary);
        }
        side.count_records(c.all(), c.all() - c.records.1 - c.profiles.1 - c.status.1);
        Ok(side)
    }

    /// Marks the last query sent as one that chose where to read from
    /// ([`Query::set_aside`]), not one the answer is read from.
    fn set_last_aside(&self) {
        if let Ok(mut log) = self.queries.lock() {
            if let Some(q) = log.last_mut() {
                q.set_aside = true;
            }
        }
    }

    /// Whether `rollup_functions` holds every profile record of
    /// `selection` (`profiles` of them in the raw rows) with its amounts:
    /// a database of schema version 4, as many profile records in the
    /// rollup as in the raw rows (none loaded before the upgrade, none
    /// past the raw rows' retention), and none written without amounts
    /// ([`SCOPE_UNKNOWN`]).
    fn functions_rollup_holds(
        &self,
        selection: &Selection,
        profiles: u64,
    ) -> Result<bool, AnswerError> {
        if self.schema_version()? < FUNCTIONS_VERSION {
            return Ok(false);
        }
        let mut sql = Sql::new(self.dialect);
        let filter = self.filter_on(&mut sql, selection, true);
        sql.text = format!(
            "SELECT toString(sum(profiles)), toString(sum(unknown)) FROM {}.rollup_functions \
             WHERE {filter} FORMAT JSONCompact",
            self.database
        );
        let what = "compare side: profile records in rollup_functions";
        let row = self.one_row(what, sql)?;
        self.set_last_aside();
        Ok(number::<u64>(&row, 0, what)? == profiles && number::<u64>(&row, 1, what)? == 0)
    }

    /// Per profiled scope and timer: the summary of its inclusive amount
    /// per profile record that entered it (recursion counted once, as
    /// [`Side`] counts it), over the completed profile records selected:
    /// from `rollup_functions` when `from_rollup`, else from the raw rows.
    /// There, a record's amount per scope is on one of its rows
    /// (`scope_first`, schema version 4); the rows of a record written
    /// without it are grouped per record, told apart by its `ts`, `pid`,
    /// `id`, name and weight.
    fn functions(
        &self,
        selection: &Selection,
        from_rollup: bool,
    ) -> Result<Vec<(Metric, String, Summary)>, AnswerError> {
        let mut sql = Sql::new(self.dialect);
        let (mut inner, mut outer) = (String::new(), String::new());
        let db = &self.database;
        if from_rollup {
            let filter = self.filter_on(&mut sql, selection, true);
            self.values_sql(
                "f",
                &ClickHouse::rollup_sums("amount"),
                (&mut inner, &mut outer),
            );
            sql.text = format!(
                "SELECT k0, k1{outer} FROM (SELECT timer AS k0, scope AS k1{inner} \
                 FROM {db}.rollup_functions WHERE {filter} GROUP BY k0, k1) \
                 WHERE f_samples > 0 ORDER BY k0, k1 FORMAT JSONCompact"
            );
        } else {
            let filter = self.filter(&mut sql, selection);
            let sums = self.raw_sums("1", &self.wide("amount"), "0");
            self.values_sql("f", &sums, (&mut inner, &mut outer));
            let completed = "node > 0 AND forced = 0 AND cancelled = 0 AND error = ''";
            let per_record = format!(
                "SELECT timer, scope, weight, \
                 sum(if(has(arraySlice(path, 2, length(path) - 2), scope), 0, inclusive)) AS amount \
                 FROM {db}.profile_nodes WHERE {filter} AND {completed}"
            );
            let group = "GROUP BY ts, pid, id, name, weight, timer, scope";
            let rows = if self.schema_version()? < FUNCTIONS_VERSION {
                format!("{per_record} {group}")
            } else {
                format!(
                    "SELECT timer, scope, weight, scope_inclusive AS amount \
                     FROM {db}.profile_nodes WHERE {filter} AND {completed} \
                     AND scope_first = {SCOPE_FIRST} UNION ALL \
                     {per_record} AND scope_first = {SCOPE_UNKNOWN} {group}"
                )
            };
            sql.text = format!(
                "SELECT k0, k1{outer} FROM (SELECT timer AS k0, scope AS k1{inner} FROM ({rows}) \
                 GROUP BY k0, k1) ORDER BY k0, k1 FORMAT JSONCompact"
            );
        }
        let what = "compare side: profiled functions";
        let mut out = Vec::new();
        for row in self.run(what, sql)? {
            let Some(metric) = Metric::of_timer(&text(&row, 0, what)?)
                .filter(|m| crate::report::compare::COMPARED.contains(m))
            else {
                continue;
            };
            let scope = text(&row, 1, what)?;
            let mut at = 2;
            let values = ClickHouse::values(&row, &mut at, what)?;
            let (sampled, events) = (values.samples, values.weight);
            let mut metrics: [Values; 5] = Default::default();
            metrics[metric_index(metric)] = values;
            out.push((
                metric,
                scope,
                Summary::from_parts([sampled, 0, 0, 0], events, metrics, false),
            ));
        }
        Ok(out)
    }

    /// The selected records in windows of `window_ns` nanoseconds, as
    /// [`Timeseries`] cuts them.
    pub fn timeseries(
        &self,
        selection: &Selection,
        window_ns: u64,
    ) -> Result<Timeseries, AnswerError> {
        let window_ns = window_ns.max(1);
        let mut series = Timeseries::new(window_ns);
        let extra = [Extra::Window(window_ns)];
        let rollup = self.use_rollup(selection, &extra, false)?;
        for row in self.groups("timeseries", selection, &extra, false, rollup)? {
            if row.summary.sampled() == 0 {
                continue;
            }
            let window = row.extra[0]
                .parse::<u64>()
                .map_err(|e| AnswerError::Response {
                    what: "timeseries".into(),
                    why: format!("window {:?}: {e}", row.extra[0]),
                })?;
            series.add_summary(
                window,
                row_kind(row.kind),
                row.method.as_deref(),
                &row.name,
                &row.summary,
            );
        }
        // A time series filters requests and regions only.
        let c = self.counts(selection, rollup)?;
        series.count_records(c.all(), c.records.0 - c.records.1);
        Ok(series)
    }

    /// The call trees of the selected profile records (of `endpoint`
    /// only, when given) summed per timer, scope, edge and path, at most
    /// `max_paths` of each
    /// ([`ProfilesBuilder::max_paths`](crate::report::profiles::ProfilesBuilder::max_paths)): what `top`,
    /// `flamegraph` and `pprof` read. The server returns one row per
    /// timer and per distinct path.
    pub fn profiles(
        &self,
        selection: &Selection,
        endpoint: Option<&str>,
        max_paths: usize,
    ) -> Result<Profiles, AnswerError> {
        self.labelled_profiles(selection, endpoint, max_paths, &[])
    }

    /// [`ClickHouse::profiles`], each path also summed per tuple of the
    /// values of the record labels `sample_labels`
    /// ([`ProfilesBuilder::sample_label`](crate::report::profiles::ProfilesBuilder::sample_label):
    /// what pprof's samples carry, `trace_id` and `span_id` from their
    /// columns). The server returns one row per timer, distinct path and
    /// tuple: the first `max_paths` tuples by their earliest record, the
    /// others summed as one `<other>` tuple, as the file reader folds the
    /// tuples met beyond its cap.
    pub fn labelled_profiles(
        &self,
        selection: &Selection,
        endpoint: Option<&str>,
        max_paths: usize,
        sample_labels: &[String],
    ) -> Result<Profiles, AnswerError> {
        let mut builder = Profiles::builder().max_paths(max_paths);
        if let Some(e) = endpoint {
            builder = builder.endpoint(e);
        }
        for key in sample_labels {
            builder = builder.sample_label(key);
        }
        let mut profiles = builder.build();
        let mut sql = Sql::new(self.dialect);
        let filter = self.filter(&mut sql, selection);
        let endpoint = match endpoint {
            Some(e) => format!(" AND name = {}", sql.value(e)),
            None => String::new(),
        };
        let db = &self.database;
        let w = self.wide("weight");
        let wide = |e: &str| self.wide(e);
        sql.text = format!(
            "SELECT timer, toString(count()), toString(sum({w})), \
             toString(sum({w} * {inclusive})), toString(sum({w} * {overhead})), \
             toString(countIf(weight > 0)), toString(minIf(weight, weight > 0)), \
             toString(maxIf(weight, weight > 0)), toString(min(ts)), toString(max(ts)) \
             FROM {db}.profile_nodes WHERE {filter}{endpoint} AND node = 0 AND timer != '' \
             GROUP BY timer ORDER BY timer FORMAT JSONCompact",
            inclusive = wide("inclusive"),
            overhead = wide("overhead"),
        );
        let what = "profiles: totals";
        for row in self.run(what, sql)? {
            let timer = text(&row, 0, what)?;
            let (total, t_sat) = wide_int(&row, 3, what)?;
            let (overhead, o_sat) = wide_int(&row, 4, what)?;
            let positive = number::<u64>(&row, 5, what)?;
            let weights = (positive > 0)
                .then(|| Ok::<_, AnswerError>((number(&row, 6, what)?, number(&row, 7, what)?)))
                .transpose()?;
            let span = Some((number(&row, 8, what)?, number(&row, 9, what)?));
            let (calls, _, _) = profiles.summed_timer(&timer);
            calls.add_summed_totals(
                (number(&row, 1, what)?, number(&row, 2, what)?),
                (total, overhead, t_sat || o_sat),
                weights,
                span,
            );
        }
        self.profile_paths(selection, &mut profiles, max_paths.max(1))?;
        // What the file reader counts besides the trees.
        let mut sql = Sql::new(self.dialect);
        let range = self.filter(
            &mut sql,
            &Selection {
                labels: Vec::new(),
                ..selection.clone()
            },
        );
        let labels = self.label_filter(&mut sql, selection, true);
        let endpoint = match profiles.endpoint.as_deref() {
            Some(e) => format!(" AND name = {}", sql.value(e)),
            None => String::new(),
        };
        sql.text = format!(
            "SELECT toString(count()), toString(countIf(1{labels}{endpoint})), \
             toString(countIf(timer = ''{labels}{endpoint})), \
             toString((SELECT count() FROM {db}.records WHERE {range})), \
             toString((SELECT count() FROM {db}.status WHERE {range})) \
             FROM {db}.profile_nodes WHERE {range} AND node = 0 FORMAT JSONCompact"
        );
        let what = "profiles: record counts";
        let row = self.one_row(what, sql)?;
        let n = |i: usize| number::<u64>(&row, i, what);
        let (roots, kept, malformed) = (n(0)?, n(1)?, n(2)?);
        profiles.count_records(roots + n(3)? + n(4)?, roots, roots - kept, malformed);
        Ok(profiles)
    }

    /// The paths of the selected call trees summed per timer and path
    /// (and tuple of sample label values, where `profiles` has sample
    /// labels, at most `max` tuples), into `profiles`.
    fn profile_paths(
        &self,
        selection: &Selection,
        profiles: &mut Profiles,
        max: usize,
    ) -> Result<(), AnswerError> {
        let mut sql = Sql::new(self.dialect);
        let filter = self.filter(&mut sql, selection);
        let endpoint = match profiles.endpoint.as_deref() {
            Some(e) => format!(" AND name = {}", sql.value(e)),
            None => String::new(),
        };
        // Per sample label: whether the row has it and its value (the
        // record's trace or span id where it has one, as the file reader
        // takes them).
        let mut tuple = Vec::new();
        for key in profiles.sample_label_keys() {
            let k = sql.value(key);
            let label = format!("label_values[indexOf(label_keys, {k})]");
            match key.as_str() {
                field @ ("trace_id" | "span_id") => {
                    tuple.push(format!("toUInt8({field} != '' OR has(label_keys, {k}))"));
                    tuple.push(format!("if({field} != '', {field}, {label})"));
                }
                _ => {
                    tuple.push(format!("toUInt8(has(label_keys, {k}))"));
                    tuple.push(label);
                }
            }
        }
        let db = &self.database;
        let wide = |e: &str| self.wide(e);
        let w = wide("weight");
        // Per row its earliest `ts`, to hand the paths over in the order
        // the file reader meets them. With sample labels: the first `max`
        // tuples by their earliest record (ties by value) keep their
        // values, the others are one `<other>` tuple; per row also its
        // records (root rows).
        let (labels, group) = if tuple.is_empty() {
            (String::new(), String::new())
        } else {
            let all = tuple.join(", ");
            let mut labels = format!(
                ", (({all}) GLOBAL IN (SELECT {all} FROM {db}.profile_nodes \
                 WHERE {filter}{endpoint} AND node = 0 AND timer != '' GROUP BY {all} \
                 ORDER BY min(ts), {all} LIMIT {max})) AS kept"
            );
            let mut group = String::from(", kept");
            for (i, e) in tuple.iter().enumerate() {
                let none = if i % 2 == 0 { "0" } else { "''" };
                let _ = write!(labels, ", if(kept, {e}, {none}) AS t{i}");
                let _ = write!(group, ", t{i}");
            }
            labels.push_str(", toString(countIf(node = 0))");
            (labels, group)
        };
        sql.text = format!(
            "SELECT timer, path, toString(sum({w} * {exclusive})), \
             toString(sum({w} * {inclusive})), toString(sum({w} * {calls})), \
             toString(sum({w} * {overhead})), toString(min(ts)){labels}, \
             toString(argMin(node, ts)), toString(count()) \
             FROM {db}.profile_nodes WHERE {filter}{endpoint} AND timer != '' \
             GROUP BY timer, path{group} ORDER BY timer, path{group} FORMAT JSONCompact",
            exclusive = wide("exclusive"),
            inclusive = wide("inclusive"),
            calls = wide("calls"),
            overhead = wide("overhead"),
        );
        let what = "profiles: paths";
        let keys = tuple.len() / 2;
        let mut rows = Vec::new();
        // Per tuple kept: its earliest record and its records.
        let mut tuples: std::collections::BTreeMap<Vec<Option<String>>, (u64, u64)> =
            std::collections::BTreeMap::new();
        let mut folded_records = None;
        for row in self.run(what, sql)? {
            let path: Vec<String> = match row.get(1).and_then(Value::as_array) {
                Some(names) => names
                    .iter()
                    .map(|n| n.as_str().map(str::to_string))
                    .collect::<Option<_>>(),
                None => None,
            }
            .ok_or_else(|| AnswerError::Response {
                what: what.into(),
                why: "a path is not an array of names".into(),
            })?;
            let (exclusive, a) = wide_int(&row, 2, what)?;
            let (inclusive, b) = wide_int(&row, 3, what)?;
            let (calls, c) = match text(&row, 4, what)?.parse::<u128>() {
                Ok(n) => (n, false),
                Err(_) => (u128::MAX, true),
            };
            let (overhead, d) = wide_int(&row, 5, what)?;
            let sums = (exclusive, inclusive, calls, overhead);
            let first = number::<u64>(&row, 6, what)?;
            let values = if keys == 0 {
                None
            } else {
                let records = number::<u64>(&row, 8 + 2 * keys, what)?;
                if number::<u8>(&row, 7, what)? == 0 {
                    *folded_records.get_or_insert(0) += records;
                    Some(None)
                } else {
                    let mut values = Vec::with_capacity(keys);
                    for i in 0..keys {
                        let has = number::<u8>(&row, 8 + 2 * i, what)? != 0;
                        let v = text(&row, 9 + 2 * i, what)?;
                        values.push(has.then_some(v));
                    }
                    let (earliest, n) = tuples.entry(values.clone()).or_insert((first, 0));
                    *earliest = (*earliest).min(first);
                    *n += records;
                    Some(Some(values))
                }
            };
            let saturated = a || b || c || d;
            // The row's node in its earliest record (a record's paths in
            // the order of its nodes), and how many nodes it sums (what a
            // cap that folds the row counts).
            let at = row.len().saturating_sub(2);
            let node = number::<u64>(&row, at, what)?;
            let nodes = number::<u64>(&row, at + 1, what)?;
            rows.push((
                (first, node),
                path,
                text(&row, 0, what)?,
                (sums, nodes),
                saturated,
                values,
            ));
        }
        // The tuples in the order the file reader meets them: by their
        // earliest record, then by value (the server's order).
        let mut order: Vec<_> = tuples.iter().collect();
        order.sort_by_key(|(values, (first, _))| (*first, sql_order(values)));
        let mut ids = std::collections::BTreeMap::new();
        for (values, &(_, records)) in order {
            ids.insert(
                values.clone(),
                profiles.summed_label_set(Some(values), records),
            );
        }
        let other = folded_records.map(|records| profiles.summed_label_set(None, records));
        // The paths in the order the file reader meets them, reading records
        // by `ts`: by their earliest record, then in the order of its nodes
        // (what decides which scopes, paths and edges are kept under the
        // caps).
        rows.sort_by(|x, y| (x.0, &x.1).cmp(&(y.0, &y.1)));
        for (_, path, timer, (sums, nodes), saturated, values) in rows {
            let set = match values {
                None => None,
                Some(None) => other,
                Some(Some(values)) => ids.get(&values).copied(),
            };
            let names: Vec<&str> = path.iter().map(String::as_str).collect();
            let (summed, scratch, max) = profiles.summed_timer(&timer);
            summed.add_summed_path(&names, sums, saturated, set, nodes, max, scratch);
        }
        Ok(())
    }

    /// `WHERE` of `selection` over the records table.
    fn filter(&self, sql: &mut Sql, selection: &Selection) -> String {
        let mut out = String::from("1");
        if let Some(from) = selection.from_ns {
            // `time` leads the partition key and follows the ordering key's
            // names: the server skips what the range excludes.
            let _ = write!(
                out,
                " AND time >= toDateTime({}) AND ts >= {from}",
                from / 1_000_000_000
            );
        }
        if let Some(until) = selection.until_ns {
            let _ = write!(
                out,
                " AND time <= toDateTime({}) AND ts < {until}",
                until.div_ceil(1_000_000_000)
            );
        }
        out.push_str(&self.label_filter(sql, selection, true));
        out
    }

    /// `AND ...` of the label filters of `selection`; on a table with
    /// `trace_columns`, `trace_id` and `span_id` match those columns (the
    /// label where a row has none), as the file readers match the fields.
    fn label_filter(&self, sql: &mut Sql, selection: &Selection, trace_columns: bool) -> String {
        let mut out = String::new();
        for (key, value) in &selection.labels {
            let v = sql.value(value);
            // The common keys have their own columns, in the ordering key,
            // holding the label's value ('' without the label): a value
            // that is not empty needs no look into the label arrays, which
            // are most of what a filtered count reads.
            if let column @ ("build" | "host") = key.as_str() {
                let _ = write!(out, " AND {column} = {v}");
                if !value.is_empty() {
                    continue;
                }
            }
            let k = sql.value(key);
            let label =
                format!("has(label_keys, {k}) AND label_values[indexOf(label_keys, {k})] = {v}");
            let _ = match key.as_str() {
                // The record's field where it has one, else its label.
                field @ ("trace_id" | "span_id") if trace_columns => write!(
                    out,
                    " AND ({field} != '' AND {field} = {v} OR {field} = '' AND {label})"
                ),
                _ => write!(out, " AND {label}"),
            };
        }
        out
    }

    fn table(&self) -> String {
        format!("{}.records", self.database)
    }

    /// The table the groups are read from.
    fn table_of(&self, rollup: bool) -> String {
        if rollup {
            format!("{}.rollup", self.database)
        } else {
            self.table()
        }
    }

    /// `WHERE` of `selection` over the records table, or over the rollup
    /// (whose time range and labels [`ClickHouse::use_rollup`] checked).
    fn filter_on(&self, sql: &mut Sql, selection: &Selection, rollup: bool) -> String {
        if !rollup {
            return self.filter(sql, selection);
        }
        let mut out = String::from("1");
        if let Some(from) = selection.from_ns {
            let _ = write!(out, " AND bucket >= toDateTime({})", from / 1_000_000_000);
        }
        if let Some(until) = selection.until_ns {
            let _ = write!(out, " AND bucket < toDateTime({})", until / 1_000_000_000);
        }
        for (_, v) in &selection.labels {
            let _ = write!(out, " AND build = {}", sql.value(v));
        }
        out
    }

    /// Whether the groups of `selection` (keyed by `extra`) are read from
    /// the rollup: per [`ClickHouse::source`], and where the rollup can
    /// answer them: current ClickHouse, no splits, labels `build` only,
    /// the time range and windows on whole minutes; for questions that
    /// need `sketches` (the report's quantiles), a database of schema
    /// version 3 or later (`rollup_sketch`).
    fn use_rollup(
        &self,
        selection: &Selection,
        extra: &[Extra],
        sketches: bool,
    ) -> Result<bool, AnswerError> {
        let mut why_not = self.rollup_cannot(selection, extra);
        if why_not.is_none() && sketches && self.source != Source::Raw {
            let version = self.schema_version()?;
            if version < SKETCH_VERSION {
                why_not = Some(format!(
                    "database {} holds schema version {version}, without the rollup's \
                     sketches; `dynostats clickhouse init` upgrades it to version \
                     {SCHEMA_VERSION} (see docs/clickhouse.md, \"Upgrades\")",
                    self.database
                ));
            }
        }
        match (self.source, why_not) {
            (Source::Raw, _) => Ok(false),
            (Source::Auto, why) => Ok(why.is_none()),
            (Source::Rollup, None) => Ok(true),
            (Source::Rollup, Some(why)) => Err(AnswerError::Response {
                what: "the rollup".into(),
                why: format!("it cannot answer this: {why} (use the raw rows)"),
            }),
        }
    }

    /// The database's schema version (`schema_version`), asked once.
    fn schema_version(&self) -> Result<u32, AnswerError> {
        if let Some(v) = self.version.lock().ok().and_then(|v| *v) {
            return Ok(v);
        }
        let mut sql = Sql::new(self.dialect);
        sql.text = format!(
            "SELECT toString(max(version)) FROM {}.schema_version FORMAT JSONCompact",
            self.database
        );
        let what = "schema version";
        let version = number::<u32>(&self.one_row(what, sql)?, 0, what)?;
        if let Ok(mut v) = self.version.lock() {
            *v = Some(version);
        }
        Ok(version)
    }

    /// Adds to `rows` (the report's groups, read from the rollup) their
    /// sketches, summed per bucket key from `rollup_sketch` over the whole
    /// hours of the range and from the raw rows over what the range holds
    /// of the hours at its edges. `false` when the sketches do not hold
    /// every value the rollup's sums count (records loaded before the
    /// upgrade to schema version 3, raw rows past their retention at the
    /// edges): the rows' sketches are then unusable.
    ///
    /// A group's sketch is exact where it holds at most
    /// [`Sketch::EXACT_MAX`] buckets each of one value (its smallest and
    /// largest value equal), as the file reader's sketch of those values
    /// is; else its bucket weights.
    fn rollup_sketches(
        &self,
        selection: &Selection,
        rows: &mut [Row],
    ) -> Result<bool, AnswerError> {
        let mut sql = Sql::new(self.dialect);
        let db = &self.database;
        let keys = "kind AS k0, if(kind = 'request', method, '') AS k1, name AS k2";
        let (hours, covered) = ClickHouse::sketch_hours(selection);
        let mut parts = Vec::new();
        if hours {
            let builds = ClickHouse::builds(&mut sql, selection);
            parts.push(format!(
                "SELECT {keys}, metric, key, weight, lo, hi FROM {db}.rollup_sketch \
                 WHERE {covered}{builds}"
            ));
        }
        if selection.is_bounded() {
            let filter = self.filter(&mut sql, selection);
            let outside = if hours {
                format!(" AND NOT ({})", covered.replace("hour", "r.time"))
            } else {
                String::new()
            };
            parts.push(format!(
                "SELECT {keys}, s.1 AS metric, s.2 AS key, r.weight AS weight, s.3 AS lo, \
                 s.3 AS hi FROM {db}.records AS r ARRAY JOIN {tuples} AS s \
                 WHERE {filter} AND {SKETCHED}{outside}",
                tuples = metric_tuples(),
            ));
        }
        sql.text = format!(
            "SELECT k0, k1, k2, metric, groupArray(key), groupArray(toString(w)), \
             if(count() <= {max} AND min(l = u), groupArray(toString(l)), []) \
             FROM (SELECT k0, k1, k2, metric, key, sum(weight) AS w, min(lo) AS l, \
             max(hi) AS u FROM ({parts}) GROUP BY k0, k1, k2, metric, key) \
             GROUP BY k0, k1, k2, metric FORMAT JSONCompact",
            max = Sketch::EXACT_MAX,
            parts = parts.join(" UNION ALL "),
        );
        let what = "report: sketches";
        let at: std::collections::HashMap<(RecordKind, String, String), usize> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                (
                    (r.kind, r.method.clone().unwrap_or_default(), r.name.clone()),
                    i,
                )
            })
            .collect();
        let mut filled = vec![[false; 5]; rows.len()];
        for row in self.run(what, sql)? {
            let kind =
                text(&row, 0, what)?
                    .parse::<RecordKind>()
                    .map_err(|e| AnswerError::Response {
                        what: what.into(),
                        why: format!("kind: {e}"),
                    })?;
            let key = (kind, text(&row, 1, what)?, text(&row, 2, what)?);
            let metric = text(&row, 3, what)?;
            let (Some(&i), Some(metric)) = (
                at.get(&key),
                Metric::ALL.into_iter().find(|m| m.name() == metric),
            ) else {
                return Ok(false); // values the sums do not count
            };
            let mi = metric_index(metric);
            let keys = row.get(4).and_then(Value::as_array);
            let weights = row.get(5).and_then(Value::as_array);
            let values = row.get(6).and_then(Value::as_array);
            let (Some(keys), Some(weights), Some(values)) = (keys, weights, values) else {
                return Err(AnswerError::Response {
                    what: what.into(),
                    why: "the buckets are not arrays".into(),
                });
            };
            let pair = Value::Array(vec![
                Value::Array(keys.clone()),
                Value::Array(weights.clone()),
            ]);
            let buckets = pairs(&pair, what)?;
            let total: u128 = buckets.iter().map(|&(_, w)| u128::from(w)).sum();
            let m = &mut rows[i].summary.metrics[mi];
            if total != m.weight || filled[i][mi] {
                return Ok(false);
            }
            filled[i][mi] = true;
            let exact = if values.len() == buckets.len() {
                let mut exact = Vec::with_capacity(values.len());
                for (v, &(_, w)) in values.iter().zip(&buckets) {
                    exact.push((number::<i128>(std::slice::from_ref(v), 0, what)?, w));
                }
                Some(exact)
            } else {
                None
            };
            m.sketch = Sketch::from_parts(exact, &buckets, m.samples, m.weight);
        }
        // Every group's values of positive weight have their buckets.
        for (i, row) in rows.iter_mut().enumerate() {
            for (mi, m) in row.summary.metrics.iter_mut().enumerate() {
                if !filled[i][mi] {
                    if m.weight != 0 {
                        return Ok(false);
                    }
                    // No value of positive weight: exact and empty, as a
                    // file reader's sketch stays.
                    m.sketch = Sketch::from_parts(Some(Vec::new()), &[], m.samples, m.weight);
                }
            }
        }
        Ok(true)
    }

    /// Whether `selection` holds a whole hour, and the condition on
    /// `rollup_sketch`'s `hour` of the whole hours it holds (either end
    /// open).
    fn sketch_hours(selection: &Selection) -> (bool, String) {
        const HOUR: u64 = Schema::SKETCH_BUCKET_SECONDS as u64;
        let first = selection
            .from_ns
            .map(|t| t.div_ceil(1_000_000_000).div_ceil(HOUR) * HOUR);
        let end = selection.until_ns.map(|t| t / 1_000_000_000 / HOUR * HOUR);
        let hours = !matches!((first, end), (Some(a), Some(b)) if a >= b);
        let mut covered = String::from("1");
        if let Some(a) = first {
            let _ = write!(covered, " AND hour >= toDateTime({a})");
        }
        if let Some(b) = end {
            let _ = write!(covered, " AND hour < toDateTime({b})");
        }
        (hours, covered)
    }

    /// `AND build = ...` of the labels of a selection the rollup answers
    /// (build labels only: [`ClickHouse::rollup_cannot`]).
    fn builds(sql: &mut Sql, selection: &Selection) -> String {
        let mut out = String::new();
        for (_, v) in &selection.labels {
            let _ = write!(out, " AND build = {}", sql.value(v));
        }
        out
    }

    /// Whether the rollup's sketch rows of `selection`'s whole hours are
    /// fewer than the records the rollup counts in it. Not where records
    /// are sparse: a group's hour holds a row per metric and distinct
    /// bucket, up to five per record, and few records share a bucket
    /// (docs/clickhouse.md, "rollup_sketch"); the raw rows are then read.
    fn sketches_are_fewer(&self, selection: &Selection) -> Result<bool, AnswerError> {
        let mut sql = Sql::new(self.dialect);
        let db = &self.database;
        let (hours, covered) = ClickHouse::sketch_hours(selection);
        if !hours {
            return Ok(true); // the raw rows of the range's edges only
        }
        let builds = ClickHouse::builds(&mut sql, selection);
        let range = self.filter_on(&mut sql, selection, true);
        sql.text = format!(
            "SELECT toString((SELECT count() FROM {db}.rollup_sketch WHERE {covered}{builds})), \
             toString((SELECT sum(samples + forced) FROM {db}.rollup WHERE {range})) \
             FORMAT JSONCompact"
        );
        let what = "report: sketch rows against records";
        let row = self.one_row(what, sql)?;
        self.set_last_aside();
        Ok(number::<u64>(&row, 0, what)? <= number::<u64>(&row, 1, what)?)
    }

    /// Why the rollup cannot answer a question, if it cannot.
    fn rollup_cannot(&self, selection: &Selection, extra: &[Extra]) -> Option<String> {
        const MINUTE: u64 = 60_000_000_000;
        if self.dialect != Dialect::Current {
            return Some("ClickHouse 18.16 has no rollup".into());
        }
        for e in extra {
            match e {
                Extra::Split(_) => return Some("it has no splits (--by)".into()),
                Extra::Window(w) if w % MINUTE != 0 => {
                    return Some("its windows are whole minutes".into());
                }
                Extra::Window(_) => {}
            }
        }
        if let Some((k, _)) = selection
            .labels
            .iter()
            .find(|(k, v)| k != "build" || v.is_empty())
        {
            return Some(format!(
                "of labels it keeps only a non-empty build, not {k:?}"
            ));
        }
        if [selection.from_ns, selection.until_ns]
            .iter()
            .flatten()
            .any(|t| t % MINUTE != 0)
        {
            return Some("its time range is in whole minutes".into());
        }
        None
    }

    /// Per table (`records`, or with `rollup` the rollup's counts of the
    /// same records; profile records; status records): the records in the
    /// time range, and those of them the labels keep.
    fn counts(&self, selection: &Selection, rollup: bool) -> Result<Counts, AnswerError> {
        let mut sql = Sql::new(self.dialect);
        let unlabelled = Selection {
            labels: Vec::new(),
            ..selection.clone()
        };
        let range = self.filter(&mut sql, &unlabelled);
        // Status records have no trace ids: only labels of those names.
        let labels = [
            self.label_filter(&mut sql, selection, true),
            self.label_filter(&mut sql, selection, false),
        ];
        let db = &self.database;
        let count = |table: &str, also: &str| {
            let labels = &labels[usize::from(table == "status")];
            format!(
                "toString((SELECT count() FROM {db}.{table} WHERE {range}{also})), \
                 toString((SELECT count() FROM {db}.{table} WHERE {range}{also}{labels}))"
            )
        };
        let records = if rollup {
            let all = self.filter_on(&mut sql, &unlabelled, true);
            let kept = self.filter_on(&mut sql, selection, true);
            format!(
                "toString((SELECT sum(samples + forced) FROM {db}.rollup WHERE {all})), \
                 toString((SELECT sum(samples + forced) FROM {db}.rollup WHERE {kept}))"
            )
        } else {
            count("records", "")
        };
        sql.text = format!(
            "SELECT {records}, {}, {} FORMAT JSONCompact",
            count("profile_nodes", " AND node = 0"),
            count("status", ""),
        );
        let what = "record counts";
        let row = self.one_row(what, sql)?;
        let n = |i: usize| number::<u64>(&row, i, what);
        Ok(Counts {
            records: (n(0)?, n(1)?),
            profiles: (n(2)?, n(3)?),
            status: (n(4)?, n(5)?),
        })
    }

    /// The summaries of the selected records per kind, method, name and
    /// `extra` keys, from the rollup or the raw rows. From the rollup,
    /// without sketches: [`ClickHouse::rollup_sketches`] adds them.
    fn groups(
        &self,
        what: &str,
        selection: &Selection,
        extra: &[Extra],
        quantiles: bool,
        rollup: bool,
    ) -> Result<Vec<Row>, AnswerError> {
        let mut sql = Sql::new(self.dialect);
        let keys = self.keys(&mut sql, extra, rollup);
        let filter = self.filter_on(&mut sql, selection, rollup);
        let wide = |e: &str| self.wide(e);
        let completed = "forced = 0 AND cancelled = 0 AND error = ''";
        let mut inner = String::new();
        let mut outer = String::new();
        for (i, k) in keys.iter().enumerate() {
            let _ = write!(inner, "{k} AS k{i}, ");
            let _ = write!(outer, "k{i}, ");
        }
        let _ = write!(
            outer,
            "toString(cityHash64({})), ",
            (0..keys.len())
                .map(|i| format!("k{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if rollup {
            inner.push_str(
                "sum(samples) AS sampled, sum(events) AS events_, sum(cancelled) AS cancelled_, \
                 sum(errors) AS errors_, sum(forced) AS forced_",
            );
        } else {
            let _ = write!(
                inner,
                "countIf(forced = 0) AS sampled, sumIf({w}, forced = 0) AS events_, \
                 countIf(forced = 0 AND cancelled = 1) AS cancelled_, \
                 countIf(forced = 0 AND error != '') AS errors_, countIf(forced = 1) AS forced_",
                w = wide("weight"),
            );
        }
        outer.push_str(
            "toString(sampled), toString(events_), toString(cancelled_), toString(errors_), \
             toString(forced_)",
        );
        // Comparisons and alerts test the compared metrics only.
        let summed: &[Metric] = if quantiles {
            &Metric::ALL
        } else {
            &crate::report::compare::COMPARED
        };
        for &metric in summed {
            let m = metric.name();
            let (present, value, raw) = self.metric_sql(metric);
            let p = format!("{completed} AND {present}");
            let absent = format!("{completed} AND NOT ({present})");
            let sums = if rollup {
                ClickHouse::rollup_sums(m)
            } else {
                self.raw_sums(&p, &value, &absent)
            };
            self.values_sql(m, &sums, (&mut inner, &mut outer));
            // The rollup's sketches are rows of their own table.
            if quantiles && !rollup {
                let bucket = self.bucket(metric, raw);
                let _ = write!(
                    inner,
                    ", uniqUpToIf({max})({raw}, {p} AND weight > 0) AS {m}_distinct, \
                     sumMapIf([{bucket}], [weight], {p} AND weight > 0) AS {m}_buckets",
                    max = Sketch::EXACT_MAX,
                );
                let _ = write!(outer, ", toString({m}_distinct), {m}_buckets");
            }
        }
        let group_by = (0..keys.len())
            .map(|i| format!("k{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        sql.text = format!(
            "SELECT {outer} FROM (SELECT {inner} FROM {table} WHERE {filter} GROUP BY {group_by}) \
             ORDER BY {group_by} FORMAT JSONCompact",
            table = self.table_of(rollup),
        );
        let what = format!("{what}: groups");
        let data = self.run(&what, sql)?;
        let mut rows = Vec::with_capacity(data.len());
        let mut small: Vec<Vec<(String, usize)>> = vec![Vec::new(); Metric::ALL.len()];
        for (at, row) in data.iter().enumerate() {
            let key = |i: usize| text(row, i, &what);
            let kind = key(0)?
                .parse::<RecordKind>()
                .map_err(|e| AnswerError::Response {
                    what: what.clone(),
                    why: format!("kind: {e}"),
                })?;
            let method = Some(key(1)?).filter(|m| !m.is_empty());
            let name = key(2)?;
            let extra: Vec<String> = (3..keys.len()).map(key).collect::<Result<_, _>>()?;
            let hash = key(keys.len())?;
            let mut i = keys.len() + 1;
            let sampled = number::<u64>(row, next(&mut i), &what)?;
            let events = number::<u128>(row, next(&mut i), &what)?;
            let counts = [
                sampled,
                number::<u64>(row, next(&mut i), &what)?,
                number::<u64>(row, next(&mut i), &what)?,
                number::<u64>(row, next(&mut i), &what)?,
            ];
            let mut metrics: [Values; 5] = Default::default();
            for &metric in summed {
                let mi = metric_index(metric);
                let values = &mut metrics[mi];
                *values = ClickHouse::values(row, &mut i, &what)?;
                if quantiles && !rollup {
                    let distinct = number::<u64>(row, next(&mut i), &what)?;
                    let buckets = pairs(&row[next(&mut i)], &what)?;
                    if distinct <= Sketch::EXACT_MAX as u64 && values.moments.count() > 0 {
                        small[mi].push((hash.clone(), at));
                    }
                    // No value of positive weight: exact and empty, as a
                    // file reader's sketch stays.
                    let exact = (distinct == 0).then(Vec::new);
                    values.sketch =
                        Sketch::from_parts(exact, &buckets, values.samples, values.weight);
                }
            }
            rows.push(Row {
                kind,
                method,
                name,
                extra,
                summary: Summary::from_parts(counts, events, metrics, quantiles),
            });
        }
        if quantiles && !rollup {
            self.exact_values(&what, selection, extra, &small, &mut rows)?;
        }
        Ok(rows)
    }

    /// The aggregates of one metric over raw rows: its value is the wide
    /// expression `x` on rows where `p` holds; `absent` counts the rows
    /// without it. In the order of [`ClickHouse::values_sql`].
    fn raw_sums(&self, p: &str, x: &str, absent: &str) -> [String; 9] {
        let w = self.wide("weight");
        [
            format!("countIf({p})"),
            format!("sumIf({w}, {p})"),
            format!("countIf({absent})"),
            format!("countIf({p} AND weight > 0)"),
            format!("sumIf({w} * {x}, {p})"),
            format!("sumIf({w} * {x} * {x}, {p})"),
            format!("sumIf({w} * {w}, {p})"),
            format!("sumIf({w} * {w} * {x}, {p})"),
            format!("sumIf({w} * {w} * {x} * {x}, {p})"),
        ]
    }

    /// The same aggregates of metric `m` over the rollup's columns.
    fn rollup_sums(m: &str) -> [String; 9] {
        [
            "samples",
            "events",
            "absent",
            "n",
            "sum",
            "sum_sq",
            "w2",
            "w2_sum",
            "w2_sum_sq",
        ]
        .map(|c| format!("sum({m}_{c})"))
    }

    /// The sums of one metric `m` (samples, weight, absent, values of
    /// positive weight, `Σw·x`, `Σw·x²`, `Σw²`, `Σw²·x`, `Σw²·x²`, as
    /// aggregate expressions): into `inner`, and into `outer` the columns
    /// [`ClickHouse::values`] reads, the sums centred on the mean.
    fn values_sql(&self, m: &str, sums: &[String; 9], (inner, outer): (&mut String, &mut String)) {
        let names = [
            "samples", "weight", "absent", "n", "s1", "s2", "q0", "q1", "q2",
        ];
        for (name, sum) in names.iter().zip(sums) {
            let _ = write!(inner, ", {sum} AS {m}_{name}");
        }
        // The shift: the mean, rounded; the divisor is 1 where no value
        // has weight (then the sums are 0): both arms of an `if` are
        // evaluated, and a division by zero is an error.
        let divisor = format!("({m}_weight + {})", self.wide(&format!("{m}_weight = 0")));
        let c = match self.dialect {
            Dialect::Compat1816 => format!("{m}_s1 / {divisor}"),
            _ => format!("intDiv({m}_s1, {divisor})"),
        };
        let _ = write!(
            outer,
            ", toString({m}_samples), toString({m}_weight), toString({m}_absent), \
             toString({m}_n), toString({m}_s1), toString({c} AS {m}_c), \
             toFloat64({m}_weight), toFloat64({m}_s1 - {m}_c * {m}_weight), \
             toFloat64({m}_s2 - 2 * {m}_c * {m}_s1 + {m}_c * {m}_c * {m}_weight), \
             toFloat64({m}_q0), toFloat64({m}_q1 - {m}_c * {m}_q0), \
             toFloat64({m}_q2 - 2 * {m}_c * {m}_q1 + {m}_c * {m}_c * {m}_q0)"
        );
    }

    /// The [`Values`] of the columns of [`ClickHouse::values_sql`]
    /// starting at `at` (moved past them), without a sketch.
    fn values(row: &[Value], at: &mut usize, what: &str) -> Result<Values, AnswerError> {
        let mut next = || next(at);
        let samples = number::<u64>(row, next(), what)?;
        let weight = number::<u128>(row, next(), what)?;
        let absent = number::<u64>(row, next(), what)?;
        let n = number::<u64>(row, next(), what)?;
        let (total, saturated) = wide_int(row, next(), what)?;
        let shift = number::<f64>(row, next(), what)?;
        let mut sums = [0.0; 6];
        for s in &mut sums {
            *s = float(row, next(), what)?;
        }
        Ok(Values {
            sketch: Sketch::new(),
            moments: Moments::from_sums(n, shift, sums),
            samples,
            weight,
            total,
            saturated,
            absent,
        })
    }

    /// For groups with at most [`Sketch::EXACT_MAX`] distinct values of a
    /// metric: the values with their weights, so their sketches are exact
    /// as the file reader's are.
    fn exact_values(
        &self,
        what: &str,
        selection: &Selection,
        extra: &[Extra],
        small: &[Vec<(String, usize)>],
        rows: &mut [Row],
    ) -> Result<(), AnswerError> {
        let completed = "forced = 0 AND cancelled = 0 AND error = ''";
        for (mi, metric) in Metric::ALL.into_iter().enumerate() {
            if small[mi].is_empty() {
                continue;
            }
            let mut sql = Sql::new(self.dialect);
            let keys = self.keys(&mut sql, extra, false);
            let filter = self.filter(&mut sql, selection);
            let (present, _, raw) = self.metric_sql(metric);
            let hashes: Vec<&str> = small[mi].iter().map(|(h, _)| h.as_str()).collect();
            // Hashes are digits (checked): safe in the SQL as they are.
            if hashes
                .iter()
                .any(|h| !h.bytes().all(|b| b.is_ascii_digit()))
            {
                return Err(AnswerError::Response {
                    what: what.to_string(),
                    why: "a group hash is not a number".into(),
                });
            }
            sql.text = format!(
                "SELECT cityHash64({keys}) AS h, toString({raw}) AS x, toString(sum(weight)) \
                 FROM {table} WHERE {filter} AND {completed} AND {present} AND weight > 0 \
                 AND h IN ({hashes}) GROUP BY h, x FORMAT JSONCompact",
                keys = keys.join(", "),
                table = self.table(),
                hashes = hashes.join(", "),
            );
            let label = format!("{what}: exact values of {}", metric.name());
            let data = self.run(&label, sql)?;
            let mut values: std::collections::HashMap<String, Vec<(i128, u64)>> =
                std::collections::HashMap::new();
            for row in &data {
                let h = text(row, 0, &label)?;
                let x = number::<i128>(row, 1, &label)?;
                let w = number::<u64>(row, 2, &label)?;
                values.entry(h).or_default().push((x, w));
            }
            for (hash, at) in &small[mi] {
                let values = values.remove(hash).unwrap_or_default();
                let m = &mut rows[*at].summary.metrics[metric_index(metric)];
                m.sketch = Sketch::from_parts(Some(values), &[], m.samples, m.weight);
            }
        }
        Ok(())
    }

    /// The group key expressions: kind, method (requests), name, extras.
    fn keys(&self, sql: &mut Sql, extra: &[Extra], rollup: bool) -> Vec<String> {
        let mut keys = vec![
            "kind".to_string(),
            "if(kind = 'request', method, '')".to_string(),
            "name".to_string(),
        ];
        for e in extra {
            keys.push(match e {
                Extra::Window(w) if rollup => {
                    format!("toString(intDiv(toUInt64(bucket) * 1000000000, {w}))")
                }
                Extra::Window(w) => format!("toString(intDiv(ts, {w}))"),
                Extra::Split(Split::StatusClass) => "multiIf(kind != 'request', '-', \
                     status IS NULL, 'none', \
                     concat(toString(least(intDiv(assumeNotNull(status), 100), 9)), 'xx'))"
                    .to_string(),
                Extra::Split(Split::Label(key)) => {
                    let k = sql.value(key);
                    format!("if(has(label_keys, {k}), label_values[indexOf(label_keys, {k})], '-')")
                }
            });
        }
        keys
    }

    /// An integer expression widened for exact sums of products.
    fn wide(&self, e: &str) -> String {
        match self.dialect {
            Dialect::Compat1816 => format!("toDecimal128({e}, 0)"),
            _ => format!("toInt256({e})"),
        }
    }

    /// The condition under which a row carries `metric`, its value widened
    /// for sums, and its value as the table holds it.
    fn metric_sql(&self, metric: Metric) -> (&'static str, String, &'static str) {
        let (present, raw) = match (metric, self.dialect) {
            (Metric::Instructions, _) => {
                ("instructions IS NOT NULL", "assumeNotNull(instructions)")
            }
            (Metric::Cycles, _) => ("cycles IS NOT NULL", "assumeNotNull(cycles)"),
            (Metric::CpuNs, _) => ("cpu_ns IS NOT NULL", "assumeNotNull(cpu_ns)"),
            (Metric::WallNs, _) => ("1", "wall_ns"),
            (Metric::RssChange, Dialect::Compat1816) => (
                "rss_start IS NOT NULL AND rss_end IS NOT NULL",
                "(toInt64(assumeNotNull(rss_end)) - toInt64(assumeNotNull(rss_start)))",
            ),
            (Metric::RssChange, _) => (
                "rss_start IS NOT NULL AND rss_end IS NOT NULL",
                "(toInt128(assumeNotNull(rss_end)) - toInt128(assumeNotNull(rss_start)))",
            ),
        };
        let wide = match (metric, self.dialect) {
            (Metric::RssChange, Dialect::Compat1816) => {
                "(toDecimal128(assumeNotNull(rss_end), 0) - toDecimal128(assumeNotNull(rss_start), 0))"
                    .to_string()
            }
            (Metric::RssChange, _) => format!("toInt256({raw})"),
            _ => self.wide(raw),
        };
        (present, wide, raw)
    }

    /// The [`Sketch::bucket`] key of a metric's value.
    fn bucket(&self, metric: Metric, raw: &str) -> String {
        match (self.dialect, metric) {
            (Dialect::Compat1816, Metric::RssChange) => {
                bucket_of(raw, &format!("toUInt64(abs({raw}))"))
            }
            (Dialect::Compat1816, _) => bucket_of(raw, &format!("toUInt64({raw})")),
            _ => super::schema::bucket_sql(&format!("toInt128({raw})")),
        }
    }

    /// Runs `sql`, a query of one row, and returns it.
    fn one_row(&self, what: &str, sql: Sql) -> Result<Vec<Value>, AnswerError> {
        self.run(what, sql)?
            .into_iter()
            .next()
            .ok_or_else(|| AnswerError::Response {
                what: what.into(),
                why: "no row".into(),
            })
    }

    /// Runs `sql` (ending in `FORMAT JSONCompact`) and returns its rows.
    fn run(&self, what: &str, sql: Sql) -> Result<Vec<Vec<Value>>, AnswerError> {
        let settings: Vec<(String, String)> = sql
            .params
            .iter()
            .map(|(k, v)| (format!("param_{k}"), escaped(v)))
            .collect();
        let at = self.queries.lock().map_or(usize::MAX, |mut log| {
            log.push(Query {
                what: what.to_string(),
                sql: sql.text.clone(),
                params: sql.params.clone(),
                read: None,
                answer_bytes: 0,
                elapsed_s: 0.0,
                set_aside: false,
            });
            log.len() - 1
        });
        let settings: Vec<(&str, &str)> = settings
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let body = self
            .client
            .query_with(&sql.text, &settings)
            .map_err(|error| AnswerError::ClickHouse {
                what: format!(
                    "{what} (database {} on {}){}",
                    self.database,
                    self.client.server(),
                    hint(&error)
                ),
                error,
            })?;
        let bad = |why: String| AnswerError::Response {
            what: what.to_string(),
            why,
        };
        let doc: Value = serde_json::from_str(&body).map_err(|e| bad(format!("not JSON: {e}")))?;
        let stats = doc.get("statistics");
        let stat = |k: &str| stats.and_then(|s| s.get(k)).and_then(Value::as_f64);
        if let Ok(mut log) = self.queries.lock() {
            if let Some(q) = log.get_mut(at) {
                q.answer_bytes = body.len();
                q.read = stat("rows_read")
                    .zip(stat("bytes_read"))
                    .map(|(r, b)| (r as u64, b as u64));
                q.elapsed_s = stat("elapsed").unwrap_or(0.0);
            }
        }
        let data = doc
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no data".into()))?;
        data.iter()
            .map(|row| {
                row.as_array()
                    .cloned()
                    .ok_or_else(|| bad("a row is not an array".into()))
            })
            .collect()
    }
}

/// What to do about a refusal, where the server's code says.
fn hint(error: &ClickHouseError) -> &'static str {
    match error {
        ClickHouseError::Server {
            code: Some(60 | 81),
            ..
        } => {
            ": no such table or database; make the tables with `dynostats clickhouse init` \
             and load records (`dynostats load`), or name the database with --database"
        }
        ClickHouseError::Server {
            code: Some(46 | 42 | 43),
            ..
        } => {
            ": this server lacks a function or type the query needs; use --source raw, or a \
             current ClickHouse"
        }
        ClickHouseError::Server {
            code: Some(159 | 209 | 210),
            ..
        }
        | ClickHouseError::Connect(_) => ": the server is down, unreachable or too slow",
        _ => "",
    }
}

/// Sample label values as the server orders them: per key, whether the
/// record has the label (0 first), then the value's bytes.
fn sql_order(values: &[Option<String>]) -> Vec<(u8, &[u8])> {
    values
        .iter()
        .map(|v| match v {
            Some(v) => (1, v.as_bytes()),
            None => (0, &b""[..]),
        })
        .collect()
}

/// `*at`, moving `at` to the next column.
fn next(at: &mut usize) -> usize {
    *at += 1;
    *at - 1
}

fn metric_index(metric: Metric) -> usize {
    Metric::ALL
        .iter()
        .position(|&m| m == metric)
        .expect("a metric")
}

fn row_kind(kind: RecordKind) -> RowKind {
    match kind {
        RecordKind::Request => RowKind::Endpoint,
        _ => RowKind::Region,
    }
}

fn text(row: &[Value], i: usize, what: &str) -> Result<String, AnswerError> {
    match row.get(i) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        other => Err(AnswerError::Response {
            what: what.to_string(),
            why: format!("column {i}: expected a string, got {other:?}"),
        }),
    }
}

fn number<T: std::str::FromStr>(row: &[Value], i: usize, what: &str) -> Result<T, AnswerError>
where
    T::Err: std::fmt::Display,
{
    let s = text(row, i, what)?;
    s.parse::<T>().map_err(|e| AnswerError::Response {
        what: what.to_string(),
        why: format!("column {i}: {s:?}: {e}"),
    })
}

/// A sum of the server's wide integers: exact while it fits an `i128`,
/// else the bound, flagged.
fn wide_int(row: &[Value], i: usize, what: &str) -> Result<(i128, bool), AnswerError> {
    let s = text(row, i, what)?;
    match s.parse::<i128>() {
        Ok(n) => Ok((n, false)),
        Err(_) if s.starts_with('-') => Ok((i128::MIN, true)),
        Err(_) => Ok((i128::MAX, true)),
    }
}

fn float(row: &[Value], i: usize, what: &str) -> Result<f64, AnswerError> {
    match row.get(i) {
        Some(Value::Number(n)) => n.as_f64().ok_or_else(|| AnswerError::Response {
            what: what.to_string(),
            why: format!("column {i}: {n} is not a float"),
        }),
        _ => number::<f64>(row, i, what),
    }
}

/// A `sumMap` result, `[[keys], [weights]]`.
fn pairs(v: &Value, what: &str) -> Result<Vec<(i16, u64)>, AnswerError> {
    let bad = |why: &str| AnswerError::Response {
        what: what.to_string(),
        why: format!("sketch buckets: {why}"),
    };
    let parts = v
        .as_array()
        .filter(|a| a.len() == 2)
        .ok_or_else(|| bad("not a pair"))?;
    let (keys, weights) = match (parts[0].as_array(), parts[1].as_array()) {
        (Some(k), Some(w)) if k.len() == w.len() => (k, w),
        _ => return Err(bad("keys and weights differ")),
    };
    keys.iter()
        .zip(weights)
        .map(|(k, w)| {
            let k = text(std::slice::from_ref(k), 0, what)?
                .parse::<i16>()
                .map_err(|_| bad("key"))?;
            let w = text(std::slice::from_ref(w), 0, what)?
                .parse::<u64>()
                .map_err(|_| bad("weight"))?;
            Ok((k, w))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_parameters_escape_everything() {
        assert_eq!(literal("a'b\\c\n"), "'a\\'b\\\\c\\x0a'");
        assert_eq!(escaped("a\tb\\c\nd\0"), "a\\tb\\\\c\\nd\\0");
        let mut sql = Sql::new(Dialect::Current);
        assert_eq!(sql.value("x' OR 1"), "{p0:String}");
        assert_eq!(sql.params, [("p0".to_string(), "x' OR 1".to_string())]);
        let mut old = Sql::new(Dialect::Compat1816);
        assert_eq!(old.value("x' OR 1"), "'x\\' OR 1'");
        assert!(old.params.is_empty());
    }
}
