// Own test binary: it installs signal handlers and re-runs itself as a child process.
//! x86_64: the library's own `rdpmc` refused by the CPU (user access
//! withdrawn at run time: `/sys/bus/event_source/devices/cpu/rdpmc` set to
//! 0 clears CR4.PCE at once) raises SIGSEGV, which the library recovers as
//! a failed read; every other SIGSEGV still reaches the handler that was
//! there before, or kills the process when there was none.
//!
//! This runs on any x86_64 machine, PMU or not: where user space may not
//! execute `rdpmc` (no PMU, or no perf event mapped by the process), the
//! library's read routine faults exactly as it does after the switch, so
//! the test executes it (`counters::read_counter_register`) and checks the
//! recovery. On a machine where `rdpmc` is allowed to every process
//! (`rdpmc` = 2) it does not fault, and the test says so and checks
//! nothing. On aarch64 the same mechanism recovers SIGILL
//! (`tests/pmu_sigill.rs`, in the emulated PMU guest).

use std::process::Output;
use std::sync::{Mutex, MutexGuard};

use dynostats::counters::{read_counter_register, withdrawn_user_reads};

/// Held by each test of this binary while it runs, so that the reads and
/// counts of one are not another's.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether the library's `rdpmc` faults on this machine: asked once
/// through the library's own read, which also installs the handler. Prints
/// why not when it does not.
fn refused_here(test: &str) -> bool {
    if !cfg!(target_arch = "x86_64") {
        eprintln!(
            "SKIP {test}: x86_64 only (aarch64's SIGILL recovery is tests/pmu_sigill.rs, in the PMU guest)"
        );
        return false;
    }
    let before = withdrawn_user_reads();
    match read_counter_register(0) {
        None => {
            assert_eq!(
                withdrawn_user_reads(),
                before + 1,
                "a read that gave no count is a recovered fault, counted"
            );
            true
        }
        Some(count) => {
            eprintln!(
                "SKIP {test}: rdpmc is allowed to this process here (counter 0 read {count}): \
                 nothing faults"
            );
            false
        }
    }
}

#[test]
fn the_librarys_refused_rdpmc_is_recovered_and_counted_on_every_thread() {
    const TEST: &str = "the_librarys_refused_rdpmc_is_recovered_and_counted_on_every_thread";
    let _alone = one_at_a_time();
    if !refused_here(TEST) {
        return;
    }
    // Every refused read is recovered and counted: on this thread, and on
    // threads that did not install the handler (it is per process).
    let before = withdrawn_user_reads();
    for counter in [0, 1, 1 << 30] {
        assert_eq!(read_counter_register(counter), None, "counter {counter}");
    }
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                (0..25)
                    .map(|i| read_counter_register(i % 4).is_none())
                    .filter(|&refused| refused)
                    .count()
            })
        })
        .collect();
    let refused: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(refused, 100);
    assert_eq!(withdrawn_user_reads(), before + 3 + 100);
}

/// The role of a child process of this test binary, in its environment.
const CHILD_ROLE: &str = "DYNOSTATS_SIGSEGV_CHILD";

