//! Every raw system call and every `unsafe` block of the crate lives here.
//!
//! The rest of the crate is safe code built on these small wrappers. Each
//! wrapper returns `io::Result` (through [`check`], the one errno helper) or
//! an `Option` where a failure only means "not available".

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

mod pmc;

use pmc::read_pmc;
pub(crate) use pmc::{read_counter_register, recover_withdrawn_user_reads, withdrawn_user_reads};

/// Turns a C-style return value (negative on failure, errno set) into an
/// `io::Result`.
fn check<T: PartialOrd + Default>(ret: T) -> io::Result<T> {
    if ret < T::default() {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn clock_ns(clock: libc::clockid_t) -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call
    // and clock_gettime writes nothing else.
    let ret = unsafe { libc::clock_gettime(clock, &mut ts) };
    if ret != 0 {
        return None;
    }
    Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// `CLOCK_MONOTONIC` in nanoseconds (served by the vDSO: no system call).
#[inline]
pub(crate) fn monotonic_ns() -> u64 {
    // CLOCK_MONOTONIC cannot fail on Linux for a valid timespec pointer.
    clock_ns(libc::CLOCK_MONOTONIC).unwrap_or(0)
}

/// `CLOCK_REALTIME` in nanoseconds since the Unix epoch (vDSO).
#[inline]
pub(crate) fn realtime_ns() -> u64 {
    clock_ns(libc::CLOCK_REALTIME).unwrap_or(0)
}

/// CPU time consumed by the calling thread, `CLOCK_THREAD_CPUTIME_ID`.
#[inline]
pub(crate) fn thread_cpu_ns() -> Option<u64> {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// Peak resident set size of the process in bytes (`getrusage`, `ru_maxrss`).
pub(crate) fn peak_rss_bytes() -> Option<u64> {
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage for the duration of the call.
    let ret = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    check(ret).ok()?;
    Some(usage.ru_maxrss as u64 * 1024)
}

/// Voluntary plus involuntary context switches of the calling thread
/// (`getrusage(RUSAGE_THREAD)`).
pub(crate) fn thread_context_switches() -> Option<u64> {
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage for the duration of the call.
    let ret = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    check(ret).ok()?;
    Some(usage.ru_nvcsw as u64 + usage.ru_nivcsw as u64)
}

/// The soft `RLIMIT_NOFILE`: how many descriptors the process may hold.
pub(crate) fn open_files_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for the duration of the call.
    let ret = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    check(ret).ok()?;
    (limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// Makes descriptor `target` refer to the open file of `source` (`dup3`,
/// close-on-exec), atomically: a concurrent read of `target` sees either
/// file, and the number is never free for another open to take.
pub(crate) fn replace_fd(target: RawFd, source: RawFd) -> io::Result<()> {
    // SAFETY: dup3 touches no memory of ours. `target` is owned by a file
    // the caller keeps open for ever, so replacing what it refers to
    // closes nothing another owner holds.
    let ret = unsafe { libc::dup3(source, target, libc::O_CLOEXEC) };
    check(ret).map(|_| ())
}

/// The effective user id of the process (`geteuid`).
pub(crate) fn effective_uid() -> u32 {
    // SAFETY: geteuid takes no arguments, touches no memory of ours and
    // cannot fail.
    unsafe { libc::geteuid() }
}

/// `struct open_how` of `openat2(2)` (the kernel's first version, 24
/// bytes; libc's is marked non-exhaustive, so it cannot be built here).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Opens `path` with `openat2(2)` and `RESOLVE_NO_SYMLINKS`: the kernel
/// refuses (`ELOOP`) a symbolic link in any component of the path, not
/// just the last one as `O_NOFOLLOW` does. `flags` are `open(2)` flags
/// (`O_CLOEXEC` is added); `mode` is used only with `O_CREAT`.
///
/// `None` when the kernel offers no `openat2` (`ENOSYS`: Linux before
/// 5.6) or a seccomp filter refuses it (`EPERM`, as some container
/// runtimes do for system calls they do not know): the caller falls back
/// to a plain `open`.
pub(crate) fn open_no_symlinks(
    path: &std::path::Path,
    flags: libc::c_int,
    mode: u32,
) -> Option<io::Result<std::fs::File>> {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;

    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return Some(Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path holds a NUL byte",
        )));
    };
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        // The kernel refuses a mode without O_CREAT or O_TMPFILE.
        mode: if flags & libc::O_CREAT != 0 {
            u64::from(mode)
        } else {
            0
        },
        resolve: libc::RESOLVE_NO_SYMLINKS,
    };
    // SAFETY: `c_path` is a NUL-terminated string and `how` a valid
    // `open_how` of the size passed, both alive for the call; the kernel
    // only reads them and returns a new descriptor or -1 with errno set.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            c_path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    match check(ret) {
        Ok(fd) => {
            // SAFETY: `fd` is a descriptor the kernel just opened for this
            // call, owned by nothing else: the File becomes its only owner.
            Some(Ok(unsafe { std::fs::File::from_raw_fd(fd as RawFd) }))
        }
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => None,
        Err(e) => Some(Err(e)),
    }
}

