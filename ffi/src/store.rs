//! Stores: memory, disk, encrypted over any store, Redis, and stores made of C callbacks.

use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;
use std::time::Duration;

use fastmcp_auth_core::blocking::Store;
use fastmcp_auth_core::store::{self, DiskStoreOptions, RedisStoreOptions, SyncStore};
use fastmcp_auth_core::{Error, Result};
use serde_json::Value;

use crate::result::*;

/// A token store. Any store handle may be shared between threads; free it with `fastmcp_auth_store_free`
/// (other handles made from it — an encrypted store, a proxy — keep working: they share ownership).
pub struct fastmcp_auth_store {
    _private: [u8; 0],
}

/// A buffer a callback store's `get`/`take` callback fills with `fastmcp_auth_buffer_set`.
pub struct fastmcp_auth_buffer {
    _private: [u8; 0],
}

/// A store implemented by the C caller. Every callback receives `userdata` first and returns 0 on success
/// (any other value fails the operation with `FASTMCP_AUTH_RESULT_CALLBACK_FAILED`). Callbacks may be called from
/// several threads at once and must be thread-safe.
///
/// Buffers: `key` and `value_json` are library-owned NUL-terminated UTF-8, valid only during the call. `get` and
/// `take` report a value by calling `fastmcp_auth_buffer_set(out, data, len)` (the library copies it; the caller
/// keeps ownership of `data`), or report "absent" by not calling it. `take` must be atomic (at most one caller gets
/// a value). `ttl_ms` 0 means no expiry. `free_userdata`, if set, is called once when the store is freed.
#[repr(C)]
pub struct fastmcp_auth_store_callbacks {
    /// Passed to every callback.
    pub userdata: *mut c_void,
    /// Store `value_json` under `key`.
    pub save: Option<
        unsafe extern "C" fn(
            userdata: *mut c_void,
            key: *const c_char,
            value_json: *const c_char,
            ttl_ms: u64,
        ) -> u32,
    >,
    /// Read `key`.
    pub get: Option<
        unsafe extern "C" fn(userdata: *mut c_void, key: *const c_char, out: *mut fastmcp_auth_buffer) -> u32,
    >,
    /// Remove `key`; write whether something was removed.
    pub delete: Option<
        unsafe extern "C" fn(userdata: *mut c_void, key: *const c_char, removed_out: *mut bool) -> u32,
    >,
    /// Read and remove `key` atomically.
    pub take: Option<
        unsafe extern "C" fn(userdata: *mut c_void, key: *const c_char, out: *mut fastmcp_auth_buffer) -> u32,
    >,
    /// Remove expired entries; write how many.
    pub cleanup: Option<unsafe extern "C" fn(userdata: *mut c_void, removed_out: *mut u64) -> u32>,
    /// Release `userdata` (optional).
    pub free_userdata: Option<unsafe extern "C" fn(userdata: *mut c_void)>,
}

/// `op` of the storage errors a callback store reports (mapped to `CALLBACK_FAILED`).
pub(crate) const CALLBACK_OP: &str = "callback store";

struct CallbackStore {
    cb: fastmcp_auth_store_callbacks,
}

// SAFETY: the caller promises (in the callbacks' documentation) that the callbacks and their userdata are safe to
// use from any thread, concurrently; the struct holds nothing else.
unsafe impl Send for CallbackStore {}
// SAFETY: as above.
unsafe impl Sync for CallbackStore {}

impl Drop for CallbackStore {
    fn drop(&mut self) {
        if let Some(f) = self.cb.free_userdata {
            // SAFETY: the caller's own release function with its own userdata, called exactly once.
            unsafe { f(self.cb.userdata) };
        }
    }
}

fn cb_err(what: &str) -> Error {
    Error::Io {
        op: CALLBACK_OP,
        source: std::io::Error::other(what.to_owned()),
    }
}

fn check(rc: u32, what: &str) -> Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(cb_err(&format!("the {what} callback returned {rc}")))
    }
}

fn ckey(key: &str) -> Result<CString> {
    store::validate_key(key)?;
    CString::new(key).map_err(|_| Error::InvalidKey("a callback store key cannot contain NUL".into()))
}

/// Output slot of `get`/`take`.
struct Slot(Option<Vec<u8>>);

