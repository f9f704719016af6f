//! The synchronous facade: the same operations as the async API, for C, Python threads and scripts.
//!
//! Never call it from inside an async runtime: it answers [`Error::BlockingInAsync`](crate::Error) there.
//! Stores that never wait on the network (memory, disk, and encryption over them) run directly on the calling
//! thread; others run on the shared runtime ([`crate::runtime`]).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::error::Result;
use crate::runtime::block_on;
use crate::store::{self, DiskStoreOptions};

/// A handle on any store, with blocking methods. Cheap to clone; safe to share between threads.
#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn store::Store>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("blocking::Store")
    }
}

macro_rules! dispatch {
    ($self:ident, $sync:ident, $async:ident $(, $arg:expr)*) => {
        match $self.inner.as_sync() {
            Some(s) => s.$sync($($arg),*),
            None => block_on($self.inner.$async($($arg),*))?,
        }
    };
}

impl Store {
    /// Wraps an async store.
    pub fn from_async(inner: Arc<dyn store::Store>) -> Self {
        Store { inner }
    }

    /// A [`store::MemoryStore`] with the default sweep interval.
    pub fn memory() -> Self {
        Self::from_async(Arc::new(store::MemoryStore::new()))
    }

    /// A [`store::DiskStore`].
    pub fn disk(options: DiskStoreOptions) -> Result<Self> {
        Ok(Self::from_async(Arc::new(store::DiskStore::open(options)?)))
    }

    /// This store wrapped in a [`store::EncryptedStore`].
    pub fn encrypted(&self, key: &str, previous_keys: &[&str]) -> Result<Self> {
        Ok(Self::from_async(Arc::new(store::EncryptedStore::new(
            self.inner.clone(),
            key,
            previous_keys,
        )?)))
    }

    /// The async store behind this handle.
    pub fn as_async(&self) -> &Arc<dyn store::Store> {
        &self.inner
    }

    /// See [`store::Store::save`].
    pub fn save(&self, key: &str, value: Value, ttl: Option<Duration>) -> Result<()> {
        dispatch!(self, save_sync, save, key, value, ttl)
    }
    /// See [`store::Store::get`].
    pub fn get(&self, key: &str) -> Result<Option<Value>> {
        dispatch!(self, get_sync, get, key)
    }
    /// See [`store::Store::delete`].
    pub fn delete(&self, key: &str) -> Result<bool> {
        dispatch!(self, delete_sync, delete, key)
    }
    /// See [`store::Store::take`].
    pub fn take(&self, key: &str) -> Result<Option<Value>> {
        dispatch!(self, take_sync, take, key)
    }
    /// See [`store::Store::cleanup`].
    pub fn cleanup(&self) -> Result<u64> {
        dispatch!(self, cleanup_sync, cleanup)
    }
    /// See [`store::Store::size`].
    pub fn size(&self) -> Result<u64> {
        dispatch!(self, size_sync, size)
    }
    /// See [`store::Store::keys`].
    pub fn keys(&self) -> Result<Vec<String>> {
        dispatch!(self, keys_sync, keys)
    }
    /// See [`store::Store::close`].
    pub fn close(&self) {
        self.inner.close()
    }
}
