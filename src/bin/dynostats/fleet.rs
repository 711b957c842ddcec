//! `--clickhouse URL`: `report`, `compare` and `timeseries` answered by a
//! ClickHouse server over the fleet's records instead of files
//! (`dynostats::clickhouse::ClickHouse`), with the time range, the
//! `--print-sql` of every query and the line that says where the answer
//! came from.

use std::time::{SystemTime, UNIX_EPOCH};

use clap::builder::{PossibleValuesParser, TypedValueParser};
use dynostats::clickhouse::{AnswerError, ClickHouse, Client, Selection, Server, Source};

use crate::args::parse_duration;
use crate::{EXIT_IO, EXIT_REFUSED, EXIT_USAGE};

/// Where the records are when they are not in files.
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct Fleet {
    /// Answers from the records in ClickHouse at URL
    /// (`http://[user[:password]@]host:8123/`, credentials also from
    /// CLICKHOUSE_USER and CLICKHOUSE_PASSWORD) instead of files; the
    /// server aggregates, only summaries come back.
    #[arg(long, value_name = "URL")]
    pub(crate) clickhouse: Option<String>,
    /// The database holding the tables (`dynostats clickhouse init`).
    #[arg(
        long,
        value_name = "DB",
        default_value = "dynostats",
        requires = "clickhouse"
    )]
    database: String,
    /// Records of the last DURATION (`2h`, `30m`, `7d`), up to now, from
    /// the start of the minute DURATION ago (whole minutes, which the
    /// rollup answers).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "clickhouse", conflicts_with_all = ["from", "all"])]
    since: Option<u64>,
    /// Records at or after TIME (`2026-12-06T10:00:00Z`, or nanoseconds
    /// since the epoch).
    #[arg(long, value_name = "TIME", value_parser = parse_time, requires = "clickhouse")]
    from: Option<u64>,
    /// Records before TIME (as --from).
    #[arg(long, value_name = "TIME", value_parser = parse_time, requires = "clickhouse", conflicts_with = "since")]
    until: Option<u64>,
    /// Reads every record of the table: without --since, --from or
    /// --until a question must say so.
    #[arg(long, requires = "clickhouse")]
    all: bool,
    /// Where endpoint and region costs are read: `rollup` (per build and
    /// minute, quantiles per build and hour: kept longer, fast; quantiles
    /// exact where each bucket holds one value, else within 1/128), `raw`
    /// (the records: any label, splits, exact quantiles), or `auto` (the
    /// rollup where it can answer: labels build only, times and windows
    /// on whole minutes, and for a report sketches that hold every record
    /// of the range; else the raw rows). Call trees are read from the raw
    /// rows; a comparison's profiled functions from the rollup
    /// (`rollup_functions`) where it holds every profile record of the
    /// range with its amounts, else from the raw rows.
    #[arg(
        long,
        default_value = "auto",
        requires = "clickhouse",
        value_parser = PossibleValuesParser::new(["auto", "rollup", "raw"]).map(|s| match s.as_str() {
            "rollup" => Source::Rollup,
            "raw" => Source::Raw,
            _ => Source::Auto,
        })
    )]
    source: Source,
    /// Prints every query sent (with its parameters) on standard error,
    /// to copy into a dashboard.
    #[arg(long, requires = "clickhouse")]
    print_sql: bool,
}

impl Fleet {
    /// Whether the answer comes from ClickHouse.
    pub(crate) fn active(&self) -> bool {
        self.clickhouse.is_some()
    }

    /// Connects, or says why not and returns the exit status.
    pub(crate) fn connect(&self) -> Result<ClickHouse, u8> {
        let url = self.clickhouse.as_deref().unwrap_or_default();
        let server = Server::parse(url).map_err(|e| {
            eprintln!("dynostats: {e}");
            EXIT_USAGE
        })?;
        ClickHouse::connect(Client::new(server), &self.database)
            .map(|db| db.source(self.source))
            .map_err(|e| failed(&e))
    }

    /// The selection of the time flags and `labels`, or the exit status
    /// of a question without a time range.
    pub(crate) fn selection(&self, labels: &[(String, String)]) -> Result<Selection, u8> {
        let mut s = Selection::new();
        if let Some(since) = self.since {
            // From the start of the minute DURATION ago: a range on whole
            // minutes is one the rollup answers (`--source auto`).
            const MINUTE: u64 = 60_000_000_000;
            s = s.from_ns(now_ns().saturating_sub(since) / MINUTE * MINUTE);
        }
        if let Some(from) = self.from {
            s = s.from_ns(from);
        }
        if let Some(until) = self.until {
            s = s.until_ns(until);
        }
        if !s.is_bounded() && !self.all {
            eprintln!(
                "dynostats: a question to ClickHouse without a time range reads the whole \
                 table: give --since DURATION, --from/--until TIME, or --all"
            );
            return Err(EXIT_USAGE);
        }
        for (k, v) in labels {
            s = s.label(k, v);
        }
        Ok(s)
    }

    /// The selection of `labels` between `from` and `until` (a side of a
    /// comparison by time: `compare --base-from`), whatever the time
    /// flags say.
    pub(crate) fn selection_between(
        &self,
        labels: &[(String, String)],
        from: Option<u64>,
        until: Option<u64>,
    ) -> Selection {
        let mut s = Selection::new();
        if let Some(from) = from {
            s = s.from_ns(from);
        }
        if let Some(until) = until {
            s = s.until_ns(until);
        }
        for (k, v) in labels {
            s = s.label(k, v);
        }
        s
    }