impl CallbackStore {
    fn read(
        &self,
        key: &str,
        f: Option<unsafe extern "C" fn(*mut c_void, *const c_char, *mut fastmcp_auth_buffer) -> u32>,
        what: &str,
    ) -> Result<Option<Value>> {
        let f = f.ok_or_else(|| cb_err(&format!("no {what} callback")))?;
        let k = ckey(key)?;
        let mut slot = Slot(None);
        // SAFETY: the caller's callback; `k` lives across the call; `slot` is only written via buffer_set.
        let rc = unsafe {
            f(
                self.cb.userdata,
                k.as_ptr(),
                &mut slot as *mut Slot as *mut fastmcp_auth_buffer,
            )
        };
        check(rc, what)?;
        match slot.0 {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|_| cb_err(&format!("the {what} callback returned text that is not JSON"))),
        }
    }
}

impl SyncStore for CallbackStore {
    fn save_sync(&self, key: &str, value: Value, ttl: Option<Duration>) -> Result<()> {
        let f = self.cb.save.ok_or_else(|| cb_err("no save callback"))?;
        let k = ckey(key)?;
        let v = CString::new(serde_json::to_string(&value)?).map_err(|_| cb_err("value contains NUL"))?;
        let ttl_ms = ttl.map_or(0, |d| d.as_millis().max(1) as u64);
        // SAFETY: the caller's callback; both strings live across the call.
        check(
            unsafe { f(self.cb.userdata, k.as_ptr(), v.as_ptr(), ttl_ms) },
            "save",
        )
    }
    fn get_sync(&self, key: &str) -> Result<Option<Value>> {
        self.read(key, self.cb.get, "get")
    }
    fn delete_sync(&self, key: &str) -> Result<bool> {
        let f = self.cb.delete.ok_or_else(|| cb_err("no delete callback"))?;
        let k = ckey(key)?;
        let mut removed = false;
        // SAFETY: the caller's callback; `k` and `removed` live across the call.
        check(unsafe { f(self.cb.userdata, k.as_ptr(), &mut removed) }, "delete")?;
        Ok(removed)
    }
    fn take_sync(&self, key: &str) -> Result<Option<Value>> {
        self.read(key, self.cb.take, "take")
    }
    fn cleanup_sync(&self) -> Result<u64> {
        let Some(f) = self.cb.cleanup else { return Ok(0) };
        let mut n = 0u64;
        // SAFETY: the caller's callback; `n` lives across the call.
        check(unsafe { f(self.cb.userdata, &mut n) }, "cleanup")?;
        Ok(n)
    }
    fn size_sync(&self) -> Result<u64> {
        Err(Error::InvalidArgument(
            "a callback store cannot count its entries".into(),
        ))
    }
    fn keys_sync(&self) -> Result<Vec<String>> {
        Err(Error::InvalidArgument(
            "a callback store cannot list its keys".into(),
        ))
    }
}

fastmcp_auth_core::impl_store_via_sync!(CallbackStore);

pub(crate) fn store_of<'a>(p: *const fastmcp_auth_store) -> FfiResult<&'a Store> {
    handle::<Store, _>(p, "store")
}

/// Compact JSON text, written into one right-sized buffer.
fn to_text(v: &Value) -> String {
    let mut buf = Vec::with_capacity(256);
    // Serialising a Value into memory cannot fail.
    let _ = serde_json::to_writer(&mut buf, v);
    String::from_utf8(buf).unwrap_or_default()
}

fn ttl(ttl_ms: u64) -> Option<Duration> {
    (ttl_ms > 0).then(|| Duration::from_millis(ttl_ms))
}

/// A new in-memory store sweeping expired entries every `cleanup_interval_ms` (0: no background sweep).
/// Free with `fastmcp_auth_store_free`.
#[no_mangle]
pub extern "C" fn fastmcp_auth_store_new_memory(
    cleanup_interval_ms: u64,
    store_out: *mut *mut fastmcp_auth_store,
) -> fastmcp_auth_result {
    boundary(|| {
        let s = store::MemoryStore::with_cleanup_interval(Duration::from_millis(cleanup_interval_ms));
        put_handle(store_out, Store::from_async(Arc::new(s)))
    })
}

