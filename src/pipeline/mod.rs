//! The shipping pipeline: a bounded queue, one background writer, sinks.
//!
//! Measured threads hand records to [`emit`] (or [`Pipeline::emit`]),
//! which pushes them on a bounded lock-free queue: it never blocks and
//! never does I/O, and when the queue is full the record is dropped and
//! counted. One writer thread per pipeline takes records off the queue,
//! encodes them as MessagePack in batches and hands the batches to every
//! [`Sink`](crate::sink::Sink), each on a thread of its own. The writer wakes up every batch
//! interval, or as soon as a batch's worth of records is waiting; a measured
//! thread does not wake it for every record (a wake-up is a system call).
//! The batches of one round of the writer reach each sink's thread as one
//! hand-over, so that thread too wakes once per round, not once per batch.
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
//! and is never dropped: call `dynostats::pipeline::global_pipeline().map(|p|
//! p.shutdown())` before the process exits.

mod builder;
mod global;
mod stats;
mod status;
mod summary;
#[cfg(test)]
pub(crate) mod test_records;
mod writer;

pub use builder::PipelineBuilder;
pub(crate) use global::is_active;
pub use global::{InstallError, ScopedPipeline, emit, global_pipeline, install};
pub use stats::{PipelineStats, SinkStats};

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, TryLockError};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use crossbeam_channel::Sender;
use crossbeam_queue::ArrayQueue;

use crate::error::Error;
use crate::record::Record;
use crate::sys;

/// What the measured threads and the writer share.
struct Shared {
    queue: ArrayQueue<Record>,
    /// True once shut down. An emitter counts itself in `pushing`, then
    /// checks `closed`; shutdown sets `closed`, then waits for `pushing`
    /// to reach 0: so no record can arrive after the writer's last drain,
    /// and no lock is involved (a lock held by another thread at a fork
    /// would be held for ever in the child).
    closed: AtomicBool,
    /// Emitters between their check of `closed` and the end of their push.
    pushing: AtomicUsize,
    /// Requests to the writer; whoever sends one unparks the writer.
    control: Sender<Control>,
    /// The writer thread, unparked to wake it: no lock (a channel's
    /// wake-up takes a mutex the receiving writer takes too, so an emitter
    /// could sleep on it).
    writer: OnceLock<Thread>,
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
    /// One per sink, in the order they were added.
    sinks: Vec<Arc<SinkShared>>,
}

/// What the writer, one sink's thread and readers of the stats share.
struct SinkShared {
    stats: Mutex<SinkStats>,
    /// Records handed to the sink's thread and not yet written by it.
    backlog: AtomicU64,
}

enum Control {
    /// Write everything queued, flush the sinks, then answer (once per
    /// sink).
    Flush(Sender<Result<(), Error>>),
    /// Write everything queued, then stop (the queue is closed already).
    Shutdown,
}

impl Shared {
    /// Whether this process is a fork of the one the writer runs in.
    fn is_forked(&self) -> bool {
        sys::fork_generation() != self.generation
    }

    fn emit(&self, record: Record) -> bool {
        if self.is_forked() {
            self.dropped_closed.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        // SeqCst pairs with `close`: either this emitter sees `closed`, or
        // `close` sees it in `pushing` and waits for its push.
        self.pushing.fetch_add(1, Ordering::SeqCst);
        if self.closed.load(Ordering::SeqCst) {
            self.pushing.fetch_sub(1, Ordering::Release);
            self.dropped_closed.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let pushed = self.queue.push(record).is_ok();
        self.pushing.fetch_sub(1, Ordering::Release);
        if !pushed {
            self.dropped_queue_full.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.accepted.fetch_add(1, Ordering::Relaxed);
        if self.queue.len() >= self.wake_at && !self.wake_sent.swap(true, Ordering::AcqRel) {
            self.wake_writer();
        }
        true
    }

    /// Wakes the writer: an atomic swap, and a `futex` wake-up only when
    /// it is parked. Takes no lock.
    fn wake_writer(&self) {
        if let Some(writer) = self.writer.get() {
            writer.unpark();
        }
    }

    /// Sends `message` to the writer and wakes it.
    fn request(&self, message: Control) -> Result<(), Error> {
        self.control.send(message).map_err(|_| Error::Closed)?;
        self.wake_writer();
        Ok(())
    }

    /// Stops accepting records and waits until the emits in progress have
    /// pushed theirs: after it, the queue only shrinks.
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        while self.pushing.load(Ordering::SeqCst) != 0 {
            // An emitter between two atomic operations, no lock held.
            std::thread::yield_now();
        }
    }

    fn sink_stats(&self) -> Vec<SinkStats> {
        self.sinks
            .iter()
            .filter_map(|sink| match sink.stats.try_lock() {
                Ok(stats) => Some(stats.clone()),
                Err(TryLockError::Poisoned(p)) => Some(p.into_inner().clone()),
                // In a forked child the thread that held the lock is gone.
                Err(TryLockError::WouldBlock) if self.is_forked() => None,
                Err(TryLockError::WouldBlock) => Some(
                    sink.stats
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clone(),
                ),
            })
            .collect()
    }

    /// The pipeline-wide counts, without the sinks'.
    fn counts(&self) -> PipelineStats {
        PipelineStats {
            accepted: self.accepted.load(Ordering::Relaxed),
            dropped_queue_full: self.dropped_queue_full.load(Ordering::Relaxed),
            dropped_closed: self.dropped_closed.load(Ordering::Relaxed),
            status_records: self.status_records.load(Ordering::Relaxed),
            queue_capacity: self.capacity as u64,
            sinks: Vec::new(),
        }
    }

    fn stats(&self) -> PipelineStats {
        PipelineStats {
            sinks: self.sink_stats(),
            ..self.counts()
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
/// use dynostats::{sink::MemorySink, Pipeline, RecordKind};
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
    /// Default queue capacity, in records.
    pub const DEFAULT_QUEUE_CAPACITY: usize = 8192;
    /// Default largest number of records the writer hands to a sink at once.
    pub const DEFAULT_BATCH_SIZE: usize = 512;
    /// Default interval at which the writer wakes up to write what is queued.
    pub const DEFAULT_BATCH_INTERVAL: Duration = Duration::from_millis(100);
    /// Default interval between status records.
    pub const DEFAULT_STATUS_INTERVAL: Duration = Duration::from_secs(60);

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
        let sinks = self.shared.sinks.len();
        let (ack, done) = crossbeam_channel::bounded(sinks);
        self.shared.request(Control::Flush(ack))?;
        // One answer per sink; the first error wins.
        let mut result = Ok(());
        for _ in 0..sinks {
            let answer = done.recv().map_err(|_| Error::Closed)?;
            if result.is_ok() {
                result = answer;
            }
        }
        result
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
        // After it no record can be pushed, so the writer's last drain
        // takes them all.
        self.shared.close();
        let _ = self.shared.request(Control::Shutdown);
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
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
