//! The OAuth proxy against a real HTTP upstream: the loopback mock identity provider (tests/mock-idp).

use std::sync::Arc;
use std::time::Duration;

use fastmcp_auth::blocking::OAuthProxy;
use fastmcp_auth::proxy::{
    AuthorizeParams, CallbackParams, ConsentParams, HttpResponse, OAuthError, OAuthProxyConfig, TokenRequest,
    TokenResponse,
};
use fastmcp_auth::store::{DiskStore, DiskStoreOptions, Store};
use fastmcp_auth::{dangerous, CodeVerifier};
use fastmcp_auth_mock_idp::MockIdp;
use serde_json::{json, Value};

mod support;

use support::{proxy_config as config, BASE};

const REDIRECT: &str = "http://127.0.0.1:33418/callback";

fn proxy(idp: &MockIdp, f: impl FnOnce(&mut OAuthProxyConfig)) -> OAuthProxy {
    let mut c = config(idp);
    f(&mut c);
    OAuthProxy::new(c).unwrap()
}

struct Client {
    id: String,
    secret: Option<String>,
}

fn register(p: &OAuthProxy) -> Client {
    let r = p
        .register_client(&json!({"redirect_uris": [REDIRECT], "client_name": "Test <Client>"}))
        .unwrap();
    Client {
        id: r["client_id"].as_str().unwrap().into(),
        secret: r["client_secret"].as_str().map(String::from),
    }
}

fn query_of(location: &str) -> String {
    url::Url::parse(location)
        .unwrap()
        .query()
        .unwrap_or_default()
        .to_owned()
}

fn param(location: &str, name: &str) -> Option<String> {
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn hidden(page: &HttpResponse, name: &str) -> String {
    let body = page.body.as_deref().unwrap();
    let marker = format!("name=\"{name}\" value=\"");
    let start = body.find(&marker).unwrap() + marker.len();
    body[start..].split('"').next().unwrap().to_owned()
}

fn transaction_id(page: &HttpResponse) -> String {
    hidden(page, "transaction_id")
}

/// The consent form of `page` as the browser that got `page` posts it (its CSRF token and cookie).
fn consent_of(page: &HttpResponse, action: &str) -> ConsentParams {
    ConsentParams {
        transaction_id: Some(transaction_id(page)),
        action: Some(action.into()),
        csrf_token: Some(hidden(page, "csrf_token")),
        ..Default::default()
    }
    .with_cookie(page.cookie_header().as_deref())
}

/// The callback as the browser that got `page` (the authorize answer) follows it.
fn callback_of(page: &HttpResponse, callback_url: &str) -> CallbackParams {
    CallbackParams::from_query(&query_of(callback_url))
        .unwrap()
        .with_cookie(page.cookie_header().as_deref())
}

/// An authorization request of client `c` that passes every check (a fixed, well-formed PKCE challenge).
fn authorize_params(c: &Client) -> AuthorizeParams {
    AuthorizeParams {
        client_id: Some(c.id.clone()),
        redirect_uri: Some(REDIRECT.into()),
        response_type: Some("code".into()),
        code_challenge: Some("a".repeat(43)),
        code_challenge_method: Some("S256".into()),
        ..Default::default()
    }
}

/// Walks authorize → consent → upstream login → callback; returns our code and the verifier.
fn authorize(p: &OAuthProxy, idp: &MockIdp, c: &Client) -> (String, String) {
    let verifier = CodeVerifier::generate(64).unwrap();
    let params = AuthorizeParams {
        client_id: Some(c.id.clone()),
        redirect_uri: Some(REDIRECT.into()),
        response_type: Some("code".into()),
        state: Some("client-state-1".into()),
        scope: Some("openid email".into()),
        code_challenge: Some(verifier.challenge(fastmcp_auth::ChallengeMethod::S256)),
        code_challenge_method: Some("S256".into()),
        cookie: None,
        resource: None,
        remote_addr: None,
    };
    let page = p.authorize(&params).unwrap();
    let upstream = if p.as_async().config().consent_required {
        assert_eq!(page.status, 200);
        assert!(
            !page.body.as_deref().unwrap().contains("<Client>"),
            "client name escaped"
        );
        p.handle_consent(&consent_of(&page, "approve")).unwrap()
    } else {
        page.clone()
    };
    assert_eq!(upstream.status, 302);
    let loc = upstream.location().unwrap().to_owned();
    assert!(loc.starts_with(&idp.authorize_url()));
    assert_eq!(param(&loc, "code_challenge_method").as_deref(), Some("S256"));
    let callback = idp.login(&loc).unwrap();
    assert!(callback.starts_with(&format!("{BASE}/oauth/callback")));
    let back = p.handle_callback(&callback_of(&page, &callback)).unwrap();
    let to_client = back.location().unwrap();
    assert!(to_client.starts_with(REDIRECT));
    assert_eq!(param(to_client, "state").as_deref(), Some("client-state-1"));
    (param(to_client, "code").unwrap(), verifier.as_str().to_owned())
}

fn code_request(c: &Client, code: &str, verifier: &str) -> TokenRequest {
    TokenRequest {
        grant_type: Some("authorization_code".into()),
        code: Some(code.into()),
        redirect_uri: Some(REDIRECT.into()),
        code_verifier: Some(verifier.into()),
        client_id: Some(c.id.clone()),
        client_secret: c.secret.clone(),
        ..Default::default()
    }
}

fn refresh_request(c: &Client, rt: &str) -> TokenRequest {
    TokenRequest {
        grant_type: Some("refresh_token".into()),
        refresh_token: Some(rt.into()),
        client_id: Some(c.id.clone()),
        client_secret: c.secret.clone(),
        ..Default::default()
    }
}

fn login(p: &OAuthProxy, idp: &MockIdp) -> (Client, TokenResponse) {
    let c = register(p);
    let (code, verifier) = authorize(p, idp, &c);
    let t = p.token(&code_request(&c, &code, &verifier)).unwrap();
    (c, t)
}

fn code_of(e: OAuthError) -> String {
    e.code
}

#[test]
fn swap_flow_end_to_end() {
    let idp = MockIdp::start();
    let p = proxy(&idp, |_| {});
    let (c, t) = login(&p, &idp);
    // Clients get our JWTs, never upstream's tokens.
    assert!(!t.access_token.starts_with("up-at-"));
    let claims = dangerous::insecure_decode_claims(&t.access_token).unwrap();
    assert_eq!(claims["client_id"], c.id.as_str());
    assert_eq!(claims["iss"], BASE);
    assert_eq!(claims["scope"], json!(["openid", "email"]));
    let up = p.load_upstream_tokens(&t.access_token).unwrap().unwrap();
    assert!(up.access_token.starts_with("up-at-"));
    assert!(up.refresh_token.is_some());
    // A refresh token cannot load upstream tokens.
    let rt = t.refresh_token.clone().unwrap();
    assert!(p.load_upstream_tokens(&rt).unwrap().is_none());
    // Refresh rotates our refresh token and the upstream tokens.
    let t2 = p.token(&refresh_request(&c, &rt)).unwrap();
    assert_ne!(t2.refresh_token.as_deref(), Some(rt.as_str()));
    let up2 = p.load_upstream_tokens(&t2.access_token).unwrap().unwrap();
    assert_ne!(up2.access_token, up.access_token);
    assert_eq!(idp.counts().refreshes, 1);
    // The response JSON is RFC 6749 §5.1 shaped.
    let j = t2.to_json();
    assert_eq!(j["token_type"], "Bearer");
    assert!(j["expires_in"].as_u64().unwrap() > 0);
}

#[test]
fn passthrough_flow_with_form_encoded_upstream() {
    let idp = MockIdp::start();
    idp.configure(|s| s.form_responses = true);
    let p = proxy(&idp, |c| c.enable_token_swap = false);
    let (c, t) = login(&p, &idp);
    assert!(
        t.access_token.starts_with("up-at-"),
        "passthrough returns upstream's token"
    );
    let rt = t.refresh_token.clone().unwrap();
    assert!(rt.starts_with("up-rt-"));
    let t2 = p.token(&refresh_request(&c, &rt)).unwrap();
    assert!(t2.access_token.starts_with("up-at-"));
    assert!(p.load_upstream_tokens(&t.access_token).unwrap().is_none());
}

#[test]
fn non_rotating_upstream_keeps_its_refresh_token() {
    let idp = MockIdp::start();
    idp.configure(|s| s.rotate_refresh_tokens = false);
    let p = proxy(&idp, |_| {});
    let (c, t) = login(&p, &idp);
    let up = p.load_upstream_tokens(&t.access_token).unwrap().unwrap();
    let t2 = p
        .token(&refresh_request(&c, t.refresh_token.as_deref().unwrap()))
        .unwrap();
    let up2 = p.load_upstream_tokens(&t2.access_token).unwrap().unwrap();
    assert_eq!(up2.refresh_token, up.refresh_token);
    let t3 = p
        .token(&refresh_request(&c, t2.refresh_token.as_deref().unwrap()))
        .unwrap();
    assert!(p.load_upstream_tokens(&t3.access_token).unwrap().is_some());
}

#[test]
fn inline_answers_only_where_the_store_completes_inline() {
    let idp = MockIdp::start();
    let dir = tempfile::tempdir().unwrap();
    // Memory (the default, encrypted or not): answered in place, as the async call answers.
    for encrypted in [true, false] {
        let p = proxy(&idp, |c| c.encryption_disabled = !encrypted);
        let (_, t) = login(&p, &idp);
        let inline = p.as_async().load_upstream_tokens_inline(&t.access_token);
        let up = inline.expect("memory completes inline").unwrap().unwrap();
        assert_eq!(
            up.access_token,
            p.load_upstream_tokens(&t.access_token)
                .unwrap()
                .unwrap()
                .access_token
        );
        let none = |tok: &str| p.as_async().load_upstream_tokens_inline(tok).unwrap().unwrap();
        assert!(
            none(t.refresh_token.as_deref().unwrap()).is_none(),
            "a refresh token"
        );
        assert!(none(&format!("{}x", t.access_token)).is_none(), "a forged token");
        assert!(none("not a jwt").is_none());
        // The bearer check too: the same verdicts as the async one.
        let bearer = |h: Option<&str>, scopes: &[String]| {
            let inline = p
                .as_async()
                .check_bearer_inline(h, BASE, scopes)
                .expect("inline")
                .unwrap();
            let awaited = p.check_bearer(h, BASE, scopes).unwrap();
            assert_eq!(inline.to_json(), awaited.to_json());
            inline.to_json()
        };
        let auth = format!("Bearer {}", t.access_token);
        assert_eq!(bearer(Some(&auth), &[])["authorized"], true);
        assert_eq!(bearer(Some(&auth), &["admin".to_owned()])["authorized"], false);
        assert_eq!(bearer(None, &[])["authorized"], false);
        assert_eq!(bearer(Some("Bearer forged"), &[])["authorized"], false);
    }
    // Disk: in place only from the kernel's caches (reads that never wait, Linux), with the async verdicts.
    let disk = Arc::new(DiskStore::open(DiskStoreOptions::new(dir.path())).unwrap());
    let p = proxy(&idp, |c| c.token_storage = Some(disk.clone()));
    let (_, t) = login(&p, &idp);
    let auth = format!("Bearer {}", t.access_token);
    if cfg!(target_os = "linux") {
        let up = p.as_async().load_upstream_tokens_inline(&t.access_token);
        assert!(up.expect("cached entries: in place").unwrap().is_some());
        let inline = p.as_async().check_bearer_inline(Some(&auth), BASE, &[]);
        assert_eq!(
            inline.expect("in place").unwrap().to_json(),
            p.check_bearer(Some(&auth), BASE, &[]).unwrap().to_json()
        );
        let forged = format!("Bearer {}x", t.access_token);
        let refused = p.as_async().check_bearer_inline(Some(&forged), BASE, &[]);
        assert_eq!(refused.unwrap().unwrap().to_json()["authorized"], false);
    }
    // A store whose reads would wait (data not cached): declined, never a verdict — the caller awaits instead.
    let p = proxy(&idp, |c| {
        c.token_storage = Some(Arc::new(Declining(
            DiskStore::open(DiskStoreOptions::new(dir.path().join("declining"))).unwrap(),
        )))
    });
    let (_, t) = login(&p, &idp);
    let auth = format!("Bearer {}", t.access_token);
    assert!(p
        .as_async()
        .load_upstream_tokens_inline(&t.access_token)
        .is_none());
    assert!(p.as_async().check_bearer_inline(Some(&auth), BASE, &[]).is_none());
    assert_eq!(
        p.check_bearer(Some(&auth), BASE, &[]).unwrap().to_json()["authorized"],
        true
    );
    // A bad token needs no read: answered in place even here.
    let bad = p.as_async().check_bearer_inline(Some("Bearer forged"), BASE, &[]);
    assert_eq!(bad.unwrap().unwrap().to_json()["authorized"], false);
}

/// A DiskStore whose reads always say they would wait on the device (`get_nowait` declines).
struct Declining(DiskStore);

impl fastmcp_auth::store::SyncStore for Declining {
    fn save_sync(&self, k: &str, v: serde_json::Value, t: Option<Duration>) -> fastmcp_auth::Result<()> {
        self.0.save_sync(k, v, t)
    }
    fn get_sync(&self, k: &str) -> fastmcp_auth::Result<Option<serde_json::Value>> {
        self.0.get_sync(k)
    }
    fn delete_sync(&self, k: &str) -> fastmcp_auth::Result<bool> {
        self.0.delete_sync(k)
    }
    fn take_sync(&self, k: &str) -> fastmcp_auth::Result<Option<serde_json::Value>> {
        self.0.take_sync(k)
    }
    fn cleanup_sync(&self) -> fastmcp_auth::Result<u64> {
        self.0.cleanup_sync()
    }
    fn size_sync(&self) -> fastmcp_auth::Result<u64> {
        self.0.size_sync()
    }
    fn keys_sync(&self) -> fastmcp_auth::Result<Vec<String>> {
        self.0.keys_sync()
    }
}

#[async_trait::async_trait]
impl fastmcp_auth::store::Store for Declining {
    async fn save(&self, k: &str, v: serde_json::Value, t: Option<Duration>) -> fastmcp_auth::Result<()> {
        self.0.save(k, v, t).await
    }
    async fn get(&self, k: &str) -> fastmcp_auth::Result<Option<serde_json::Value>> {
        self.0.get(k).await
    }
    async fn delete(&self, k: &str) -> fastmcp_auth::Result<bool> {
        self.0.delete(k).await
    }
    async fn take(&self, k: &str) -> fastmcp_auth::Result<Option<serde_json::Value>> {
        self.0.take(k).await
    }
    async fn cleanup(&self) -> fastmcp_auth::Result<u64> {
        self.0.cleanup().await
    }
    async fn size(&self) -> fastmcp_auth::Result<u64> {
        self.0.size().await
    }
    async fn keys(&self) -> fastmcp_auth::Result<Vec<String>> {
        self.0.keys().await
    }
    fn as_sync(&self) -> Option<&dyn fastmcp_auth::store::SyncStore> {
        Some(self)
    }
}

/// `check_bearer_blocking`: on a store with a synchronous face (disk, memory) the check runs on the caller's
/// thread with the same verdicts as the async one (live, other scope, absent, forged, refresh token, revoked); a
/// store without one (async only) answers `None`. The reads are still counted in the metrics.
#[test]
fn blocking_bearer_check_matches_the_async_one() {
    let idp = MockIdp::start();
    let dir = tempfile::tempdir().unwrap();
    let disk = Arc::new(DiskStore::open(DiskStoreOptions::new(dir.path())).unwrap());
    let p = proxy(&idp, |c| c.token_storage = Some(disk.clone()));
    let (client, t) = login(&p, &idp);
    let (_, other) = login(&p, &idp);
    p.revoke(&other.access_token, &client.id, client.secret.as_deref())
        .ok();
    let live = format!("Bearer {}", t.access_token);
    let refresh = format!("Bearer {}", t.refresh_token.clone().unwrap());
    let forged = format!("Bearer {}x", t.access_token);
    let revoked = format!("Bearer {}", other.access_token);
    let gets = |p: &OAuthProxy| {
        p.as_async()
            .metrics_text()
            .lines()
            .filter(|l| l.starts_with("fastmcp_auth_store_operations_total") && l.contains("op=\"get\""))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum::<f64>()
    };
    type Case<'a> = (&'a str, Option<&'a str>, &'a [&'a str], bool);
    let cases: &[Case] = &[
        ("live", Some(&live), &[], true),
        ("missing scope", Some(&live), &["admin"], false),
        ("no header", None, &[], false),
        ("forged", Some(&forged), &[], false),
        ("refresh token", Some(&refresh), &[], false),
        ("not bearer", Some("Basic abc"), &[], false),
    ];
    for (name, header, scopes, ok) in cases {
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        let before = gets(&p);
        let blocking = p
            .as_async()
            .check_bearer_blocking(*header, BASE, &scopes)
            .expect("disk has a synchronous face")
            .unwrap();
        let awaited = p.check_bearer(*header, BASE, &scopes).unwrap();
        assert_eq!(blocking.to_json(), awaited.to_json(), "{name}");
        assert_eq!(blocking.to_json()["authorized"], *ok, "{name}");
        if *name == "live" {
            assert!(gets(&p) >= before + 4.0, "both checks' reads are counted");
        }
    }
    // Revocation reached the store: refused by both (whichever revoke answered, the verdicts agree).
    let b = p
        .as_async()
        .check_bearer_blocking(Some(&revoked), BASE, &[])
        .unwrap()
        .unwrap();
    assert_eq!(
        b.to_json(),
        p.check_bearer(Some(&revoked), BASE, &[]).unwrap().to_json()
    );
    // An async-only store: no blocking answer; the async check still works.
    let flaky = Arc::new(FlakyStore::over(
        Arc::new(fastmcp_auth::store::MemoryStore::new()),
    ));
    let q = proxy(&idp, |c| c.token_storage = Some(flaky.clone()));
    let (_, t) = login(&q, &idp);
    let h = format!("Bearer {}", t.access_token);
    assert!(q.as_async().check_bearer_blocking(Some(&h), BASE, &[]).is_none());
    assert_eq!(
        q.check_bearer(Some(&h), BASE, &[]).unwrap().to_json()["authorized"],
        true
    );
}

#[test]
fn restart_with_disk_store_keeps_everything() {
    let idp = MockIdp::start();
    let dir = tempfile::tempdir().unwrap();
    let disk = || -> Arc<dyn Store> { Arc::new(DiskStore::open(DiskStoreOptions::new(dir.path())).unwrap()) };
    let p1 = proxy(&idp, |c| c.token_storage = Some(disk()));
    let (c, t) = login(&p1, &idp);
    p1.close();
    drop(p1);
    let p2 = proxy(&idp, |c| c.token_storage = Some(disk()));
    assert!(p2.load_upstream_tokens(&t.access_token).unwrap().is_some());
    let t2 = p2
        .token(&refresh_request(&c, t.refresh_token.as_deref().unwrap()))
        .unwrap();
    assert!(p2.load_upstream_tokens(&t2.access_token).unwrap().is_some());
    // Nothing readable on disk: tokens are encrypted.
    for ent in std::fs::read_dir(dir.path()).unwrap() {
        let text = std::fs::read_to_string(ent.unwrap().path()).unwrap();
        assert!(
            !text.contains("up-at-") && !text.contains("up-rt-"),
            "upstream token stored in clear"
        );
    }
    // Another instance with the wrong encryption key sees nothing (and says so with server errors, not panics).
    let p3 = proxy(&idp, |cfg| {
        cfg.token_storage = Some(disk());
        cfg.encryption_key = Some("other".into());
    });
    assert!(p3.load_upstream_tokens(&t2.access_token).unwrap().is_none());
}

/// 50 tasks on the async API race for one code.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_tasks_redeem_one_code_async() {
    let idp = Arc::new(MockIdp::start());
    // 49 refused redemptions would trip the token endpoint's rate limit (tested in rate_limits.rs): off here.
    let mut c = config(&idp);
    c.rate_limits.enabled = false;
    let p = Arc::new(fastmcp_auth::OAuthProxy::new(c).unwrap());
    // Walk the browser part with the blocking facade on a plain thread (never inside the runtime).
    let (bp, idp2) = (OAuthProxy::from_async(p.clone()), idp.clone());
    let (c, code, verifier) = std::thread::spawn(move || {
        let c = register(&bp);
        let (code, verifier) = authorize(&bp, &idp2, &c);
        (c, code, verifier)
    })
    .join()
    .unwrap();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (p, req) = (p.clone(), code_request(&c, &code, &verifier));
        set.spawn(async move { p.token(&req).await });
    }
    let mut issued = vec![];
    while let Some(r) = set.join_next().await {
        match r.unwrap() {
            Ok(t) => issued.push(t),
            Err(e) => assert_eq!(e.code, "invalid_grant"),
        }
    }
    // RFC 6749 §4.1.2: a code used more than once is refused, and what it yielded revoked — also when the uses
    // race (code_use.rs): at most one answer carries tokens, and none of them works afterwards.
    assert!(issued.len() <= 1);
    for t in issued {
        assert!(p.load_upstream_tokens(&t.access_token).await.unwrap().is_none());
    }
}

