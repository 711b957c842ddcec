//! Answers from records: what each endpoint, region and function costs,
//! what changed, and when; in memory bounded by the number of groups, not
//! of records.
//!
//! Records flow from a *source* into *summaries*, summaries into
//! *answers*, answers into *output*:
//!
//! - **Sources**: anything that hands over [`Record`]s:
//!   the streaming file reader ([`RecordReader`]),
//!   a program's own records. Every summary implements [`Summarize`], so
//!   one read loop serves them all ([`Summarize::read_from`]).
//! - **Summaries**, mergeable per group: [`Report`] (counts, events, per
//!   [`Metric`] the weighted total and a quantile [`Sketch`]), one
//!   [`compare::Side`] (per group the weighted [`Moments`] of
//!   `docs/compare.md`), a [`timeseries::Timeseries`] (the same moments per
//!   window of time), [`profiles::Profiles`] (call trees summed per scope,
//!   edge and path).
//! - **Answers**: the report's [`Table`]; [`compare::compare`] (intervals
//!   of the relative delta, the mix-adjusted overall figure, the deploy
//!   gate); [`timeseries::Timeseries::analyse`] (windows and alerts); the
//!   top table and folded stacks of [`profiles`].
//! - **Output**: [`output`]: the one JSON writer, the one CSV writer
//!   (formula guard, control bytes escaped), human units and the one way
//!   names are made safe to print, used by every answer.
//!
//! # Bounded memory
//!
//! Per group a report holds a few counters and one [`Sketch`] per metric
//! (exact up to [`Sketch::EXACT_MAX`] distinct values, then log-linear
//! buckets within [`Sketch::RELATIVE_ERROR`]); the number of groups is
//! capped ([`ReportBuilder::max_groups`], [`Report::DEFAULT_MAX_GROUPS`]):
//! records of further groups are folded into one `<other>` group per kind,
//! and counted ([`Report::folded`]). [`Report::heap_bytes`] is the report's
//! own account of what it holds.
//!
//! # Example
//!
//! ```
//! use dynostats::report::{Metric, Summarize};
//! use dynostats::{Record, RecordKind, Report};
//!
//! let mut bytes = Vec::new();
//! for cpu_ns in [100, 200, 300] {
//!     let mut r = Record::new(RecordKind::Region, "parse");
//!     r.cpu_ns = Some(cpu_ns);
//!     bytes.extend(r.to_msgpack());
//! }
//! let mut report = Report::new();
//! let damage = report.read_from(&bytes[..]);
//! assert_eq!(damage.records, 3);
//! let parse = report.groups().next().unwrap();
//! assert_eq!(parse.stats(Metric::CpuNs).p50, Some(200));
//! ```

pub mod compare;
mod drops;
mod filter;
mod grid;
mod groups;
mod metric;
pub mod output;
pub mod profiles;
mod side;
mod sketch;
mod stats;
mod summary;
mod table;
pub mod timeseries;

use std::io::Read;

pub use drops::{Drops, SinkDrops};
pub use groups::{Group, Report, ReportBuilder, Split};
pub use metric::{Bound, Metric, MetricStats};
pub use output::{Format, TextStyle};
pub use sketch::Sketch;
pub use stats::{Interval, Moments};
pub use summary::Summary;
#[cfg(feature = "clickhouse")]
pub(crate) use summary::Values;
pub use table::{SortBy, Table};

use crate::record::{Damage, Record, RecordReader};

/// What consumes records into summaries: a [`Report`], one
/// [`compare::Side`], a [`timeseries::Timeseries`], [`profiles::Profiles`].
///
/// A summary says how to take one record ([`Summarize::add`]); reading a
/// stream of them ([`Summarize::read_from`], [`Summarize::read_records`])
/// is the same for every summary, so every source (a file, standard
/// input, a decompressor, a program's own records) feeds every answer.
///
/// ```
/// use dynostats::report::Summarize;
/// use dynostats::report::compare::Side;
/// use dynostats::{Record, RecordKind, Report};
///
/// /// Reads the same bytes into any summary.
/// fn read(into: &mut impl Summarize, bytes: &[u8]) -> u64 {
///     into.read_from(bytes).records
/// }
/// let bytes = Record::new(RecordKind::Region, "a").to_msgpack();
/// assert_eq!(read(&mut Report::new(), &bytes), 1);
/// assert_eq!(read(&mut Side::new(), &bytes), 1);
/// ```
pub trait Summarize {
    /// Adds one record.
    fn add(&mut self, record: &Record);

    /// Whether [`Summarize::add`] looks at labels (label filters, splits
    /// by label). When it does not, the reader skips decoding them: labels
    /// cost allocations. True unless the summary says otherwise.
    fn needs_labels(&self) -> bool {
        true
    }

    /// Adds every record of `reader` (a reader already set up, e.g. with
    /// another record size limit) and returns what the reader met besides
    /// records: [`Damage`], with the count of records read. Skipped
    /// records cost only themselves; framing damage or an I/O error ends
    /// the reading ([`Damage::cut`]), and the summary keeps every record
    /// before it.
    fn read_records<R: Read>(&mut self, reader: RecordReader<R>) -> Damage
    where
        Self: Sized,
    {
        reader
            .skip_labels(!self.needs_labels())
            .for_each_record(|record| self.add(record))
    }

    /// [`Summarize::read_records`] with the default reader.
    fn read_from(&mut self, reader: impl Read) -> Damage
    where
        Self: Sized,
    {
        self.read_records(RecordReader::new(reader))
    }
}
