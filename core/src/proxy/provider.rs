//! The proxy itself: construction, configuration, the store and its typed helpers, the client cache.
//! Each flow lives in its own file (`register`, `authorize`, `consent`, `callback`, `token`, `refresh`,
//! `revoke`, `metadata`); each security rule in its own small module (`redirect_policy`, …).

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lru::LruCache;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::cimd::Cimd;
use super::cimd_document;
use super::config::OAuthProxyConfig;
use super::error::OAuthResult;
use super::metrics::{MeteredStore, Metrics};
use super::model::*;
use super::rate_limit::{Caller, Endpoint, Limiter};
use super::read_mode::{self, ReadMode};
use super::redirect_policy::RedirectPolicy;
use super::resource::ResourcePolicy;
use super::upstream::Upstream;

use crate::jwt::JwtIssuer;
use crate::store::{EncryptedStore, MemoryStore, Store};

/// Longest client id looked up (a URL-shaped id of a metadata document fits).
pub(super) const MAX_CLIENT_ID_BYTES: usize = 2048;

/// 32 random bytes, base64url: ids, codes, keys.
pub(super) fn random_id() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

pub(super) fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// The OAuth proxy. Cheap to share (`Arc`); every method is safe to call concurrently, from several instances in
/// several processes sharing one store.
pub struct OAuthProxy {
    pub(super) config: OAuthProxyConfig,
    pub(super) store: Arc<dyn Store>,
    pub(super) issuer: Option<JwtIssuer>,
    pub(super) upstream: Upstream,
    pub(super) redirect_uri: String,
    /// `base_url` is https (parsed once): the browser-binding cookie is then `__Host-` prefixed and `Secure`.
    pub(super) https: bool,
    /// The base store, when the proxy made it (no `token_storage` given): `close` stops it; a store passed in stays
    /// its owner's.
    own_store: Option<Arc<dyn Store>>,
    pub(super) redirect_policy: RedirectPolicy,
    pub(super) resource_policy: ResourcePolicy,
    /// Registrations change only when their lifetime is extended, which the cache sees too; bounded (LRU,
    /// `client_cache_size`) so a registration flood cannot grow memory.
    clients: Mutex<LruCache<String, RegisteredClient>>,
    /// Open transactions per client in this process (id, expiry), bounded like the client cache; caps what one
    /// client can keep open (`max_transactions_per_client`).
    open_transactions: Mutex<LruCache<String, Vec<(String, Instant)>>>,
    /// Client ID Metadata Documents, when enabled (`config.cimd.enabled`).
    pub(super) cimd: Option<Cimd>,
    /// The endpoints' rate limits (see [`rate_limit`](super::rate_limit)).
    limiter: Limiter,
    /// What the production checklist found at construction (logged as warnings).
    findings: Vec<String>,
    /// Counters and histograms (see [`metrics`](super::metrics)).
    pub(super) metrics: Arc<Metrics>,
}

