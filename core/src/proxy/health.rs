//! Readiness: whether the proxy can do its work now (the production checklist's "monitor storage"), for a
//! readiness probe. One round trip through the store — write, read back, delete a probe entry with a short TTL —
//! under a timeout: a RedisStore that cannot reach Redis, a DiskStore whose directory is not writable (or whose
//! disk is full), or a store that hangs all answer "not ready" within the timeout.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::provider::{random_id, OAuthProxy};

/// What [`OAuthProxy::health`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    /// Ready to serve.
    pub ok: bool,
    /// `"ok"`, or what failed (a fixed text; the store's own error is logged).
    pub store: String,
    /// How long the store round trip took, in milliseconds.
    pub latency_ms: u64,
    /// The production checklist's findings (see [`OAuthProxy::config_warnings`]).
    pub warnings: Vec<String>,
}

impl Health {
    /// `{"ok", "store", "latency_ms", "warnings"}`.
    pub fn to_json(&self) -> Value {
        json!({"ok": self.ok, "store": self.store, "latency_ms": self.latency_ms, "warnings": self.warnings})
    }
}

impl OAuthProxy {
    /// Checks the store with one write/read/delete round trip of a probe entry (`health:<random>`, 60 s TTL)
    /// within `timeout` (the whole round trip).
    pub async fn health(&self, timeout: Duration) -> Health {
        let started = Instant::now();
        let key = format!("health:{}", random_id());
        let probe = json!({"probe": true});
        let round_trip = async {
            self.store
                .save(&key, probe.clone(), Some(Duration::from_secs(60)))
                .await?;
            let back = self.store.get(&key).await?;
            self.store.delete(&key).await?;
            Ok::<bool, crate::Error>(back.as_ref() == Some(&probe))
        };
        let store = match tokio::time::timeout(timeout, round_trip).await {
            Ok(Ok(true)) => "ok".to_owned(),
            Ok(Ok(false)) => "the store did not give back what was written".to_owned(),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "health: the store failed");
                format!("the store failed ({})", e.code().as_str())
            }
            Err(_) => format!("the store did not answer within {} ms", timeout.as_millis()),
        };
        Health {
            ok: store == "ok",
            store,
            latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            warnings: self.config_warnings().to_vec(),
        }
    }
}
