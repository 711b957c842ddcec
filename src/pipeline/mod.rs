//! The shipping pipeline: a bounded queue, one background writer, sinks.
//!
//! Measured threads hand records to [`emit`] (or [`Pipeline::emit`]),
//! which pushes them on a bounded lock-free queue: it never blocks and
//! never does I/O, and when the queue is full the record is dropped and
//! counted. One writer thread per pipeline takes records off the queue,
//! encodes them as MessagePack in batches and hands each batch to every
//! [`Sink`]. The writer wakes up every batch interval, or as soon as a
//! batch's worth of records is waiting; a measured thread does not wake it
//! for every record (a wake-up is a system call).
//!
//! # Which pipeline receives a record
//!
//! [`emit`] sends to the pipeline in force on the calling thread:
//!
//! 1. a thread-scoped override ([`Pipeline::scoped`] or
//!    [`Pipeline::in_scope`]), which keeps tests independent of each other;
//! 2. else the global pipeline, installed once with [`install`];
//! 3. else nothing: the record is dropped and `emit` returns `false`. Until
//!    a pipeline is installed or scoped, this costs one branch.
//!
//! # Shutdown
//!
//! [`Pipeline::shutdown`] (called by `Drop` too) stops accepting records,
//! writes everything accepted before, flushes the sinks and joins the
//! writer: nothing accepted is lost. A global pipeline lives in a `static`
//! and is never dropped: call `dynostats::global_pipeline().map(|p|
//! p.shutdown())` before the process exits.

#[cfg(test)]
pub(crate) mod test_records;
mod writer;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, TryLockError};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;
use crossbeam_queue::ArrayQueue;

use crate::sink::Sink;
use crate::{Error, Record};

/// Default queue capacity, in records.
pub const DEFAULT_QUEUE_CAPACITY: usize = 8192;
/// Default largest number of records the writer hands to a sink at once.
pub const DEFAULT_BATCH_SIZE: usize = 512;
/// Default interval at which the writer wakes up to write what is queued.
pub const DEFAULT_BATCH_INTERVAL: Duration = Duration::from_millis(100);
/// Default interval between status records.
pub const DEFAULT_STATUS_INTERVAL: Duration = Duration::from_secs(60);

/// Set once any pipeline has been installed or scoped: until then [`emit`]
/// is one branch.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// The installed pipeline, leaked so that it can be handed out as
/// `&'static`. Replaced only in a forked child, where the parent's pipeline
/// has no writer thread.
static GLOBAL: RwLock<Option<&'static Pipeline>> = RwLock::new(None);

thread_local! {
    static SCOPED: RefCell<Option<Arc<Shared>>> = const { RefCell::new(None) };
}

/// Hands `record` to the pipeline in force on this thread (a thread-scoped
/// override, else the global pipeline). Never blocks and never does I/O:
/// when the queue is full the record is dropped and counted. Returns
/// whether the record was accepted; with no pipeline installed it is a
/// no-op that returns `false`.
///
/// ```
/// use dynostats::{MemorySink, Pipeline, Record, RecordKind};
///
/// // Nothing installed on this thread: dropped.
/// assert!(!dynostats::emit(Record::new(RecordKind::Region, "early")));
///
/// let mem = MemorySink::new();
/// let pipeline = Pipeline::builder().sink(mem.clone()).build().unwrap();
/// pipeline.in_scope(|| {
///     assert!(dynostats::emit(Record::new(RecordKind::Region, "scoped")));
/// });
/// pipeline.flush().unwrap();
/// assert_eq!(mem.records_of(RecordKind::Region)[0].name, "scoped");
/// ```
#[inline]
pub fn emit(record: Record) -> bool {
    if !ACTIVE.load(Ordering::Relaxed) {
        return false;
    }
    emit_slow(record)
}

#[cold]
fn emit_slow(record: Record) -> bool {
    let mut record = Some(record);
    let scoped = SCOPED
        .try_with(|cell| match cell.try_borrow() {
            Ok(slot) => slot
                .as_ref()
                .map(|shared| shared.emit(record.take().expect("taken once"))),
            Err(_) => None,
        })
        .ok()
        .flatten();
    if let Some(accepted) = scoped {
        return accepted;
    }
    match (global_pipeline(), record) {
        (Some(pipeline), Some(record)) => pipeline.emit(record),
        _ => false,
    }
}

