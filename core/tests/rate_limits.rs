//! Rate limits of the proxy's endpoints: floods cut to the configured rate with 429 and `Retry-After`, normal
//! traffic beside them untouched, failures costing extra, and one limit shared by two processes on one real Redis.

use std::sync::Arc;
use std::time::Instant;

use fastmcp_auth::blocking::OAuthProxy;
use fastmcp_auth::proxy::{
    AuthorizeParams, Limit, OAuthProxyConfig, RateLimits, RevocationRequest, TokenRequest,
};
use fastmcp_auth::{RedisStore, RedisStoreOptions};
use fastmcp_auth_mock_idp::redis_server::RedisServer;
use serde_json::json;

const BASE: &str = "http://127.0.0.1:8000";

fn config() -> OAuthProxyConfig {
    let mut c = OAuthProxyConfig::new(
        BASE,
        "http://127.0.0.1:9/authorize",
        "http://127.0.0.1:9/token",
        "upstream",
        "secret",
    );
    c.jwt_signing_key = Some("rate-limit-test-signing-key".into());
    c.encryption_key = Some("rate-limit-test-encryption-key".into());
    c
}

fn registration() -> serde_json::Value {
    json!({"redirect_uris": ["http://127.0.0.1:33418/callback"], "token_endpoint_auth_method": "none"})
}

/// Registers `n` clients from `addr`; how many were accepted, and every refusal checked for shape.
fn register_flood(p: &OAuthProxy, addr: Option<&str>, n: usize) -> usize {
    let mut accepted = 0;
    for _ in 0..n {
        match p.register_client_from(&registration(), addr) {
            Ok(_) => accepted += 1,
            Err(e) => {
                assert_eq!(
                    (e.code.as_str(), e.status),
                    ("temporarily_unavailable", 429),
                    "{e:?}"
                );
                let wait = e.retry_after.expect("Retry-After");
                assert!((1..=60).contains(&wait), "{wait}");
                assert_eq!(e.headers(), vec![("Retry-After".to_owned(), wait.to_string())]);
            }
        }
    }
    accepted
}

#[test]
fn a_registration_flood_is_cut_to_the_rate_and_others_still_register() {
    let p = OAuthProxy::new(config()).unwrap(); // defaults: 30 per minute, burst 30, per address
    let started = Instant::now();
    let accepted = register_flood(&p, Some("198.51.100.7"), 10_000);
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    let allowed = 30.0 + 30.0 * minutes + 1.0;
    assert!(
        accepted as f64 <= allowed && accepted >= 30,
        "{accepted} accepted in {minutes:.3} min"
    );
    // Another address is not affected, during or after the flood.
    assert_eq!(register_flood(&p, Some("203.0.113.9"), 5), 5);
    // Without an address, registrations share one limit of their own.
    assert_eq!(register_flood(&p, None, 30), 30);
    assert_eq!(register_flood(&p, None, 1), 0);
}

