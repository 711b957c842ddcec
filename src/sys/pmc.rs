//! Reading a PMU counter register from user space (`rdpmc` on x86_64, `mrs`
//! on aarch64), and recovering a read the kernel withdrew at run time.

#[cfg(target_arch = "aarch64")]
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU64, Ordering};

use super::UserReadFailure;

#[cfg(target_arch = "x86_64")]
#[inline]
pub(super) fn read_pmc(counter: u32) -> Result<u64, UserReadFailure> {
    let lo: u32;
    let hi: u32;
    // SAFETY: only reached when the kernel set cap_user_rdpmc for this event
    // and handed out `index`, so CR4.PCE allows rdpmc for this counter.
    unsafe {
        std::arch::asm!("rdpmc", in("ecx") counter, out("eax") lo, out("edx") hi,
            options(nostack, nomem, preserves_flags));
    }
    Ok(u64::from(hi) << 32 | u64::from(lo))
}

/// Reads arm64 PMU counter `counter` from EL0: `PMEVCNTR<n>_EL0` for event
/// counters 0..=30, `PMCCNTR_EL0` for 31 (the kernel's page `index` is the
/// counter number plus one, and 32 for the cycle counter), through
/// [`pmc_reads`]. A read the kernel refused (the trap recovered by
/// [`recover_withdrawn_user_reads`]'s handler) is
/// [`UserReadFailure::Withdrawn`].
#[cfg(target_arch = "aarch64")]
#[inline]
pub(super) fn read_pmc(counter: u32) -> Result<u64, UserReadFailure> {
    if counter > 31 {
        // Not a counter this architecture has: let the caller use read(2).
        return Err(UserReadFailure::NotNow);
    }
    let value: u64;
    let ok: u64;
    // SAFETY: `pmc_reads` follows the contract this asm declares: it takes
    // the counter number (0..=31, checked above) in x0, returns in x0 and
    // x1, uses x16 and the link register, and touches neither memory, the
    // stack nor the flags. Its `mrs` is only reached when the kernel set
    // cap_user_rdpmc for this event and handed out its `index`; if the
    // kernel has withdrawn EL0 access since, the trap is recovered (x0 =
    // x1 = 0) by the handler that `Counters` installed before choosing this
    // path.
    unsafe {
        std::arch::asm!("bl {reads}", reads = sym pmc_reads,
            inout("x0") u64::from(counter) => value, lateout("x1") ok,
            out("x16") _, out("lr") _,
            options(nostack, nomem, preserves_flags));
    }
    if ok != 0 {
        Ok(value)
    } else {
        Err(UserReadFailure::Withdrawn)
    }
}

/// Bytes of one entry of [`pmc_reads`]: `mov x1, #1`, `mrs x0, <counter>`,
/// `ret`, `nop`.
#[cfg(target_arch = "aarch64")]
const PMC_ENTRY_BYTES: usize = 16;
/// Offset of the first entry of [`pmc_reads`] from its start: the dispatch
/// (`adr`, `add`, `br`) and one `nop`.
#[cfg(target_arch = "aarch64")]
const PMC_ENTRIES_OFFSET: usize = 16;
/// Offset of the `mrs` inside an entry of [`pmc_reads`].
#[cfg(target_arch = "aarch64")]
const PMC_MRS_OFFSET: usize = 4;

