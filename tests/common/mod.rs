//! Helpers shared by the test binaries. Each binary states its own scenario
//! and uses the part it needs: a memory pipeline, records read back from a
//! file, the fork harness, a fake kernel for perf syscalls, a Forward
//! collector, CPU and memory burners. (`pmu.rs` is included by the hardware
//! suites on their own: they run in the emulated-PMU guest.)
#![allow(dead_code)]

pub mod fake_kernel;
pub mod fork;
#[cfg(feature = "forward")]
pub mod forward_collector;

use std::path::Path;

use dynostats::sink::MemorySink;
use dynostats::{Pipeline, Record};

/// A pipeline writing to a new [`MemorySink`], without status records (so
/// the sink holds exactly what the test emitted).
pub fn memory_pipeline() -> (Pipeline, MemorySink) {
    let mem = MemorySink::new();
    let pipeline = Pipeline::builder()
        .sink(mem.clone())
        .status_interval(None)
        .build()
        .expect("a memory pipeline");
    (pipeline, mem)
}

/// Every record of the file at `path`, read with the crate's reader;
/// panics on damage, naming it.
pub fn read_records(path: &Path) -> Vec<Record> {
    let file =
        std::fs::File::open(path).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    dynostats::read(file)
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// CPU time of the calling thread, from `CLOCK_THREAD_CPUTIME_ID` directly
/// (independent of the library under test).
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the duration of the call.
    let ret = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(ret, 0);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Spins until the calling thread has used `ns` more nanoseconds of CPU,
/// however long that takes on a loaded machine.
pub fn burn_cpu_ns(ns: u64) {
    let start = thread_cpu_ns();
    let mut x = 1u64;
    while thread_cpu_ns() - start < ns {
        for _ in 0..1000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
    }
}

/// Spins for `ms` milliseconds of wall time (however much CPU that is).
pub fn spin_for_ms(ms: u64) -> u64 {
    let start = std::time::Instant::now();
    let mut x = 0u64;
    while start.elapsed().as_millis() < u128::from(ms) {
        for i in 0..1000u64 {
            x = x.wrapping_mul(31).wrapping_add(std::hint::black_box(i));
        }
    }
    x
}

/// Nanoseconds this thread has spent runnable but waiting for a CPU
/// (`run_delay` in `/proc/thread-self/schedstat`), if the kernel tracks it.
pub fn run_delay_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().nth(1)?.parse().ok()
}

/// Allocates `bytes` of fresh memory and writes one byte per 4 KiB page, so
/// every page becomes resident (and faults once). Keep the result alive for
/// as long as the memory must stay resident.
pub fn touch_fresh_memory(bytes: usize) -> Vec<u8> {
    let mut v = vec![0u8; bytes];
    for i in (0..bytes).step_by(4096) {
        v[i] = 1;
    }
    std::hint::black_box(v)
}
