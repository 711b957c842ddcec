//! Reading a PMU counter register from user space (`rdpmc` on x86_64, `mrs`
//! on aarch64), and recovering a read the kernel withdrew at run time.
//!
//! Both architectures read in one fixed place ([`rdpmc_read`],
//! [`pmc_reads`]), so that one signal handler ([`on_trap`]) can tell the
//! library's own read from any other fault by its pc alone; everything
//! else about the handler (installing it once, chaining to the action
//! that was there before, re-raising under the default action) is shared.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use super::UserReadFailure;

/// What [`rdpmc_read`] leaves in rdx when the kernel refused the `rdpmc`:
/// a successful `rdpmc` writes edx, which clears the upper half of rdx, so
/// no read can give this.
#[cfg(target_arch = "x86_64")]
const RDPMC_REFUSED: u64 = u64::MAX;

/// Reads x86 performance counter `counter` (the `rdpmc` index: the kernel's
/// page `index` minus one) through [`rdpmc_read`]. A read the kernel
/// refused (the fault recovered by [`recover_withdrawn_user_reads`]'s
/// handler) is [`UserReadFailure::Withdrawn`].
#[cfg(target_arch = "x86_64")]
#[inline]
pub(super) fn read_pmc(counter: u32) -> Result<u64, UserReadFailure> {
    let lo: u64;
    let hi: u64;
    // SAFETY: `rdpmc_read` follows the contract this asm declares: it takes
    // the counter in ecx, returns in rax and rdx, and touches no memory but
    // the return address that `call` pushes (hence no `nostack`: the
    // compiler keeps the red zone free), nor the flags. Its `rdpmc` is only
    // reached when the kernel set cap_user_rdpmc for this event and handed
    // out its `index`; if the kernel has withdrawn user access since
    // (CR4.PCE cleared), the fault is recovered (rdx = RDPMC_REFUSED) by the
    // handler that `Counters` installed before choosing this path.
    unsafe {
        std::arch::asm!("call {read}", read = sym rdpmc_read,
            in("ecx") counter, out("rax") lo, out("rdx") hi,
            options(nomem, preserves_flags));
    }
    if hi == RDPMC_REFUSED {
        return Err(UserReadFailure::Withdrawn);
    }
    Ok(hi << 32 | lo)
}

/// The only place the library executes `rdpmc`. Called from [`read_pmc`]'s
/// asm only, with the counter in ecx: `rdpmc` at the function's first
/// byte, then `ret`. A successful read returns the count in edx:eax (the
/// upper halves of rax and rdx cleared).
///
/// The fixed address is what lets the SIGSEGV handler recognise the
/// library's own read and nothing else: a fault whose pc is exactly this
/// function's ([`resume_own_read`]) is resumed at the `ret` with rax = 0
/// and rdx = [`RDPMC_REFUSED`].
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
unsafe extern "C" fn rdpmc_read() {
    std::arch::naked_asm!("rdpmc", "ret")
}

/// Bytes of the `rdpmc` instruction (`0f 33`).
#[cfg(target_arch = "x86_64")]
const RDPMC_BYTES: u64 = 2;

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

/// Resumes a trap on the library's own `mrs` as a failed read: x0 = x1 =
/// 0, pc on the entry's `ret`. Whether the trap was that.
#[cfg(target_arch = "aarch64")]
#[inline]
fn resume_own_read(context: &mut libc::ucontext_t) -> bool {
    let mcontext = &mut context.uc_mcontext;
    if !is_pmc_read(mcontext.pc as usize) {
        return false;
    }
    mcontext.regs[0] = 0;
    mcontext.regs[1] = 0;
    mcontext.pc += 4; // the `ret` of the entry
    true
}

/// Resumes a fault on the library's own `rdpmc` as a failed read: rax = 0,
/// rdx = [`RDPMC_REFUSED`], rip on the `ret`. Whether the fault was that.
#[cfg(target_arch = "x86_64")]
#[inline]
fn resume_own_read(context: &mut libc::ucontext_t) -> bool {
    let gregs = &mut context.uc_mcontext.gregs;
    let rip = gregs[libc::REG_RIP as usize] as u64;
    if rip != rdpmc_read as *const () as u64 {
        return false;
    }
    gregs[libc::REG_RAX as usize] = 0;
    gregs[libc::REG_RDX as usize] = RDPMC_REFUSED as libc::greg_t;
    gregs[libc::REG_RIP as usize] = (rip + RDPMC_BYTES) as libc::greg_t;
    true
}

