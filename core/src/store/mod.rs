//! Token stores: one abstraction over JSON values, several backends.
//!
//! | store | where | atomic `take` | expiry |
//! |---|---|---|---|
//! | [`MemoryStore`] | process memory | mutex | background sweep + lazy |
//! | [`DiskStore`] | one file per key, fastmcp TS format | rename-claim (threads and processes) | indexed sweep |
//! | [`RedisStore`] | Redis ≥ 6.2, shared by replicas | `GETDEL` | Redis (`SET … PX`) |
//! | [`EncryptedStore`] | wraps any store | the inner store's | the inner store's |
//!
//! TTLs follow fastmcp: `None` (or zero) means "never expires".

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

mod disk;
mod disk_guard;
mod encrypted;
mod memory;
mod redis;
mod rekey;
mod sweep_stats;
mod sweeper;

#[cfg(target_os = "linux")]
pub use disk::spare::{enable as enable_prepare_ahead, prepare_ahead};
pub use disk::{DiskStore, DiskStoreOptions, FileNaming, MAX_ENTRY_BYTES, MAX_NOWAIT_BYTES};

/// Lets `DiskStore`s keep unnamed files made ahead for new entries (Linux only: a no-op here).
#[cfg(not(target_os = "linux"))]
pub fn enable_prepare_ahead() {}

/// Makes one file ahead for a `DiskStore` that wants one (Linux only: here there is never any).
#[cfg(not(target_os = "linux"))]
pub fn prepare_ahead() -> bool {
    false
}
pub use encrypted::{EncryptedStore, Keyring};
pub use memory::MemoryStore;
pub use redis::{RedisStore, RedisStoreOptions};
pub use rekey::{rekey, RekeySummary};
pub(crate) use sweep_stats::stats as sweep_stats;

/// Keys longer than this are refused by every store (a key is an identifier, not a payload).
pub const MAX_KEY_BYTES: usize = 64 * 1024;

/// `expiresAt` fastmcp TS writes for entries without TTL (`Number.MAX_SAFE_INTEGER`).
pub const NO_EXPIRY_MS: u64 = 9_007_199_254_740_991;

/// An async key/value store of JSON values with optional TTLs.
///
/// Every method is safe to call concurrently from many tasks and threads.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores `value` under `key`, replacing any previous value. `ttl` of `None` or zero never expires.
    async fn save(&self, key: &str, value: Value, ttl: Option<Duration>) -> Result<()>;
    /// The live value under `key`, if any. Expired, undecryptable or corrupt entries read as absent.
    async fn get(&self, key: &str) -> Result<Option<Value>>;
    /// Removes `key`; returns whether something was removed.
    async fn delete(&self, key: &str) -> Result<bool>;
    /// Atomic get-and-delete: among concurrent callers, at most one receives the value.
    async fn take(&self, key: &str) -> Result<Option<Value>>;
    /// Removes expired entries now; returns how many were removed.
    async fn cleanup(&self) -> Result<u64>;
    /// How many entries are stored (entries expired but not yet swept may be counted).
    async fn size(&self) -> Result<u64>;
    /// The stored keys, in no particular order.
    async fn keys(&self) -> Result<Vec<String>>;
    /// The synchronous face of this store, when its operations never wait on the network (memory, disk).
    /// The blocking facade uses it to skip the runtime entirely.
    fn as_sync(&self) -> Option<&dyn SyncStore> {
        None
    }
    /// Whether every operation completes when first polled, never waiting on a thread, a file or the network
    /// (memory, a C callback store): a caller that must not wait (Node's event loop) may then run one in place.
    fn completes_inline(&self) -> bool {
        false
    }
    /// One step of a rate limit shared by every process using this store (GCRA): `cost` cells against the bucket
    /// `key`, which gains one cell per `period` and holds at most `burst`. With `partial`, as many of the cells as
    /// the bucket still has are taken and the answer is always `Allowed` (a penalty, never a refusal). `Ok(None)`
    /// (the default): this store cannot share limits, and the caller limits per process instead. RedisStore shares
    /// them (an atomic script).
    async fn rate_limit(
        &self,
        key: &str,
        period: Duration,
        burst: u32,
        cost: u32,
        partial: bool,
    ) -> Result<Option<RateLimitAnswer>> {
        let _ = (key, period, burst, cost, partial);
        Ok(None)
    }
    /// Compare-and-swap for tools that rewrite entries while servers use them (`fastmcp-auth store rekey`):
    /// stores `new` under `key` only if the live value is still `expected`, keeping the entry's expiry; another
    /// writer's value is never overwritten. `Ok(None)` (the default): this store cannot do it atomically.
    /// MemoryStore (under its lock), DiskStore (an atomic exchange of files, then a check of what it displaced)
    /// and RedisStore (a script) can.
    async fn replace(&self, key: &str, expected: &Value, new: Value) -> Result<Option<Replaced>> {
        let _ = (key, expected, new);
        Ok(None)
    }
    /// Stops background work (sweeps, connections). Later operations fail with [`Error::Closed`].
    fn close(&self) {}
}

