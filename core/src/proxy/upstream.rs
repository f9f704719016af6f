//! Calls to the upstream token endpoint: form POST, JSON or form-encoded answers, errors mapped to OAuth errors.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;
use url::form_urlencoded;

use super::config::{OAuthProxyConfig, UpstreamAuthMethod, MAX_LIFETIME_SECS};
use super::error::{OAuthError, OAuthResult};
use super::model::{iso, UpstreamTokens};
use super::scope_policy;

/// Lifetime assumed when upstream's `expires_in` is present but not a positive number (seconds).
const DEFAULT_EXPIRES_IN: u64 = 3600;

/// Upstream answers larger than this are refused (a token response is a few KiB).
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// A client for one upstream token endpoint. Its connection pool lives on the library's runtime.
pub(crate) struct Upstream {
    client: reqwest::Client,
    token_endpoint: String,
    client_id: String,
    client_secret: String,
    auth: UpstreamAuthMethod,
}

/// Which grant a token request is for.
pub(crate) enum Grant<'a> {
    AuthorizationCode {
        code: &'a str,
        redirect_uri: &'a str,
        code_verifier: Option<&'a str>,
        /// RFC 8707 resource, when forwarded.
        resource: Option<&'a str>,
        /// Scopes, for providers that require them here (Entra: see `upstream_scopes`).
        scope: Option<&'a str>,
    },
    RefreshToken {
        refresh_token: &'a str,
        scope: Option<&'a str>,
        /// RFC 8707 resource, when forwarded.
        resource: Option<&'a str>,
    },
}

fn form_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl Upstream {
    pub(crate) fn new(c: &OAuthProxyConfig) -> crate::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(c.upstream_request_timeout)
            .connect_timeout(c.upstream_request_timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("fastmcp-auth/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| crate::Error::InvalidArgument(format!("HTTP client: {e}")))?;
        Ok(Upstream {
            client,
            token_endpoint: c.upstream_token_endpoint.clone(),
            client_id: c.upstream_client_id.clone(),
            client_secret: c.upstream_client_secret.clone(),
            auth: c.upstream_token_endpoint_auth_method,
        })
    }

    /// Performs the token request on the library runtime and parses the answer.
    pub(crate) async fn token(
        &self,
        grant: Grant<'_>,
        fallback_scope: &[String],
    ) -> OAuthResult<UpstreamTokens> {
        // Built in a sync block: the serializer is not Send and must not live across an await.
        let (body, previous_refresh, basic) = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            let previous_refresh = match grant {
                Grant::AuthorizationCode {
                    code,
                    redirect_uri,
                    code_verifier,
                    resource,
                    scope,
                } => {
                    form.append_pair("grant_type", "authorization_code");
                    form.append_pair("code", code);
                    form.append_pair("redirect_uri", redirect_uri);
                    if let Some(v) = code_verifier {
                        form.append_pair("code_verifier", v);
                    }
                    if let Some(s) = scope {
                        form.append_pair("scope", s);
                    }
                    if let Some(r) = resource {
                        form.append_pair("resource", r);
                    }
                    None
                }
                Grant::RefreshToken {
                    refresh_token,
                    scope,
                    resource,
                } => {
                    form.append_pair("grant_type", "refresh_token");
                    form.append_pair("refresh_token", refresh_token);
                    if let Some(s) = scope {
                        form.append_pair("scope", s);
                    }
                    if let Some(r) = resource {
                        form.append_pair("resource", r);
                    }
                    Some(refresh_token.to_owned())
                }
            };
            let basic = match self.auth {
                UpstreamAuthMethod::ClientSecretBasic => {
                    // RFC 6749 §2.3.1: form-encode id and secret, then base64 "id:secret".
                    let raw = format!(
                        "{}:{}",
                        form_encode(&self.client_id),
                        form_encode(&self.client_secret)
                    );
                    Some(format!("Basic {}", STANDARD.encode(raw)))
                }
                UpstreamAuthMethod::ClientSecretPost => {
                    form.append_pair("client_id", &self.client_id);
                    form.append_pair("client_secret", &self.client_secret);
                    None
                }
            };
            (form.finish(), previous_refresh, basic)
        };
        let mut req = self
            .client
            .post(&self.token_endpoint)
            .header("Accept", "application/json");
        if let Some(b) = basic {
            req = req.header("Authorization", b);
        }
        let req = req
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body);
        // Spawned on the library runtime: the client's pooled connections belong to it, whoever awaits us.
        let handle = crate::runtime::runtime()?.spawn(async move {
            let resp = req.send().await?;
            let status = resp.status().as_u16();
            let ctype = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_ascii_lowercase();
            let mut resp = resp;
            let mut bytes = Vec::new();
            while let Some(chunk) = resp.chunk().await? {
                if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Ok::<_, reqwest::Error>((status, ctype, None));
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok((status, ctype, Some(bytes)))
        });
        let (status, ctype, bytes) = match handle.await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) if e.is_timeout() => {
                tracing::warn!("upstream token endpoint timed out");
                return Err(OAuthError::server_error("Upstream request timed out").with_status(504));
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e.without_url(), "upstream token endpoint unreachable");
                return Err(OAuthError::server_error("Upstream token endpoint unreachable").with_status(502));
            }
            Err(e) => {
                tracing::error!(error = %e, "upstream token request task failed");
                return Err(OAuthError::server_error("Upstream request failed").with_status(502));
            }
        };
        let bytes =
            bytes.ok_or_else(|| OAuthError::server_error("Upstream response too large").with_status(502))?;
        let fields = parse_fields(&ctype, &bytes);
        if !(200..300).contains(&status) {
            return Err(upstream_error(status, fields.as_ref()));
        }
        let fields = fields.ok_or_else(|| {
            OAuthError::server_error("Upstream token response is not JSON or form data").with_status(502)
        })?;
        // Some providers (GitHub) answer 200 with an error body.
        if fields.get("error").is_some() && fields.get("access_token").is_none() {
            return Err(upstream_error(400, Some(&fields)));
        }
        tokens_from(&fields, previous_refresh, fallback_scope)
    }
}

