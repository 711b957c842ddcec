// Own test binary: perf-event2 `hooks` (a scripted kernel) and the process-wide descriptor budget.
//! The cap on threads holding perf groups, with every perf system call
//! answered by a scripted fake kernel (perf-event2's `hooks`): beyond the
//! cap a thread opens no perf event at all, uses the software path, says
//! why, and is counted; a thread's exit gives its place back. Alone in its
//! binary: the budget is process-wide.

mod common;

use std::sync::{Arc, Barrier};

use common::fake_kernel::FakeKernel;
use dynostats::counters::{
    Counter, CounterSet, Counters, DescriptorBudget, ReadPath, descriptor_use,
    set_descriptor_budget,
};

const CAP: u32 = 3;
const THREADS: usize = 5;

/// Opens counters on a new thread under its own fake kernel: the read
/// path, the perf_event_open calls made, and the reasons given.
fn open_on_thread(
    holding: Option<(Arc<Barrier>, Arc<Barrier>)>,
) -> std::thread::JoinHandle<(ReadPath, usize, Vec<String>)> {
    std::thread::spawn(move || {
        let kernel = FakeKernel::new();
        let _hooks = kernel.install();
        let set = CounterSet::wall_only()
            .with(Counter::Instructions)
            .with(Counter::Cycles)
            .with(Counter::CpuTime)
            .with(Counter::ContextSwitches);
        let mut counters = Counters::open(set);
        if counters.source() == ReadPath::Software {
            // The software path reads no perf descriptor: CPU time from the
            // clock, context switches from getrusage.
            let s = counters.snapshot();
            assert!(s.cpu_ns.is_some());
            assert!(s.context_switches.is_some());
        }
        let result = (
            counters.source(),
            kernel.calls().len(),
            counters
                .unavailable()
                .iter()
                .map(|u| u.explanation())
                .collect(),
        );
        if let Some((holding, release)) = holding {
            holding.wait();
            release.wait();
        }
        drop(counters);
        result
    })
}

#[test]
fn perf_groups_are_capped_and_a_thread_exit_gives_its_place_back() {
    let mut budget = DescriptorBudget::default();
    budget.max_perf_threads = CAP;
    // The fake kernel's descriptors are socket pairs: only the cap counts here.
    budget.reserve = Some(0);
    set_descriptor_budget(budget);

    let holding = Arc::new(Barrier::new(THREADS + 1));
    let release = Arc::new(Barrier::new(THREADS + 1));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| open_on_thread(Some((holding.clone(), release.clone()))))
        .collect();
    holding.wait();
    let during = descriptor_use();
    release.wait();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();

    let held: Vec<_> = results.iter().filter(|r| r.0 == ReadPath::Read).collect();
    let refused: Vec<_> = results
        .iter()
        .filter(|r| r.0 == ReadPath::Software)
        .collect();
    assert_eq!(held.len(), CAP as usize, "{results:?}");
    assert_eq!(refused.len(), THREADS - CAP as usize, "{results:?}");
    for (_, calls, reasons) in &held {
        assert_eq!(*calls, 4);
        assert!(reasons.is_empty(), "{reasons:?}");
    }
    for (_, calls, reasons) in &refused {
        // Not one perf_event_open beyond the cap.
        assert_eq!(*calls, 0);
        // Instructions and cycles, each with the budget's reason (context
        // switches come from getrusage).
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(
            reasons.iter().all(
                |r| r.starts_with("descriptor budget: 3 threads already hold")
                    && r.contains("max_perf_threads")
            ),
            "{reasons:?}"
        );
    }
    assert_eq!(during.perf_groups_held, u64::from(CAP));
    assert_eq!(during.perf_descriptors_held, 4 * u64::from(CAP));
    assert_eq!(during.threads_refused, (THREADS - CAP as usize) as u64);
    assert_eq!(during.refusals, (THREADS - CAP as usize) as u64);

    // Every thread has exited: the places are back, and a new thread opens
    // its group.
    let after = descriptor_use();
    assert_eq!(
        (
            after.perf_groups_held,
            after.perf_descriptors_held,
            after.threads_refused
        ),
        (0, 0, 0)
    );
    let (path, calls, reasons) = open_on_thread(None).join().unwrap();
    assert_eq!((path, calls), (ReadPath::Read, 4), "{reasons:?}");
}
