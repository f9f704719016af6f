//! The core's log records, to a C callback (`fastmcp_auth_set_log_callback`).

use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;

use fastmcp_auth_core::log::{self, Record};

use crate::result::{boundary, fail, fastmcp_auth_result};

/// Level of a log record: an error.
pub const FASTMCP_AUTH_LOG_LEVEL_ERROR: u32 = 1;
/// Level of a log record: a warning (the usual `max_level`: warnings and errors).
pub const FASTMCP_AUTH_LOG_LEVEL_WARN: u32 = 2;
/// Level of a log record: information.
pub const FASTMCP_AUTH_LOG_LEVEL_INFO: u32 = 3;
/// Level of a log record: debugging detail.
pub const FASTMCP_AUTH_LOG_LEVEL_DEBUG: u32 = 4;
/// Level of a log record: tracing detail.
pub const FASTMCP_AUTH_LOG_LEVEL_TRACE: u32 = 5;

/// Receives one log record: `level`, `target` (the module, e.g. "fastmcp_auth::proxy::refresh") and `message`
/// (the text, then ` name=value` per field), NUL-terminated UTF-8 valid only during the call. Called on the
/// thread that logged (any thread, possibly several at once): it must be thread-safe, quick, and must not call
/// back into this library. No record ever holds a token, secret or key.
pub type fastmcp_auth_log_callback = Option<
    unsafe extern "C" fn(userdata: *mut c_void, level: u32, target: *const c_char, message: *const c_char),
>;

struct Callback {
    f: unsafe extern "C" fn(*mut c_void, u32, *const c_char, *const c_char),
    userdata: *mut c_void,
}
// SAFETY: the caller promises (documented above) that the callback and its userdata may be used from any thread.
unsafe impl Send for Callback {}
// SAFETY: as above.
unsafe impl Sync for Callback {}

impl Callback {
    fn call(&self, r: &Record) {
        // Interior NULs cannot be passed as C strings: shown as U+FFFD.
        let c = |s: &str| CString::new(s.replace('\0', "\u{fffd}")).unwrap_or_default();
        let (target, message) = (c(&r.target), c(&r.message));
        // SAFETY: the caller's callback, with NUL-terminated strings alive for the call.
        unsafe {
            (self.f)(
                self.userdata,
                u32::from(log::rank(r.level)),
                target.as_ptr(),
                message.as_ptr(),
            )
        };
    }
}

/// Sends the library's log records at `max_level` and more severe (`FASTMCP_AUTH_LOG_LEVEL_WARN`: warnings and
/// errors) to `callback`, replacing any previous one; NULL stops logging. A call already under way on another thread
/// may still reach the previous callback after this returns: keep its `userdata` valid until no library call that
/// could log is running (e.g. free it after freeing the proxies and stores). Without a callback nothing is logged
/// (the default). The `userdata` stays the caller's. Returns `INVALID_ARGUMENT` for a level outside 1–5 or when
/// the process already installed another Rust `tracing` subscriber (records then go there).
#[no_mangle]
pub extern "C" fn fastmcp_auth_set_log_callback(
    callback: fastmcp_auth_log_callback,
    userdata: *mut c_void,
    max_level: u32,
) -> fastmcp_auth_result {
    boundary(|| {
        let Some(level) = log::level_of_rank(max_level) else {
            return Err(fail(
                fastmcp_auth_result::InvalidArgument,
                "max_level must be 1 (error) to 5 (trace)",
            ));
        };
        let sink = callback.map(|f| {
            let cb = Callback { f, userdata };
            Arc::new(move |r: &Record| cb.call(r)) as log::Sink
        });
        match log::set_sink(sink, level) {
            log::SinkInstall::Forwarding => Ok(()),
            log::SinkInstall::HostSubscriber => Err(fail(
                fastmcp_auth_result::InvalidArgument,
                "this process already installed a Rust tracing subscriber; records go there",
            )),
        }
    })
}
