//! The writer thread takes records off the queue, batches and encodes them,
//! and hands the batches to every sink's own thread; it writes status
//! records. Each sink runs on a thread of its own with a bounded backlog,
//! so a slow or stalled sink only drops its own copies.
//!
//! The batches of one round of the writer (what it found queued when it
//! woke) go to each sink's thread as one job: a sink's thread wakes at most
//! once per round however small the batches, so `batch_size(1)` costs a
//! channel send and a wake-up per round and sink, not per record.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use super::{Control, Shared, SinkShared, status, summary::Summary};
use crate::error::Error;
use crate::record::{Labels, Record};
use crate::sink::{Batch, Sink};

/// Sealed records at which the writer hands its batches over before the
/// end of a round.
const HAND_OVER_RECORDS: usize = 1024;

pub(super) struct Settings {
    pub(super) batch_size: usize,
    pub(super) batch_interval: Duration,
    pub(super) status_interval: Option<Duration>,
    pub(super) labels: Labels,
    /// Records a sink may have waiting for it before the writer drops its
    /// copies.
    pub(super) sink_backlog: u64,
    /// The periodic summary line (or none).
    pub(super) summary: Summary,
}

/// What the writer sends a sink's thread.
pub(super) enum Job {
    /// Batches to write, in order.
    Batches(Vec<Arc<Batch>>),
    /// Flush the sink and answer with the first error since the last flush.
    Flush(Sender<Result<(), Error>>),
}

/// The writer's end of one sink's thread.
struct SinkLink {
    shared: Arc<SinkShared>,
    jobs: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

pub(super) struct Writer {
    control: Receiver<Control>,
    sinks: Vec<SinkLink>,
    settings: Settings,
    shared: Arc<Shared>,
    batch: Batch,
    /// Full batches not yet handed to the sinks' threads, and their records.
    sealed: Vec<Arc<Batch>>,
    sealed_records: usize,
    next_status: Option<Instant>,
    /// Shutting down: no backlog limit, every accepted record is handed on.
    closing: bool,
}

impl Writer {
    /// Starts one thread per sink; fails if a thread cannot be started
    /// (the threads already started then end, as their channels close).
    pub(super) fn new(
        control: Receiver<Control>,
        sinks: Vec<Box<dyn Sink>>,
        settings: Settings,
        shared: Arc<Shared>,
    ) -> Result<Writer, Error> {
        let mut links = Vec::with_capacity(sinks.len());
        for (sink, sink_shared) in sinks.into_iter().zip(&shared.sinks) {
            let (tx, rx) = crossbeam_channel::unbounded();
            let worker = SinkWorker {
                sink,
                shared: Arc::clone(sink_shared),
                jobs: rx,
                pending_error: None,
                reported_full: 0,
            };
            let thread = std::thread::Builder::new()
                .name("dynostats-sink".to_string())
                .spawn(move || worker.run())
                .map_err(|source| Error::Io {
                    context: "starting a dynostats sink thread".to_string(),
                    source,
                })?;
            links.push(SinkLink {
                shared: Arc::clone(sink_shared),
                jobs: Some(tx),
                thread: Some(thread),
            });
        }
        Ok(Writer {
            control,
            sinks: links,
            settings,
            shared,
            batch: Batch::new(),
            sealed: Vec::new(),
            sealed_records: 0,
            next_status: None,
            closing: false,
        })
    }

