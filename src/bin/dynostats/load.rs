//! `dynostats load`: record files into ClickHouse's tables
//! (`dynostats::clickhouse`), in batches, resumable.
//!
//! Each input is identified by its first record (a hash of it, and of the
//! `--label` filters, if any), so a file keeps its identity when the file
//! sink rotates it. After every batch the
//! loader writes how many of the input's records are in (table `loads`); a
//! load run again skips those, and sends the batch that was in flight
//! under the same `insert_deduplication_token`, so a server that
//! deduplicates (current ClickHouse; `non_replicated_deduplication_window`
//! in the shipped schema) drops it. A server without it (18.16 without
//! replication) may get that one batch twice: said in docs/clickhouse.md.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dynostats::Record;
use dynostats::clickhouse::{
    ClickHouseError, Client, ROWS_SINCE, Rows, SCHEMA_VERSION, Table, takes_rows_of_this_release,
};
use dynostats::report::Summarize;
use dynostats::report::output::escape_name;
use sha2::{Digest, Sha256};

use crate::args::Inputs;
use crate::clickhouse::refused;
use crate::{EXIT_OK, EXIT_REFUSED, EXIT_USAGE};

/// The end of `dynostats load --help`.
pub(crate) const HELP: &str = "\
EXAMPLES:
  dynostats clickhouse init --clickhouse http://127.0.0.1:8123/
  dynostats load --clickhouse http://127.0.0.1:8123/ --rotated records.msgpack
  CLICKHOUSE_PASSWORD=... dynostats load --clickhouse http://loader@ch:8123/ day.msgpack.zst

EXIT STATUS: 1 also when ClickHouse could not be reached (after --attempts),
3 damaged input (the records before the damage were inserted), 6 ClickHouse
refused (no schema, a wrong password, a bad table, records older than the TTL
without --allow-expired); see dynostats --help";

/// The arguments of `dynostats load`.
#[derive(clap::Args)]
pub(crate) struct LoadArgs {
    /// Record files, loaded in order: `-` is standard input; gzip and zstd
    /// are decompressed; --rotated adds FILE.N ... FILE.1 before FILE.
    #[arg(required = true)]
    files: Vec<String>,
    /// The server's HTTP interface: http://[user[:password]@]host:port/
    /// (user and password also from CLICKHOUSE_USER, CLICKHOUSE_PASSWORD;
    /// never printed).
    #[arg(long, value_name = "URL")]
    clickhouse: String,
    /// The database the schema is in (`dynostats clickhouse init`).
    #[arg(long, value_name = "DB", default_value = "dynostats")]
    database: String,
    /// Records per batch: each batch is one insert per table and one line
    /// of progress in the table `loads`. Keep it the same when a load is
    /// run again (the batches' deduplication tokens depend on it).
    #[arg(long, value_name = "N", default_value_t = 50_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    batch: u64,
    /// Attempts per insert when the server cannot be reached or says it is
    /// overloaded (waiting 0.5 s, doubling up to 30 s, between them).
    #[arg(long, value_name = "N", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    attempts: u32,
    /// Inserts records older than the tables' TTL too (ClickHouse drops
    /// them at once or at the next merge).
    #[arg(long)]
    allow_expired: bool,
    #[command(flatten)]
    inputs: Inputs,
}

/// What a load did, for the summary.
#[derive(Default)]
struct Tally {
    records: u64,
    rows: [u64; 3],
    already_loaded: u64,
    left_out: u64,
    batches: u64,
    retries: u64,
}

/// The reading side: a summary (`Summarize`) that turns records into rows
/// and inserts them batch by batch.
struct Loader<'a> {
    client: &'a Client,
    database: String,
    batch: u64,
    attempts: u32,
    dedup_tokens: bool,
    /// `profile_nodes` has the columns of schema version 4 (else the
    /// server skips them).
    scope_columns: bool,
    /// Records before this (ns) would be dropped by the tables' TTL.
    expired_before: Option<(u64, u32)>,
    labels: Vec<(String, String)>,
    rows: Rows,
    /// The input being read: its identity, records read, records loaded
    /// before this run, the first record of the batch being made.
    file: Option<String>,
    seen: u64,
    skip: u64,
    /// Records in the batch being made (counted as inserted once it is).
    pending: u64,
    batch_start: u64,
    tally: Tally,
    /// Why the load stopped.
    stop: Option<String>,
    stop_status: u8,
}

