//! Records the proxy keeps in its store, in fastmcp TS's shapes and under its keys (`client:`, `transaction:`,
//! `code:`, `upstream:`, `mapping:`), so a store a fastmcp TS proxy used keeps working after the switch.
//! Fields fastmcp does not have are optional additions.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// ISO 8601 with milliseconds, as JavaScript's `Date.toJSON()` writes.
pub fn iso(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// `now + secs` as ISO text.
pub fn iso_in(secs: u64) -> String {
    iso(SystemTime::now() + Duration::from_secs(secs))
}

/// Parses ISO 8601 text; `None` when it is not.
pub fn parse_iso(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s.trim_end_matches('Z')).ok()
}

/// Whether an ISO timestamp lies in the past (unparseable counts as expired).
pub fn is_past(s: &str) -> bool {
    parse_iso(s).is_none_or(|t| t < SystemTime::now())
}

/// Seconds left until an ISO timestamp (0 when past or unparseable).
pub fn secs_until(s: &str) -> u64 {
    parse_iso(s)
        .and_then(|t| t.duration_since(SystemTime::now()).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `Debug` that names every field but prints secrets (tokens, verifiers, codes, hashes) as `[redacted]`.
macro_rules! redacted_debug {
    ($t:ty { $($plain:ident),* } secret { $($secret:ident),* } optional { $($opt:ident),* }) => {
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($t))
                    $(.field(stringify!($plain), &self.$plain))*
                    $(.field(stringify!($secret), &"[redacted]"))*
                    $(.field(stringify!($opt), &self.$opt.as_ref().map(|_| "[redacted]")))*
                    .finish()
            }
        }
    };
}

redacted_debug!(RegisteredClient { client_id, callback_url, redirect_uris, registered_at, token_endpoint_auth_method, expires_at, metadata }
    secret {} optional { client_secret, client_secret_hash });
redacted_debug!(Transaction { id, client_id, client_callback_url, client_code_challenge_method, consent_given, created_at, expires_at, scope, resource }
    secret { client_code_challenge, proxy_code_challenge, proxy_code_verifier, state } optional { browser_binding_hash, csrf_token_hash });
redacted_debug!(UpstreamTokens { token_type, expires_in, refresh_expires_in, issued_at, scope }
    secret { access_token } optional { refresh_token, id_token });
redacted_debug!(ClientCode { client_id, code_challenge_method, created_at, expires_at, transaction_id, redirect_uri, resource, upstream_tokens }
    secret { code, code_challenge } optional {});
redacted_debug!(TokenMapping { client_id, jti, created_at, expires_at, scope, token_use, resource }
    secret { upstream_token_key } optional {});
redacted_debug!(Rotation { state, at_ms, client_id, successor_jti, resource, claimed }
    secret { upstream_token_key } optional { successor_refresh_token });

/// A dynamically registered client (`client:<client_id>`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisteredClient {
    /// First redirect URI.
    pub callback_url: String,
    /// Proxy-issued id.
    pub client_id: String,
    /// fastmcp stores the secret itself; we never write it (see `client_secret_hash`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// SHA-256 (hex) of the secret: a stolen store does not reveal client secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_hash: Option<String>,
    /// RFC 7591 metadata echoed back.
    #[serde(default)]
    pub metadata: serde_json::Value,
    /// Registered redirect URIs (exact match at authorize).
    pub redirect_uris: Vec<String>,
    /// Registration time.
    pub registered_at: String,
    /// `none`, `client_secret_basic` or `client_secret_post`; absent in fastmcp's records (treated as basic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    /// When the registration lapses (ISO 8601): `unused_client_ttl` after registration, extended while grants use
    /// it. Absent: never (fastmcp's records, or `unused_client_ttl = 0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

impl RegisteredClient {
    /// Whether the registration has lapsed.
    pub fn expired(&self) -> bool {
        self.expires_at.as_deref().is_some_and(is_past)
    }
}

