//! Loss at shutdown is counted: records a sink still holds when the
//! pipeline shuts down (a Forward collector that is down) are lost with
//! it, and `shutdown` says how many, per sink, instead of calling them
//! written.

use std::net::TcpListener;
use std::time::Duration;

use dynostats::sink::{ForwardSink, MemorySink};
use dynostats::{Pipeline, Record, RecordKind};

#[test]
fn records_a_forward_sink_still_holds_at_shutdown_are_counted_lost() {
    // A port nothing listens on.
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let forward = ForwardSink::builder(&addr.to_string())
        .connect_timeout(Duration::from_millis(100))
        .flush_timeout(Duration::from_millis(300))
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
        .build()
        .unwrap();
    let mem = MemorySink::new();
    let pipeline = Pipeline::builder()
        .sink(forward)
        .sink(mem.clone())
        .status_interval(None)
        .build()
        .unwrap();
    for _ in 0..100 {
        assert!(pipeline.emit(Record::new(RecordKind::Region, "r")));
    }
    let stats = pipeline.shutdown().unwrap();
    let (forward, memory) = (&stats.sinks[0], &stats.sinks[1]);
    assert_eq!(forward.written, 100);
    assert_eq!(forward.delivered, 0);
    assert_eq!(forward.lost_at_shutdown, 100);
    assert_eq!(forward.lost(), 100);
    assert_eq!(memory.delivered, 100);
    assert_eq!(stats.lost(), 100);
    assert_eq!(mem.records().len(), 100);
}
