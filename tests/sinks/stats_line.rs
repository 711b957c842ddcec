//! `PipelineStats`' one line (its `Display`), from a real pipeline's
//! counts: before shutdown, after it with records emitted too late, and
//! with the pipeline's own status records (written by every sink too).

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

#[test]
fn the_stats_line_says_the_written_status_records_are_the_pipelines() {
    let sink = MemorySink::new();
    let pipeline = Pipeline::builder()
        .sink(sink.clone())
        .queue_capacity(4096)
        .build()
        .unwrap();
    for _ in 0..400 {
        assert!(pipeline.emit(Record::new(RecordKind::Region, "work")));
    }
    let stats = pipeline.shutdown().unwrap();
    // At least the status record of the shutdown: the sink wrote more
    // records than were accepted, and the line says where they came from.
    let status = sink.records_of(RecordKind::Status).len() as u64;
    assert!(status >= 1);
    assert_eq!(stats.status_records, status);
    let plural = if status == 1 { "" } else { "s" };
    assert_eq!(
        stats.to_string(),
        format!(
            "dynostats: 400 records accepted (and {status} status record{plural} of its own); \
             memory: {written} written, {written} delivered; none lost",
            written = 400 + status
        )
    );
}
