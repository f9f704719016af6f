//! The synchronous facade: the same operations as the async API, for C, Python threads and scripts.
//!
//! Never call it from inside an async runtime: it answers [`Error::BlockingInAsync`](crate::Error) there.
//! Stores that never wait on the network (memory, disk, and encryption over them) run directly on the calling
//! thread; others run on the shared runtime ([`crate::runtime`]).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::error::Result;
use crate::proxy::{
    self, AuthorizeParams, CallbackParams, ConsentParams, HttpResponse, OAuthResult, TokenRequest,
    TokenResponse, UpstreamTokens,
};
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

    /// A [`store::RedisStore`] (connects now).
    pub fn redis(options: store::RedisStoreOptions) -> Result<Self> {
        Ok(Self::from_async(Arc::new(store::RedisStore::open_blocking(
            options,
        )?)))
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
    /// [`get`](Self::get) as compact JSON text (for bindings that hand JSON on; no `Value` tree on disk stores).
    pub fn get_json_text(&self, key: &str) -> Result<Option<String>> {
        match self.inner.as_sync() {
            Some(s) => s.get_json_text(key),
            None => Ok(block_on(self.inner.get(key))??.map(|v| v.to_string())),
        }
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

fn blocking<T>(f: impl std::future::Future<Output = OAuthResult<T>>) -> OAuthResult<T> {
    block_on(f).map_err(proxy::OAuthError::from)?
}

/// The OAuth proxy with blocking methods (each runs on the shared runtime). Cheap to clone; thread-safe.
#[derive(Clone, Debug)]
pub struct OAuthProxy {
    inner: Arc<proxy::OAuthProxy>,
}

impl OAuthProxy {
    /// Builds a proxy; see [`proxy::OAuthProxy::new`].
    pub fn new(config: proxy::OAuthProxyConfig) -> Result<Self> {
        Ok(OAuthProxy {
            inner: Arc::new(proxy::OAuthProxy::new(config)?),
        })
    }
    /// Wraps an async proxy (both faces then share one state).
    pub fn from_async(inner: Arc<proxy::OAuthProxy>) -> Self {
        OAuthProxy { inner }
    }
    /// The async proxy behind this handle.
    pub fn as_async(&self) -> &Arc<proxy::OAuthProxy> {
        &self.inner
    }
    /// See [`proxy::OAuthProxy::register_client`].
    pub fn register_client(&self, request: &Value) -> OAuthResult<Value> {
        blocking(self.inner.register_client(request))
    }
    /// See [`proxy::OAuthProxy::health`].
    pub fn health(&self, timeout: std::time::Duration) -> OAuthResult<proxy::Health> {
        blocking(async { Ok(self.inner.health(timeout).await) })
    }
    /// See [`proxy::OAuthProxy::register_client_from`].
    pub fn register_client_from(&self, request: &Value, remote_addr: Option<&str>) -> OAuthResult<Value> {
        blocking(self.inner.register_client_from(request, remote_addr))
    }
    /// See [`proxy::OAuthProxy::authorize`].
    pub fn authorize(&self, p: &AuthorizeParams) -> OAuthResult<HttpResponse> {
        blocking(self.inner.authorize(p))
    }
    /// See [`proxy::OAuthProxy::handle_consent`].
    pub fn handle_consent(&self, p: &ConsentParams) -> OAuthResult<HttpResponse> {
        blocking(self.inner.handle_consent(p))
    }
    /// See [`proxy::OAuthProxy::check_bearer`].
    pub fn check_bearer(
        &self,
        authorization: Option<&str>,
        resource: &str,
        required_scopes: &[String],
    ) -> OAuthResult<proxy::BearerCheck> {
        blocking(self.inner.check_bearer(authorization, resource, required_scopes))
    }
    /// See [`proxy::OAuthProxy::revoke_request`].
    pub fn revoke_request(&self, r: &proxy::RevocationRequest) -> OAuthResult<()> {
        blocking(self.inner.revoke_request(r))
    }
    /// See [`proxy::OAuthProxy::handle_callback`].
    pub fn handle_callback(&self, p: &CallbackParams) -> OAuthResult<HttpResponse> {
        blocking(self.inner.handle_callback(p))
    }
    /// See [`proxy::OAuthProxy::token`].
    pub fn token(&self, r: &TokenRequest) -> OAuthResult<TokenResponse> {
        blocking(self.inner.token(r))
    }
    /// See [`proxy::OAuthProxy::exchange_authorization_code`].
    pub fn exchange_authorization_code(&self, r: &TokenRequest) -> OAuthResult<TokenResponse> {
        blocking(self.inner.exchange_authorization_code(r))
    }
    /// See [`proxy::OAuthProxy::exchange_refresh_token`].
    pub fn exchange_refresh_token(&self, r: &TokenRequest) -> OAuthResult<TokenResponse> {
        blocking(self.inner.exchange_refresh_token(r))
    }
    /// See [`proxy::OAuthProxy::load_upstream_tokens`].
    pub fn load_upstream_tokens(&self, token: &str) -> OAuthResult<Option<UpstreamTokens>> {
        blocking(self.inner.load_upstream_tokens(token))
    }
    /// See [`proxy::OAuthProxy::revoke`].
    pub fn revoke(&self, token: &str, client_id: &str, client_secret: Option<&str>) -> OAuthResult<()> {
        blocking(self.inner.revoke(token, client_id, client_secret))
    }
    /// See [`proxy::OAuthProxy::authorization_server_metadata`].
    pub fn authorization_server_metadata(&self) -> Value {
        self.inner.authorization_server_metadata()
    }
    /// Stops background work.
    pub fn close(&self) {
        self.inner.close()
    }
}
