//! Helpers shared by the hardware suites (`tests/pmu.rs`, `tests/pmu_cost.rs`).
//!
//! Those suites only mean something where a hardware instructions counter
//! opens: a machine with a PMU, or the emulated aarch64 guest that
//! `.ci/pmu-guest` boots. Elsewhere each test prints why it skips and
//! passes, through [`skip`], unless `DYNOSTATS_REQUIRE_PMU=1`: then a skip
//! is a failure (the guest stage sets it, where every test must run).

// Each suite uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::Write;
use std::sync::{Mutex, MutexGuard};

use dynostats::{Delta, Snapshot, counters::Counter, counters::CounterSet, counters::Counters};

/// Runs per measurement; the smallest count is kept, since an interrupt
/// can only add instructions (on the emulated PMU every run is identical).
pub const RUNS: usize = 5;

/// Prints a line to the test's stderr even when libtest captures output, so
/// that skip reasons and measured figures always show.
pub fn report(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// The environment switch that turns every skip of the hardware suites
/// into a failure, as `DYNOSTATS_REQUIRE_PYTHON=1` does for the Python
/// cross-check: `.ci/pmu-guest` sets it in the guest, where every test must
/// run, so a test that would pass without checking anything fails instead.
pub const REQUIRE_PMU: &str = "DYNOSTATS_REQUIRE_PMU";

/// The one way a hardware test skips: prints `SKIP {test}: {reason}` (the
/// caller then returns, and the test passes), or panics with the reason
/// when `DYNOSTATS_REQUIRE_PMU=1`.
#[track_caller]
pub fn skip(test: &str, reason: &str) {
    if std::env::var(REQUIRE_PMU).as_deref() == Ok("1") {
        panic!("{REQUIRE_PMU}=1, but {test} would skip: {reason}");
    }
    report(&format!("SKIP {test}: {reason}"));
}

/// Whether a hardware instructions counter can be opened on this thread;
/// [`skip`]s `test` with the reason when it cannot.
#[track_caller]
pub fn require_pmu(test: &str) -> bool {
    if dynostats::probe::KNOWN_LOOP_INSTRUCTIONS_PER_ITERATION.is_none() {
        skip(
            test,
            "no known instruction loop on this architecture (x86_64 and aarch64 only)",
        );
        return false;
    }
    let counters = Counters::open(CounterSet::wall_only().with(Counter::Instructions));
    match counters.unavailable().first() {
        None => true,
        Some(why) => {
            skip(test, &format!("no hardware PMU here: {why}"));
            false
        }
    }
}

/// Instructions per iteration of [`dynostats::probe::known_loop`].
pub fn per_iteration() -> u64 {
    dynostats::probe::KNOWN_LOOP_INSTRUCTIONS_PER_ITERATION.expect("checked by require_pmu")
}

/// Whether this is the emulated aarch64 machine of `scripts/pmu-guest`
/// (QEMU `virt`, the `max` CPU whose implementer code is 0, precise icount):
/// its PMU counts user-space instructions exactly and its cycle counter
/// advances one cycle per instruction. The instruction costs in
/// BENCHMARKS.md were measured there and only hold there.
pub fn exact_guest() -> bool {
    if !cfg!(target_arch = "aarch64") {
        return false;
    }
    let compatible = std::fs::read("/sys/firmware/devicetree/base/compatible").unwrap_or_default();
    let midr = std::fs::read_to_string("/sys/devices/system/cpu/cpu0/regs/identification/midr_el1")
        .ok()
        .and_then(|s| u64::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok());
    compatible.starts_with(b"linux,dummy-virt") && midr.is_some_and(|m| (m >> 24) & 0xff == 0)
}

static PMU_LOCK: Mutex<()> = Mutex::new(());

/// Holds the PMU for one test and sets whether user space may read counters
/// (arm64's `perf_user_access`, restored on drop). Tests that open counters
/// take it, so the setting cannot change under them.
pub struct UserAccess {
    /// Whether user-space reads are allowed while this guard lives.
    pub enabled: bool,
    restore: Option<String>,
    _lock: MutexGuard<'static, ()>,
}

const ARM64_USER_ACCESS: &str = "/proc/sys/kernel/perf_user_access";
const X86_RDPMC: &str = "/sys/bus/event_source/devices/cpu/rdpmc";

/// Takes the PMU and asks for user-space reads `on` or off. On arm64 the
/// sysctl is written (the guest runs tests as root); on x86 the system's
/// `rdpmc` setting is only read, and `enabled` says what is in force.
pub fn user_access(on: bool) -> UserAccess {
    let lock = PMU_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if cfg!(target_arch = "aarch64") {
        let before = std::fs::read_to_string(ARM64_USER_ACCESS).unwrap_or_default();
        let want = if on { "1" } else { "0" };
        if before.trim() == want {
            return UserAccess {
                enabled: on,
                restore: None,
                _lock: lock,
            };
        }
        let written = write_user_access(on);
        return UserAccess {
            enabled: if written { on } else { before.trim() == "1" },
            restore: written.then_some(before),
            _lock: lock,
        };
    }
    let rdpmc = std::fs::read_to_string(X86_RDPMC).unwrap_or_default();
    UserAccess {
        enabled: matches!(rdpmc.trim(), "1" | "2"),
        restore: None,
        _lock: lock,
    }
}

/// Writes arm64's `perf_user_access` (1 when `on`, else 0) as it is, for a
/// test that switches it while counters are open; whether it was written
/// (false elsewhere, or without root). Take [`user_access`] first: it
/// holds the PMU and restores the setting.
pub fn write_user_access(on: bool) -> bool {
    cfg!(target_arch = "aarch64")
        && std::fs::write(ARM64_USER_ACCESS, if on { "1" } else { "0" }).is_ok()
}

impl Drop for UserAccess {
    fn drop(&mut self) {
        if let Some(before) = &self.restore {
            let _ = std::fs::write(ARM64_USER_ACCESS, before.trim());
        }
    }
}

/// What a known loop measured through one way of taking snapshots.
#[derive(Debug)]
pub struct LoopCount {
    /// Instructions of every run of `known_loop(n)`.
    pub full: Vec<u64>,
    /// Instructions of every run of `known_loop(0)`.
    pub empty: Vec<u64>,
    /// The deltas of the runs of `known_loop(n)`.
    pub full_deltas: Vec<Delta>,
    /// The deltas of the runs of `known_loop(0)`.
    pub empty_deltas: Vec<Delta>,
}

impl LoopCount {
    /// min(full) - min(empty): the loop's own instructions.
    pub fn loop_instructions(&self) -> u64 {
        self.full.iter().min().unwrap() - self.empty.iter().min().unwrap()
    }

    /// The fixed cost a region measured with these snapshots carries: the
    /// instructions of an empty region (library code between the two
    /// counter reads plus the call of `known_loop(0)`).
    pub fn empty_region(&self) -> u64 {
        *self.empty.iter().min().unwrap()
    }

    /// Whether every run gave the same count (expected on the exact PMU).
    pub fn deterministic(&self) -> bool {
        self.full.iter().all(|&c| c == self.full[0])
            && self.empty.iter().all(|&c| c == self.empty[0])
    }
}

/// Which end of a region a snapshot is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edge {
    /// Taken before the region.
    Start,
    /// Taken after it.
    End,
}

