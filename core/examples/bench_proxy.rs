//! Throughput of the proxy's code exchange and refresh with a DiskStore, against a running mock identity
//! provider (scripts/bench-proxy-vs-fastmcp.sh). Usage: bench_proxy <idp base url> <dir> <n>

use std::sync::Arc;
use std::time::Instant;

use fastmcp_auth::blocking::OAuthProxy;
use fastmcp_auth::proxy::{AuthorizeParams, CallbackParams, OAuthProxyConfig, TokenRequest};
use fastmcp_auth::store::{DiskStore, DiskStoreOptions};
use fastmcp_auth::{ChallengeMethod, CodeVerifier};
use fastmcp_auth_mock_idp::browser_login;
use serde_json::json;

const REDIRECT: &str = "http://127.0.0.1:33418/callback";

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let (idp, dir, n) = (&a[0], &a[1], a[2].parse::<usize>().unwrap());
    let mut c = OAuthProxyConfig::new(
        "http://127.0.0.1:8000",
        format!("{idp}/authorize"),
        format!("{idp}/token"),
        "upstream-client",
        "upstream secret+/=",
    );
    c.token_storage = Some(Arc::new(DiskStore::open(DiskStoreOptions::new(dir)).unwrap()));
    c.jwt_signing_key = Some("bench-jwt-key".into());
    c.encryption_key = Some("bench-encryption-key".into());
    c.consent_required = false;
    let p = OAuthProxy::new(c).unwrap();
    let reg = p
        .register_client(&json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}))
        .unwrap();
    let client_id = reg["client_id"].as_str().unwrap().to_owned();
    // Setup (not timed): n codes through the whole flow.
    let mut codes = Vec::with_capacity(n);
    for _ in 0..n {
        let v = CodeVerifier::generate(64).unwrap();
        let r = p
            .authorize(&AuthorizeParams {
                client_id: Some(client_id.clone()),
                redirect_uri: Some(REDIRECT.into()),
                response_type: Some("code".into()),
                code_challenge: Some(v.challenge(ChallengeMethod::S256)),
                code_challenge_method: Some("S256".into()),
                ..Default::default()
            })
            .unwrap();
        let cb = browser_login(r.location().unwrap()).unwrap();
        let q = url::Url::parse(&cb).unwrap().query().unwrap().to_owned();
        let back = p
            .handle_callback(&CallbackParams::from_query(&q).unwrap())
            .unwrap();
        let code = url::Url::parse(back.location().unwrap())
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned();
        codes.push((code, v.as_str().to_owned()));
    }
    let t = Instant::now();
    let mut refresh_tokens = Vec::with_capacity(n);
    for (code, verifier) in &codes {
        let r = p
            .exchange_authorization_code(&TokenRequest {
                grant_type: Some("authorization_code".into()),
                code: Some(code.clone()),
                code_verifier: Some(verifier.clone()),
                client_id: Some(client_id.clone()),
                redirect_uri: Some(REDIRECT.into()),
                ..Default::default()
            })
            .unwrap();
        refresh_tokens.push(r.refresh_token.unwrap());
    }
    let exchange = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for rt in &refresh_tokens {
        p.exchange_refresh_token(&TokenRequest {
            grant_type: Some("refresh_token".into()),
            refresh_token: Some(rt.clone()),
            client_id: Some(client_id.clone()),
            ..Default::default()
        })
        .unwrap();
    }
    let refresh = t.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"exchange_per_s": n as f64 / exchange, "refresh_per_s": n as f64 / refresh})
    );
}
