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
//! [`Delta`], and [`probe()`] says why. CPU time, wall time and RSS still
//! work.
//!
//! # In libraries
//!
//! Instrument code, never configure where records go: [`measure`],
//! [`measure_fn`] and [`Region`] measure 1 in N code regions
//! ([`set_sample_rate`]), [`Measure::measured`] measures a future per poll,
//! and [`scope`] marks the parts whose share of a sampled region the
//! profiler reports ([`profile`]).
//! Until the executable installs a pipeline, all of it is one branch.
//!
//! # In executables
//!
//! Build a [`Pipeline`] (a bounded queue and one writer thread) with its
//! [`sink`]s ([`sink::FileSink`], [`sink::UdpSink`], [`sink::ForwardSink`],
//! [`sink::MemorySink`] or your own), [`install`] it once for the process
//! and shut it down before exiting. An axum or tower service adds
//! [`tower::MeasureLayer`] (feature `tower`). In tests, scope a pipeline to
//! the test's thread with [`Pipeline::scoped`].
//!
//! # In a service
//!
//! The whole setup of an axum service: a pipeline with a file sink,
//! installed once; the layer measuring 1 request in 100; the pipeline shut
//! down after the server, so that every accepted record is written.
//!
//! ```no_run
//! # #[cfg(all(feature = "tower", feature = "axum"))]
//! # async fn serve() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{Router, routing::get};
//! use dynostats::{Pipeline, sink::FileSink, tower::MeasureLayer};
//!
//! let pipeline = Pipeline::builder()
//!     .sink(FileSink::create("requests.msgpack")?)
//!     .label("host", "web-1")
//!     .build()?;
//! let pipeline = dynostats::install(pipeline).map_err(|_| "installed twice")?;
//! let app = Router::new()
//!     .route("/users/{id}", get(|| async { "a user" }))
//!     .layer(MeasureLayer::new(100).axum_body());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app)
//!     .with_graceful_shutdown(async { tokio::signal::ctrl_c().await.ok(); })
//!     .await?;
//! let stats = pipeline.shutdown()?; // writes every record accepted so far
//! eprintln!("{stats}");
//! # Ok(())
//! # }
//! ```
//!
//! Then `dynostats report requests.msgpack` (install the command with
//! `cargo install dynostats --features cli`, or `cargo install --path .
//! --features cli` from a checkout). The guides beside the crate:
//! `README.md` (the tour, profiling, the pipeline), `docs/records.md` (the
//! record format), `docs/compare.md` (intervals and the deploy gate),
//! `docs/flamegraph.md`, `docs/pprof.md` and `docs/clickhouse.md` (the
//! fleet path).
//!
//! # Reading records back
//!
//! [`read()`] reads records from any `io::Read`; a [`Report`] aggregates them
//! per endpoint and per region (the `dynostats report` command, feature
//! `cli`). The record format is documented in `docs/records.md`.
//!
//! # Modules
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`counters`] | per-thread counters: [`Snapshot`], [`Delta`], the counter set and read path, why a counter is absent |
//! | [`sample`] | 1-in-N decisions: [`sample::Sampler`] and the global rate |
//! | [`record`] | the [`Record`] schema, its labels, encoding and [`read()`] |
//! | [`sink`] | where records go: the [`sink::Sink`] trait and the sinks |
//! | [`pipeline`] | the queue, the writer thread, [`emit`], [`install`], statistics and status records |
//! | [`instrument`] | sampled guards and futures measured per poll |
//! | [`probe`](mod@probe) | what this machine can measure, why not, and at what cost |
//! | [`profile`] | the sampled scope profiler: [`scope`], [`scope_fn`], call trees in `profile` records |
//! | [`tower`] | the tower middleware (feature `tower`) |
//! | `criterion` | criterion `Measurement`s in instructions, cycles and CPU time (feature `criterion`) |
//! | [`report`] | aggregation of records for the `dynostats` command |
//!
//! # Crate features
//!
//! - `tower` (default): [`tower::MeasureLayer`] for any
//!   `Service<http::Request<B>>`.
//! - `axum` (default): endpoint names from axum's `MatchedPath`.
//! - `forward` (default): [`sink::ForwardSink`], the Fluentd Forward sink.
//! - `cli`: the `dynostats` command.
//! - `criterion`: `dynostats::criterion`, criterion measurements in
//!   instructions, cycles and CPU time.
//! - `tracing`: `tracing::DynostatsLayer`, a `tracing-subscriber` layer that
//!   makes spans profiler scopes.
//!
//! See `ARCHITECTURE.md` for the layers and the data flow.
#![deny(missing_docs)]
#![deny(unsafe_code)]
#![warn(unreachable_pub)]
#![warn(rust_2018_idioms)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod clickhouse;
pub mod counters;
#[cfg(feature = "criterion")]
#[cfg_attr(docsrs, doc(cfg(feature = "criterion")))]
pub mod criterion;
mod error;
pub mod instrument;
pub mod pipeline;
pub mod probe;
pub mod profile;
pub mod record;
pub mod report;
pub mod sample;
pub mod sink;
#[allow(unsafe_code)]
mod sys;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;
#[cfg(feature = "tracing")]
#[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
pub mod tracing;

pub use counters::{Delta, Snapshot, snapshot};
pub use error::{ConfigError, ConfigErrorKind, Error};
pub use instrument::{Measure, Measured, Region, RegionGuard, measure, measure_fn};
pub use pipeline::{Pipeline, emit, install};
pub use probe::probe;
pub use profile::{scope, scope_fn};
pub use record::{Record, RecordKind, read};
pub use report::Report;
pub use sample::{sample_rate, set_sample_rate};

// The README's examples are compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// The scripted kernel of the integration tests (perf-event2's `hooks`), for
/// the unit tests of code whose state is a thread-local or runs on the
/// writer thread (`counters::thread`, `pipeline::status`).
#[cfg(test)]
#[allow(unsafe_code, unreachable_pub)]
#[path = "../tests/common/fake_kernel.rs"]
mod fake_kernel;