/// The system page size in bytes.
pub(crate) fn page_size() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let ret = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if ret > 0 { ret as u64 } else { 4096 }
}

/// One `read(2)` of a perf event file descriptor into `buf`.
///
/// Returns the number of bytes read. A group read fills `buf` with the
/// kernel's `read_format` layout as native-endian u64 words.
#[inline]
pub(crate) fn read_words(fd: RawFd, buf: &mut [u64]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `size_of_val(buf)` bytes and stays
    // borrowed for the whole call; `read` writes at most that many bytes.
    let ret = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), std::mem::size_of_val(buf)) };
    check(ret).map(|n| n as usize)
}

static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);
/// Set by the first thread that registers the fork handler. Not a `Once`:
/// a `Once` being run by another thread at a fork would block the child
/// for ever.
static ATFORK_REGISTERED: AtomicBool = AtomicBool::new(false);

extern "C" fn bump_fork_generation() {
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// A number that changes in a child process after every `fork`.
///
/// Thread counters remember the generation they were opened in; a different
/// value means they belong to the parent and must be reopened. Reading it is
/// one relaxed atomic load, unlike `getpid`, which is a system call.
#[inline]
pub(crate) fn fork_generation() -> u64 {
    if !ATFORK_REGISTERED.load(Ordering::Relaxed) {
        register_atfork();
    }
    FORK_GENERATION.load(Ordering::Relaxed)
}

#[cold]
fn register_atfork() {
    if !ATFORK_REGISTERED.swap(true, Ordering::AcqRel) {
        // SAFETY: the handler is an `extern "C"` function that only touches
        // an atomic, which is async-signal-safe and valid in the child.
        unsafe {
            libc::pthread_atfork(None, None, Some(bump_fork_generation));
        }
    }
}

/// A process-wide slot holding a `&'static T` that can be replaced
/// without any lock: readers do one atomic load, writers one
/// compare-and-swap. Nothing can wait on it, so it stays usable in a
/// child forked while another thread was using it. Values are leaked: a
/// replaced one stays valid for readers that still hold it.
pub(crate) struct StaticSlot<T: 'static>(AtomicPtr<T>);

impl<T: Sync + 'static> StaticSlot<T> {
    /// An empty slot.
    pub(crate) const fn new() -> StaticSlot<T> {
        StaticSlot(AtomicPtr::new(std::ptr::null_mut()))
    }

    /// The value in the slot.
    #[inline]
    pub(crate) fn get(&self) -> Option<&'static T> {
        let ptr = self.0.load(Ordering::Acquire);
        // SAFETY: the slot only ever holds null or a pointer from
        // `Box::into_raw` in `replace`, published with Release after the
        // value was written, and never freed: a `&'static T` to it is valid.
        unsafe { ptr.as_ref() }
    }

    /// Puts `value` in the slot if it still holds `expected` (compared by
    /// address), leaking it for ever; otherwise gives `value` back.
    pub(crate) fn replace(
        &self,
        expected: Option<&'static T>,
        value: Box<T>,
    ) -> Result<&'static T, Box<T>> {
        let expected = expected.map_or(std::ptr::null_mut(), |e| std::ptr::from_ref(e).cast_mut());
        let new = Box::into_raw(value);
        match self
            .0
            .compare_exchange(expected, new, Ordering::AcqRel, Ordering::Acquire)
        {
            // SAFETY: `new` came from `Box::into_raw` just above and is
            // now owned by the slot, which never frees it.
            Ok(_) => Ok(unsafe { &*new }),
            // SAFETY: the exchange failed, so `new` was never published:
            // this is its only owner, and the box is rebuilt exactly once.
            Err(_) => Err(unsafe { Box::from_raw(new) }),
        }
    }
}

