//! The C ABI of fastmcp-auth (`libfastmcp_auth.so` / `.a`, header `include/fastmcp_auth.h`).
//!
//! Conventions: every symbol starts `fastmcp_auth_`; fallible calls return `fastmcp_auth_result` (0 = OK) and
//! write outputs only on success; a failure also sets a thread-local message (`fastmcp_auth_last_error`);
//! structured values cross as UTF-8 JSON; strings we return are freed with `fastmcp_auth_string_free`; NULL
//! arguments answer `NULL_PARAMETER`, invalid UTF-8 `INVALID_UTF8`; no panic ever crosses into C. Only the blocking
//! facade of the core is used here: C has no event loop.
#![allow(non_camel_case_types)]
// Exported functions take raw pointers from C and check them (result.rs helpers) instead of being `unsafe fn`,
// as rustls-ffi does: the C caller cannot see Rust's `unsafe` anyway.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use std::ffi::{c_char, CString};

mod jwt;
mod log;
mod proxy;
mod result;
mod store;

pub use jwt::*;
pub use log::*;
pub use proxy::*;
pub use result::fastmcp_auth_result;
pub use store::*;

/// Major version of the header and library (semantic versioning: the ABI is stable within a major version, and
/// `libfastmcp_auth.so.<major>` is the SONAME). Checked against Cargo.toml by `ffi/tests/header.rs`.
pub const FASTMCP_AUTH_VERSION_MAJOR: u32 = 0;
/// Minor version.
pub const FASTMCP_AUTH_VERSION_MINOR: u32 = 1;
/// Patch version.
pub const FASTMCP_AUTH_VERSION_PATCH: u32 = 0;

/// The library version, e.g. "0.1.0" (static; do not free). Compare with the `FASTMCP_AUTH_VERSION_*` macros to
/// detect a header/library mismatch.
#[no_mangle]
pub extern "C" fn fastmcp_auth_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
}

/// The message of the last failure on this thread: NUL-terminated, owned by the library, valid until the next
/// call on this thread. Never NULL (empty when nothing failed yet).
#[no_mangle]
pub extern "C" fn fastmcp_auth_last_error() -> *const c_char {
    result::last_error_ptr()
}

/// The stable name of a result code ("ok", "null_parameter", …; unknown numbers give "internal"). Static.
#[no_mangle]
pub extern "C" fn fastmcp_auth_result_name(result: u32) -> *const c_char {
    fastmcp_auth_result::from(result).name().as_ptr()
}

/// Frees a string returned by this library (NULL is a no-op). Never pass it to C's `free`.
#[no_mangle]
pub extern "C" fn fastmcp_auth_string_free(s: *mut c_char) {
    if !s.is_null() {
        let _ = std::panic::catch_unwind(|| {
            // SAFETY: only strings made by `CString::into_raw` in this library are handed to C for freeing.
            drop(unsafe { CString::from_raw(s) });
        });
    }
}

/// Panics inside the boundary, to prove a panic never crosses into C (returns `FASTMCP_AUTH_RESULT_PANIC`).
#[no_mangle]
pub extern "C" fn fastmcp_auth_test_panic() -> fastmcp_auth_result {
    result::boundary(|| panic!("deliberate panic for the boundary test"))
}
