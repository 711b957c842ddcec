//! [`PipelineBuilder`]: a pipeline's settings, and starting its writer.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crossbeam_queue::ArrayQueue;

use super::stats::SinkStats;
use super::{Pipeline, Shared, SinkShared, summary, writer};
use crate::error::{ConfigError, ConfigErrorKind, Error};
use crate::record::Labels;
use crate::sink::Sink;
use crate::sys;

/// Settings of a [`Pipeline`].
///
/// ```
/// use std::time::Duration;
/// use dynostats::{sink::MemorySink, Pipeline};
///
/// let pipeline = Pipeline::builder()
///     .sink(MemorySink::new())
///     .queue_capacity(4096)
///     .batch_size(256)
///     .batch_interval(Duration::from_millis(50))
///     .status_interval(Some(Duration::from_secs(30)))
///     .label("host", "web-1")
///     .build()
///     .unwrap();
/// assert_eq!(pipeline.stats().queue_capacity, 4096);
/// ```
#[must_use]
pub struct PipelineBuilder {
    sinks: Vec<Box<dyn Sink>>,
    capacity: usize,
    batch_size: usize,
    batch_interval: Duration,
    status_interval: Option<Duration>,
    labels: Labels,
    sink_backlog: Option<u64>,
    /// The summary's interval, where its lines go, and the setting named
    /// by a configuration error.
    summary: Option<(Duration, summary::Output, &'static str)>,
}

impl fmt::Debug for PipelineBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineBuilder")
            .field(
                "sinks",
                &self.sinks.iter().map(|s| s.name()).collect::<Vec<_>>(),
            )
            .field("capacity", &self.capacity)
            .field("batch_size", &self.batch_size)
            .field("batch_interval", &self.batch_interval)
            .field("status_interval", &self.status_interval)
            .field("labels", &self.labels)
            .field("summary", &self.summary.as_ref().map(|(every, ..)| every))
            .finish()
    }
}

impl Default for PipelineBuilder {
    fn default() -> Self {
        PipelineBuilder {
            sinks: Vec::new(),
            capacity: Pipeline::DEFAULT_QUEUE_CAPACITY,
            batch_size: Pipeline::DEFAULT_BATCH_SIZE,
            batch_interval: Pipeline::DEFAULT_BATCH_INTERVAL,
            status_interval: Some(Pipeline::DEFAULT_STATUS_INTERVAL),
            labels: Labels::default(),
            sink_backlog: None,
            summary: None,
        }
    }
}

impl PipelineBuilder {
    /// Adds a sink; every record goes to every sink.
    pub fn sink(mut self, sink: impl Sink) -> Self {
        self.sinks.push(Box::new(sink));
        self
    }

    /// Queue capacity in records ([`Pipeline::DEFAULT_QUEUE_CAPACITY`]); when the
    /// queue is full, records are dropped and counted. The queue is
    /// allocated up front, one `Record` (about 450 bytes) per slot.
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// The most records the writer hands to the sinks at once
    /// ([`Pipeline::DEFAULT_BATCH_SIZE`]); a measured thread wakes the writer early
    /// when this many records (or half the queue) are waiting.
    pub fn batch_size(mut self, records: usize) -> Self {
        self.batch_size = records;
        self
    }

    /// How often the writer wakes up to write what is queued
    /// ([`Pipeline::DEFAULT_BATCH_INTERVAL`]): the longest a record waits when few
    /// are emitted.
    pub fn batch_interval(mut self, interval: Duration) -> Self {
        self.batch_interval = interval;
        self
    }

    /// How often the writer writes a status record
    /// ([`Pipeline::DEFAULT_STATUS_INTERVAL`]); one is also written at start and at
    /// shutdown. `None` writes no status record at all.
    pub fn status_interval(mut self, interval: Option<Duration>) -> Self {
        self.status_interval = interval;
        self
    }