/// A new DiskStore in `directory` (created 0700 when missing; a file there is `NOT_A_DIRECTORY`).
/// `cleanup_interval_ms` 0 disables the background sweep; `file_extension` NULL means ".json"; `fsync` makes each
/// write durable. Free with `fastmcp_auth_store_free`.
#[no_mangle]
pub extern "C" fn fastmcp_auth_store_new_disk(
    directory: *const c_char,
    cleanup_interval_ms: u64,
    file_extension: *const c_char,
    fsync: bool,
    store_out: *mut *mut fastmcp_auth_store,
) -> fastmcp_auth_result {
    boundary(|| {
        let mut o = DiskStoreOptions::new(text(directory, "directory")?);
        o.cleanup_interval = (cleanup_interval_ms > 0).then(|| Duration::from_millis(cleanup_interval_ms));
        if let Some(ext) = opt_text(file_extension, "file_extension")? {
            o.file_extension = ext.to_owned();
        }
        o.fsync = fsync;
        put_handle(store_out, Store::disk(o).map_err(from_core)?)
    })
}

/// A new RedisStore (connects now; `STORAGE_IO` when Redis is unreachable). `prefix` NULL means "fastmcp:".
/// Free with `fastmcp_auth_store_free`.
#[no_mangle]
pub extern "C" fn fastmcp_auth_store_new_redis(
    url: *const c_char,
    prefix: *const c_char,
    store_out: *mut *mut fastmcp_auth_store,
) -> fastmcp_auth_result {
    boundary(|| {
        let mut o = RedisStoreOptions::new(text(url, "url")?);
        if let Some(p) = opt_text(prefix, "prefix")? {
            o.prefix = p.to_owned();
        }
        put_handle(store_out, Store::redis(o).map_err(from_core)?)
    })
}

/// An EncryptedStore over `inner` (which stays usable and must still be freed by its owner). `key` encrypts and
/// decrypts; `previous_keys_json` (NULL or a JSON array of strings) only decrypt. Derivation takes ~50 ms.
#[no_mangle]
pub extern "C" fn fastmcp_auth_store_new_encrypted(
    inner: *const fastmcp_auth_store,
    key: *const c_char,
    previous_keys_json: *const c_char,
    store_out: *mut *mut fastmcp_auth_store,
) -> fastmcp_auth_result {
    boundary(|| {
        let inner = store_of(inner)?;
        let key = text(key, "key")?;
        let prev = json(previous_keys_json, "previous_keys_json", true)?;
        let prev = string_array(&prev, "previous_keys_json")?;
        put_handle(store_out, inner.encrypted(key, &prev).map_err(from_core)?)
    })
}

/// A store made of the caller's callbacks (copied; `userdata` is owned by the store from now on if
/// `free_userdata` is set). Usable wherever a store is: under an EncryptedStore and by the proxy.
#[no_mangle]
pub extern "C" fn fastmcp_auth_store_new_callbacks(
    callbacks: *const fastmcp_auth_store_callbacks,
    store_out: *mut *mut fastmcp_auth_store,
) -> fastmcp_auth_result {
    boundary(|| {
        if callbacks.is_null() {
            return Err(fail(fastmcp_auth_result::NullParameter, "callbacks is NULL"));
        }
        // SAFETY: non-NULL; the caller passes a valid struct, which we copy field by field.
        let c = unsafe { &*callbacks };
        let cb = fastmcp_auth_store_callbacks {
            userdata: c.userdata,
            save: c.save,
            get: c.get,
            delete: c.delete,
            take: c.take,
            cleanup: c.cleanup,
            free_userdata: c.free_userdata,
        };
        if cb.save.is_none() || cb.get.is_none() || cb.delete.is_none() || cb.take.is_none() {
            // The userdata is not ours until we succeed: do not call free_userdata.
            return Err(fail(
                fastmcp_auth_result::InvalidArgument,
                "save, get, delete and take callbacks are required",
            ));
        }
        put_handle(store_out, Store::from_async(Arc::new(CallbackStore { cb })))
    })
}

/// Copies `len` bytes of UTF-8 JSON into a callback's output buffer (`get`/`take` callbacks only).
#[no_mangle]
pub extern "C" fn fastmcp_auth_buffer_set(
    buffer: *mut fastmcp_auth_buffer,
    data: *const u8,
    len: usize,
) -> fastmcp_auth_result {
    boundary(|| {
        out_ptr(buffer, "buffer")?;
        let b = bytes(data, len, "data")?.to_vec();
        // SAFETY: buffers are only handed out by CallbackStore::read, pointing at a live Slot.
        unsafe { (*(buffer as *mut Slot)).0 = Some(b) };
        Ok(())
    })
}

