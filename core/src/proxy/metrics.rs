//! The proxy's Prometheus metrics (the production checklist's "monitor"): what an operator pages on, as text
//! exposition (`OAuthProxy::metrics_text`, one registry per proxy). No label ever carries a token, a secret, a
//! user, a client id or an address: label values are fixed words from the code, so cardinality is bounded. The one
//! exception is opt-in (`metrics_client_ids`): tokens issued per client id, capped at 1,000 series.
//!
//! | metric | labels |
//! |---|---|
//! | `fastmcp_auth_tokens_issued_total` | `grant` (`authorization_code`, `refresh_token`) |
//! | `fastmcp_auth_codes_total` | `outcome` (`redeemed`, `replayed`, `unknown_or_expired`, `refused`: PKCE or client mismatch) |
//! | `fastmcp_auth_refresh_total` | `outcome` (`rotated`, `grace_reuse`, `replay_revoked`, `refused`) |
//! | `fastmcp_auth_upstream_requests_total`, `fastmcp_auth_upstream_request_duration_seconds` | `grant`, `outcome` (`ok`, `refused`, `failed`) / `grant` |
//! | `fastmcp_auth_store_operations_total`, `fastmcp_auth_store_operation_duration_seconds` | `op`, `outcome` (`ok`, `error`) / `op` |
//! | `fastmcp_auth_rate_limited_total` | `endpoint` |
//! | `fastmcp_auth_rate_limit_store_errors_total` (the limits' store failed; requests let through) | — |
//! | `fastmcp_auth_consent_total` | `outcome` (`approved`, `denied`, `binding_failed`) |
//! | `fastmcp_auth_registrations_total` | — |
//! | `fastmcp_auth_client_metadata_fetches_total` | `outcome` (`ok`, `refused`, `rejected`, `unreachable`, `unavailable`) |
//! | `fastmcp_auth_store_sweeps_total`, `…_store_sweep_scanned_entries_total`, `…_store_sweep_removed_entries_total`, `…_store_sweep_duration_seconds` | `store` (`memory`, `disk`); process-wide |

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use serde_json::Value;

use crate::store::{RateLimitAnswer, Store, SyncStore};

