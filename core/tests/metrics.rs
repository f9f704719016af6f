//! The proxy's Prometheus metrics after a real flow against the mock identity provider: each counter moves, the
//! text is valid exposition, and no label carries a client id, token, code or address.

use fastmcp_auth::blocking::OAuthProxy;
use fastmcp_auth::proxy::{
    AuthorizeParams, CallbackParams, ConsentParams, Limit, OAuthProxyConfig, TokenRequest,
};
use fastmcp_auth::{ChallengeMethod, CodeVerifier};
use fastmcp_auth_mock_idp::MockIdp;
use serde_json::json;

mod support;
use support::hidden;

const REDIRECT: &str = "http://127.0.0.1:33418/callback";

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{series} not in:\n{text}"))
}

#[test]
fn a_flow_moves_every_counter_and_no_label_names_anyone() {
    let idp = MockIdp::start();
    let s = idp.settings();
    let mut c = OAuthProxyConfig::new(
        "http://127.0.0.1:8000",
        idp.authorize_url(),
        idp.token_url(),
        s.client_id,
        s.client_secret,
    );
    c.jwt_signing_key = Some("metrics-test-signing-key".into());
    c.encryption_key = Some("metrics-test-encryption-key".into());
    c.rate_limits.revoke = Some(Limit {
        per_minute: 1,
        burst: 1,
    });
    let p = OAuthProxy::new(c).unwrap();
    let reg = p
        .register_client(&json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}))
        .unwrap();
    let client_id = reg["client_id"].as_str().unwrap().to_owned();
    let v = CodeVerifier::generate(64).unwrap();
    let page = p
        .authorize(&AuthorizeParams {
            client_id: Some(client_id.clone()),
            redirect_uri: Some(REDIRECT.into()),
            response_type: Some("code".into()),
            code_challenge: Some(v.challenge(ChallengeMethod::S256)),
            code_challenge_method: Some("S256".into()),
            ..Default::default()
        })
        .unwrap();
    let cookie = page.cookie_header();
    // A consent POST without the browser's cookie: binding failure.
    let form = |cookie: Option<&str>| {
        ConsentParams {
            transaction_id: Some(hidden(&page, "transaction_id")),
            action: Some("approve".into()),
            csrf_token: Some(hidden(&page, "csrf_token")),
            ..Default::default()
        }
        .with_cookie(cookie)
    };
    assert_eq!(p.handle_consent(&form(None)).unwrap().status, 403);
    let up = p.handle_consent(&form(cookie.as_deref())).unwrap();
    let callback = idp.login(up.location().unwrap()).unwrap();
    let q = url::Url::parse(&callback).unwrap().query().unwrap().to_owned();
    let back = p
        .handle_callback(
            &CallbackParams::from_query(&q)
                .unwrap()
                .with_cookie(cookie.as_deref()),
        )
        .unwrap();
    let code = url::Url::parse(back.location().unwrap())
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let exchange = TokenRequest {
        grant_type: Some("authorization_code".into()),
        code: Some(code.clone()),
        redirect_uri: Some(REDIRECT.into()),
        code_verifier: Some(v.as_str().into()),
        client_id: Some(client_id.clone()),
        ..Default::default()
    };
    let t = p.token(&exchange).unwrap();
    let refresh = |rt: &str| TokenRequest {
        grant_type: Some("refresh_token".into()),
        refresh_token: Some(rt.into()),
        client_id: Some(client_id.clone()),
        ..Default::default()
    };
    let rt = t.refresh_token.clone().unwrap();
    p.token(&refresh(&rt)).unwrap();
    p.token(&refresh(&rt)).unwrap(); // within the grace window
    assert_eq!(p.token(&exchange).unwrap_err().code, "invalid_grant"); // replayed (its grant revoked)
    let _ = p.revoke("x", &client_id, None);
    assert_eq!(p.revoke("x", &client_id, None).unwrap_err().status, 429);

    let text = p.as_async().metrics_text();
    assert!(text.ends_with("# EOF\n"), "{text}");
    #[rustfmt::skip]
    let expected: &[(&str, f64)] = &[
        ("fastmcp_auth_registrations_total", 1.0),
        ("fastmcp_auth_consent_total{outcome=\"binding_failed\"}", 1.0),
        ("fastmcp_auth_consent_total{outcome=\"approved\"}", 1.0),
        ("fastmcp_auth_tokens_issued_total{grant=\"authorization_code\"}", 1.0),
        ("fastmcp_auth_tokens_issued_total{grant=\"refresh_token\"}", 2.0),
        ("fastmcp_auth_codes_total{outcome=\"redeemed\"}", 1.0),
        ("fastmcp_auth_codes_total{outcome=\"replayed\"}", 1.0),
        ("fastmcp_auth_refresh_total{outcome=\"grace_reuse\"}", 1.0),
        ("fastmcp_auth_upstream_requests_total{grant=\"authorization_code\",outcome=\"ok\"}", 1.0),
        ("fastmcp_auth_upstream_requests_total{grant=\"refresh_token\",outcome=\"ok\"}", 1.0),
        ("fastmcp_auth_upstream_request_duration_seconds_count{grant=\"authorization_code\"}", 1.0),
        ("fastmcp_auth_rate_limited_total{endpoint=\"revoke\"}", 1.0),
    ];
    for (series, want) in expected {
        assert_eq!(value(&text, series), *want, "{series}");
    }
    assert!(
        value(
            &text,
            "fastmcp_auth_store_operations_total{op=\"save\",outcome=\"ok\"}"
        ) >= 4.0
    );
    assert!(
        value(
            &text,
            "fastmcp_auth_store_operation_duration_seconds_count{op=\"take\"}"
        ) >= 2.0
    );
    assert!(!text.contains("tokens_issued_by_client"), "opt-in only");
    for secret in [
        client_id.as_str(),
        code.as_str(),
        t.access_token.as_str(),
        rt.as_str(),
        "127.0.0.1",
    ] {
        assert!(!text.contains(secret), "the metrics show {secret}");
    }
}

