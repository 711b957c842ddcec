//! Reports: records aggregated per endpoint and per region.
//!
//! A [`Report`] groups records by kind, name and (for requests) method, and
//! keeps for each group what the records say about its cost: how many were
//! sampled, how many events they stand for, and for each [`Metric`] the
//! estimated total, the mean per event and exact per-sample quantiles. It is
//! what `dynostats report FILE...` (feature `cli`) prints, and what a
//! program reading records can build itself with [`Report::add`].
//!
//! The module is split by concern: [`Metric`] and its statistics in
//! `metric`, drops from status records in `drops`, the printed and
//! serialized [`Table`] in `table`, and the human units every output shares
//! in `format`.

mod drops;
mod format;
mod metric;
mod table;

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;

pub use drops::{Drops, SinkDrops};
pub use metric::{Metric, MetricStats};
pub use table::{SortBy, Table};

use drops::DropTally;
use metric::Values;

use crate::counters::Counter;
use crate::error::Error;
use crate::record::{Record, RecordKind};

/// The records of one kind, name and method (requests) in a [`Report`].
#[derive(Clone, Debug)]
pub struct Group {
    kind: RecordKind,
    name: String,
    method: Option<String>,
    sampled: u64,
    events: u128,
    cancelled: u64,
    errors: u64,
    forced: u64,
    metrics: [Values; 5],
}

impl Group {
    fn new(kind: RecordKind, name: &str, method: Option<&str>) -> Group {
        Group {
            kind,
            name: name.to_string(),
            method: method.map(str::to_string),
            sampled: 0,
            events: 0,
            cancelled: 0,
            errors: 0,
            forced: 0,
            metrics: Default::default(),
        }
    }

    fn add(&mut self, record: &Record) {
        if record.forced {
            self.forced += 1;
            return;
        }
        self.sampled += 1;
        self.events += u128::from(record.weight);
        self.cancelled += u64::from(record.cancelled);
        self.errors += u64::from(record.error.is_some());
        if record.cancelled || record.error.is_some() {
            return;
        }
        for metric in Metric::ALL {
            self.metrics[metric.index()].add(metric.value(record), record.weight);
        }
    }

    /// The records' kind.
    pub fn kind(&self) -> RecordKind {
        self.kind
    }

    /// The region name, or the request's route template.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The HTTP method (requests).
    pub fn method(&self) -> Option<&str> {
        self.method.as_deref()
    }

    /// Records picked by the sampler (forced ones excluded), whatever
    /// their outcome.
    pub fn sampled(&self) -> u64 {
        self.sampled
    }

    /// Estimated events: the sum of the sampled records' weights.
    pub fn events(&self) -> u128 {
        self.events
    }

    /// Sampled records marked `cancelled`.
    pub fn cancelled(&self) -> u64 {
        self.cancelled
    }

    /// Sampled records with an `error`.
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// Forced records (weight 0), left out of every other count.
    pub fn forced(&self) -> u64 {
        self.forced
    }

    /// The statistics of `metric` over the group's completed sampled
    /// records (neither cancelled nor failed).
    pub fn stats(&self, metric: Metric) -> MetricStats {
        self.metrics[metric.index()].stats()
    }

    /// `GET /users/{id}` for requests, the name otherwise.
    fn label(&self) -> String {
        match &self.method {
            Some(method) => format!("{method} {}", self.name),
            None => self.name.clone(),
        }
    }
}