impl std::fmt::Debug for OAuthProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthProxy")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl OAuthProxy {
    /// Validates `config` and builds the proxy (derives the storage key, which takes ~50 ms of scrypt).
    pub fn new(mut config: OAuthProxyConfig) -> crate::Result<Self> {
        config.validate()?;
        // The production checklist: each finding a warning, or with `strict` a refusal to start. (Over plain http a
        // neighbour — another subdomain, a network attacker — can also plant the browser-binding cookie; only https
        // gives it the `__Host-` prefix and `Secure`.)
        let findings = config.production_findings();
        // Weak previous keys are being rotated away: warned about, never refused.
        let refused: Vec<&str> = findings
            .iter()
            .map(String::as_str)
            .filter(|f| !f.starts_with("previous_"))
            .collect();
        if config.strict && !refused.is_empty() {
            return Err(crate::Error::InvalidArgument(format!(
                "strict: {}",
                refused.join("; ")
            )));
        }
        for f in &findings {
            tracing::warn!("OAuthProxy: {f}");
        }
        let given = config.token_storage.take();
        let own_store: Option<Arc<dyn Store>> = given
            .is_none()
            .then(|| Arc::new(MemoryStore::new()) as Arc<dyn Store>);
        let base: Arc<dyn Store> = given.or_else(|| own_store.clone()).expect("a store");
        let store: Arc<dyn Store> = if config.encryption_disabled {
            base
        } else {
            let key = config
                .encryption_key
                .clone()
                .unwrap_or_else(crate::keys::generate_key);
            let prev: Vec<&str> = config
                .previous_encryption_keys
                .iter()
                .map(String::as_str)
                .collect();
            Arc::new(EncryptedStore::new(base, &key, &prev)?)
        };
        let limiter = Limiter::new(&config.rate_limits);
        let mut metrics = Metrics::new();
        if config.metrics_client_ids {
            metrics.register_by_client();
        }
        metrics.register_rate_limit_errors(limiter.store_errors());
        let metrics = Arc::new(metrics);
        let store: Arc<dyn Store> = Arc::new(MeteredStore {
            inner: store,
            metrics: metrics.clone(),
        });
        let resource_policy = ResourcePolicy::new(&config.base_url, &config.accepted_resources)?;
        let issuer = if config.enable_token_swap {
            let key = config
                .jwt_signing_key
                .clone()
                .unwrap_or_else(crate::keys::generate_key);
            let audiences = resource_policy.clone();
            let mut i = JwtIssuer::new(&config.base_url, &config.base_url, key.as_bytes())?
                .with_accepted_audiences(Arc::new(move |aud: &str| audiences.accepts(aud)))
                .with_layout(config.claim_layout)
                .with_ttls(config.access_token_ttl, config.refresh_token_ttl)?;
            for k in &config.previous_jwt_signing_keys {
                i = i.with_previous_key(k.as_bytes(), None)?;
            }
            Some(i)
        } else {
            None
        };
        let upstream = Upstream::new(&config)?;
        let redirect_uri = format!("{}{}", config.base_url, config.redirect_path);
        let https = url::Url::parse(&config.base_url).is_ok_and(|u| u.scheme() == "https");
        let redirect_policy = RedirectPolicy::new(
            &config.allowed_redirect_uri_patterns,
            config.allow_http_redirect_uris,
        )?;
        let cache = NonZeroUsize::new(config.client_cache_size.max(1)).unwrap_or(NonZeroUsize::MIN);
        let cimd = config.cimd.enabled.then(|| Cimd::new(&config.cimd)).transpose()?;
        Ok(OAuthProxy {
            config,
            store,
            issuer,
            upstream,
            redirect_uri,
            https,
            own_store,
            redirect_policy,
            resource_policy,
            clients: Mutex::new(LruCache::new(cache)),
            open_transactions: Mutex::new(LruCache::new(cache)),
            cimd,
            limiter,
            findings,
            metrics,
        })
    }

    /// What the production checklist found in the configuration at construction, one sentence each naming the
    /// option (never a value); empty when nothing. See [`OAuthProxyConfig::production_findings`].
    pub fn config_warnings(&self) -> &[String] {
        &self.findings
    }

    /// The proxy's metrics in the Prometheus text exposition format (see [`metrics`](super::metrics) for the list;
    /// no label carries a token, secret, user, client id or address). Serve it at `/metrics`.
    pub fn metrics_text(&self) -> String {
        self.metrics.text()
    }

    /// The configuration.
    pub fn config(&self) -> &OAuthProxyConfig {
        &self.config
    }

    /// The (encrypted) store the proxy keeps its state in.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The JWT issuer (swap mode only).
    pub fn jwt_issuer(&self) -> Option<&JwtIssuer> {
        self.issuer.as_ref()
    }

    /// How many client registrations are cached in memory now (at most `client_cache_size`): for diagnostics.
    pub fn cached_clients(&self) -> usize {
        lock(&self.clients).len()
    }

    /// Our callback URL at upstream (`base_url + redirect_path`).
    pub fn callback_url(&self) -> &str {
        &self.redirect_uri
    }

    /// Stops the proxy's own background work: the encrypting wrapper, and the store when the proxy made it. A
    /// `token_storage` passed in stays open and its owner's (the same rule on every face).
    pub fn close(&self) {
        if !self.config.encryption_disabled {
            self.store.close(); // the proxy's EncryptedStore wrapper
        }
        if let Some(s) = &self.own_store {
            s.close();
        }
    }

    /// Counts a request at `endpoint` against its rate limits (`failed`: it costs `failure_cost`); over them, the
    /// 429 error with `Retry-After`. `client_id` is the one the request names, unchecked.
    pub(super) async fn rate_limit(
        &self,
        endpoint: Endpoint,
        remote_addr: Option<&str>,
        client_id: Option<&str>,
        failed: bool,
    ) -> OAuthResult<()> {
        let caller = Caller {
            remote_addr,
            client_id,
            url_client: client_id.is_some_and(|c| self.is_cimd_client_id(c)),
        };
        let r = self
            .limiter
            .check(self.store.as_ref(), endpoint, &caller, failed)
            .await;
        if r.is_err() {
            Metrics::count(&self.metrics.rate_limited, "endpoint", endpoint.name());
        }
        r
    }

    /// A request to upstream's token endpoint, counted and timed (see [`metrics`](super::metrics)).
    pub(super) async fn upstream_token(
        &self,
        grant: super::upstream::Grant<'_>,
        fallback_scope: &[String],
    ) -> OAuthResult<UpstreamTokens> {
        let kind = match grant {
            super::upstream::Grant::AuthorizationCode { .. } => "authorization_code",
            super::upstream::Grant::RefreshToken { .. } => "refresh_token",
        };
        let started = Instant::now();
        // Upstream's grant in our clients' terms (Entra's `api://…/read` → `read`; identity for other providers).
        let r = self.upstream.token(grant, fallback_scope).await.map(|mut t| {
            t.scope = self
                .config
                .upstream_scopes()
                .from_upstream(std::mem::take(&mut t.scope));
            t
        });
        let outcome = match &r {
            Ok(_) => "ok",
            Err(e) if e.is_transient() => "failed",
            Err(_) => "refused",
        };
        self.metrics.upstream_call(kind, outcome, started.elapsed());
        r
    }

    // ---- storage helpers ------------------------------------------------------------------------------------

    pub(super) async fn get_json<T: DeserializeOwned>(&self, key: &str) -> OAuthResult<Option<T>> {
        let v = match (self.store.as_sync(), read_mode::current()) {
            (Some(s), ReadMode::Blocking) => s.get_sync(key)?,
            (Some(s), ReadMode::NoWait) => match s.get_nowait(key) {
                Some(r) => r?,
                // Never an answer: the caller sees that a read would have waited and discards the flow's result.
                None => return Err(read_mode::would_wait()),
            },
            _ => self.store.get(key).await?,
        };
        Ok(v.and_then(|v| serde_json::from_value(v).ok()))
    }

    pub(super) async fn take_json<T: DeserializeOwned>(&self, key: &str) -> OAuthResult<Option<T>> {
        Ok(self
            .store
            .take(key)
            .await?
            .and_then(|v| serde_json::from_value(v).ok()))
    }

    /// `save_json` that tries again (3 attempts, 20 and 80 ms apart) while the store reports itself unavailable:
    /// for the writes whose loss would cost the user a session (upstream's fresh tokens, claims given back).
    pub(super) async fn save_json_retrying<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        ttl_secs: u64,
    ) -> OAuthResult<()> {
        let mut attempt = 0;
        loop {
            match self.save_json(key, value, ttl_secs).await {
                Err(e) if e.status == 503 && attempt < 2 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(20 << (2 * (attempt - 1)))).await;
                }
                other => return other,
            }
        }
    }

    /// Deletes `key`, trying again like `save_json_retrying`; a final failure is logged (what is left behind
    /// expires by itself).
    pub(super) async fn delete_best_effort(&self, key: &str) {
        for attempt in 0..3u32 {
            match self.store.delete(key).await {
                Ok(_) => return,
                Err(e) if attempt == 2 => {
                    tracing::error!(error = %e, "could not delete a proxy record; it will expire by itself");
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20 << (2 * attempt))).await,
            }
        }
    }

    pub(super) async fn save_json<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        ttl_secs: u64,
    ) -> OAuthResult<()> {
        let v = serde_json::to_value(value).map_err(crate::Error::from)?;
        let ttl = (ttl_secs > 0).then(|| Duration::from_secs(ttl_secs));
        Ok(self.store.save(key, v, ttl).await?)
    }

    /// A registered client: from the cache, else the store. Expired registrations are unknown. A URL client id
    /// is a metadata document's client when CIMD is on (see [`cimd`](super::cimd); its errors say why it was
    /// refused) and unknown when it is off.
    pub(super) async fn client(&self, client_id: &str) -> OAuthResult<Option<RegisteredClient>> {
        if cimd_document::is_url_client_id(client_id) {
            return match self.cimd {
                Some(_) => self.cimd_client(client_id).await.map(Some),
                None => Ok(None),
            };
        }
        // Ours are 32 hex digits, fastmcp's UUIDs: anything long or odd is unknown without asking the store
        // (whose key-size error would otherwise reach the client).
        if client_id.is_empty()
            || client_id.len() > MAX_CLIENT_ID_BYTES
            || client_id.bytes().any(|b| !(0x21..0x7f).contains(&b))
        {
            return Ok(None);
        }
        let cached = lock(&self.clients).get(client_id).cloned();
        if let Some(c) = cached {
            if !c.expired() {
                return Ok(Some(c));
            }
            lock(&self.clients).pop(client_id);
            return Ok(None);
        }
        let c: Option<RegisteredClient> = self.get_json(&format!("client:{client_id}")).await?;
        let c = c.filter(|c| !c.expired());
        if let Some(c) = &c {
            lock(&self.clients).put(client_id.to_owned(), c.clone());
        }
        Ok(c)
    }

    /// Stores a registration (with its lifetime when it has one) and caches it.
    pub(super) async fn save_client(&self, client: &RegisteredClient) -> OAuthResult<()> {
        let ttl = client
            .expires_at
            .as_deref()
            .map(|e| secs_until(e).max(1))
            .unwrap_or(0);
        self.save_json(&format!("client:{}", client.client_id), client, ttl)
            .await?;
        lock(&self.clients).put(client.client_id.clone(), client.clone());
        Ok(())
    }

    /// A registration in use lives as long as its grant: when `client` would expire within half of
    /// `lifetime_secs`, its expiry moves to `lifetime_secs` from now (one write per half lifetime, not per use).
    /// Registrations without an expiry (`unused_client_ttl = 0`, or written by fastmcp) are left alone.
    pub(super) async fn extend_client(
        &self,
        client: &RegisteredClient,
        lifetime_secs: u64,
    ) -> OAuthResult<()> {
        let Some(expires) = client.expires_at.as_deref() else {
            return Ok(());
        };
        let lifetime = lifetime_secs.max(self.config.unused_client_ttl);
        if secs_until(expires) >= lifetime / 2 {
            return Ok(());
        }
        let extended = RegisteredClient {
            expires_at: Some(iso_in(lifetime)),
            ..client.clone()
        };
        self.save_client(&extended).await
    }

    /// Which open-transaction slots a transaction counts against: its client's, and for a metadata-document
    /// client its client's *in this browser* — a URL client id is shared by every user of an application, so a
    /// per-client cap would let anyone evict other users' logins in progress with a few anonymous requests (found
    /// by the red-team pass). What such requests can store is bounded by `transaction_ttl` (and a rate limit in
    /// front of `/authorize`).
    pub(super) fn transaction_slot_key(&self, client_id: &str, browser_binding_hash: Option<&str>) -> String {
        match browser_binding_hash {
            Some(b) if self.is_cimd_client_id(client_id) => format!("{client_id} {b}"),
            _ => client_id.to_owned(),
        }
    }

    /// Takes one of the open-transaction slots of `slot` (see `transaction_slot_key`) for `tx_id`. When the slot
    /// already holds `max_transactions_per_client` live ones in this process, the oldest is given up (returned, for
    /// the caller to delete): what one client keeps in the store stays bounded, and since `client_id` is public, refusing new
    /// ones instead would let anyone lock every user of a client out with a handful of anonymous requests.
    pub(super) fn reserve_transaction_slot(&self, slot: &str, tx_id: &str) -> Option<String> {
        let max = self.config.max_transactions_per_client;
        if max == 0 {
            return None;
        }
        let now = Instant::now();
        let mut open = lock(&self.open_transactions);
        let slots = open.get_or_insert_mut(slot.to_owned(), Vec::new);
        slots.retain(|(_, exp)| *exp > now);
        let evicted = (slots.len() >= max).then(|| slots.remove(0).0);
        slots.push((
            tx_id.to_owned(),
            now + Duration::from_secs(self.config.transaction_ttl),
        ));
        evicted
    }

    /// Gives a transaction's slot back (the transaction completed, was denied, or was never stored).
    pub(super) fn release_transaction_slot(&self, tx: &Transaction) {
        let slot = self.transaction_slot_key(&tx.client_id, tx.browser_binding_hash.as_deref());
        if let Some(slots) = lock(&self.open_transactions).get_mut(&slot) {
            slots.retain(|(id, _)| *id != tx.id);
        }
    }
}

/// A mutex that a panicking holder left poisoned still guards consistent data here (every critical section is
/// one map operation).
pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