    /// A label added by the writer to every record that does not carry
    /// this key already (host, build, region ...): it costs the measured
    /// threads nothing. Bounded by the one label rule ([`Labels::insert`]).
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key, value);
        self
    }

    /// How many records may wait for one sink (handed to its thread, not
    /// yet written) before the writer drops that sink's copies of new
    /// batches, counted in [`SinkStats::dropped_sink_full`] for that sink
    /// alone: a stalled sink never holds the others up. By default the
    /// queue capacity (or the batch size, if larger). At shutdown no copy
    /// is dropped this way.
    pub fn sink_backlog(mut self, records: u64) -> Self {
        self.sink_backlog = Some(records);
        self
    }

    /// Logs one line every `interval` while the service runs: the requests
    /// sampled in the interval and what the costliest endpoints cost per
    /// request, in instructions, or in CPU time where no record carries
    /// instructions (the line says which). Off by default.
    ///
    /// ```text
    /// dynostats: 1,204 requests sampled (standing for 12,040) in the last 60 s; instructions per request: POST /orders 4.51 M (210 sampled), GET /users/{id} 812 k (733 sampled), GET /search 2.10 M (61 sampled), and 4 more
    /// ```
    ///
    /// The line goes to `tracing` at INFO, target `dynostats`, when the
    /// feature `tracing` is on and a global subscriber is installed; else
    /// to stderr. [`summary_to`](Self::summary_to) hands it to a function
    /// instead. The writer thread, which takes every record off the queue
    /// anyway, sums them per endpoint: the measured threads do nothing
    /// more. Endpoints are request records by method and route; an interval
    /// without request records sums region records (guards, measured
    /// futures) by name instead. Costs are means over the sampled records;
    /// endpoints are ordered by their interval's total (mean times the
    /// requests the samples stand for). At shutdown, the interval so far is
    /// logged if anything was sampled in it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use dynostats::{sink::MemorySink, Pipeline};
    ///
    /// let pipeline = Pipeline::builder()
    ///     .sink(MemorySink::new())
    ///     .log_summary(Duration::from_secs(60))
    ///     .build()
    ///     .unwrap();
    /// # drop(pipeline);
    /// ```
    pub fn log_summary(mut self, interval: Duration) -> Self {
        self.summary = Some((
            interval,
            summary::Output::Log,
            "PipelineBuilder::log_summary",
        ));
        self
    }

    /// Like [`log_summary`](Self::log_summary), but hands each line to `f`
    /// (on the writer thread; keep it short): for a service that logs
    /// through something else than `tracing`, or a test.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use std::time::Duration;
    /// use dynostats::{sink::MemorySink, Pipeline, Record, RecordKind};
    ///
    /// let (tx, lines) = mpsc::channel();
    /// let pipeline = Pipeline::builder()
    ///     .sink(MemorySink::new())
    ///     .summary_to(Duration::from_secs(60), move |line| {
    ///         let _ = tx.send(line.to_string());
    ///     })
    ///     .build()
    ///     .unwrap();
    /// let mut record = Record::new(RecordKind::Request, "/users/{id}");
    /// record.instructions = Some(120_000);
    /// pipeline.emit(record);
    /// pipeline.shutdown().unwrap(); // logs the interval so far
    /// let line = lines.recv().unwrap();
    /// assert!(line.starts_with("dynostats: 1 request sampled in the last"), "{line}");
    /// assert!(line.ends_with("instructions per request: /users/{id} 120 k (1 sampled)"), "{line}");
    /// ```
    pub fn summary_to(mut self, interval: Duration, f: impl FnMut(&str) + Send + 'static) -> Self {
        self.summary = Some((
            interval,
            summary::Output::Call(Box::new(f)),
            "PipelineBuilder::summary_to",
        ));
        self
    }

    /// Starts the writer thread, and one thread per sink.
    ///
    /// Fails when there is no sink, the capacity or batch size is 0, or the
    /// thread cannot be started.
    pub fn build(self) -> Result<Pipeline, Error> {
        let invalid = |setting, kind| Err(Error::from(ConfigError::new(setting, kind)));
        if self.sinks.is_empty() {
            return invalid("PipelineBuilder::sink", ConfigErrorKind::Missing);
        }
        for (setting, zero) in [
            ("PipelineBuilder::queue_capacity", self.capacity == 0),
            ("PipelineBuilder::batch_size", self.batch_size == 0),
            (
                "PipelineBuilder::batch_interval",
                self.batch_interval.is_zero(),
            ),
            (
                "PipelineBuilder::status_interval",
                self.status_interval == Some(Duration::ZERO),
            ),
            (
                "PipelineBuilder::sink_backlog",
                self.sink_backlog == Some(0),
            ),
        ] {
            if zero {
                return invalid(setting, ConfigErrorKind::Zero);
            }
        }
        if let Some((every, _, setting)) = &self.summary {
            if every.is_zero() {
                return invalid(setting, ConfigErrorKind::Zero);
            }
        }
        let (control_tx, control_rx) = crossbeam_channel::unbounded();
        let names = unique_names(&self.sinks);
        let shared = Arc::new(Shared {
            queue: ArrayQueue::new(self.capacity),
            closed: AtomicBool::new(false),
            pushing: AtomicUsize::new(0),
            control: control_tx,
            writer: OnceLock::new(),
            wake_at: self.batch_size.min(self.capacity.div_ceil(2)).max(1),
            generation: sys::fork_generation(),
            wake_sent: AtomicBool::new(false),
            accepted: AtomicU64::new(0),
            dropped_queue_full: AtomicU64::new(0),
            dropped_closed: AtomicU64::new(0),
            status_records: AtomicU64::new(0),
            capacity: self.capacity,
            sinks: names
                .into_iter()
                .map(|name| {
                    Arc::new(SinkShared {
                        stats: Mutex::new(SinkStats {
                            name,
                            ..SinkStats::default()
                        }),
                        backlog: AtomicU64::new(0),
                    })
                })
                .collect(),
        });
        let writer = writer::Writer::new(
            control_rx,
            self.sinks,
            writer::Settings {
                batch_size: self.batch_size,
                batch_interval: self.batch_interval,
                status_interval: self.status_interval,
                labels: self.labels,
                sink_backlog: self
                    .sink_backlog
                    .unwrap_or(self.capacity.max(self.batch_size) as u64),
                summary: self
                    .summary
                    .map_or_else(summary::Summary::off, |(every, output, _)| {
                        summary::Summary::every(every, output)
                    }),
            },
            Arc::clone(&shared),
        )?;
        let handle = std::thread::Builder::new()
            .name("dynostats-writer".to_string())
            .spawn(move || writer.run())
            .map_err(|source| Error::Io {
                context: "starting the dynostats writer thread".to_string(),
                source,
            })?;
        let _ = shared.writer.set(handle.thread().clone());
        Ok(Pipeline {
            shared,
            writer: Mutex::new(Some(handle)),
        })
    }
}

/// Sink names, with `#2`, `#3` ... appended to repeats.
fn unique_names(sinks: &[Box<dyn Sink>]) -> Vec<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    sinks
        .iter()
        .map(|sink| {
            let name = sink.name();
            let n = seen.entry(name.clone()).or_insert(0);
            *n += 1;
            if *n == 1 { name } else { format!("{name}#{n}") }
        })
        .collect()
}
