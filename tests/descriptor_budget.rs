// Own test binary: it lowers the process's RLIMIT_NOFILE.
//! The descriptor budget under a low `RLIMIT_NOFILE`: 200 threads that
//! measure and stay alive leave the service the descriptors it needs, the
//! library's descriptors stay under the limit minus the reserve, and status
//! records say how many threads the budget refused. (Before the budget each
//! thread held its perf group and its own `/proc/self/statm` descriptor, and
//! the service's `open`, `bind` and `FileSink::create` failed with EMFILE.)

mod common;

use std::sync::{Arc, Barrier};

use dynostats::Pipeline;
use dynostats::sink::{FileSink, MemorySink};

const LIMIT: u64 = 256;
const THREADS: usize = 200;

fn open_descriptors() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64 - 1
}

fn lower_open_files_limit(to: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for the duration of both calls.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = to;
        limit.rlim_max = limit.rlim_max.max(to);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

#[test]
fn two_hundred_measuring_threads_under_a_limit_of_256_leave_the_service_its_descriptors() {
    lower_open_files_limit(LIMIT);
    let reserve = dynostats::counters::descriptor_budget().reserve_for(LIMIT);
    assert_eq!(reserve, 128);
    let memory = MemorySink::new();
    let pipeline = Pipeline::builder().sink(memory.clone()).build().unwrap();
    // The writer's start-up status record opened its counters.
    pipeline.flush().unwrap();
    let before = dynostats::counters::descriptor_use();

    let holding = Arc::new(Barrier::new(THREADS + 1));
    let release = Arc::new(Barrier::new(THREADS + 1));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (holding, release) = (holding.clone(), release.clone());
            std::thread::spawn(move || {
                let s = dynostats::snapshot();
                assert!(s.cpu_ns.is_some(), "CPU time on every path");
                assert!(s.rss_bytes.is_some(), "RSS on every path");
                let refused = dynostats::counters::with_thread_counters(|c| {
                    c.unavailable()
                        .iter()
                        .any(|u| u.reason.starts_with("descriptor budget"))
                })
                .unwrap();
                holding.wait();
                release.wait();
                refused
            })
        })
        .collect();
    holding.wait();

    // Every thread measures and holds its counters now.
    let open = open_descriptors();
    assert!(
        open + reserve <= LIMIT,
        "{open} descriptors open: more than {LIMIT} - {reserve}"
    );
    let during = dynostats::counters::descriptor_use();
    // The service can still open files, bind a socket, create a FileSink.
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<_> = (0..100)
        .map(|i| std::fs::File::create(dir.path().join(format!("f{i}"))).expect("open"))
        .collect();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    let sink = FileSink::create(dir.path().join("records.msgpack")).expect("FileSink::create");
    drop((files, listener, udp, sink));

    // Status records say how many threads the budget refused.
    pipeline.shutdown().unwrap();
    release.wait();
    let refused = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .filter(|r| *r)
        .count() as u64;
    assert!(
        refused > 0,
        "{THREADS} threads fit under {LIMIT} with {reserve} reserved?"
    );
    assert_eq!(during.threads_refused, refused);
    assert_eq!(
        during.perf_groups_held,
        before.perf_groups_held + THREADS as u64 - refused
    );
    assert!(during.refusals >= refused);
    println!(
        "{THREADS} threads: {refused} refused, {} groups ({} descriptors) held, {open} descriptors open",
        during.perf_groups_held, during.perf_descriptors_held
    );
    let status = memory
        .records()
        .into_iter()
        .rfind(|r| r.kind == dynostats::RecordKind::Status)
        .unwrap();
    let stats = &status.detail.as_ref().unwrap().stats;
    assert_eq!(stats["perf_threads_refused"], refused);
    assert_eq!(stats["perf_groups_held"], during.perf_groups_held);
    assert_eq!(stats["perf_descriptors_held"], during.perf_descriptors_held);
    assert!(stats["perf_refusals"] >= refused);

    // Thread exit gives every place back: the measuring threads and the
    // writer are gone, and this thread never measured.
    let after = dynostats::counters::descriptor_use();
    assert_eq!(after.threads_refused, 0);
    assert_eq!(after.perf_groups_held, 0);
    assert_eq!(after.perf_descriptors_held, 0);
}
