// Own test binary: it counts allocations with a global allocator.
//! Outside a sampled region a scope does nothing: no profile record, no
//! bookkeeping (the profiler's own counters do not move), no allocation
//! (counted by this test's allocator) and no timer read.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use dynostats::profile;
use dynostats::sample::Sampler;
use dynostats::sink::MemorySink;
use dynostats::{Measure, Pipeline, RecordKind, Region};

/// Counts the calling thread's allocations.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is passed to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|a| a.set(a.get() + 1));
        // SAFETY: the caller's layout, as `GlobalAlloc::alloc` requires.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

fn scopes(n: usize) {
    for _ in 0..n {
        let outer = dynostats::scope("outer");
        assert_eq!(outer.is_active(), profile::is_profiling());
        dynostats::scope_fn("inner", || std::hint::black_box(1 + 1));
        drop(outer);
    }
}

#[test]
fn unsampled_scopes_do_no_bookkeeping_allocate_nothing_and_emit_no_profile() {
    let mem = MemorySink::new();
    let pipeline = Pipeline::builder().sink(mem.clone()).build().unwrap();
    let _scope = pipeline.scoped();
    // Warm up the thread-locals the checks touch.
    scopes(1);
    let before = profile::stats();
    let allocated = allocations();

    // No region at all.
    assert!(!profile::is_profiling());
    scopes(1000);
    // A region the sampler did not pick.
    let never = Sampler::new(0);
    let guard = Region::with_sampler(&never, "unsampled").start();
    assert!(!guard.is_sampled() && !profile::is_profiling());
    scopes(1000);
    drop(guard);
    assert_eq!(allocations(), allocated, "scopes allocated");

    // An unsampled future: its polls install nothing either.
    let mut fut = Box::pin(async { scopes(1000) }.measured_with("unsampled-future", &never));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(fut.as_mut().poll(&mut cx).is_ready());
    drop(fut);

    assert_eq!(
        profile::stats(),
        before,
        "the profiler did some bookkeeping"
    );
    pipeline.flush().unwrap();
    assert!(mem.records_of(RecordKind::Profile).is_empty());

    // And the same scopes in a sampled region are measured.
    Region::forced("sampled").run(|| scopes(3));
    let after = profile::stats();
    assert_eq!(after.profiles, before.profiles + 1);
    assert_eq!(after.scopes, before.scopes + 6);
    assert_eq!(after.timer_reads, before.timer_reads + 12);
    pipeline.flush().unwrap();
    assert_eq!(mem.records_of(RecordKind::Profile).len(), 1);
}
