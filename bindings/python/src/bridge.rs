//! Awaitables for asyncio whose work runs on the core's tokio runtime, with no GIL taken off the event loop.
//!
//! Why not `pyo3_async_runtimes::future_into_py`: each completion there takes the GIL on a tokio thread to call
//! `loop.call_soon_threadsafe`, so under load every completion fights the event loop for the GIL (measured: ~150 µs
//! per await on this 2-core VM, and event-loop pauses of 100+ ms while 2,000 operations complete). Here a completion
//! only pushes its result (plain Rust data) on a queue and, when the queue was empty, writes one byte to a pipe the
//! loop watches (`loop.add_reader`); the loop thread then drains the queue in one callback, converting each result
//! to Python and completing its future. The GIL is held only on the loop thread, as any Python code holds it.
//!
//! One bridge per event loop (a thread-local remembers the loop it was made for: `asyncio.run` twice on one thread
//! gets two). A cancelled future's work still runs to its end (a token exchange that consumed a code must finish);
//! its result is dropped. A panic in the work completes the future with `FastMCPAuthError`, never a crash.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use pyo3::prelude::*;
use pyo3_async_runtimes::TaskLocals;

/// What a finished operation hands the loop: it builds the Python result (or error) under the GIL.
pub(crate) type Complete = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

struct Shared {
    done: Mutex<Vec<(u64, Option<Complete>)>>,
    wake_write: OwnedFd,
}

impl Shared {
    fn finish(&self, id: u64, c: Option<Complete>) {
        let was_empty = {
            let mut q = self.done.lock().unwrap_or_else(|p| p.into_inner());
            let e = q.is_empty();
            q.push((id, c));
            e
        };
        if was_empty {
            // Non-blocking: a full pipe already holds a wake-up, which is all that is needed.
            // SAFETY: a valid fd owned by `self`, one byte from a live buffer.
            unsafe {
                libc::write(self.wake_write.as_raw_fd(), [1u8].as_ptr().cast(), 1);
            }
        }
    }
}

#[pyclass(frozen, module = "fastmcp_auth._native")]
pub(crate) struct Bridge {
    shared: Arc<Shared>,
    wake_read: OwnedFd,
    pending: Mutex<HashMap<u64, Py<PyAny>>>,
    next: AtomicU64,
    event_loop: Py<PyAny>,
    locals: TaskLocals,
    /// Time spent on work done in place during this turn of the loop, in ns (see [`in_place`]).
    spent_in_place: AtomicU64,
    /// Set once the turn's budget is spent, until `_new_turn` runs.
    over_budget: AtomicBool,
    /// Set when a turn's first in-place work scheduled `_new_turn` (which runs in the next turn and resets the
    /// budget): the budget is per turn, not a total that a fresh turn could find spent.
    turn_scheduled: AtomicBool,
    /// In-place work that found the budget spent, with its future: run by `_new_turn` in later turns.
    deferred: Mutex<VecDeque<Deferred>>,
    /// The loop's queue of callbacks ready to run (`loop._ready`, a deque, in asyncio's own loops): empty means
    /// nothing else waits for the loop's thread right now (see [`spawn_blocking_waited`]). `None` for loops
    /// without one (uvloop): then the loop's thread never waits.
    ready_queue: Option<Py<PyAny>>,
    /// Waits to skip after one that ran out (the store's writes take longer than [`WAIT`] now: a slow disk).
    skip_waits: AtomicU64,
}

/// Work to do in place, and what to do instead if it declines (it would have to wait).
type Deferred = (u64, InPlace, Blocking);
type InPlace = Box<dyn FnOnce() -> Option<Complete> + Send>;
type Blocking = Box<dyn FnOnce() -> Complete + Send>;

/// Longest the loop's thread spends on store work done in place (disk reads answered from the kernel's caches)
/// in one turn of the event loop; beyond it, reads go to the blocking pool until the next turn, so that a burst
/// (1,000 tasks reading at once) does not hold the loop for the whole burst: timers and I/O get their turn.
const IN_PLACE_BUDGET: Duration = Duration::from_millis(2);

thread_local! {
    static CURRENT: RefCell<Option<Py<Bridge>>> = const { RefCell::new(None) };
}

fn pipe() -> PyResult<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid two-int buffer.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: pipe2 returned two fresh fds that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

