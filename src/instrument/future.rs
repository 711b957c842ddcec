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
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::accounting::{PollAccounting, records_wanted};
use crate::record::RecordKind;
use crate::sample::Sampler;

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
    #[inline]
    fn drop(&mut self) {
        self.deliver();
    }
}

impl RegionState {
    /// Delivers the future's record (from `Drop`); out of line and cold,
    /// like the request's.
    #[cold]
    #[inline(never)]
    fn deliver(&mut self) {
        let weight = self.weight;
        self.acct.finish(
            RecordKind::Region,
            &self.name,
            self.completed,
            None,
            |record| {
                record.weight = weight;
            },
        );
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
            crate::profile::prepare();
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
/// use dynostats::{Measure, sink::MemorySink, Pipeline, RecordKind, sample::Sampler};
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
        Measured::new(self, name, Sampler::sample_global())
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
    use crate::counters::{self, Delta};
    use crate::pipeline::test_records;
    use crate::record::Record;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
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
            let start = counters::snapshot();
            cpu_work(4_000_000);
            let end = counters::snapshot();
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