/// Same race through one proxy (blocking facade, 50 OS threads).
#[test]
fn fifty_threads_redeem_one_code() {
    let idp = MockIdp::start();
    // 49 refused redemptions would trip the token endpoint's rate limit (tested in rate_limits.rs): off here.
    let p = proxy(&idp, |c| c.rate_limits.enabled = false);
    let c = register(&p);
    let (code, verifier) = authorize(&p, &idp, &c);
    let barrier = Arc::new(std::sync::Barrier::new(50));
    let results: Vec<Result<TokenResponse, OAuthError>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..50)
            .map(|_| {
                let (p, b, req) = (p.clone(), barrier.clone(), code_request(&c, &code, &verifier));
                s.spawn(move || {
                    b.wait();
                    p.token(&req)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(results.iter().filter(|r| r.is_ok()).count() <= 1);
    for r in results {
        match r {
            Ok(t) => assert_revoked(&p, &c, &t),
            Err(e) => assert_eq!(e.code, "invalid_grant"),
        }
    }
    // A later replay is reported precisely.
    let e = p.token(&code_request(&c, &code, &verifier)).unwrap_err();
    assert_eq!(e.description.as_deref(), Some("Authorization code already used"));
}

/// Tokens `t` no longer work: no upstream tokens behind the access token, no bearer access, no refresh.
fn assert_revoked(p: &OAuthProxy, c: &Client, t: &TokenResponse) {
    assert!(
        p.load_upstream_tokens(&t.access_token).unwrap().is_none(),
        "access token still resolves"
    );
    let auth = format!("Bearer {}", t.access_token);
    assert_eq!(
        p.check_bearer(Some(&auth), BASE, &[]).unwrap().to_json()["authorized"],
        false
    );
    if let Some(rt) = &t.refresh_token {
        assert_eq!(
            p.token(&refresh_request(c, rt)).unwrap_err().code,
            "invalid_grant"
        );
    }
}

/// Two to eight simultaneous redemptions of one code, many times over, on every store the proxy can swap codes in
/// (memory, disk and a real redis-server; encrypted or not): at most one answer carries tokens, and none of those work afterwards.
/// On a store that cannot swap (a host's own), the earlier scheme: exactly one redemption succeeds.
#[test]
fn simultaneous_redemptions_leave_no_live_token() {
    let idp = MockIdp::start();
    let dir = tempfile::tempdir().unwrap();
    let disk = |name: &str| -> Arc<dyn Store> {
        Arc::new(DiskStore::open(DiskStoreOptions::new(dir.path().join(name))).unwrap())
    };
    let memory = || -> Arc<dyn Store> { Arc::new(fastmcp_auth::store::MemoryStore::new()) };
    let redis_server = fastmcp_auth_mock_idp::redis_server::RedisServer::start();
    let redis = || -> Arc<dyn Store> {
        let o = fastmcp_auth::RedisStoreOptions::new(redis_server.url());
        Arc::new(fastmcp_auth::RedisStore::open_blocking(o).unwrap())
    };
    let no_swap = |inner| -> Arc<dyn Store> {
        Arc::new(FlakyStore {
            swaps: false,
            ..FlakyStore::over(inner)
        })
    };
    let stores: Vec<(&str, Arc<dyn Store>, bool, bool)> = vec![
        // name, store, encrypted, swaps
        ("memory, encrypted", memory(), true, true),
        ("memory", memory(), false, true),
        ("disk, encrypted", disk("enc"), true, true),
        ("disk", disk("plain"), false, true),
        ("redis, encrypted", redis(), true, true),
        ("memory, no swap", no_swap(memory()), true, false),
    ];
    for (name, store, encrypted, swaps) in stores {
        let p = proxy(&idp, |c| {
            c.token_storage = Some(store);
            c.encryption_disabled = !encrypted;
            c.rate_limits.enabled = false;
        });
        let c = register(&p);
        for round in 0..12 {
            let racers = 2 + round % 7;
            let (code, verifier) = authorize(&p, &idp, &c);
            let barrier = Arc::new(std::sync::Barrier::new(racers));
            let results: Vec<_> = std::thread::scope(|s| {
                let hs: Vec<_> = (0..racers)
                    .map(|i| {
                        // In odd rounds one racer has a wrong verifier (an attacker holding the code alone).
                        let v = if round % 2 == 1 && i == 0 {
                            "wrong-verifier-wrong-verifier-wrong-verifier-xx"
                        } else {
                            verifier.as_str()
                        };
                        let (p, b, req) = (p.clone(), barrier.clone(), code_request(&c, &code, v));
                        s.spawn(move || {
                            b.wait();
                            p.token(&req)
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let ok: Vec<&TokenResponse> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
            for e in results.iter().filter_map(|r| r.as_ref().err()) {
                assert_eq!(e.code, "invalid_grant", "{name}: {e:?}");
            }
            if swaps {
                assert!(ok.len() <= 1, "{name}, round {round}");
                for t in ok {
                    assert_revoked(&p, &c, t);
                }
            } else if round % 2 == 0 {
                assert_eq!(ok.len(), 1, "{name}, round {round}");
            } else {
                // The attacker may take the code first: it is then spent for everyone.
                assert!(ok.len() <= 1, "{name}, round {round}");
            }
            let again = p.token(&code_request(&c, &code, &verifier)).unwrap_err();
            assert_eq!(
                again.description.as_deref(),
                Some("Authorization code already used"),
                "{name}"
            );
        }
    }
}

/// The hard interleaving, made certain: a replay arrives while the first redemption is still writing its tokens
/// (before there is anything to revoke). The replay marks the code; the first redemption sees the mark after its
/// writes, revokes what it wrote and is refused too.
#[test]
fn a_replay_during_issuing_revokes_what_the_first_redemption_writes_after_it() {
    let idp = MockIdp::start();
    for encrypted in [true, false] {
        let memory = Arc::new(fastmcp_auth::store::MemoryStore::new());
        let p = proxy(&idp, |c| {
            c.token_storage = Some(Arc::new(FlakyStore {
                upstream_write_delay: Duration::from_millis(300),
                ..FlakyStore::over(memory.clone())
            }));
            c.encryption_disabled = !encrypted;
        });
        let c = register(&p);
        let (code, verifier) = authorize(&p, &idp, &c);
        let (first, replay) = std::thread::scope(|s| {
            let first = s.spawn(|| p.token(&code_request(&c, &code, &verifier)));
            std::thread::sleep(Duration::from_millis(100));
            let replay = p.token(&code_request(&c, &code, &verifier));
            (first.join().unwrap(), replay)
        });
        assert_eq!(
            replay.unwrap_err().description.as_deref(),
            Some("Authorization code already used")
        );
        let e = first.expect_err("the first redemption must be refused once the code was replayed");
        assert_eq!(e.code, "invalid_grant");
        assert_eq!(e.description.as_deref(), Some("Authorization code already used"));
        // Nothing of the grant is left behind: no upstream tokens under any key.
        use fastmcp_auth::store::SyncStore;
        let keys = memory.keys_sync().unwrap();
        assert!(!keys.iter().any(|k| k.starts_with("upstream:")), "{keys:?}");
    }
}

/// What the swap scheme does when the store misbehaves around a code (code_use.rs): a swap applied but reported
/// failed counts as applied; a last look that keeps failing revokes what was issued and gives the code back, so the
/// client's retry succeeds; a tombstone that expires while its redemption is still issuing refuses that
/// redemption, leaving nothing behind; a code with less than the issuing budget left is refused as expired.
#[test]
fn code_redemption_when_the_store_misbehaves() {
    use fastmcp_auth::store::SyncStore;
    use std::sync::atomic::Ordering::SeqCst;
    let idp = MockIdp::start();
    let upstream_keys = |m: &fastmcp_auth::store::MemoryStore| {
        m.keys_sync()
            .unwrap()
            .into_iter()
            .filter(|k| k.starts_with("upstream:"))
            .count()
    };
    for encrypted in [true, false] {
        let memory = Arc::new(fastmcp_auth::store::MemoryStore::new());
        let flaky = Arc::new(FlakyStore::over(memory.clone()));
        let p = proxy(&idp, |c| {
            c.token_storage = Some(flaky.clone());
            c.encryption_disabled = !encrypted;
        });
        let c = register(&p);
        // 1. The swap's reply is lost: the redemption reads the tombstone back and goes on.
        let (code, verifier) = authorize(&p, &idp, &c);
        flaky.lose_next_swap_reply.store(true, SeqCst);
        let t = p
            .token(&code_request(&c, &code, &verifier))
            .expect("a lost reply of an applied swap");
        assert!(p.load_upstream_tokens(&t.access_token).unwrap().is_some());
        // 2. Every read of the last look fails: what was issued is revoked, the code given back, the retry works.
        let before = upstream_keys(&memory);
        let (code, verifier) = authorize(&p, &idp, &c);
        flaky.fail_reads_after_swap.store(3, SeqCst);
        let e = p.token(&code_request(&c, &code, &verifier)).unwrap_err();
        assert_eq!(e.status, 503, "{e:?}");
        assert_eq!(upstream_keys(&memory), before, "nothing issued is left");
        let t = p
            .token(&code_request(&c, &code, &verifier))
            .expect("the code was given back");
        assert!(p.load_upstream_tokens(&t.access_token).unwrap().is_some());
        // One failed read of the last look is retried: no refusal.
        let (code, verifier) = authorize(&p, &idp, &c);
        flaky.fail_reads_after_swap.store(1, SeqCst);
        p.token(&code_request(&c, &code, &verifier))
            .expect("one failed look is retried");
        // 5. A replay whose revocation fails (its first write, the revocation mark): the code goes back to held,
        // so the next presentation revokes; the tokens do not outlive it.
        let (code, verifier) = authorize(&p, &idp, &c);
        let t = p.token(&code_request(&c, &code, &verifier)).unwrap();
        flaky.arm(2); // 1: the mark's swap; 2: the revocation mark
        p.token(&code_request(&c, &code, &verifier)).unwrap_err();
        flaky.arm(0);
        p.token(&code_request(&c, &code, &verifier)).unwrap_err();
        assert_revoked(&p, &c, &t);
    }
    // 3. The tombstone expires while its redemption issues (codes live 2 s, upstream writes take 2.5 s).
    let memory = Arc::new(fastmcp_auth::store::MemoryStore::new());
    let p = proxy(&idp, |c| {
        c.token_storage = Some(Arc::new(FlakyStore {
            upstream_write_delay: Duration::from_millis(2500),
            ..FlakyStore::over(memory.clone())
        }));
        c.authorization_code_ttl = 2;
    });
    let c = register(&p);
    let (code, verifier) = authorize(&p, &idp, &c);
    let e = p.token(&code_request(&c, &code, &verifier)).unwrap_err();
    assert_eq!(e.code, "invalid_grant", "{e:?}");
    assert_eq!(upstream_keys(&memory), 0, "nothing issued is left");
    // 4. Less than the issuing budget left (half of 2 s): refused as expired before anything is issued.
    let p = proxy(&idp, |c| c.authorization_code_ttl = 2);
    let c = register(&p);
    let (code, verifier) = authorize(&p, &idp, &c);
    std::thread::sleep(Duration::from_millis(1300));
    let e = p.token(&code_request(&c, &code, &verifier)).unwrap_err();
    assert_eq!(
        e.description.as_deref(),
        Some("Invalid or expired authorization code")
    );
}

/// A refresh in flight (upstream answering slowly) when the grant is revoked by a replay of its code must not
/// bring the grant back when upstream's answer is written (refresh.rs: the revocation's mark).
#[test]
fn a_refresh_in_flight_does_not_revive_a_revoked_grant() {
    let idp = MockIdp::start();
    let p = proxy(&idp, |c| c.refresh_grace_window = Duration::ZERO);
    let c = register(&p);
    let (code, verifier) = authorize(&p, &idp, &c);
    let t = p.token(&code_request(&c, &code, &verifier)).unwrap();
    let rt = t.refresh_token.clone().unwrap();
    idp.configure(|s| s.delay = Duration::from_millis(400));
    let refreshed = std::thread::scope(|s| {
        let r = s.spawn(|| p.token(&refresh_request(&c, &rt)));
        std::thread::sleep(Duration::from_millis(150));
        p.token(&code_request(&c, &code, &verifier)).unwrap_err();
        r.join().unwrap()
    });
    idp.configure(|s| s.delay = Duration::ZERO);
    let e = refreshed.expect_err("the grant was revoked while upstream answered");
    assert_eq!(e.code, "invalid_grant", "{e:?}");
    assert!(p.load_upstream_tokens(&t.access_token).unwrap().is_none());
    assert_eq!(
        p.token(&refresh_request(&c, &rt)).unwrap_err().code,
        "invalid_grant"
    );
}

/// RFC 6749 §4.1.2 / RFC 9700 §4.5: a code presented again is refused and the grant it yielded is revoked — its
/// access token, its refresh token, and what a refresh already rotated them into. A code spent by a failed
/// redemption (wrong verifier) revokes nothing (it yielded nothing).
#[test]
fn code_replay_revokes_the_grant_it_yielded() {
    let idp = MockIdp::start();
    let p = proxy(&idp, |c| c.refresh_grace_window = Duration::ZERO);
    for rotate_first in [false, true] {
        let c = register(&p);
        let (code, verifier) = authorize(&p, &idp, &c);
        let mut t = p.token(&code_request(&c, &code, &verifier)).unwrap();
        if rotate_first {
            t = p
                .token(&refresh_request(&c, t.refresh_token.as_deref().unwrap()))
                .unwrap();
        }
        assert!(p.load_upstream_tokens(&t.access_token).unwrap().is_some());
        let e = p.token(&code_request(&c, &code, &verifier)).unwrap_err();
        assert_eq!(e.description.as_deref(), Some("Authorization code already used"));
        assert!(
            p.load_upstream_tokens(&t.access_token).unwrap().is_none(),
            "access token revoked ({rotate_first})"
        );
        let auth = format!("Bearer {}", t.access_token);
        assert_eq!(
            p.check_bearer(Some(&auth), BASE, &[]).unwrap().to_json()["authorized"],
            false
        );
        let e = p
            .token(&refresh_request(&c, t.refresh_token.as_deref().unwrap()))
            .unwrap_err();
        assert_eq!(e.code, "invalid_grant", "refresh token revoked ({rotate_first})");
        // A third presentation still reads "already used".
        let e = p.token(&code_request(&c, &code, &verifier)).unwrap_err();
        assert_eq!(e.description.as_deref(), Some("Authorization code already used"));
    }
    // Another grant of the same client is untouched.
    let (c, keep) = login(&p, &idp);
    let (code, verifier) = authorize(&p, &idp, &c);
    p.token(&code_request(&c, &code, &verifier)).unwrap();
    p.token(&code_request(&c, &code, &verifier)).unwrap_err();
    assert!(p.load_upstream_tokens(&keep.access_token).unwrap().is_some());
    // A code spent by a wrong verifier: refused again later, nothing else revoked.
    let (code, _) = authorize(&p, &idp, &c);
    p.token(&code_request(
        &c,
        &code,
        "wrong-verifier-wrong-verifier-wrong-verifier-xx",
    ))
    .unwrap_err();
    p.token(&code_request(
        &c,
        &code,
        "wrong-verifier-wrong-verifier-wrong-verifier-xx",
    ))
    .unwrap_err();
    assert!(p.load_upstream_tokens(&keep.access_token).unwrap().is_some());
}

#[test]
fn fifty_threads_refresh_one_token_outside_grace() {
    let idp = MockIdp::start();
    idp.configure(|s| s.delay = Duration::from_millis(30));
    let p = proxy(&idp, |c| {
        c.refresh_grace_window = Duration::ZERO;
        c.rate_limits.enabled = false; // 49 refused refreshes would trip the rate limit
    });
    let (c, t) = login(&p, &idp);
    let rt = t.refresh_token.unwrap();
    let barrier = Arc::new(std::sync::Barrier::new(50));
    let results: Vec<Result<TokenResponse, OAuthError>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..50)
            .map(|_| {
                let (p, b, req) = (p.clone(), barrier.clone(), refresh_request(&c, &rt));
                s.spawn(move || {
                    b.wait();
                    p.token(&req)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{:?}",
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .collect::<Vec<_>>()
    );
    assert_eq!(idp.counts().refreshes, 1, "exactly one rotation upstream");
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(e.code, "invalid_grant");
    }
}

#[test]
fn grace_window_retry_then_replay_revokes_the_grant() {
    let idp = MockIdp::start();
    let p = proxy(&idp, |c| c.refresh_grace_window = Duration::from_millis(600));
    let (c, t) = login(&p, &idp);
    let rt = t.refresh_token.unwrap();
    let first = p.token(&refresh_request(&c, &rt)).unwrap();
    // A retry inside the window: a fresh access token and the same successor refresh token.
    let retry = p.token(&refresh_request(&c, &rt)).unwrap();
    assert_eq!(retry.refresh_token, first.refresh_token);
    assert_ne!(retry.access_token, first.access_token);
    assert!(p.load_upstream_tokens(&retry.access_token).unwrap().is_some());
    assert_eq!(
        idp.counts().refreshes,
        1,
        "the retry did not refresh upstream again"
    );
    // After the window: replay → the grant is revoked.
    std::thread::sleep(Duration::from_millis(700));
    let e = p.token(&refresh_request(&c, &rt)).unwrap_err();
    assert_eq!(e.code, "invalid_grant");
    assert!(p.load_upstream_tokens(&first.access_token).unwrap().is_none());
    assert!(p
        .token(&refresh_request(&c, first.refresh_token.as_deref().unwrap()))
        .is_err());
}

#[test]
fn concurrent_refresh_inside_grace_all_succeed_with_one_rotation() {
    let idp = MockIdp::start();
    idp.configure(|s| s.delay = Duration::from_millis(50));
    let p = proxy(&idp, |_| {});
    let (c, t) = login(&p, &idp);
    let rt = t.refresh_token.unwrap();
    let results: Vec<TokenResponse> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..10)
            .map(|_| s.spawn(|| p.token(&refresh_request(&c, &rt))))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap().unwrap()).collect()
    });
    let successors: std::collections::HashSet<_> = results.iter().map(|r| r.refresh_token.clone()).collect();
    assert_eq!(successors.len(), 1, "everyone converges on one successor");
    assert_eq!(idp.counts().refreshes, 1);
}

#[test]
fn transient_upstream_failure_keeps_the_session() {
    let idp = MockIdp::start();
    let p = proxy(&idp, |_| {});
    let (c, t) = login(&p, &idp);
    let rt = t.refresh_token.unwrap();
    idp.configure(|s| s.fail_next = Some((1, 503, json!({"error": "temporarily_unavailable"}))));
    let e = p.token(&refresh_request(&c, &rt)).unwrap_err();
    assert_eq!(e.code, "server_error");
    assert_eq!(e.status, 502);
    // The claim was put back: the same refresh token works now.
    assert!(p.token(&refresh_request(&c, &rt)).is_ok());
    // Timeouts are server_error too.
    let (c2, t2) = login(&p, &idp);
    idp.configure(|s| s.delay = Duration::from_millis(2500));
    let e = p
        .token(&refresh_request(&c2, t2.refresh_token.as_deref().unwrap()))
        .unwrap_err();
    assert_eq!((e.code.as_str(), e.status), ("server_error", 504));
    idp.configure(|s| s.delay = Duration::ZERO);
    assert!(p
        .token(&refresh_request(&c2, t2.refresh_token.as_deref().unwrap()))
        .is_ok());
}

#[test]
fn upstream_errors_are_mapped() {
    let idp = MockIdp::start();
    let p = proxy(&idp, |_| {});
    let c = register(&p);
    for (status, body, code) in [
        (
            400,
            json!({"error": "invalid_grant", "error_description": "bad code"}),
            "server_error",
        ),
        (400, json!({"error": "made_up_error"}), "server_error"),
        (
            400,
            json!({"error": "invalid_client", "error_description": "bad secret"}),
            "server_error",
        ),
        (400, json!({"error": "invalid_scope"}), "server_error"),
        (500, json!({"oops": 1}), "server_error"),
        (200, json!({"token_type": "Bearer"}), "server_error"),
    ] {
        idp.configure(|s| s.fail_next = Some((1, status, body.clone())));
        let verifier = CodeVerifier::generate(50).unwrap();
        let page = p
            .authorize(&AuthorizeParams {
                client_id: Some(c.id.clone()),
                redirect_uri: Some(REDIRECT.into()),
                response_type: Some("code".into()),
                code_challenge: Some(verifier.challenge(fastmcp_auth::ChallengeMethod::S256)),
                code_challenge_method: Some("S256".into()),
                ..Default::default()
            })
            .unwrap();
        let up = p.handle_consent(&consent_of(&page, "approve")).unwrap();
        let cb = idp.login(up.location().unwrap()).unwrap();
        // The failed code exchange goes back to the client (RFC 6749 §4.1.2.1) with a fixed text.
        let r = p.handle_callback(&callback_of(&page, &cb)).unwrap();
        let loc = r.location().unwrap();
        assert!(loc.starts_with(REDIRECT), "{loc}");
        assert_eq!(param(loc, "error").as_deref(), Some(code), "{body}");
        assert!(!loc.contains("bad") && param(loc, "code").is_none(), "{loc}");
    }
}

#[test]
fn authorize_and_consent_errors() {
    let idp = MockIdp::start();
    let p = proxy(&idp, |_| {});
    let c = register(&p);
    let good = AuthorizeParams {
        state: Some("s-1".into()),
        ..authorize_params(&c)
    };
    let err = |f: &dyn Fn(&mut AuthorizeParams)| {
        let mut q = good.clone();
        f(&mut q);
        p.authorize(&q).unwrap_err()
    };
    // Before the client and its redirect URI are known: a plain error, never a redirect (RFC 6749 §4.1.2.1).
    assert_eq!(err(&|q| q.client_id = Some("nope".into())).code, "invalid_client");
    assert_eq!(err(&|q| q.client_id = None).code, "invalid_request");
    assert_eq!(
        err(&|q| q.redirect_uri = Some("http://127.0.0.1:1/other".into())).code,
        "invalid_request"
    );
    assert_eq!(err(&|q| q.state = Some("s".repeat(2000))).code, "invalid_request");
    // After: a 302 to the client with error, description, its state and our iss (RFC 9207).
    let redirected = |f: &dyn Fn(&mut AuthorizeParams)| {
        let mut q = good.clone();
        f(&mut q);
        let r = p.authorize(&q).unwrap();
        assert_eq!(r.status, 302);
        let loc = r.location().unwrap().to_owned();
        assert!(loc.starts_with(REDIRECT), "{loc}");
        assert_eq!(param(&loc, "state").as_deref(), Some("s-1"));
        assert_eq!(param(&loc, "iss").as_deref(), Some(BASE));
        assert!(param(&loc, "error_description").is_some());
        assert!(r.cookie_header().is_none(), "no transaction, no cookie");
        param(&loc, "error").unwrap()
    };
    assert_eq!(
        redirected(&|q| q.response_type = Some("token".into())),
        "unsupported_response_type"
    );
    assert_eq!(redirected(&|q| q.response_type = None), "invalid_request");
    assert_eq!(redirected(&|q| q.code_challenge = None), "invalid_request");
    assert_eq!(
        redirected(&|q| q.code_challenge_method = Some("plain".into())),
        "invalid_request"
    );
    assert_eq!(redirected(&|q| q.code_challenge_method = None), "invalid_request");
    assert_eq!(
        redirected(&|q| q.code_challenge = Some("short".into())),
        "invalid_request"
    );
    assert_eq!(
        redirected(&|q| q.scope = Some("s ".repeat(10_000))),
        "invalid_scope"
    );
    assert_eq!(redirected(&|q| q.scope = Some("a\"b".into())), "invalid_scope");
    // Consent: only approve/deny, only live transactions.
    let page = p.authorize(&good).unwrap();
    for action in [None, Some("yes"), Some("APPROVE")] {
        let mut f = consent_of(&page, "approve");
        f.action = action.map(String::from);
        assert_eq!(p.handle_consent(&f).unwrap_err().code, "invalid_request");
    }
    let mut unknown = consent_of(&page, "approve");
    unknown.transaction_id = Some("unknown".into());
    assert_eq!(p.handle_consent(&unknown).unwrap_err().code, "invalid_request");
    let deny = p.handle_consent(&consent_of(&page, "deny")).unwrap();
    let loc = deny.location().unwrap();
    assert_eq!(param(loc, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(loc, "iss").as_deref(), Some(BASE));
    assert!(p.handle_consent(&consent_of(&page, "approve")).is_err());
    // Skipping consent by going straight upstream is refused at the callback, even in the right browser.
    let page = p.authorize(&good).unwrap();
    let tx = transaction_id(&page);
    let mut upstream = url::Url::parse(&idp.authorize_url()).unwrap();
    upstream
        .query_pairs_mut()
        .append_pair("client_id", &idp.settings().client_id)
        .append_pair("redirect_uri", &format!("{BASE}/oauth/callback"))
        .append_pair("state", &tx);
    let cb = idp.login(upstream.as_str()).unwrap();
    let r = p.handle_callback(&callback_of(&page, &cb)).unwrap();
    assert_eq!(r.status, 403);
    assert!(r.location().is_none());
    // State is single use; unknown state is refused; upstream errors reach the client as a redirect.
    assert_eq!(
        p.handle_callback(&callback_of(&page, &cb)).unwrap_err().code,
        "invalid_request"
    );
    assert_eq!(
        p.handle_callback(&CallbackParams::from_query("code=x").unwrap())
            .unwrap_err()
            .code,
        "invalid_request"
    );
    let page = p.authorize(&good).unwrap();
    let r = p
        .handle_callback(
            &CallbackParams {
                state: Some(transaction_id(&page)),
                error: Some("<script>".into()),
                error_description: Some("internal-host-17.corp user 4411".into()),
                ..Default::default()
            }
            .with_cookie(page.cookie_header().as_deref()),
        )
        .unwrap();
    let loc = r.location().unwrap();
    assert_eq!(param(loc, "error").as_deref(), Some("access_denied"));
    assert!(!loc.contains("internal-host") && !loc.contains("4411"));
}

#[test]
fn token_endpoint_errors() {
    let idp = MockIdp::start();
    let p = proxy(&idp, |_| {});
    let (c, t) = login(&p, &idp);
    let (code, verifier) = authorize(&p, &idp, &c);
    let try_with = |f: &dyn Fn(&mut TokenRequest)| {
        let mut r = code_request(&c, &code, &verifier);
        f(&mut r);
        p.token(&r).map_err(code_of)
    };
    assert_eq!(
        try_with(&|r| r.grant_type = Some("password".into())).unwrap_err(),
        "unsupported_grant_type"
    );
    assert_eq!(try_with(&|r| r.grant_type = None).unwrap_err(), "invalid_request");
    assert_eq!(
        try_with(&|r| r.client_secret = None).unwrap_err(),
        "invalid_client"
    );
    assert_eq!(
        try_with(&|r| r.client_secret = Some("wrong".into())).unwrap_err(),
        "invalid_client"
    );
    assert_eq!(
        try_with(&|r| r.client_id = Some("unknown".into())).unwrap_err(),
        "invalid_client"
    );
    assert_eq!(
        try_with(&|r| r.code = Some("forged".into())).unwrap_err(),
        "invalid_grant"
    );
    // A wrong verifier burns the code (single use), as it should.
    assert_eq!(
        try_with(&|r| r.code_verifier = Some("b".repeat(43))).unwrap_err(),
        "invalid_grant"
    );
    assert_eq!(try_with(&|_| {}).unwrap_err(), "invalid_grant");
    // A code issued to one client cannot be redeemed by another.
    let other = register(&p);
    let (code2, verifier2) = authorize(&p, &idp, &c);
    let mut r = code_request(&other, &code2, &verifier2);
    r.client_secret = other.secret.clone();
    assert_eq!(p.token(&r).unwrap_err().code, "invalid_grant");
    // Redirect URI mismatch.
    let (code3, verifier3) = authorize(&p, &idp, &c);
    let mut r = code_request(&c, &code3, &verifier3);
    r.redirect_uri = Some("http://127.0.0.1:33418/other".into());
    assert_eq!(p.token(&r).unwrap_err().code, "invalid_grant");
    // An access token is not a refresh token, and garbage is not either.
    assert_eq!(
        p.token(&refresh_request(&c, &t.access_token)).unwrap_err().code,
        "invalid_grant"
    );
    assert_eq!(
        p.token(&refresh_request(&c, "garbage")).unwrap_err().code,
        "invalid_grant"
    );
    assert!(
        p.load_upstream_tokens(&t.access_token).unwrap().is_some(),
        "the rejected attempt did not consume the access mapping"
    );
    // A refresh token of another client.
    assert_eq!(
        p.token(&refresh_request(&other, t.refresh_token.as_deref().unwrap()))
            .unwrap_err()
            .code,
        "invalid_grant"
    );
}

#[test]
fn public_clients_and_revocation() {
    let idp = MockIdp::start();
    let p = proxy(&idp, |_| {});
    let r = p
        .register_client(&json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}))
        .unwrap();
    assert!(r.get("client_secret").is_none());
    let c = Client {
        id: r["client_id"].as_str().unwrap().into(),
        secret: None,
    };
    let (code, verifier) = authorize(&p, &idp, &c);
    let t = p.token(&code_request(&c, &code, &verifier)).unwrap();
    // Revoking the access token kills only it.
    p.revoke(&t.access_token, &c.id, None).unwrap();
    assert!(p.load_upstream_tokens(&t.access_token).unwrap().is_none());
    let t2 = p
        .token(&refresh_request(&c, t.refresh_token.as_deref().unwrap()))
        .unwrap();
    // Revoking the refresh token kills the grant.
    p.revoke(t2.refresh_token.as_deref().unwrap(), &c.id, None)
        .unwrap();
    assert!(p.load_upstream_tokens(&t2.access_token).unwrap().is_none());
    assert!(p
        .token(&refresh_request(&c, t2.refresh_token.as_deref().unwrap()))
        .is_err());
    // Unknown tokens are fine (RFC 7009 §2.2); unknown clients are not.
    p.revoke("garbage", &c.id, None).unwrap();
    assert_eq!(
        p.revoke("garbage", "nope", None).unwrap_err().code,
        "invalid_client"
    );
}

#[test]
fn registration_refuses_open_redirects_and_bad_metadata() {
    let idp = MockIdp::start();
    let p = proxy(&idp, |_| {});
    for uri in [
        "https://evil.example.com/cb",
        "http://localhost.evil.com/cb",
        "http://localhost@evil.com/cb",
        "http://user:pw@localhost:1/cb",
        "http://127.0.0.1:1/cb#frag",
        "javascript:alert(1)",
        "not a url",
        "HTTP://EVIL.COM",
    ] {
        let e = p.register_client(&json!({"redirect_uris": [uri]})).unwrap_err();
        assert_eq!(e.code, "invalid_redirect_uri", "{uri}");
    }
    for body in [
        json!({}),
        json!({"redirect_uris": []}),
        json!({"redirect_uris": [1]}),
        json!({"redirect_uris": [REDIRECT], "grant_types": ["password"]}),
        json!({"redirect_uris": [REDIRECT], "response_types": ["token"]}),
        json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "private_key_jwt"}),
        json!({"redirect_uris": [REDIRECT], "client_name": "x".repeat(5000)}),
        json!([1, 2]),
    ] {
        assert!(p.register_client(&body).is_err(), "{body}");
    }
    let many: Vec<String> = (0..21)
        .map(|i| format!("http://localhost:{}/cb", 1000 + i))
        .collect();
    assert!(p.register_client(&json!({"redirect_uris": many})).is_err());
    // An empty allow-list rejects everything; explicit patterns allow what they say.
    let strict = proxy(&idp, |c| c.allowed_redirect_uri_patterns = vec![]);
    assert!(strict
        .register_client(&json!({"redirect_uris": [REDIRECT]}))
        .is_err());
    let custom = proxy(&idp, |c| {
        c.allowed_redirect_uri_patterns = vec!["https://app.example.com/*".into()]
    });
    assert!(custom
        .register_client(&json!({"redirect_uris": ["https://app.example.com/cb"]}))
        .is_ok());
    assert!(custom
        .register_client(&json!({"redirect_uris": ["https://app.example.com.evil.io/cb"]}))
        .is_err());
}

#[test]
fn hostile_http_input() {
    let huge = format!("client_id={}", "a".repeat(10_000));
    assert_eq!(
        AuthorizeParams::from_query(&huge).unwrap_err().code,
        "invalid_request"
    );
    assert!(AuthorizeParams::from_query("state=a&state=b").is_err());
    let bytes = [
        b"grant_type=authorization_code&code=".as_slice(),
        &[0xff, 0xfe, 0x80],
    ]
    .concat();
    let r = TokenRequest::from_form(&bytes, None).unwrap();
    assert_eq!(r.code.as_deref(), Some("\u{fffd}\u{fffd}\u{fffd}"));
    let idp = MockIdp::start();
    let p = proxy(&idp, |_| {});
    let c = register(&p);
    let mut req = code_request(&c, r.code.as_deref().unwrap(), "v");
    req.code = r.code;
    assert_eq!(p.token(&req).unwrap_err().code, "invalid_grant");
    assert!(ConsentParams::from_form(&vec![b'x'; 70_000]).is_err());
    let e = HttpResponse::from_error(&OAuthError::invalid_grant("x"));
    assert_eq!(e.status, 400);
    assert_eq!(
        serde_json::from_str::<Value>(e.body.as_deref().unwrap()).unwrap()["error"],
        "invalid_grant"
    );
}

#[test]
fn metadata_config_and_presets() {
    let idp = MockIdp::start();
    let p = proxy(&idp, |c| c.scopes = vec!["openid".into()]);
    let m = p.authorization_server_metadata();
    assert_eq!(m["issuer"], BASE);
    assert_eq!(m["token_endpoint"], format!("{BASE}/oauth/token"));
    assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(m["scopes_supported"], json!(["openid"]));
    let bad = |f: &dyn Fn(&mut OAuthProxyConfig)| {
        let mut c = config(&idp);
        f(&mut c);
        fastmcp_auth::OAuthProxy::new(c).unwrap_err().code()
    };
    use fastmcp_auth::ErrorCode::InvalidArgument;
    assert_eq!(bad(&|c| c.base_url = "not a url".into()), InvalidArgument);
    assert_eq!(
        bad(&|c| c.upstream_token_endpoint = "ftp://x".into()),
        InvalidArgument
    );
    assert_eq!(bad(&|c| c.upstream_client_id = String::new()), InvalidArgument);
    assert_eq!(bad(&|c| c.access_token_ttl = 0), InvalidArgument);
    assert_eq!(bad(&|c| c.transaction_ttl = 0), InvalidArgument);
    assert_eq!(bad(&|c| c.redirect_path = "cb".into()), InvalidArgument);
    let g = OAuthProxyConfig::google(BASE, "id", "secret");
    assert_eq!(g.extra_authorization_params["access_type"], "offline");
    assert!(format!("{g:?}").contains("[redacted]") && !format!("{g:?}").contains("secret\""));
    let gh = OAuthProxyConfig::github(BASE, "id", "secret");
    assert!(gh.upstream_token_endpoint.contains("github.com"));
    let az = OAuthProxyConfig::azure(BASE, "my-tenant", "id", "s");
    assert!(az
        .upstream_authorization_endpoint
        .contains("/my-tenant/oauth2/v2.0/authorize"));
    // Extra authorization parameters never override the protocol's own.
    let p = proxy(&idp, |c| {
        c.consent_required = false;
        c.extra_authorization_params
            .insert("prompt".into(), "consent".into());
        c.extra_authorization_params
            .insert("client_id".into(), "evil".into());
        c.extra_authorization_params
            .insert("redirect_uri".into(), "https://evil".into());
    });
    let cl = register(&p);
    let r = p.authorize(&authorize_params(&cl)).unwrap();
    let loc = r.location().unwrap();
    assert_eq!(param(loc, "prompt").as_deref(), Some("consent"));
    assert_eq!(param(loc, "client_id"), Some(idp.settings().client_id));
    assert_eq!(
        param(loc, "redirect_uri").as_deref(),
        Some(&*format!("{BASE}/oauth/callback"))
    );
}

#[test]
fn blocking_facade_refuses_inside_a_runtime() {
    let idp = MockIdp::start();
    let p = proxy(&idp, |_| {});
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let e = rt
        .block_on(async { p.register_client(&json!({"redirect_uris": [REDIRECT]})) })
        .unwrap_err();
    assert_eq!(e.code, "server_error");
    assert!(e.description.unwrap().contains("inside an async runtime"));
}

#[test]
fn config_from_json() {
    let c = OAuthProxyConfig::from_json(&json!({
        "base_url": BASE, "upstream_authorization_endpoint": "https://idp/authorize",
        "upstream_token_endpoint": "https://idp/token", "upstream_client_id": "id", "upstream_client_secret": "s",
        "refresh_grace_window": 1.5, "claim_layout": "py", "scopes": ["a"], "consent_required": false,
        "extra_authorization_params": {"prompt": "consent"}, "upstream_token_endpoint_auth_method": "client_secret_post"
    }))
    .unwrap();
    assert_eq!(c.refresh_grace_window, Duration::from_millis(1500));
    assert_eq!(c.claim_layout, fastmcp_auth::ClaimLayout::FastmcpPython);
    assert!(!c.consent_required);
    for bad in [
        json!({"base_url": BASE}),
        json!({"base_url": BASE, "upstream_authorization_endpoint": "https://i/a", "upstream_token_endpoint": "https://i/t",
               "upstream_client_id": "id", "typo_field": 1}),
        json!({"base_url": BASE, "upstream_authorization_endpoint": "https://i/a", "upstream_token_endpoint": "https://i/t",
               "upstream_client_id": "id", "access_token_ttl": -1}),
        json!([1]),
    ] {
        assert_eq!(
            OAuthProxyConfig::from_json(&bad).unwrap_err().code(),
            fastmcp_auth::ErrorCode::InvalidArgument,
            "{bad}"
        );
    }
}

/// `preset` (what the bindings' provider classes send): the provider's settings, under the members given; the
/// endpoints and scopes stay as given.
#[test]
fn config_preset_from_json() {
    use fastmcp_auth::proxy::UpstreamAuthMethod;
    let with = |extra: Value| {
        let mut m = json!({
            "base_url": BASE, "upstream_authorization_endpoint": "https://idp/authorize",
            "upstream_token_endpoint": "https://idp/token", "upstream_client_id": "id", "upstream_client_secret": "s",
            "scopes": ["openid"]
        });
        m.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        OAuthProxyConfig::from_json(&m)
    };
    type Case<'a> = (&'a str, UpstreamAuthMethod, &'a str, &'a [(&'a str, &'a str)]);
    let cases: &[Case] = &[
        ("github", UpstreamAuthMethod::ClientSecretPost, "GitHub", &[]),
        (
            "google",
            UpstreamAuthMethod::ClientSecretBasic,
            "Google",
            &[("access_type", "offline"), ("prompt", "consent")],
        ),
        ("azure", UpstreamAuthMethod::ClientSecretPost, "Microsoft", &[]),
    ];
    for (name, method, shown, params) in cases {
        let c = with(json!({ "preset": name })).unwrap();
        assert_eq!(c.upstream_token_endpoint_auth_method, *method, "{name}");
        assert_eq!(c.provider_name.as_deref(), Some(*shown), "{name}");
        assert_eq!(
            c.upstream_authorization_endpoint, "https://idp/authorize",
            "{name}: endpoints as given"
        );
        assert_eq!(c.scopes, vec!["openid".to_string()], "{name}: scopes as given");
        for (k, v) in *params {
            assert_eq!(
                c.extra_authorization_params.get(*k).map(String::as_str),
                Some(*v),
                "{name} {k}"
            );
        }
    }
    // Members given win; parameters given add to the preset's.
    let c = with(json!({
        "preset": "google", "provider_name": "Workspace", "upstream_token_endpoint_auth_method": "client_secret_post",
        "extra_authorization_params": {"hd": "example.com", "prompt": "select_account"}
    }))
    .unwrap();
    assert_eq!(c.provider_name.as_deref(), Some("Workspace"));
    assert_eq!(
        c.upstream_token_endpoint_auth_method,
        UpstreamAuthMethod::ClientSecretPost
    );
    assert_eq!(c.extra_authorization_params["access_type"], "offline");
    assert_eq!(c.extra_authorization_params["hd"], "example.com");
    assert_eq!(c.extra_authorization_params["prompt"], "select_account");
    for bad in [json!({"preset": "okta"}), json!({"preset": 1})] {
        assert!(with(bad).is_err());
    }
}

/// `route_layout`: the endpoints metadata names and the consent form posts to, per layout (a server switching from
/// fastmcp Python keeps its URLs).
#[test]
fn route_layout_names_the_endpoints() {
    let idp = MockIdp::start();
    let cases: &[(Option<&str>, &str)] = &[(None, "/oauth"), (Some("ts"), "/oauth"), (Some("py"), "")];
    for (layout, prefix) in cases {
        let mut m = json!({
            "base_url": BASE, "upstream_authorization_endpoint": idp.authorize_url(),
            "upstream_token_endpoint": idp.token_url(), "upstream_client_id": "id",
            "upstream_client_secret": "s"
        });
        if let Some(l) = layout {
            m["route_layout"] = json!(l);
        }
        let c = OAuthProxyConfig::from_json(&m).unwrap();
        let meta = c.authorization_server_metadata();
        for (member, name) in [
            ("authorization_endpoint", "authorize"),
            ("token_endpoint", "token"),
            ("registration_endpoint", "register"),
            ("revocation_endpoint", "revoke"),
        ] {
            assert_eq!(
                meta[member],
                format!("{BASE}{prefix}/{name}"),
                "{layout:?} {member}"
            );
        }
        let p = OAuthProxy::new(c).unwrap();
        let client = register(&p);
        let page = p.authorize(&authorize_params(&client)).unwrap();
        let body = page.body.clone().unwrap();
        assert!(
            body.contains(&format!("action=\"{BASE}{prefix}/consent\"")),
            "{layout:?}: consent form posts to the layout's path"
        );
    }
    for bad in [json!("rust"), json!(1)] {
        let m = json!({
            "base_url": BASE, "upstream_authorization_endpoint": "https://idp/a", "upstream_token_endpoint": "https://idp/t",
            "upstream_client_id": "id", "upstream_client_secret": "s", "route_layout": bad
        });
        assert!(OAuthProxyConfig::from_json(&m).is_err());
    }
}

#[test]
fn upstream_claims_pass_through_when_configured() {
    use fastmcp_auth::proxy::ClaimsPassthrough;
    let idp = MockIdp::start();
    idp.configure(|s| {
        s.access_token_claims = Some(json!({
            "email": "user@example.com", "roles": ["admin"], "iss": "https://idp.example", "exp": 1,
            "scope": "everything", "client_id": "someone-else", "token_use": "refresh"
        }));
        s.id_token_claims = Some(json!({"email": "id@example.com", "name": "Ada", "nonce": null}));
    });
    // Off by default in the core: the tokens carry only our claims.
    let (_, t) = login(&proxy(&idp, |_| {}), &idp);
    let claims = dangerous::insecure_decode_claims(&t.access_token).unwrap();
    assert!(claims.get("email").is_none() && claims.get("name").is_none());

    let p = proxy(&idp, |c| {
        c.custom_claims_passthrough = Some(ClaimsPassthrough::default())
    });
    let (c, t) = login(&p, &idp);
    for token in [&t.access_token, t.refresh_token.as_ref().unwrap()] {
        let claims = dangerous::insecure_decode_claims(token).unwrap();
        // The access token's email wins over the ID token's; the ID token adds its name; arrays need
        // allow_complex_claims, null is never copied; reserved claims stay ours.
        assert_eq!(claims["email"], "user@example.com");
        assert_eq!(claims["name"], "Ada");
        assert!(claims.get("roles").is_none() && claims.get("nonce").is_none());
        assert_eq!(claims["iss"], BASE);
        assert_eq!(claims["client_id"], c.id.as_str());
        assert_eq!(claims["scope"], json!(["openid", "email"]));
        assert!(claims["exp"].as_u64().unwrap() > 1);
    }
    assert!(p.load_upstream_tokens(&t.access_token).unwrap().is_some());
    // Refreshed tokens carry the claims of the refreshed upstream tokens.
    idp.configure(|s| s.access_token_claims = Some(json!({"email": "new@example.com"})));
    let t2 = p
        .token(&refresh_request(&c, t.refresh_token.as_ref().unwrap()))
        .unwrap();
    let claims = dangerous::insecure_decode_claims(&t2.access_token).unwrap();
    assert_eq!(
        (claims["email"].as_str(), claims["name"].as_str()),
        (Some("new@example.com"), Some("Ada"))
    );

    // From JSON (what the bindings pass): a prefix and an allow-list.
    let mut cfg = config(&idp);
    cfg.custom_claims_passthrough = ClaimsPassthrough::from_json(
        &json!({"claim_prefix": "upstream_", "allowed_claims": ["name"], "from_access_token": false}),
    )
    .unwrap();
    let p = OAuthProxy::new(cfg).unwrap();
    let (_, t) = login(&p, &idp);
    let claims = dangerous::insecure_decode_claims(&t.access_token).unwrap();
    assert_eq!(claims["upstream_name"], "Ada");
    assert!(claims.get("email").is_none() && claims.get("upstream_email").is_none());
}

/// RFC 9700 / the README's promise: upstream's free text never reaches the client, and only an upstream
/// `invalid_grant` ends a refresh grant; anything else leaves the same refresh token usable.
#[test]
fn upstream_text_never_reaches_clients() {
    let idp = MockIdp::start();
    let p = proxy(&idp, |_| {});
    let (c, t) = login(&p, &idp);
    let rt = t.refresh_token.unwrap();
    let secret_text = "db-7.internal.corp refused user 4411 (tenant acme)";
    for (status, body) in [
        (
            400,
            json!({"error": "temporarily_unavailable", "error_description": secret_text}),
        ),
        (
            400,
            json!({"error": "invalid_client", "error_description": secret_text}),
        ),
        (
            401,
            json!({"error": "unauthorized_client", "error_description": secret_text}),
        ),
        (400, json!({"error": "made_up", "error_description": secret_text})),
        (
            503,
            json!({"error": "server_error", "error_description": secret_text}),
        ),
        (
            400,
            json!({"error": "invalid_scope", "error_description": secret_text}),
        ),
    ] {
        idp.configure(|s| s.fail_next = Some((1, status, body.clone())));
        let e = p.token(&refresh_request(&c, &rt)).unwrap_err();
        let shown = format!("{e} {}", e.to_json());
        assert!(!shown.contains("db-7") && !shown.contains("4411"), "{shown}");
        assert_ne!(
            e.code, "invalid_client",
            "upstream's invalid_client is not the MCP client's"
        );
        assert_ne!(e.code, "invalid_grant");
    }
    // The claim was put back every time: the same refresh token still works.
    let next = p.token(&refresh_request(&c, &rt)).unwrap();
    // Upstream's invalid_grant ends the grant, with our own text.
    idp.configure(|s| {
        s.fail_next = Some((
            1,
            400,
            json!({"error": "invalid_grant", "error_description": secret_text}),
        ))
    });
    let rt2 = next.refresh_token.unwrap();
    let e = p.token(&refresh_request(&c, &rt2)).unwrap_err();
    assert_eq!(e.code, "invalid_grant");
    assert!(!e.to_json().to_string().contains("db-7"));
    assert!(p.token(&refresh_request(&c, &rt2)).is_err());
}

/// The forwarded-login-link attack with consent turned off: the authorize step alone binds the browser.
#[test]
fn consent_off_still_binds_the_browser() {
    let idp = MockIdp::start();
    let p = proxy(&idp, |c| c.consent_required = false);
    let c = register(&p);
    let page = p.authorize(&authorize_params(&c)).unwrap();
    assert_eq!(page.status, 302);
    let cookie = page
        .cookie_header()
        .expect("the redirect upstream sets the binding cookie");
    let cb = idp.login(page.location().unwrap()).unwrap();
    let query = query_of(&cb);
    // Another browser (here: the real cookie plus a planted duplicate, which counts as none).
    let planted = format!("{cookie}; fastmcp_auth_browser={}", "Z".repeat(43));
    let r = p
        .handle_callback(
            &CallbackParams::from_query(&query)
                .unwrap()
                .with_cookie(Some(&planted)),
        )
        .unwrap();
    assert_eq!(r.status, 403);
    assert!(r.location().is_none());
    // The refusal killed the transaction: the right browser cannot use it afterwards either.
    assert!(p
        .handle_callback(
            &CallbackParams::from_query(&query)
                .unwrap()
                .with_cookie(Some(&cookie))
        )
        .is_err());
}

#[test]
fn registration_and_authorize_inputs_are_bounded() {
    let idp = MockIdp::start();
    let p = proxy(&idp, |c| {
        c.client_cache_size = 2;
        c.max_transactions_per_client = 3;
    });
    let bad = |body: Value| p.register_client(&body).unwrap_err();
    assert_eq!(
        bad(json!({"redirect_uris": [REDIRECT], "client_uri": "x".repeat(20_000)})).code,
        "invalid_client_metadata"
    );
    assert_eq!(
        bad(json!({"redirect_uris": [REDIRECT], "client_name": "n".repeat(300)})).code,
        "invalid_client_metadata"
    );
    for name in [
        "a\u{0}b",
        "Claude\u{202e}moc.live",
        "a\u{200b}b",
        "a\u{2028}b",
        "",
        "   ",
    ] {
        assert_eq!(
            bad(json!({"redirect_uris": [REDIRECT], "client_name": name})).code,
            "invalid_client_metadata",
            "{name:?}"
        );
    }
    let many: Vec<String> = (0..21)
        .map(|i| format!("http://127.0.0.1:{}/cb", 1000 + i))
        .collect();
    assert_eq!(
        bad(json!({ "redirect_uris": many })).code,
        "invalid_client_metadata"
    );
    for uri in [
        "http://127.0.0.1:1/cb\r\nX: y",
        "http://127.0.0.1:1/c b",
        "http://127.0.0.1:1/cb\u{0}",
        "http://127.0.0.1:1/cb\u{b}",
        "http://127.0.0.1:1/cb\t",
        "http://127.0.0.1.attacker.example/cb",
        "http://localhost.attacker.example/cb",
        "http://user@127.0.0.1:1/cb",
        "https://attacker.example/cb",
    ] {
        let e = bad(json!({ "redirect_uris": [uri] }));
        assert_eq!(e.code, "invalid_redirect_uri", "{uri:?}");
    }
    // The bounded cache does not forget clients: they are read back from the store.
    let clients: Vec<Client> = (0..5).map(|_| register(&p)).collect();
    let params = authorize_params;
    for c in &clients {
        assert_eq!(p.authorize(&params(c)).unwrap().status, 200);
    }
    // Open transactions per client are capped (the last of the five clients already has one open; the count
    // lives beside the client cache, which is 2 here).
    let c = &clients[4];
    for _ in 0..2 {
        assert_eq!(p.authorize(&params(c)).unwrap().status, 200);
    }
    // The next one gives up the oldest (never a lockout: client ids are public).
    let r = p.authorize(&params(c)).unwrap();
    assert_eq!(r.status, 200);
    // Other clients are not affected.
    assert_eq!(p.authorize(&params(&clients[3])).unwrap().status, 200);
    // The loopback port rule (RFC 8252 §7.3): another ephemeral port, the code goes to that port.
    let mut other_port = params(&clients[2]);
    other_port.redirect_uri = Some("http://127.0.0.1:51004/callback".into());
    let page = p.authorize(&other_port).unwrap();
    assert_eq!(page.status, 200);
    let up = p.handle_consent(&consent_of(&page, "approve")).unwrap();
    let cb = idp.login(up.location().unwrap()).unwrap();
    let back = p.handle_callback(&callback_of(&page, &cb)).unwrap();
    assert!(back
        .location()
        .unwrap()
        .starts_with("http://127.0.0.1:51004/callback?code="));
    // Registered without a port (RFC 8252's form), used with one.
    let r = p
        .register_client(
            &json!({"redirect_uris": ["http://localhost/callback"], "token_endpoint_auth_method": "none"}),
        )
        .unwrap();
    let mut q = params(&clients[3]);
    q.client_id = Some(r["client_id"].as_str().unwrap().into());
    q.redirect_uri = Some("http://localhost:61000/callback".into());
    assert_eq!(p.authorize(&q).unwrap().status, 200);
}

#[test]
fn unused_registrations_lapse_and_used_ones_live_on() {
    let idp = MockIdp::start();
    let p = proxy(&idp, |c| c.unused_client_ttl = 1);
    let unused = register(&p);
    let (used, _) = login(&p, &idp);
    std::thread::sleep(Duration::from_millis(1300));
    let params = authorize_params;
    assert_eq!(p.authorize(&params(&unused)).unwrap_err().code, "invalid_client");
    assert_eq!(
        p.authorize(&params(&used)).unwrap().status,
        200,
        "a client with a grant lives on"
    );
    // A fresh proxy on the same store agrees (the lifetime is in the store, not only the cache).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let record = rt
        .block_on(p.as_async().store().get(&format!("client:{}", used.id)))
        .unwrap()
        .unwrap();
    let expires = record["expiresAt"].as_str().unwrap();
    assert!(expires > "2026", "{expires}");
}

/// Walks authorize → consent → upstream → callback → token with `f` adjusting the authorize request; returns the
/// token response (or the token endpoint's error).
fn login_with(
    p: &OAuthProxy,
    idp: &MockIdp,
    c: &Client,
    f: impl FnOnce(&mut AuthorizeParams),
    g: impl FnOnce(&mut TokenRequest),
) -> Result<TokenResponse, OAuthError> {
    let verifier = CodeVerifier::generate(64).unwrap();
    let mut params = AuthorizeParams {
        client_id: Some(c.id.clone()),
        redirect_uri: Some(REDIRECT.into()),
        response_type: Some("code".into()),
        state: Some("st".into()),
        code_challenge: Some(verifier.challenge(fastmcp_auth::ChallengeMethod::S256)),
        code_challenge_method: Some("S256".into()),
        ..Default::default()
    };
    f(&mut params);
    let page = p.authorize(&params)?;
    assert_eq!(page.status, 200, "{:?}", page.location());
    let up = p.handle_consent(&consent_of(&page, "approve"))?;
    let cb = idp.login(up.location().unwrap()).unwrap();
    let back = p.handle_callback(&callback_of(&page, &cb))?;
    let code = param(back.location().unwrap(), "code").unwrap();
    let mut req = code_request(c, &code, verifier.as_str());
    g(&mut req);
    p.token(&req)
}

/// Entra ID's scope rules (fastmcp Python's AzureProvider): prefixed upstream, OIDC-only extras on token requests,
/// the prefix stripped from what upstream grants; other providers untouched (the table is in upstream_scopes.rs).
#[test]
fn upstream_scope_prefix_end_to_end() {
    let idp = MockIdp::start();
    idp.configure(|s| s.scope = Some("api://app-id/read openid offline_access".into()));
    let p = proxy(&idp, |c| {
        c.upstream_scope_prefix = Some("api://app-id/".into());
        c.additional_authorize_scopes = vec!["User.Read".into(), "offline_access".into()];
        c.valid_scopes = Some(vec!["read".into(), "openid".into()]);
    });
    let c = register(&p);
    let verifier = CodeVerifier::generate(64).unwrap();
    let params = AuthorizeParams {
        client_id: Some(c.id.clone()),
        redirect_uri: Some(REDIRECT.into()),
        response_type: Some("code".into()),
        state: Some("st".into()),
        scope: Some("read openid".into()),
        code_challenge: Some(verifier.challenge(fastmcp_auth::ChallengeMethod::S256)),
        code_challenge_method: Some("S256".into()),
        ..Default::default()
    };
    let page = p.authorize(&params).unwrap();
    let up = p.handle_consent(&consent_of(&page, "approve")).unwrap();
    let loc = up.location().unwrap().to_owned();
    assert_eq!(
        param(&loc, "scope").as_deref(),
        Some("api://app-id/read openid User.Read offline_access")
    );
    let cb = idp.login(&loc).unwrap();
    let back = p.handle_callback(&callback_of(&page, &cb)).unwrap();
    let code = param(back.location().unwrap(), "code").unwrap();
    let form = |k: &str| {
        idp.counts()
            .last_token_form
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        form("scope").as_deref(),
        Some("api://app-id/read openid offline_access"),
        "the code exchange names this API's scopes and the OIDC extras only (AADSTS28000 / AADSTS28003)"
    );
    let t = p.token(&code_request(&c, &code, verifier.as_str())).unwrap();
    assert_eq!(
        t.scope.as_deref(),
        Some("read openid"),
        "our token: the client's grant"
    );
    let up = p.load_upstream_tokens(&t.access_token).unwrap().unwrap();
    assert_eq!(
        up.scope,
        ["read", "openid", "offline_access"],
        "upstream's grant, in the client's terms"
    );
    let r = p
        .token(&refresh_request(&c, t.refresh_token.as_deref().unwrap()))
        .unwrap();
    assert_eq!(form("grant_type").as_deref(), Some("refresh_token"));
    assert!(
        form("scope").unwrap().starts_with("api://app-id/read"),
        "the refresh asks in upstream's terms: {:?}",
        form("scope")
    );
    assert!(!r.scope.unwrap_or_default().contains("api://"));
    // Without a prefix: scopes go upstream as given, the exchange carries none.
    let q = proxy(&idp, |_| {});
    let c = register(&q);
    login_with(&q, &idp, &c, |a| a.scope = Some("openid email".into()), |_| {}).unwrap();
    assert_eq!(form("scope"), None);
    // A prefix that is not a scope-token ending in `/` is refused.
    for bad in ["api://app-id", "api://app id/", ""] {
        let mut cfg = OAuthProxyConfig::new(BASE, "https://idp/a", "https://idp/t", "id", "s");
        cfg.upstream_scope_prefix = Some(bad.into());
        assert!(fastmcp_auth::proxy::OAuthProxy::new(cfg).is_err(), "{bad:?}");
    }
}

fn claims_of(token: &str) -> Value {
    fastmcp_auth::dangerous::insecure_decode_claims(token)
        .map(Value::Object)
        .unwrap()
}

/// RFC 8707 and the MCP spec's token audience binding.
#[test]
fn resource_becomes_the_audience_and_sticks_to_the_grant() {
    let idp = MockIdp::start();
    let p = proxy(&idp, |c| {
        c.accepted_resources = vec!["https://mcp.example.com/mcp".into()]
    });
    let c = register(&p);
    let resource = format!("{BASE}/mcp");
    let t = login_with(
        &p,
        &idp,
        &c,
        |a| a.resource = Some(resource.clone()),
        |r| r.resource = Some(resource.clone()),
    )
    .unwrap();
    assert_eq!(claims_of(&t.access_token)["aud"], resource);
    assert!(p.load_upstream_tokens(&t.access_token).unwrap().is_some());
    // A refresh keeps the resource; naming another is invalid_target and keeps the refresh token usable.
    let rt = t.refresh_token.unwrap();
    let mut other = refresh_request(&c, &rt);
    other.resource = Some("https://mcp.example.com/mcp".into());
    assert_eq!(p.token(&other).unwrap_err().code, "invalid_target");
    let mut same = refresh_request(&c, &rt);
    same.resource = Some(resource.clone());
    let t2 = p.token(&same).unwrap();
    assert_eq!(claims_of(&t2.access_token)["aud"], resource);
    assert_eq!(claims_of(t2.refresh_token.as_deref().unwrap())["aud"], resource);
    // Without resource, aud stays base_url (what fastmcp issues).
    let t3 = login_with(&p, &idp, &c, |_| {}, |_| {}).unwrap();
    assert_eq!(claims_of(&t3.access_token)["aud"], BASE);
    // Another origin, a fragment, a relative resource: invalid_target, redirected to the client (RFC 6749 §4.1.2.1).
    for bad in [
        "https://attacker.example/mcp",
        &format!("{BASE}/mcp#x"),
        "/mcp",
        "mcp",
    ] {
        let r = p
            .authorize(&AuthorizeParams {
                resource: Some(bad.into()),
                ..authorize_params(&c)
            })
            .unwrap();
        assert_eq!(
            param(r.location().unwrap(), "error").as_deref(),
            Some("invalid_target"),
            "{bad}"
        );
    }
    // The token request may not switch the resource of the code.
    let e = login_with(
        &p,
        &idp,
        &c,
        |a| a.resource = Some(resource.clone()),
        |r| r.resource = Some("https://mcp.example.com/mcp".into()),
    )
    .unwrap_err();
    assert_eq!(e.code, "invalid_target");
    // A token of ours re-signed for another server's audience is refused by our own verification.
    let issuer = p.as_async().jwt_issuer().unwrap();
    let mut claims = fastmcp_auth::dangerous::insecure_decode_claims(&t3.access_token).unwrap();
    claims.insert("aud".into(), "https://other-server.example/mcp".into());
    let forged = issuer.sign_claims(&claims).unwrap();
    assert!(p.load_upstream_tokens(&forged).unwrap().is_none());
    // Forwarded upstream only when asked.
    let fwd = proxy(&idp, |c| c.forward_resource = true);
    let c2 = register(&fwd);
    login_with(&fwd, &idp, &c2, |a| a.resource = Some(resource.clone()), |_| {}).unwrap();
    assert!(idp
        .counts()
        .last_token_form
        .contains(&("resource".into(), resource.clone())));
    login_with(&p, &idp, &c, |a| a.resource = Some(resource.clone()), |_| {}).unwrap();
    assert!(!idp.counts().last_token_form.iter().any(|(k, _)| k == "resource"));
}

/// fastmcp Python #2534: GitHub answers without `expires_in` and without a refresh token.
#[test]
fn upstream_without_expires_in() {
    let idp = MockIdp::start();
    idp.configure(|s| {
        s.expires_in = 0;
        s.issue_refresh_tokens = false;
    });
    let p = proxy(&idp, |c| c.access_token_ttl = 1234);
    let (_, t) = login(&p, &idp);
    assert_eq!(t.expires_in, 365 * 86_400, "no way to refresh: the long fallback");
    assert!(t.refresh_token.is_none());
    let claims = claims_of(&t.access_token);
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        365 * 86_400
    );
    // With a refresh token, access_token_ttl applies.
    idp.configure(|s| s.issue_refresh_tokens = true);
    let (_, t) = login(&p, &idp);
    assert_eq!(t.expires_in, 1234);
    let p2 = proxy(&idp, |c| c.fallback_access_token_expiry_seconds = 777);
    idp.configure(|s| s.issue_refresh_tokens = false);
    assert_eq!(login(&p2, &idp).1.expires_in, 777);
    // Absurd lifetimes from upstream are clamped, never a panic or a lost code.
    idp.configure(|s| {
        s.issue_refresh_tokens = true;
        s.expires_in = 250_000_000_000;
    });
    let (_, t) = login(&p, &idp);
    assert_eq!(t.expires_in, fastmcp_auth::proxy::MAX_LIFETIME_SECS);
}

/// fastmcp Python's `fastmcp_access_token_expiry_seconds`: our access lifetime decoupled from upstream's, but never
/// longer than upstream's when nothing could renew it. Table: (override, upstream expires_in, upstream refresh
/// token) → our `expires_in`.
#[test]
fn access_lifetime_override() {
    let idp = MockIdp::start();
    let cases: &[(Option<u64>, u64, bool, u64)] = &[
        (None, 600, true, 600),
        (Some(60), 600, true, 60),
        (Some(86_400), 600, true, 86_400),
        (Some(86_400), 600, false, 600),
        (Some(60), 600, false, 60),
        (Some(60), 0, false, 60),
        (Some(86_400), 0, true, 86_400),
    ];
    for &(over, expires_in, refresh, want) in cases {
        idp.configure(|s| {
            s.expires_in = expires_in;
            s.issue_refresh_tokens = refresh;
        });
        let p = proxy(&idp, |c| c.fastmcp_access_token_expiry_seconds = over);
        let (_, t) = login(&p, &idp);
        assert_eq!(t.expires_in, want, "{over:?} {expires_in} {refresh}");
        let claims = claims_of(&t.access_token);
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            want
        );
    }
    let base = json!({
        "base_url": BASE, "upstream_authorization_endpoint": "https://idp/a", "upstream_token_endpoint": "https://idp/t",
        "upstream_client_id": "id", "upstream_client_secret": "s"
    });
    for bad in [json!(0), json!(-1), json!("60"), json!(1e12)] {
        let mut m = base.clone();
        m["fastmcp_access_token_expiry_seconds"] = bad.clone();
        assert!(OAuthProxyConfig::from_json(&m).is_err(), "{bad}");
    }
}