impl Bridge {
    /// The bridge of the running event loop (made and registered on first use).
    fn current(py: Python<'_>) -> PyResult<Py<Bridge>> {
        let running = pyo3_async_runtimes::get_running_loop(py)?;
        if let Some(b) = CURRENT.with(|c| {
            c.borrow()
                .as_ref()
                .filter(|b| b.get().event_loop.bind(py).is(&running))
                .map(|b| b.clone_ref(py))
        }) {
            return Ok(b);
        }
        let (r, w) = pipe()?;
        let fd = r.as_raw_fd();
        let b = Py::new(
            py,
            Bridge {
                shared: Arc::new(Shared {
                    done: Mutex::new(Vec::new()),
                    wake_write: w,
                }),
                wake_read: r,
                pending: Mutex::new(HashMap::new()),
                next: AtomicU64::new(0),
                event_loop: running.clone().unbind(),
                locals: TaskLocals::new(running.clone()),
                spent_in_place: AtomicU64::new(0),
                over_budget: AtomicBool::new(false),
                turn_scheduled: AtomicBool::new(false),
                deferred: Mutex::new(VecDeque::new()),
                ready_queue: running
                    .getattr("_ready")
                    .ok()
                    .filter(|q| q.len().is_ok())
                    .map(Bound::unbind),
                skip_waits: AtomicU64::new(0),
            },
        )?;
        running.call_method1("add_reader", (fd, b.bind(py).getattr("_drain")?))?;
        CURRENT.with(|c| *c.borrow_mut() = Some(b.clone_ref(py)));
        Ok(b)
    }
}

#[pymethods]
impl Bridge {
    /// Scheduled with `call_soon` by a turn's first in-place work: runs in the loop's next turn, starts a fresh
    /// budget and spends it on the deferred work, oldest first; what is left waits for the turn after.
    fn _new_turn(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let b = slf.get();
        b.turn_scheduled.store(false, Ordering::Relaxed);
        b.spent_in_place.store(0, Ordering::Relaxed);
        b.over_budget.store(false, Ordering::Relaxed);
        loop {
            if b.over_budget.load(Ordering::Relaxed) {
                // Spent again (the scheduling of the next turn is done by `run_in_place`).
                return Ok(());
            }
            let next = b.deferred.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
            let Some((id, now, blocking)) = next else {
                return Ok(());
            };
            let fut = b.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            let Some(fut) = fut else { continue };
            match run_in_place(py, slf, now)? {
                Some(c) => complete_future(py, fut.bind(py), Some(c)),
                None => {
                    b.pending
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(id, fut);
                    to_blocking_pool(b.shared.clone(), id, blocking)?;
                }
            }
        }
    }

    /// Called by the loop when the pipe is readable: completes every finished operation's future.
    fn _drain(&self, py: Python<'_>) {
        let mut buf = [0u8; 256];
        // SAFETY: reading into a live buffer from an fd owned by `self`; non-blocking.
        while unsafe { libc::read(self.wake_read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
        let done = std::mem::take(&mut *self.shared.done.lock().unwrap_or_else(|p| p.into_inner()));
        for (id, c) in done {
            let fut = self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            let Some(fut) = fut else { continue };
            complete_future(py, fut.bind(py), c);
        }
    }
}

/// Completes `fut` with what `c` builds (`None`: the work panicked), unless it was cancelled meanwhile.
fn complete_future(py: Python<'_>, fut: &Bound<'_, PyAny>, c: Option<Complete>) {
    if fut
        .call_method0("cancelled")
        .and_then(|b| b.is_truthy())
        .unwrap_or(true)
    {
        return;
    }
    let outcome = match c {
        Some(c) => c(py),
        None => Err(crate::to_py_err(fastmcp_auth::Error::Task(
            "the operation failed unexpectedly".into(),
        ))),
    };
    let set = match outcome {
        Ok(v) => fut.call_method1("set_result", (v,)),
        Err(e) => fut.call_method1("set_exception", (e.into_value(py),)),
    };
    if let Err(e) = set {
        // Only if the future was completed meanwhile; nothing to tell anyone.
        drop(e);
    }
}

/// A new future of the running loop's bridge, registered under a fresh id: what a finished operation completes.
fn pending(py: Python<'_>) -> PyResult<(Bound<'_, PyAny>, u64, Arc<Shared>, TaskLocals)> {
    let bridge = Bridge::current(py)?;
    let b = bridge.get();
    let fut = b.event_loop.bind(py).call_method0("create_future")?;
    let id = b.next.fetch_add(1, Ordering::Relaxed);
    b.pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id, fut.clone().unbind());
    Ok((fut, id, b.shared.clone(), b.locals.clone()))
}

/// Runs `work` on the core's runtime and returns an asyncio future of what its `Complete` builds.
pub(crate) fn spawn<'py, F>(py: Python<'py>, work: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = Complete> + Send + 'static,
{
    let (fut, id, shared, locals) = pending(py)?;
    // The task-local event loop lets a Python-backed store (kv_store.rs) schedule its coroutines on this loop.
    let scoped = pyo3_async_runtimes::tokio::scope(locals, work);
    fastmcp_auth::runtime::runtime()
        .map_err(crate::to_py_err)?
        .spawn(async move {
            let c = std::panic::AssertUnwindSafe(scoped).catch_unwind().await.ok();
            shared.finish(id, c);
        });
    Ok(fut)
}

/// Runs `work` (blocking: file I/O) on the core runtime's blocking pool and returns an asyncio future of what its
/// `Complete` builds: one thread hop each way, where `spawn` of an async store operation takes two (the store
/// itself moves file work off the runtime's workers).
pub(crate) fn spawn_blocking<'py, F>(py: Python<'py>, work: F) -> PyResult<Bound<'py, PyAny>>
where
    F: FnOnce() -> Complete + Send + 'static,
{
    let (fut, id, shared, _) = pending(py)?;
    to_blocking_pool(shared, id, Box::new(work))?;
    Ok(fut)
}

