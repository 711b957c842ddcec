//! A scripted stand-in for the kernel's perf interface, installed with
//! perf-event2's `hooks` feature.
//!
//! `perf_event_open` either fails with a chosen errno or returns one end of a
//! `SOCK_SEQPACKET` socket pair; the test keeps the other end and queues the
//! exact bytes each `read(2)` of the group leader must return. Message
//! boundaries are kept, so every queued group read is returned by exactly one
//! `read`.

#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::raw::{c_int, c_ulong};
use std::rc::Rc;

use perf_event::hooks::sys::bindings;
use perf_event::hooks::{Hooks, clear_thread_hooks, set_thread_hooks};

/// What a test saw of one `perf_event_open` call.
#[derive(Clone, Debug)]
pub struct OpenCall {
    pub type_: u32,
    pub config: u64,
    pub pid: i32,
    pub cpu: i32,
    pub group_fd: i32,
    pub read_format: u64,
    pub exclude_kernel: bool,
    pub disabled: bool,
    pub inherit: bool,
    /// The fd handed back, or the errno returned.
    pub result: Result<i32, i32>,
}

#[derive(Default)]
struct State {
    /// errno to return for (type, config).
    errors: HashMap<(u32, u64), i32>,
    /// errno to return for every event of a type.
    type_errors: HashMap<u32, i32>,
    calls: Vec<OpenCall>,
    /// fd handed out -> the test's end of its socket pair.
    peers: HashMap<i32, OwnedFd>,
    next_id: u64,
    /// Hand out descriptors whose reads fail with `EAGAIN` when nothing is
    /// queued, instead of blocking.
    nonblocking: bool,
}

/// The scripted kernel. Clone handles share one state.
#[derive(Clone, Default)]
pub struct FakeKernel {
    state: Rc<RefCell<State>>,
}

pub const HARDWARE: u32 = bindings::PERF_TYPE_HARDWARE;
pub const SOFTWARE: u32 = bindings::PERF_TYPE_SOFTWARE;
pub const INSTRUCTIONS: u64 = bindings::PERF_COUNT_HW_INSTRUCTIONS as u64;
pub const CYCLES: u64 = bindings::PERF_COUNT_HW_CPU_CYCLES as u64;
pub const TASK_CLOCK: u64 = bindings::PERF_COUNT_SW_TASK_CLOCK as u64;
pub const PAGE_FAULTS: u64 = bindings::PERF_COUNT_SW_PAGE_FAULTS as u64;
pub const CONTEXT_SWITCHES: u64 = bindings::PERF_COUNT_SW_CONTEXT_SWITCHES as u64;

/// Restores the real system calls on drop.
pub struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        // SAFETY: counters created under the fake kernel were dropped by the
        // test before this guard (declared first, dropped last).
        unsafe { clear_thread_hooks() };
    }
}

impl FakeKernel {
    pub fn new() -> FakeKernel {
        FakeKernel::default()
    }

    /// Routes this thread's perf system calls to the fake kernel until the
    /// returned guard is dropped.
    #[must_use]
    pub fn install(&self) -> Installed {
        // SAFETY: the test creates its counters after this call, so no
        // counter made by the real kernel sees the fake one.
        unsafe { set_thread_hooks(Box::new(self.clone())) };
        Installed
    }

    /// Makes `perf_event_open` of (type, config) fail with `errno`.
    pub fn fail(&self, type_: u32, config: u64, errno: i32) -> &Self {
        self.state
            .borrow_mut()
            .errors
            .insert((type_, config), errno);
        self
    }

    /// Makes every `perf_event_open` of `type_` fail with `errno`.
    pub fn fail_type(&self, type_: u32, errno: i32) -> &Self {
        self.state.borrow_mut().type_errors.insert(type_, errno);
        self
    }

    /// Lets every `perf_event_open` succeed again (undoes [`Self::fail`]
    /// and [`Self::fail_type`]): a kernel whose refusal has passed.
    pub fn succeed(&self) -> &Self {
        let mut state = self.state.borrow_mut();
        state.errors.clear();
        state.type_errors.clear();
        drop(state);
        self
    }

