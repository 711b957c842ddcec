// Own test binary: it counts the process's open descriptors.
//! Each thread's counters are opened on its first read and closed when the
//! thread exits. Alone in its test binary: it counts the process's open
//! file descriptors.

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn a_thread_s_counters_open_lazily_and_close_at_thread_exit() {
    let before = open_fds();
    let (opened_tx, opened_rx) = std::sync::mpsc::channel();
    let (exit_tx, exit_rx) = std::sync::mpsc::channel::<()>();
    let worker = std::thread::spawn(move || {
        let idle = open_fds();
        let _ = dynostats::snapshot();
        let after_first_read = open_fds();
        let _ = dynostats::snapshot();
        let after_second_read = open_fds();
        opened_tx
            .send((idle, after_first_read, after_second_read))
            .unwrap();
        exit_rx.recv().unwrap();
    });
    let (idle, first, second) = opened_rx.recv().unwrap();
    // Nothing is opened before the first read; the first read opens the
    // group and the process's shared statm descriptor; later reads open
    // nothing more.
    assert_eq!(idle, before);
    assert!(first > idle, "first read opened nothing: {idle} -> {first}");
    assert_eq!(second, first);
    exit_tx.send(()).unwrap();
    worker.join().unwrap();
    // The group is closed; the statm descriptor is the process's, kept for
    // every thread.
    assert_eq!(
        open_fds(),
        before + 1,
        "descriptors leaked after thread exit"
    );
    assert_eq!(
        dynostats::counters::descriptor_use().perf_descriptors_held,
        0
    );
}
