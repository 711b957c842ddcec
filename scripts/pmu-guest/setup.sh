#!/usr/bin/env bash
# Installs what the dynostats hardware suite needs to run in an emulated
# aarch64 machine whose PMU counts instructions exactly (see
# CONTRIBUTING.md, "The hardware suite"). For Debian 12 (bookworm) on
# x86-64, as root. Safe to run again: each step is skipped when done.
#
#   scripts/pmu-guest/setup.sh           everything
#   scripts/pmu-guest/setup.sh --check   then boot a self-test in the guest
#
# 1. Debian packages: QEMU (qemu-system-arm), the aarch64 C cross compiler
#    and libc (for init.c and for linking Rust programs), cpio, and
#    Debian's Rust with the aarch64 standard library (rustc-web,
#    cargo-web, libstd-rust-web-dev:arm64; rustup has no aarch64 std here),
#    which needs arm64 added as a dpkg architecture.
# 2. The guest kernel: the image of Debian's linux-image-cloud-arm64
#    (PMUv3 driver, PL011 console and initramfs support built in), taken
#    out of the package with apt-get download + dpkg-deb, not installed.
# 3. The guest's init (init.c), built static.
#
# Environment: DYNOSTATS_PMU_GUEST_CACHE, where the kernel and the init go
# (default /var/cache/dynostats-pmu-guest); nothing is written into the
# repository.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${DYNOSTATS_PMU_GUEST_CACHE:-/var/cache/dynostats-pmu-guest}"
check=0
for arg in "$@"; do
    case "$arg" in
        --check) check=1 ;;
        -h | --help) sed -n '2,/^set -eu/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) printf 'setup.sh: unknown argument %s (see --help)\n' "$arg" >&2; exit 2 ;;
    esac
done

say() { printf 'setup.sh: %s\n' "$*"; }
fail() { printf 'setup.sh: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "installs Debian packages: run it as root"
command -v apt-get >/dev/null && command -v dpkg >/dev/null \
    || fail "needs a Debian system (apt-get, dpkg); the steps are listed in CONTRIBUTING.md"
[ "$(dpkg --print-architecture)" = amd64 ] \
    || fail "written for an x86-64 (amd64) host; this one is $(dpkg --print-architecture)"
export DEBIAN_FRONTEND=noninteractive

updated=0
apt_update() {
    [ "$updated" = 1 ] && return
    say "apt-get update"
    apt-get update -qq || fail "apt-get update failed"
    updated=1
}

# 1. Packages.
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    say "adding arm64 as a dpkg architecture"
    dpkg --add-architecture arm64
    apt_update
fi
packages=(qemu-system-arm gcc-aarch64-linux-gnu libc6-dev-arm64-cross binutils-aarch64-linux-gnu cpio
    rustc-web cargo-web libstd-rust-web-dev:arm64)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt_update
    say "installing ${missing[*]}"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || fail "apt-get install ${missing[*]} failed"
else
    say "packages already installed"
fi
[ -d /usr/lib/rustlib/aarch64-unknown-linux-gnu ] \
    || fail "libstd-rust-web-dev:arm64 left no /usr/lib/rustlib/aarch64-unknown-linux-gnu"

# 2. The kernel: the versioned package the cloud-arm64 metapackage depends on.
kernel_package() {
    apt-cache depends linux-image-cloud-arm64:arm64 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9][^ :]*-cloud-arm64\).*/\1/p' | head -n 1
}
package="$(kernel_package)"
if [ -z "$package" ]; then
    apt_update
    package="$(kernel_package)"
fi
[ -n "$package" ] || fail "apt knows no linux-image-cloud-arm64:arm64 (is the arm64 architecture in the sources?)"
version="${package#linux-image-}"
mkdir -p "$cache"
if [ -f "$cache/vmlinuz-$version" ]; then
    say "kernel $version already in $cache"
else
    say "fetching $package:arm64"
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    # apt's download sandbox user must be able to write here.
    chmod 0755 "$tmp"
    (cd "$tmp" && apt-get download -q "$package:arm64" >/dev/null 2>&1) || {
        apt_update
        (cd "$tmp" && apt-get download -q "$package:arm64" >/dev/null 2>&1)
    } || fail "apt-get download $package:arm64 failed"
    deb="$(find "$tmp" -maxdepth 1 -name '*.deb' | head -n 1)"
    [ -n "$deb" ] || fail "apt-get download $package:arm64 gave no .deb"
    dpkg-deb -x "$deb" "$tmp/tree"
    # arm64's vmlinuz is a plain Image, which QEMU's -kernel boots as is.
    install -m 0644 "$tmp/tree/boot/vmlinuz-$version" "$cache/vmlinuz-$version"
fi
ln -sfn "vmlinuz-$version" "$cache/vmlinuz"

# 3. The init, named by the hash of its source as run_guest.sh looks for it.
init="$cache/init-$(sha256sum "$here/init.c" | cut -c1-16)"
if [ ! -x "$init" ]; then
    say "building $init"
    aarch64-linux-gnu-gcc -O2 -static -o "$init" "$here/init.c" || fail "cannot build $here/init.c"
fi

say "ready: $(qemu-system-aarch64 --version | head -n 1), kernel $version, $(/usr/bin/rustc --version)"

if [ "$check" = 1 ]; then
    # The guest runs a program, which sees the PMU and the environment
    # given to it, and its exit status comes back.
    say "self-test: booting the guest"
    tmp_check="$(mktemp -d)"
    cat >"$tmp_check/check.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    int pmu = access("/sys/bus/event_source/devices/armv8_pmuv3", F_OK) == 0;
    const char *v = getenv("CHECK_VALUE");
    printf("pmu %s, argument %s, CHECK_VALUE %s\n", pmu ? "present" : "MISSING",
           argc > 1 ? argv[1] : "(none)", v ? v : "(unset)");
    return pmu && argc > 1 && v && strcmp(argv[1], v) == 0 ? 7 : 1;
}
C
    aarch64-linux-gnu-gcc -O2 -static -o "$tmp_check/check" "$tmp_check/check.c"
    rc=0
    "$here/run_guest.sh" -t 120 -e CHECK_VALUE=42 "$tmp_check/check" 42 || rc=$?
    rm -rf "$tmp_check"
    [ "$rc" = 7 ] || fail "self-test: expected exit status 7 from the guest (PMU present, argument and environment passed), got $rc"
    say "self-test passed: the guest has its PMU, and arguments, environment and exit status pass through"
fi