/// Blocking work handed off by every bridge in the process, run by at most [`DRAINERS`] tasks on the runtime's
/// blocking pool. A burst of 1,000 writes started in one step of the loop then costs one queue push each (tens of
/// ns) instead of one `spawn_blocking` each (a lock, often a thread wake-up: ~3 µs on the loop's thread, measured),
/// and leaves the rest of the pool to the proxy's own file work.
static JOBS: Mutex<Jobs> = Mutex::new(Jobs {
    queue: VecDeque::new(),
    drainers: 0,
});

/// At most this many of the blocking pool's threads (4, `runtime.rs`) drain [`JOBS`] at once.
const DRAINERS: usize = 2;

struct Jobs {
    queue: VecDeque<Job>,
    drainers: usize,
}

/// A job, its bridge and future id, and the slot of a loop thread waiting for it ([`spawn_blocking_waited`]).
type Job = (Arc<Shared>, u64, Blocking, Option<Arc<Waiter>>);

fn to_blocking_pool(shared: Arc<Shared>, id: u64, work: Blocking) -> PyResult<()> {
    push_job((shared, id, work, None))
}

fn push_job(job: Job) -> PyResult<()> {
    let runtime = fastmcp_auth::runtime::runtime().map_err(crate::to_py_err)?;
    let start_drainer = {
        let mut jobs = JOBS.lock().unwrap_or_else(|p| p.into_inner());
        jobs.queue.push_back(job);
        let start = jobs.drainers < DRAINERS;
        if start {
            jobs.drainers += 1;
        }
        start
    };
    if start_drainer {
        runtime.spawn_blocking(drain_jobs);
    }
    Ok(())
}

/// How long a drainer that found the queue empty keeps looking before it leaves: a coroutine awaiting one write
/// after another submits the next within tens of µs, which then starts at once instead of after a thread wake-up
/// (~30-60 µs on a VM). Spent only after a job, on a thread at lowered priority.
const LINGER: Duration = Duration::from_micros(60);

/// How long a drainer finds the queue empty before it makes spare files (within [`LINGER`]).
const PREPARE_AFTER: Duration = Duration::from_micros(25);

/// Runs queued jobs until none is left for [`LINGER`] (the count of drainers drops under the same lock that
/// finds the queue empty, so a job pushed meanwhile always has a drainer).
fn drain_jobs() {
    let mut idle_since: Option<Instant> = None;
    loop {
        let job = {
            let mut jobs = JOBS.lock().unwrap_or_else(|p| p.into_inner());
            match jobs.queue.pop_front() {
                Some(job) => job,
                None if idle_since.is_some_and(|t| t.elapsed() >= LINGER) => {
                    jobs.drainers -= 1;
                    return;
                }
                None => {
                    drop(jobs);
                    // Idle for a while (not just between the jobs of a burst or of a coroutine awaiting one write
                    // after another, which come within µs): make a DiskStore's next entry file now rather than when
                    // a write waits for it (store/disk/spare.rs). A job that arrives meanwhile waits at most that
                    // one file.
                    let idle = *idle_since.get_or_insert_with(Instant::now);
                    let prepared = idle.elapsed() >= PREPARE_AFTER
                        && std::panic::catch_unwind(fastmcp_auth::store::prepare_ahead).unwrap_or(false);
                    if prepared {
                        idle_since = Some(Instant::now());
                        continue;
                    }
                    std::hint::spin_loop();
                    std::thread::yield_now();
                    continue;
                }
            }
        };
        idle_since = None;
        let (shared, id, work, waiter) = job;
        let c = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).ok();
        let c = match waiter {
            Some(w) => w.offer(c),
            None => Some(c),
        };
        if let Some(c) = c {
            shared.finish(id, c);
        }
    }
}