/// What [`Store::replace`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replaced {
    /// The value was the expected one and is now the new one, with its expiry unchanged.
    Replaced,
    /// Another writer changed the value meanwhile: left as that writer wrote it.
    Changed,
    /// No live value under the key (deleted, taken or expired meanwhile).
    Absent,
}

/// What one step of a shared rate limit answered ([`Store::rate_limit`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateLimitAnswer {
    /// Within the limit (and counted).
    Allowed,
    /// Over the limit (not counted): try again after this long.
    Limited {
        /// How long until the request would conform.
        retry_after: Duration,
    },
}

/// The same operations, synchronous: implemented by stores that never wait on the network.
pub trait SyncStore: Send + Sync {
    /// See [`Store::save`].
    fn save_sync(&self, key: &str, value: Value, ttl: Option<Duration>) -> Result<()>;
    /// See [`Store::get`].
    fn get_sync(&self, key: &str) -> Result<Option<Value>>;
    /// See [`Store::delete`].
    fn delete_sync(&self, key: &str) -> Result<bool>;
    /// See [`Store::take`].
    fn take_sync(&self, key: &str) -> Result<Option<Value>>;
    /// See [`Store::cleanup`].
    fn cleanup_sync(&self) -> Result<u64>;
    /// See [`Store::size`].
    fn size_sync(&self) -> Result<u64>;
    /// See [`Store::keys`].
    fn keys_sync(&self) -> Result<Vec<String>>;
    /// See [`Store::close`].
    fn close_sync(&self) {}
    /// [`Store::replace`], synchronously.
    fn replace_sync(&self, key: &str, expected: &Value, new: Value) -> Result<Option<Replaced>> {
        let _ = (key, expected, new);
        Ok(None)
    }
    /// [`Self::get_sync`] when it can be answered without waiting on a device: `None` when it would have to wait
    /// (DiskStore: a path or data not in the kernel's caches). A caller that must not block (an event loop) tries
    /// this first and hands the read to a thread only on `None`. Default: `None`, never tried.
    fn get_nowait(&self, key: &str) -> Option<Result<Option<Value>>> {
        let _ = key;
        None
    }
    /// The value as compact JSON text; stores that keep JSON text (disk) skip building a `Value`.
    fn get_json_text(&self, key: &str) -> Result<Option<String>> {
        Ok(self.get_sync(key)?.map(|v| v.to_string()))
    }
}

