//! Reading records back and answering with them: damaged files, the
//! report's memory bound and quantile sketch, `compare`'s statistics and
//! `timeseries`' alerts. One test binary instead of five (each binary
//! links the crate); the tests only read and compute, with no
//! process-wide state, so they run side by side.

#[path = "../common/rng.rs"]
mod rng;

mod compare_calibration;
mod corrupt_file;
mod report_memory;
mod report_sketch;
mod timeseries_alerts;