/// Longest the loop's thread waits, spinning, for a job it handed to the blocking pool ([`spawn_blocking_waited`]).
/// A DiskStore write takes 20-60 µs of a drainer's time here; what does not finish within this goes on as any job.
const WAIT: Duration = Duration::from_micros(100);

/// After a wait that ran out, this many of the bridge's next short jobs are not waited for (the loop's thread does
/// not keep spinning in vain while the store is slow), then waiting is tried again.
const SKIP_AFTER_TIMEOUT: u64 = 16;

/// Where a job hands its result to a loop thread still waiting for it, or learns that it stopped waiting.
#[derive(Default)]
struct Waiter {
    done: AtomicBool,
    state: Mutex<WaiterState>,
}

#[derive(Default)]
enum WaiterState {
    #[default]
    Waiting,
    Done(Option<Complete>),
    Taken,
    Abandoned,
}

impl Waiter {
    /// The job's side: the result kept for the waiting loop thread (`None` back), or back to the caller to go the
    /// usual way (the loop thread stopped waiting).
    fn offer(&self, c: Option<Complete>) -> Option<Option<Complete>> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match *st {
            WaiterState::Waiting => {
                *st = WaiterState::Done(c);
                self.done.store(true, Ordering::Release);
                None
            }
            _ => Some(c),
        }
    }

    /// The loop thread's side, once it stops waiting: the result if it is there; else the job will complete the
    /// future as any job does.
    fn claim_or_abandon(&self) -> Option<Option<Complete>> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match std::mem::replace(&mut *st, WaiterState::Taken) {
            WaiterState::Done(c) => Some(c),
            _ => {
                *st = WaiterState::Abandoned;
                None
            }
        }
    }
}

/// [`spawn_blocking`] for short work (a DiskStore write), where the loop's thread, if the loop has nothing else
/// ready to run, waits for the result (spinning, up to [`WAIT`]) and returns the future already completed.
///
/// Why: on an idle loop the thread sleeps in `epoll_wait`, and waking it costs ~35-45 µs on this VM (the sleeping
/// vCPU must be woken), twice the write itself. Waiting is bounded, counted against the turn's in-place budget
/// like work done in place, and only happens when no other callback is ready: a busy loop never waits. The work
/// itself still runs off the loop's thread, so a write that stalls (disk) costs the loop at most [`WAIT`].
pub(crate) fn spawn_blocking_waited<'py, F>(py: Python<'py>, work: F) -> PyResult<Bound<'py, PyAny>>
where
    F: FnOnce() -> Complete + Send + 'static,
{
    let bridge = Bridge::current(py)?;
    let b = bridge.get();
    let skipping = b.skip_waits.load(Ordering::Relaxed);
    if skipping > 0 {
        b.skip_waits.store(skipping - 1, Ordering::Relaxed);
        return spawn_blocking(py, work);
    }
    if b.over_budget.load(Ordering::Relaxed) || !loop_is_idle(py, b) || !worth_waiting() {
        return spawn_blocking(py, work);
    }
    let (fut, id, shared, _) = pending(py)?;
    let waiter = Arc::new(Waiter::default());
    push_job((shared, id, Box::new(work), Some(waiter.clone())))?;
    // The spin is timed against the turn's budget like work done in place.
    let w = waiter.clone();
    let spun = run_in_place(
        py,
        bridge.bind(py),
        Box::new(move || {
            let started = Instant::now();
            while !w.done.load(Ordering::Acquire) && started.elapsed() < WAIT {
                std::hint::spin_loop();
            }
            None
        }),
    );
    // The spin's only failure is the loop refusing `call_soon` (closing): the job is queued already and completes
    // the future as any job does, so the future is the answer, not an error for a write that happens anyway.
    drop(spun);
    let Some(c) = waiter.claim_or_abandon() else {
        b.skip_waits.store(SKIP_AFTER_TIMEOUT, Ordering::Relaxed);
        return Ok(fut);
    };
    // Ours to complete (`None`: the work panicked, which `complete_future` reports).
    b.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    complete_future(py, &fut, c);
    Ok(fut)
}