/// RFC 6749 §6 and Entra's AADSTS90009.
#[test]
fn scopes_on_refresh() {
    let idp = MockIdp::start();
    idp.configure(|s| s.scope = None); // upstream never says: our grant's scopes apply
    let p = proxy(&idp, |c| {
        c.valid_scopes = Some(vec!["read".into(), "write".into(), "admin".into()])
    });
    let c = register(&p);
    let t = login_with(&p, &idp, &c, |a| a.scope = Some("read write".into()), |_| {}).unwrap();
    assert_eq!(t.scope.as_deref(), Some("read write"));
    let rt = t.refresh_token.unwrap();
    // Without scope: the grant's scopes go upstream.
    let t2 = p.token(&refresh_request(&c, &rt)).unwrap();
    assert!(idp
        .counts()
        .last_token_form
        .contains(&("scope".into(), "read write".into())));
    // Wider than the grant: invalid_scope, and the refresh token still works.
    let rt2 = t2.refresh_token.unwrap();
    let mut wider = refresh_request(&c, &rt2);
    wider.scope = Some("read admin".into());
    assert_eq!(p.token(&wider).unwrap_err().code, "invalid_scope");
    // Outside valid_scopes: invalid_scope too.
    wider.scope = Some("root".into());
    assert_eq!(p.token(&wider).unwrap_err().code, "invalid_scope");
    // Narrowed: the access token says read; the new refresh token keeps the grant (RFC 6749 §6).
    let mut narrow = refresh_request(&c, &rt2);
    narrow.scope = Some("read".into());
    let t3 = p.token(&narrow).unwrap();
    assert_eq!(t3.scope.as_deref(), Some("read"));
    assert_eq!(claims_of(&t3.access_token)["scope"], json!(["read"]));
    assert_eq!(
        claims_of(t3.refresh_token.as_deref().unwrap())["scope"],
        json!(["read", "write"])
    );
    // The switch for providers that object.
    let quiet = proxy(&idp, |c| c.send_scope_on_refresh = false);
    let (c4, t4) = login(&quiet, &idp);
    quiet
        .token(&refresh_request(&c4, t4.refresh_token.as_deref().unwrap()))
        .unwrap();
    assert!(!idp.counts().last_token_form.iter().any(|(k, _)| k == "scope"));
    // valid_scopes at registration and authorize.
    assert_eq!(
        p.register_client(&json!({"redirect_uris": [REDIRECT], "scope": "read root"}))
            .unwrap_err()
            .code,
        "invalid_client_metadata"
    );
    let r = p
        .authorize(&AuthorizeParams {
            scope: Some("read root".into()),
            ..authorize_params(&c)
        })
        .unwrap();
    assert_eq!(
        param(r.location().unwrap(), "error").as_deref(),
        Some("invalid_scope")
    );
}