/// The signal a refused user-space counter read raises: SIGILL for an
/// `mrs` that EL0 may not execute (arm64), SIGSEGV for the general
/// protection fault of `rdpmc` with CR4.PCE clear (x86_64).
#[cfg(target_arch = "aarch64")]
const TRAP_SIGNAL: libc::c_int = libc::SIGILL;
#[cfg(target_arch = "x86_64")]
const TRAP_SIGNAL: libc::c_int = libc::SIGSEGV;
/// Elsewhere nothing is read from user space and no handler is installed.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const TRAP_SIGNAL: libc::c_int = libc::SIGILL;

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn resume_own_read(_context: &mut libc::ucontext_t) -> bool {
    false
}

/// Reads the kernel refused, recovered by the trap handler.
static WITHDRAWN_READS: AtomicU64 = AtomicU64::new(0);

/// How many user-space counter reads of this process the kernel refused
/// with a trap that the library recovered (0 where no handler is needed).
pub(crate) fn withdrawn_user_reads() -> u64 {
    WITHDRAWN_READS.load(Ordering::Relaxed)
}

/// Where the trap handler stands: not installed, being installed by a
/// thread, installed, or failed (the user-read path is then not used).
static TRAP_STATE: AtomicU8 = AtomicU8::new(0);
const TRAP_NONE: u8 = 0;
const TRAP_INSTALLING: u8 = 1;
const TRAP_INSTALLED: u8 = 2;
const TRAP_FAILED: u8 = 3;

/// The action for [`TRAP_SIGNAL`] that was in place before the library's,
/// written once before the library's handler is installed and read by the
/// handler only after `PREVIOUS_ACTION_READY` says so.
struct PreviousAction(std::cell::UnsafeCell<std::mem::MaybeUninit<libc::sigaction>>);

// SAFETY: written by one thread (the installer, which won the TRAP_STATE
// exchange) before PREVIOUS_ACTION_READY is published with Release, and
// only read after an Acquire load saw it set; never written again.
unsafe impl Sync for PreviousAction {}

static PREVIOUS_ACTION: PreviousAction =
    PreviousAction(std::cell::UnsafeCell::new(std::mem::MaybeUninit::uninit()));
static PREVIOUS_ACTION_READY: AtomicBool = AtomicBool::new(false);

/// Makes a user-space counter read that the kernel refuses at run time a
/// failed read instead of a crash. Returns whether user-space reads may be
/// used: `false` when that protection could not be put in place.
///
/// The kernel can withdraw user access to the PMU at any moment, while the
/// event's page keeps offering the counter until the thread is next
/// scheduled in: on arm64 `/proc/sys/kernel/perf_user_access` set to 0
/// clears `PMUSERENR_EL0` on every CPU at once, and the next `mrs` traps
/// with SIGILL; on x86_64 `/sys/bus/event_source/devices/cpu/rdpmc` set to
/// 0 clears CR4.PCE on every CPU at once, and the next `rdpmc` faults with
/// SIGSEGV. No check before the read can close that window, so the trap is
/// recovered: the first call installs, with `sigaction`, a handler for
/// that signal (`SA_SIGINFO | SA_ONSTACK`) that recognises only a
/// kernel-raised trap whose pc is the library's own read instruction
/// ([`rdpmc_read`], or the `mrs` of [`pmc_reads`]), resumes it as a failed
/// read (counted, see [`withdrawn_user_reads`]), and hands every other
/// signal to the action that was in place before (re-raised with the
/// default action when that was the default). The handler is
/// async-signal-safe: it allocates nothing, takes no lock, and calls only
/// `sigaction` and `raise`.
///
/// Not a `Once`: a thread that finds another one installing waits a
/// bounded number of yields and then declines (read(2) for its counters),
/// so a child forked mid-installation cannot hang here.
///
/// Remaining risk: a handler installed later by someone else that does not
/// chain to this one takes the trap, and the process dies as it would have
/// without the library.
pub(crate) fn recover_withdrawn_user_reads() -> bool {
    if !super::user_read_supported() {
        // Nothing to recover: no read instruction is ever executed.
        return true;
    }
    if TRAP_STATE.load(Ordering::Acquire) == TRAP_INSTALLED {
        return true;
    }
    install_trap_handler()
}

