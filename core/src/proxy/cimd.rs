//! Client ID Metadata Document clients (MCP authorization 2025-11-25; draft-ietf-oauth-client-id-metadata-document):
//! a URL `client_id` becomes a public client described by the JSON document at that URL.
//!
//! - Rules on the URL and the document: [`cimd_document`]; the fetch: [`safe_fetch`] (SSRF-safe).
//! - Cache: the checked document is kept in the proxy's store under `cimd:<sha256(url)>` (so replicas share it and
//!   a restart keeps it) for `max_cache_ttl`; it is *fresh* for the `Cache-Control` `max-age` bounded by
//!   `min_cache_ttl..=max_cache_ttl` (`cache_ttl` without one; `no-cache`/`no-store` mean `min_cache_ttl`). A stale
//!   copy is fetched again; when that fetch fails transiently (network, timeout, 5xx, cool-down) the copy is used
//!   until it expires; when the host answers with a 4xx or an invalid document the copy is deleted (the owner has
//!   withdrawn or changed it). Nothing that failed a check is cached.
//! - One fetch per URL at a time: concurrent requests for a URL not cached wait for the one fetch in flight
//!   (a watch channel; no lock is held across the network); at most [`MAX_FETCHES_PER_HOST`] URLs of one host and
//!   [`MAX_FETCHES_IN_FLIGHT`] in all are fetched at once (more: the live cached copy if there is one, else
//!   `temporarily_unavailable`).
//! - After a host could not be reached (DNS, connection, TLS, timeout), it (host and port) is in cool-down for
//!   `failure_cooldown`: fetches from it fail at once. Answers (4xx, 5xx, invalid documents) start no cool-down,
//!   so nobody can lock a host's clients out by naming a missing document.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant, UNIX_EPOCH};

use lru::LruCache;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::watch;
use url::Url;

use super::cimd_document::{self, ClientDocument};
use super::config::CimdOptions;
use super::error::{OAuthError, OAuthResult};
use super::model::{iso, RegisteredClient};
use super::provider::{lock, sha256_hex, OAuthProxy};
use super::safe_fetch::{FetchError, SafeFetcher};

/// Most distinct documents fetched at the same time.
pub const MAX_FETCHES_IN_FLIGHT: usize = 256;
/// Most documents fetched from one host (and port) at the same time: a slow host holds at most this many slots.
pub const MAX_FETCHES_PER_HOST: usize = 4;
/// Hosts remembered for their cool-down (LRU).
const COOLDOWN_HOSTS: usize = 4096;

type Outcome = OAuthResult<RegisteredClient>;
/// The leader's answer to come, as its followers wait for it.
type Pending = watch::Receiver<Option<Outcome>>;

/// The proxy's CIMD state: the fetcher, fetches in flight, hosts in cool-down.
pub(super) struct Cimd {
    fetcher: SafeFetcher,
    options: CimdOptions,
    /// URL → (host key, the leader's answer to come).
    in_flight: Mutex<HashMap<String, (String, Pending)>>,
    cooldown: Mutex<LruCache<String, Instant>>,
}

/// What the store keeps per document.
#[derive(Serialize, Deserialize)]
struct CachedDocument {
    client_id: String,
    redirect_uris: Vec<String>,
    metadata: Map<String, Value>,
    /// Unix seconds.
    fetched_at: u64,
    /// Unix seconds; after it the document is fetched again.
    fresh_until: u64,
}

impl CachedDocument {
    fn client(&self) -> RegisteredClient {
        RegisteredClient {
            callback_url: self.redirect_uris.first().cloned().unwrap_or_default(),
            client_id: self.client_id.clone(),
            client_secret: None,
            client_secret_hash: None,
            metadata: Value::Object(self.metadata.clone()),
            redirect_uris: self.redirect_uris.clone(),
            registered_at: iso(UNIX_EPOCH + Duration::from_secs(self.fetched_at)),
            token_endpoint_auth_method: Some("none".into()),
            expires_at: None,
        }
    }
}

/// How long a document is fresh, from its `Cache-Control` (RFC 9111 §5.2.2), bounded by the options.
pub(super) fn freshness(cache_control: Option<&str>, o: &CimdOptions) -> u64 {
    let mut max_age = None;
    let mut revalidate = false;
    for d in cache_control.unwrap_or("").split(',') {
        let d = d.trim().to_ascii_lowercase();
        if d == "no-store" || d == "no-cache" {
            revalidate = true;
        } else if let Some(v) = d.strip_prefix("max-age=") {
            // A malformed max-age is ignored (RFC 9111 §4.2.1: treat as stale, here: the floor).
            max_age = Some(v.trim_matches('"').parse::<u64>().unwrap_or(0));
        }
    }
    let secs = if revalidate {
        0
    } else {
        max_age.unwrap_or(o.cache_ttl)
    };
    secs.clamp(o.min_cache_ttl, o.max_cache_ttl)
}