/// JSON object, or form fields as a JSON object of strings.
fn parse_fields(ctype: &str, bytes: &[u8]) -> Option<serde_json::Map<String, Value>> {
    if ctype.contains("application/x-www-form-urlencoded") {
        let mut m = serde_json::Map::new();
        for (k, v) in form_urlencoded::parse(bytes) {
            m.insert(k.into_owned(), Value::String(v.into_owned()));
        }
        return Some(m);
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

/// What the client hears when upstream refuses (RFC 6749 §5.2 codes; fixed descriptions: upstream's own text,
/// which may name internal hosts or users, goes to the debug log only).
///
/// Only `invalid_grant` (the upstream grant is gone) and `invalid_scope` pass through as such. Everything else
/// upstream refuses is the proxy's problem, not the client's (`invalid_client` there means *our* credentials at
/// upstream are wrong; telling the MCP client `invalid_client` would make it drop its own registration), so it
/// becomes `server_error` 502 (the token endpoint's codes, RFC 6749 §5.2, have no "try later"). The refresh flow
/// ends a grant on `invalid_grant` only; on anything else the refresh token stays usable.
fn upstream_error(status: u16, fields: Option<&serde_json::Map<String, Value>>) -> OAuthError {
    let code = fields.and_then(|f| f.get("error")).and_then(Value::as_str);
    let text = fields
        .and_then(|f| f.get("error_description"))
        .and_then(Value::as_str);
    // Upstream's free text is neither returned nor logged (it can echo what it was sent); its length says whether
    // there was one. The error code is logged only when it is a short token of the usual alphabet.
    let code_logged =
        code.filter(|c| c.len() <= 64 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    tracing::debug!(status, error = ?code_logged, description_len = text.map(str::len), "upstream token endpoint refused");
    if status >= 500 || status == 429 {
        return OAuthError::server_error("The identity provider is unavailable; try again later")
            .with_status(502);
    }
    match code {
        Some("invalid_grant") => {
            OAuthError::invalid_grant("The identity provider no longer accepts this grant")
        }
        Some("invalid_scope") => OAuthError::new(
            "invalid_scope",
            "The identity provider refused the requested scope",
        ),
        Some("temporarily_unavailable" | "server_error") => {
            OAuthError::server_error("The identity provider is unavailable; try again later").with_status(502)
        }
        _ => OAuthError::server_error("The identity provider refused the proxy's token request")
            .with_status(502),
    }
}

/// A lifetime from upstream in seconds: a positive integer (JSON number, numeric string or form field), clamped to
/// [`MAX_LIFETIME_SECS`] so that no later time computation can overflow; a fractional number is rounded down.
fn lifetime(v: Option<&Value>) -> Option<u64> {
    let n = match v? {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 1.0)
                .map(|f| f.min(u64::MAX as f64) as u64)
        }),
        Value::String(s) => {
            let t = s.trim();
            t.parse::<u64>().ok().or_else(|| {
                // "1.5", "1e30", or digits past u64: the same reading as a JSON number.
                t.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite() && *f >= 1.0)
                    .map(|f| f.min(u64::MAX as f64) as u64)
            })
        }
        _ => None,
    }?;
    (n > 0).then(|| n.min(MAX_LIFETIME_SECS))
}

fn string(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn tokens_from(
    f: &serde_json::Map<String, Value>,
    previous_refresh: Option<String>,
    fallback_scope: &[String],
) -> OAuthResult<UpstreamTokens> {
    let access_token = string(f.get("access_token")).ok_or_else(|| {
        OAuthError::server_error("Upstream token response has no access_token").with_status(502)
    })?;
    // Upstream's scope text goes into our tokens: only RFC 6749 §3.3 scope-tokens pass (no control characters,
    // quotes, backslashes or non-ASCII), each once; anything else is dropped (counted in the log, never shown).
    let scope = match string(f.get("scope")) {
        Some(s) => {
            let mut out: Vec<String> = Vec::new();
            let mut dropped = 0;
            for t in s.split([' ', ',']).filter(|t| !t.is_empty()) {
                if !scope_policy::is_scope_token(t) {
                    dropped += 1;
                } else if !out.iter().any(|x| x == t) {
                    out.push(t.to_owned());
                }
            }
            if dropped > 0 {
                tracing::warn!(
                    dropped,
                    "upstream granted scopes that are not RFC 6749 scope-tokens; dropped"
                );
            }
            out
        }
        None => fallback_scope.to_vec(),
    };
    Ok(UpstreamTokens {
        access_token,
        // 0: upstream did not say (GitHub OAuth Apps); the proxy then applies its fallback lifetimes. Said but not a
        // positive number (0, -5, "abc"): the common default, never the long no-refresh fallback.
        expires_in: match f.get("expires_in") {
            None | Some(Value::Null) => 0,
            v => lifetime(v).unwrap_or(DEFAULT_EXPIRES_IN),
        },
        id_token: string(f.get("id_token")),
        issued_at: iso(std::time::SystemTime::now()),
        refresh_expires_in: lifetime(f.get("refresh_expires_in")),
        // Upstream that does not rotate keeps the old refresh token valid.
        refresh_token: string(f.get("refresh_token")).or(previous_refresh),
        scope,
        token_type: string(f.get("token_type")).unwrap_or_else(|| "Bearer".into()),
    })
}
