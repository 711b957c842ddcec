// Own test binary: it counts allocations with a global allocator.
//! Records cost the measured thread no heap allocation: names are inline
//! (or static), methods and errors static, and the record moves into the queue. (A
//! sampled guard allocates its own state once, freed on the same thread;
//! labels, when a record has any, are still a map.) Counted with a global
//! allocator that counts the calling thread's allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use dynostats::record::Name;
use dynostats::sink::MemorySink;
use dynostats::{Pipeline, Record, RecordKind, Region};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is passed through to `System` unchanged; counting
// touches only a const-initialized thread-local `Cell`, which allocates
// nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded with the caller's arguments.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_in(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

fn pipeline() -> (Pipeline, MemorySink) {
    let mem = MemorySink::new();
    let pipeline = Pipeline::builder()
        .sink(mem.clone())
        .status_interval(None)
        .queue_capacity(8192)
        // No early wake-up of the writer within these tests: the wake-up is
        // a message on the pipeline's control channel, which allocates a
        // block now and then; this test is about the record.
        .batch_size(4096)
        .build()
        .unwrap();
    (pipeline, mem)
}

#[test]
fn a_request_record_is_made_and_emitted_without_allocating() {
    let (pipeline, mem) = pipeline();
    // Warm up: the thread's first emit may set up thread-locals.
    pipeline.emit(Record::new(RecordKind::Request, "warm-up"));
    let n = 1000;
    let allocations = allocations_in(|| {
        for i in 0..n {
            let mut r = Record::new(RecordKind::Request, "/users/{id}");
            r.method = Some("GET".into());
            r.status = Some(200);
            r.instructions = Some(i);
            r.error = (i % 10 == 0).then(|| "service_error".into());
            assert!(pipeline.emit(r));
        }
    });
    assert_eq!(allocations, 0, "{allocations} allocations for {n} records");
    pipeline.flush().unwrap();
    let records = mem.records();
    assert_eq!(records.len() as u64, n + 1);
    assert_eq!(records[1].name, "/users/{id}");
    assert_eq!(records[1].method.as_deref(), Some("GET"));
}

#[test]
fn a_long_name_is_the_one_case_that_allocates() {
    let long = "x".repeat(Name::INLINE + 1);
    let short = "y".repeat(Name::INLINE);
    assert_eq!(
        allocations_in(|| drop(Record::new(RecordKind::Region, &short))),
        0
    );
    assert_eq!(
        allocations_in(|| drop(Record::new(RecordKind::Region, &long))),
        1
    );
}

#[test]
fn a_sampled_guard_allocates_only_its_own_state() {
    let (pipeline, mem) = pipeline();
    let _scope = pipeline.scoped();
    // Opens this thread's counters and thread-locals.
    Region::forced("warm-up").run(|| ());
    let n = 100;
    let allocations = allocations_in(|| {
        for _ in 0..n {
            Region::forced("parse").run(|| std::hint::black_box(1 + 1));
        }
    });
    // One box (the record and the start snapshot) per sampled region,
    // dropped on this thread when the record moves into the queue.
    assert_eq!(allocations, n, "{allocations} allocations for {n} regions");
    pipeline.flush().unwrap();
    assert_eq!(mem.records_of(RecordKind::Region).len() as u64, n + 1);
}