/// The only place the library reads an arm64 PMU counter register. Called
/// from [`read_pmc`]'s asm only, with the counter number in x0: it jumps to
/// entry x0 of a table of 32 fixed sequences, each `mov x1, #1; mrs x0,
/// <counter register>; ret`. A successful read returns the value in x0 and
/// 1 in x1. Each register is named in the instruction itself, hence one
/// entry per counter number.
///
/// The fixed layout is what lets the SIGILL handler recognise the
/// library's own read and nothing else: a trap whose pc is exactly the
/// `mrs` of an entry ([`is_pmc_read`]) is resumed at the `ret` with x0 =
/// x1 = 0 ("refused"). No indirect-branch landing pads: the crate is not
/// built with branch protection (the `br` lands on a `mov`).
#[cfg(target_arch = "aarch64")]
#[unsafe(naked)]
unsafe extern "C" fn pmc_reads() {
    macro_rules! table {
        ($($reg:literal),* $(,)?) => {
            std::arch::naked_asm!(
                "adr x16, 2f",
                "add x16, x16, x0, lsl #4",
                "br x16",
                "nop",
                "2:",
                $(concat!("mov x1, #1\nmrs x0, ", $reg, "\nret\nnop"),)*
            )
        };
    }
    table!(
        "pmevcntr0_el0",
        "pmevcntr1_el0",
        "pmevcntr2_el0",
        "pmevcntr3_el0",
        "pmevcntr4_el0",
        "pmevcntr5_el0",
        "pmevcntr6_el0",
        "pmevcntr7_el0",
        "pmevcntr8_el0",
        "pmevcntr9_el0",
        "pmevcntr10_el0",
        "pmevcntr11_el0",
        "pmevcntr12_el0",
        "pmevcntr13_el0",
        "pmevcntr14_el0",
        "pmevcntr15_el0",
        "pmevcntr16_el0",
        "pmevcntr17_el0",
        "pmevcntr18_el0",
        "pmevcntr19_el0",
        "pmevcntr20_el0",
        "pmevcntr21_el0",
        "pmevcntr22_el0",
        "pmevcntr23_el0",
        "pmevcntr24_el0",
        "pmevcntr25_el0",
        "pmevcntr26_el0",
        "pmevcntr27_el0",
        "pmevcntr28_el0",
        "pmevcntr29_el0",
        "pmevcntr30_el0",
        "pmccntr_el0",
    )
}

/// Whether `pc` is the `mrs` of one of [`pmc_reads`]'s entries.
#[cfg(target_arch = "aarch64")]
#[inline]
fn is_pmc_read(pc: usize) -> bool {
    let start = pmc_reads as *const () as usize + PMC_ENTRIES_OFFSET;
    pc.checked_sub(start)
        .is_some_and(|off| off < 32 * PMC_ENTRY_BYTES && off % PMC_ENTRY_BYTES == PMC_MRS_OFFSET)
}

/// Reads the kernel refused, recovered by the SIGILL handler.
static WITHDRAWN_READS: AtomicU64 = AtomicU64::new(0);

/// How many user-space counter reads of this process the kernel refused
/// with a trap that the library recovered (0 where no handler is needed).
pub(crate) fn withdrawn_user_reads() -> u64 {
    WITHDRAWN_READS.load(Ordering::Relaxed)
}

/// Where the SIGILL handler stands: not installed, being installed by a
/// thread, installed, or failed (the user-read path is then not used).
#[cfg(target_arch = "aarch64")]
static SIGILL_STATE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);
#[cfg(target_arch = "aarch64")]
const SIGILL_NONE: u8 = 0;
#[cfg(target_arch = "aarch64")]
const SIGILL_INSTALLING: u8 = 1;
#[cfg(target_arch = "aarch64")]
const SIGILL_INSTALLED: u8 = 2;
#[cfg(target_arch = "aarch64")]
const SIGILL_FAILED: u8 = 3;

/// The SIGILL action that was in place before the library's, written once
/// before the library's handler is installed and read by the handler only
/// after `PREVIOUS_SIGILL_READY` says so.
#[cfg(target_arch = "aarch64")]
struct PreviousAction(std::cell::UnsafeCell<std::mem::MaybeUninit<libc::sigaction>>);

// SAFETY: written by one thread (the installer, which won the
// SIGILL_STATE exchange) before PREVIOUS_SIGILL_READY is published with
// Release, and only read after an Acquire load saw it set; never written
// again.
#[cfg(target_arch = "aarch64")]
unsafe impl Sync for PreviousAction {}

