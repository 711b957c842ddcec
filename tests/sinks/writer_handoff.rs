//! The writer hands a sink's thread the batches of a round together, so
//! that `batch_size(1)` does not cost a channel send and a wake-up of every
//! sink's thread per record: bursts from several threads at one record per
//! batch reach each sink in a few jobs, in order, none lost.
//!
//! A job is seen from the sink's side: the pipeline reads a sink's getters
//! (`buffered()` here) once after each job it wrote. One job per batch (one
//! per record here) fails the bound below whatever the timing; grouped jobs
//! stay far below it unless the writer found a record or two per round,
//! which bursts of 200 from three threads do not leave it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use dynostats::sink::{Batch, Sink};
use dynostats::{Pipeline, Record, RecordKind};

const PRODUCERS: u64 = 3;
const BURSTS: u64 = 20;
const BURST: u64 = 200;
const RECORDS: u64 = PRODUCERS * BURSTS * BURST;

/// Keeps the producer and sequence number of every record, and counts the
/// getter calls (one per job) and the batches.
#[derive(Clone, Default)]
struct Counting {
    seen: Arc<Mutex<Vec<(u64, u64)>>>,
    batches: Arc<AtomicU64>,
    getter_calls: Arc<AtomicU64>,
}

impl Sink for Counting {
    fn name(&self) -> String {
        "counting".to_string()
    }
    fn write_batch(&mut self, batch: &Batch) -> std::io::Result<()> {
        self.batches.fetch_add(1, Ordering::Relaxed);
        let mut seen = self.seen.lock().unwrap();
        for encoded in batch.iter() {
            let record = Record::from_msgpack(encoded.bytes).expect("the writer's own encoding");
            let producer = record.labels.get("producer").unwrap().parse().unwrap();
            seen.push((producer, record.instructions.unwrap()));
        }
        Ok(())
    }
    fn buffered(&self) -> u64 {
        self.getter_calls.fetch_add(1, Ordering::Relaxed);
        0
    }
}

#[test]
fn bursts_at_one_record_per_batch_reach_each_sink_in_few_jobs_in_order() {
    let sinks = [Counting::default(), Counting::default()];
    let pipeline = Pipeline::builder()
        .batch_size(1)
        .queue_capacity(RECORDS as usize)
        .status_interval(None)
        .sink(sinks[0].clone())
        .sink(sinks[1].clone())
        .build()
        .unwrap();
    std::thread::scope(|s| {
        for producer in 0..PRODUCERS {
            let pipeline = &pipeline;
            s.spawn(move || {
                for i in 0..BURSTS * BURST {
                    let mut r = Record::new(RecordKind::Region, "burst");
                    r.labels.insert("producer", &producer.to_string());
                    r.instructions = Some(i);
                    assert!(pipeline.emit(r), "the queue holds every record");
                    if i % BURST == BURST - 1 {
                        std::thread::sleep(std::time::Duration::from_micros(200));
                    }
                }
            });
        }
    });
    let stats = pipeline.shutdown().unwrap();
    for (sink, st) in sinks.iter().zip(&stats.sinks) {
        assert_eq!(st.written, RECORDS, "{st:?}");
        assert_eq!(st.dropped_sink_full, 0, "{st:?}");
        // One batch per record, as configured ...
        assert_eq!(sink.batches.load(Ordering::Relaxed), RECORDS);
        // ... but not one job per batch: the getters are read once per job
        // (and once per flush, and at shutdown).
        let jobs = sink.getter_calls.load(Ordering::Relaxed);
        assert!(
            jobs * 4 <= RECORDS,
            "{jobs} jobs for {RECORDS} records of one record per batch"
        );
        // Each producer's records arrive in the order they were emitted.
        let seen = sink.seen.lock().unwrap();
        assert_eq!(seen.len() as u64, RECORDS);
        for producer in 0..PRODUCERS {
            let order: Vec<u64> = seen
                .iter()
                .filter(|(p, _)| *p == producer)
                .map(|&(_, i)| i)
                .collect();
            assert_eq!(order, (0..BURSTS * BURST).collect::<Vec<_>>());
        }
    }
}
