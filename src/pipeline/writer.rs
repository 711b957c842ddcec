//! The writer thread: takes records off the queue, batches, encodes and
//! hands batches to the sinks; writes status records.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};

use super::stats::SinkStats;
use super::{Control, Shared, status};
use crate::error::Error;
use crate::record::{Labels, Record};
use crate::sink::{Batch, Sink};

pub(super) struct Settings {
    pub(super) batch_size: usize,
    pub(super) batch_interval: Duration,
    pub(super) status_interval: Option<Duration>,
    pub(super) labels: Labels,
}

struct SinkSlot {
    sink: Box<dyn Sink>,
    stats: SinkStats,
}

pub(super) struct Writer {
    control: Receiver<Control>,
    sinks: Vec<SinkSlot>,
    settings: Settings,
    shared: Arc<Shared>,
    batch: Batch,
    next_status: Option<Instant>,
    /// The first sink error since the last flush, reported by `flush`.
    pending_error: Option<Error>,
}

impl Writer {
    pub(super) fn new(
        control: Receiver<Control>,
        sinks: Vec<Box<dyn Sink>>,
        names: Vec<String>,
        settings: Settings,
        shared: Arc<Shared>,
    ) -> Writer {
        let sinks = sinks
            .into_iter()
            .zip(names)
            .map(|(sink, name)| SinkSlot {
                sink,
                stats: SinkStats {
                    name,
                    ..SinkStats::default()
                },
            })
            .collect();
        Writer {
            control,
            sinks,
            settings,
            shared,
            batch: Batch::new(),
            next_status: None,
            pending_error: None,
        }
    }

    pub(super) fn run(mut self) {
        if let Some(interval) = self.settings.status_interval {
            self.add_status();
            self.next_status = Some(Instant::now() + interval);
        }
        let mut next_write = Instant::now() + self.settings.batch_interval;
        'run: loop {
            let wake = self.next_status.map_or(next_write, |s| s.min(next_write));
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
                    Ok(Control::Flush(ack)) => {
                        let result = self.flush();
                        let _ = ack.send(result);
                    }
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
            self.write();
        }
        self.drain(usize::MAX);
        self.write();
        if self.settings.status_interval.is_some() {
            self.add_status();
            self.write();
        }
        self.flush_sinks();
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
                self.write();
            }
        }
    }

    /// Adds the pipeline's labels to `record` and encodes it into the batch.
    fn add(&mut self, mut record: Record) {
        record.labels.insert_missing(&self.settings.labels);
        self.batch.push(&record);
    }

    /// Hands the batch to every sink and publishes the counts.
    fn write(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let records = self.batch.len() as u64;
        let bytes = self.batch.bytes().len() as u64;
        for slot in &mut self.sinks {
            let batch = &self.batch;
            let sink = &mut slot.sink;
            match guarded(|| sink.write_batch(batch)) {
                Ok(()) => {
                    slot.stats.written += records;
                    slot.stats.bytes_written += bytes;
                }
                Err(e) => {
                    slot.stats.dropped_sink_error += records;
                    note_error(
                        &mut slot.stats,
                        &mut self.pending_error,
                        "writing to sink",
                        e,
                    );
                }
            }
            slot.stats.dropped_by_sink = guarded(|| Ok(slot.sink.dropped())).unwrap_or(0);
        }
        self.batch.clear();
        self.publish();
    }

    /// Writes every record accepted before the flush request, flushes the
    /// sinks and reports the first error since the previous flush.
    fn flush(&mut self) -> Result<(), Error> {
        // Everything accepted before the request is in the queue now; newer
        // records may follow, so take no more than were there.
        let queued = self.shared.queue.len();
        self.drain(queued);
        self.write();
        self.flush_sinks();
        match self.pending_error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn flush_sinks(&mut self) {
        for slot in &mut self.sinks {
            let sink = &mut slot.sink;
            if let Err(e) = guarded(|| sink.flush()) {
                note_error(&mut slot.stats, &mut self.pending_error, "flushing sink", e);
            }
        }
        self.publish();
    }

    fn publish(&self) {
        let mut shared = self
            .shared
            .sinks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        shared.clear();
        shared.extend(self.sinks.iter().map(|slot| slot.stats.clone()));
    }

    /// Adds a status record to the batch.
    fn add_status(&mut self) {
        self.shared.status_records.fetch_add(1, Ordering::Relaxed);
        let mut totals = self.shared.counts();
        totals.sinks = self.sinks.iter().map(|slot| slot.stats.clone()).collect();
        let record = status::record(&totals, self.shared.queue.len() as u64);
        self.add(record);
    }
}

/// Runs a sink call, turning a panic into an error so that one faulty sink
/// cannot stop the writer.
fn guarded<T>(f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| Err(io::Error::other("the sink panicked")))
}

fn note_error(stats: &mut SinkStats, pending: &mut Option<Error>, what: &str, e: io::Error) {
    stats.errors += 1;
    stats.last_error = Some(e.to_string());
    if pending.is_none() {
        *pending = Some(Error::Io {
            context: format!("{what} {}", stats.name),
            source: e,
        });
    }
}
