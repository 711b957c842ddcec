// Own test binary: it forks, and counts the process's descriptors and threads.
//! The soak's short form (see `tests/common/soak.rs`; the long form is
//! `cargo run --release --example soak -- --duration 600`): a few seconds of
//! HTTP load with every fault at once, then exact accounting and resource
//! return. Alone in its test binary: it forks, and it counts the process's
//! descriptors and threads.
#![cfg(all(feature = "axum", feature = "forward"))]

#[path = "common/forward_collector.rs"]
mod forward_collector;
#[path = "common/soak.rs"]
mod soak;

use std::time::Duration;

#[test]
fn soak_service_with_faults_accounts_for_every_record() {
    let outcome = soak::run(&soak::Soak {
        duration: Duration::from_secs(4),
        clients: 3,
        restarts: 3,
        rss_slack: 32 << 20,
    });
    assert!(outcome.requests > 0);
    assert_eq!(outcome.collector_restarts, 3);
}