// Offsets in `struct perf_event_mmap_page` (include/uapi/linux/perf_event.h).
const PAGE_LOCK: usize = 8;
const PAGE_INDEX: usize = 12;
const PAGE_OFFSET: usize = 16;
const PAGE_TIME_ENABLED: usize = 24;
const PAGE_TIME_RUNNING: usize = 32;
const PAGE_CAPABILITIES: usize = 40;
const PAGE_PMC_WIDTH: usize = 48;
const PAGE_TIME_SHIFT: usize = 50;
const PAGE_TIME_MULT: usize = 52;
const PAGE_TIME_OFFSET: usize = 56;
const PAGE_TIME_CYCLES: usize = 80;
const PAGE_TIME_MASK: usize = 88;
const CAP_USER_RDPMC: u64 = 1 << 2;
const CAP_USER_TIME: u64 = 1 << 3;
const CAP_USER_TIME_SHORT: u64 = 1 << 5;

/// One value read from user space through a perf event's mmap page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UserCount {
    /// Count of the event.
    pub count: u64,
    /// Nanoseconds the event has been enabled, up to the moment of the read.
    pub time_enabled: u64,
    /// Nanoseconds the event has been on the PMU, up to the moment of the
    /// read.
    pub time_running: u64,
    /// Whether the times were brought up to the moment of the read
    /// (`cap_user_time`); otherwise they date from the page's last update
    /// and are only known to be right as a ratio (never multiplexed).
    pub times_current: bool,
}

/// Why a read through a perf event's mmap page gave no count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UserReadFailure {
    /// The event is not on a hardware counter right now (multiplexed out,
    /// or the kernel stopped handing out its index), or this build cannot
    /// read it: this one read goes through `read(2)`.
    NotNow,
    /// The kernel withdrew user access while the page still offered the
    /// counter, and the read instruction trapped (arm64's
    /// `perf_user_access` or x86's `rdpmc` switched to 0 at run time): the
    /// trap was recovered, and the event must be read with `read(2)` from
    /// now on.
    Withdrawn,
}

/// The first page of a perf event's mmap area, through which the kernel lets
/// user space read a hardware counter without a system call.
pub(crate) struct UserPage {
    base: *mut libc::c_void,
    len: usize,
}

impl UserPage {
    /// Maps the metadata page of `fd`. Fails where the event cannot be
    /// mapped (for example a file descriptor that is not a perf event).
    pub(crate) fn map(fd: RawFd) -> io::Result<UserPage> {
        let len = page_size() as usize;
        // SAFETY: a fresh shared read-only mapping chosen by the kernel; it
        // aliases no Rust object. Failure is reported as MAP_FAILED.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(UserPage { base, len })
    }

    #[inline]
    fn load_u32(&self, offset: usize) -> u32 {
        // SAFETY: offset + 4 <= len (a page), aligned to 4 by the uapi
        // layout, and the mapping lives as long as `self`. The kernel writes
        // the page concurrently, so the load is volatile.
        unsafe { std::ptr::read_volatile(self.base.cast::<u8>().add(offset).cast::<u32>()) }
    }

    #[inline]
    fn load_u16(&self, offset: usize) -> u16 {
        // SAFETY: as in `load_u32`, with 2-byte alignment from the layout.
        unsafe { std::ptr::read_volatile(self.base.cast::<u8>().add(offset).cast::<u16>()) }
    }

    #[inline]
    fn load_u64(&self, offset: usize) -> u64 {
        // SAFETY: as in `load_u32`, with 8-byte alignment from the layout.
        unsafe { std::ptr::read_volatile(self.base.cast::<u8>().add(offset).cast::<u64>()) }
    }

    /// Whether the kernel lets user space bring the page's times up to the
    /// moment of a read (`cap_user_time`).
    pub(crate) fn has_user_time(&self) -> bool {
        self.load_u64(PAGE_CAPABILITIES) & CAP_USER_TIME != 0
    }

