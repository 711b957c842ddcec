// Own test binary: it installs a global tracing subscriber.
//! `PipelineBuilder::log_summary` with the feature `tracing` and a global
//! subscriber: the line is a `tracing` event at INFO, target `dynostats`
//! (without a subscriber it goes to stderr).
#![cfg(feature = "tracing")]

use std::borrow::Cow;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dynostats::{Pipeline, Record, RecordKind, sink::MemorySink};

/// What the subscriber wrote.
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

#[test]
fn the_summary_is_an_info_event_of_target_dynostats() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .init();
    let pipeline = Pipeline::builder()
        .sink(MemorySink::new())
        .log_summary(Duration::from_secs(3600))
        .build()
        .unwrap();
    let mut record = Record::new(RecordKind::Request, "/users/{id}");
    record.method = Some(Cow::Borrowed("GET"));
    record.instructions = Some(812_000);
    pipeline.emit(record);
    pipeline.shutdown().unwrap();
    let out = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let line = out
        .lines()
        .find(|l| l.contains("requests sampled") || l.contains("request sampled"))
        .unwrap_or_else(|| panic!("no summary line in {out:?}"));
    assert!(
        line.contains(" INFO dynostats: dynostats: 1 request sampled in the last "),
        "{line}"
    );
    assert!(
        line.ends_with("; instructions per request: GET /users/{id} 812 k (1 sampled)"),
        "{line}"
    );
}