#[cold]
fn install_trap_handler() -> bool {
    if TRAP_STATE
        .compare_exchange(
            TRAP_NONE,
            TRAP_INSTALLING,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_err()
    {
        for _ in 0..10_000 {
            match TRAP_STATE.load(Ordering::Acquire) {
                TRAP_INSTALLING => std::thread::yield_now(),
                state => return state == TRAP_INSTALLED,
            }
        }
        return false;
    }
    let installed = sigaction_install();
    TRAP_STATE.store(
        if installed {
            TRAP_INSTALLED
        } else {
            TRAP_FAILED
        },
        Ordering::Release,
    );
    installed
}

/// Saves the current action for [`TRAP_SIGNAL`], then installs
/// [`on_trap`]; undoes it and fails if another action was installed in
/// between.
fn sigaction_install() -> bool {
    // SAFETY: sigaction is plain old data; all-zero is a valid value.
    let mut previous: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only queries; `previous` is writable.
    if unsafe { libc::sigaction(TRAP_SIGNAL, std::ptr::null(), &mut previous) } != 0 {
        return false;
    }
    // SAFETY: this thread won the TRAP_STATE exchange, so it is the only
    // writer, and no handler reads the slot before PREVIOUS_ACTION_READY.
    unsafe {
        (*PREVIOUS_ACTION.0.get()).write(previous);
    }
    PREVIOUS_ACTION_READY.store(true, Ordering::Release);
    // SAFETY: as above.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) = on_trap;
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
    if unsafe { libc::sigaction(TRAP_SIGNAL, &action, &mut replaced) } != 0 {
        return false;
    }
    if replaced.sa_sigaction != previous.sa_sigaction || replaced.sa_flags != previous.sa_flags {
        // Someone installed another action between the two calls: put it
        // back rather than chain to a stale one.
        // SAFETY: `replaced` is the action the kernel just gave back.
        unsafe {
            libc::sigaction(TRAP_SIGNAL, &replaced, std::ptr::null_mut());
        }
        return false;
    }
    true
}

/// The library's handler of [`TRAP_SIGNAL`] (see
/// [`recover_withdrawn_user_reads`]).
extern "C" fn on_trap(sig: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t for an SA_SIGINFO handler.
    let code = if info.is_null() {
        0
    } else {
        unsafe { (*info).si_code }
    };
    // A positive si_code: raised by the kernel for the instruction at pc
    // (x86's general protection fault gives SI_KERNEL), not sent by
    // kill/tgkill/raise (SI_USER, SI_TKILL, ... are <= 0).
    if code > 0 && !context.is_null() {
        // SAFETY: for an SA_SIGINFO handler the third argument is the
        // interrupted thread's ucontext_t, which the handler may modify:
        // the kernel restores the registers from it on return.
        if resume_own_read(unsafe { &mut *context.cast::<libc::ucontext_t>() }) {
            WITHDRAWN_READS.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    chain_trap(sig, info, context, code);
}

/// Hands a signal that is not the library's trap to the action that was
/// in place before the library's handler.
fn chain_trap(
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
    code: libc::c_int,
) {
    let previous = if PREVIOUS_ACTION_READY.load(Ordering::Acquire) {
        // SAFETY: written once before READY was published (Release), never
        // again; this Acquire load saw it.
        Some(unsafe { (*PREVIOUS_ACTION.0.get()).assume_init_ref() })
    } else {
        None
    };
    let handler = previous.map_or(libc::SIG_DFL, |p| p.sa_sigaction);
    // An ignored signal raised by a fault kills the process all the same
    // (the kernel resets an ignored or blocked fault signal to the default).
    if handler == libc::SIG_DFL || (handler == libc::SIG_IGN && code > 0) {
        // SAFETY: sigaction with the default action and raise are
        // async-signal-safe; the signal is blocked while this handler runs,
        // so the raised one is delivered, with the default action, as soon
        // as it returns (and a fault would recur on the same instruction).
        unsafe {
            let mut default: libc::sigaction = std::mem::zeroed();
            default.sa_sigaction = libc::SIG_DFL;
            libc::sigemptyset(&mut default.sa_mask);
            libc::sigaction(sig, &default, std::ptr::null_mut());
            libc::raise(sig);
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

/// Reads counter `counter` with the library's own read instruction, for a
/// test of the recovery: the handler is installed first, and `None` says
/// the read gave no count (the kernel refused it: a recovered trap,
/// counted by [`withdrawn_user_reads`]; or the handler could not be
/// installed, and nothing was read).
pub(crate) fn read_counter_register(counter: u32) -> Option<u64> {
    if !recover_withdrawn_user_reads() {
        return None;
    }
    read_pmc(counter).ok()
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
#[inline]
pub(super) fn read_pmc(_counter: u32) -> Result<u64, UserReadFailure> {
    Err(UserReadFailure::NotNow)
}
