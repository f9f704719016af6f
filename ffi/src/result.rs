//! Result codes, the thread-local last error, the panic boundary and the argument/output helpers.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use fastmcp_auth_core::{Error, ErrorCode};

/// What every fallible function returns. Numbers are ABI: grouped by category, never reused.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum fastmcp_auth_result {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullParameter = 100,
    /// A text argument was not valid UTF-8.
    InvalidUtf8 = 101,
    /// An argument or configuration value is unacceptable.
    InvalidArgument = 102,
    /// A JSON argument could not be parsed, or has the wrong shape.
    InvalidJson = 103,
    /// A store key is empty or too large.
    InvalidKey = 104,
    /// A JWT was rejected (the last error says why).
    InvalidToken = 200,
    /// A JWT has expired.
    TokenExpired = 201,
    /// Storage failed (disk, Redis down, …).
    StorageIo = 300,
    /// The storage path exists and is not a directory.
    NotADirectory = 301,
    /// A value could not be decrypted.
    DecryptFailed = 302,
    /// Stored data is corrupt.
    Corrupt = 303,
    /// The store was closed.
    Closed = 304,
    /// A callback of a callback store returned non-zero.
    CallbackFailed = 305,
    /// An OAuth error: `fastmcp_auth_last_error()` is the JSON `{"error", "error_description", "status"}`, with
    /// `"retry_after"` (seconds, for a `Retry-After` header) on a 429 from the rate limits.
    OauthError = 400,
    /// A blocking call was made from inside an async runtime.
    BlockingInAsync = 900,
    /// An internal failure.
    Internal = 901,
    /// A panic was caught at the boundary (a bug; nothing crossed into C).
    Panic = 999,
}

impl From<u32> for fastmcp_auth_result {
    fn from(v: u32) -> Self {
        use fastmcp_auth_result::*;
        match v {
            0 => Ok,
            100 => NullParameter,
            101 => InvalidUtf8,
            102 => InvalidArgument,
            103 => InvalidJson,
            104 => InvalidKey,
            200 => InvalidToken,
            201 => TokenExpired,
            300 => StorageIo,
            301 => NotADirectory,
            302 => DecryptFailed,
            303 => Corrupt,
            304 => Closed,
            305 => CallbackFailed,
            400 => OauthError,
            900 => BlockingInAsync,
            999 => Panic,
            _ => Internal,
        }
    }
}

impl fastmcp_auth_result {
    pub(crate) fn name(self) -> &'static CStr {
        use fastmcp_auth_result::*;
        match self {
            Ok => c"ok",
            NullParameter => c"null_parameter",
            InvalidUtf8 => c"invalid_utf8",
            InvalidArgument => c"invalid_argument",
            InvalidJson => c"invalid_json",
            InvalidKey => c"invalid_key",
            InvalidToken => c"invalid_token",
            TokenExpired => c"token_expired",
            StorageIo => c"storage_io",
            NotADirectory => c"not_a_directory",
            DecryptFailed => c"decrypt_failed",
            Corrupt => c"corrupt_data",
            Closed => c"store_closed",
            CallbackFailed => c"callback_failed",
            OauthError => c"oauth_error",
            BlockingInAsync => c"blocking_in_async",
            Internal => c"internal",
            Panic => c"panic",
        }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records the message of a failure for `fastmcp_auth_last_error` and returns its code.
pub(crate) fn fail(code: fastmcp_auth_result, msg: impl Into<String>) -> fastmcp_auth_result {
    let msg = msg.into().replace('\0', " ");
    LAST_ERROR.with(|l| *l.borrow_mut() = CString::new(msg).unwrap_or_default());
    code
}

pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|l| l.borrow().as_ptr())
}

/// Maps a core error to its code (on `Error::code()`, never on text).
pub(crate) fn from_core(e: Error) -> fastmcp_auth_result {
    use fastmcp_auth_result as R;
    let code = match e.code() {
        ErrorCode::InvalidToken => R::InvalidToken,
        ErrorCode::TokenExpired => R::TokenExpired,
        ErrorCode::InvalidArgument => R::InvalidArgument,
        ErrorCode::InvalidKey => R::InvalidKey,
        ErrorCode::DecryptFailed => R::DecryptFailed,
        ErrorCode::Corrupt => R::Corrupt,
        ErrorCode::NotADirectory => R::NotADirectory,
        ErrorCode::StorageIo => R::StorageIo,
        ErrorCode::Closed => R::Closed,
        ErrorCode::InvalidJson => R::InvalidJson,
        ErrorCode::BlockingInAsync => R::BlockingInAsync,
        _ => R::Internal,
    };
    // A callback store's failure keeps its own code (matched on the variant, not the text).
    let code = match &e {
        Error::Io { op, .. } if *op == crate::store::CALLBACK_OP => R::CallbackFailed,
        _ => code,
    };
    fail(code, e.to_string())
}

/// Maps an OAuth error: the last error becomes its JSON with the HTTP status (and `retry_after`, seconds, on a
/// 429 from the rate limits: send it as `Retry-After`).
pub(crate) fn from_oauth(e: fastmcp_auth_core::OAuthError) -> fastmcp_auth_result {
    let mut j = e.to_json();
    j["status"] = e.status.into();
    if let Some(s) = e.retry_after {
        j["retry_after"] = s.into();
    }
    fail(fastmcp_auth_result::OauthError, j.to_string())
}

pub(crate) type FfiResult<T> = Result<T, fastmcp_auth_result>;