/// Records aggregated per kind, name and method: what `dynostats report`
/// prints.
///
/// # How records count
///
/// - **Sampled** records (picked by the sampler) stand for `weight` events
///   each: estimated totals are `sum(weight * value)`, the mean per event
///   is that total divided by the weights of the records that carry the
///   value.
/// - **Forced** records (`forced: true`, [`crate::Region::forced`]) were not
///   picked by the sampler and have weight 0. They are counted in their own
///   column and left out of every statistic, so forcing the measurement of
///   a few interesting (slow, large) regions does not move the quantiles.
/// - **Cancelled** records and records with an **error** are sampled like
///   the rest (their weight counts in the estimated events) and counted in
///   their own columns, but left out of the metric statistics, which
///   describe completed work: a request cancelled half-way cost less than
///   one that finished.
/// - A counter absent from a record was not measured: the record is counted
///   in that metric's `absent` column, never as 0.
/// - **Status** records are not rows of the table. The drops they report
///   (queue full, after shutdown, per sink) are summed in [`Drops`] and
///   printed below the table.
///
/// # Example
///
/// ```
/// use dynostats::{report::Metric, Record, RecordKind, Report};
///
/// let mut report = Report::new();
/// for (cpu_ns, weight) in [(100, 10), (300, 10), (200, 1)] {
///     let mut r = Record::new(RecordKind::Region, "parse");
///     r.cpu_ns = Some(cpu_ns);
///     r.weight = weight;
///     report.add(&r);
/// }
/// let mut unmeasured = Record::new(RecordKind::Region, "parse");
/// unmeasured.weight = 10; // no cpu_ns: absent, not 0
/// report.add(&unmeasured);
///
/// let parse = report.groups().next().unwrap();
/// assert_eq!((parse.sampled(), parse.events()), (4, 31));
/// let cpu = parse.stats(Metric::CpuNs);
/// assert_eq!(cpu.total, 100 * 10 + 300 * 10 + 200);
/// assert_eq!(cpu.mean_per_event, Some(4200.0 / 21.0));
/// assert_eq!((cpu.p50, cpu.p99, cpu.absent), (Some(200), Some(300), 1));
/// // No record carries instructions: the table leads with CPU time.
/// assert_eq!(report.headline(), Metric::CpuNs);
/// println!("{report}");
/// ```
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Keyed by kind name, name and method, which is also the display
    /// order before sorting.
    groups: BTreeMap<(&'static str, String, Option<String>), Group>,
    records: u64,
    status_records: u64,
    drops: DropTally,
    unavailable: BTreeMap<String, String>,
}

impl Report {
    /// An empty report.
    pub fn new() -> Report {
        Report::default()
    }

    /// Reads every record of `reader` into a new report.
    ///
    /// Stops at the first damaged record (see [`crate::read`]) and returns
    /// the damage with the byte offset and the number of records read
    /// before it; to keep a report of those records, use
    /// [`Report::read_from`].
    pub fn from_reader(reader: impl Read) -> Result<Report, ReadError> {
        let mut report = Report::new();
        report.read_from(reader)?;
        Ok(report)
    }

    /// Adds every record of `reader` to the report and returns how many
    /// were read.
    ///
    /// Stops at the first damaged record, even one after which
    /// [`crate::read`] could go on: the error says how many records were
    /// added before it, and the report keeps them.
    pub fn read_from(&mut self, reader: impl Read) -> Result<u64, ReadError> {
        let mut records_read = 0;
        for record in crate::record::read(reader) {
            match record {
                Ok(record) => {
                    self.add(&record);
                    records_read += 1;
                }
                Err(error) => {
                    return Err(ReadError {
                        records_read,
                        error,
                    });
                }
            }
        }
        Ok(records_read)
    }

    /// Adds one record.
    pub fn add(&mut self, record: &Record) {
        self.records += 1;
        if record.kind == RecordKind::Status {
            self.status_records += 1;
            if let Some(detail) = &record.detail {
                self.drops.add(record.pid, detail);
                for (counter, state) in &detail.counters {
                    if state != "ok" {
                        self.unavailable
                            .entry(
                                counter
                                    .parse::<Counter>()
                                    .map_or_else(|_| counter.clone(), |c| c.name().to_string()),
                            )
                            .or_insert_with(|| state.clone());
                    }
                }
            }
            return;
        }
        let method = if record.kind == RecordKind::Request {
            record.method.as_deref().map(str::to_string)
        } else {
            None
        };
        let key = (record.kind.as_str(), record.name.to_string(), method);
        self.groups
            .entry(key)
            .or_insert_with_key(|(_, name, method)| {
                Group::new(record.kind, name, method.as_deref())
            })
            .add(record);
    }