    pub(super) fn run(mut self) {
        if let Some(interval) = self.settings.status_interval {
            self.add_status();
            self.next_status = Some(Instant::now() + interval);
        }
        let mut next_write = Instant::now() + self.settings.batch_interval;
        'run: loop {
            let wake = self.next_status.map_or(next_write, |s| s.min(next_write));
            let wake = self.settings.summary.wake_by(wake);
            // More than a batch still waiting (emitters outpace the
            // writer): do not sleep. Otherwise sleep until the next write
            // or status record, or until an emitter or a request unparks
            // this thread (a spurious wake-up only costs a loop).
            if self.shared.queue.len() < self.shared.wake_at {
                let timeout = wake.saturating_duration_since(Instant::now());
                if !timeout.is_zero() {
                    std::thread::park_timeout(timeout);
                }
            }
            loop {
                match self.control.try_recv() {
                    Ok(Control::Flush(ack)) => self.flush(ack),
                    // Shut down: the queue is closed, so the drain after
                    // the loop is the last.
                    Ok(Control::Shutdown) => break 'run,
                    Err(TryRecvError::Empty) => break,
                    // The sender lives in `Shared`, which this writer holds.
                    Err(TryRecvError::Disconnected) => break 'run,
                }
            }
            // At most what is queued now, so that flush and shutdown
            // requests are seen even under a steady flood.
            self.drain(self.shared.queue.len());
            let now = Instant::now();
            if now >= next_write {
                next_write = now + self.settings.batch_interval;
            }
            if let (Some(due), Some(interval)) = (self.next_status, self.settings.status_interval) {
                if due <= now {
                    self.add_status();
                    self.next_status = Some(now + interval);
                }
            }
            self.settings.summary.tick(now);
            self.write();
        }
        self.closing = true;
        self.drain(usize::MAX);
        self.write();
        self.settings.summary.finish();
        if self.settings.status_interval.is_some() {
            // The last status record counts what the sinks wrote: wait for
            // them to write and flush everything else first (each sink's
            // flush has its own bound).
            let (ack, done) = crossbeam_channel::bounded(self.sinks.len());
            self.flush(ack);
            for _ in 0..self.sinks.len() {
                let _ = done.recv();
            }
            self.add_status();
            self.write();
        }
        // Closing the channels tells each sink thread to flush, count what
        // its sink could not deliver, and end.
        for link in &mut self.sinks {
            link.jobs = None;
        }
        for link in &mut self.sinks {
            if let Some(thread) = link.thread.take() {
                let _ = thread.join();
            }
        }
    }

    /// Takes up to `limit` queued records, writing a batch whenever it is
    /// full; the last partial batch stays for the caller to write.
    fn drain(&mut self, limit: usize) {
        self.shared.wake_sent.store(false, Ordering::Release);
        for _ in 0..limit {
            let Some(record) = self.shared.queue.pop() else {
                break;
            };
            self.add(record);
            if self.batch.len() >= self.settings.batch_size {
                self.seal();
                // A long round hands its batches over as it goes, so that
                // the sinks write while the writer encodes.
                if self.sealed_records >= HAND_OVER_RECORDS {
                    self.hand_over();
                }
            }
        }
    }

    /// Adds the pipeline's labels to `record` and encodes it into the batch.
    fn add(&mut self, mut record: Record) {
        record.labels.insert_missing(&self.settings.labels);
        self.batch.push(&record);
        self.settings.summary.add(&record);
    }

    /// Ends the batch being filled: it waits with the others of this
    /// round to be handed over.
    fn seal(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        self.sealed_records += self.batch.len();
        self.sealed.push(Arc::new(std::mem::take(&mut self.batch)));
    }

    /// Hands every batch so far, the partial one included, to every sink's
    /// thread.
    fn write(&mut self) {
        self.seal();
        self.hand_over();
    }

    /// Hands the sealed batches to every sink's thread, one job per sink.
    fn hand_over(&mut self) {
        if self.sealed.is_empty() {
            return;
        }
        let batches = std::mem::take(&mut self.sealed);
        self.sealed_records = 0;
        for link in &self.sinks {
            self.send(link, &batches);
        }
    }