/// Runs an exported body: errors become codes, panics become `Panic` and never cross into C.
pub(crate) fn boundary(f: impl FnOnce() -> FfiResult<()>) -> fastmcp_auth_result {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => fastmcp_auth_result::Ok,
        Ok(Err(code)) => code,
        Err(_) => fail(
            fastmcp_auth_result::Panic,
            "internal panic caught at the C boundary",
        ),
    }
}

/// A required NUL-terminated UTF-8 string argument.
pub(crate) fn text<'a>(p: *const c_char, name: &str) -> FfiResult<&'a str> {
    if p.is_null() {
        return Err(fail(
            fastmcp_auth_result::NullParameter,
            format!("{name} is NULL"),
        ));
    }
    // SAFETY: non-NULL, and the caller guarantees a NUL-terminated string valid for this call.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str().map_err(|_| {
        fail(
            fastmcp_auth_result::InvalidUtf8,
            format!("{name} is not valid UTF-8"),
        )
    })
}

/// An optional string argument (NULL = absent).
pub(crate) fn opt_text<'a>(p: *const c_char, name: &str) -> FfiResult<Option<&'a str>> {
    if p.is_null() {
        Ok(None)
    } else {
        text(p, name).map(Some)
    }
}

/// A `(pointer, length)` byte argument; NULL is allowed only with length 0.
pub(crate) fn bytes<'a>(p: *const u8, len: usize, name: &str) -> FfiResult<&'a [u8]> {
    if p.is_null() {
        return if len == 0 {
            Ok(&[])
        } else {
            Err(fail(
                fastmcp_auth_result::NullParameter,
                format!("{name} is NULL"),
            ))
        };
    }
    // SAFETY: non-NULL, and the caller guarantees `len` readable bytes for this call.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// A JSON argument (NULL = `null` when `optional`).
pub(crate) fn json(p: *const c_char, name: &str, optional: bool) -> FfiResult<serde_json::Value> {
    if p.is_null() && optional {
        return Ok(serde_json::Value::Null);
    }
    serde_json::from_str(text(p, name)?)
        .map_err(|e| fail(fastmcp_auth_result::InvalidJson, format!("{name}: {e}")))
}

/// Checks an output pointer.
pub(crate) fn out_ptr<T>(p: *mut T, name: &str) -> FfiResult<()> {
    if p.is_null() {
        Err(fail(
            fastmcp_auth_result::NullParameter,
            format!("{name} is NULL"),
        ))
    } else {
        Ok(())
    }
}

/// Writes a library-owned string (freed by `fastmcp_auth_string_free`) to `out`, or NULL for `None`.
pub(crate) fn put_string(out: *mut *mut c_char, s: Option<String>) -> FfiResult<()> {
    out_ptr(out, "output")?;
    let ptr = match s {
        Some(s) => {
            let mut bytes = s.into_bytes();
            bytes.reserve_exact(1);
            CString::new(bytes)
                .map_err(|_| fail(fastmcp_auth_result::Internal, "output contains NUL"))?
                .into_raw()
        }
        None => std::ptr::null_mut(),
    };
    // SAFETY: checked non-NULL above; the caller provides a writable `char *` slot.
    unsafe { *out = ptr };
    Ok(())
}

/// Writes a plain value to `out`.
pub(crate) fn put<T>(out: *mut T, v: T) -> FfiResult<()> {
    out_ptr(out, "output")?;
    // SAFETY: checked non-NULL; the caller provides a writable slot of this type.
    unsafe { *out = v };
    Ok(())
}

/// Moves a Rust value behind an opaque C pointer.
pub(crate) fn put_handle<T, H>(out: *mut *mut H, v: T) -> FfiResult<()> {
    out_ptr(out, "output")?;
    // SAFETY: checked non-NULL; the pointer is created from a Box and only ever read back as the same T.
    unsafe { *out = Box::into_raw(Box::new(v)) as *mut H };
    Ok(())
}

/// Borrows the value behind an opaque pointer.
pub(crate) fn handle<'a, T, H>(p: *const H, name: &str) -> FfiResult<&'a T> {
    if p.is_null() {
        return Err(fail(
            fastmcp_auth_result::NullParameter,
            format!("{name} is NULL"),
        ));
    }
    // SAFETY: non-NULL pointers of this handle type are only ever made by `put_handle` with this T and stay valid
    // until the matching `_free`, which the caller must not race with other calls.
    Ok(unsafe { &*(p as *const T) })
}

/// Frees a handle made by `put_handle` (NULL is a no-op).
pub(crate) fn free_handle<T, H>(p: *mut H) {
    if !p.is_null() {
        let _ = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: made by `put_handle` with this T; the caller gives up the pointer here.
            drop(unsafe { Box::from_raw(p as *mut T) });
        }));
    }
}

/// A JSON array of strings (or `null`: empty) as borrowed strs.
pub(crate) fn string_array<'a>(v: &'a serde_json::Value, name: &str) -> FfiResult<Vec<&'a str>> {
    let bad = || {
        fail(
            fastmcp_auth_result::InvalidJson,
            format!("{name} must be an array of strings"),
        )
    };
    match v {
        serde_json::Value::Null => Ok(Vec::new()),
        serde_json::Value::Array(a) => a
            .iter()
            .map(serde_json::Value::as_str)
            .collect::<Option<_>>()
            .ok_or_else(bad),
        _ => Err(bad()),
    }
}
