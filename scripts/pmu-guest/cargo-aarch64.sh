#!/usr/bin/env bash
# Runs cargo for the emulated aarch64 machine of the hardware suite: builds
# for aarch64-unknown-linux-gnu with Debian's Rust (installed by setup.sh),
# and runs `cargo run`, `cargo test` and `cargo bench` programs in the guest
# through run_guest.sh, one boot per program.
#
#   scripts/pmu-guest/cargo-aarch64.sh test --release --test pmu
#   scripts/pmu-guest/cargo-aarch64.sh run --release --example probe
#   scripts/pmu-guest/cargo-aarch64.sh build --release --features criterion --bench pipeline
#
# Programs are linked static (+crt-static), so the guest needs nothing
# beside them; PMU_STATIC=0 links them dynamically (run_guest.sh then
# copies glibc into the guest). CARGO_TARGET_DIR defaults to
# target/pmu-guest, apart from the host's builds; the programs land in
# $CARGO_TARGET_DIR/aarch64-unknown-linux-gnu/<profile>/.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ $# -ge 1 ] || { sed -n '2,/^set -eu/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 2; }

# rustup's cargo and rustc come first on PATH but have no aarch64 standard
# library; Debian's, under /usr/bin, do (libstd-rust-web-dev:arm64).
for tool in /usr/bin/cargo /usr/bin/rustc; do
    [ -x "$tool" ] || { printf 'cargo-aarch64.sh: no %s: run %s/setup.sh (as root) first\n' "$tool" "$here" >&2; exit 1; }
done
[ -d /usr/lib/rustlib/aarch64-unknown-linux-gnu ] || {
    printf 'cargo-aarch64.sh: no aarch64 standard library: run %s/setup.sh (as root) first\n' "$here" >&2
    exit 1
}
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
# Not a rustup proxy: a toolchain override would not apply anyway.
unset RUSTUP_TOOLCHAIN
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/pmu-guest}"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$here/run_guest.sh"
if [ "${PMU_STATIC:-1}" = 1 ]; then
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS:-} -C target-feature=+crt-static"
fi

subcommand="$1"
shift
exec /usr/bin/cargo "$subcommand" --target aarch64-unknown-linux-gnu "$@"