    /// Hands `batches` to one sink's thread, in order, as far as its
    /// backlog has room: from the first batch that does not fit, the rest
    /// is dropped for that sink (counted for it alone).
    fn send(&self, link: &SinkLink, batches: &[Arc<Batch>]) {
        let total: u64 = batches.iter().map(|b| b.len() as u64).sum();
        let mut backlog = link.shared.backlog.load(Ordering::Acquire);
        let mut fits = batches.len();
        if !self.closing {
            for (i, batch) in batches.iter().enumerate() {
                let records = batch.len() as u64;
                if backlog > 0 && backlog + records > self.settings.sink_backlog {
                    fits = i;
                    break;
                }
                backlog += records;
            }
        }
        let mut stats = link.shared.lock();
        stats.received += total;
        let mut sent = 0;
        if fits > 0 {
            if let Some(jobs) = link.jobs.as_ref() {
                let job = batches[..fits].to_vec();
                let records: u64 = job.iter().map(|b| b.len() as u64).sum();
                link.shared.backlog.fetch_add(records, Ordering::AcqRel);
                if jobs.send(Job::Batches(job)).is_ok() {
                    sent = records;
                } else {
                    link.shared.backlog.fetch_sub(records, Ordering::AcqRel);
                }
            }
        }
        stats.dropped_sink_full += total - sent;
    }

    /// Hands every record accepted before the request to the sinks, then
    /// asks each sink's thread to flush and answer `ack`.
    fn flush(&mut self, ack: Sender<Result<(), Error>>) {
        // Everything accepted before the request is in the queue now; newer
        // records may follow, so take no more than were there.
        let queued = self.shared.queue.len();
        self.drain(queued);
        self.write();
        for link in &self.sinks {
            let sent = link
                .jobs
                .as_ref()
                .is_some_and(|jobs| jobs.send(Job::Flush(ack.clone())).is_ok());
            if !sent {
                let _ = ack.send(Err(Error::Closed));
            }
        }
    }

    /// Writes a status record: the batch so far goes first, then each
    /// sink gets its own copy, naming it in `detail.sink`, so that a reader
    /// of one file knows which entry of `detail.sinks` is that file's.
    fn add_status(&mut self) {
        self.write();
        self.shared.status_records.fetch_add(1, Ordering::Relaxed);
        let totals = self.shared.stats();
        let mut record = status::record(&totals, self.shared.queue.len() as u64);
        record.labels.insert_missing(&self.settings.labels);
        for (link, st) in self.sinks.iter().zip(&totals.sinks) {
            if let Some(detail) = record.detail.as_mut() {
                detail.sink = Some(st.name.clone());
            }
            let mut batch = Batch::new();
            batch.push(&record);
            self.send(link, &[Arc::new(batch)]);
        }
    }
}

/// One sink on its own thread.
struct SinkWorker {
    sink: Box<dyn Sink>,
    shared: Arc<SinkShared>,
    jobs: Receiver<Job>,
    /// The first error since the last flush, reported by the next flush.
    pending_error: Option<Error>,
    /// `dropped_sink_full` when the last flush reported it.
    reported_full: u64,
}

impl SinkWorker {
    fn run(mut self) {
        // Blocks only this sink's thread; ends when the writer closes the
        // channel (shutdown).
        while let Ok(job) = self.jobs.recv() {
            match job {
                Job::Batches(batches) => {
                    self.write(&batches);
                    let records: u64 = batches.iter().map(|b| b.len() as u64).sum();
                    self.shared.backlog.fetch_sub(records, Ordering::AcqRel);
                }
                Job::Flush(ack) => {
                    let result = self.flush();
                    let _ = ack.send(result);
                }
            }
        }
        let _ = self.flush();
        // What the sink still holds now is lost with it.
        let sink = &self.sink;
        let left = guarded(|| Ok(sink.buffered())).unwrap_or(0);
        let mut stats = self.shared.lock();
        stats.lost_at_shutdown = left;
        stats.buffered_by_sink = 0;
        stats.delivered = delivered(&stats);
    }

