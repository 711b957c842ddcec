//! Counters are per thread: work done on another thread is not counted.

mod common;

use common::{burn_cpu_ns, touch_fresh_memory};
use dynostats::{Delta, snapshot};

const MS: u64 = 1_000_000;

#[test]
fn work_on_another_thread_is_not_counted() {
    let a = snapshot();
    let worker = std::thread::spawn(|| {
        let a = snapshot();
        burn_cpu_ns(200 * MS);
        let _resident = touch_fresh_memory(16 << 20);
        Delta::between(&a, &snapshot())
    });
    let theirs = worker.join().unwrap();
    let mine = Delta::between(&a, &snapshot());

    // The worker counted its own 200 ms of CPU.
    assert!(theirs.cpu_ns.unwrap() >= 195 * MS, "{theirs:?}");
    // This thread waited in join: almost no CPU, although 200 ms passed.
    assert!(mine.wall_ns >= 200 * MS, "{mine:?}");
    assert!(mine.cpu_ns.unwrap() < 30 * MS, "{mine:?}");
    if let (Some(t), Some(m)) = (theirs.instructions, mine.instructions) {
        assert!(m < t / 10, "mine {m} theirs {t}");
    }
}

#[test]
fn each_thread_opens_its_own_counters() {
    // The same call on two threads reads two different groups: the main
    // thread's CPU total keeps growing from its own work only.
    let before = snapshot();
    burn_cpu_ns(50 * MS);
    let t = std::thread::spawn(|| {
        let s = snapshot();
        burn_cpu_ns(80 * MS);
        Delta::between(&s, &snapshot()).cpu_ns.unwrap()
    })
    .join()
    .unwrap();
    let mine = Delta::between(&before, &snapshot()).cpu_ns.unwrap();
    assert!((78 * MS..100 * MS).contains(&t), "thread {t}");
    // 50 ms of its own, not 130 with the thread's.
    assert!(
        (48 * MS..75 * MS).contains(&mine),
        "main {mine}: must not include the thread's 80 ms"
    );
}