#[cfg(target_arch = "aarch64")]
static PREVIOUS_SIGILL: PreviousAction =
    PreviousAction(std::cell::UnsafeCell::new(std::mem::MaybeUninit::uninit()));
#[cfg(target_arch = "aarch64")]
static PREVIOUS_SIGILL_READY: AtomicBool = AtomicBool::new(false);

/// Makes a user-space counter read that the kernel refuses at run time a
/// failed read instead of a crash. Returns whether user-space reads may be
/// used: `false` when that protection could not be put in place.
///
/// On arm64 the kernel can withdraw EL0 access to the PMU at any moment
/// (`/proc/sys/kernel/perf_user_access` set to 0 clears `PMUSERENR_EL0`
/// on every CPU at once), while the event's page keeps offering the
/// counter until the thread is next scheduled in. No check before the
/// `mrs` can close that window, so the trap is recovered: the first call
/// installs, with `sigaction`, a SIGILL handler (`SA_SIGINFO |
/// SA_ONSTACK`) that recognises only a kernel-raised trap on the `mrs` of
/// [`pmc_reads`], resumes it as a failed read (counted, see
/// [`withdrawn_user_reads`]), and hands every other SIGILL to the action
/// that was in place before (re-raised with the default action when that
/// was the default). The handler is async-signal-safe: it allocates
/// nothing, takes no lock, and calls only `sigaction` and `raise`.
///
/// Not a `Once`: a thread that finds another one installing waits a
/// bounded number of yields and then declines (read(2) for its counters),
/// so a child forked mid-installation cannot hang here.
///
/// Remaining risk: a handler installed later by someone else that does not
/// chain to this one takes the trap, and the process dies as it would have
/// without the library. On x86_64 nothing is installed: `rdpmc` with user
/// access withdrawn at run time (CR4.PCE cleared when
/// `/sys/bus/event_source/devices/cpu/rdpmc` is set to 0) faults with
/// SIGSEGV, which this does not recover.
pub(crate) fn recover_withdrawn_user_reads() -> bool {
    #[cfg(target_arch = "aarch64")]
    {
        if SIGILL_STATE.load(Ordering::Acquire) == SIGILL_INSTALLED {
            return true;
        }
        install_sigill_handler()
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        true
    }
}