/// Frees a store handle (NULL is a no-op). Other handles sharing it keep working.
#[no_mangle]
pub extern "C" fn fastmcp_auth_store_free(store: *mut fastmcp_auth_store) {
    free_handle::<Store, _>(store)
}

/// Saves `value_json` under `key`; `ttl_ms` 0 never expires.
#[no_mangle]
pub extern "C" fn fastmcp_auth_store_save(
    store: *const fastmcp_auth_store,
    key: *const c_char,
    value_json: *const c_char,
    ttl_ms: u64,
) -> fastmcp_auth_result {
    boundary(|| {
        let s = store_of(store)?;
        let v = json(value_json, "value_json", false)?;
        s.save(text(key, "key")?, v, ttl(ttl_ms)).map_err(from_core)
    })
}

/// Reads `key`: `*value_json_out` is the JSON text (free with `fastmcp_auth_string_free`), or NULL when absent.
#[no_mangle]
pub extern "C" fn fastmcp_auth_store_get(
    store: *const fastmcp_auth_store,
    key: *const c_char,
    value_json_out: *mut *mut c_char,
) -> fastmcp_auth_result {
    boundary(|| {
        out_ptr(value_json_out, "value_json_out")?;
        let v = store_of(store)?
            .get_json_text(text(key, "key")?)
            .map_err(from_core)?;
        put_string(value_json_out, v)
    })
}

/// Reads and removes `key` atomically: among concurrent callers at most one gets the value. NULL when absent.
#[no_mangle]
pub extern "C" fn fastmcp_auth_store_take(
    store: *const fastmcp_auth_store,
    key: *const c_char,
    value_json_out: *mut *mut c_char,
) -> fastmcp_auth_result {
    boundary(|| {
        out_ptr(value_json_out, "value_json_out")?;
        let v = store_of(store)?.take(text(key, "key")?).map_err(from_core)?;
        put_string(value_json_out, v.map(|v| to_text(&v)))
    })
}

/// Removes `key`; `*removed_out` says whether something was there (may be NULL).
#[no_mangle]
pub extern "C" fn fastmcp_auth_store_delete(
    store: *const fastmcp_auth_store,
    key: *const c_char,
    removed_out: *mut bool,
) -> fastmcp_auth_result {
    boundary(|| {
        let r = store_of(store)?.delete(text(key, "key")?).map_err(from_core)?;
        if !removed_out.is_null() {
            put(removed_out, r)?;
        }
        Ok(())
    })
}

/// Removes expired entries now; `*removed_out` (may be NULL) is how many.
#[no_mangle]
pub extern "C" fn fastmcp_auth_store_cleanup(
    store: *const fastmcp_auth_store,
    removed_out: *mut u64,
) -> fastmcp_auth_result {
    boundary(|| {
        let n = store_of(store)?.cleanup().map_err(from_core)?;
        if !removed_out.is_null() {
            put(removed_out, n)?;
        }
        Ok(())
    })
}

/// The number of entries.
#[no_mangle]
pub extern "C" fn fastmcp_auth_store_size(
    store: *const fastmcp_auth_store,
    size_out: *mut u64,
) -> fastmcp_auth_result {
    boundary(|| {
        out_ptr(size_out, "size_out")?;
        put(size_out, store_of(store)?.size().map_err(from_core)?)
    })
}

/// The keys as a JSON array of strings (free with `fastmcp_auth_string_free`).
#[no_mangle]
pub extern "C" fn fastmcp_auth_store_keys(
    store: *const fastmcp_auth_store,
    keys_json_out: *mut *mut c_char,
) -> fastmcp_auth_result {
    boundary(|| {
        out_ptr(keys_json_out, "keys_json_out")?;
        let mut k = store_of(store)?.keys().map_err(from_core)?;
        k.sort();
        put_string(keys_json_out, Some(Value::from(k).to_string()))
    })
}

/// Stops background work; later operations answer `CLOSED`. The handle must still be freed.
#[no_mangle]
pub extern "C" fn fastmcp_auth_store_close(store: *const fastmcp_auth_store) -> fastmcp_auth_result {
    boundary(|| {
        store_of(store)?.close();
        Ok(())
    })
}