/// Whether any pipeline was ever installed or scoped in this process: when
/// not, a sampled region need not even read its counters.
#[inline]
pub(crate) fn is_active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// Installs `pipeline` as the process-wide pipeline that [`emit`] sends to
/// (unless a thread has a scoped override). Works once: a second call
/// returns an error holding the pipeline it was given.
///
/// After `fork`, the child has no writer thread (threads do not survive
/// `fork`): the parent's pipeline refuses records there (counted as
/// `dropped_closed`), and the child may install a pipeline of its own.
/// Pre-fork servers should install one in each worker after forking.
///
/// ```no_run
/// use dynostats::{FileSink, Pipeline};
///
/// let file = FileSink::create("/var/log/app/dynostats.msgpack").unwrap();
/// let pipeline = Pipeline::builder().sink(file).build().unwrap();
/// let installed = dynostats::install(pipeline).unwrap();
/// // ... serve ...
/// installed.shutdown().unwrap();
/// ```
pub fn install(pipeline: Pipeline) -> Result<&'static Pipeline, InstallError> {
    let mut global = GLOBAL.write().unwrap_or_else(PoisonError::into_inner);
    if global.is_some_and(|installed| !installed.shared.is_forked()) {
        return Err(InstallError(pipeline));
    }
    // Never dropped: a global pipeline is shut down explicitly, and one
    // inherited from a parent process must not be (its writer thread is
    // not in this process).
    let installed: &'static Pipeline = Box::leak(Box::new(pipeline));
    *global = Some(installed);
    ACTIVE.store(true, Ordering::Relaxed);
    Ok(installed)
}

/// The pipeline installed with [`install`], if any (in a forked child,
/// possibly the parent's, which refuses records).
pub fn global_pipeline() -> Option<&'static Pipeline> {
    *GLOBAL.read().unwrap_or_else(PoisonError::into_inner)
}

/// The error of a second [`install`]: it holds the pipeline that was not
/// installed.
pub struct InstallError(Pipeline);

impl InstallError {
    /// The pipeline that was not installed.
    pub fn into_inner(self) -> Pipeline {
        self.0
    }
}

impl fmt::Debug for InstallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InstallError(..)")
    }
}

impl fmt::Display for InstallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a global dynostats pipeline is already installed")
    }
}

impl std::error::Error for InstallError {}

/// Counts of what happened to records, read with [`Pipeline::stats`].
///
/// Once [`Pipeline::flush`] has returned, for every sink
/// `accepted + status_records == written + dropped_sink_error` (counting
/// the records accepted before the flush).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PipelineStats {
    /// Records accepted on the queue.
    pub accepted: u64,
    /// Records dropped because the queue was full.
    pub dropped_queue_full: u64,
    /// Records dropped because the pipeline was shut down (or its writer
    /// stopped).
    pub dropped_closed: u64,
    /// Status records the writer produced (written like any other record).
    pub status_records: u64,
    /// Queue capacity, in records.
    pub queue_capacity: u64,
    /// One entry per sink, in the order they were added.
    pub sinks: Vec<SinkStats>,
}

/// What happened to the records handed to one sink.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SinkStats {
    /// The sink's name (made unique within the pipeline).
    pub name: String,
    /// Records the sink accepted.
    pub written: u64,
    /// Bytes of the records the sink accepted.
    pub bytes_written: u64,
    /// Records lost because the sink returned an error (or panicked).
    pub dropped_sink_error: u64,
    /// Records the sink accepted and later dropped by itself
    /// ([`Sink::dropped`]).
    pub dropped_by_sink: u64,
    /// Number of failed `write_batch` or `flush` calls.
    pub errors: u64,
    /// The last error, if any.
    pub last_error: Option<String>,
}