    /// The answer of `db` (or the exit status of its failure, said), after
    /// saying on standard error where it came from (and the queries with
    /// `--print-sql`, those of a failure too).
    pub(crate) fn answer<T>(
        &self,
        db: &ClickHouse,
        answer: Result<T, AnswerError>,
    ) -> Result<T, u8> {
        self.say(db, answer.is_ok());
        answer.map_err(|e| failed(&e))
    }

    fn say(&self, db: &ClickHouse, answered: bool) {
        let queries = db.queries();
        if self.print_sql {
            for q in &queries {
                let aside = if q.set_aside {
                    " (not what the answer is read from)"
                } else {
                    ""
                };
                eprintln!("-- {}{aside}", q.what);
                for (name, value) in &q.params {
                    eprintln!("--   {name} = {value:?}");
                }
                eprintln!("{};", q.sql);
                if let Some((rows, bytes)) = q.read {
                    eprintln!(
                        "--   read {rows} rows ({bytes} bytes) in {:.3} s, answered {} bytes",
                        q.elapsed_s, q.answer_bytes
                    );
                }
            }
        }
        if !answered {
            return;
        }
        let db_name = &self.database;
        let read = |table: &str| {
            let from = format!("FROM {db_name}.{table} ");
            queries.iter().any(|q| {
                !q.what.ends_with("record counts") && !q.set_aside && q.sql.contains(&from)
            })
        };
        let mut tables = Vec::new();
        if read("rollup") {
            tables.push(format!("{db_name}.rollup (per build and minute)"));
        }
        if read("rollup_sketch") {
            tables.push(format!(
                "{db_name}.rollup_sketch (quantiles per build and hour: exact where each bucket \
                 holds one value, else within 1/128)"
            ));
        }
        if read("rollup_functions") {
            tables.push(format!(
                "{db_name}.rollup_functions (profiled functions per build and minute)"
            ));
        }
        for table in ["records", "profile_nodes", "status"] {
            if read(table) {
                tables.push(format!("{db_name}.{table} (raw rows)"));
            }
        }
        let rows: u64 = queries.iter().filter_map(|q| q.read).map(|r| r.0).sum();
        let bytes: usize = queries.iter().map(|q| q.answer_bytes).sum();
        let seconds: f64 = queries.iter().map(|q| q.elapsed_s).sum();
        eprintln!(
            "dynostats: answered by ClickHouse at {} from {}, aggregated by the server: {} \
             queries read {rows} rows in {seconds:.3} s and returned {bytes} bytes",
            self.clickhouse.as_deref().map(redact).unwrap_or_default(),
            tables.join(" and "),
            queries.len()
        );
    }
}

/// Says `e` and returns the exit status: 1 when the server could not be
/// reached, 6 when it refused or answered nonsense.
pub(crate) fn failed(e: &AnswerError) -> u8 {
    eprintln!("dynostats: {e}");
    if e.is_connect() {
        EXIT_IO
    } else {
        EXIT_REFUSED
    }
}

/// The URL without a password.
fn redact(url: &str) -> String {
    Server::parse(url).map_or_else(|_| "?".to_string(), |s| s.to_string())
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// `2026-12-06T10:00:00Z` (seconds optional, a fraction allowed, `Z` or
/// nothing: UTC) or integer nanoseconds since the epoch.
pub(crate) fn parse_time(s: &str) -> Result<u64, String> {
    if let Ok(ns) = s.parse::<u64>() {
        return Ok(ns);
    }
    let bad = || format!("expected a UTC time like 2026-12-06T10:00:00Z or nanoseconds, got {s:?}");
    let t = s.strip_suffix('Z').unwrap_or(s);
    let (date, time) = t.split_once(['T', ' ']).unwrap_or((t, "00:00:00"));
    let d: Vec<i64> = date
        .split('-')
        .map(|p| p.parse::<i64>().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let (secs, frac) = time.split_once('.').unwrap_or((time, ""));
    let hms: Vec<i64> = secs
        .split(':')
        .map(|p| p.parse::<i64>().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let [year, month, day] = d[..] else {
        return Err(bad());
    };
    let (h, m, sec) = match hms[..] {
        [h, m] => (h, m, 0),
        [h, m, sec] => (h, m, sec),
        _ => return Err(bad()),
    };
    if !(1970..=2500).contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || !(0..24).contains(&h)
        || !(0..60).contains(&m)
        || !(0..61).contains(&sec)
        || frac.len() > 9
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    // Civil date to days (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + m * 60 + sec;
    let frac_ns = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse::<i64>().map_err(|_| bad())?
    };
    u64::try_from(secs * 1_000_000_000 + frac_ns).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dynostats::report::output::utc;

    #[test]
    fn times_read_back_what_utc_prints() {
        for ns in [
            0,
            1_764_150_540_000_000_000,
            951_782_400_250_000_000,
            4_102_444_799_000_000_000,
        ] {
            assert_eq!(parse_time(&utc(ns)), Ok(ns), "{}", utc(ns));
        }
        assert_eq!(
            parse_time("2026-12-06T10:00"),
            parse_time("2026-12-06T10:00:00Z")
        );
        assert_eq!(parse_time("123"), Ok(123));
        for bad in [
            "2026-13-01T00:00:00Z",
            "yesterday",
            "2026-12-06T25:00:00Z",
            "2026-12",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}