type L1 = [(&'static str, &'static str); 1];
type L2 = [(&'static str, &'static str); 2];
type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn seconds_histogram() -> Histogram {
    // 0.5 ms … ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The proxy's counters and histograms.
pub(super) struct Metrics {
    registry: Registry,
    pub tokens_issued: Family<L1, Counter>,
    pub codes: Family<L1, Counter>,
    pub refresh: Family<L1, Counter>,
    pub upstream: Family<L2, Counter>,
    pub upstream_seconds: Histograms<L1>,
    pub store_ops: Family<L2, Counter>,
    pub store_seconds: Histograms<L1>,
    pub rate_limited: Family<L1, Counter>,
    pub consent: Family<L1, Counter>,
    pub registrations: Counter,
    pub cimd_fetches: Family<L1, Counter>,
    /// Tokens issued per client, when the operator opted in (`metrics_client_ids`).
    by_client: Option<ByClient>,
}

/// Most client ids given their own series; later ones share `client_id="(other)"` (no cleaned client id has parentheses).
const MAX_CLIENT_SERIES: usize = 1000;

struct ByClient {
    family: Family<Vec<(&'static str, String)>, Counter>,
    seen: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl Metrics {
    /// Registers the rate limiter's store-error counter (kept by the limiter itself).
    pub(super) fn register_rate_limit_errors(&mut self, c: Counter) {
        self.registry.register(
            "rate_limit_store_errors",
            "Rate-limit counts the store failed to take (the requests were let through)",
            c,
        );
    }

    /// Opts in to `tokens_issued_by_client` (config `metrics_client_ids`).
    pub(super) fn register_by_client(&mut self) {
        let family = Family::default();
        self.registry.register(
            "tokens_issued_by_client",
            "Tokens issued, by client and grant (opt-in; the first 1000 client ids, then \"(other)\": no cleaned client id can be that)",
            family.clone(),
        );
        self.by_client = Some(ByClient {
            family,
            seen: Default::default(),
        });
    }

    /// Counts an issued token for `client_id` when opted in.
    pub(super) fn issued_to(&self, client_id: &str, grant: &'static str) {
        let Some(b) = &self.by_client else { return };
        // A label value is printed inside quotes: only characters that need no escaping, at most 256.
        let clean: String = client_id
            .chars()
            .take(256)
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._:/-~".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let label = {
            let mut seen = b.seen.lock().unwrap_or_else(|p| p.into_inner());
            if seen.contains(&clean) || seen.len() < MAX_CLIENT_SERIES {
                seen.insert(clean.clone());
                clean
            } else {
                "(other)".to_owned()
            }
        };
        b.family
            .get_or_create(&vec![("client_id", label), ("grant", grant.to_owned())])
            .inc();
    }

    pub(super) fn new() -> Metrics {
        let mut registry = Registry::with_prefix("fastmcp_auth");
        let m = Metrics {
            registry: Registry::default(),
            tokens_issued: Family::default(),
            codes: Family::default(),
            refresh: Family::default(),
            upstream: Family::default(),
            upstream_seconds: Family::new_with_constructor(seconds_histogram as fn() -> Histogram),
            store_ops: Family::default(),
            store_seconds: Family::new_with_constructor(seconds_histogram as fn() -> Histogram),
            rate_limited: Family::default(),
            consent: Family::default(),
            registrations: Counter::default(),
            cimd_fetches: Family::default(),
            by_client: None,
        };
        registry.register(
            "tokens_issued",
            "Tokens issued to clients, by grant",
            m.tokens_issued.clone(),
        );
        registry.register(
            "codes",
            "Authorization codes presented, by outcome",
            m.codes.clone(),
        );
        registry.register(
            "refresh",
            "Refresh token presentations, by outcome",
            m.refresh.clone(),
        );
        registry.register(
            "upstream_requests",
            "Requests to the upstream token endpoint",
            m.upstream.clone(),
        );
        registry.register(
            "upstream_request_duration_seconds",
            "Latency of upstream token requests",
            m.upstream_seconds.clone(),
        );
        registry.register(
            "store_operations",
            "Storage operations, by operation and outcome",
            m.store_ops.clone(),
        );
        registry.register(
            "store_operation_duration_seconds",
            "Latency of storage operations",
            m.store_seconds.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests refused by a rate limit (429)",
            m.rate_limited.clone(),
        );
        registry.register("consent", "Consent form outcomes", m.consent.clone());
        registry.register(
            "registrations",
            "Dynamic client registrations",
            m.registrations.clone(),
        );
        registry.register(
            "client_metadata_fetches",
            "Client ID Metadata Document fetches, by outcome",
            m.cimd_fetches.clone(),
        );
        let sweeps = crate::store::sweep_stats().clone();
        registry.register(
            "store_sweeps",
            "Expiry sweeps of MemoryStore and DiskStore in this process (background or cleanup())",
            sweeps.runs,
        );
        registry.register(
            "store_sweep_scanned_entries",
            "Entries the sweeps looked at (DiskStore: every file on a full scan, the index's expired ones otherwise)",
            sweeps.scanned,
        );
        registry.register(
            "store_sweep_removed_entries",
            "Expired entries the sweeps removed",
            sweeps.removed,
        );
        registry.register(
            "store_sweep_duration_seconds",
            "Duration of the expiry sweeps",
            sweeps.seconds,
        );
        Metrics { registry, ..m }
    }

    /// The Prometheus text exposition (OpenMetrics text, `# EOF` at the end).
    pub(super) fn text(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    pub(super) fn count(family: &Family<L1, Counter>, key: &'static str, value: &'static str) {
        family.get_or_create(&[(key, value)]).inc();
    }

    pub(super) fn upstream_call(&self, grant: &'static str, outcome: &'static str, took: Duration) {
        self.upstream
            .get_or_create(&[("grant", grant), ("outcome", outcome)])
            .inc();
        self.upstream_seconds
            .get_or_create(&[("grant", grant)])
            .observe(took.as_secs_f64());
    }
}

/// The proxy's store, counted and timed per operation.
pub(super) struct MeteredStore {
    pub inner: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
}

impl MeteredStore {
    /// Runs one store operation, counting its outcome and timing it.
    async fn timed<T>(
        &self,
        op: &'static str,
        run: impl std::future::Future<Output = crate::Result<T>>,
    ) -> crate::Result<T> {
        let started = Instant::now();
        let r = run.await;
        self.record(op, r.is_ok(), started);
        r
    }

    fn record(&self, op: &'static str, ok: bool, started: Instant) {
        let outcome = if ok { "ok" } else { "error" };
        self.metrics
            .store_ops
            .get_or_create(&[("op", op), ("outcome", outcome)])
            .inc();
        self.metrics
            .store_seconds
            .get_or_create(&[("op", op)])
            .observe(started.elapsed().as_secs_f64());
    }
}

impl MeteredStore {
    fn timed_sync<T>(
        &self,
        op: &'static str,
        run: impl FnOnce(&dyn SyncStore) -> crate::Result<T>,
    ) -> crate::Result<T> {
        let started = Instant::now();
        let r = match self.inner.as_sync() {
            Some(s) => run(s),
            None => Err(crate::Error::Task("the store has no synchronous face".into())),
        };
        self.record(op, r.is_ok(), started);
        r
    }
}

/// Only reachable through `as_sync`, which answers `Some` only when the store below has a synchronous face.
impl SyncStore for MeteredStore {
    fn save_sync(&self, key: &str, value: Value, ttl: Option<Duration>) -> crate::Result<()> {
        self.timed_sync("save", |s| s.save_sync(key, value, ttl))
    }
    fn get_sync(&self, key: &str) -> crate::Result<Option<Value>> {
        self.timed_sync("get", |s| s.get_sync(key))
    }
    fn get_nowait(&self, key: &str) -> Option<crate::Result<Option<Value>>> {
        // Counted only when answered (a `None` is retried through `get_sync`, which counts itself).
        let started = Instant::now();
        let r = self.inner.as_sync()?.get_nowait(key)?;
        self.record("get", r.is_ok(), started);
        Some(r)
    }
    fn delete_sync(&self, key: &str) -> crate::Result<bool> {
        self.timed_sync("delete", |s| s.delete_sync(key))
    }
    fn take_sync(&self, key: &str) -> crate::Result<Option<Value>> {
        self.timed_sync("take", |s| s.take_sync(key))
    }
    fn cleanup_sync(&self) -> crate::Result<u64> {
        self.timed_sync("cleanup", |s| s.cleanup_sync())
    }
    fn size_sync(&self) -> crate::Result<u64> {
        self.timed_sync("size", |s| s.size_sync())
    }
    fn keys_sync(&self) -> crate::Result<Vec<String>> {
        self.timed_sync("keys", |s| s.keys_sync())
    }
    fn replace_sync(
        &self,
        key: &str,
        expected: &Value,
        new: Value,
    ) -> crate::Result<Option<crate::store::Replaced>> {
        self.timed_sync("replace", |s| s.replace_sync(key, expected, new))
    }
}

#[async_trait::async_trait]
impl Store for MeteredStore {
    async fn save(&self, key: &str, value: Value, ttl: Option<Duration>) -> crate::Result<()> {
        self.timed("save", self.inner.save(key, value, ttl)).await
    }
    async fn get(&self, key: &str) -> crate::Result<Option<Value>> {
        self.timed("get", self.inner.get(key)).await
    }
    async fn delete(&self, key: &str) -> crate::Result<bool> {
        self.timed("delete", self.inner.delete(key)).await
    }
    async fn take(&self, key: &str) -> crate::Result<Option<Value>> {
        self.timed("take", self.inner.take(key)).await
    }
    async fn cleanup(&self) -> crate::Result<u64> {
        self.timed("cleanup", self.inner.cleanup()).await
    }
    async fn size(&self) -> crate::Result<u64> {
        self.inner.size().await
    }
    async fn keys(&self) -> crate::Result<Vec<String>> {
        self.inner.keys().await
    }
    /// The synchronous face of the store below, counted and timed like the async one.
    fn as_sync(&self) -> Option<&dyn SyncStore> {
        self.inner.as_sync().map(|_| self as &dyn SyncStore)
    }
    fn completes_inline(&self) -> bool {
        self.inner.completes_inline()
    }
    async fn rate_limit(
        &self,
        key: &str,
        period: Duration,
        burst: u32,
        cost: u32,
        partial: bool,
    ) -> crate::Result<Option<RateLimitAnswer>> {
        self.inner.rate_limit(key, period, burst, cost, partial).await
    }
    async fn replace(
        &self,
        key: &str,
        expected: &Value,
        new: Value,
    ) -> crate::Result<Option<crate::store::Replaced>> {
        self.timed("replace", self.inner.replace(key, expected, new))
            .await
    }
    fn close(&self) {
        self.inner.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_opt_in_cleaned_and_capped() {
        let mut m = Metrics::new();
        m.issued_to("c1", "refresh_token");
        assert!(!m.text().contains("c1"), "off by default");
        m.register_by_client();
        m.issued_to("c1", "authorization_code");
        m.issued_to("c1", "authorization_code");
        m.issued_to("https://app.example/cl\"ient\n", "refresh_token");
        for i in 0..MAX_CLIENT_SERIES + 10 {
            m.issued_to(&format!("x{i}"), "refresh_token");
        }
        let t = m.text();
        assert!(
            t.contains(
                "fastmcp_auth_tokens_issued_by_client_total{client_id=\"c1\",grant=\"authorization_code\"} 2"
            ),
            "{t}"
        );
        assert!(t.contains("client_id=\"https://app.example/cl_ient_\""), "{t}");
        assert!(
            t.contains(
                "fastmcp_auth_tokens_issued_by_client_total{client_id=\"(other)\",grant=\"refresh_token\"} 12"
            ),
            "{t}"
        );
        let series = t
            .lines()
            .filter(|l| l.starts_with("fastmcp_auth_tokens_issued_by_client_total"))
            .count();
        assert_eq!(series, MAX_CLIENT_SERIES + 1);
    }
}