/// `dynostats::counters::snapshot_start()` / `snapshot_end()`, the pair the library's
/// guards use: only a fixed stretch of library code between the counter
/// reads.
pub fn thread_edges(edge: Edge) -> Snapshot {
    match edge {
        Edge::Start => dynostats::counters::snapshot_start(),
        Edge::End => dynostats::counters::snapshot_end(),
    }
}

/// `Counters::snapshot_start()` / `snapshot_end()` of `counters`.
pub fn edges(counters: &mut Counters) -> impl FnMut(Edge) -> Snapshot + '_ {
    |edge| match edge {
        Edge::Start => counters.snapshot_start(),
        Edge::End => counters.snapshot_end(),
    }
}

/// Measures `known_loop(n)` and `known_loop(0)` [`RUNS`] times each between
/// two snapshots taken by `snap`.
pub fn count_loop(mut snap: impl FnMut(Edge) -> Snapshot, n: u64) -> LoopCount {
    let mut run = |iterations: u64| -> Vec<Delta> {
        (0..RUNS)
            .map(|_| {
                let start = snap(Edge::Start);
                dynostats::probe::known_loop(iterations);
                let end = snap(Edge::End);
                Delta::between(&start, &end)
            })
            .collect()
    };
    let empty_deltas = run(0);
    let full_deltas = run(n);
    let instructions = |deltas: &[Delta]| -> Vec<u64> {
        deltas
            .iter()
            .map(|d| d.instructions.expect("instructions counted"))
            .collect()
    };
    LoopCount {
        full: instructions(&full_deltas),
        empty: instructions(&empty_deltas),
        full_deltas,
        empty_deltas,
    }
}