/// Opt-in per-client counts, and the stores' sweep figures.
#[test]
fn client_ids_when_opted_in_and_sweeps() {
    let mut c = OAuthProxyConfig::new(
        "http://127.0.0.1:8000",
        "http://127.0.0.1:1/authorize",
        "http://127.0.0.1:1/token",
        "up",
        "up-secret",
    );
    c.metrics_client_ids = true;
    // Built from JSON too.
    let j = json!({"base_url": "http://127.0.0.1:8000", "upstream_authorization_endpoint": "http://127.0.0.1:1/a",
        "upstream_token_endpoint": "http://127.0.0.1:1/t", "upstream_client_id": "u", "upstream_client_secret": "s",
        "metrics_client_ids": true});
    assert!(OAuthProxyConfig::from_json(&j).unwrap().metrics_client_ids);
    let p = OAuthProxy::new(c).unwrap();
    let text = p.as_async().metrics_text();
    assert!(
        text.contains("# TYPE fastmcp_auth_tokens_issued_by_client counter"),
        "{text}"
    );

    // A DiskStore sweep (here: the full scan at open, and an explicit cleanup) shows in every proxy's metrics.
    let dir = tempfile::tempdir().unwrap();
    let store = fastmcp_auth::blocking::Store::disk(fastmcp_auth::DiskStoreOptions::new(dir.path())).unwrap();
    store
        .save("gone", json!(1), Some(std::time::Duration::from_millis(1)))
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let before = p.as_async().metrics_text();
    let runs = |t: &str| value(t, "fastmcp_auth_store_sweeps_total{store=\"disk\"}");
    let removed = |t: &str| {
        value(
            t,
            "fastmcp_auth_store_sweep_removed_entries_total{store=\"disk\"}",
        )
    };
    store.as_async().as_sync().unwrap().cleanup_sync().unwrap();
    let after = p.as_async().metrics_text();
    assert!(runs(&after) > runs(&before), "{after}");
    assert!(removed(&after) >= removed(&before) + 1.0, "{after}");
    assert!(after.contains("fastmcp_auth_store_sweep_duration_seconds_count{store=\"disk\"}"));
}
