//! [`ClickHouseSink`]: records straight from the service into ClickHouse's
//! tables, for fleets without a collector tier.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use super::client::{ClickHouseError, Client, Server};
use super::rows::Rows;
use super::schema::{ROWS_SINCE, SCHEMA_VERSION, Table, takes_rows_of_this_release};
use crate::record::Record;
use crate::sink::{Batch, Sink};

/// What a [`ClickHouseSink`] did, counted since it was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClickHouseStats {
    /// Records delivered: every row of theirs acknowledged by the server.
    pub records_delivered: u64,
    /// Chunks delivered (one insert per table with rows).
    pub chunks_delivered: u64,
    /// `INSERT`s the server acknowledged.
    pub inserts: u64,
    /// `INSERT`s that failed (unreachable, overloaded, refused).
    pub insert_failures: u64,
    /// Records of chunks sent again after a failed insert whose fate is
    /// unknown (a timeout, a broken connection): without a deduplicating
    /// server, ClickHouse may hold this many extra copies.
    pub records_resent: u64,
    /// Records dropped because the buffer was full.
    pub dropped_buffer_full: u64,
    /// Records dropped because the server refused their chunk for a reason
    /// that does not pass (a missing table, a wrong password, bad rows),
    /// or after [`ClickHouseSinkBuilder::max_sends`] sends.
    pub dropped_refused: u64,
    /// Records that could not be decoded from their batch (never expected:
    /// the pipeline encodes them).
    pub dropped_undecodable: u64,
    /// Records buffered now: not yet delivered.
    pub buffered_records: u64,
}

impl ClickHouseStats {
    /// Every record the sink dropped, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_buffer_full + self.dropped_refused + self.dropped_undecodable
    }
}

/// Builds a [`ClickHouseSink`]; see there.
#[derive(Clone, Debug)]
pub struct ClickHouseSinkBuilder {
    url: String,
    database: String,
    chunk_records: usize,
    max_delay: Duration,
    buffer_records: usize,
    max_sends: u32,
    timeout: Duration,
    flush_timeout: Duration,
    backoff_initial: Duration,
    backoff_max: Duration,
    async_insert: bool,
}

impl ClickHouseSinkBuilder {
    /// The database the tables are in (`dynostats clickhouse init`);
    /// `dynostats` by default.
    pub fn database(mut self, database: &str) -> Self {
        self.database = database.to_string();
        self
    }

    /// Records per insert, at most (default 10,000). ClickHouse makes a
    /// part per insert: fewer, larger inserts are what it wants.
    pub fn chunk_records(mut self, records: usize) -> Self {
        self.chunk_records = records;
        self
    }

    /// How long records may wait for a chunk to fill before they are sent
    /// anyway (default 5 s). The sink sends when the pipeline hands it a
    /// batch, so a service that emits nothing for longer keeps its last
    /// records until the next batch (the status records come every 30 s by
    /// default), a flush or the shutdown.
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Records buffered at most while the server cannot take them
    /// (default 100,000); more are dropped and counted.
    pub fn buffer_records(mut self, records: usize) -> Self {
        self.buffer_records = records;
        self
    }

    /// Sends of one chunk at most before its records are dropped and
    /// counted (default 5).
    pub fn max_sends(mut self, sends: u32) -> Self {
        self.max_sends = sends;
        self
    }

