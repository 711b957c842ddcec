//! Futures measured per poll.
//!
//! On a multi-threaded runtime a task moves between worker threads at every
//! `.await`, and the counters are per thread: a start snapshot taken on one
//! thread and an end snapshot taken on another subtract unrelated numbers,
//! and a start/end pair on the same thread also counts every other task that
//! ran there in between. So a future is measured around each `poll`: the
//! polling thread's counters are read just before and just after the inner
//! `poll`, and the difference is added to the task's totals.

use std::borrow::Cow;
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::{Delta, Record, RecordKind, Sampler, Snapshot};

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
            self.first_unix_ns = crate::sys::realtime_ns();
            let start = crate::snapshot_start();
            self.first_wall_ns = Some(start.wall_ns);
            start
        } else {
            crate::counters::snapshot_start_counts()
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
        let end = crate::counters::snapshot_end_counts();
        if let Some(open) = self.open.take() {
            self.add(&Delta::between(&open.start, &end));
            self.polls += u64::from(open.poll);
        }
    }

    /// Runs `f` as one measured segment.
    #[inline]
    pub(crate) fn measure<R>(&mut self, poll: bool, f: impl FnOnce() -> R) -> R {
        self.begin(poll);
        let r = f();
        self.end();
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
            (total.rss_end, total.peak_rss) = crate::counters::memory_now();
            record.set_delta(&total);
        }
        if let Some(first) = self.first_wall_ns {
            record.wall_ns = crate::sys::monotonic_ns().saturating_sub(first);
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
    crate::pipeline::is_active()
}

/// What a sampled [`Measured`] carries. Dropping it delivers the record, so
/// completion, cancellation and panics all go through one path.
#[derive(Debug)]
struct RegionState {
    name: Cow<'static, str>,
    weight: u64,
    acct: PollAccounting,
    completed: bool,
}

impl Drop for RegionState {
    fn drop(&mut self) {
        let panicked = self.acct.close_interrupted();
        let mut record = Record::new(RecordKind::Region, &self.name);
        self.acct.fill(&mut record);
        record.weight = self.weight;
        record.cancelled = !self.completed;
        if panicked {
            record.error = Some("panic".to_string());
        }
        crate::emit(record);
    }
}

pin_project! {
    /// A future measured per poll; made by [`Measure::measured`] or
    /// [`Measure::measured_with`].
    ///
    /// When sampled, every `poll` of the inner future is bracketed by two
    /// reads of the polling thread's counters and the difference is added
    /// to the task's totals: instructions, cycles and CPU time are the sum
    /// over polls, wall time runs from the first poll to completion, RSS is
    /// read at the start of the first poll and when the record is built. When
    /// the inner future completes, one record of kind `region` is emitted
    /// with the totals, `polls` and `threads` (the number of distinct
    /// threads that polled it). When it is dropped before completing, the
    /// record is marked `cancelled`; when its poll panicked, it also carries
    /// `error: "panic"`.
    ///
    /// Why per poll: on a multi-threaded runtime the task moves between
    /// worker threads at every `.await`, and the counters are per thread. A
    /// start/end pair around the whole future subtracts two different
    /// threads' counters, and even on one thread it counts every other task
    /// that ran there while this one was pending (`tests/measured_future.rs`
    /// shows a start/end pair taking in all of another task's work, and the
    /// per-poll total none of it).
    ///
    /// Measured futures nest: an inner measured future (or a guard used
    /// inside a poll) runs inside a poll of the outer one, so the outer
    /// totals include the inner work.
    ///
    /// When not sampled, `poll` is one branch and a call of the inner poll.
    #[must_use = "futures do nothing unless polled"]
    pub struct Measured<F> {
        #[pin]
        inner: F,
        state: Option<Box<RegionState>>,
    }
}

impl<F> std::fmt::Debug for Measured<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Measured")
            .field("name", &self.state.as_ref().map(|s| &s.name))
            .field("polls", &self.state.as_ref().map(|s| s.acct.polls()))
            .finish_non_exhaustive()
    }
}

impl<F> Measured<F> {
    /// Wraps `inner`. `weight` is `Some(rate)` when the future is sampled
    /// (the record stands for `rate` futures), `None` to run it unmeasured.
    /// Nothing is measured while no pipeline is installed or scoped.
    pub fn new(inner: F, name: impl Into<Cow<'static, str>>, weight: Option<u64>) -> Measured<F> {
        let state = weight.filter(|_| records_wanted()).map(|weight| {
            Box::new(RegionState {
                name: name.into(),
                weight,
                acct: PollAccounting::default(),
                completed: false,
            })
        });
        Measured { inner, state }
    }

