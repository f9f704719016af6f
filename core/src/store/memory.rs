//! In-process store (fastmcp TS `MemoryTokenStorage`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;

use super::sweeper::Sweeper;
use super::{expires_at_ms, now_ms, validate_key, SyncStore};
use crate::error::{Error, Result};

/// Default interval of the background sweep.
pub const DEFAULT_CLEANUP_INTERVAL: Duration = Duration::from_secs(60);

struct Entry {
    value: Value,
    expires_at: u64,
}

struct Inner {
    map: Mutex<HashMap<String, Entry>>,
    closed: AtomicBool,
}

impl Inner {
    fn lock(&self) -> Result<MutexGuard<'_, HashMap<String, Entry>>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        // A panic while holding the lock cannot leave a half-written entry (every critical section is a single
        // HashMap call), so a poisoned lock is safe to keep using.
        Ok(self.map.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn sweep(&self) -> u64 {
        let started = std::time::Instant::now();
        let now = now_ms();
        let Ok(mut map) = self.lock() else { return 0 };
        let before = map.len();
        map.retain(|_, e| e.expires_at >= now);
        let removed = (before - map.len()) as u64;
        drop(map);
        super::sweep_stats::record("memory", before as u64, removed, started.elapsed());
        removed
    }
}

/// Values in process memory, with TTLs and a background sweep that stops on [`close`](Store::close) or drop.
///
/// ```
/// use fastmcp_auth::store::{MemoryStore, SyncStore};
/// let store = MemoryStore::new();
/// store.save_sync("k", serde_json::json!({"a": 1}), None).unwrap();
/// assert_eq!(store.take_sync("k").unwrap(), Some(serde_json::json!({"a": 1})));
/// assert_eq!(store.take_sync("k").unwrap(), None);
/// ```
pub struct MemoryStore {
    inner: Arc<Inner>,
    sweeper: Sweeper,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// A store sweeping every 60 s.
    pub fn new() -> Self {
        Self::with_cleanup_interval(DEFAULT_CLEANUP_INTERVAL)
    }

    /// A store sweeping every `interval` (a zero interval disables the background sweep).
    pub fn with_cleanup_interval(interval: Duration) -> Self {
        let inner = Arc::new(Inner {
            map: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
        });
        let sweeper = if interval.is_zero() {
            Sweeper::disabled()
        } else {
            Sweeper::spawn(
                "fastmcp-auth-memory-sweep",
                interval,
                Arc::downgrade(&inner),
                |i| {
                    i.sweep();
                },
            )
        };
        MemoryStore { inner, sweeper }
    }

    /// Whether the background sweep thread is running.
    pub fn sweeper_running(&self) -> bool {
        self.sweeper.is_running()
    }
}

impl SyncStore for MemoryStore {
    fn save_sync(&self, key: &str, value: Value, ttl: Option<Duration>) -> Result<()> {
        validate_key(key)?;
        let entry = Entry {
            value,
            expires_at: expires_at_ms(ttl),
        };
        self.inner.lock()?.insert(key.to_owned(), entry);
        Ok(())
    }

    fn get_sync(&self, key: &str) -> Result<Option<Value>> {
        validate_key(key)?;
        let now = now_ms();
        let mut map = self.inner.lock()?;
        match map.get(key) {
            Some(e) if e.expires_at >= now => Ok(Some(e.value.clone())),
            Some(_) => {
                map.remove(key);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    fn delete_sync(&self, key: &str) -> Result<bool> {
        validate_key(key)?;
        Ok(self.inner.lock()?.remove(key).is_some())
    }

    fn take_sync(&self, key: &str) -> Result<Option<Value>> {
        validate_key(key)?;
        let now = now_ms();
        let entry = self.inner.lock()?.remove(key);
        Ok(entry.filter(|e| e.expires_at >= now).map(|e| e.value))
    }

    fn cleanup_sync(&self) -> Result<u64> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(self.inner.sweep())
    }

    fn size_sync(&self) -> Result<u64> {
        Ok(self.inner.lock()?.len() as u64)
    }

    fn keys_sync(&self) -> Result<Vec<String>> {
        Ok(self.inner.lock()?.keys().cloned().collect())
    }

    fn replace_sync(&self, key: &str, expected: &Value, new: Value) -> Result<Option<super::Replaced>> {
        validate_key(key)?;
        let now = now_ms();
        let mut map = self.inner.lock()?;
        Ok(Some(match map.get_mut(key) {
            Some(e) if e.expires_at < now => super::Replaced::Absent,
            Some(e) if e.value == *expected => {
                e.value = new;
                super::Replaced::Replaced
            }
            Some(_) => super::Replaced::Changed,
            None => super::Replaced::Absent,
        }))
    }

    fn close_sync(&self) {
        self.sweeper.stop();
        self.inner.closed.store(true, Ordering::Release);
        self.inner.map.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

crate::impl_store_via_sync!(MemoryStore);
