//! Which pipeline receives a record: [`emit`], the global pipeline
//! ([`install`], [`global_pipeline`]) and thread-scoped overrides
//! ([`Pipeline::scoped`]).

use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{Pipeline, Shared};
use crate::counters::PhantomNotSend;
use crate::record::Record;
use crate::sys::StaticSlot;

/// Set once any pipeline has been installed or scoped: until then [`emit`]
/// is one branch.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// The installed pipeline, leaked so that it can be handed out as
/// `&'static`. Replaced only in a forked child, where the parent's pipeline
/// has no writer thread. No lock: a child forked while another thread was
/// reading it must still be able to install its own.
static GLOBAL: StaticSlot<Pipeline> = StaticSlot::new();

thread_local! {
    static SCOPED: RefCell<Option<Arc<Shared>>> = const { RefCell::new(None) };
}

/// Hands `record` to the pipeline in force on this thread (a thread-scoped
/// override, else the global pipeline). Never blocks and never does I/O:
/// when the queue is full the record is dropped and counted. Returns
/// whether the record was accepted; with no pipeline installed it is a
/// no-op that returns `false`.
///
/// ```
/// use dynostats::{sink::MemorySink, Pipeline, Record, RecordKind};
///
/// // Nothing installed on this thread: dropped.
/// assert!(!dynostats::emit(Record::new(RecordKind::Region, "early")));
///
/// let mem = MemorySink::new();
/// let pipeline = Pipeline::builder().sink(mem.clone()).build().unwrap();
/// pipeline.in_scope(|| {
///     assert!(dynostats::emit(Record::new(RecordKind::Region, "scoped")));
/// });
/// pipeline.flush().unwrap();
/// assert_eq!(mem.records_of(RecordKind::Region)[0].name, "scoped");
/// ```
#[inline]
pub fn emit(record: Record) -> bool {
    if !ACTIVE.load(Ordering::Relaxed) {
        return false;
    }
    emit_slow(record)
}

#[cold]
fn emit_slow(record: Record) -> bool {
    let mut record = Some(record);
    let scoped = SCOPED
        .try_with(|cell| match cell.try_borrow() {
            Ok(slot) => slot
                .as_ref()
                .map(|shared| shared.emit(record.take().expect("taken once"))),
            Err(_) => None,
        })
        .ok()
        .flatten();
    if let Some(accepted) = scoped {
        return accepted;
    }
    match (global_pipeline(), record) {
        (Some(pipeline), Some(record)) => pipeline.emit(record),
        _ => false,
    }
}

/// Whether any pipeline was ever installed or scoped in this process: when
/// not, a sampled region need not even read its counters.
#[inline]
pub(crate) fn is_active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// Installs `pipeline` as the process-wide pipeline that [`emit`] sends to
/// (unless a thread has a scoped override). Works once: a second call
/// returns an error holding the pipeline it was given.
///
/// After `fork`, the child has no writer thread (threads do not survive
/// `fork`): the parent's pipeline refuses records there (counted as
/// `dropped_closed`), and the child may install a pipeline of its own.
/// Pre-fork servers should install one in each worker after forking.
///
/// ```no_run
/// use dynostats::{sink::FileSink, Pipeline};
///
/// let file = FileSink::create("/var/log/app/dynostats.msgpack").unwrap();
/// let pipeline = Pipeline::builder().sink(file).build().unwrap();
/// let installed = dynostats::install(pipeline).unwrap();
/// // ... serve ...
/// installed.shutdown().unwrap();
/// ```
pub fn install(pipeline: Pipeline) -> Result<&'static Pipeline, InstallError> {
    let current = GLOBAL.get();
    if current.is_some_and(|installed| !installed.shared.is_forked()) {
        return Err(InstallError(pipeline));
    }
    // Never dropped: a global pipeline is shut down explicitly, and one
    // inherited from a parent process must not be (its writer thread is
    // not in this process). When another thread installed one since
    // `current` was read, that one stays and this one is handed back.
    match GLOBAL.replace(current, Box::new(pipeline)) {
        Ok(installed) => {
            ACTIVE.store(true, Ordering::Relaxed);
            Ok(installed)
        }
        Err(pipeline) => Err(InstallError(*pipeline)),
    }
}

/// The pipeline installed with [`install`], if any (in a forked child,
/// possibly the parent's, which refuses records). One atomic load.
pub fn global_pipeline() -> Option<&'static Pipeline> {
    GLOBAL.get()
}

/// The error of a second [`install`]: it holds the pipeline that was not
/// installed.
pub struct InstallError(Pipeline);

impl InstallError {
    /// The pipeline that was not installed.
    pub fn into_inner(self) -> Pipeline {
        self.0
    }
}

impl fmt::Debug for InstallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InstallError(..)")
    }
}

impl fmt::Display for InstallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a global dynostats pipeline is already installed")
    }
}

impl std::error::Error for InstallError {}

impl Pipeline {
    /// Makes this pipeline the one [`emit`] sends to on the calling thread,
    /// until the returned guard is dropped (the previous one, if any, is
    /// then restored). Guards must be dropped in reverse order of creation.
    ///
    /// This is how tests stay independent: each builds its own pipeline
    /// with a [`MemorySink`](crate::sink::MemorySink) and scopes it. Only the
    /// calling thread is affected: records emitted by other threads (e.g.
    /// the worker threads of a multi-threaded async runtime) go to their
    /// own scoped or the global pipeline.
    pub fn scoped(&self) -> ScopedPipeline<'_> {
        ACTIVE.store(true, Ordering::Relaxed);
        let previous = SCOPED
            .try_with(|cell| cell.replace(Some(Arc::clone(&self.shared))))
            .ok()
            .flatten();
        ScopedPipeline {
            previous,
            _pipeline: PhantomData,
            _not_send: PhantomData,
        }
    }

    /// Runs `f` with this pipeline scoped to the calling thread (see
    /// [`Pipeline::scoped`]).
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let _scope = self.scoped();
        f()
    }
}

/// The guard of [`Pipeline::scoped`]: while it lives, [`emit`] on this
/// thread sends to that pipeline.
///
/// It cannot move to another thread:
///
/// ```compile_fail,E0277
/// let pipeline = dynostats::Pipeline::builder()
///     .sink(dynostats::sink::MemorySink::new())
///     .build()
///     .unwrap();
/// let scope = pipeline.scoped();
/// std::thread::scope(|s| {
///     s.spawn(move || drop(scope));
/// });
/// ```
#[must_use = "the pipeline is scoped only while the guard lives"]
pub struct ScopedPipeline<'a> {
    previous: Option<Arc<Shared>>,
    _pipeline: PhantomData<&'a Pipeline>,
    _not_send: PhantomNotSend,
}

impl fmt::Debug for ScopedPipeline<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ScopedPipeline")
    }
}

impl Drop for ScopedPipeline<'_> {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let _ = SCOPED.try_with(|cell| cell.replace(previous));
    }
}
