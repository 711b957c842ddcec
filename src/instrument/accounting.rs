//! The per-poll accounting engine shared by measured futures and the tower
//! layer's requests: a task's counters summed over the segments (polls,
//! a service's `call`) in which it ran, on whichever thread ran them, and
//! the one path by which such a task's record is finished.

use std::borrow::Cow;
use std::cell::Cell;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::counters::{self, Delta, Snapshot};
use crate::pipeline;
use crate::profile::{self, Installed, TaskProfile};
use crate::record::{Record, RecordKind};
use crate::sys;

static NEXT_THREAD_ID: AtomicU32 = AtomicU32::new(1);

thread_local! {
    static THREAD_ID: Cell<u32> = const { Cell::new(0) };
}

/// A small process-unique number for the calling thread (never 0; 0 while
/// the thread is being torn down).
fn thread_id() -> u32 {
    THREAD_ID
        .try_with(|cell| {
            let id = cell.get();
            if id != 0 {
                return id;
            }
            let id = NEXT_THREAD_ID.fetch_add(1, Ordering::Relaxed).max(1);
            cell.set(id);
            id
        })
        .unwrap_or(0)
}

/// The distinct threads that polled a future. The first few are kept
/// inline; a future polled by more threads than that spills to the heap, so
/// the count is always exact.
#[derive(Debug, Default)]
pub(crate) struct ThreadSet {
    inline: [u32; 4],
    len: usize,
    spill: Vec<u32>,
}

impl ThreadSet {
    pub(crate) fn insert(&mut self, id: u32) {
        if self.inline[..self.len].contains(&id) || self.spill.contains(&id) {
            return;
        }
        if self.len < self.inline.len() {
            self.inline[self.len] = id;
            self.len += 1;
        } else {
            self.spill.push(id);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len + self.spill.len()
    }
}

/// Per-poll accounting of one task: the sum of the deltas of its polls,
/// the number of polls and the threads that ran them.
///
/// Counts are summed over segments, but RSS is a level that the record
/// wants only at the task's start and end: the first segment starts with a
/// full snapshot (its RSS is the record's `rss_start`), every other
/// boundary is read without RSS (no `/proc/self/statm` per poll), and RSS
/// and peak RSS are read once more when the record is built
/// ([`fill`](Self::fill)).
#[derive(Debug, Default)]
pub(crate) struct PollAccounting {
    /// Sum of the measured segments; `None` before the first one. Its
    /// `rss_start` is the first segment's; it holds no `rss_end`.
    total: Option<Delta>,
    polls: u64,
    threads: ThreadSet,
    /// `CLOCK_MONOTONIC` and Unix time at the start of the first segment.
    first_wall_ns: Option<u64>,
    first_unix_ns: u64,
    /// The segment in progress. Still set when the inner code panicked.
    open: Option<OpenSegment>,
    /// The task's profile between segments: installed as the thread's
    /// current profile around each segment ([`measure`](Self::measure)).
    profile: TaskProfile,
}

/// A measured segment that has started and not yet ended.
#[derive(Debug)]
struct OpenSegment {
    thread: u32,
    /// Whether the segment is a poll (else e.g. a service's `call`).
    poll: bool,
    start: Snapshot,
}

impl PollAccounting {
    /// Starts a measured segment on the calling thread; `poll` says whether
    /// it counts as a poll.
    #[inline]
    pub(crate) fn begin(&mut self, poll: bool) {
        let thread = thread_id();
        self.threads.insert(thread);
        let start = if self.first_wall_ns.is_none() {
            // The Unix time first, so that no read but the snapshot's own
            // falls inside the segment.
            self.first_unix_ns = sys::realtime_ns();
            let start = counters::snapshot_start();
            self.first_wall_ns = Some(start.wall_ns);
            start
        } else {
            counters::snapshot_start_counts()
        };
        self.open = Some(OpenSegment {
            thread,
            poll,
            start,
        });
    }

    /// Ends the segment started by [`begin`](Self::begin) on this thread and
    /// adds it to the totals.
    #[inline]
    pub(crate) fn end(&mut self) {
        let end = counters::snapshot_end_counts();
        if let Some(open) = self.open.take() {
            self.add(&Delta::between(&open.start, &end));
            self.polls += u64::from(open.poll);
        }
    }