/// RFC 6750 §3, RFC 9728 §5.1: the resource server's answers.
#[test]
fn bearer_checks_and_protected_resource_metadata() {
    let idp = MockIdp::start();
    let p = proxy(&idp, |c| {
        c.scopes = vec!["openid".into(), "offline_access".into()]
    });
    let resource = format!("{BASE}/mcp");
    let meta = p.as_async().protected_resource_metadata(&resource);
    assert_eq!(meta["resource"], resource);
    assert_eq!(meta["authorization_servers"], json!([BASE]));
    assert_eq!(
        meta["scopes_supported"],
        json!(["openid"]),
        "never offline_access"
    );
    let expected_url = format!("{BASE}/.well-known/oauth-protected-resource/mcp");
    let challenge = |r: fastmcp_auth::proxy::BearerCheck| match r {
        fastmcp_auth::proxy::BearerCheck::Challenge(h) => h,
        other => panic!("expected a challenge, got {other:?}"),
    };
    let www = |h: &HttpResponse| {
        h.headers
            .iter()
            .find(|(k, _)| k == "WWW-Authenticate")
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let none = challenge(p.check_bearer(None, &resource, &[]).unwrap());
    assert_eq!(none.status, 401);
    assert_eq!(www(&none), format!("Bearer resource_metadata=\"{expected_url}\""));
    for bad in ["Bearer nope", "Basic abc", "Bearer ", "bearer a.b.c"] {
        let h = challenge(p.check_bearer(Some(bad), &resource, &[]).unwrap());
        assert_eq!(h.status, 401, "{bad}");
    }
    let c = register(&p);
    let t = login_with(&p, &idp, &c, |a| a.resource = Some(resource.clone()), |_| {}).unwrap();
    let header = format!("Bearer {}", t.access_token);
    match p
        .check_bearer(Some(&header), &resource, &["openid".into()])
        .unwrap()
    {
        fastmcp_auth::proxy::BearerCheck::Authorized { claims, upstream } => {
            assert_eq!(claims["client_id"], c.id.as_str());
            assert!(upstream.access_token.starts_with("up-at-"));
        }
        other => panic!("{other:?}"),
    }
    let h = challenge(
        p.check_bearer(Some(&header), &resource, &["admin".into()])
            .unwrap(),
    );
    assert_eq!(h.status, 403);
    assert!(www(&h).contains("error=\"insufficient_scope\"") && www(&h).contains("scope=\"admin\""));
    // A token for this server's other resource is refused at this one.
    let other = format!("{BASE}/other");
    let h = challenge(p.check_bearer(Some(&header), &other, &[]).unwrap());
    assert_eq!(h.status, 401);
    assert!(www(&h).contains("invalid_token"));
}

/// RFC 6749 §5.2: a client the proxy no longer knows hears invalid_client (and registers again).
#[test]
fn unknown_client_at_the_token_endpoint_is_invalid_client() {
    let idp = MockIdp::start();
    let p = proxy(&idp, |_| {});
    let (c, t) = login(&p, &idp);
    // The registration is gone from the store (expired, deleted); a replica without it in its cache asks.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(p.as_async().store().delete(&format!("client:{}", c.id)))
        .unwrap();
    let mut cfg = config(&idp);
    cfg.token_storage = Some(p.as_async().store().clone());
    cfg.encryption_disabled = true; // the store is already the first proxy's encrypted one
    let other = OAuthProxy::new(cfg).unwrap();
    let e = other
        .token(&refresh_request(&c, t.refresh_token.as_deref().unwrap()))
        .unwrap_err();
    assert_eq!((e.code.as_str(), e.status), ("invalid_client", 401));
    let mut gone = refresh_request(&c, "not-even-a-token");
    gone.client_id = Some("deleted-client".into());
    assert_eq!(p.token(&gone).unwrap_err().code, "invalid_client");
    let mut code = code_request(&c, "x", "y");
    code.client_id = None;
    code.client_secret = None;
    assert_eq!(p.token(&code).unwrap_err().code, "invalid_client");
}

/// No `Debug` output of the proxy's types shows a token, code, verifier, secret or cookie.
#[test]
fn debug_output_never_shows_secrets() {
    let idp = MockIdp::start();
    let p = proxy(&idp, |_| {});
    let (c, t) = login(&p, &idp);
    let rt = t.refresh_token.clone().unwrap();
    let up = p.load_upstream_tokens(&t.access_token).unwrap().unwrap();
    let req = TokenRequest {
        code: Some("code-secret-1".into()),
        code_verifier: Some("verifier-secret-2".into()),
        ..refresh_request(&c, &rt)
    };
    let mut secrets = vec![
        t.access_token.clone(),
        rt.clone(),
        up.access_token.clone(),
        up.refresh_token.clone().unwrap(),
        "code-secret-1".into(),
        "verifier-secret-2".into(),
    ];
    secrets.extend(c.secret.clone());
    let mut text = format!("{t:?} {up:?} {req:?} {p:?}");
    // Every record in the store, as the proxy's types print them.
    let rt_ = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = p.as_async().store().clone();
    for key in rt_.block_on(store.keys()).unwrap() {
        let v = rt_.block_on(store.get(&key)).unwrap().unwrap();
        use fastmcp_auth::proxy::{RegisteredClient, TokenMapping, UpstreamTokens};
        if let Ok(x) = serde_json::from_value::<RegisteredClient>(v.clone()) {
            text += &format!("{x:?}");
        }
        if let Ok(x) = serde_json::from_value::<TokenMapping>(v.clone()) {
            text += &format!("{x:?}");
        }
        if let Ok(x) = serde_json::from_value::<UpstreamTokens>(v.clone()) {
            text += &format!("{x:?}");
            secrets.push(x.access_token.clone());
        }
    }
    for s in &secrets {
        assert!(!text.contains(s.as_str()), "a secret in Debug output: {text}");
    }
    assert!(text.contains("[redacted]"));
}

/// A store that fails the n-th write (save, delete or take) from the moment it is armed, once.
struct FlakyStore {
    inner: Arc<dyn Store>,
    countdown: std::sync::atomic::AtomicI64,
    /// How many consecutive writes fail from the n-th on (1: once).
    span: std::sync::atomic::AtomicI64,
    /// Whether it passes compare-and-swap through (a write) or says it cannot (the scheme for hosts' stores).
    swaps: bool,
    /// How long each write of upstream tokens takes (so a replay can land while a redemption is still issuing).
    upstream_write_delay: Duration,
    /// After the next successful compare-and-swap, this many reads of `code:` keys fail (`reads_to_fail`).
    fail_reads_after_swap: std::sync::atomic::AtomicI64,
    reads_to_fail: std::sync::atomic::AtomicI64,
    /// The next compare-and-swap is applied, then reported as failed (a reply lost on the way back).
    lose_next_swap_reply: std::sync::atomic::AtomicBool,
}

impl FlakyStore {
    /// Passes everything through to `inner`, failing nothing until armed.
    fn over(inner: Arc<dyn Store>) -> Self {
        FlakyStore {
            inner,
            countdown: 0.into(),
            span: 1.into(),
            swaps: true,
            upstream_write_delay: Duration::ZERO,
            fail_reads_after_swap: 0.into(),
            reads_to_fail: 0.into(),
            lose_next_swap_reply: false.into(),
        }
    }
    fn arm(&self, n: i64) {
        self.arm_span(n, 1);
    }
    fn arm_span(&self, n: i64, count: i64) {
        self.span.store(count, std::sync::atomic::Ordering::SeqCst);
        self.countdown.store(n, std::sync::atomic::Ordering::SeqCst);
    }
    fn write(&self) -> fastmcp_auth::Result<()> {
        let left = self.countdown.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        let span = self.span.load(std::sync::atomic::Ordering::SeqCst);
        if left <= 1 && left > 1 - span {
            return Err(fastmcp_auth::Error::Io {
                op: "write",
                source: std::io::Error::other("injected failure (disk full)"),
            });
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Store for FlakyStore {
    async fn save(&self, key: &str, value: Value, ttl: Option<Duration>) -> fastmcp_auth::Result<()> {
        self.write()?;
        if key.starts_with("upstream:") && !self.upstream_write_delay.is_zero() {
            tokio::time::sleep(self.upstream_write_delay).await;
        }
        self.inner.save(key, value, ttl).await
    }
    async fn get(&self, key: &str) -> fastmcp_auth::Result<Option<Value>> {
        if key.starts_with("code:") {
            let left = self
                .reads_to_fail
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            if left > 0 {
                return Err(fastmcp_auth::Error::Io {
                    op: "read",
                    source: std::io::Error::other("injected read failure"),
                });
            }
        }
        self.inner.get(key).await
    }
    async fn delete(&self, key: &str) -> fastmcp_auth::Result<bool> {
        self.write()?;
        self.inner.delete(key).await
    }
    async fn take(&self, key: &str) -> fastmcp_auth::Result<Option<Value>> {
        self.write()?;
        self.inner.take(key).await
    }
    async fn cleanup(&self) -> fastmcp_auth::Result<u64> {
        self.inner.cleanup().await
    }
    async fn size(&self) -> fastmcp_auth::Result<u64> {
        self.inner.size().await
    }
    async fn keys(&self) -> fastmcp_auth::Result<Vec<String>> {
        self.inner.keys().await
    }
    async fn replace(
        &self,
        key: &str,
        expected: &Value,
        new: Value,
    ) -> fastmcp_auth::Result<Option<fastmcp_auth::store::Replaced>> {
        if !self.swaps {
            return Ok(None);
        }
        self.write()?;
        let r = self.inner.replace(key, expected, new).await;
        if matches!(r, Ok(Some(fastmcp_auth::store::Replaced::Replaced))) {
            let n = self
                .fail_reads_after_swap
                .swap(0, std::sync::atomic::Ordering::SeqCst);
            self.reads_to_fail.store(n, std::sync::atomic::Ordering::SeqCst);
        }
        if self
            .lose_next_swap_reply
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(fastmcp_auth::Error::Io {
                op: "replace",
                source: std::io::Error::other("injected lost reply"),
            });
        }
        r
    }
}

/// README: "lose nothing already stored". Every write of a code exchange and of a refresh fails once, in turn:
/// the client's retry then succeeds, promptly (no pending rotation left to wait for, no spent code).
#[test]
fn any_single_failed_write_loses_nothing() {
    for swaps in [true, false] {
        any_single_failed_write_loses_nothing_with(swaps);
    }
}

fn any_single_failed_write_loses_nothing_with(swaps: bool) {
    let idp = MockIdp::start();
    let flaky = Arc::new(FlakyStore {
        swaps,
        ..FlakyStore::over(Arc::new(fastmcp_auth::store::MemoryStore::new()))
    });
    let p = proxy(&idp, |c| c.token_storage = Some(flaky.clone()));
    let mut failures_seen = 0;
    // The code exchange: the swap to a tombstone (or, without swap, the take), then the upstream tokens and two
    // mappings (then, without swap, the tombstone; and the client's
    // registration lifetime); n = 1..=8 covers them all with room to spare.
    for n in 1..=8 {
        let c = register(&p);
        let (code, verifier) = authorize(&p, &idp, &c);
        flaky.arm(n);
        let first = p.token(&code_request(&c, &code, &verifier));
        flaky.arm(0);
        if let Err(e) = first {
            failures_seen += 1;
            assert_eq!((e.code.as_str(), e.status), ("server_error", 503), "write {n}");
            let t = p.token(&code_request(&c, &code, &verifier));
            assert!(
                t.is_ok(),
                "write {n} failed once: the retry must succeed, got {t:?}"
            );
        }
    }
    // The refresh: take the claim, the pending rotation, upstream's fresh tokens, two mappings, the done record.
    for n in 1..=8 {
        let (c, t) = login(&p, &idp);
        let rt = t.refresh_token.unwrap();
        flaky.arm(n);
        let first = p.token(&refresh_request(&c, &rt));
        flaky.arm(0);
        if let Err(e) = first {
            failures_seen += 1;
            assert_eq!(e.status, 503, "write {n}: {e:?}");
            let started = std::time::Instant::now();
            let retry = p.token(&refresh_request(&c, &rt));
            assert!(
                retry.is_ok(),
                "write {n} failed once: the retry must succeed, got {retry:?}"
            );
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "write {n}: the retry waited"
            );
        }
    }
    assert!(
        failures_seen >= 3,
        "the injected failures reached the client {failures_seen} times"
    );
    // A longer outage right after upstream's fresh tokens were stored: the token mappings cannot be written and
    // neither can the claim be given back (5 tries). The pending rotation keeps the claim; once it is stale, the
    // next presentation gets it back and succeeds. (An outage that also loses upstream's freshly rotated refresh
    // token cannot be repaired by anyone: upstream no longer accepts the old one.)
    let (c, t) = login(&p, &idp);
    let rt = t.refresh_token.unwrap();
    flaky.arm_span(4, 12);
    assert_eq!(p.token(&refresh_request(&c, &rt)).unwrap_err().status, 503);
    flaky.arm(0);
    std::thread::sleep(Duration::from_millis(4500)); // upstream_request_timeout (2 s) + 2 s
    let recovered = p.token(&refresh_request(&c, &rt));
    assert!(
        recovered.is_ok(),
        "the claim came back from the stale rotation: {recovered:?}"
    );
}

/// Issue 15 §3: an IdP with large tokens must not make every login fail: the passed-through claims that do not
/// fit are dropped, and what is issued verifies.
#[test]
fn oversized_passthrough_claims_are_dropped_not_fatal() {
    use fastmcp_auth::proxy::ClaimsPassthrough;
    let idp = MockIdp::start();
    let mut claims = serde_json::Map::new();
    for i in 0..12 {
        claims.insert(format!("big{i}"), json!("v".repeat(1900)));
    }
    claims.insert("small".into(), json!("kept"));
    idp.configure(|s| s.access_token_claims = Some(Value::Object(claims.clone())));
    let p = proxy(&idp, |c| {
        c.custom_claims_passthrough = Some(ClaimsPassthrough::default())
    });
    let (_, t) = login(&p, &idp);
    assert!(t.access_token.len() <= fastmcp_auth::jwt::MAX_TOKEN_BYTES);
    assert!(
        p.load_upstream_tokens(&t.access_token).unwrap().is_some(),
        "what is issued verifies"
    );
    assert_eq!(
        claims_of(&t.access_token)["small"],
        "kept",
        "the largest claims go first"
    );
    idp.configure(|s| s.access_token_claims = None);
}

/// Issue 15 §1: absurd lifetimes from upstream in every spelling are clamped; the code is never spent for it.
#[test]
fn absurd_upstream_lifetimes_in_every_spelling() {
    for form in [false, true] {
        let idp = MockIdp::start();
        idp.configure(|s| {
            s.form_responses = form;
            s.expires_in = u64::MAX;
        });
        let p = proxy(&idp, |_| {});
        let (c, t) = login(&p, &idp);
        assert_eq!(
            t.expires_in,
            fastmcp_auth::proxy::MAX_LIFETIME_SECS,
            "form={form}"
        );
        let r = p
            .token(&refresh_request(&c, t.refresh_token.as_deref().unwrap()))
            .unwrap();
        assert_eq!(r.expires_in, fastmcp_auth::proxy::MAX_LIFETIME_SECS);
    }
}

/// Scopes: a client's registered scope bounds what it may request; with valid_scopes our tokens never carry a
/// scope upstream granted beyond them; the resource is canonicalised so every spelling works at the resource.
#[test]
fn scope_and_resource_edges() {
    let idp = MockIdp::start(); // upstream grants "openid email" whatever is asked
    let p = proxy(&idp, |c| {
        c.valid_scopes = Some(vec!["openid".into(), "profile".into()])
    });
    let r = p
        .register_client(&json!({"redirect_uris": [REDIRECT], "scope": "openid"}))
        .unwrap();
    let c = Client {
        id: r["client_id"].as_str().unwrap().into(),
        secret: r["client_secret"].as_str().map(String::from),
    };
    let denied = p
        .authorize(&AuthorizeParams {
            scope: Some("openid profile".into()),
            ..authorize_params(&c)
        })
        .unwrap();
    assert_eq!(
        param(denied.location().unwrap(), "error").as_deref(),
        Some("invalid_scope")
    );
    let t = login_with(
        &p,
        &idp,
        &c,
        |a| {
            a.scope = Some("openid openid".into());
            a.resource = Some("HTTP://127.0.0.1:8000/x/../mcp".into());
        },
        |_| {},
    )
    .unwrap();
    assert_eq!(
        claims_of(&t.access_token)["scope"],
        json!(["openid"]),
        "email is not ours to hand out"
    );
    assert_eq!(claims_of(&t.access_token)["aud"], format!("{BASE}/mcp"));
    let ok = p
        .check_bearer(
            Some(&format!("Bearer\t{}", t.access_token)),
            &format!("{BASE}/mcp"),
            &[],
        )
        .unwrap();
    assert!(matches!(ok, fastmcp_auth::proxy::BearerCheck::Authorized { .. }));
    // expires_in said but not a positive number: the common default, never the one-year fallback.
    for (v, want) in [
        (json!("1.5"), 1),
        (json!("1e30"), fastmcp_auth::proxy::MAX_LIFETIME_SECS),
        (json!(-5), 3600),
        (json!("abc"), 3600),
    ] {
        idp.configure(|s| {
            s.fail_next = Some((
                1,
                200,
                json!({"access_token": "up-at-x", "token_type": "Bearer", "expires_in": v.clone()}),
            ))
        });
        let (_, t) = login(&proxy(&idp, |_| {}), &idp);
        assert_eq!(t.expires_in, want, "{v}");
    }
}

/// Issue 15 §2 on a real full file system: a DiskStore on a tiny tmpfs filled to the last byte. While it is full,
/// the code exchange and the refresh answer 503; once space is freed, the code exchange's retry succeeds at once
/// (the code was given back into the space the failed attempt freed) and the refresh's within seconds (its claim
/// waits in the pending rotation until that is stale). Needs root to mount; says so and passes otherwise.
#[test]
fn a_full_disk_loses_nothing() {
    use std::io::Write as _;
    let mnt = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=512k", "tmpfs"])
        .arg(mnt.path())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("a_full_disk_loses_nothing: cannot mount a tmpfs here (needs root); not run");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.path().to_owned());
    let idp = MockIdp::start();
    // An upstream that keeps its refresh token (GitHub, Google). One that rotates it (Entra) and whose fresh token
    // cannot be stored anywhere is beyond repair by anyone: it no longer accepts the old one.
    idp.configure(|s| s.rotate_refresh_tokens = false);
    let store = DiskStore::open(DiskStoreOptions {
        cleanup_interval: None,
        ..DiskStoreOptions::new(mnt.path().join("store"))
    })
    .unwrap();
    let p = proxy(&idp, |c| c.token_storage = Some(Arc::new(store)));
    let (c, t) = login(&p, &idp);
    let rt = t.refresh_token.unwrap();
    let c2 = register(&p);
    let (code, verifier) = authorize(&p, &idp, &c2);
    // Fill the file system to the last byte.
    let filler = mnt.path().join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    while f.write_all(&[0u8; 1024]).is_ok() {}
    let _ = f.write_all(&[0u8; 1]);
    drop(f);
    let exchange = p.token(&code_request(&c2, &code, &verifier));
    let refresh = p.token(&refresh_request(&c, &rt));
    std::fs::remove_file(&filler).unwrap();
    let e = exchange.as_ref().expect_err("the disk was full");
    assert_eq!(e.status, 503, "{e:?}");
    assert!(
        p.token(&code_request(&c2, &code, &verifier)).is_ok(),
        "the code was given back: the retry succeeds at once"
    );
    assert_eq!(refresh.as_ref().expect_err("the disk was full").status, 503);
    let started = std::time::Instant::now();
    let retried = loop {
        match p.token(&refresh_request(&c, &rt)) {
            Ok(t) => break Ok(t),
            Err(e) if started.elapsed() < Duration::from_secs(15) => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => break Err(e),
        }
    };
    assert!(retried.is_ok(), "the refresh token works again: {retried:?}");
}

/// Issue 13 §5: a registration flood. Memory stays bounded by the client cache, every registration stays usable
/// (read back from the store), and unused ones lapse so the store shrinks back.
#[test]
fn registration_flood_is_bounded() {
    let idp = MockIdp::start();
    let p = proxy(&idp, |c| {
        c.client_cache_size = 50;
        c.unused_client_ttl = 1;
        c.rate_limits.enabled = false; // what a flood past the limits costs (the limits: rate_limits.rs)
    });
    let ids: Vec<Client> = (0..2_000).map(|_| register(&p)).collect();
    assert!(p.as_async().cached_clients() <= 50);
    // Any of them still works (the cache is a cache).
    assert_eq!(p.authorize(&authorize_params(&ids[7])).unwrap().status, 200);
    assert!(p.as_async().cached_clients() <= 50);
    std::thread::sleep(Duration::from_millis(1300));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = p.as_async().store().clone();
    rt.block_on(store.cleanup()).unwrap();
    let left = rt.block_on(store.keys()).unwrap();
    assert!(
        !left.iter().any(|k| k.starts_with("client:")),
        "unused registrations lapsed: {} left",
        left.len()
    );
    assert_eq!(
        p.authorize(&authorize_params(&ids[7])).unwrap_err().code,
        "invalid_client"
    );
}

/// Issue 14 §4 in fastmcp Python's claim layout too: `aud` is the resource, verification accepts it.
#[test]
fn resource_audience_in_the_python_layout() {
    let idp = MockIdp::start();
    let p = proxy(&idp, |c| {
        c.claim_layout = fastmcp_auth::ClaimLayout::FastmcpPython
    });
    let c = register(&p);
    let resource = format!("{BASE}/mcp");
    let t = login_with(&p, &idp, &c, |a| a.resource = Some(resource.clone()), |_| {}).unwrap();
    let claims = claims_of(&t.access_token);
    assert_eq!(claims["aud"], resource);
    assert!(claims["scope"].is_string(), "the Python layout");
    let ok = p
        .check_bearer(
            Some(&format!("Bearer {}", t.access_token)),
            &resource,
            &["openid".into()],
        )
        .unwrap();
    assert!(matches!(ok, fastmcp_auth::proxy::BearerCheck::Authorized { .. }));
    let r = p
        .token(&refresh_request(&c, t.refresh_token.as_deref().unwrap()))
        .unwrap();
    assert_eq!(claims_of(&r.access_token)["aud"], resource);
}

/// Upstream's granted `scope` goes into our tokens only as RFC 6749 scope-tokens: control characters, quotes and
/// other text upstream may send never reach the client's token or the token response.
#[test]
fn upstream_scope_text_is_filtered() {
    let idp = MockIdp::start();
    idp.configure(|s| s.scope = Some("openid openid SECRET\"q \u{0}x \u{202e}evil ok,email".into()));
    let p = proxy(&idp, |_| {});
    let (_, t) = login(&p, &idp);
    assert_eq!(
        claims_of(&t.access_token)["scope"],
        json!(["openid", "ok", "email"])
    );
    assert_eq!(t.scope.as_deref(), Some("openid ok email"));
}
