#!/usr/bin/env bash
# Boots an aarch64 Linux program in the emulated machine of the dynostats
# hardware suite and exits with the program's status.
#
#   scripts/pmu-guest/run_guest.sh [OPTIONS] PROGRAM [ARGS...]
#
# The machine is QEMU's aarch64 `virt` board in TCG with precise icount
# (-icount shift=0): its emulated ARM PMUv3 then counts user-space
# instructions exactly, the same on every run, which is what the hardware
# tests and BENCHMARKS.md rely on. PROGRAM (an aarch64 ELF; static, as
# cargo-aarch64.sh builds it, or dynamic against glibc) is packed into an
# initramfs with init.c as /init; it runs as root in /guest with ARGS, its
# output is printed here, and the machine powers off when it ends.
#
# Exit status: the program's (128+N if signal N killed it); 124 when the
# guest runs longer than the timeout; 125 when the guest could not be
# started or ended without reporting a status (a kernel panic, say).
#
# Options:
#   -e KEY=VALUE     set an environment variable for the program (repeat);
#                    nothing else of this environment reaches the guest
#   -f HOST[:GUEST]  copy a file into the guest, to GUEST (relative to
#                    /guest unless absolute; default its base name) (repeat)
#   -a ARG           add a kernel command-line argument (repeat), e.g.
#                    sysctl.kernel.perf_user_access=1 for user-space reads
#   -t SECONDS       wall-clock timeout (default $PMU_GUEST_TIMEOUT or 600)
#   -m SIZE          guest memory (default $PMU_GUEST_MEM or 1G)
#   -c CPU           QEMU CPU model (default max,pauth=off; the figures in
#                    BENCHMARKS.md hold for that model only)
#   -v               show the kernel's boot messages
#   -h               this help
#
# Environment: DYNOSTATS_PMU_GUEST_CACHE, where setup.sh put the kernel
# (default /var/cache/dynostats-pmu-guest).
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${DYNOSTATS_PMU_GUEST_CACHE:-/var/cache/dynostats-pmu-guest}"
timeout_s="${PMU_GUEST_TIMEOUT:-600}"
memory="${PMU_GUEST_MEM:-1G}"
cpu=max,pauth=off
verbose=0
env_vars=()
files=()
kernel_args=()

usage() { sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }
fail() { printf 'run_guest: %s\n' "$*" >&2; exit 125; }
need_value() { [ $# -ge 2 ] || { printf 'run_guest: %s needs a value\n' "$1" >&2; usage >&2; exit 125; }; }

while [ $# -gt 0 ]; do
    case "$1" in
        -e) need_value "$@"; env_vars+=("$2"); shift 2 ;;
        -f) need_value "$@"; files+=("$2"); shift 2 ;;
        -a) need_value "$@"; kernel_args+=("$2"); shift 2 ;;
        -t) need_value "$@"; timeout_s="$2"; shift 2 ;;
        -m) need_value "$@"; memory="$2"; shift 2 ;;
        -c) need_value "$@"; cpu="$2"; shift 2 ;;
        -v) verbose=1; shift ;;
        -h | --help) usage; exit 0 ;;
        --) shift; break ;;
        -*) printf 'run_guest: unknown option %s\n' "$1" >&2; usage >&2; exit 125 ;;
        *) break ;;
    esac
done
[ $# -ge 1 ] || { usage >&2; exit 125; }
program="$1"
shift

[ -f "$program" ] || fail "no program $program"
kernel="$cache/vmlinuz"
[ -f "$kernel" ] || fail "no guest kernel at $kernel: run $here/setup.sh (as root) first"
for tool in qemu-system-aarch64 cpio aarch64-linux-gnu-readelf aarch64-linux-gnu-gcc; do
    command -v "$tool" >/dev/null || fail "$tool is missing: run $here/setup.sh (as root) first"
done
readelf=aarch64-linux-gnu-readelf
$readelf -h "$program" 2>/dev/null | grep -q 'Machine: *AArch64' \
    || fail "$program is not an aarch64 ELF program (build it with $here/cargo-aarch64.sh)"
for kv in ${env_vars[@]+"${env_vars[@]}"}; do
    case "$kv" in *=*) ;; *) fail "-e $kv: expected KEY=VALUE" ;; esac
done

work="$(mktemp -d "${TMPDIR:-/tmp}/dynostats-guest.XXXXXX")" || fail "cannot make a work directory"
trap 'rm -rf "$work"' EXIT
root="$work/root"
mkdir -p "$root/guest" "$root/proc" "$root/sys" "$root/dev" "$root/tmp"

# The init, built once per version of init.c: the cache keeps one build per
# hash of the source, so a fresh clone (new file times) reuses it and an
# edited init.c is rebuilt. Where the cache is not writable, it is built
# into the work directory.
init_hash="$(sha256sum "$here/init.c" | cut -c1-16)"
init="$cache/init-$init_hash"
if [ ! -x "$init" ]; then
    built="$work/init"
    aarch64-linux-gnu-gcc -O2 -static -o "$built" "$here/init.c" || fail "cannot build $here/init.c"
    if install -m 0755 "$built" "$init.tmp.$$" 2>/dev/null && mv -f "$init.tmp.$$" "$init"; then
        :
    else
        rm -f "$init.tmp.$$"
        init="$built"
    fi