/// What the measured threads and the writer share.
struct Shared {
    queue: ArrayQueue<Record>,
    /// True once shut down. Emitters hold the read lock while pushing, so
    /// once shutdown has taken the write lock no record can arrive after
    /// the writer's last drain.
    closed: RwLock<bool>,
    control: Sender<Control>,
    /// Queue length at which an emitter wakes the writer early.
    wake_at: usize,
    /// The fork generation the writer thread runs in: in a forked child
    /// there is no writer, and no lock may be taken (another thread of the
    /// parent may have held it at the fork).
    generation: u64,
    /// A wake-up was sent and the writer has not drained since.
    wake_sent: AtomicBool,
    accepted: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_closed: AtomicU64,
    status_records: AtomicU64,
    capacity: usize,
    sinks: Mutex<Vec<SinkStats>>,
}

enum Control {
    /// A batch's worth of records is waiting.
    Wake,
    /// Write everything queued, flush the sinks, then answer.
    Flush(Sender<Result<(), Error>>),
    /// Write everything queued, then stop (the queue is closed already).
    Shutdown,
}

impl Shared {
    /// Whether this process is a fork of the one the writer runs in.
    fn is_forked(&self) -> bool {
        crate::sys::fork_generation() != self.generation
    }

    fn emit(&self, record: Record) -> bool {
        if self.is_forked() {
            self.dropped_closed.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let closed = self.closed.read().unwrap_or_else(PoisonError::into_inner);
        if *closed {
            self.dropped_closed.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if self.queue.push(record).is_err() {
            self.dropped_queue_full.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.accepted.fetch_add(1, Ordering::Relaxed);
        if self.queue.len() >= self.wake_at && !self.wake_sent.swap(true, Ordering::AcqRel) {
            // The writer holds `Shared`, so the channel is open while it
            // runs; if it stopped, its records are counted at shutdown.
            let _ = self.control.send(Control::Wake);
        }
        true
    }

    fn sink_stats(&self) -> Vec<SinkStats> {
        match self.sinks.try_lock() {
            Ok(sinks) => sinks.clone(),
            Err(TryLockError::Poisoned(p)) => p.into_inner().clone(),
            // In a forked child the writer that held the lock is gone.
            Err(TryLockError::WouldBlock) if self.is_forked() => Vec::new(),
            Err(TryLockError::WouldBlock) => self
                .sinks
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }

    fn stats(&self) -> PipelineStats {
        PipelineStats {
            accepted: self.accepted.load(Ordering::Relaxed),
            dropped_queue_full: self.dropped_queue_full.load(Ordering::Relaxed),
            dropped_closed: self.dropped_closed.load(Ordering::Relaxed),
            status_records: self.status_records.load(Ordering::Relaxed),
            queue_capacity: self.capacity as u64,
            sinks: self.sink_stats(),
        }
    }
}

/// A bounded queue, a background writer thread and its sinks.
///
/// Build one with [`Pipeline::builder`], then either [`install`] it for the
/// whole process, or scope it to a thread ([`Pipeline::scoped`]), or call
/// [`Pipeline::emit`] directly. Dropping the pipeline shuts it down
/// gracefully (see [`Pipeline::shutdown`]).
///
/// ```
/// use dynostats::{MemorySink, Pipeline, RecordKind};
///
/// let mem = MemorySink::new();
/// let pipeline = Pipeline::builder().sink(mem.clone()).queue_capacity(1024).build().unwrap();
/// {
///     let _scope = pipeline.scoped();
///     dynostats::Region::forced("startup").run(|| (0..1000u64).sum::<u64>());
/// }
/// let stats = pipeline.shutdown().unwrap();
/// assert_eq!(stats.accepted, 1);
/// assert_eq!(mem.records_of(RecordKind::Region)[0].name, "startup");
/// ```
pub struct Pipeline {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("stats", &self.shared.stats())
            .finish()
    }
}

impl Pipeline {
    /// A builder with the default settings and no sink yet.
    pub fn builder() -> PipelineBuilder {
        PipelineBuilder::default()
    }

    /// Puts `record` on this pipeline's queue. Never blocks: returns
    /// `false` (and counts the drop) when the queue is full or the pipeline
    /// is shut down.
    pub fn emit(&self, record: Record) -> bool {
        self.shared.emit(record)
    }

    /// Waits until every record accepted before this call is written and
    /// the sinks are flushed.
    ///
    /// Returns the first error a sink reported since the previous flush
    /// (the records concerned are counted in
    /// [`SinkStats::dropped_sink_error`]), or [`Error::Closed`] after
    /// shutdown.
    pub fn flush(&self) -> Result<(), Error> {
        if self.shared.is_forked() {
            return Err(Error::Closed);
        }
        let (ack, done) = crossbeam_channel::bounded(1);
        self.shared
            .control
            .send(Control::Flush(ack))
            .map_err(|_| Error::Closed)?;
        done.recv().map_err(|_| Error::Closed)?
    }

    /// The counts so far.
    pub fn stats(&self) -> PipelineStats {
        self.shared.stats()
    }

    /// Stops accepting records, writes every record accepted so far,
    /// flushes the sinks, writes a last status record and stops the writer
    /// thread. Returns the final counts.
    ///
    /// Calling it again returns the counts at once. Records emitted after
    /// shutdown are dropped and counted in
    /// [`PipelineStats::dropped_closed`]. In a process forked from the one
    /// that built the pipeline there is no writer to stop: it returns
    /// [`Error::Closed`].
    pub fn shutdown(&self) -> Result<PipelineStats, Error> {
        if self.shared.is_forked() {
            // The writer is in the parent process; nothing to drain here.
            return Err(Error::Closed);
        }
        // Taking the write lock waits for emits in progress; after it, no
        // record can be pushed, so the writer's last drain takes them all.
        *self
            .shared
            .closed
            .write()
            .unwrap_or_else(PoisonError::into_inner) = true;
        let _ = self.shared.control.send(Control::Shutdown);
        let handle = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            if handle.join().is_err() {
                return Err(Error::Closed);
            }
        }
        Ok(self.shared.stats())
    }

    /// Makes this pipeline the one [`emit`] sends to on the calling thread,
    /// until the returned guard is dropped (the previous one, if any, is
    /// then restored). Guards must be dropped in reverse order of creation.
    ///
    /// This is how tests stay independent: each builds its own pipeline
    /// with a [`MemorySink`](crate::MemorySink) and scopes it. Only the
    /// calling thread is affected: records emitted by other threads (e.g.
    /// the worker threads of a multi-threaded async runtime) go to their
    /// own scoped or the global pipeline.
    pub fn scoped(&self) -> ScopedPipeline<'_> {
        ACTIVE.store(true, Ordering::Relaxed);
        let previous = SCOPED
            .try_with(|cell| cell.replace(Some(Arc::clone(&self.shared))))
            .ok()
            .flatten();
        ScopedPipeline {
            previous,
            _pipeline: PhantomData,
            _not_send: PhantomData,
        }
    }

    /// Runs `f` with this pipeline scoped to the calling thread (see
    /// [`Pipeline::scoped`]).
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let _scope = self.scoped();
        f()
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// The guard of [`Pipeline::scoped`]: while it lives, [`emit`] on this
/// thread sends to that pipeline.
///
/// It cannot move to another thread:
///
/// ```compile_fail,E0277
/// let pipeline = dynostats::Pipeline::builder()
///     .sink(dynostats::MemorySink::new())
///     .build()
///     .unwrap();
/// let scope = pipeline.scoped();
/// std::thread::scope(|s| {
///     s.spawn(move || drop(scope));
/// });
/// ```
#[must_use = "the pipeline is scoped only while the guard lives"]
pub struct ScopedPipeline<'a> {
    previous: Option<Arc<Shared>>,
    _pipeline: PhantomData<&'a Pipeline>,
    _not_send: PhantomData<*const ()>,
}

impl fmt::Debug for ScopedPipeline<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ScopedPipeline")
    }
}

