//! Client ID Metadata Documents end to end: the proxy fetches documents from a real HTTPS server on 127.0.0.1
//! (tests/mock-idp's doc host, its own CA), logs a CIMD client in through the mock identity provider, and refuses
//! every hostile document, caching nothing.

use std::sync::Arc;
use std::time::Duration;

use fastmcp_auth::blocking::OAuthProxy;
use fastmcp_auth::proxy::{
    CallbackParams, CimdOptions, ConsentParams, OAuthProxyConfig, RevocationRequest, TokenRequest,
};
use fastmcp_auth::store::{MemoryStore, Store};
use fastmcp_auth::CodeVerifier;
use fastmcp_auth_mock_idp::doc_host::{DocHost, GOOD, HOSTILE};
use fastmcp_auth_mock_idp::MockIdp;
use serde_json::json;

mod support;
use support::{hidden, params, query_param, REDIRECT};

const BASE: &str = "http://127.0.0.1:8000";

/// CIMD options trusting `host`'s CA and letting loopback through (the test-only switch); no cool-down.
fn cimd_options(host: &DocHost) -> CimdOptions {
    CimdOptions {
        allow_private_networks_for_testing: true,
        extra_root_certificates_pem: vec![host.ca_pem().to_owned()],
        fetch_timeout: Duration::from_secs(1),
        failure_cooldown: Duration::ZERO,
        ..Default::default()
    }
}

fn config(idp: &MockIdp, host: &DocHost) -> OAuthProxyConfig {
    let s = idp.settings();
    let mut c = OAuthProxyConfig::new(
        BASE,
        idp.authorize_url(),
        idp.token_url(),
        s.client_id,
        s.client_secret,
    );
    c.jwt_signing_key = Some("test-jwt-signing-key".into());
    c.encryption_key = Some("test-encryption-key".into());
    c.cimd = cimd_options(host);
    c
}

fn proxy(idp: &MockIdp, host: &DocHost, f: impl FnOnce(&mut OAuthProxyConfig)) -> OAuthProxy {
    let mut c = config(idp, host);
    f(&mut c);
    OAuthProxy::new(c).unwrap()
}

/// authorize → consent (checked for the client's and redirect's hosts) → upstream → callback → our code.
fn login_code(p: &OAuthProxy, idp: &MockIdp, client_id: &str, verifier: &CodeVerifier) -> String {
    let page = p.authorize(&params(client_id, verifier)).unwrap();
    assert_eq!(page.status, 200);
    let body = page.body.as_deref().unwrap();
    assert!(body.contains("Doc Host Client"), "{body}");
    assert!(body.contains("published by <strong>localhost</strong>"), "{body}");
    assert!(
        body.contains("sent to <strong>127.0.0.1:41234</strong>"),
        "{body}"
    );
    let consent = ConsentParams {
        transaction_id: Some(hidden(&page, "transaction_id")),
        action: Some("approve".into()),
        csrf_token: Some(hidden(&page, "csrf_token")),
        ..Default::default()
    }
    .with_cookie(page.cookie_header().as_deref());
    let upstream = p.handle_consent(&consent).unwrap();
    let callback = idp.login(upstream.location().unwrap()).unwrap();
    let query = url::Url::parse(&callback).unwrap().query().unwrap().to_owned();
    let back = p
        .handle_callback(
            &CallbackParams::from_query(&query)
                .unwrap()
                .with_cookie(page.cookie_header().as_deref()),
        )
        .unwrap();
    let to_client = back.location().unwrap();
    assert!(to_client.starts_with(REDIRECT), "{to_client}");
    query_param(to_client, "code").unwrap()
}