#[cfg(target_arch = "aarch64")]
#[cold]
fn install_sigill_handler() -> bool {
    if SIGILL_STATE
        .compare_exchange(
            SIGILL_NONE,
            SIGILL_INSTALLING,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_err()
    {
        for _ in 0..10_000 {
            match SIGILL_STATE.load(Ordering::Acquire) {
                SIGILL_INSTALLING => std::thread::yield_now(),
                state => return state == SIGILL_INSTALLED,
            }
        }
        return false;
    }
    let installed = sigaction_install();
    SIGILL_STATE.store(
        if installed {
            SIGILL_INSTALLED
        } else {
            SIGILL_FAILED
        },
        Ordering::Release,
    );
    installed
}

/// Saves the current SIGILL action, then installs [`on_sigill`]; undoes it
/// and fails if another action was installed in between.
#[cfg(target_arch = "aarch64")]
fn sigaction_install() -> bool {
    // SAFETY: sigaction is plain old data; all-zero is a valid value.
    let mut previous: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only queries; `previous` is writable.
    if unsafe { libc::sigaction(libc::SIGILL, std::ptr::null(), &mut previous) } != 0 {
        return false;
    }
    // SAFETY: this thread won the SIGILL_STATE exchange, so it is the only
    // writer, and no handler reads the slot before PREVIOUS_SIGILL_READY.
    unsafe {
        (*PREVIOUS_SIGILL.0.get()).write(previous);
    }
    PREVIOUS_SIGILL_READY.store(true, Ordering::Release);
    // SAFETY: as above.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) = on_sigill;
    action.sa_sigaction = handler as libc::sighandler_t;
    action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    // SAFETY: `action.sa_mask` is a valid sigset_t to initialise.
    unsafe {
        libc::sigemptyset(&mut action.sa_mask);
    }
    // SAFETY: as above.
    let mut replaced: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; the handler is an
    // `extern "C"` function that lives for the whole program.
    if unsafe { libc::sigaction(libc::SIGILL, &action, &mut replaced) } != 0 {
        return false;
    }
    if replaced.sa_sigaction != previous.sa_sigaction || replaced.sa_flags != previous.sa_flags {
        // Someone installed another action between the two calls: put it
        // back rather than chain to a stale one.
        // SAFETY: `replaced` is the action the kernel just gave back.
        unsafe {
            libc::sigaction(libc::SIGILL, &replaced, std::ptr::null_mut());
        }
        return false;
    }
    true
}

/// The library's SIGILL handler (see [`recover_withdrawn_user_reads`]).
#[cfg(target_arch = "aarch64")]
extern "C" fn on_sigill(sig: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t for an SA_SIGINFO handler.
    let code = if info.is_null() {
        0
    } else {
        unsafe { (*info).si_code }
    };
    // A positive si_code: raised by the kernel for the instruction at pc,
    // not sent by kill/tgkill/raise (SI_USER, SI_TKILL, ... are <= 0).
    if code > 0 && !context.is_null() {
        // SAFETY: for an SA_SIGINFO handler the third argument is the
        // interrupted thread's ucontext_t, which the handler may modify:
        // the kernel restores the registers from it on return.
        let mcontext = unsafe { &mut (*context.cast::<libc::ucontext_t>()).uc_mcontext };
        if is_pmc_read(mcontext.pc as usize) {
            mcontext.regs[0] = 0;
            mcontext.regs[1] = 0;
            mcontext.pc += 4; // the `ret` of the entry
            WITHDRAWN_READS.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    chain_sigill(sig, info, context, code);
}

/// Hands a SIGILL that is not the library's to the action that was in
/// place before the library's handler.
#[cfg(target_arch = "aarch64")]
fn chain_sigill(
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
    code: libc::c_int,
) {
    let previous = if PREVIOUS_SIGILL_READY.load(Ordering::Acquire) {
        // SAFETY: written once before READY was published (Release), never
        // again; this Acquire load saw it.
        Some(unsafe { (*PREVIOUS_SIGILL.0.get()).assume_init_ref() })
    } else {
        None
    };
    let handler = previous.map_or(libc::SIG_DFL, |p| p.sa_sigaction);
    // An ignored SIGILL raised by a fault kills the process all the same
    // (the kernel resets an ignored or blocked fault signal to the default).
    if handler == libc::SIG_DFL || (handler == libc::SIG_IGN && code > 0) {
        // SAFETY: sigaction with the default action and raise are
        // async-signal-safe; SIGILL is blocked while this handler runs, so
        // the raised one is delivered, with the default action, as soon as
        // it returns (and a fault would recur on the same instruction).
        unsafe {
            let mut default: libc::sigaction = std::mem::zeroed();
            default.sa_sigaction = libc::SIG_DFL;
            libc::sigemptyset(&mut default.sa_mask);
            libc::sigaction(libc::SIGILL, &default, std::ptr::null_mut());
            libc::raise(libc::SIGILL);
        }
        return;
    }
    if handler == libc::SIG_IGN {
        return;
    }
    let flags = previous.map_or(0, |p| p.sa_flags);
    if flags & libc::SA_SIGINFO != 0 {
        // SAFETY: with SA_SIGINFO the previous handler was installed as a
        // three-argument function; it gets the arguments this one got.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(handler) };
        f(sig, info, context);
    } else {
        // SAFETY: without SA_SIGINFO the previous handler is a
        // one-argument function.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
        f(sig);
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
#[inline]
pub(super) fn read_pmc(_counter: u32) -> Result<u64, UserReadFailure> {
    Err(UserReadFailure::NotNow)
}