impl Drop for ScopedPipeline<'_> {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let _ = SCOPED.try_with(|cell| cell.replace(previous));
    }
}

/// Settings of a [`Pipeline`].
///
/// ```
/// use std::time::Duration;
/// use dynostats::{MemorySink, Pipeline};
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
    labels: BTreeMap<String, String>,
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
            .finish()
    }
}

impl Default for PipelineBuilder {
    fn default() -> Self {
        PipelineBuilder {
            sinks: Vec::new(),
            capacity: DEFAULT_QUEUE_CAPACITY,
            batch_size: DEFAULT_BATCH_SIZE,
            batch_interval: DEFAULT_BATCH_INTERVAL,
            status_interval: Some(DEFAULT_STATUS_INTERVAL),
            labels: BTreeMap::new(),
        }
    }
}

impl PipelineBuilder {
    /// Adds a sink; every record goes to every sink.
    pub fn sink(mut self, sink: impl Sink) -> Self {
        self.sinks.push(Box::new(sink));
        self
    }

    /// Queue capacity in records ([`DEFAULT_QUEUE_CAPACITY`]); when the
    /// queue is full, records are dropped and counted. The queue is
    /// allocated up front, one `Record` (about 450 bytes) per slot.
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// The most records the writer hands to the sinks at once
    /// ([`DEFAULT_BATCH_SIZE`]); a measured thread wakes the writer early
    /// when this many records (or half the queue) are waiting.
    pub fn batch_size(mut self, records: usize) -> Self {
        self.batch_size = records;
        self
    }