#[cfg(feature = "tower")]
/// A request for the known-work service: it runs `known_loop(n)`, with `n`
/// as the body, so that every request runs the same code and nothing is
/// allocated or freed inside the measured polls (the allocator's state
/// would make their counts vary).
pub fn known_work_request(n: u64) -> http::Request<u64> {
    http::Request::new(n)
}

#[cfg(feature = "tower")]
/// A service that runs the known loop of its request, and answers an empty
/// body.
pub fn known_work_service() -> impl tower::Service<
    http::Request<u64>,
    Response = http::Response<String>,
    Error = std::convert::Infallible,
    Future: Send,
> + Clone {
    tower::service_fn(|request: http::Request<u64>| {
        let n = *request.body();
        async move {
            dynostats::probe::known_loop(n);
            Ok(http::Response::new(String::new()))
        }
    })
}

#[cfg(feature = "tower")]
/// Sends one request through `service` on this thread by hand: ready, call,
/// poll the response future, poll the body to its end, drop it.
pub fn one_request<S, B>(service: &mut S, request: http::Request<u64>)
where
    S: tower::Service<http::Request<u64>, Response = http::Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body + Unpin,
{
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let mut cx = Context::from_waker(Waker::noop());
    assert!(matches!(service.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    let mut future = std::pin::pin!(service.call(request));
    let Poll::Ready(Ok(response)) = future.as_mut().poll(&mut cx) else {
        panic!("the known-work service answers in one poll");
    };
    let mut body = response.into_body();
    while let Poll::Ready(Some(frame)) = std::pin::Pin::new(&mut body).poll_frame(&mut cx) {
        assert!(frame.is_ok());
    }
}

#[cfg(feature = "axum")]
/// An axum router with one route, `/users/{id}`, whose handler answers an
/// empty body.
pub fn known_router() -> axum::Router {
    axum::Router::new().route("/users/{id}", axum::routing::get(|| async { "" }))
}

#[cfg(feature = "axum")]
/// A request to [`known_router`]'s route.
pub fn router_request() -> http::Request<axum::body::Body> {
    http::Request::builder()
        .uri("/users/42")
        .body(axum::body::Body::empty())
        .unwrap()
}

#[cfg(feature = "axum")]
/// [`one_request`] for a service of axum requests: ready, call, poll the
/// response future, poll the body to its end, drop it.
pub fn one_router_request<S, B>(service: &mut S)
where
    S: tower::Service<http::Request<axum::body::Body>, Response = http::Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body + Unpin,
{
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let mut cx = Context::from_waker(Waker::noop());
    assert!(matches!(service.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    let mut future = std::pin::pin!(service.call(router_request()));
    let Poll::Ready(Ok(response)) = future.as_mut().poll(&mut cx) else {
        panic!("the router answers in one poll");
    };
    let mut body = response.into_body();
    while let Poll::Ready(Some(frame)) = std::pin::Pin::new(&mut body).poll_frame(&mut cx) {
        assert!(frame.is_ok());
    }
}
