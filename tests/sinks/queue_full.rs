//! A full queue and a full sink backlog: emitting still returns at once
//! (the sink below blocks, so an emit that waited for room would hang this
//! test), and every record is either written or counted as dropped, at the
//! place it was dropped.

use std::io;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

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

/// Opens the gate when dropped, also when an assertion fails (otherwise
/// the pipeline's shutdown would wait for the sink for ever).
struct Opener(Arc<Gate>);

impl Drop for Opener {
    fn drop(&mut self) {
        let mut state = self.0.state.lock().unwrap_or_else(|p| p.into_inner());
        state.open = true;
        self.0.changed.notify_all();
    }
}

fn wait_entered(gate: &Gate) {
    let mut state = gate.state.lock().unwrap();
    while !state.entered {
        state = gate.changed.wait(state).unwrap();
    }
}

#[test]
fn a_blocked_sink_never_blocks_emit_and_its_drops_are_its_own() {
    const BACKLOG: u64 = 4;
    let gate = Arc::new(Gate::default());
    let pipeline = Pipeline::builder()
        .sink(BlockingSink(Arc::clone(&gate)))
        .queue_capacity(1024)
        .batch_size(1)
        .sink_backlog(BACKLOG)
        .status_interval(None)
        .build()
        .unwrap();
    let opener = Opener(Arc::clone(&gate));

    // The sink's thread takes the first record and blocks in the sink.
    assert!(pipeline.emit(Record::new(RecordKind::Region, "first")));
    wait_entered(&gate);

    // The writer goes on draining the queue; the sink's backlog fills up
    // and the sink's further copies are dropped, counted as its own.
    let emitted_plain = 100u64;
    let accepted_plain = (0..emitted_plain)
        .filter(|i| pipeline.emit(Record::new(RecordKind::Region, &format!("r{i}"))))
        .count() as u64;
    // Measured regions on this thread behave the same way.
    let every = Sampler::new(1);
    pipeline.in_scope(|| {
        for _ in 0..50 {
            let guard = Region::with_sampler(&every, "measured").start();
            assert!(guard.is_sampled());
        }
    });
    let emitted = 1 + emitted_plain + 50;
    // Wait until the writer has handed on everything it accepted, with the
    // sink still blocked (the bound only keeps a broken build from hanging).
    let started = Instant::now();
    while pipeline.stats().sinks[0].received < 1 + accepted_plain + 50
        && started.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    let before = pipeline.stats();
    assert_eq!(before.dropped_queue_full, 0, "{before:?}");
    assert_eq!(before.sinks[0].written, 0, "{before:?}");
    drop(opener);
    let stats = pipeline.shutdown().unwrap();
    let sink = &stats.sinks[0];
    let written = gate.state.lock().unwrap().written;
    assert_eq!(
        stats.accepted + stats.dropped_queue_full,
        emitted,
        "{stats:?}"
    );
    assert_eq!(sink.received, stats.accepted, "{stats:?}");
    assert_eq!(sink.written, written, "{stats:?}");
    assert_eq!(
        sink.received,
        sink.written + sink.dropped_sink_full,
        "{stats:?}"
    );
    assert!(
        sink.dropped_sink_full > 0,
        "the backlog never filled: {stats:?}"
    );
    assert_eq!(sink.dropped_sink_error, 0);
}

#[test]
fn a_queue_that_overflows_counts_every_record_it_refused() {
    // A queue of 8 and a burst far faster than the writer encodes: most of
    // the burst finds the queue full. Each emit returns at once, and what
    // was refused is exactly what was counted.
    const BURST: u64 = 200_000;
    let gate = Arc::new(Gate {
        state: Mutex::new(GateState {
            open: true,
            ..GateState::default()
        }),
        changed: Condvar::new(),
    });
    let pipeline = Pipeline::builder()
        .sink(BlockingSink(Arc::clone(&gate)))
        .queue_capacity(8)
        .batch_size(4)
        .status_interval(None)
        .build()
        .unwrap();
    let accepted = (0..BURST)
        .filter(|_| pipeline.emit(Record::new(RecordKind::Region, "burst")))
        .count() as u64;
    let stats = pipeline.shutdown().unwrap();
    assert_eq!(stats.accepted, accepted);
    assert_eq!(
        stats.accepted + stats.dropped_queue_full,
        BURST,
        "{stats:?}"
    );
    assert!(stats.dropped_queue_full > 0, "{stats:?}");
    let sink = &stats.sinks[0];
    assert_eq!(sink.received, accepted);
    assert_eq!(
        sink.received,
        sink.written + sink.dropped_sink_full,
        "{stats:?}"
    );
    assert_eq!(gate.state.lock().unwrap().written, sink.written);
}