    /// How long one insert may take (default 10 s), connecting included.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long a flush (and the shutdown) tries to deliver the buffer
    /// (default 10 s).
    pub fn flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = timeout;
        self
    }

    /// The wait after a failed insert before the next one: `initial`,
    /// doubling up to `max` (default 100 ms to 30 s).
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff_initial = initial;
        self.backoff_max = max;
        self
    }

    /// Whether to use the server's asynchronous inserts
    /// (`async_insert=1, wait_for_async_insert=1`) where it has them
    /// (default on): the server batches the inserts of many hosts into
    /// fewer parts, and answers once the rows are written.
    pub fn async_insert(mut self, on: bool) -> Self {
        self.async_insert = on;
        self
    }

    /// The sink. Fails on a bad URL or setting; the server is not asked
    /// anything until the first records are sent.
    pub fn build(self) -> Result<ClickHouseSink, crate::error::Error> {
        use crate::error::{ConfigError, ConfigErrorKind, Error};
        let invalid = |setting, kind| Err(Error::from(ConfigError::new(setting, kind)));
        let malformed = |reason: String| ConfigErrorKind::Malformed { reason };
        let server = match Server::parse(&self.url) {
            Ok(s) => s,
            Err(e) => return invalid("ClickHouseSink::builder", malformed(e.to_string())),
        };
        if let Err(e) = super::Schema::new().database(&self.database).check() {
            return invalid("ClickHouseSinkBuilder::database", malformed(e));
        }
        for (setting, zero) in [
            (
                "ClickHouseSinkBuilder::chunk_records",
                self.chunk_records == 0,
            ),
            (
                "ClickHouseSinkBuilder::buffer_records",
                self.buffer_records == 0,
            ),
            ("ClickHouseSinkBuilder::max_sends", self.max_sends == 0),
            ("ClickHouseSinkBuilder::timeout", self.timeout.is_zero()),
            (
                "ClickHouseSinkBuilder::flush_timeout",
                self.flush_timeout.is_zero(),
            ),
            (
                "ClickHouseSinkBuilder::backoff",
                self.backoff_initial.is_zero(),
            ),
        ] {
            if zero {
                return invalid(setting, ConfigErrorKind::Zero);
            }
        }
        if self.backoff_max < self.backoff_initial {
            let kind = ConfigErrorKind::CapBelowFirst {
                first: self.backoff_initial,
                cap: self.backoff_max,
            };
            return invalid("ClickHouseSinkBuilder::backoff", kind);
        }
        let name = format!("clickhouse:{server}{}", self.database);
        Ok(ClickHouseSink {
            name,
            client: Client::with_timeout(server, self.timeout),
            token_prefix: token_prefix(),
            backoff: self.backoff_initial,
            config: self,
            features: None,
            pending: Rows::new(),
            pending_records: 0,
            pending_since: None,
            chunks: VecDeque::new(),
            seq: 0,
            retry_at: None,
            stats: ClickHouseStats::default(),
            last_error: None,
            reported_refused: 0,
        })
    }
}

/// What the server can do, asked once (`system.settings`, `version()`).
#[derive(Clone, Copy, Debug)]
struct Features {
    async_insert: bool,
    dedup_token: bool,
    async_dedup: bool,
    /// `profile_nodes` has the columns of schema version 4.
    scope_columns: bool,
}

/// Records waiting to be inserted together.
struct Chunk {
    rows: Rows,
    records: u64,
    /// Tables whose insert the server acknowledged.
    done: [bool; 3],
    sends: u32,
    /// Whether an earlier send may have reached the server.
    maybe_in: bool,
    token: String,
}

/// Inserts records into the tables of `dynostats clickhouse init` over
/// ClickHouse's HTTP interface (feature `clickhouse`), for fleets without a
/// collector tier.
///
/// Records are turned into rows ([`Rows`]) and sent in chunks of
/// [`chunk_records`](ClickHouseSinkBuilder::chunk_records), or after
/// [`max_delay`](ClickHouseSinkBuilder::max_delay): one `INSERT ...
/// FORMAT JSONEachRow` per table, with `async_insert=1,
/// wait_for_async_insert=1` where the server has asynchronous inserts
/// (ClickHouse 21.11 and later) and plain inserts where it does not. A
/// record counts as delivered when the server has acknowledged its rows.
///
/// It never blocks the service: like every sink it runs on a thread of its
/// own, and while the server is down, slow or refusing, records wait in a
/// bounded buffer (then are dropped and counted) and inserts are retried
/// after a doubling wait. A chunk whose insert failed in a way that says
/// nothing of its fate (a timeout, a broken connection) is sent again with
/// the same `insert_deduplication_token` where the server has them (22.2
/// and later), so a server that deduplicates (the shipped schema's tables,
/// replicated tables) keeps it once; elsewhere it is counted as resent. A
/// chunk the server refuses for a reason that does not pass (no table, a
/// wrong password, a row it cannot parse) is dropped and counted, with the
/// server's message as the sink's error.
///
/// The URL is `http://[user[:password]@]host:port/`; user and password
/// also come from `CLICKHOUSE_USER` and `CLICKHOUSE_PASSWORD`. They travel
/// as HTTP basic authentication and appear in no record, name or error.
///
/// ```no_run
/// use std::time::Duration;
/// use dynostats::clickhouse::ClickHouseSink;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let sink = ClickHouseSink::builder("http://loader@clickhouse:8123/")
///     .database("dynostats")
///     .chunk_records(10_000)
///     .max_delay(Duration::from_secs(5))
///     .build()?;
/// let pipeline = dynostats::Pipeline::builder().sink(sink).build()?;
/// # drop(pipeline);
/// # Ok(())
/// # }
/// ```
pub struct ClickHouseSink {
    name: String,
    config: ClickHouseSinkBuilder,
    client: Client,
    features: Option<Features>,
    pending: Rows,
    pending_records: u64,
    pending_since: Option<Instant>,
    chunks: VecDeque<Chunk>,
    token_prefix: String,
    seq: u64,
    retry_at: Option<Instant>,
    backoff: Duration,
    stats: ClickHouseStats,
    last_error: Option<String>,
    /// `dropped_refused` when the last flush reported it.
    reported_refused: u64,
}