    /// Records added, status records included.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The groups, ordered by kind, name and method.
    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }

    /// The group of `kind` and `name` (and `method`, for requests).
    pub fn group(&self, kind: RecordKind, name: &str, method: Option<&str>) -> Option<&Group> {
        let method = if kind == RecordKind::Request {
            method.map(str::to_string)
        } else {
            None
        };
        self.groups.get(&(kind.as_str(), name.to_string(), method))
    }

    /// Records the writers dropped, from the status records (see
    /// [`Drops`]).
    pub fn drops(&self) -> Drops {
        self.drops.totals(self.status_records)
    }

    /// Counters the status records say were unavailable, with the first
    /// reason given (e.g. `instructions` → `"no hardware PMU: ...
    /// (ENOENT)"`).
    pub fn unavailable(&self) -> &BTreeMap<String, String> {
        &self.unavailable
    }

    /// The metric the table leads with: [`Metric::Instructions`] when any
    /// completed sampled record carries instructions, else
    /// [`Metric::CpuNs`] (machines without a hardware PMU).
    pub fn headline(&self) -> Metric {
        let instructions = self
            .groups()
            .any(|g| !g.metrics[Metric::Instructions.index()].values.is_empty());
        if instructions {
            Metric::Instructions
        } else {
            Metric::CpuNs
        }
    }

    /// A table of the report, to print ([`fmt::Display`]) or serialize,
    /// sorted by the headline's estimated total.
    pub fn table(&self) -> Table<'_> {
        Table::new(self)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.table(), f)
    }
}

/// Damage met while reading records into a [`Report`].
#[derive(Debug)]
#[non_exhaustive]
pub struct ReadError {
    /// Records read before the damage.
    pub records_read: u64,
    /// The damage: [`Error::Truncated`] or [`Error::Decode`] with the byte
    /// offset of the damaged record, or [`Error::Io`].
    pub error: Error,
}