    /// Writes `batches` in order; the stats are taken once per job.
    fn write(&mut self, batches: &[Arc<Batch>]) {
        let (mut written, mut bytes, mut failed) = (0, 0, 0);
        let mut errors = Vec::new();
        for batch in batches {
            let records = batch.len() as u64;
            let sink = &mut self.sink;
            match guarded(|| sink.write_batch(batch)) {
                Ok(()) => {
                    written += records;
                    bytes += batch.bytes().len() as u64;
                }
                Err(e) => {
                    failed += records;
                    errors.push(e);
                }
            }
        }
        let reported = Reported::read(&*self.sink);
        let mut stats = self.shared.lock();
        stats.written += written;
        stats.bytes_written += bytes;
        stats.dropped_sink_error += failed;
        for e in errors {
            note_error(&mut stats, &mut self.pending_error, "writing to sink", e);
        }
        reported.store(&mut stats);
    }

    /// Flushes the sink; returns the first error since the previous flush.
    fn flush(&mut self) -> Result<(), Error> {
        let sink = &mut self.sink;
        let result = guarded(|| sink.flush());
        let reported = Reported::read(&*self.sink);
        let mut stats = self.shared.lock();
        if let Err(e) = result {
            note_error(&mut stats, &mut self.pending_error, "flushing sink", e);
        }
        if stats.dropped_sink_full > self.reported_full && self.pending_error.is_none() {
            self.pending_error = Some(Error::Io {
                context: format!("sink {}", stats.name),
                source: io::Error::other(format!(
                    "{} records dropped: the sink fell behind and its backlog was full",
                    stats.dropped_sink_full - self.reported_full
                )),
            });
        }
        self.reported_full = stats.dropped_sink_full;
        reported.store(&mut stats);
        match self.pending_error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// What a sink reports about itself ([`Sink::dropped`], [`Sink::buffered`],
/// [`Sink::resent`]), read on the sink's own thread before its stats
/// mutex is taken: the writer and `Pipeline::stats()` take that mutex too,
/// so a slow getter called under it would stall them (and with the writer,
/// every other sink). `None`: the getter panicked.
struct Reported {
    dropped: Option<u64>,
    buffered: Option<u64>,
    resent: Option<u64>,
}

impl Reported {
    fn read(sink: &dyn Sink) -> Reported {
        Reported {
            dropped: guarded(|| Ok(sink.dropped())).ok(),
            buffered: guarded(|| Ok(sink.buffered())).ok(),
            resent: guarded(|| Ok(sink.resent())).ok(),
        }
    }

    /// Stores the numbers read (a getter that panicked keeps its last
    /// number; a buffer that cannot be read counts as empty).
    fn store(&self, stats: &mut super::SinkStats) {
        stats.dropped_by_sink = self.dropped.unwrap_or(stats.dropped_by_sink);
        stats.buffered_by_sink = self.buffered.unwrap_or(0);
        stats.resent = self.resent.unwrap_or(stats.resent);
        stats.delivered = delivered(stats);
    }
}

/// Records written and neither dropped by the sink, still buffered in it,
/// nor lost at shutdown.
fn delivered(stats: &super::SinkStats) -> u64 {
    stats
        .written
        .saturating_sub(stats.dropped_by_sink)
        .saturating_sub(stats.buffered_by_sink)
        .saturating_sub(stats.lost_at_shutdown)
}

impl SinkShared {
    fn lock(&self) -> std::sync::MutexGuard<'_, super::SinkStats> {
        self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Runs a sink call, turning a panic into an error so that one faulty sink
/// cannot stop its thread.
fn guarded<T>(f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| Err(io::Error::other("the sink panicked")))
}

fn note_error(stats: &mut super::SinkStats, pending: &mut Option<Error>, what: &str, e: io::Error) {
    stats.errors += 1;
    stats.last_error = Some(e.to_string());
    if pending.is_none() {
        *pending = Some(Error::Io {
            context: format!("{what} {}", stats.name),
            source: e,
        });
    }
}
