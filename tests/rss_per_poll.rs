// Own test binary: RSS is process-wide, and another test freeing memory would shrink it.
//! RSS in the records of futures and requests measured per poll: taken at
//! the start of the first poll (or `call`) and when the record is built,
//! however many polls lie between.
//!
//! Alone in its test binary, like `tests/rss.rs` (RSS is process-wide, and
//! another test freeing memory at the same time would shrink it); its tests
//! take turns.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use common::touch_fresh_memory;
use dynostats::{Measure, Pipeline, Record, RecordKind, sample::Sampler, sink::MemorySink};

/// Memory allocated and touched between the first and the last poll.
const SIZE: usize = 40 << 20;
/// How much RSS must grow by: less than `SIZE`, since the allocator or the
/// pipeline's writer thread may give a little memory back meanwhile.
const GROWN: u64 = 32 << 20;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `f` with a pipeline scoped to this thread, then returns the records
/// of `kind`.
fn recorded(kind: RecordKind, f: impl FnOnce()) -> Vec<Record> {
    let memory = MemorySink::new();
    let pipeline = Pipeline::builder()
        .sink(memory.clone())
        .status_interval(None)
        .build()
        .unwrap();
    pipeline.in_scope(f);
    pipeline.flush().unwrap();
    memory.records_of(kind)
}

fn grown(r: &Record) -> u64 {
    let (Some(start), Some(end)) = (r.rss_start, r.rss_end) else {
        panic!("RSS at the start and the end: {r:?}");
    };
    end.saturating_sub(start)
}

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

#[test]
fn measured_future_rss_spans_its_first_poll_to_its_end() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut cx = Context::from_waker(Waker::noop());
    let mut held = Vec::new();
    let records = recorded(RecordKind::Region, || {
        // Completed: 20 polls, the memory touched after the 10th.
        let mut fut = Box::pin(YieldTimes(19).measured_with("completed", &Sampler::new(1)));
        for _ in 0..10 {
            assert!(fut.as_mut().poll(&mut cx).is_pending());
        }
        held.push(touch_fresh_memory(SIZE));
        while fut.as_mut().poll(&mut cx).is_pending() {}

        // Cancelled: dropped after 10 polls, the memory touched after the
        // 5th; RSS is read when the record is built, at the drop.
        let mut fut = Box::pin(YieldTimes(100).measured_with("cancelled", &Sampler::new(1)));
        for _ in 0..5 {
            assert!(fut.as_mut().poll(&mut cx).is_pending());
        }
        held.push(touch_fresh_memory(SIZE));
        for _ in 0..5 {
            assert!(fut.as_mut().poll(&mut cx).is_pending());
        }
        drop(fut);
    });
    drop(held);
    let find = |name: &str| {
        records
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no record {name}: {records:?}"))
    };
    let completed = find("completed");
    assert_eq!(completed.polls, Some(20));
    assert!(!completed.cancelled);
    assert!(grown(completed) >= GROWN, "{completed:?}");
    let cancelled = find("cancelled");
    assert_eq!(cancelled.polls, Some(10));
    assert!(cancelled.cancelled);
    assert!(grown(cancelled) >= GROWN, "{cancelled:?}");
}

#[cfg(feature = "tower")]
#[test]
fn request_rss_spans_its_call_to_the_end_of_its_body() {
    use std::convert::Infallible;

    use bytes::Bytes;
    use http::{Request, Response};
    use http_body::Body;
    use tower::{Layer, Service, service_fn};

    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut cx = Context::from_waker(Waker::noop());
    let mut frames = Vec::new();
    let records = recorded(RecordKind::Request, || {
        // The handler touches the memory and the body hands it out: it is
        // still resident when the body ends and the record is built.
        let mut svc =
            dynostats::tower::MeasureLayer::new(1).layer(service_fn(|_: Request<()>| async {
                Ok::<_, Infallible>(Response::new(http_body_util::Full::new(Bytes::from(
                    touch_fresh_memory(SIZE),
                ))))
            }));
        let mut response = Box::pin(svc.call(Request::new(())));
        let Poll::Ready(Ok(response)) = response.as_mut().poll(&mut cx) else {
            panic!("the handler is ready at once");
        };
        let mut body = Box::pin(response.into_body());
        while let Poll::Ready(Some(frame)) = body.as_mut().poll_frame(&mut cx) {
            frames.push(frame.unwrap());
        }
        assert!(body.is_end_stream());
    });
    let data: usize = frames
        .iter()
        .filter_map(|f| f.data_ref())
        .map(Bytes::len)
        .sum();
    assert_eq!(data, SIZE);
    drop(frames);
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r.status, Some(200));
    assert!(!r.cancelled);
    assert!(grown(r) >= GROWN, "{r:?}");
}
