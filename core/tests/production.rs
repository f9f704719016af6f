//! The production checklist at construction (weak or missing keys, plain http) and the readiness check.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fastmcp_auth::blocking::OAuthProxy;
use fastmcp_auth::proxy::OAuthProxyConfig;
use fastmcp_auth::store::{async_trait, MemoryStore, Store, Value};
use fastmcp_auth::{RedisStore, RedisStoreOptions};
use fastmcp_auth_mock_idp::redis_server::RedisServer;

const STRONG_JWT: &str = "kQ3v9Zt2Lr8WmX1pYc7HsN4bJd6Fg0Ae";
const STRONG_ENC: &str = "s8K2-x_V9qP4mZ7tR1wY6nB3cF5hJ0gL2dA8eU4iO";

fn config(base: &str) -> OAuthProxyConfig {
    let mut c = OAuthProxyConfig::new(
        base,
        "https://idp.example.com/authorize",
        "https://idp.example.com/token",
        "upstream",
        "secret",
    );
    c.jwt_signing_key = Some(STRONG_JWT.into());
    c.encryption_key = Some(STRONG_ENC.into());
    c
}

/// A change to a good configuration.
type Change = Box<dyn Fn(&mut OAuthProxyConfig)>;

#[test]
fn findings_name_the_option_never_the_value() {
    assert!(OAuthProxy::new(config("https://mcp.example.com"))
        .unwrap()
        .as_async()
        .config_warnings()
        .is_empty());
    assert!(OAuthProxy::new(config("http://127.0.0.1:8000"))
        .unwrap()
        .as_async()
        .config_warnings()
        .is_empty());
    #[rustfmt::skip]
    let table: Vec<(&str, Change, &str)> = vec![
        ("weak signing key", Box::new(|c| c.jwt_signing_key = Some("my-dev-key-1".into())), "jwt_signing_key is weak: shorter than 32 bytes"),
        ("placeholder encryption key", Box::new(|c| c.encryption_key = Some("please-change-me-before-deploying-this-1234".into())), "encryption_key is weak: contains a placeholder"),
        ("repeated character", Box::new(|c| c.jwt_signing_key = Some("x".repeat(64))), "fewer than 8 distinct"),
        ("weak previous key", Box::new(|c| c.previous_jwt_signing_keys = vec![STRONG_JWT.into(), "old".into()]), "previous_jwt_signing_keys[1] is weak"),
        ("no signing key", Box::new(|c| c.jwt_signing_key = None), "jwt_signing_key is not set"),
        ("no encryption key", Box::new(|c| c.encryption_key = None), "encryption_key is not set"),
        ("http base_url", Box::new(|c| c.base_url = "http://mcp.example.com".into()), "base_url is plain http"),
        ("http upstream", Box::new(|c| c.upstream_token_endpoint = "http://idp.example.com/token".into()), "upstream_token_endpoint is plain http"),
        ("one key for both", Box::new(|c| c.encryption_key = Some(STRONG_JWT.into())), "jwt_signing_key and encryption_key are the same key"),
    ];
    for (name, change, want) in table {
        let mut c = config("https://mcp.example.com");
        change(&mut c);
        let warnings = OAuthProxy::new(c.clone())
            .unwrap()
            .as_async()
            .config_warnings()
            .to_vec();
        assert!(warnings.iter().any(|w| w.contains(want)), "{name}: {warnings:?}");
        c.strict = true;
        if want.starts_with("previous_") {
            // A weak key being rotated away: a warning, never a refusal.
            OAuthProxy::new(c.clone()).unwrap();
            continue;
        }
        let e = OAuthProxy::new(c.clone()).unwrap_err().to_string();
        assert!(
            e.starts_with("invalid argument: strict: ") || e.contains("strict: "),
            "{name}: {e}"
        );
        assert!(e.contains(want), "{name}: {e}");
        for secret in [c.jwt_signing_key.as_deref(), c.encryption_key.as_deref()]
            .into_iter()
            .flatten()
        {
            assert!(!e.contains(secret), "{name}: the error shows a key");
        }
    }
    // Keys not needed are not asked for: passthrough has no signing key, encryption off has no encryption key.
    let mut c = config("https://mcp.example.com");
    (
        c.enable_token_swap,
        c.jwt_signing_key,
        c.encryption_disabled,
        c.encryption_key,
        c.strict,
    ) = (false, None, true, None, true);
    OAuthProxy::new(c).unwrap();
    // The JSON config takes `strict`.
    let j = serde_json::json!({
        "base_url": "http://mcp.example.com", "upstream_authorization_endpoint": "https://idp.example.com/a",
        "upstream_token_endpoint": "https://idp.example.com/t", "upstream_client_id": "c", "strict": true,
        "jwt_signing_key": STRONG_JWT, "encryption_key": STRONG_ENC,
    });
    let e = OAuthProxy::new(OAuthProxyConfig::from_json(&j).unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("base_url is plain http"), "{e}");
}