    /// Runs `f` as one measured segment, with the task's profile installed
    /// as the thread's current one: scopes entered in `f` are the task's.
    ///
    /// The profile is put on before the segment's start snapshot and taken
    /// off after its end snapshot, so that installing it is not measured;
    /// inside, the task's virtual clock is restarted and stopped (one timer
    /// read each, only when the task has scopes open across the boundary).
    /// A panic in `f` discards the task's profile (the displaced profile of
    /// an enclosing region, if any, is restored).
    #[inline]
    pub(crate) fn measure<R>(&mut self, poll: bool, f: impl FnOnce() -> R) -> R {
        let installed = Installed::new(&mut self.profile);
        self.begin(poll);
        profile::resume();
        let r = f();
        profile::suspend();
        self.end();
        installed.finish(&mut self.profile);
        r
    }

    fn add(&mut self, delta: &Delta) {
        match &mut self.total {
            Some(total) => total.accumulate(delta),
            None => self.total = Some(*delta),
        }
    }

    /// Closes a segment that never ended because the code inside it
    /// panicked. The part on this thread is still counted (the unwinding
    /// drop runs on the thread that panicked); a segment opened on another
    /// thread cannot be read from here and is left out. Returns whether a
    /// segment was open.
    pub(crate) fn close_interrupted(&mut self) -> bool {
        let Some(open) = &self.open else {
            return false;
        };
        if open.thread == thread_id() {
            self.end();
        } else {
            self.polls += u64::from(open.poll);
            self.open = None;
        }
        true
    }

    /// Number of polls measured so far.
    pub(crate) fn polls(&self) -> u64 {
        self.polls
    }

    /// Writes the totals into `record`: counters summed over the segments,
    /// RSS at the first segment's start and now (read here, with peak RSS),
    /// wall time from the first segment's start to now, `ts` from the first
    /// segment's start, `polls` and `threads`.
    pub(crate) fn fill(&self, record: &mut Record) {
        if let Some(total) = &self.total {
            let mut total = *total;
            (total.rss_end, total.peak_rss) = counters::memory_now();
            record.set_delta(&total);
        }
        if let Some(first) = self.first_wall_ns {
            record.wall_ns = sys::monotonic_ns().saturating_sub(first);
            record.ts = self.first_unix_ns;
        } else {
            record.wall_ns = 0;
        }
        record.polls = Some(self.polls);
        record.threads = Some(self.threads.len() as u64);
    }
}

/// Whether a sampled future or request should be measured: only when a
/// pipeline can take its record.
#[inline]
pub(crate) fn records_wanted() -> bool {
    pipeline::is_active()
}

impl PollAccounting {
    /// Delivers the task's record, the one way a measured future or request
    /// ends: closes a segment that a panic interrupted, builds a record of
    /// `kind` named `name` with the totals ([`fill`](Self::fill)), lets
    /// `describe` add what only the caller knows (weight, method, status,
    /// labels), marks how it ended and emits it.
    ///
    /// A panic inside a segment gives `cancelled: true, error: "panic"`;
    /// otherwise `cancelled` is `!completed` and `error` is `error`.
    ///
    /// When the task entered profiler scopes, its `profile` record is
    /// emitted right after, linked by the shared `id`.
    pub(crate) fn finish(
        &mut self,
        kind: RecordKind,
        name: &str,
        completed: bool,
        error: Option<&'static str>,
        describe: impl FnOnce(&mut Record),
    ) {
        let panicked = self.close_interrupted();
        let mut record = Record::new(kind, name);
        self.fill(&mut record);
        describe(&mut record);
        if panicked {
            record.cancelled = true;
            record.error = Some(Cow::Borrowed("panic"));
        } else {
            record.cancelled = !completed;
            record.error = error.map(Cow::Borrowed);
        }
        let profile = profile::attach(&mut self.profile, &mut record);
        pipeline::emit(record);
        if let Some(profile) = profile {
            pipeline::emit(profile);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_set_counts_distinct_ids_past_inline_capacity() {
        let mut s = ThreadSet::default();
        for id in [3, 3, 5, 7, 5, 9, 11, 13, 3, 13, 15] {
            s.insert(id);
        }
        assert_eq!(s.len(), 7);
    }
}
