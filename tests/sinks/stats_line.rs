//! `PipelineStats`' one line (its `Display`), from a real pipeline's
//! counts: before shutdown, and after it with records emitted too late.

use dynostats::{Pipeline, Record, RecordKind, sink::MemorySink};

#[test]
fn the_stats_line_counts_what_the_pipeline_did() {
    let sink = MemorySink::new();
    let pipeline = Pipeline::builder()
        .sink(sink.clone())
        .queue_capacity(4096)
        .status_interval(None)
        .build()
        .unwrap();
    for _ in 0..1_234 {
        assert!(pipeline.emit(Record::new(RecordKind::Region, "work")));
    }
    pipeline.flush().unwrap();
    assert_eq!(sink.len(), 1_234);
    assert_eq!(
        pipeline.stats().to_string(),
        "dynostats: 1,234 records accepted; memory: 1,234 written, 1,234 delivered; none lost"
    );

    pipeline.shutdown().unwrap();
    for _ in 0..3 {
        assert!(!pipeline.emit(Record::new(RecordKind::Region, "late")));
    }
    assert_eq!(
        pipeline.stats().to_string(),
        "dynostats: 1,234 records accepted, 3 dropped (after shutdown); \
         memory: 1,234 written, 1,234 delivered; 3 records lost"
    );
}
