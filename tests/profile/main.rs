//! The profiler: caps, the fallback timer, recursion, the `tracing` layer,
//! a known call tree. One test binary instead of five (each binary links
//! the crate). The profiler's configuration (`profile::configure`) and its
//! counters (`profile::stats`) are process-wide, so each test takes
//! [`hold_profiler`] first and they run one at a time; none installs
//! the global pipeline (`tests/profile_async.rs` does, and stays alone).

use std::sync::{Mutex, MutexGuard};

#[path = "../common/mod.rs"]
mod common;

mod caps;
mod fallback;
mod recursion;
#[cfg(feature = "tracing")]
mod tracing_layer;
mod tree;

/// Holds the process-wide profiler for one test: its configuration and
/// counters cannot change under it. A test that failed does not stop the
/// others (the lock's poisoning is ignored).
pub fn hold_profiler() -> MutexGuard<'static, ()> {
    static PROFILER: Mutex<()> = Mutex::new(());
    PROFILER.lock().unwrap_or_else(|e| e.into_inner())
}
