// Own test binary: RSS is process-wide, and another test freeing memory would shrink it.
//! RSS for real. Alone in its test binary: RSS is process-wide, and another
//! test freeing memory at the same time would shrink it.

mod common;

use common::touch_fresh_memory;
use dynostats::{Delta, counters::Counter, counters::CounterSet, counters::Counters};

#[test]
fn rss_grows_by_the_memory_touched() {
    const SIZE: usize = 64 << 20;
    let mut counters = Counters::open(CounterSet::wall_only().with(Counter::Rss));
    let a = counters.snapshot();
    let v = touch_fresh_memory(SIZE);
    let b = counters.snapshot();
    let d = Delta::between(&a, &b);
    let grown = d.rss_end.unwrap() - d.rss_start.unwrap();
    assert!(grown >= SIZE as u64, "RSS grew by {grown} bytes");
    drop(v);
}