    /// Makes a `read(2)` with nothing queued fail (`EAGAIN`) instead of
    /// blocking: for code that reads counters the test does not script,
    /// such as the probe's cost measurement.
    pub fn nonblocking_reads(&self) -> &Self {
        self.state.borrow_mut().nonblocking = true;
        self
    }

    pub fn calls(&self) -> Vec<OpenCall> {
        self.state.borrow().calls.clone()
    }

    /// The fd of the first successfully opened event (the group leader).
    pub fn leader_fd(&self) -> i32 {
        self.state
            .borrow()
            .calls
            .iter()
            .find_map(|c| c.result.ok())
            .expect("no event was opened")
    }

    /// Queues the words the next `read(2)` of `fd` returns.
    pub fn queue_read(&self, fd: i32, words: &[u64]) {
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let state = self.state.borrow();
        let peer = state.peers.get(&fd).expect("unknown fd");
        // SAFETY: `bytes` is valid for reads of its length during the call.
        let n = unsafe { libc::send(peer.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0) };
        assert_eq!(n, bytes.len() as isize, "queueing a scripted read failed");
    }

    /// Queues a group read of the leader: `[nr, time_enabled,
    /// time_running, values...]`, the layout of `PERF_FORMAT_GROUP |
    /// TOTAL_TIME_ENABLED | TOTAL_TIME_RUNNING`.
    pub fn queue_group_read(&self, time_enabled: u64, time_running: u64, values: &[u64]) {
        let mut words = vec![values.len() as u64, time_enabled, time_running];
        words.extend_from_slice(values);
        self.queue_read(self.leader_fd(), &words);
    }
}

fn set_errno(errno: i32) {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() = errno };
}

impl Hooks for FakeKernel {
    unsafe fn perf_event_open(
        &mut self,
        attrs: *mut bindings::perf_event_attr,
        pid: libc::pid_t,
        cpu: c_int,
        group_fd: c_int,
        _flags: c_ulong,
    ) -> c_int {
        // SAFETY: perf-event2 passes a valid attr for the duration of the call.
        let attr = unsafe { &*attrs };
        let (type_, config) = (attr.type_, attr.config);
        let mut state = self.state.borrow_mut();
        let errno = state
            .errors
            .get(&(type_, config))
            .or_else(|| state.type_errors.get(&type_))
            .copied();
        let result = match errno {
            Some(e) => Err(e),
            None => {
                let mut fds = [0; 2];
                let nonblocking = if state.nonblocking {
                    libc::SOCK_NONBLOCK
                } else {
                    0
                };
                // SAFETY: `fds` is a valid array of two ints for the call.
                let ret = unsafe {
                    libc::socketpair(
                        libc::AF_UNIX,
                        libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC | nonblocking,
                        0,
                        fds.as_mut_ptr(),
                    )
                };
                assert_eq!(ret, 0, "socketpair failed");
                // SAFETY: fds[1] was just created and is owned by nobody else.
                let peer = unsafe { OwnedFd::from_raw_fd(fds[1]) };
                state.peers.insert(fds[0], peer);
                Ok(fds[0])
            }
        };
        state.calls.push(OpenCall {
            type_,
            config,
            pid,
            cpu,
            group_fd,
            read_format: attr.read_format,
            exclude_kernel: attr.exclude_kernel() != 0,
            disabled: attr.disabled() != 0,
            inherit: attr.inherit() != 0,
            result,
        });
        match result {
            Ok(fd) => fd,
            Err(e) => {
                set_errno(e);
                -1
            }
        }
    }

    unsafe fn ID(&mut self, _fd: c_int, arg: *mut u64) -> c_int {
        let mut state = self.state.borrow_mut();
        state.next_id += 1;
        // SAFETY: perf-event2 passes a valid pointer to a u64.
        unsafe { *arg = state.next_id };
        0
    }

    unsafe fn ENABLE(&mut self, _fd: c_int, _arg: u32) -> c_int {
        0
    }

    unsafe fn DISABLE(&mut self, _fd: c_int, _arg: u32) -> c_int {
        0
    }

    unsafe fn RESET(&mut self, _fd: c_int, _arg: u32) -> c_int {
        0
    }
}
