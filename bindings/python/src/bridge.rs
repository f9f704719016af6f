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
use std::collections::HashMap;
use std::future::Future;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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
}

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
            },
        )?;
        running.call_method1("add_reader", (fd, b.bind(py).getattr("_drain")?))?;
        CURRENT.with(|c| *c.borrow_mut() = Some(b.clone_ref(py)));
        Ok(b)
    }
}

#[pymethods]
impl Bridge {
    /// Called by the loop when the pipe is readable: completes every finished operation's future.
    fn _drain(&self, py: Python<'_>) {
        let mut buf = [0u8; 256];
        // SAFETY: reading into a live buffer from an fd owned by `self`; non-blocking.
        while unsafe { libc::read(self.wake_read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
        let done = std::mem::take(&mut *self.shared.done.lock().unwrap_or_else(|p| p.into_inner()));
        for (id, c) in done {
            let fut = self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            let Some(fut) = fut else { continue };
            let fut = fut.bind(py);
            if fut
                .call_method0("cancelled")
                .and_then(|b| b.is_truthy())
                .unwrap_or(true)
            {
                continue;
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
    fastmcp_auth::runtime::runtime()
        .map_err(crate::to_py_err)?
        .spawn_blocking(move || {
            let c = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).ok();
            shared.finish(id, c);
        });
    Ok(fut)
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
