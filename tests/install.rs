// Own test binary: it installs the global pipeline.
//! The global pipeline: installed once, a second install hands the value
//! back, and a thread-scoped override takes precedence. Its own test
//! binary: a global pipeline is installed once per process.

use dynostats::{Pipeline, Record, RecordKind, sink::MemorySink};

fn pipeline(mem: &MemorySink) -> Pipeline {
    Pipeline::builder()
        .sink(mem.clone())
        .status_interval(None)
        .build()
        .unwrap()
}

#[test]
fn install_once_then_emit_anywhere() {
    assert!(dynostats::pipeline::global_pipeline().is_none());
    assert!(!dynostats::emit(Record::new(RecordKind::Region, "before")));

    let global_mem = MemorySink::new();
    let installed = dynostats::install(pipeline(&global_mem)).unwrap();

    // A second install fails and hands its pipeline back, still usable.
    let other_mem = MemorySink::new();
    let err = dynostats::install(pipeline(&other_mem)).unwrap_err();
    assert!(err.to_string().contains("already installed"));
    let other = err.into_inner();
    assert!(other.emit(Record::new(RecordKind::Region, "other")));

    // Any thread emits to the global pipeline...
    std::thread::spawn(|| assert!(dynostats::emit(Record::new(RecordKind::Region, "global"))))
        .join()
        .unwrap();
    // ...unless it has a scoped override.
    other.in_scope(|| assert!(dynostats::emit(Record::new(RecordKind::Region, "scoped"))));

    installed.flush().unwrap();
    other.flush().unwrap();
    let names = |m: &MemorySink| m.records().into_iter().map(|r| r.name).collect::<Vec<_>>();
    assert_eq!(names(&global_mem), ["global"]);
    assert_eq!(names(&other_mem), ["other", "scoped"]);

    let stats = dynostats::pipeline::global_pipeline()
        .unwrap()
        .shutdown()
        .unwrap();
    assert_eq!(stats.sinks[0].written, 1);
    assert!(!dynostats::emit(Record::new(RecordKind::Region, "after")));
    assert_eq!(installed.stats().dropped_closed, 1);
}
