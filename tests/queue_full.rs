//! A full queue: emitting still returns at once (the sink below blocks the
//! writer, so an emit that waited for room would hang this test), and the
//! drop count equals the records that were not written.

use std::io;
use std::sync::{Arc, Condvar, Mutex};

use dynostats::{Pipeline, Record, RecordKind, Region, sample::Sampler, sink::Batch, sink::Sink};

#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Default)]
struct GateState {
    open: bool,
    entered: bool,
    written: u64,
}

/// A sink whose writes block until the gate opens.
struct BlockingSink(Arc<Gate>);

impl Sink for BlockingSink {
    fn name(&self) -> String {
        "blocking".to_string()
    }
    fn write_batch(&mut self, batch: &Batch) -> io::Result<()> {
        let gate = &self.0;
        let mut state = gate.state.lock().unwrap();
        state.entered = true;
        gate.changed.notify_all();
        while !state.open {
            state = gate.changed.wait(state).unwrap();
        }
        state.written += batch.len() as u64;
        Ok(())
    }
}

#[test]
fn a_blocked_writer_never_blocks_emit_and_drops_are_counted() {
    const CAPACITY: usize = 8;
    let gate = Arc::new(Gate::default());
    let pipeline = Pipeline::builder()
        .sink(BlockingSink(Arc::clone(&gate)))
        .queue_capacity(CAPACITY)
        .batch_size(1)
        .status_interval(None)
        .build()
        .unwrap();

    // The writer takes the first record and blocks in the sink.
    assert!(pipeline.emit(Record::new(RecordKind::Region, "first")));
    {
        let mut state = gate.state.lock().unwrap();
        while !state.entered {
            state = gate.changed.wait(state).unwrap();
        }
    }

    // The queue fills up, then every further record is dropped.
    let accepted = (0..100)
        .filter(|i| pipeline.emit(Record::new(RecordKind::Region, &format!("r{i}"))))
        .count();
    assert_eq!(accepted, CAPACITY);

    // Measured regions on this thread behave the same way.
    let every = Sampler::new(1);
    pipeline.in_scope(|| {
        for _ in 0..50 {
            let guard = Region::with_sampler(&every, "measured").start();
            assert!(guard.is_sampled());
        }
    });

    let stats = pipeline.stats();
    assert_eq!(stats.accepted, 1 + CAPACITY as u64);
    assert_eq!(stats.dropped_queue_full, 100 - CAPACITY as u64 + 50);

    {
        let mut state = gate.state.lock().unwrap();
        state.open = true;
        gate.changed.notify_all();
    }
    let stats = pipeline.shutdown().unwrap();
    let emitted = 1 + 100 + 50;
    let written = gate.state.lock().unwrap().written;
    assert_eq!(written, 1 + CAPACITY as u64);
    assert_eq!(stats.sinks[0].written, written);
    assert_eq!(stats.dropped_queue_full, emitted - written);
    assert_eq!(stats.sinks[0].dropped_sink_error, 0);
}