    /// Whether the kernel allows reading this counter with an instruction
    /// from user space on this architecture: `cap_user_rdpmc` is set and
    /// the kernel hands out a counter index. On arm64 the capability is set
    /// for every event opened with the user-read bit, but the index stays 0
    /// while `/proc/sys/kernel/perf_user_access` is 0, so both are checked.
    /// Call it while the event is enabled and on the PMU (right after
    /// opening it on the calling thread).
    pub(crate) fn user_readable(&self) -> bool {
        user_read_supported()
            && self.load_u64(PAGE_CAPABILITIES) & CAP_USER_RDPMC != 0
            && self.load_u32(PAGE_INDEX) != 0
    }

    /// Reads the counter through the page, following the kernel's seqlock
    /// protocol. Fails with [`UserReadFailure::NotNow`] when the event is
    /// not on a hardware counter right now (`index == 0`) or user reads are
    /// not allowed by the page, and with [`UserReadFailure::Withdrawn`] when
    /// the read instruction trapped (see [`recover_withdrawn_user_reads`]):
    /// the caller falls back to `read(2)`.
    ///
    /// The page's `time_enabled` and `time_running` date from the last time
    /// the kernel updated it (when the event was scheduled in), while the
    /// count is current; a multiplexed count scaled with those times would
    /// be off by up to a whole scheduling slice. So the times are brought up
    /// to the moment of the read with the CPU's timestamp counter, as the
    /// kernel documents for `cap_user_time`; without that capability an
    /// event that has been multiplexed is left to `read(2)`.
    #[inline]
    pub(crate) fn read(&self) -> Result<UserCount, UserReadFailure> {
        loop {
            let seq = self.load_u32(PAGE_LOCK);
            std::sync::atomic::compiler_fence(Ordering::SeqCst);
            let index = self.load_u32(PAGE_INDEX);
            let caps = self.load_u64(PAGE_CAPABILITIES);
            if index == 0 || caps & CAP_USER_RDPMC == 0 {
                return Err(UserReadFailure::NotNow);
            }
            let offset = self.load_u64(PAGE_OFFSET) as i64;
            let mut time_enabled = self.load_u64(PAGE_TIME_ENABLED);
            let mut time_running = self.load_u64(PAGE_TIME_RUNNING);
            let width = u32::from(self.load_u16(PAGE_PMC_WIDTH));
            let times_current = caps & CAP_USER_TIME != 0;
            if times_current {
                let since_update = self.ns_since_update(caps).ok_or(UserReadFailure::NotNow)?;
                // Running: both times advanced since the update.
                time_enabled = time_enabled.wrapping_add(since_update);
                time_running = time_running.wrapping_add(since_update);
            } else if time_enabled != time_running {
                return Err(UserReadFailure::NotNow);
            }
            let raw = read_pmc(index - 1)?;
            std::sync::atomic::compiler_fence(Ordering::SeqCst);
            if self.load_u32(PAGE_LOCK) != seq {
                continue;
            }
            return Ok(UserCount {
                count: user_count(offset, raw, width),
                time_enabled,
                time_running,
                times_current,
            });
        }
    }

    /// Nanoseconds since the kernel last updated the page, from the
    /// timestamp counter and the page's `time_*` fields (the conversion of
    /// `struct perf_event_mmap_page` in the kernel's uapi header). Call it
    /// inside the seqlock.
    #[inline]
    fn ns_since_update(&self, caps: u64) -> Option<u64> {
        let shift = u32::from(self.load_u16(PAGE_TIME_SHIFT)).min(63);
        let mult = u64::from(self.load_u32(PAGE_TIME_MULT));
        let time_offset = self.load_u64(PAGE_TIME_OFFSET);
        let cyc = read_timestamp()?;
        let short = (caps & CAP_USER_TIME_SHORT != 0).then(|| {
            (
                self.load_u64(PAGE_TIME_CYCLES),
                self.load_u64(PAGE_TIME_MASK),
            )
        });
        Some(ns_since_update(cyc, shift, mult, time_offset, short))
    }
}