impl ReadError {
    /// The byte offset of the damaged record, when known.
    pub fn offset(&self) -> Option<u64> {
        match &self.error {
            Error::Truncated { offset } | Error::Decode { offset, .. } => Some(*offset),
            _ => None,
        }
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (after {} complete records; reading stopped there)",
            self.error, self.records_read
        )
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl From<ReadError> for Error {
    fn from(e: ReadError) -> Error {
        e.error
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Detail;
    use metric::nearest_rank;

    fn region(name: &str, weight: u64, instructions: Option<u64>) -> Record {
        let mut r = Record::new(RecordKind::Region, name);
        r.weight = weight;
        r.instructions = instructions;
        r
    }

    fn only_group(report: &Report) -> &Group {
        let groups: Vec<_> = report.groups().collect();
        assert_eq!(groups.len(), 1);
        groups[0]
    }

    #[test]
    fn totals_and_means_are_weighted() {
        let mut report = Report::new();
        for (weight, n) in [(100, 1_000), (100, 3_000), (1, 50_000)] {
            report.add(&region("r", weight, Some(n)));
        }
        let g = only_group(&report);
        assert_eq!((g.sampled(), g.events()), (3, 201));
        let s = g.stats(Metric::Instructions);
        assert_eq!(s.total, 100 * 1_000 + 100 * 3_000 + 50_000);
        assert_eq!(s.mean_per_event, Some(450_000.0 / 201.0));
        // Per sample, unweighted: the heavy records do not count more.
        assert_eq!((s.p50, s.p99), (Some(3_000), Some(50_000)));
    }

    #[test]
    fn absent_counters_are_counted_never_zero() {
        let mut report = Report::new();
        report.add(&region("r", 10, Some(500)));
        report.add(&region("r", 10, None));
        report.add(&region("r", 10, None));
        let s = only_group(&report).stats(Metric::Instructions);
        assert_eq!((s.samples, s.absent), (1, 2));
        assert_eq!(s.total, 5_000);
        // Were absent 0, the mean would be 5000 / 30 and the median 0.
        assert_eq!(s.mean_per_event, Some(500.0));
        assert_eq!(s.p50, Some(500));
        // Nothing carries cycles: no statistic at all.
        let cycles = only_group(&report).stats(Metric::Cycles);
        assert_eq!((cycles.samples, cycles.absent, cycles.total), (0, 3, 0));
        assert_eq!(
            (cycles.mean_per_event, cycles.p50, cycles.p99),
            (None, None, None)
        );
        assert_eq!(report.headline(), Metric::Instructions);
    }

    #[test]
    fn forced_records_are_counted_but_move_nothing() {
        let mut plain = Report::new();
        let mut with_forced = Report::new();
        for i in 1..=10 {
            plain.add(&region("r", 4, Some(i * 100)));
            with_forced.add(&region("r", 4, Some(i * 100)));
        }
        for _ in 0..5 {
            let mut forced = region("r", 0, Some(1_000_000_000));
            forced.forced = true;
            with_forced.add(&forced);
        }
        let (a, b) = (only_group(&plain), only_group(&with_forced));
        assert_eq!((b.forced(), b.sampled(), b.events()), (5, 10, 40));
        for metric in Metric::ALL {
            if metric != Metric::WallNs {
                assert_eq!(a.stats(metric), b.stats(metric), "{metric:?}");
            }
        }
        let s = b.stats(Metric::Instructions);
        assert_eq!((s.p50, s.p99, s.total), (Some(500), Some(1_000), 4 * 5_500));
    }

    #[test]
    fn cancelled_and_failed_records_are_counted_apart() {
        let mut report = Report::new();
        let mut ok = Record::new(RecordKind::Request, "/a");
        ok.method = Some("GET".into());
        ok.weight = 2;
        ok.cpu_ns = Some(1_000);
        report.add(&ok);
        let mut cancelled = ok.clone();
        cancelled.cancelled = true;
        cancelled.cpu_ns = Some(10);
        report.add(&cancelled);
        let mut failed = ok.clone();
        failed.error = Some("service_error".into());
        failed.cpu_ns = Some(20);
        report.add(&failed);
        let mut post = ok.clone();
        post.method = Some("POST".into());
        report.add(&post);

        let get = report
            .group(RecordKind::Request, "/a", Some("GET"))
            .unwrap();
        assert_eq!((get.sampled(), get.events()), (3, 6));
        assert_eq!((get.cancelled(), get.errors()), (1, 1));
        let cpu = get.stats(Metric::CpuNs);
        assert_eq!((cpu.samples, cpu.total, cpu.p99), (1, 2_000, Some(1_000)));
        let post = report
            .group(RecordKind::Request, "/a", Some("POST"))
            .unwrap();
        assert_eq!(post.sampled(), 1);
        assert_eq!(report.groups().count(), 2);
        // Only requests are split by method.
        let mut r = region("/a", 1, None);
        r.method = Some("GET".into());
        report.add(&r);
        report.add(&region("/a", 1, None));
        let a = report.group(RecordKind::Region, "/a", Some("GET")).unwrap();
        assert_eq!((a.sampled(), a.method()), (2, None));
    }

    #[test]
    fn rss_change_is_signed_and_needs_both_ends() {
        let mut report = Report::new();
        let mut grew = region("r", 1, None);
        grew.rss_start = Some(1 << 20);
        grew.rss_end = Some(3 << 20);
        let mut shrank = grew.clone();
        std::mem::swap(&mut shrank.rss_start, &mut shrank.rss_end);
        let mut half = grew.clone();
        half.rss_end = None;
        for r in [&grew, &shrank, &shrank, &half] {
            report.add(r);
        }
        let s = only_group(&report).stats(Metric::RssChange);
        assert_eq!((s.samples, s.absent), (3, 1));
        assert_eq!(s.total, -(2 << 20));
        assert_eq!((s.p50, s.p99), (Some(-(2 << 20)), Some(2 << 20)));
    }

    /// The naive definition: the smallest value with at least `percent`%
    /// of the values at or below it.
    fn naive_percentile(values: &[i64], percent: u64) -> Option<i64> {
        let n = values.len() as u64;
        let mut candidates: Vec<i64> = values.to_vec();
        candidates.sort_unstable();
        candidates
            .into_iter()
            .find(|&v| values.iter().filter(|&&x| x <= v).count() as u64 * 100 >= percent * n)
    }

    #[test]
    fn quantiles_match_the_naive_definition() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for n in (0..=130).chain([199, 200, 201, 1000]) {
            // Small ranges give many ties; wide ones none.
            let range = if n % 2 == 0 { 7 } else { 1_000_000 };
            let values: Vec<i64> = (0..n)
                .map(|_| (next() % range) as i64 - range as i64 / 2)
                .collect();
            let mut report = Report::new();
            for &v in &values {
                let mut r = region("q", 1, None);
                r.rss_start = Some(1 << 40);
                r.rss_end = Some(((1i64 << 40) + v) as u64);
                report.add(&r);
            }
            let stats = report
                .groups()
                .next()
                .map(|g| g.stats(Metric::RssChange))
                .unwrap_or_default();
            assert_eq!(stats.p50, naive_percentile(&values, 50), "n {n}");
            assert_eq!(stats.p99, naive_percentile(&values, 99), "n {n}");
            for percent in [0, 1, 25, 50, 90, 99, 100] {
                let mut sorted = values.clone();
                sorted.sort_unstable();
                let expected = naive_percentile(&values, percent);
                assert_eq!(nearest_rank(&sorted, percent), expected, "n {n} p{percent}");
            }
        }
    }

    fn status(pid: u32, queue_full: u64, sink_error: u64) -> Record {
        let mut r = Record::new(RecordKind::Status, "dynostats");
        r.weight = 0;
        r.pid = pid;
        let mut detail = Detail::default();
        detail
            .counters
            .insert("instructions".into(), "no hardware PMU (ENOENT)".into());
        detail.counters.insert("cpu_time".into(), "ok".into());
        detail
            .stats
            .insert("records_dropped_queue_full".into(), queue_full);
        detail.stats.insert("records_dropped_closed".into(), 0);
        detail.sinks.insert(
            "file:/x".into(),
            [("records_dropped_sink_error".to_string(), sink_error)].into(),
        );
        r.detail = Some(detail);
        r
    }

    #[test]
    fn old_and_new_status_counter_names_are_one_counter() {
        let mut report = Report::new();
        for name in ["wall_time", "wall_ns"] {
            let mut r = status(9, 0, 0);
            let counters = &mut r.detail.as_mut().unwrap().counters;
            counters.insert(name.into(), format!("refused as {name}"));
            report.add(&r);
        }
        // The first reason is kept, under the record field's name.
        let unavailable = report.unavailable();
        assert_eq!(
            unavailable.get("wall_ns").map(String::as_str),
            Some("refused as wall_time")
        );
        assert!(!unavailable.contains_key("wall_time"));
    }

    #[test]
    fn status_records_give_drops_and_are_not_rows() {
        let mut report = Report::new();
        report.add(&region("r", 1, None));
        assert!(report.to_string().contains("no status records"));
        // Cumulative counts: the largest per process, in any order.
        for r in [
            status(7, 3, 0),
            status(7, 9, 2),
            status(7, 5, 1),
            status(8, 1, 0),
        ] {
            report.add(&r);
        }
        assert_eq!(report.groups().count(), 1);
        assert_eq!(report.records(), 5);
        let drops = report.drops();
        assert_eq!((drops.status_records, drops.queue_full), (4, 10));
        assert_eq!(drops.sinks["file:/x"].sink_error, 2);
        assert!(drops.any());
        let text = report.to_string();
        assert!(
            text.contains("WARNING: the writer dropped records"),
            "{text}"
        );
        assert!(text.contains("10 (queue full)"), "{text}");
        assert!(text.contains("sink file:/x dropped 2 records"), "{text}");
        assert!(
            text.contains("unavailable: instructions: no hardware PMU"),
            "{text}"
        );
        assert!(!text.contains("cpu_time:"), "{text}");
        assert!(!text.contains("cpu_ns:"), "{text}");

        let mut clean = Report::new();
        clean.add(&status(7, 0, 0));
        assert!(!clean.drops().any());
        assert!(clean.to_string().contains("no records dropped"));
    }

    #[test]
    fn the_table_labels_its_headline_and_sorts() {
        let mut report = Report::new();
        for (name, cpu, weight) in [
            ("small", 1_000, 1_000),
            ("big", 2_000_000, 1),
            ("mid", 50_000, 100),
        ] {
            let mut r = region(name, weight, None);
            r.cpu_ns = Some(cpu);
            report.add(&r);
        }
        let text = report.to_string();
        assert!(text.starts_with("headline: CPU time (cpu_ns): no record carries instructions"));
        let order = |text: &str| -> Vec<String> {
            text.lines()
                .filter(|l| l.starts_with("region"))
                .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
                .collect()
        };
        // Totals: small 1 ms, big 2 ms, mid 5 ms.
        assert_eq!(order(&text), ["mid", "big", "small"]);
        let by_p50 = report.table().sort(SortBy::P50).to_string();
        assert_eq!(order(&by_p50), ["big", "mid", "small"]);
        let by_name = report.table().sort(SortBy::Name).to_string();
        assert_eq!(order(&by_name), ["big", "mid", "small"]);
        let mid = text.lines().find(|l| l.starts_with("region  mid")).unwrap();
        let cells: Vec<&str> = mid
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        // sampled, events, cancelled, errors, forced, total, /event, p50.
        assert_eq!(
            &cells[2..10],
            ["1", "100", "0", "0", "0", "5.00 ms", "50.0 µs", "50.0 µs"]
        );
        assert!(
            report
                .table()
                .kind(Some(RecordKind::Request))
                .to_string()
                .contains("(no records)")
        );

        report.add(&region("instr", 1, Some(12_345_678)));
        let text = report.to_string();
        assert!(text.starts_with("headline: instructions"), "{text}");
        assert!(text.contains("12.3M"), "{text}");
    }

    #[test]
    fn reading_stops_at_damage_and_says_how_far_it_got() {
        let mut bytes = Vec::new();
        for i in 0..3 {
            bytes.extend(region("r", 1, Some(i)).to_msgpack());
        }
        let good = bytes.len() as u64;
        bytes.extend_from_slice(&region("r", 1, Some(9)).to_msgpack()[..5]);
        let mut report = Report::new();
        let err = report.read_from(&bytes[..]).unwrap_err();
        assert_eq!((err.records_read, err.offset()), (3, Some(good)));
        assert!(matches!(err.error, Error::Truncated { .. }));
        assert!(err.to_string().contains(&format!("offset {good}")), "{err}");
        assert_eq!(only_group(&report).sampled(), 3);
        assert_eq!(Report::from_reader(&bytes[..]).unwrap_err().records_read, 3);

        // A well-formed map that is not a record also stops the report.
        let mut mixed = bytes[..good as usize].to_vec();
        mixed.extend_from_slice(&[0x81, 0xa4, b'n', b'a', b'm', b'e', 0x05]);
        mixed.extend(region("r", 1, Some(1)).to_msgpack());
        let err = Report::from_reader(&mixed[..]).unwrap_err();
        assert_eq!((err.records_read, err.offset()), (3, Some(good)));
        assert!(matches!(err.error, Error::Decode { .. }));

        let whole = Report::from_reader(&bytes[..good as usize]).unwrap();
        assert_eq!(whole.records(), 3);
    }
}