/// Implements the async [`Store`] for a type whose [`SyncStore`] operations never wait long (memory, a C
/// callback store): each async method runs the synchronous one in place, and `as_sync` exposes it.
#[macro_export]
macro_rules! impl_store_via_sync {
    ($t:ty) => {
        #[$crate::store::async_trait]
        impl $crate::store::Store for $t {
            async fn save(
                &self,
                key: &str,
                value: $crate::store::Value,
                ttl: Option<std::time::Duration>,
            ) -> $crate::Result<()> {
                $crate::store::SyncStore::save_sync(self, key, value, ttl)
            }
            async fn get(&self, key: &str) -> $crate::Result<Option<$crate::store::Value>> {
                $crate::store::SyncStore::get_sync(self, key)
            }
            async fn delete(&self, key: &str) -> $crate::Result<bool> {
                $crate::store::SyncStore::delete_sync(self, key)
            }
            async fn take(&self, key: &str) -> $crate::Result<Option<$crate::store::Value>> {
                $crate::store::SyncStore::take_sync(self, key)
            }
            async fn cleanup(&self) -> $crate::Result<u64> {
                $crate::store::SyncStore::cleanup_sync(self)
            }
            async fn size(&self) -> $crate::Result<u64> {
                $crate::store::SyncStore::size_sync(self)
            }
            async fn keys(&self) -> $crate::Result<Vec<String>> {
                $crate::store::SyncStore::keys_sync(self)
            }
            fn as_sync(&self) -> Option<&dyn $crate::store::SyncStore> {
                Some(self)
            }
            fn completes_inline(&self) -> bool {
                true
            }
            async fn replace(
                &self,
                key: &str,
                expected: &$crate::store::Value,
                new: $crate::store::Value,
            ) -> $crate::Result<Option<$crate::store::Replaced>> {
                $crate::store::SyncStore::replace_sync(self, key, expected, new)
            }
            fn close(&self) {
                $crate::store::SyncStore::close_sync(self)
            }
        }
    };
}

#[doc(hidden)]
pub use async_trait::async_trait;
#[doc(hidden)]
pub use serde_json::Value;

#[async_trait]
impl<T: Store + ?Sized> Store for Arc<T> {
    async fn save(&self, key: &str, value: Value, ttl: Option<Duration>) -> Result<()> {
        (**self).save(key, value, ttl).await
    }
    async fn get(&self, key: &str) -> Result<Option<Value>> {
        (**self).get(key).await
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        (**self).delete(key).await
    }
    async fn take(&self, key: &str) -> Result<Option<Value>> {
        (**self).take(key).await
    }
    async fn cleanup(&self) -> Result<u64> {
        (**self).cleanup().await
    }
    async fn size(&self) -> Result<u64> {
        (**self).size().await
    }
    async fn keys(&self) -> Result<Vec<String>> {
        (**self).keys().await
    }
    fn as_sync(&self) -> Option<&dyn SyncStore> {
        (**self).as_sync()
    }
    fn completes_inline(&self) -> bool {
        (**self).completes_inline()
    }
    async fn rate_limit(
        &self,
        key: &str,
        period: Duration,
        burst: u32,
        cost: u32,
        partial: bool,
    ) -> Result<Option<RateLimitAnswer>> {
        (**self).rate_limit(key, period, burst, cost, partial).await
    }
    async fn replace(&self, key: &str, expected: &Value, new: Value) -> Result<Option<Replaced>> {
        (**self).replace(key, expected, new).await
    }
    fn close(&self) {
        (**self).close()
    }
}

/// Refuses keys no store should hold: empty, or over [`MAX_KEY_BYTES`].
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::InvalidKey("key must not be empty".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::InvalidKey(format!(
            "key is {} bytes, the limit is {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    Ok(())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The `expiresAt` (ms since epoch) fastmcp writes for a TTL: zero or none never expires.
pub fn expires_at_ms(ttl: Option<Duration>) -> u64 {
    match ttl {
        // Checked all the way: a TTL of any size (a host's 1e19 s) means "as late as fastmcp can say", never a wrap.
        Some(d) if !d.is_zero() => now_ms()
            .saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .min(NO_EXPIRY_MS),
        _ => NO_EXPIRY_MS,
    }
}

/// A short non-reversible tag for a key or file name, safe to log (keys may embed secrets such as codes).
pub fn fingerprint(s: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(s.as_bytes())[..6])
}
