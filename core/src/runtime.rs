//! The one tokio runtime the library uses per process, built on first use.
//!
//! Objects that own network connections (HTTP clients, Redis) are created and used on this runtime only:
//! pooled connections die with the runtime that made them.

use std::future::Future;
use std::sync::OnceLock;

use crate::error::{Error, Result};

static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();

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