/// Runs this test binary again with only `child_sigsegv` and `role`.
fn child(role: &str) -> Output {
    std::process::Command::new(std::env::current_exe().expect("current_exe"))
        .args([
            "--ignored",
            "--exact",
            "child_sigsegv",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ROLE, role)
        .output()
        .expect("run the child")
}

/// The child's side of the `a_sigsegv_that_is_not_the_librarys_*` tests,
/// which run it in a process of its own with its role set. No test on its
/// own: ignored in every other run, and a failure when run without a role.
#[test]
#[ignore = "the child process of the a_sigsegv_that_is_not_the_librarys_* tests, run by them"]
fn child_sigsegv() {
    let role = std::env::var(CHILD_ROLE).unwrap_or_else(|_| {
        panic!(
            "child_sigsegv checks nothing on its own: the a_sigsegv_that_is_not_the_librarys_* \
             tests run it with {CHILD_ROLE} set"
        )
    });
    #[cfg(target_arch = "x86_64")]
    foreign::child(&role);
    #[cfg(not(target_arch = "x86_64"))]
    panic!("child {role}: x86_64 only");
}

#[cfg(target_arch = "x86_64")]
mod foreign {
    use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

    use super::*;

    /// Calls of the handler the child installs before the library's.
    static PREVIOUS_CALLS: AtomicU64 = AtomicU64::new(0);
    /// The page whose first write faults; the earlier handler makes it
    /// writable (as a garbage collector's or a user-fault handler does).
    static PAGE: AtomicPtr<libc::c_void> = AtomicPtr::new(std::ptr::null_mut());

    fn page_size() -> usize {
        // SAFETY: sysconf has no memory-safety preconditions.
        unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
    }

    /// The service's own handler, the work of both kinds: counts the call
    /// and makes the page writable, so the faulting write goes through
    /// when it is retried.
    fn previous_work() {
        PREVIOUS_CALLS.fetch_add(1, Ordering::Relaxed);
        let page = PAGE.load(Ordering::Relaxed);
        // SAFETY: `page` is the child's own mapping of one page;
        // mprotect is async-signal-safe.
        unsafe {
            libc::mprotect(page, page_size(), libc::PROT_READ | libc::PROT_WRITE);
        }
    }

    extern "C" fn previous_siginfo(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
        previous_work();
    }

    extern "C" fn previous_plain(_: libc::c_int) {
        previous_work();
    }

    /// Sets the SIGSEGV action: `SIG_DFL`, or one of the two handlers.
    fn set_action(role: &str) {
        // SAFETY: an all-zero sigaction is valid; the handlers live for the
        // whole program.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = match role {
                "siginfo" => {
                    let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                        previous_siginfo;
                    action.sa_flags = libc::SA_SIGINFO;
                    f as libc::sighandler_t
                }
                "plain" => {
                    let f: extern "C" fn(libc::c_int) = previous_plain;
                    f as libc::sighandler_t
                }
                _ => libc::SIG_DFL,
            };
            libc::sigemptyset(&mut action.sa_mask);
            assert_eq!(
                libc::sigaction(libc::SIGSEGV, &action, std::ptr::null_mut()),
                0
            );
        }
    }

    /// Keeps a dying child from writing a core file.
    fn no_core_file() {
        let none = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `none` is a valid rlimit for the call.
        unsafe { libc::setrlimit(libc::RLIMIT_CORE, &none) };
    }

    /// A write through a null pointer: a SIGSEGV raised by the kernel
    /// (SEGV_MAPERR) at a pc that is not the library's.
    fn null_write() {
        // SAFETY: deliberately faults; in asm, so the compiler assumes
        // nothing about it. Only a handler that fixes the fault could let
        // it go on, and none of these children installs one for address 0.
        unsafe {
            std::arch::asm!("mov byte ptr [{p}], 1", p = in(reg) 0usize, options(nostack));
        }
    }

    /// The library's own read, refused and recovered: `None`, counted.
    fn own_read_recovered(expected_total: u64) {
        assert_eq!(read_counter_register(0), None);
        assert_eq!(withdrawn_user_reads(), expected_total);
    }

    pub(super) fn child(role: &str) {
        no_core_file();
        match role {
            // Nothing before the library's handler: not even std's stack
            // overflow handler.
            "default" => set_action("default"),
            // Rust's own SIGSEGV handler (stack overflows) comes first, as
            // in every Rust program.
            "std" => {}
            "siginfo" | "plain" => set_action(role),
            other => panic!("unknown role {other}"),
        }
        // The library's handler is installed by its first read, which
        // faults here.
        own_read_recovered(1);
        println!("child {role}: own rdpmc recovered");
        if role == "default" || role == "std" {
            null_write();
            println!("child {role}: survived a null write");
            return;
        }
        // A fault that is not the library's: the earlier handler gets it,
        // makes the page writable, and the write goes through.
        // SAFETY: a fresh anonymous mapping of one page, no access yet.
        let page = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                page_size(),
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(page, libc::MAP_FAILED);
        PAGE.store(page, Ordering::Relaxed);
        let byte = page.cast::<u8>();
        // SAFETY: `byte` points into the child's own mapping; the first
        // write faults and the earlier handler makes the page writable.
        unsafe {
            std::ptr::write_volatile(byte, 42);
            assert_eq!(std::ptr::read_volatile(byte), 42);
        }
        assert_eq!(PREVIOUS_CALLS.load(Ordering::Relaxed), 1);
        // A SIGSEGV sent, not raised by a fault: the earlier handler too.
        // SAFETY: raise has no memory-safety preconditions.
        assert_eq!(unsafe { libc::raise(libc::SIGSEGV) }, 0);
        assert_eq!(PREVIOUS_CALLS.load(Ordering::Relaxed), 2);
        // Neither was counted as the library's, whose own read is still
        // recovered without reaching the earlier handler.
        assert_eq!(withdrawn_user_reads(), 1);
        own_read_recovered(2);
        assert_eq!(PREVIOUS_CALLS.load(Ordering::Relaxed), 2);
        println!("child {role}: chained twice, own rdpmc recovered twice");
    }
}

/// Checks that a child of `role` printed `line` and died of SIGSEGV.
fn assert_killed_by_sigsegv(role: &str, line: &str) {
    use std::os::unix::process::ExitStatusExt;
    let out = child(role);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("child {role}: {:?}, {}", out.status, stdout.trim());
    assert!(stdout.contains(line), "{stdout}{stderr}");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGSEGV),
        "{:?}: {stdout}{stderr}",
        out.status
    );
}

#[test]
fn a_sigsegv_that_is_not_the_librarys_still_kills_without_a_handler_before() {
    const TEST: &str = "a_sigsegv_that_is_not_the_librarys_still_kills_without_a_handler_before";
    let _alone = one_at_a_time();
    if !refused_here(TEST) {
        return;
    }
    // The library's handler re-raises it under the default action.
    assert_killed_by_sigsegv("default", "child default: own rdpmc recovered");
}

#[test]
fn a_sigsegv_that_is_not_the_librarys_still_kills_through_rusts_own_handler() {
    const TEST: &str = "a_sigsegv_that_is_not_the_librarys_still_kills_through_rusts_own_handler";
    let _alone = one_at_a_time();
    if !refused_here(TEST) {
        return;
    }
    // std's handler (installed before main) gets it, finds no stack
    // overflow, restores the default action, and the write faults again.
    assert_killed_by_sigsegv("std", "child std: own rdpmc recovered");
}

#[test]
fn a_sigsegv_that_is_not_the_librarys_reaches_the_handler_installed_before() {
    const TEST: &str = "a_sigsegv_that_is_not_the_librarys_reaches_the_handler_installed_before";
    let _alone = one_at_a_time();
    if !refused_here(TEST) {
        return;
    }
    for role in ["siginfo", "plain"] {
        let out = child(role);
        let stdout = String::from_utf8_lossy(&out.stdout);
        eprintln!("child {role}: {:?}, {}", out.status, stdout.trim());
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains(&format!(
                "child {role}: chained twice, own rdpmc recovered twice"
            )),
            "{stdout}"
        );
    }
}
