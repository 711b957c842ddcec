//! The `dynostats` command, run as a process on record files the tests
//! write with the library: one test binary for every subcommand (each
//! binary links the crate, so one instead of six saves CI time). The
//! tests only start child processes and share no process state, so they
//! run side by side.

#[path = "../common/clickhouse.rs"]
mod ch;
#[path = "../common/cli.rs"]
mod cli;
#[path = "../common/rng.rs"]
mod rng;

mod clickhouse;
mod clickhouse_answers;
mod compare;
mod flamegraph;
mod input;
mod pprof;
mod report;
mod sums;
mod timeseries;
mod top;
mod trace;
mod width;
