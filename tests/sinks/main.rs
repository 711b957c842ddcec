//! Pipelines and their sinks: memory, file, Forward and UDP sinks, queue and
//! backlog limits, shutdown, status records, and Python's reading of a file
//! sink's output. One test binary instead of fourteen (each binary links
//! the crate). Every test builds its own pipeline and scopes it to its own
//! threads: nothing here installs the global pipeline, sets the global
//! sample rate or any other process-wide setting, so the tests run side by
//! side. (`tests/file_sink.rs` stays in its own binary: one of its tests
//! sets the process's umask.)

#[path = "../common/mod.rs"]
mod common;

mod file_sink_default_cap;
mod file_sink_hostile;
mod file_sink_owner;
#[cfg(feature = "forward")]
mod forward_resend;
#[cfg(feature = "forward")]
mod forward_sink;
mod memory_round_trip;
#[cfg(feature = "forward")]
mod network_pipeline;
mod python_msgpack;
mod queue_full;
mod shutdown;
#[cfg(feature = "forward")]
mod shutdown_loss;
mod sink_errors;
mod sink_isolation;
mod slow_getter;
mod stats_line;
mod status;
mod summary_line;
mod udp_sink;
mod writer_handoff;
