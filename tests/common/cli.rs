//! Helpers of the tests that run the `dynostats` binary on record files
//! they write with the library. Included by path
//! (`#[path = "common/cli.rs"] mod cli;`).
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use dynostats::record::{Detail, ProfileNode};
use dynostats::{Record, RecordKind};

/// The binary with `args`, its tables laid out whatever the terminal the
/// tests run in: no `COLUMNS` width, no `NO_COLOR` (output is piped, so
/// there is no colour anyway).
pub fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dynostats"));
    command
        .args(args)
        .env_remove("COLUMNS")
        .env_remove("NO_COLOR");
    command
}

/// Runs the binary with `args`.
pub fn run(args: &[&str]) -> Output {
    command(args).output().expect("run dynostats")
}

/// Runs the binary with `args`, `input` on its standard input.
pub fn run_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run dynostats");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// Output as text; the binary writes UTF-8 only, so anything else fails
/// the test.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("the output is UTF-8")
}

/// Standard output parsed as one JSON document.
pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)))
}

/// Writes `records` to `path` as the sinks do (MessagePack, one after the
/// other).
pub fn write(path: &Path, records: &[Record]) {
    let bytes: Vec<u8> = records.iter().flat_map(Record::to_msgpack).collect();
    std::fs::write(path, bytes).unwrap();
}

/// One node of a call tree: (name, parent, calls, inclusive, exclusive).
pub type Node = (&'static str, Option<u32>, u64, i64, i64);

/// A profile record of `name` standing for `weight` requests, its call
/// tree measured in `timer`, the root's inclusive amount as its total.
pub fn profile(name: &str, weight: u64, timer: &str, overhead: i64, nodes: &[Node]) -> Record {
    let mut r = Record::new(RecordKind::Profile, name);
    r.weight = weight;
    let mut detail = Detail::default();
    detail.timer = Some(timer.into());
    detail.overhead = Some(overhead);
    detail.total = Some(nodes[0].3);
    detail.nodes = nodes
        .iter()
        .map(|&(name, parent, calls, inclusive, exclusive)| {
            let mut n = ProfileNode::default();
            n.name = name.into();
            n.parent = parent;
            n.calls = calls;
            n.inclusive = inclusive;
            n.exclusive = exclusive;
            n
        })
        .collect();
    r.detail = Some(Box::new(detail));
    r
}