/// `host:port` of a URL (the cool-down key).
fn host_key(u: &Url) -> String {
    format!(
        "{}:{}",
        u.host_str().unwrap_or(""),
        u.port_or_known_default().unwrap_or(0)
    )
}

impl Cimd {
    pub(super) fn new(o: &CimdOptions) -> crate::Result<Self> {
        Ok(Cimd {
            fetcher: SafeFetcher::new(o)?,
            options: o.clone(),
            in_flight: Mutex::new(HashMap::new()),
            cooldown: Mutex::new(LruCache::new(
                NonZeroUsize::new(COOLDOWN_HOSTS).unwrap_or(NonZeroUsize::MIN),
            )),
        })
    }

    fn cooling_down(&self, host: &str) -> bool {
        let mut c = lock(&self.cooldown);
        match c.get(host) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                c.pop(host);
                false
            }
            None => false,
        }
    }

    fn record(&self, host: &str, ok: bool) {
        let mut c = lock(&self.cooldown);
        if ok || self.options.failure_cooldown.is_zero() {
            c.pop(host);
        } else {
            c.put(host.to_owned(), Instant::now() + self.options.failure_cooldown);
        }
    }

    /// Fetches and checks the document at `url`: the document and how long it is fresh.
    async fn fetch(&self, url: &Url) -> Result<(ClientDocument, u64), FetchError> {
        let host = host_key(url);
        if self.cooling_down(&host) {
            return Err(FetchError::Unavailable(
                "the document host failed recently; it is tried again after cimd.failure_cooldown",
            ));
        }
        let result = match self.fetcher.get_json(url).await {
            Ok(f) => cimd_document::parse(url.as_str(), &f.body)
                .map(|d| (d, freshness(f.cache_control.as_deref(), &self.options)))
                .map_err(FetchError::Rejected),
            Err(e) => Err(e),
        };
        // Only a host that could not be reached cools down: any answer (a 404 for a URL anyone can name, a 5xx of
        // one document) says nothing against the host's other documents (found by the red-team pass).
        self.record(&host, !matches!(result, Err(FetchError::Unreachable(_))));
        result
    }
}

/// Removes the in-flight entry when the leading fetch ends, completed or cancelled (a dropped request future).
struct Flight<'a> {
    cimd: &'a Cimd,
    id: String,
    tx: watch::Sender<Option<Outcome>>,
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        lock(&self.cimd.in_flight).remove(&self.id);
    }
}

enum Role<'a> {
    Lead(Flight<'a>),
    Follow(Pending),
    Busy,
}

impl OAuthProxy {
    fn cimd(&self) -> &Cimd {
        self.cimd.as_ref().expect("CIMD is enabled")
    }

    /// Whether `client_id` names a metadata document (CIMD on and an `https://` id).
    pub(super) fn is_cimd_client_id(&self, client_id: &str) -> bool {
        self.cimd.is_some() && cimd_document::is_url_client_id(client_id)
    }

