//! The resource-server half: what an MCP server answers about itself and to each request (RFC 9728 protected
//! resource metadata; RFC 6750 §3 bearer challenges; MCP authorization spec, "Authorization Server Location" and
//! "Token Audience Binding and Validation").
//!
//! An unauthenticated request gets `401` with `WWW-Authenticate: Bearer resource_metadata="…"` (RFC 9728 §5.1), so a
//! spec-following client discovers the authorization server; a bad token the same with `error="invalid_token"`; a
//! token lacking a required scope `403` with `error="insufficient_scope", scope="…"` (RFC 6750 §3.1). A token is
//! accepted only when its audience is this resource (or `base_url`, what clients that send no `resource` get).

use serde_json::{json, Value};
use url::Url;

use super::error::OAuthResult;
use super::http::HttpResponse;
use super::model::UpstreamTokens;
use super::provider::OAuthProxy;
use super::resource::same_resource;

/// What a bearer check found.
#[derive(Clone, Debug)]
pub enum BearerCheck {
    /// The token is ours, live, for this resource, with every required scope.
    Authorized {
        /// Its claims.
        claims: crate::Claims,
        /// The upstream tokens behind it (swap mode).
        upstream: Box<UpstreamTokens>,
    },
    /// The answer to send instead (401 or 403 with its `WWW-Authenticate` challenge).
    Challenge(HttpResponse),
}

impl BearerCheck {
    /// `{"authorized": true, "claims", "upstream"}` or `{"authorized": false, "response": {"status", "headers",
    /// "body"}}` (for bindings).
    pub fn to_json(&self) -> Value {
        match self {
            BearerCheck::Authorized { claims, upstream } => json!({
                "authorized": true,
                "claims": claims,
                "upstream": serde_json::to_value(upstream.as_ref()).unwrap_or_default(),
            }),
            BearerCheck::Challenge(resp) => json!({"authorized": false, "response": resp.to_json()}),
        }
    }
}

/// A quoted-string of RFC 7230 §3.2.6 (the values here never hold `"` or `\`, but escape anyway).
fn quoted(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The scopes of our access token (an array in the TS layout, a space-separated string in the Python one).
fn token_scopes(claims: &crate::Claims) -> Vec<String> {
    match claims.get("scope") {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        Some(Value::String(s)) => s
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

impl OAuthProxy {
    /// The RFC 9728 metadata document of `resource` (see
    /// [`OAuthProxyConfig::protected_resource_metadata`](super::OAuthProxyConfig::protected_resource_metadata)).
    pub fn protected_resource_metadata(&self, resource: &str) -> Value {
        self.config.protected_resource_metadata(resource)
    }

    /// Where `resource`'s metadata is served (RFC 9728 §3.1: `/.well-known/oauth-protected-resource` inserted
    /// between the host and the path).
    pub fn protected_resource_metadata_url(&self, resource: &str) -> String {
        match Url::parse(resource) {
            Ok(u) => {
                let path = u.path().trim_end_matches('/');
                format!(
                    "{}/.well-known/oauth-protected-resource{path}",
                    u.origin().ascii_serialization()
                )
            }
            Err(_) => format!("{}/.well-known/oauth-protected-resource", self.config.base_url),
        }
    }

    fn challenge(
        &self,
        status: u16,
        resource: &str,
        error: Option<(&str, &str)>,
        scope: Option<&str>,
    ) -> HttpResponse {
        let mut params = Vec::new();
        if let Some((code, description)) = error {
            params.push(format!("error={}", quoted(code)));
            params.push(format!("error_description={}", quoted(description)));
        }
        if let Some(s) = scope {
            params.push(format!("scope={}", quoted(s)));
        }
        params.push(format!(
            "resource_metadata={}",
            quoted(&self.protected_resource_metadata_url(resource))
        ));
        let body = match error {
            Some((code, description)) => json!({"error": code, "error_description": description}),
            None => json!({"error": "invalid_token", "error_description": "authorization required"}),
        };
        HttpResponse {
            status,
            headers: vec![
                ("WWW-Authenticate".into(), format!("Bearer {}", params.join(", "))),
                ("Content-Type".into(), "application/json".into()),
                ("Cache-Control".into(), "no-store".into()),
            ],
            body: Some(body.to_string()),
        }
    }

    /// Checks a request to `resource`: its `Authorization` header (`None` when absent) must carry one of our live
    /// access tokens issued for `resource` (or `base_url`) holding every scope in `required_scopes`. Answers the
    /// claims and upstream tokens, or the exact challenge to send (401 / 403 with `WWW-Authenticate`). Storage
    /// failures are errors (`server_error` 503), never a challenge.
    pub async fn check_bearer(
        &self,
        authorization: Option<&str>,
        resource: &str,
        required_scopes: &[String],
    ) -> OAuthResult<BearerCheck> {
        let token = authorization.and_then(|h| {
            let (scheme, rest) = h.trim().split_once(|c: char| c.is_ascii_whitespace())?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Ok(BearerCheck::Challenge(self.challenge(401, resource, None, None)));
        };
        let invalid = || {
            BearerCheck::Challenge(self.challenge(
                401,
                resource,
                Some(("invalid_token", "The access token is invalid, expired or revoked")),
                None,
            ))
        };
        // The token's claims and upstream tokens in one pass (one signature check, one read per store step).
        let Some((claims, upstream)) = self.access_session(token).await? else {
            return Ok(invalid());
        };
        let aud = claims.get("aud").and_then(Value::as_str).unwrap_or_default();
        if !same_resource(aud, resource) && !same_resource(aud, &self.config.base_url) {
            // The same answer as any bad token: no oracle for "signed by us, but for elsewhere".
            return Ok(invalid());
        }
        let held = token_scopes(&claims);
        if !required_scopes.iter().all(|s| held.contains(s)) {
            return Ok(BearerCheck::Challenge(self.challenge(
                403,
                resource,
                Some(("insufficient_scope", "The access token lacks a required scope")),
                Some(&required_scopes.join(" ")),
            )));
        }
        Ok(BearerCheck::Authorized {
            claims,
            upstream: Box::new(upstream),
        })
    }

    /// [`Self::check_bearer`] run to completion in place when it needs no waiting: always on a store that
    /// completes inline (memory), and on disk when the entries are in the kernel's caches (no thread hop, no
    /// device wait: see [`crate::store::SyncStore::get_nowait`]); else `None` — use the async one. As
    /// [`Self::load_upstream_tokens_inline`]: for the check every MCP request pays, from an event loop.
    pub fn check_bearer_inline(
        &self,
        authorization: Option<&str>,
        resource: &str,
        required_scopes: &[String],
    ) -> Option<OAuthResult<BearerCheck>> {
        self.in_place(self.check_bearer(authorization, resource, required_scopes))
    }

    /// [`Self::check_bearer`] run to completion on this thread, reading the store through its synchronous face
    /// (disk), when it has one; else `None` — use the async one. For a caller already on a thread that may block
    /// (a blocking pool): one thread hop per check instead of one per store read. The check only reads the store.
    pub fn check_bearer_blocking(
        &self,
        authorization: Option<&str>,
        resource: &str,
        required_scopes: &[String],
    ) -> Option<OAuthResult<BearerCheck>> {
        self.on_this_thread(self.check_bearer(authorization, resource, required_scopes))
    }
}
