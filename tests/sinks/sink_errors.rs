//! A failing or panicking sink loses only its own copy of the records: the
//! loss is counted, the error is reported, and the other sinks and the
//! writer carry on.

use std::io;

use dynostats::{Error, Pipeline, Record, RecordKind, sink::Batch, sink::MemorySink, sink::Sink};

/// Fails every other batch, panics on the third.
struct FlakySink {
    calls: u32,
}

impl Sink for FlakySink {
    fn name(&self) -> String {
        "flaky".to_string()
    }
    fn write_batch(&mut self, _batch: &Batch) -> io::Result<()> {
        self.calls += 1;
        match self.calls {
            3 => panic!("a bug in a user's sink"),
            n if n % 2 == 0 => Err(io::Error::new(io::ErrorKind::BrokenPipe, "collector gone")),
            _ => Ok(()),
        }
    }
}

#[test]
fn failures_and_panics_are_counted_per_sink() {
    let mem = MemorySink::new();
    let pipeline = Pipeline::builder()
        .sink(FlakySink { calls: 0 })
        .sink(mem.clone())
        .status_interval(None)
        .build()
        .unwrap();
    let mut errors = Vec::new();
    // One record per flush, so one batch per call: ok, error, panic, error, ok.
    for i in 0..5 {
        assert!(pipeline.emit(Record::new(RecordKind::Region, &format!("r{i}"))));
        if let Err(e) = pipeline.flush() {
            errors.push(e);
        }
    }
    assert_eq!(errors.len(), 3);
    assert!(errors.iter().all(|e| matches!(e, Error::Io { .. })));
    assert!(
        errors[0].to_string().contains("collector gone"),
        "{}",
        errors[0]
    );
    assert!(errors[1].to_string().contains("panicked"), "{}", errors[1]);

    let stats = pipeline.shutdown().unwrap();
    let flaky = &stats.sinks[0];
    assert_eq!(flaky.written, 2);
    assert_eq!(flaky.dropped_sink_error, 3);
    assert_eq!(flaky.errors, 3);
    assert_eq!(flaky.last_error.as_deref(), Some("collector gone"));
    // The memory sink got all five.
    assert_eq!(stats.sinks[1].written, 5);
    assert_eq!(mem.len(), 5);
}

#[test]
fn repeated_sink_names_are_made_unique() {
    let pipeline = Pipeline::builder()
        .sink(MemorySink::new())
        .sink(MemorySink::new())
        .sink(MemorySink::new())
        .build()
        .unwrap();
    let names: Vec<_> = pipeline.stats().sinks.into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["memory", "memory#2", "memory#3"]);
}
