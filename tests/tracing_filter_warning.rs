// Own test binary: it installs a global tracing subscriber and the profiler's
// settings, and the warning it checks is once per process.
//! A global `LevelFilter::WARN` hides `#[instrument]` spans from
//! `DynostatsLayer`: the profile of a sampled region has no span scope,
//! and the layer says so once, as a `tracing` warning (which that filter
//! lets through).
#![cfg(feature = "tracing")]

use std::io;
use std::sync::{Arc, Mutex};

use dynostats::profile::{self, CallTree, ProfileConfig};
use dynostats::sink::MemorySink;
use dynostats::tracing::DynostatsLayer;
use dynostats::{Pipeline, RecordKind, Region};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;

/// What the output layer wrote.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[tracing::instrument]
fn price(items: u32) -> u32 {
    (0..items).map(|i| i * 3).sum()
}

#[test]
fn a_global_warn_filter_hides_spans_and_is_warned_about_once() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(move || writer.clone())
                .with_ansi(false),
        )
        .with(DynostatsLayer::new())
        .with(LevelFilter::WARN);
    tracing::subscriber::set_global_default(subscriber).unwrap();
    profile::configure(ProfileConfig::default());

    let mem = MemorySink::new();
    let pipeline = Pipeline::builder().sink(mem.clone()).build().unwrap();
    let _scope = pipeline.scoped();
    for _ in 0..3 {
        Region::forced("checkout").run(|| {
            let _scope = profile::scope("cart");
            price(10)
        });
    }
    pipeline.flush().unwrap();

    // The trap: the explicit scope is in the profile, the span is not.
    let profiles = mem.records_of(RecordKind::Profile);
    assert_eq!(profiles.len(), 3);
    let tree = CallTree::from_record(&profiles[0]).unwrap();
    assert_eq!(tree.path(1), ["checkout", "cart"]);
    assert!(
        (0..tree.nodes().len()).all(|i| !tree.path(i).contains(&"price")),
        "the span was filtered out, yet it is in the profile"
    );

    // The warning: once, at WARN, target dynostats, naming the level.
    let out = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let warnings: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("DynostatsLayer sees none"))
        .collect();
    assert_eq!(warnings.len(), 1, "{out}");
    assert!(warnings[0].contains(" WARN dynostats: "), "{}", warnings[0]);
    assert!(
        warnings[0].contains("maximum level is WARN"),
        "{}",
        warnings[0]
    );
}
