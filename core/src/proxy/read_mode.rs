//! How a flow reads the store when its caller runs it on its own thread instead of awaiting it on the runtime:
//! the read-only checks every MCP request pays (`check_bearer`, `load_upstream_tokens`), run in place from an
//! event loop (reads that never wait) or on a thread that may block (reads through the synchronous face).

use std::cell::Cell;
use std::future::Future;

use futures_util::FutureExt;

use super::provider::OAuthProxy;
use crate::OAuthError;

/// How `get_json` reads the store on this thread.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadMode {
    /// Through the async store (the runtime's blocking pool for disk).
    Async,
    /// Through the store's synchronous face, on this thread (a caller on a thread that may block).
    Blocking,
    /// Through the synchronous face's `get_nowait` (a caller that must not block, an event loop): a read that
    /// would wait on the device fails the flow, which the caller then runs another way.
    NoWait,
}

thread_local! {
    /// Set while a caller runs a read-only flow on its own thread.
    static READ_MODE: Cell<ReadMode> = const { Cell::new(ReadMode::Async) };
    /// Set when a `NoWait` read would have waited: the flow's answer is then not used.
    static WOULD_WAIT: Cell<bool> = const { Cell::new(false) };
}

/// This thread's read mode.
pub(super) fn current() -> ReadMode {
    READ_MODE.with(Cell::get)
}

/// Records that a `NoWait` read would have waited; the error ends the flow (and is never shown: the caller drops
/// the flow's result).
pub(super) fn would_wait() -> OAuthError {
    WOULD_WAIT.with(|w| w.set(true));
    OAuthError::server_error("the store would have to wait")
}

/// Runs `f` with this thread's reads in `mode`, restored however `f` ends; also answers whether a `NoWait` read
/// would have waited.
fn with_read_mode<T>(mode: ReadMode, f: impl FnOnce() -> T) -> (T, bool) {
    struct Reset(ReadMode, bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            let (mode, waited) = (self.0, self.1);
            READ_MODE.with(|c| c.set(mode));
            WOULD_WAIT.with(|c| c.set(waited));
        }
    }
    let _reset = Reset(
        READ_MODE.with(|c| c.replace(mode)),
        WOULD_WAIT.with(|c| c.replace(false)),
    );
    let out = f();
    (out, WOULD_WAIT.with(Cell::get))
}

impl OAuthProxy {
    /// A read-only flow run to completion on this thread without waiting: polled once in place when the store
    /// completes inline (memory, a C callback store); with `NoWait` reads when it has a synchronous face (disk:
    /// answered from the kernel's caches). `None` when it would have to wait: run the async flow instead.
    pub(super) fn in_place<T>(&self, flow: impl Future<Output = T>) -> Option<T> {
        if self.store.completes_inline() {
            return flow.now_or_never();
        }
        self.store.as_sync()?;
        match with_read_mode(ReadMode::NoWait, || flow.now_or_never()) {
            (Some(out), false) => Some(out),
            _ => None,
        }
    }

    /// A read-only flow run to completion on this thread, reading through the store's synchronous face (for a
    /// caller on a thread that may block: one thread hop per flow instead of one per read); `None` when the store
    /// has no synchronous face.
    pub(super) fn on_this_thread<T>(&self, flow: impl Future<Output = T>) -> Option<T> {
        self.store.as_sync()?;
        with_read_mode(ReadMode::Blocking, || flow.now_or_never()).0
    }
}