    /// How often the writer wakes up to write what is queued
    /// ([`DEFAULT_BATCH_INTERVAL`]): the longest a record waits when few
    /// are emitted.
    pub fn batch_interval(mut self, interval: Duration) -> Self {
        self.batch_interval = interval;
        self
    }

    /// How often the writer writes a status record
    /// ([`DEFAULT_STATUS_INTERVAL`]); one is also written at start and at
    /// shutdown. `None` writes no status record at all.
    pub fn status_interval(mut self, interval: Option<Duration>) -> Self {
        self.status_interval = interval;
        self
    }

    /// A label added by the writer to every record that does not carry
    /// this key already (host, build, region ...): it costs the measured
    /// threads nothing. Bounded like [`Record::set_label`].
    pub fn label(mut self, key: &str, value: &str) -> Self {
        let key = crate::record::bounded(key, crate::MAX_LABEL_LEN);
        if self.labels.len() < crate::MAX_LABELS || self.labels.contains_key(&key) {
            self.labels
                .insert(key, crate::record::bounded(value, crate::MAX_LABEL_LEN));
        }
        self
    }

    /// Starts the writer thread.
    ///
    /// Fails when there is no sink, the capacity or batch size is 0, or the
    /// thread cannot be started.
    pub fn build(self) -> Result<Pipeline, Error> {
        if self.sinks.is_empty() {
            return Err(Error::InvalidConfig(
                "a pipeline needs at least one sink".to_string(),
            ));
        }
        if self.capacity == 0 {
            return Err(Error::InvalidConfig(
                "the queue capacity must be at least 1".to_string(),
            ));
        }
        if self.batch_size == 0 {
            return Err(Error::InvalidConfig(
                "the batch size must be at least 1".to_string(),
            ));
        }
        if self.batch_interval.is_zero() {
            return Err(Error::InvalidConfig(
                "the batch interval must be positive".to_string(),
            ));
        }
        if self.status_interval == Some(Duration::ZERO) {
            return Err(Error::InvalidConfig(
                "the status interval must be positive (or None for no status records)".to_string(),
            ));
        }
        let (control_tx, control_rx) = crossbeam_channel::unbounded();
        let names = unique_names(&self.sinks);
        let shared = Arc::new(Shared {
            queue: ArrayQueue::new(self.capacity),
            closed: RwLock::new(false),
            control: control_tx,
            wake_at: self.batch_size.min(self.capacity.div_ceil(2)).max(1),
            generation: crate::sys::fork_generation(),
            wake_sent: AtomicBool::new(false),
            accepted: AtomicU64::new(0),
            dropped_queue_full: AtomicU64::new(0),
            dropped_closed: AtomicU64::new(0),
            status_records: AtomicU64::new(0),
            capacity: self.capacity,
            sinks: Mutex::new(
                names
                    .iter()
                    .map(|name| SinkStats {
                        name: name.clone(),
                        ..SinkStats::default()
                    })
                    .collect(),
            ),
        });
        let writer = writer::Writer::new(
            control_rx,
            self.sinks,
            names,
            writer::Settings {
                batch_size: self.batch_size,
                batch_interval: self.batch_interval,
                status_interval: self.status_interval,
                labels: self.labels,
            },
            Arc::clone(&shared),
        );
        let handle = std::thread::Builder::new()
            .name("dynostats-writer".to_string())
            .spawn(move || writer.run())
            .map_err(|source| Error::Io {
                context: "starting the dynostats writer thread".to_string(),
                source,
            })?;
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
