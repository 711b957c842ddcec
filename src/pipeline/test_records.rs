//! The records of the crate's unit tests, read back through the real
//! pipeline: a global [`Pipeline`] writing to a [`MemorySink`], installed
//! once per test binary.
//!
//! Tests run in parallel and share the sink, so each test reads only the
//! records it can tell apart (its own record name or label).

use std::sync::OnceLock;

use super::{Pipeline, global};
use crate::record::Record;
use crate::sink::MemorySink;

static SINK: OnceLock<MemorySink> = OnceLock::new();

/// Installs the global pipeline, once per test binary; later calls do
/// nothing. Call it before measuring: futures and requests are measured
/// only while a pipeline is installed.
pub(crate) fn install() {
    SINK.get_or_init(|| {
        let memory = MemorySink::new();
        let pipeline = Pipeline::builder()
            .sink(memory.clone())
            .status_interval(None)
            .build()
            .expect("the unit tests' pipeline");
        if global::install(pipeline).is_err() {
            panic!("a global pipeline is already installed: the unit tests install only this one");
        }
        memory
    });
}

/// Writes out what was emitted so far and returns the records that match
/// `pred`, in the order they were emitted (there are no status records).
pub(crate) fn matching(pred: impl Fn(&Record) -> bool) -> Vec<Record> {
    install();
    let pipeline = global::global_pipeline().expect("installed above");
    pipeline.flush().expect("flush of the unit tests' pipeline");
    SINK.get()
        .expect("installed above")
        .records()
        .into_iter()
        .filter(|r| pred(r))
        .collect()
}

/// The records named `name` (see [`matching`]).
pub(crate) fn named(name: &str) -> Vec<Record> {
    matching(|r| r.name == name)
}
