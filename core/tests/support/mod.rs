//! Helpers shared by the proxy's integration tests (a module, not a test target of its own).
#![allow(dead_code)]

use std::time::Duration;

use fastmcp_auth::proxy::{AuthorizeParams, HttpResponse, OAuthProxyConfig};
use fastmcp_auth::{ChallengeMethod, CodeVerifier};
use fastmcp_auth_mock_idp::MockIdp;

/// The proxy's base URL in these tests.
pub const BASE: &str = "http://127.0.0.1:8000";

/// The loopback redirect URI the test clients use.
pub const REDIRECT: &str = "http://127.0.0.1:41234/callback";

/// An authorization request of `client_id` to `REDIRECT` with S256 PKCE of `verifier` and state `st`.
pub fn params(client_id: &str, verifier: &CodeVerifier) -> AuthorizeParams {
    AuthorizeParams {
        client_id: Some(client_id.into()),
        redirect_uri: Some(REDIRECT.into()),
        response_type: Some("code".into()),
        state: Some("st".into()),
        code_challenge: Some(verifier.challenge(ChallengeMethod::S256)),
        code_challenge_method: Some("S256".into()),
        ..Default::default()
    }
}

/// The value of the hidden form field `name` on a consent page.
pub fn hidden(page: &HttpResponse, name: &str) -> String {
    let body = page.body.as_deref().unwrap();
    let marker = format!("name=\"{name}\" value=\"");
    let start = body.find(&marker).unwrap() + marker.len();
    body[start..].split('"').next().unwrap().to_owned()
}

/// Query parameter `name` of a redirect's `Location`.
pub fn query_param(location: &str, name: &str) -> Option<String> {
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A proxy configuration against the mock identity provider: `BASE`, fixed JWT and encryption keys, a 2 s upstream
/// timeout; everything else the defaults.
pub fn proxy_config(idp: &MockIdp) -> OAuthProxyConfig {
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
    c.upstream_request_timeout = Duration::from_secs(2);
    c
}
