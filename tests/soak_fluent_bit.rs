// Own test binary: it runs the soak in child processes of itself.
//! The soak's Fluent Bit part fails, instead of passing, when the Fluent
//! Bit named by `FLUENT_BIT` never starts (exits at once, as a build
//! without the `null` output it asks for does) or takes no record (a
//! process that listens on the port and never acknowledges). Each case is
//! the soak of `tests/soak_service.rs` run in a child process of this
//! binary with a stand-in for Fluent Bit; the parent checks that the
//! child failed, and why.
#![cfg(all(feature = "axum", feature = "forward"))]

#[path = "common/forward_collector.rs"]
mod forward_collector;
#[path = "common/soak.rs"]
mod soak;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};
use std::time::Duration;

/// Set in the child: run the soak instead of checking one.
const CHILD: &str = "DYNOSTATS_SOAK_CHILD";
const TEST: &str = "the_soak_fails_when_fluent_bit_never_starts_or_takes_nothing";

fn soak_in_child(fluent_bit: &str) -> Output {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("FLUENT_BIT", fluent_bit)
        // Only the Fluent Bit part is under test: the ENOSPC part may skip.
        .env_remove("CI")
        .env_remove("DYNOSTATS_REQUIRE_ROOT")
        .output()
        .unwrap()
}

/// A stand-in for Fluent Bit: listens on the `port=N` it is given, takes
/// connections in and never answers.
const SILENT: &str = r#"#!/bin/sh
for a in "$@"; do case "$a" in port=*) port="${a#port=}";; esac; done
exec python3 -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
kept = []
while True:
    kept.append(s.accept()[0])
' "$port"
"#;

#[test]
fn the_soak_fails_when_fluent_bit_never_starts_or_takes_nothing() {
    if std::env::var_os(CHILD).is_some() {
        soak::run(&soak::Soak {
            duration: Duration::from_secs(2),
            clients: 1,
            restarts: 1,
            rss_slack: 32 << 20,
        });
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let silent = dir.path().join("silent-fluent-bit");
    fs::write(&silent, SILENT).unwrap();
    fs::set_permissions(&silent, fs::Permissions::from_mode(0o755)).unwrap();

    for (fluent_bit, why) in [
        ("false", "exited at once"),
        (
            silent.to_str().unwrap(),
            "Fluent Bit acknowledged none of the warm-up's records",
        ),
    ] {
        let out = soak_in_child(fluent_bit);
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !out.status.success(),
            "the soak passed with FLUENT_BIT={fluent_bit}:\n{said}"
        );
        assert!(said.contains(why), "FLUENT_BIT={fluent_bit}: {said}");
    }
}
