//! CPU-instruction accounting for services on Linux.
//!
//! `dynostats` tells a service how many CPU instructions, CPU cycles, CPU
//! nanoseconds, wall nanoseconds and bytes of resident memory a request or
//! code region costs, on a 1-in-N sample, and ships one MessagePack record
//! per sample to a log pipeline.
//!
//! ```
//! let start = dynostats::snapshot();
//! let sum: u64 = (0..100_000u64).sum();
//! let end = dynostats::snapshot();
//! let delta = dynostats::Delta::between(&start, &end);
//! assert_eq!(sum, 4_999_950_000);
//! println!("wall {} ns, cpu {:?} ns, instructions {:?}", delta.wall_ns, delta.cpu_ns, delta.instructions);
//! ```
//!
//! # Why instructions
//!
//! Unlike time, an instruction count barely moves with machine load, CPU
//! frequency or noisy neighbours, so a 1% regression is visible.
//!
//! # Machines without a PMU
//!
//! Virtual machines often have no virtual PMU, `perf_event_paranoid` may
//! forbid hardware counters, seccomp may forbid `perf_event_open`. Nothing
//! panics and no number is invented: such counters are `None` in every
//! [`Delta`], and [`probe`] says why. CPU time, wall time and RSS still work.
//!
//! # Sampled regions and shipping records
//!
//! [`measure`] (or [`measure_fn`], [`Region`]) measures 1 in N regions
//! ([`set_sample_rate`]) and hands one [`Record`] per sample to [`emit`].
//! A [`Pipeline`] (a bounded queue and one writer thread) writes records to
//! its [`Sink`]s: [`FileSink`], [`UdpSink`], [`ForwardSink`],
//! [`MemorySink`] or your own. In executables, [`install`] one pipeline
//! for the process and shut it down before exiting; in tests, scope one to
//! the test's thread with [`Pipeline::scoped`]. [`read`] reads records
//! back, and a [`Report`] aggregates them per endpoint and per region (the
//! `dynostats report` command, feature `cli`). The record format is
//! documented in `docs/records.md`.
//!
//! See `ARCHITECTURE.md` for the modules and the data flow.
#![deny(missing_docs)]
#![warn(rust_2018_idioms)]

mod counters;
#[cfg(feature = "criterion")]
pub mod criterion;
mod error;
mod measured;
#[cfg(feature = "tower")]
mod middleware;
mod pipeline;
mod probe;
mod read;
mod record;
mod region;
mod report;
mod sample;
mod sink;
mod sys;

pub use counters::{
    Counter, CounterSet, Counters, Delta, ReadPath, Snapshot, set_thread_counters, snapshot,
    snapshot_end, snapshot_start, thread_counter_set, with_thread_counters,
};
pub use error::{Error, Unavailable};
pub use measured::{Measure, Measured};
#[cfg(feature = "tower")]
pub use middleware::{
    HeaderLabel, LabelRequest, Labels, MeasureLayer, MeasureService, MeasuredBody, OTHER,
    ResponseFuture, UNMATCHED,
};
pub use pipeline::{
    DEFAULT_BATCH_INTERVAL, DEFAULT_BATCH_SIZE, DEFAULT_QUEUE_CAPACITY, DEFAULT_STATUS_INTERVAL,
    InstallError, Pipeline, PipelineBuilder, PipelineStats, ScopedPipeline, SinkStats, emit,
    global_pipeline, install,
};
pub use probe::{
    CounterProbe, KNOWN_LOOP_INSTRUCTIONS_PER_ITERATION, Probe, SelfCheck, known_loop, probe,
    self_check,
};
pub use read::{DEFAULT_MAX_RECORD_LEN, RecordReader, read};
pub use record::{
    Detail, MAX_LABEL_LEN, MAX_LABELS, MAX_NAME_LEN, Record, RecordKind, SCHEMA_VERSION,
};
pub use region::{
    DEFAULT_SAMPLE_RATE, Region, RegionGuard, measure, measure_fn, sample_rate, set_sample_rate,
};
pub use report::{Drops, Group, Metric, MetricStats, ReadError, Report, SinkDrops, SortBy, Table};
pub use sample::Sampler;
pub use sink::{
    Batch, DEFAULT_KEEP, EncodedRecord, FILE_MODE, FileSink, FileSinkBuilder, MemorySink, Sink,
};
pub use sink::{DEFAULT_DATAGRAM_LIMIT, MAX_DATAGRAM, UdpSink, UdpSinkBuilder, UdpStats};
pub use sink::{ForwardSink, ForwardSinkBuilder, ForwardStats, TimeEncoding};

// The README's examples are compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