/// The count of a user-read event: the page's `offset` plus the raw
/// `width`-bit hardware value sign-extended, as the kernel documents for
/// `pmc_width`.
#[inline]
fn user_count(offset: i64, raw: u64, width: u32) -> u64 {
    let shift = 64u32.saturating_sub(width.clamp(1, 64));
    let pmc = ((raw << shift) as i64) >> shift;
    offset.wrapping_add(pmc) as u64
}

/// Nanoseconds since the page's last update for timestamp `cyc`, from the
/// page's `time_shift`, `time_mult`, `time_offset` and, with
/// `cap_user_time_short`, `(time_cycles, time_mask)`: a counter narrower
/// than 64 bits (arm64) is counted from `time_cycles`, modulo its width.
#[inline]
fn ns_since_update(
    cyc: u64,
    shift: u32,
    mult: u64,
    time_offset: u64,
    short: Option<(u64, u64)>,
) -> u64 {
    let cyc = match short {
        Some((base, mask)) => base.wrapping_add(cyc.wrapping_sub(base) & mask),
        None => cyc,
    };
    let quot = cyc >> shift;
    let rem = cyc & ((1u64 << shift) - 1);
    time_offset
        .wrapping_add(quot.wrapping_mul(mult))
        .wrapping_add(rem.wrapping_mul(mult) >> shift)
}

impl Drop for UserPage {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are exactly what mmap returned; nothing
        // borrows the mapping once `self` is being dropped.
        unsafe {
            libc::munmap(self.base, self.len);
        }
    }
}

/// Whether this build knows an instruction to read a hardware counter from
/// user space: `rdpmc` on x86_64, `mrs` of the PMU counter registers on
/// aarch64.
pub(crate) const fn user_read_supported() -> bool {
    cfg!(any(target_arch = "x86_64", target_arch = "aarch64"))
}

/// `attr.config1` bits that ask the arm64 PMU driver for a counter user
/// space may read (`rdpmc` in the PMU's format, bit 1). Bit 0 (`long`, a
/// 64-bit counter) is left clear: with user access it fails to open on
/// PMUs without 64-bit event counters, and the page's `pmc_width` of 32
/// is handled by the sign extension in [`UserPage::read`]. Zero elsewhere.
pub(crate) const PMU_CONFIG1_USER_READ: u64 = if cfg!(target_arch = "aarch64") {
    1 << 1
} else {
    0
};

/// The timestamp counter the kernel's perf clock runs on: the TSC on
/// x86_64, the virtual counter `CNTVCT_EL0` on aarch64 (readable from EL0
/// wherever the vDSO works).
#[inline]
fn read_timestamp() -> Option<u64> {
    #[cfg(target_arch = "x86_64")]
    {
        let lo: u32;
        let hi: u32;
        // SAFETY: rdtsc is allowed in user space on Linux (CR4.TSD clear:
        // the vDSO's clock_gettime relies on it); it only writes the
        // declared registers.
        unsafe {
            std::arch::asm!("rdtsc", out("eax") lo, out("edx") hi,
                options(nostack, nomem, preserves_flags));
        }
        Some(u64::from(hi) << 32 | u64::from(lo))
    }
    #[cfg(target_arch = "aarch64")]
    {
        let value: u64;
        // SAFETY: Linux enables EL0 reads of CNTVCT_EL0 (CNTKCTL_EL1.EL0VCTEN)
        // for the vDSO; a register read touches no memory and no flags.
        unsafe {
            std::arch::asm!("mrs {v}, cntvct_el0", v = out(reg) value,
                options(nostack, nomem, preserves_flags));
        }
        Some(value)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        None
    }
}

/// Runs a loop whose user-space instruction count is known exactly:
/// `INSTRUCTIONS_PER_ITERATION * iterations` plus a constant that does not
/// depend on `iterations`.
#[inline(never)]
pub(crate) fn known_loop(iterations: u64) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: pure register arithmetic and local branches; no memory, no
    // stack, and the clobbered register is declared.
    unsafe {
        std::arch::asm!(
            "test {n}, {n}",
            "jz 3f",
            "2:",
            "dec {n}",
            "jnz 2b",
            "3:",
            n = inout(reg) iterations => _,
            options(nomem, nostack),
        );
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as above.
    unsafe {
        std::arch::asm!(
            "cbz {n}, 3f",
            "2:",
            "subs {n}, {n}, #1",
            "b.ne 2b",
            "3:",
            n = inout(reg) iterations => _,
            options(nomem, nostack),
        );
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = std::hint::black_box(iterations);
    }
}