    /// Whether this future is measured.
    pub fn is_sampled(&self) -> bool {
        self.state.is_some()
    }

    /// The inner future.
    pub fn get_ref(&self) -> &F {
        &self.inner
    }
}

impl<F: Future> Future for Measured<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let Some(state) = this.state.as_mut() else {
            return this.inner.poll(cx);
        };
        let inner = this.inner;
        let result = state.acct.measure(true, || inner.poll(cx));
        if result.is_ready() {
            state.completed = true;
            // Dropping the state delivers the record.
            *this.state = None;
        }
        result
    }
}

/// Measure any future per poll: `fut.measured("name")`.
///
/// ```
/// use dynostats::{Measure, MemorySink, Pipeline, RecordKind, Sampler};
///
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
/// #     let mut f = std::pin::pin!(f);
/// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
/// # }
/// let mem = MemorySink::new();
/// let pipeline = Pipeline::builder().sink(mem.clone()).build().unwrap();
/// let _scope = pipeline.scoped();
///
/// // Sampled by the global sampler (1 in 1000 by default), like `measure`.
/// let fut = async { 7 }.measured("seven");
/// assert_eq!(block_on(fut), 7);
///
/// // Sampled by a sampler of its own: here every time.
/// let every = Sampler::new(1);
/// let fut = async { (0..1000u64).sum::<u64>() }.measured_with("sum", &every);
/// assert!(fut.is_sampled());
/// assert_eq!(block_on(fut), 499_500);
///
/// pipeline.flush().unwrap();
/// let sum = mem.records_of(RecordKind::Region).into_iter().find(|r| r.name == "sum").unwrap();
/// assert_eq!((sum.polls, sum.threads, sum.weight), (Some(1), Some(1), 1));
/// ```
pub trait Measure: Future + Sized {
    /// Measures this future when the global sampler picks it, like
    /// [`measure`](crate::measure) does for a code region (see
    /// [`set_sample_rate`](crate::set_sample_rate)); the weight is the rate.
    fn measured(self, name: impl Into<Cow<'static, str>>) -> Measured<Self> {
        Measured::new(self, name, crate::region::SAMPLER.sample())
    }

    /// Measures this future when `sampler` picks it (weight = the rate);
    /// otherwise runs it unmeasured.
    fn measured_with(
        self,
        name: impl Into<Cow<'static, str>>,
        sampler: &Sampler,
    ) -> Measured<Self> {
        Measured::new(self, name, sampler.sample())
    }
}

impl<F: Future> Measure for F {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::test_records;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::task::Waker;

    /// Pending `n` times (waking itself), then ready.
    struct YieldTimes(usize);
    impl Future for YieldTimes {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.0 == 0 {
                return Poll::Ready(());
            }
            self.0 -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    fn cpu_work(iterations: u64) -> u64 {
        let mut x = 1u64;
        for i in 0..iterations {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
        }
        x
    }

    /// Measures `fut` every time.
    fn always<F: Future>(fut: F, name: &'static str) -> Measured<F> {
        test_records::install();
        fut.measured_with(name, &Sampler::new(1))
    }

    fn only(name: &str) -> Record {
        let mut records = test_records::named(name);
        assert_eq!(records.len(), 1, "{records:?}");
        records.pop().unwrap()
    }

    #[test]
    fn thread_set_counts_distinct_ids_past_inline_capacity() {
        let mut s = ThreadSet::default();
        for id in [3, 3, 5, 7, 5, 9, 11, 13, 3, 13, 15] {
            s.insert(id);
        }
        assert_eq!(s.len(), 7);
    }

    #[test]
    fn polls_threads_and_completion_on_two_threads() {
        // Poll by hand on this thread, then move the future to another
        // thread: exactly 2 polls by 2 distinct threads.
        let mut fut = Box::pin(always(YieldTimes(1), "two-threads"));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        let ready = std::thread::spawn(move || {
            let mut cx = Context::from_waker(Waker::noop());
            fut.as_mut().poll(&mut cx).is_ready()
        })
        .join()
        .unwrap();
        assert!(ready);
        let r = only("two-threads");
        assert_eq!(r.kind, RecordKind::Region);
        assert_eq!(r.polls, Some(2));
        assert_eq!(r.threads, Some(2));
        assert_eq!(r.weight, 1);
        assert!(!r.cancelled);
        assert!(r.error.is_none());
    }