fi
install -m 0755 "$init" "$root/init"
install -m 0755 "$program" "$root/guest/prog"
printf '%s\0' "$(basename "$program")" "$@" >"$root/guest/argv"
: >"$root/guest/envp"
for kv in ${env_vars[@]+"${env_vars[@]}"}; do
    printf '%s\0' "$kv" >>"$root/guest/envp"
done

# A dynamic program: its loader and libraries, found in the cross sysroot
# (libc6-dev-arm64-cross) or in Debian's arm64 multiarch directories.
lib_dirs=(/usr/aarch64-linux-gnu/lib /usr/lib/aarch64-linux-gnu /lib/aarch64-linux-gnu)
find_lib() {
    local dir
    for dir in "${lib_dirs[@]}"; do
        [ -e "$dir/$1" ] && { printf '%s\n' "$dir/$1"; return 0; }
    done
    return 1
}
copy_needed() { # ELF
    local lib found
    for lib in $($readelf -d "$1" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'); do
        [ -e "$root/lib/$lib" ] && continue
        found="$(find_lib "$lib")" || fail "$program needs $lib, which is in none of ${lib_dirs[*]}"
        mkdir -p "$root/lib"
        cp -L "$found" "$root/lib/$lib"
        copy_needed "$root/lib/$lib"
    done
}
interp="$($readelf -l "$program" 2>/dev/null | sed -n 's/.*\[Requesting program interpreter: \(.*\)\]$/\1/p')"
if [ -n "$interp" ]; then
    found="$(find_lib "$(basename "$interp")")" || fail "$program's loader $interp is not installed"
    mkdir -p "$root$(dirname "$interp")"
    cp -L "$found" "$root$interp"
    copy_needed "$program"
fi

for spec in ${files[@]+"${files[@]}"}; do
    src="${spec%%:*}"
    dst="$(basename "$src")"
    [ "$src" != "$spec" ] && dst="${spec#*:}"
    case "$dst" in /*) ;; *) dst="/guest/$dst" ;; esac
    [ -e "$src" ] || fail "-f $spec: no file $src"
    mkdir -p "$root$(dirname "$dst")"
    cp -rL "$src" "$root$dst"
done

(cd "$root" && find . | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) >"$work/initrd" \
    || fail "cannot pack the initramfs"

cmdline="console=ttyAMA0 rdinit=/init panic=-1 oops=panic"
if [ "$verbose" = 1 ]; then cmdline+=" loglevel=7"; else cmdline+=" quiet loglevel=3"; fi
for arg in ${kernel_args[@]+"${kernel_args[@]}"}; do cmdline+=" $arg"; done

# -icount shift=0: precise instruction counting, one instruction per virtual
#   nanosecond; QEMU's PMU counts INST_RETIRED only in this mode (which also
#   means one vCPU). sleep=off: idle time is skipped, not waited for.
# pauth=off: emulated pointer authentication would make the guest ~4x
#   slower, and would change the counts.
# -nic none: no network (and no NIC ROM to look for).
# -no-reboot: the kernel's reboot after a panic ends QEMU instead.
started=$(date +%s%N)
timeout --foreground -k 5 "$timeout_s" \
    qemu-system-aarch64 -M virt -cpu "$cpu" -smp 1 -m "$memory" \
    -icount shift=0,sleep=off \
    -nic none -display none -monitor none -serial stdio -no-reboot \
    -kernel "$kernel" -initrd "$work/initrd" -append "$cmdline" \
    </dev/null 2>&1 |
    tr -d '\r' |
    tee "$work/console" |
    sed -u -E -e '/^DYNOSTATS_GUEST_STATUS=[0-9]+$/d' -e 's/DYNOSTATS_GUEST_STATUS=[0-9]+$//' \
        -e '/^\[ *[0-9.]+\] reboot: Power down$/d'
qemu_status=${PIPESTATUS[0]}
wall="$(awk -v ns=$(($(date +%s%N) - started)) 'BEGIN { printf "%.1f", ns / 1e9 }')"

if [ "$qemu_status" = 124 ] || [ "$qemu_status" = 137 ]; then
    printf 'run_guest: timed out after %s s: the guest was stopped\n' "$timeout_s" >&2
    exit 124
fi
# The status line follows the program's last output, which may lack a newline.
status="$(sed -n 's/.*DYNOSTATS_GUEST_STATUS=\([0-9][0-9]*\)$/\1/p' "$work/console" | tail -n 1)"
if [ -z "$status" ]; then
    printf 'run_guest: the guest ended without reporting a status (qemu exit %s, %s s); rerun with -v for the kernel log\n' \
        "$qemu_status" "$wall" >&2
    exit 125
fi
printf 'run_guest: %s exited with status %s (%s s)\n' "$(basename "$program")" "$status" "$wall" >&2
exit "$status"