/// An authorization in progress (`transaction:<id>`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transaction {
    /// The client's redirect URI.
    pub client_callback_url: String,
    /// The client's PKCE challenge ("" when none).
    pub client_code_challenge: String,
    /// Its method.
    pub client_code_challenge_method: String,
    /// The client.
    pub client_id: String,
    /// Approved on the consent page.
    #[serde(default)]
    pub consent_given: bool,
    /// Creation time.
    pub created_at: String,
    /// Expiry time.
    pub expires_at: String,
    /// Transaction id (the `state` sent upstream).
    pub id: String,
    /// Our S256 challenge sent upstream.
    pub proxy_code_challenge: String,
    /// Our verifier for the upstream code exchange.
    pub proxy_code_verifier: String,
    /// Requested scopes.
    pub scope: Vec<String>,
    /// The client's `state` ("" when it sent none).
    pub state: String,
    /// SHA-256 of the browser-binding cookie set at authorize; the consent POST and the callback must present
    /// the cookie. Absent (a fastmcp record): the callback refuses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser_binding_hash: Option<String>,
    /// SHA-256 of the consent page's CSRF token; cleared once consent is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csrf_token_hash: Option<String>,
    /// The RFC 8707 resource the client asked for (the token's audience).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

/// Tokens from upstream, as stored (`upstream:<key>`, and inside codes).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamTokens {
    /// Upstream access token.
    pub access_token: String,
    /// Its lifetime in seconds; 0 when upstream did not say (see `fallback_access_token_expiry_seconds`).
    pub expires_in: u64,
    /// OpenID Connect ID token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// When upstream issued them.
    pub issued_at: String,
    /// Refresh-token lifetime, when upstream says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_expires_in: Option<u64>,
    /// Upstream refresh token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Granted scopes.
    pub scope: Vec<String>,
    /// Usually `Bearer`.
    pub token_type: String,
}

/// A code we handed to a client (`code:<code>`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientCode {
    /// Client the code was issued to.
    pub client_id: String,
    /// The code.
    pub code: String,
    /// The client's PKCE challenge ("" when none).
    pub code_challenge: String,
    /// Its method.
    pub code_challenge_method: String,
    /// Creation time.
    pub created_at: String,
    /// Expiry time.
    pub expires_at: String,
    /// Transaction it came from.
    pub transaction_id: String,
    /// The upstream tokens it redeems for.
    pub upstream_tokens: UpstreamTokens,
    /// Redirect URI of the authorization request (checked at the token endpoint when the client sends one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
    /// The RFC 8707 resource of the authorization request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

/// What replaces a redeemed code so a replay reports "already used" (`code:<code>`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpentCode {
    /// Expiry of the original code.
    pub expires_at: String,
    /// Always true.
    pub used: bool,
    /// The grant the code yielded (its `upstream:` key), revoked if the code is presented again (RFC 6749 §4.1.2).
    /// None when the code was spent by a failed redemption, or in pass-through mode (no state of ours to revoke).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
    /// A random id of the write that put this tombstone there, so no two tombstones are equal: a compare-and-swap
    /// whose reply was lost can tell its own write from another's by reading the key back (code_use.rs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
}

/// One of our JWTs → the upstream tokens (`mapping:<jti>`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenMapping {
    /// Client the token was issued to.
    pub client_id: String,
    /// Creation time.
    pub created_at: String,
    /// Expiry time.
    pub expires_at: String,
    /// Token id.
    pub jti: String,
    /// Scopes.
    pub scope: Vec<String>,
    /// Key of the upstream tokens (also the grant: every token of one authorization shares it).
    pub upstream_token_key: String,
    /// `access` or `refresh`; absent in fastmcp's records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_use: Option<String>,
    /// The RFC 8707 resource of the grant (the tokens' audience); a refresh cannot switch it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

/// A refresh token that was (or is being) rotated (`rotated:<jti>`), for the grace window and replay detection.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rotation {
    /// `pending` while the upstream refresh runs, `done` after.
    pub state: String,
    /// When the rotation finished (ms since epoch).
    pub at_ms: u64,
    /// Client.
    pub client_id: String,
    /// The grant.
    pub upstream_token_key: String,
    /// The refresh token that replaced this one (returned again inside the grace window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successor_refresh_token: Option<String>,
    /// Its token id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successor_jti: Option<String>,
    /// The grant's RFC 8707 resource (the audience of the tokens the grace window hands out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// While pending: the claimed mapping, given back if the rotation dies half-way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed: Option<TokenMapping>,
}