impl Summarize for Loader<'_> {
    fn add(&mut self, record: &Record) {
        if self.stop.is_some() {
            return;
        }
        if self.file.is_none() {
            self.start_file(record);
            if self.stop.is_some() {
                return;
            }
        }
        let index = self.seen;
        self.seen += 1;
        if index < self.skip {
            self.tally.already_loaded += 1;
            return;
        }
        if !self
            .labels
            .iter()
            .all(|(k, v)| record.labels.get(k) == Some(v.as_str()))
        {
            self.tally.left_out += 1;
        } else if let Some((_, days)) = self.expired_before.filter(|(cut, _)| record.ts < *cut) {
            self.stop = Some(format!(
                "record {} of this input ({}) is older than the tables' TTL of {days} days: \
                 ClickHouse would drop it. Pass --allow-expired to insert such records anyway, \
                 or raise the TTL (ALTER TABLE ... MODIFY TTL)",
                index + 1,
                dynostats::report::output::utc(record.ts)
            ));
            self.stop_status = EXIT_REFUSED;
            return;
        } else {
            self.rows.push(record);
            self.pending += 1;
        }
        if self.seen - self.batch_start >= self.batch {
            self.flush();
        }
    }

    fn needs_labels(&self) -> bool {
        true
    }
}

impl Loader<'_> {
    fn start_file(&mut self, first: &Record) {
        // With --label the input is the file's records that match: a load
        // of the same file under other labels is another input, with its
        // own progress and tokens. Without, the identity is the first
        // record's alone, as it always was (so progress kept by earlier
        // loads still counts).
        let mut hasher = Sha256::new();
        hasher.update(first.to_msgpack());
        if !self.labels.is_empty() {
            let mut labels = self.labels.clone();
            labels.sort();
            hasher.update(b"\0labels");
            for (k, v) in &labels {
                hasher.update([0]);
                hasher.update(k.as_bytes());
                hasher.update([0]);
                hasher.update(v.as_bytes());
            }
        }
        let id = hex::encode(&hasher.finalize()[..16]);
        let sql = format!(
            "SELECT max(records) FROM {}.loads WHERE file = '{id}'",
            self.database
        );
        match self.with_attempts(|c| c.query(&sql)) {
            Ok(text) => {
                self.skip = text.trim().parse().unwrap_or(0);
                self.batch_start = self.skip;
            }
            Err(e) => self.fail(&e),
        }
        self.file = Some(id);
    }

    /// Inserts the batch made so far, then its line in `loads`.
    fn flush(&mut self) {
        let Some(file) = self.file.clone() else {
            return;
        };
        if self.stop.is_some() || self.seen == self.batch_start {
            return;
        }
        for (slot, table) in Table::ALL.into_iter().enumerate() {
            if self.rows.rows(table) == 0 {
                continue;
            }
            let insert = format!(
                "INSERT INTO {}.{} FORMAT JSONEachRow",
                self.database,
                table.name()
            );
            let token = format!(
                "{file}:{}:{}:{}",
                self.batch_start,
                self.batch,
                table.name()
            );
            let mut settings = vec![("insert_distributed_sync", "1")];
            if table == Table::ProfileNodes && !self.scope_columns {
                // A database not yet upgraded to schema version 4.
                settings.push(("input_format_skip_unknown_fields", "1"));
            }
            if self.dedup_tokens {
                settings.push(("insert_deduplicate", "1"));
                settings.push(("insert_deduplication_token", token.as_str()));
            }
            let body = self.rows.text(table).as_bytes().to_vec();
            match self.with_attempts(|c| c.insert(&insert, &settings, &body)) {
                Ok(()) => self.tally.rows[slot] += self.rows.rows(table),
                Err(e) => return self.fail(&e),
            }
        }
        let rows = self.rows.total_rows();
        let line = format!(
            "{{\"file\":\"{file}\",\"records\":{},\"rows\":{rows}}}\n",
            self.seen
        );
        let insert = format!(
            "INSERT INTO {}.loads (file, records, rows) FORMAT JSONEachRow",
            self.database
        );
        if let Err(e) = self.with_attempts(|c| c.insert(&insert, &[], line.as_bytes())) {
            return self.fail(&e);
        }
        self.tally.batches += 1;
        self.tally.records += self.pending;
        self.pending = 0;
        self.rows.clear();
        self.batch_start = self.seen;
    }

    /// The end of an input: its last batch, and a clean slate for the next.
    fn end_file(&mut self) {
        self.flush();
        self.file = None;
        self.seen = 0;
        self.skip = 0;
        self.batch_start = 0;
        self.rows.clear();
    }

    fn fail(&mut self, e: &ClickHouseError) {
        self.stop = Some(e.to_string());
        self.stop_status = refused_status(e);
    }

    /// `op` tried up to `attempts` times while its error is transient.
    fn with_attempts<T>(
        &mut self,
        mut op: impl FnMut(&Client) -> Result<T, ClickHouseError>,
    ) -> Result<T, ClickHouseError> {
        let mut wait = Duration::from_millis(500);
        let mut attempt = 1;
        loop {
            match op(self.client) {
                Ok(v) => return Ok(v),
                Err(e) if e.is_transient() && attempt < self.attempts => {
                    eprintln!(
                        "dynostats: {e}; trying again in {:.1} s",
                        wait.as_secs_f64()
                    );
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(30));
                    attempt += 1;
                    self.tally.retries += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn refused_status(e: &ClickHouseError) -> u8 {
    match e {
        ClickHouseError::Connect(_) => crate::EXIT_IO,
        _ => EXIT_REFUSED,
    }
}

/// The TTL in days of the database's records table, when it has one
/// (`TTL time + toIntervalDay(N)`, as the shipped schema writes it).
fn ttl_days(client: &Client, database: &str) -> Option<u32> {
    let sql = format!(
        "SELECT engine_full FROM system.tables WHERE database = '{database}' \
         AND name IN ('records', 'records_local') FORMAT TSVRaw"
    );
    parse_ttl_days(&client.query(&sql).ok()?)
}

/// The days of the first `TTL time + INTERVAL N DAY` (or `WEEK`) in
/// `engine_full` texts, as ClickHouse prints them (`toIntervalDay(N)`).
fn parse_ttl_days(engine_full: &str) -> Option<u32> {
    engine_full.lines().find_map(|line| {
        [("toIntervalDay(", 1), ("toIntervalWeek(", 7)]
            .into_iter()
            .find_map(|(unit, days)| {
                let key = format!("TTL time + {unit}");
                let at = line.find(&key)? + key.len();
                let n: u32 = line[at..].split(')').next()?.parse().ok()?;
                n.checked_mul(days)
            })
    })
}

/// Runs `dynostats load` and returns the exit status.
pub(crate) fn run(args: &LoadArgs) -> u8 {
    if let Err(e) = dynostats::clickhouse::Schema::new()
        .database(&args.database)
        .check()
    {
        eprintln!("dynostats: {e}");
        return EXIT_USAGE;
    }
    let client = match crate::clickhouse::client(&args.clickhouse) {
        Ok(c) => c,
        Err(status) => return status,
    };
    let version = match client.version() {
        Ok(v) => v,
        Err(e) => return refused(&e),
    };
    // The schema must be there, and take this loader's rows.
    let sql = format!("SELECT max(version) FROM {}.schema_version", args.database);
    match client.query(&sql) {
        Ok(v) if takes_rows_of_this_release(&v) => {}
        Ok(v) => {
            eprintln!(
                "dynostats: database {} holds dynostats schema version {}, this loader writes \
                 into versions {ROWS_SINCE} to {SCHEMA_VERSION}: see docs/clickhouse.md, \
                 \"Upgrades\"",
                args.database,
                v.trim()
            );
            return EXIT_REFUSED;
        }
        Err(e) => {
            eprintln!(
                "dynostats: database {} has no dynostats schema on {} ({e}); make it with \
                 `dynostats clickhouse init --clickhouse URL --database {}`",
                args.database,
                client.server(),
                args.database
            );
            return refused_status(&e);
        }
    }
    let scope_columns = match client.has_scope_columns(&args.database) {
        Ok(has) => has,
        Err(e) => return refused(&e),
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let expired_before = if args.allow_expired {
        None
    } else {
        ttl_days(&client, &args.database).map(|days| {
            (
                now.saturating_sub(u64::from(days) * 86_400 * 1_000_000_000),
                days,
            )
        })
    };
    let mut loader = Loader {
        client: &client,
        database: args.database.clone(),
        batch: args.batch,
        attempts: args.attempts,
        dedup_tokens: version >= (22, 2),
        scope_columns,
        expired_before,
        labels: args.inputs.labels.clone(),
        rows: Rows::new(),
        file: None,
        seen: 0,
        skip: 0,
        pending: 0,
        batch_start: 0,
        tally: Tally::default(),
        stop: None,
        stop_status: EXIT_OK,
    };
    let started = Instant::now();
    let mut reads = Vec::new();
    for file in args.inputs.expanded(&args.files) {
        reads.extend(
            args.inputs
                .read_each(&mut loader, std::slice::from_ref(&file)),
        );
        loader.end_file();
        if let Some(why) = &loader.stop {
            eprintln!(
                "dynostats: load stopped in {}: {}",
                escape_name(&file),
                escape_name(why)
            );
            eprintln!(
                "dynostats: the batches before it are in; the same command run again goes on \
                 where this one stopped"
            );
            break;
        }
    }
    let t = &loader.tally;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "dynostats: inserted {} records into {} on {} in {:.1} s ({:.0} records/s): {} records \
         rows, {} profile node rows, {} status rows, {} batches{}",
        t.records,
        args.database,
        client.server(),
        seconds,
        t.records as f64 / seconds.max(1e-9),
        t.rows[0],
        t.rows[1],
        t.rows[2],
        t.batches,
        if t.retries > 0 {
            format!(", {} retries", t.retries)
        } else {
            String::new()
        }
    );
    if t.already_loaded > 0 {
        eprintln!(
            "dynostats: {} records were in already (an earlier load): skipped",
            t.already_loaded
        );
    }
    if t.left_out > 0 {
        eprintln!("dynostats: {} records left out by --label", t.left_out);
    }
    let skipped: u64 = reads.iter().map(|r| r.skipped_total()).sum();
    if skipped > 0 {
        eprintln!("dynostats: {skipped} records skipped as damaged (see above); not inserted");
    }
    if loader.stop.is_some() {
        return loader.stop_status;
    }
    args.inputs.status(&reads)
}

#[cfg(test)]
mod tests {
    use super::parse_ttl_days;

    #[test]
    fn ttl_is_read_from_the_engine_text() {
        // As ClickHouse 26.9 (chdb 4.4) prints the shipped schema's table.
        let current = "MergeTree PARTITION BY toYYYYMMDD(time) ORDER BY time TTL time + \
                       toIntervalDay(30) SETTINGS non_replicated_deduplication_window = 10000, \
                       index_granularity = 8192";
        assert_eq!(parse_ttl_days(current), Some(30));
        assert_eq!(
            parse_ttl_days("MergeTree ORDER BY t TTL time + toIntervalWeek(2)"),
            Some(14)
        );
        // 18.16 has no TTL; a table without one has none.
        assert_eq!(
            parse_ttl_days("MergeTree PARTITION BY toYYYYMMDD(time) ORDER BY time"),
            None
        );
        assert_eq!(parse_ttl_days("TTL time + toIntervalDay(x)"), None);
    }
}
