//! The one tokio runtime the library uses per process, built on first use.
//!
//! Objects that own network connections (HTTP clients, Redis) are created and used on this runtime only:
//! pooled connections die with the runtime that made them.

use std::future::Future;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;

use crate::error::{Error, Result};

static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();

/// The nice value the runtime's threads take when they start (0: left as inherited).
static THREAD_NICE: AtomicI32 = AtomicI32::new(0);

/// Makes the runtime's threads (workers and the blocking pool, which starts threads as it needs them) run at
/// nice `nice` (1..=19: lower CPU priority; Linux, per thread; elsewhere nothing). For a host whose own event
/// loop is one thread that everything waits on (Python's asyncio under the GIL): when the cores are busy, the
/// loop's thread runs first and the work it handed off waits, instead of the loop waiting for a CPU while the
/// library's threads create files. Call it before the first use of the library for it to cover every thread; a
/// thread once lowered stays so (raising it back needs privileges). Values outside 1..=19 are ignored.
pub fn lower_thread_priority(nice: i32) {
    if (1..=19).contains(&nice) {
        THREAD_NICE.store(nice, Ordering::Relaxed);
    }
}

fn on_thread_start() {
    let nice = THREAD_NICE.load(Ordering::Relaxed);
    #[cfg(target_os = "linux")]
    if nice > 0 {
        // `None`: the calling thread (Linux applies PRIO_PROCESS with who = 0 to the thread). A failure leaves the
        // priority as it was.
        let _ = rustix::process::setpriority_process(None, nice);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// The shared multi-thread runtime (2 worker threads at least, one per core otherwise).
pub fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(
                    std::thread::available_parallelism()
                        .map(|n| n.get())
                        .unwrap_or(2)
                        .max(2),
                )
                .thread_name("fastmcp-auth")
                // File I/O (DiskStore) runs on the blocking pool: a few threads keep a disk busy, while hundreds (tokio's
                // default, 512) would be created by a burst of concurrent operations and cost more than they save.
                .max_blocking_threads(4)
                .on_thread_start(on_thread_start)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::Task(format!("could not start the runtime: {e}")))
}

/// Runs `fut` to completion on the shared runtime from synchronous code.
///
/// Called from inside any tokio runtime this returns [`Error::BlockingInAsync`] instead of deadlocking or
/// panicking: async callers must use the async API.
pub fn block_on<F: Future>(fut: F) -> Result<F::Output> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::BlockingInAsync);
    }
    Ok(runtime()?.block_on(fut))
}