    /// The client a metadata-document URL describes: from the cache, else fetched (see the module docs).
    /// Errors: `invalid_client` naming the rule the URL or document broke; `temporarily_unavailable` when the
    /// document cannot be fetched now and no live copy is cached.
    pub(super) async fn cimd_client(&self, client_id: &str) -> Outcome {
        let url = cimd_document::check_url(client_id).map_err(OAuthError::invalid_client)?;
        let key = format!("cimd:{}", sha256_hex(client_id));
        let cached: Option<CachedDocument> = self
            .get_json::<CachedDocument>(&key)
            .await?
            .filter(|c| c.client_id == client_id);
        if let Some(c) = cached.as_ref().filter(|c| crate::jwt::unix_now() < c.fresh_until) {
            return Ok(c.client());
        }
        for _ in 0..3 {
            let host = host_key(&url);
            let role = {
                let mut m = lock(&self.cimd().in_flight);
                match m.get(client_id) {
                    Some((_, rx)) => Role::Follow(rx.clone()),
                    None if m.len() >= MAX_FETCHES_IN_FLIGHT
                        || m.values().filter(|(h, _)| *h == host).count() >= MAX_FETCHES_PER_HOST =>
                    {
                        Role::Busy
                    }
                    None => {
                        let (tx, rx) = watch::channel(None);
                        m.insert(client_id.to_owned(), (host, rx));
                        Role::Lead(Flight {
                            cimd: self.cimd(),
                            id: client_id.to_owned(),
                            tx,
                        })
                    }
                }
            };
            match role {
                Role::Busy => {
                    if let Some(c) = &cached {
                        // Stale but live: better than refusing (found by the red-team pass).
                        return Ok(c.client());
                    }
                    return Err(OAuthError::new(
                        "temporarily_unavailable",
                        "too many client metadata documents are being fetched; try again",
                    )
                    .with_status(503));
                }
                Role::Follow(mut rx) => {
                    if let Ok(v) = rx.wait_for(Option::is_some).await {
                        if let Some(outcome) = v.as_ref() {
                            return outcome.clone();
                        }
                    }
                    // The leader was cancelled before it finished: try again (perhaps leading now).
                }
                Role::Lead(flight) => {
                    let outcome = self.cimd_refresh(&url, &key, cached).await;
                    flight.tx.send_replace(Some(outcome.clone()));
                    return outcome;
                }
            }
        }
        Err(OAuthError::new(
            "temporarily_unavailable",
            "the client metadata document could not be fetched; try again",
        )
        .with_status(503))
    }

    /// Fetches the document, stores or drops the cached copy, and decides what a failure means.
    async fn cimd_refresh(&self, url: &Url, key: &str, cached: Option<CachedDocument>) -> Outcome {
        let client_id = url.as_str();
        let fetched = self.cimd().fetch(url).await;
        let outcome = match &fetched {
            Ok(_) => "ok",
            Err(FetchError::Refused(_)) => "refused",
            Err(FetchError::Rejected(_)) => "rejected",
            Err(FetchError::Unreachable(_)) => "unreachable",
            Err(FetchError::Unavailable(_)) => "unavailable",
        };
        super::metrics::Metrics::count(&self.metrics.cimd_fetches, "outcome", outcome);
        match fetched {
            Ok((doc, fresh)) => {
                let now = crate::jwt::unix_now();
                let entry = CachedDocument {
                    client_id: client_id.to_owned(),
                    redirect_uris: doc.redirect_uris,
                    metadata: doc.metadata,
                    fetched_at: now,
                    fresh_until: now + fresh,
                };
                let lifetime = self.cimd().options.max_cache_ttl.max(fresh).max(1);
                if let Err(e) = self.save_json(key, &entry, lifetime).await {
                    // The document is good; only the next request pays for a fetch again.
                    tracing::warn!(error = %e, "could not cache a client metadata document");
                }
                Ok(entry.client())
            }
            Err(e) if e.is_transient() && cached.is_some() => {
                tracing::warn!(
                    reason = e.message(),
                    "client metadata document fetch failed; using the cached copy"
                );
                Ok(cached.map(|c| c.client()).expect("cached"))
            }
            Err(e) => {
                if cached.is_some() {
                    self.delete_best_effort(key).await;
                }
                tracing::info!(reason = e.message(), "client metadata document refused");
                let description = if e.message().starts_with("client metadata document") {
                    e.message().to_owned()
                } else {
                    format!("client metadata document: {}", e.message())
                };
                Err(if e.is_transient() {
                    OAuthError::new("temporarily_unavailable", description).with_status(503)
                } else {
                    OAuthError::invalid_client(description)
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_freshness() {
        let o = CimdOptions::default(); // 3600 default, 60..=86400
        #[rustfmt::skip]
        let table: &[(Option<&str>, u64)] = &[
            (None, 3600),
            (Some(""), 3600),
            (Some("max-age=300"), 300),
            (Some("public, max-age=600"), 600),
            (Some("Max-Age=900"), 900),
            (Some("max-age=\"120\""), 120),
            (Some("max-age=5"), 60),
            (Some("max-age=0"), 60),
            (Some("max-age=31536000"), 86_400),
            (Some("max-age=99999999999999999999999"), 60),
            (Some("max-age=-5"), 60),
            (Some("max-age=abc"), 60),
            (Some("no-store"), 60),
            (Some("no-cache, max-age=600"), 60),
            (Some("private"), 3600),
        ];
        for (cc, want) in table {
            assert_eq!(freshness(*cc, &o), *want, "{cc:?}");
        }
    }
}