/// A store that never answers.
struct Hanging;

#[async_trait]
impl Store for Hanging {
    async fn save(&self, _: &str, _: Value, _: Option<Duration>) -> fastmcp_auth::Result<()> {
        std::future::pending().await
    }
    async fn get(&self, _: &str) -> fastmcp_auth::Result<Option<Value>> {
        std::future::pending().await
    }
    async fn delete(&self, _: &str) -> fastmcp_auth::Result<bool> {
        std::future::pending().await
    }
    async fn take(&self, _: &str) -> fastmcp_auth::Result<Option<Value>> {
        std::future::pending().await
    }
    async fn cleanup(&self) -> fastmcp_auth::Result<u64> {
        Ok(0)
    }
    async fn size(&self) -> fastmcp_auth::Result<u64> {
        Ok(0)
    }
    async fn keys(&self) -> fastmcp_auth::Result<Vec<String>> {
        Ok(vec![])
    }
}

fn with_store(store: Arc<dyn Store>) -> OAuthProxy {
    let mut c = config("https://mcp.example.com");
    c.token_storage = Some(store);
    OAuthProxy::new(c).unwrap()
}

#[test]
fn health_reports_the_store() {
    let memory: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let p = with_store(memory.clone());
    let h = p.health(Duration::from_secs(2)).unwrap();
    assert!(h.ok && h.store == "ok" && h.warnings.is_empty(), "{h:?}");
    assert_eq!(
        memory.as_sync().unwrap().size_sync().unwrap(),
        0,
        "the probe is deleted"
    );
    // A closed store.
    memory.close();
    let h = p.health(Duration::from_secs(2)).unwrap();
    assert!(
        !h.ok && h.store.contains("the store failed (store_closed)"),
        "{h:?}"
    );
    // A store that hangs: not ready, within the timeout.
    let p = with_store(Arc::new(Hanging));
    let started = Instant::now();
    let h = p.health(Duration::from_millis(300)).unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        (h.ok, h.store.as_str()),
        (false, "the store did not answer within 300 ms")
    );
    assert_eq!(h.to_json()["ok"], false);
}

#[test]
fn health_follows_redis() {
    let mut redis = RedisServer::start();
    let mut o = RedisStoreOptions::new(redis.url());
    o.response_timeout = Duration::from_millis(500);
    o.connection_timeout = Duration::from_millis(300);
    o.reconnect_retries = 1;
    let p = with_store(Arc::new(RedisStore::open_blocking(o).unwrap()));
    assert!(p.health(Duration::from_secs(2)).unwrap().ok);
    redis.kill();
    let started = Instant::now();
    let h = p.health(Duration::from_secs(2)).unwrap();
    assert!(!h.ok && started.elapsed() < Duration::from_secs(3), "{h:?}");
    // The rate limits cannot count in a Redis that is down: the request is let through (and then fails on the
    // store itself with 503), and the metrics say so.
    let reg = serde_json::json!({"redirect_uris": ["http://127.0.0.1:33418/cb"]});
    let e = p.register_client_from(&reg, Some("198.51.100.7")).unwrap_err();
    assert_eq!(e.status, 503, "{e:?}");
    let text = p.as_async().metrics_text();
    assert!(
        text.contains("fastmcp_auth_rate_limit_store_errors_total 1"),
        "{text}"
    );
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !p.health(Duration::from_secs(1)).unwrap().ok {
        assert!(Instant::now() < deadline, "health did not come back with Redis");
        std::thread::sleep(Duration::from_millis(100));
    }
}