/// Instructions per iteration of [`known_loop`] on this architecture, or
/// `None` where the loop is not written in assembly.
pub(crate) const KNOWN_LOOP_INSTRUCTIONS: Option<u64> =
    if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
        Some(2)
    } else {
        None
    };

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_count_sign_extends_narrow_counters() {
        // A 32-bit counter the kernel started at -16: 16 events before it
        // wraps to 0, offset holding the count at the start (1000 + 16).
        assert_eq!(user_count(1016, 0xffff_fff0, 32), 1000);
        assert_eq!(user_count(1016, 0xffff_fff0 + 20, 32), 1020);
        // After the wrap the raw value is small and positive.
        assert_eq!(user_count(1016, 4, 32), 1020);
        // High bits above the width are ignored (arm64 sets them on the
        // cycle counter used as a 32-bit one).
        assert_eq!(user_count(1016, 0xffff_ffff_0000_0004, 32), 1020);
        // A 48-bit x86 counter and a full 64-bit one.
        assert_eq!(user_count(-5, 0x0000_ffff_ffff_fffb, 48), (-10i64) as u64);
        assert_eq!(user_count(7, 35, 64), 42);
    }

    /// A page that offers counter 0 to user space (capability set, index
    /// 1, never multiplexed), as the kernel's does for a moment after it
    /// withdrew user access; written by the test, not the kernel.
    fn offering_page() -> UserPage {
        let len = page_size() as usize;
        // SAFETY: a fresh private anonymous mapping chosen by the kernel;
        // it aliases no Rust object.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED);
        // SAFETY: the offsets are inside the page and aligned as the uapi
        // layout says; nothing else refers to the mapping yet.
        unsafe {
            let at = |offset: usize| base.cast::<u8>().add(offset);
            at(PAGE_INDEX).cast::<u32>().write(1);
            at(PAGE_CAPABILITIES).cast::<u64>().write(CAP_USER_RDPMC);
            at(PAGE_PMC_WIDTH).cast::<u16>().write(48);
        }
        UserPage { base, len }
    }

    #[test]
    fn a_counter_the_page_offers_and_the_cpu_refuses_reads_as_withdrawn() {
        if !user_read_supported() {
            return;
        }
        let page = offering_page();
        assert!(page.user_readable());
        assert!(recover_withdrawn_user_reads());
        let before = withdrawn_user_reads();
        match page.read() {
            // No other unit test executes a read instruction that faults.
            Err(UserReadFailure::Withdrawn) => assert_eq!(withdrawn_user_reads(), before + 1),
            Ok(count) => eprintln!(
                "SKIP a_counter_the_page_offers_and_the_cpu_refuses_reads_as_withdrawn: \
                 this CPU lets user space read counter 0 ({count:?})"
            ),
            Err(UserReadFailure::NotNow) => panic!("the page offers the counter"),
        }
    }

    #[test]
    fn ns_since_update_follows_the_uapi_conversion() {
        // 1 GHz counter: mult = 1 << shift, one ns per cycle.
        let shift = 24;
        let one_ns = 1u64 << shift;
        let offset = 0u64.wrapping_sub(1_000_000); // update at 1_000_000 ns
        assert_eq!(ns_since_update(1_000_250, shift, one_ns, offset, None), 250);
        // 62.5 MHz counter (arm64's usual rate): 16 ns per cycle.
        assert_eq!(ns_since_update(62_500, shift, 16 * one_ns, offset, None), 0);
        assert_eq!(
            ns_since_update(62_510, shift, 16 * one_ns, offset, None),
            160
        );
        // A 56-bit counter that wrapped since the base value was taken.
        let mask = (1u64 << 56) - 1;
        let base = mask - 9; // 10 cycles before the wrap
        let offset = 0u64.wrapping_sub(base + 5); // update at base + 5 ns
        assert_eq!(
            ns_since_update(5, shift, one_ns, offset, Some((base, mask))),
            10
        );
    }
}