/// Whether a wait can succeed: another CPU to run the job while this thread spins, and no jobs queued before it.
fn worth_waiting() -> bool {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let cpus = *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    cpus > 1 && JOBS.lock().unwrap_or_else(|p| p.into_inner()).queue.is_empty()
}

/// Whether the loop has no callback ready besides the bridge's own `_new_turn`.
fn loop_is_idle(py: Python<'_>, b: &Bridge) -> bool {
    let Some(q) = &b.ready_queue else {
        return false;
    };
    let ours = usize::from(b.turn_scheduled.load(Ordering::Relaxed));
    q.bind(py).len().is_ok_and(|n| n <= ours)
}

/// An awaitable of work done on the loop's thread when it can be (`now`: it must never wait — a read from the
/// kernel's caches, an in-memory store — and answers `None` when it would have to), else of `blocking` run on the
/// blocking pool. `now` runs at once while this turn of the loop has spent less than [`IN_PLACE_BUDGET`] on such
/// work; after that it is queued for the next turns (the caller's task yields, and timers and I/O get their turn
/// first), where it runs within the same budget. Without a running loop it fails as every awaitable here does.
pub(crate) fn in_place_or<'py>(
    py: Python<'py>,
    now: impl FnOnce() -> Option<Complete> + Send + 'static,
    blocking: impl FnOnce() -> Complete + Send + 'static,
) -> PyResult<Bound<'py, PyAny>> {
    let bridge = Bridge::current(py)?;
    let b = bridge.get();
    if !b.over_budget.load(Ordering::Relaxed) {
        if let Some(c) = run_in_place(py, bridge.bind(py), Box::new(now))? {
            return ready(py, c);
        }
        return spawn_blocking(py, blocking);
    }
    let (fut, id, _, _) = pending(py)?;
    b.deferred
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push_back((id, Box::new(now), Box::new(blocking)));
    Ok(fut)
}

/// [`in_place_or`]'s synchronous form (a caller that takes `NotImplemented` and awaits otherwise): what `now`
/// answers if this turn has budget left, else `None`. Without a running loop, `now` just runs.
pub(crate) fn in_place<T>(py: Python<'_>, now: impl FnOnce() -> Option<T>) -> PyResult<Option<T>> {
    let Ok(bridge) = Bridge::current(py) else {
        return Ok(now());
    };
    if bridge.get().over_budget.load(Ordering::Relaxed) {
        return Ok(None);
    }
    let mut out = None;
    run_in_place(
        py,
        bridge.bind(py),
        Box::new(|| {
            out = now();
            None
        }),
    )?;
    Ok(out)
}

/// Runs `now` timed against the turn's budget (a panic in it reads as declined). The turn's first such work
/// schedules the next turn's `_new_turn`, which starts a new budget and runs what was deferred meanwhile.
fn run_in_place<'a>(
    py: Python<'_>,
    bridge: &Bound<'_, Bridge>,
    now: Box<dyn FnOnce() -> Option<Complete> + 'a>,
) -> PyResult<Option<Complete>> {
    let b = bridge.get();
    if !b.turn_scheduled.swap(true, Ordering::Relaxed) {
        b.event_loop
            .bind(py)
            .call_method1("call_soon", (bridge.getattr("_new_turn")?,))?;
    }
    let started = Instant::now();
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(now)).unwrap_or(None);
    let ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let spent = b
        .spent_in_place
        .fetch_add(ns, Ordering::Relaxed)
        .saturating_add(ns);
    if spent > IN_PLACE_BUDGET.as_nanos() as u64 {
        b.over_budget.store(true, Ordering::Relaxed);
    }
    Ok(out)
}

/// An asyncio future already completed with what `c` builds (work that finished in place).
pub(crate) fn ready<'py>(py: Python<'py>, c: Complete) -> PyResult<Bound<'py, PyAny>> {
    let running = pyo3_async_runtimes::get_running_loop(py)?;
    let fut = running.call_method0("create_future")?;
    match c(py) {
        Ok(v) => fut.call_method1("set_result", (v,))?,
        Err(e) => fut.call_method1("set_exception", (e.into_value(py),))?,
    };
    Ok(fut)
}