#[test]
fn a_cimd_client_logs_in_refreshes_and_revokes() {
    let idp = MockIdp::start();
    let host = DocHost::start();
    let p = proxy(&idp, &host, |_| {});
    let id = host.url("good.json");
    assert_eq!(
        p.as_async().authorization_server_metadata()["client_id_metadata_document_supported"],
        true
    );
    let verifier = CodeVerifier::generate(64).unwrap();
    let code = login_code(&p, &idp, &id, &verifier);
    let t = p
        .token(&TokenRequest {
            grant_type: Some("authorization_code".into()),
            code: Some(code),
            redirect_uri: Some(REDIRECT.into()),
            code_verifier: Some(verifier.as_str().into()),
            client_id: Some(id.clone()),
            ..Default::default()
        })
        .unwrap();
    let claims = fastmcp_auth::dangerous::insecure_decode_claims(&t.access_token).unwrap();
    assert_eq!(claims["client_id"], id.as_str());
    let rt = t.refresh_token.clone().unwrap();
    let t2 = p
        .token(&TokenRequest {
            grant_type: Some("refresh_token".into()),
            refresh_token: Some(rt),
            client_id: Some(id.clone()),
            ..Default::default()
        })
        .unwrap();
    assert!(p.load_upstream_tokens(&t2.access_token).unwrap().is_some());
    // A client secret is never asked for; one sent is not a way in for another client id.
    let e = p
        .token(&TokenRequest {
            grant_type: Some("refresh_token".into()),
            refresh_token: t2.refresh_token.clone(),
            client_id: Some(host.url("good-minimal.json")),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(e.code, "invalid_grant");
    p.revoke_request(&RevocationRequest {
        token: Some(t2.access_token.clone()),
        client_id: Some(id.clone()),
        ..Default::default()
    })
    .unwrap();
    assert!(p.load_upstream_tokens(&t2.access_token).unwrap().is_none());
    // One fetch served authorize, consent, callback, token, refresh and revoke (max-age=300).
    assert_eq!(host.fetches("good.json"), 1);
}

#[test]
fn every_good_document_is_accepted_with_loopback_port_leniency() {
    let idp = MockIdp::start();
    let host = DocHost::start();
    let p = proxy(&idp, &host, |_| {});
    for name in GOOD {
        let v = CodeVerifier::generate(64).unwrap();
        let mut a = params(&host.url(name), &v);
        // The documents list http://127.0.0.1/callback: any port (RFC 8252 §7.3).
        a.redirect_uri = Some("http://127.0.0.1:50123/callback".into());
        let r = p.authorize(&a);
        assert!(r.as_ref().is_ok_and(|r| r.status == 200), "{name}: {r:?}");
    }
}

#[test]
fn hostile_documents_are_refused_and_never_cached() {
    let idp = MockIdp::start();
    let host = DocHost::start();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let s = store.clone();
    let p = proxy(&idp, &host, |c| {
        c.token_storage = Some(s);
        c.encryption_disabled = true;
    });
    for (name, error) in HOSTILE {
        let v = CodeVerifier::generate(64).unwrap();
        for attempt in 1..=2 {
            let started = std::time::Instant::now();
            let e = p.authorize(&params(&host.url(name), &v)).unwrap_err();
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "{name} took {:?}",
                started.elapsed()
            );
            let d = e.description.clone().unwrap_or_default();
            assert!(d.contains(error), "{name}: {d}");
            assert!(
                matches!(e.code.as_str(), "invalid_client" | "temporarily_unavailable"),
                "{name}: {e:?}"
            );
            assert!(matches!(e.status, 400 | 503), "{name}: {e:?}");
            // Nothing cached: the second attempt fetches again.
            assert_eq!(host.fetches(name), attempt, "{name}");
        }
    }
    let keys = fastmcp_auth::blocking::Store::from_async(store).keys().unwrap();
    assert!(keys.iter().all(|k| !k.starts_with("cimd:")), "{keys:?}");
}

#[test]
fn request_side_attacks() {
    let idp = MockIdp::start();
    let host = DocHost::start();
    let p = proxy(&idp, &host, |c| {
        c.require_pkce = false;
        c.allow_plain_pkce = true;
    });
    let id = host.url("good.json");
    let v = CodeVerifier::generate(64).unwrap();
    // A redirect URI the document does not list: a plain 400, never a redirect there.
    let mut a = params(&id, &v);
    a.redirect_uri = Some("https://attacker.example/cb".into());
    let e = p.authorize(&a).unwrap_err();
    assert_eq!((e.code.as_str(), e.status), ("invalid_request", 400));
    // Listed in the document but refused by the proxy's policy (loopback only by default).
    a.redirect_uri = Some("https://client.example/cb".into());
    assert_eq!(p.authorize(&a).unwrap_err().code, "invalid_request");
    // PKCE S256 is required of a URL client even where the configuration would let others off.
    let mut a = params(&id, &v);
    a.code_challenge = None;
    a.code_challenge_method = None;
    let r = p.authorize(&a).unwrap();
    assert_eq!(
        query_param(r.location().unwrap(), "error").as_deref(),
        Some("invalid_request")
    );
    let mut a = params(&id, &v);
    a.code_challenge = Some(v.as_str().into());
    a.code_challenge_method = Some("plain".into());
    let r = p.authorize(&a).unwrap();
    assert_eq!(
        query_param(r.location().unwrap(), "error").as_deref(),
        Some("invalid_request")
    );
    // URL shapes refused before any fetch.
    let fetched = host.fetches("good.json");
    for bad in [
        format!("{id}?x=1"),
        format!("{id}#frag"),
        format!("{}/a/../good.json", host.base_url()),
        host.base_url().replace("localhost", "LOCALHOST") + "/good.json",
        format!("{}/", host.base_url()),
        "https://user:pw@localhost/good.json".into(),
    ] {
        let e = p.authorize(&params(&bad, &v)).unwrap_err();
        assert_eq!((e.code.as_str(), e.status), ("invalid_client", 400), "{bad}");
    }
    assert_eq!(host.fetches("good.json"), fetched);
}

#[test]
fn loopback_and_private_hosts_are_refused_unless_the_test_switch_is_on() {
    assert!(!CimdOptions::default().allow_private_networks_for_testing);
    let idp = MockIdp::start();
    let host = DocHost::start();
    let p = proxy(&idp, &host, |c| c.cimd.allow_private_networks_for_testing = false);
    let v = CodeVerifier::generate(64).unwrap();
    // `localhost` is a name that resolves to loopback; 127.0.0.1 and [::1] are literals.
    for id in [
        host.url("good.json"),
        host.url("good.json").replace("localhost", "127.0.0.1"),
        host.url("good.json").replace("localhost", "[::1]"),
        "https://169.254.169.254/latest/meta-data.json".into(),
        "https://10.0.0.1/client.json".into(),
        "https://[::ffff:7f00:1]/client.json".into(),
    ] {
        let e = p.authorize(&params(&id, &v)).unwrap_err();
        let d = e.description.clone().unwrap_or_default();
        assert!(d.contains("non-public address"), "{id}: {d}");
    }
    assert_eq!(
        host.fetches("good.json"),
        0,
        "nothing was ever sent to the loopback host"
    );
    // Without our CA, the certificate is not trusted.
    let p = proxy(&idp, &host, |c| c.cimd.extra_root_certificates_pem.clear());
    let e = p.authorize(&params(&host.url("good.json"), &v)).unwrap_err();
    assert!(e.description.unwrap().contains("could not connect"));
}

#[test]
fn cache_is_shared_refreshed_and_dropped_as_the_host_answers() {
    use fastmcp_auth_mock_idp::doc_host::good_document;
    let idp = MockIdp::start();
    let host = DocHost::start();
    let id = host.url("dynamic.json");
    let v = CodeVerifier::generate(64).unwrap();
    let shared: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let replica = |store: &Arc<dyn Store>, min: u64| {
        let s = store.clone();
        proxy(&idp, &host, move |c| {
            c.token_storage = Some(s);
            c.cimd.min_cache_ttl = min;
        })
    };
    let (a, b) = (replica(&shared, 60), replica(&shared, 60));
    a.authorize(&params(&id, &v)).unwrap();
    b.authorize(&params(&id, &v)).unwrap();
    assert_eq!(
        host.fetches("dynamic.json"),
        1,
        "replicas share the cached document (max-age=300)"
    );

    // A document fresh for 0 s (`max-age=0` with min_cache_ttl 0): fetched again on every use.
    let c = replica(&(Arc::new(MemoryStore::new()) as Arc<dyn Store>), 0);
    host.set_dynamic(Some((
        200,
        good_document(&id).to_string(),
        Some("max-age=0".into()),
    )));
    c.authorize(&params(&id, &v)).unwrap();
    c.authorize(&params(&id, &v)).unwrap();
    assert_eq!(host.fetches("dynamic.json"), 3);

    // The host fails (5xx): the live cached copy keeps the client working.
    host.set_dynamic(Some((500, "{}".into(), None)));
    assert_eq!(c.authorize(&params(&id, &v)).unwrap().status, 200);
    assert_eq!(host.fetches("dynamic.json"), 4, "it did try");

    // The owner withdraws the document (404): the copy is dropped and the client refused ...
    host.set_dynamic(Some((404, "{}".into(), None)));
    assert_eq!(c.authorize(&params(&id, &v)).unwrap_err().code, "invalid_client");
    // ... so a later outage has no copy to fall back on.
    host.set_dynamic(Some((500, "{}".into(), None)));
    assert_eq!(
        c.authorize(&params(&id, &v)).unwrap_err().code,
        "temporarily_unavailable"
    );

    // An invalid new version also drops the copy (the owner changed it).
    host.set_dynamic(Some((
        200,
        good_document(&id).to_string(),
        Some("max-age=0".into()),
    )));
    c.authorize(&params(&id, &v)).unwrap();
    let mut changed = good_document(&id);
    changed["redirect_uris"] = json!([]);
    host.set_dynamic(Some((200, changed.to_string(), None)));
    assert_eq!(c.authorize(&params(&id, &v)).unwrap_err().code, "invalid_client");
    host.set_dynamic(Some((500, "{}".into(), None)));
    assert_eq!(
        c.authorize(&params(&id, &v)).unwrap_err().code,
        "temporarily_unavailable"
    );
}

#[test]
fn a_failing_host_cools_down() {
    let idp = MockIdp::start();
    let host = DocHost::start();
    let p = proxy(&idp, &host, |c| c.cimd.failure_cooldown = Duration::from_secs(30));
    let v = CodeVerifier::generate(64).unwrap();
    let started = std::time::Instant::now();
    assert!(p.authorize(&params(&host.url("drip.json"), &v)).is_err());
    assert!(started.elapsed() < Duration::from_secs(3));
    // The same host again, another document: refused at once without a request.
    let started = std::time::Instant::now();
    let e = p.authorize(&params(&host.url("good.json"), &v)).unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(e.code, "temporarily_unavailable");
    assert!(e.description.unwrap().contains("failed recently"));
    assert_eq!(host.fetches("good.json"), 0);
}

#[test]
fn concurrent_requests_share_one_fetch() {
    let idp = MockIdp::start();
    let host = DocHost::start();
    let p = Arc::new(proxy(&idp, &host, |_| {}));
    let id = host.url("good.json");
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (p, id) = (p.clone(), id.clone());
            std::thread::spawn(move || {
                let v = CodeVerifier::generate(64).unwrap();
                p.authorize(&params(&id, &v)).map(|r| r.status)
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap().unwrap(), 200);
    }
    assert_eq!(host.fetches("good.json"), 1);
}

#[test]
fn disabled_means_unknown_and_unadvertised() {
    let idp = MockIdp::start();
    let host = DocHost::start();
    let p = proxy(&idp, &host, |c| c.cimd.enabled = false);
    assert!(p
        .as_async()
        .authorization_server_metadata()
        .get("client_id_metadata_document_supported")
        .is_none());
    let v = CodeVerifier::generate(64).unwrap();
    let e = p.authorize(&params(&host.url("good.json"), &v)).unwrap_err();
    assert_eq!(e.description.as_deref(), Some("Unknown client_id"));
    assert_eq!(host.fetches("good.json"), 0);
}

#[test]
fn options_from_json_and_bad_options() {
    let idp = MockIdp::start();
    let host = DocHost::start();
    let s = idp.settings();
    let base = json!({
        "base_url": BASE,
        "upstream_authorization_endpoint": idp.authorize_url(),
        "upstream_token_endpoint": idp.token_url(),
        "upstream_client_id": s.client_id,
        "upstream_client_secret": s.client_secret,
    });
    let with = |cimd: serde_json::Value| {
        let mut c = base.clone();
        c["cimd"] = cimd;
        OAuthProxyConfig::from_json(&c)
    };
    assert!(!with(json!(false)).unwrap().cimd.enabled);
    assert!(with(json!(true)).unwrap().cimd.enabled);
    let c = with(json!({
        "allow_private_networks_for_testing": true,
        "extra_root_certificates_pem": [host.ca_pem()],
        "fetch_timeout": 2.5,
        "max_document_bytes": 4096,
        "cache_ttl": 120,
        "min_cache_ttl": 10,
        "max_cache_ttl": 600,
        "failure_cooldown": 0,
    }))
    .unwrap();
    assert!(c.cimd.allow_private_networks_for_testing && c.cimd.fetch_timeout == Duration::from_millis(2500));
    for (bad, why) in [
        (json!("yes"), "must be true, false or an object"),
        (
            json!({"allow_private_networks": true}),
            "unknown config member `cimd.allow_private_networks`",
        ),
        (json!({"fetch_timeout": -1}), "cimd.fetch_timeout"),
        (json!({"fetch_timeout": 0}), "cimd.fetch_timeout"),
        (json!({"max_document_bytes": 10}), "cimd.max_document_bytes"),
        (
            json!({"min_cache_ttl": 100, "max_cache_ttl": 10}),
            "min_cache_ttl",
        ),
        (json!({"extra_root_certificates_pem": ["not a pem"]}), "PEM"),
        (json!({"extra_root_certificates_pem": "pem"}), "array of PEM"),
    ] {
        let r = with(bad.clone()).and_then(|c| OAuthProxy::new(c).map(|_| ()));
        let e = r.unwrap_err().to_string();
        assert!(e.contains(why), "{bad}: {e}");
    }
    let mut c = config(&idp, &host);
    c.cimd.extra_root_certificates_pem =
        vec!["-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into()];
    assert!(OAuthProxy::new(c).unwrap_err().to_string().contains("PEM"));
}