impl fmt::Debug for ClickHouseSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClickHouseSink")
            .field("name", &self.name)
            .field("stats", &self.stats())
            .field("last_error", &self.last_error)
            .finish_non_exhaustive()
    }
}

fn token_prefix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(crate::sys::realtime_ns());
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

impl ClickHouseSink {
    /// A builder for a sink inserting into the server at `url`.
    pub fn builder(url: &str) -> ClickHouseSinkBuilder {
        ClickHouseSinkBuilder {
            url: url.to_string(),
            database: "dynostats".to_string(),
            chunk_records: 10_000,
            max_delay: Duration::from_secs(5),
            buffer_records: 100_000,
            max_sends: 5,
            timeout: Duration::from_secs(10),
            flush_timeout: Duration::from_secs(10),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            async_insert: true,
        }
    }

    /// What the sink delivered, buffered and dropped so far.
    pub fn stats(&self) -> ClickHouseStats {
        ClickHouseStats {
            buffered_records: self.buffered_records(),
            ..self.stats
        }
    }

    /// The last error: the server's message, or why it could not be
    /// reached.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    fn buffered_records(&self) -> u64 {
        self.pending_records + self.chunks.iter().map(|c| c.records).sum::<u64>()
    }

    /// Makes the pending rows a chunk.
    fn seal(&mut self) {
        if self.pending_records == 0 {
            return;
        }
        self.seq += 1;
        let rows = std::mem::take(&mut self.pending);
        self.chunks.push_back(Chunk {
            rows,
            records: self.pending_records,
            done: [false; 3],
            sends: 0,
            maybe_in: false,
            token: format!("{}-{}", self.token_prefix, self.seq),
        });
        self.pending_records = 0;
        self.pending_since = None;
    }

    /// What the server can do; asked once it answers.
    fn features(&mut self) -> Result<Features, ClickHouseError> {
        if let Some(f) = self.features {
            return Ok(f);
        }
        let have = self.client.query(
            "SELECT name FROM system.settings WHERE name IN ('async_insert', \
             'insert_deduplication_token', 'async_insert_deduplicate')",
        )?;
        let has = |name: &str| have.lines().any(|l| l.trim() == name);
        // The schema must be there, and be the one these rows are for.
        let sql = format!(
            "SELECT max(version) FROM {}.schema_version",
            self.config.database
        );
        let version = self.client.query(&sql)?;
        if !takes_rows_of_this_release(&version) {
            return Err(ClickHouseError::Server {
                status: 200,
                code: None,
                message: format!(
                    "database {} holds dynostats schema version {}, this sink writes into \
                     versions {ROWS_SINCE} to {SCHEMA_VERSION}",
                    self.config.database,
                    version.trim()
                ),
            });
        }
        let f = Features {
            async_insert: self.config.async_insert && has("async_insert"),
            dedup_token: has("insert_deduplication_token"),
            async_dedup: has("async_insert_deduplicate"),
            scope_columns: self.client.has_scope_columns(&self.config.database)?,
        };
        self.features = Some(f);
        Ok(f)
    }

    /// Sends chunks, oldest first, until none is left, one fails, or
    /// `deadline`. Without a deadline it sends nothing during a backoff.
    fn deliver(&mut self, deadline: Option<Instant>) -> io::Result<()> {
        while !self.chunks.is_empty() {
            let now = Instant::now();
            if let Some(at) = self.retry_at.filter(|&at| at > now) {
                match deadline {
                    Some(d) if at < d => std::thread::sleep(at - now),
                    _ => return Err(self.undelivered()),
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(self.undelivered());
            }
            // The server's features and the schema's version, once: until
            // they are known nothing is sent, and nothing is dropped.
            if let Err(e) = self.features() {
                self.last_error = Some(format!("checking the schema: {e}"));
                self.wait_after_failure();
                continue;
            }
            match self.send_front() {
                Ok(()) => {
                    if let Some(chunk) = self.chunks.pop_front() {
                        self.stats.records_delivered += chunk.records;
                        self.stats.chunks_delivered += 1;
                    }
                    self.backoff = self.config.backoff_initial;
                    self.retry_at = None;
                }
                Err(e) => {
                    self.stats.insert_failures += 1;
                    self.last_error = Some(e.to_string());
                    let spent = self
                        .chunks
                        .front()
                        .is_some_and(|c| c.sends >= self.config.max_sends);
                    if !e.is_transient() || spent {
                        if let Some(chunk) = self.chunks.pop_front() {
                            self.stats.dropped_refused += chunk.records;
                            self.last_error = Some(format!(
                                "{} records dropped after {} sends: {e}",
                                chunk.records, chunk.sends
                            ));
                        }
                    } else {
                        self.wait_after_failure();
                    }
                }
            }
        }
        Ok(())
    }

    fn wait_after_failure(&mut self) {
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(self.config.backoff_max);
    }

    /// One send of the oldest chunk: an insert per table not yet in.
    fn send_front(&mut self) -> Result<(), ClickHouseError> {
        let features = self.features()?;
        let database = self.config.database.clone();
        let Some(chunk) = self.chunks.front_mut() else {
            return Ok(());
        };
        chunk.sends += 1;
        if chunk.maybe_in {
            self.stats.records_resent += chunk.records;
        }
        for (slot, table) in Table::ALL.into_iter().enumerate() {
            if chunk.done[slot] || chunk.rows.rows(table) == 0 {
                continue;
            }
            let insert = format!("INSERT INTO {database}.{} FORMAT JSONEachRow", table.name());
            let token = format!("{}-{}", chunk.token, table.name());
            let mut settings = vec![("insert_distributed_sync", "1")];
            if table == Table::ProfileNodes && !features.scope_columns {
                // A database not yet upgraded to schema version 4.
                settings.push(("input_format_skip_unknown_fields", "1"));
            }
            if features.async_insert {
                settings.push(("async_insert", "1"));
                settings.push(("wait_for_async_insert", "1"));
                if features.async_dedup {
                    settings.push(("async_insert_deduplicate", "1"));
                }
            }
            if features.dedup_token {
                settings.push(("insert_deduplicate", "1"));
                settings.push(("insert_deduplication_token", &token));
            }
            match self
                .client
                .insert(&insert, &settings, chunk.rows.text(table).as_bytes())
            {
                Ok(()) => {
                    chunk.done[slot] = true;
                    self.stats.inserts += 1;
                }
                Err(e) => {
                    // A broken connection or a timeout may have left the
                    // rows in; a refusal did not.
                    if matches!(e, ClickHouseError::Connect(_)) {
                        chunk.maybe_in = true;
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn undelivered(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "{}: {} records not delivered within the flush timeout ({:?}), kept in the \
                 buffer; last error: {}",
                self.name,
                self.buffered_records(),
                self.config.flush_timeout,
                self.last_error.as_deref().unwrap_or("none")
            ),
        )
    }
}

impl Sink for ClickHouseSink {
    fn name(&self) -> String {
        self.name.clone()
    }

    /// Buffers the records as rows and sends the chunks that are full or
    /// old enough, unless the sink waits after a failure. Never fails:
    /// undelivered records stay buffered, and the last error is in
    /// [`ClickHouseSink::last_error`].
    fn write_batch(&mut self, batch: &Batch) -> io::Result<()> {
        for encoded in batch.iter() {
            if self.buffered_records() >= self.config.buffer_records as u64 {
                self.stats.dropped_buffer_full += 1;
                continue;
            }
            match Record::from_msgpack(encoded.bytes) {
                Ok(record) => {
                    self.pending.push(&record);
                    self.pending_records += 1;
                    self.pending_since.get_or_insert_with(Instant::now);
                }
                Err(_) => self.stats.dropped_undecodable += 1,
            }
            if self.pending_records >= self.config.chunk_records as u64 {
                self.seal();
            }
        }
        if self
            .pending_since
            .is_some_and(|t| t.elapsed() >= self.config.max_delay)
        {
            self.seal();
        }
        let _ = self.deliver(None);
        Ok(())
    }

    /// Delivers the whole buffer for at most the flush timeout; fails with
    /// the number of records still buffered, or with the records the
    /// server refused since the last flush.
    fn flush(&mut self) -> io::Result<()> {
        self.seal();
        let deadline = Instant::now() + self.config.flush_timeout;
        self.retry_at = None;
        self.deliver(Some(deadline))?;
        let refused = self.stats.dropped_refused - self.reported_refused;
        self.reported_refused = self.stats.dropped_refused;
        if refused > 0 {
            return Err(io::Error::other(format!(
                "{}: {}",
                self.name,
                self.last_error.as_deref().unwrap_or("records refused")
            )));
        }
        Ok(())
    }

    fn dropped(&self) -> u64 {
        self.stats.dropped()
    }

    fn buffered(&self) -> u64 {
        self.buffered_records()
    }

    fn resent(&self) -> u64 {
        self.stats.records_resent
    }
}