#[test]
fn bad_token_requests_are_cut_and_cost_extra_while_others_are_served() {
    let mut c = config();
    c.rate_limits.token = Some(Limit {
        per_minute: 60,
        burst: 20,
    });
    let p = OAuthProxy::new(c).unwrap();
    let attacker = p.register_client(&registration()).unwrap()["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let victim = p.register_client(&registration()).unwrap()["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let guess = |client: &str, addr: &str| TokenRequest {
        grant_type: Some("authorization_code".into()),
        code: Some("guessed-code".into()),
        code_verifier: Some("v".repeat(43)),
        client_id: Some(client.into()),
        remote_addr: Some(addr.into()),
        ..Default::default()
    };
    let (mut answered, mut limited) = (0, 0);
    for _ in 0..10_000 {
        match p.token(&guess(&attacker, "198.51.100.7")) {
            Err(e) if e.code == "invalid_grant" => answered += 1,
            Err(e) => {
                assert_eq!((e.code.as_str(), e.status), ("slow_down", 429), "{e:?}");
                assert!(e.retry_after.is_some_and(|s| s >= 1));
                limited += 1;
            }
            Ok(_) => panic!("a guessed code was accepted"),
        }
    }
    // Each failure costs 1 + 5 cells of the burst of 20: at most 4 guesses get an answer (plus what the rate
    // replenishes meanwhile), the rest are refused without being looked at.
    assert!(answered <= 6, "{answered} answered");
    assert_eq!(answered + limited, 10_000);
    // Another client from another address is served.
    let e = p.token(&guess(&victim, "203.0.113.9")).unwrap_err();
    assert_eq!(e.code, "invalid_grant");
    // The attacker named its own client id; naming the victim's instead would not lock the victim out either: with
    // an address, the address is the only key (a client id is merely named by the request).
    for _ in 0..50 {
        let _ = p.token(&guess(&victim, "198.51.100.7"));
    }
    assert_eq!(
        p.token(&guess(&victim, "192.0.2.55")).unwrap_err().code,
        "invalid_grant"
    );
    // Without an address (a host that passes none), the named client id is the key.
    let mut no_addr = guess(&attacker, "");
    no_addr.remote_addr = None;
    let codes: Vec<String> = (0..5).map(|_| p.token(&no_addr).unwrap_err().code).collect();
    assert_eq!(codes[..4], ["invalid_grant"; 4]);
    assert_eq!(codes[4], "slow_down");
}

#[test]
fn every_endpoint_answers_429_and_each_can_be_turned_off() {
    let tight = Limit {
        per_minute: 1,
        burst: 1,
    };
    let mut c = config();
    c.rate_limits = RateLimits {
        register: Some(tight),
        authorize: Some(tight),
        consent: Some(tight),
        callback: Some(tight),
        token: Some(tight),
        revoke: Some(tight),
        ..Default::default()
    };
    let p = OAuthProxy::new(c.clone()).unwrap();
    let addr = Some("198.51.100.7");
    let authorize = AuthorizeParams {
        client_id: Some("nobody".into()),
        ..Default::default()
    }
    .with_remote_addr(addr);
    let consent = fastmcp_auth::proxy::ConsentParams::default().with_remote_addr(addr);
    let callback = fastmcp_auth::proxy::CallbackParams::default().with_remote_addr(addr);
    let token = TokenRequest {
        grant_type: Some("refresh_token".into()),
        client_id: Some("nobody".into()),
        ..Default::default()
    }
    .with_remote_addr(addr);
    let revoke = RevocationRequest {
        token: Some("t".into()),
        client_id: Some("nobody".into()),
        ..Default::default()
    }
    .with_remote_addr(addr);
    for round in 0..2 {
        let errors = [
            ("authorize", p.authorize(&authorize).unwrap_err()),
            ("consent", p.handle_consent(&consent).unwrap_err()),
            ("callback", p.handle_callback(&callback).unwrap_err()),
            ("token", p.token(&token).unwrap_err()),
            ("revoke", p.revoke_request(&revoke).unwrap_err()),
        ];
        for (name, e) in errors {
            // The first request of each is answered on its merits; the second is refused.
            assert_eq!(e.status == 429, round == 1, "{name} round {round}: {e:?}");
            if round == 1 {
                let code = if matches!(name, "token" | "revoke") {
                    "slow_down"
                } else {
                    "temporarily_unavailable"
                };
                assert_eq!(e.code, code, "{name}");
                assert!(
                    e.retry_after.is_some_and(|s| (1..=60).contains(&s)),
                    "{name}: {e:?}"
                );
            }
        }
    }
    // Off: all of them, or one.
    c.rate_limits.enabled = false;
    let off = OAuthProxy::new(c.clone()).unwrap();
    for _ in 0..5 {
        assert_ne!(off.authorize(&authorize).unwrap_err().status, 429);
    }
    c.rate_limits.enabled = true;
    c.rate_limits.authorize = None;
    let one_off = OAuthProxy::new(c).unwrap();
    for _ in 0..5 {
        assert_ne!(one_off.authorize(&authorize).unwrap_err().status, 429);
    }
    assert_eq!(one_off.handle_consent(&consent).unwrap_err().status, 400);
    assert_eq!(one_off.handle_consent(&consent).unwrap_err().status, 429);
}

#[test]
fn config_from_json() {
    let mut j = json!({
        "base_url": BASE,
        "upstream_authorization_endpoint": "http://127.0.0.1:9/a",
        "upstream_token_endpoint": "http://127.0.0.1:9/t",
        "upstream_client_id": "c",
        "rate_limits": {"register": {"per_minute": 5, "burst": 2}, "token": false, "failure_cost": 2},
    });
    let c = OAuthProxyConfig::from_json(&j).unwrap();
    assert_eq!(
        c.rate_limits.register,
        Some(Limit {
            per_minute: 5,
            burst: 2
        })
    );
    assert_eq!((c.rate_limits.token, c.rate_limits.failure_cost), (None, 2));
    j["rate_limits"] = json!({"tokn": false});
    assert!(OAuthProxyConfig::from_json(&j)
        .unwrap_err()
        .to_string()
        .contains("rate_limits.tokn"));
}

fn redis_proxy(url: &str) -> OAuthProxy {
    let store = RedisStore::open_blocking(RedisStoreOptions::new(url)).unwrap();
    let mut c = config();
    c.token_storage = Some(Arc::new(store));
    c.rate_limits.register = Some(Limit {
        per_minute: 1,
        burst: 10,
    });
    c.rate_limits.token = Some(Limit {
        per_minute: 1,
        burst: 10,
    });
    OAuthProxy::new(c).unwrap()
}

/// Run by `two_processes_on_one_redis_share_one_limit` in a child process (skipped otherwise).
#[test]
#[ignore = "run as a child process by two_processes_on_one_redis_share_one_limit"]
fn rate_limit_child() {
    let Ok(url) = std::env::var("RATE_LIMIT_CHILD_REDIS") else {
        return;
    };
    let p = redis_proxy(&url);
    println!("child accepted {}", register_flood(&p, Some("198.51.100.7"), 10));
}

#[test]
fn two_processes_on_one_redis_share_one_limit() {
    let redis = RedisServer::start();
    let p = redis_proxy(&redis.url());
    // This process takes 6 of the burst of 10 for the address; another process, with its own memory, gets 4.
    assert_eq!(register_flood(&p, Some("198.51.100.7"), 6), 6);
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "rate_limit_child", "--ignored", "--nocapture"])
        .env("RATE_LIMIT_CHILD_REDIS", redis.url())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("child accepted 4"), "{stdout}");
    // Both now see the bucket empty; another address is untouched.
    assert_eq!(register_flood(&p, Some("198.51.100.7"), 3), 0);
    assert_eq!(register_flood(&p, Some("203.0.113.9"), 3), 3);
    // Failures cost extra in the shared bucket too (the script's partial charge): 1 + 5, then 1 + the 3 left.
    let guess = TokenRequest {
        grant_type: Some("authorization_code".into()),
        code: Some("guessed".into()),
        client_id: Some("c1".into()),
        remote_addr: Some("192.0.2.1".into()),
        ..Default::default()
    };
    let codes: Vec<String> = (0..4).map(|_| p.token(&guess).unwrap_err().code).collect();
    assert_eq!(
        codes,
        ["invalid_client", "invalid_client", "slow_down", "slow_down"]
    );
    // The counters' keys are hashes: neither the address nor a client id is in Redis.
    let keys = fastmcp_auth::blocking::Store::from_async(p.as_async().store().clone())
        .keys()
        .unwrap();
    assert!(keys.iter().all(|k| !k.contains("198.51")), "{keys:?}");
}