    #[test]
    fn dropped_before_completion_is_cancelled() {
        let mut fut = Box::pin(always(YieldTimes(5), "dropped"));
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..3 {
            assert!(fut.as_mut().poll(&mut cx).is_pending());
        }
        drop(fut);
        let r = only("dropped");
        assert!(r.cancelled);
        assert_eq!(r.polls, Some(3));
        assert_eq!(r.threads, Some(1));
    }

    #[test]
    fn never_polled_has_no_counters() {
        drop(always(YieldTimes(1), "never-polled"));
        let r = only("never-polled");
        assert!(r.cancelled);
        assert_eq!(r.polls, Some(0));
        assert_eq!(r.threads, Some(0));
        assert_eq!(r.cpu_ns, None);
        assert_eq!(r.instructions, None);
        assert_eq!(r.wall_ns, 0);
    }

    #[test]
    fn unsampled_emits_nothing() {
        test_records::install();
        let sampler = Sampler::new(0);
        let mut fut = Box::pin(YieldTimes(0).measured_with("unsampled", &sampler));
        assert!(!fut.is_sampled());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_ready());
        drop(fut);
        assert!(test_records::named("unsampled").is_empty());
    }

    #[test]
    fn weight_is_the_rate() {
        test_records::install();
        let sampler = Sampler::new(1);
        sampler.set_rate(1);
        let mut fut = Box::pin(YieldTimes(0).measured_with("weighted", &sampler));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_ready());
        assert_eq!(only("weighted").weight, 1);
    }

    #[test]
    fn panic_in_poll_is_recorded() {
        test_records::install();
        let fut = async {
            cpu_work(1000);
            panic!("boom");
        }
        .measured_with("panicking", &Sampler::new(1));
        let mut fut = Box::pin(fut);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut cx = Context::from_waker(Waker::noop());
            let _ = fut.as_mut().poll(&mut cx);
        }));
        assert!(caught.is_err());
        drop(fut);
        let r = only("panicking");
        assert!(r.cancelled);
        assert_eq!(r.error.as_deref(), Some("panic"));
        assert_eq!(r.polls, Some(1));
        // The interrupted poll was still read on this thread.
        assert!(r.cpu_ns.is_some());
    }

    #[test]
    fn nested_outer_includes_inner_and_sync_region() {
        test_records::install();
        let inner_work = Arc::new(AtomicUsize::new(0));
        let fut = async {
            let inner = async {
                cpu_work(2_000_000);
                YieldTimes(2).await;
                cpu_work(2_000_000);
            }
            .measured_with("nested-inner", &Sampler::new(1));
            inner.await;
            // A synchronous region inside the poll: a start/end pair read on
            // one thread with no await in between.
            let start = crate::snapshot();
            cpu_work(4_000_000);
            let end = crate::snapshot();
            let region = Delta::between(&start, &end);
            inner_work.store(region.cpu_ns.unwrap_or(0) as usize, Ordering::Relaxed);
            YieldTimes(1).await;
        }
        .measured_with("nested-outer", &Sampler::new(1));
        let mut fut = Box::pin(fut);
        let mut cx = Context::from_waker(Waker::noop());
        while fut.as_mut().poll(&mut cx).is_pending() {}
        drop(fut);
        let inner = only("nested-inner");
        let outer = only("nested-outer");
        assert_eq!(inner.polls, Some(3));
        assert_eq!(outer.polls, Some(4));
        let (Some(inner_cpu), Some(outer_cpu)) = (inner.cpu_ns, outer.cpu_ns) else {
            panic!("CPU time is measurable here: {inner:?} {outer:?}");
        };
        let sync_cpu = inner_work.load(Ordering::Relaxed) as u64;
        assert!(sync_cpu > 0);
        assert!(
            outer_cpu >= inner_cpu + sync_cpu,
            "outer {outer_cpu} < inner {inner_cpu} + sync {sync_cpu}"
        );
        if let (Some(i), Some(o)) = (inner.instructions, outer.instructions) {
            assert!(o > i);
        }
    }
}
