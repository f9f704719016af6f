//! Proxy configuration (names of the spec, snake_case), validated at construction; provider presets.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::jwt::ClaimLayout;
use crate::store::Store;
use serde_json::{json, Value};

use super::claims::ClaimsPassthrough;
use super::rate_limit::RateLimits;
pub use super::route_layout::{Route, RouteLayout};

/// Longest lifetime of anything the proxy issues or stores (10 years, in seconds): configured TTLs above it are
/// refused, lifetimes from upstream are clamped to it (every time computation stays far from overflow).
pub const MAX_LIFETIME_SECS: u64 = 10 * 365 * 86_400;

/// How the proxy authenticates to the upstream token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum UpstreamAuthMethod {
    /// HTTP Basic with the form-encoded id and secret (RFC 6749 §2.3.1).
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

impl UpstreamAuthMethod {
    /// Parses `client_secret_basic` / `client_secret_post`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "client_secret_basic" => Ok(Self::ClientSecretBasic),
            "client_secret_post" => Ok(Self::ClientSecretPost),
            _ => Err(Error::InvalidArgument(
                "upstream_token_endpoint_auth_method must be client_secret_basic or client_secret_post"
                    .into(),
            )),
        }
    }
}

/// Client ID Metadata Documents (MCP authorization 2025-11-25 "Client ID Metadata Documents",
/// draft-ietf-oauth-client-id-metadata-document): an `https` URL as `client_id`, whose JSON document the proxy
/// fetches (SSRF-safe, see [`safe_fetch`](super::safe_fetch)) and caches in its store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CimdOptions {
    /// Accept URL client ids (default true: PyPI fastmcp's default and the spec's recommended registration; npm
    /// fastmcp's `enableCimd` defaults to false and the Node face keeps that default). Advertised as
    /// `client_id_metadata_document_supported`.
    pub enabled: bool,
    /// Timeout of one document fetch, connection included (default 5 s, npm fastmcp's).
    pub fetch_timeout: Duration,
    /// Largest document accepted, counted while it streams in (default 64 KiB, npm fastmcp's).
    pub max_document_bytes: usize,
    /// How long a fetched document is used without fetching it again when its `Cache-Control` gives no
    /// `max-age` (seconds; default 3600, PyPI fastmcp's).
    pub cache_ttl: u64,
    /// Floor of a document's freshness (seconds; default 60): `max-age` below it, `no-cache` and `no-store` mean
    /// this long, so no document turns every request into an outbound fetch.
    pub min_cache_ttl: u64,
    /// Ceiling of a document's freshness and the lifetime of its cached copy (seconds; default 86,400). While the
    /// copy lives, a failed fetch (network, timeout, 5xx) keeps using it; a 4xx or an invalid document drops it.
    pub max_cache_ttl: u64,
    /// After a host (and port) could not be reached (DNS, connection, TLS, timeout), further fetches from it fail at
    /// once for this long (default 10 s): one slow or dead host cannot tie up the proxy. Answers (4xx, 5xx, invalid
    /// documents) start no cool-down. Zero: off.
    pub failure_cooldown: Duration,
    /// Fetch documents from loopback, private, link-local and other non-public addresses. For tests and private
    /// deployments only (default false): with it off such an address is never connected to.
    pub allow_private_networks_for_testing: bool,
    /// PEM certificates trusted besides the public web roots (Mozilla's, built in), for a private CA.
    pub extra_root_certificates_pem: Vec<String>,
}

impl Default for CimdOptions {
    fn default() -> Self {
        CimdOptions {
            enabled: true,
            fetch_timeout: Duration::from_secs(5),
            max_document_bytes: 64 * 1024,
            cache_ttl: 3600,
            min_cache_ttl: 60,
            max_cache_ttl: 86_400,
            failure_cooldown: Duration::from_secs(10),
            allow_private_networks_for_testing: false,
            extra_root_certificates_pem: Vec::new(),
        }
    }
}

impl CimdOptions {
    /// Parses the `cimd` member of a JSON config: `true`/`false`, or an object of this struct's field names
    /// (durations in seconds). Unknown members are an error.
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut o = CimdOptions::default();
        let m = match v {
            Value::Null => return Ok(o),
            Value::Bool(b) => {
                o.enabled = *b;
                return Ok(o);
            }
            Value::Object(m) => m,
            _ => {
                return Err(Error::InvalidArgument(
                    "config `cimd` must be true, false or an object".into(),
                ))
            }
        };
        let bad = |k: &str, what: &str| Error::InvalidArgument(format!("config `cimd.{k}` must be {what}"));
        for (k, x) in m {
            if x.is_null() {
                continue;
            }
            let secs = || {
                x.as_f64()
                    .filter(|f| f.is_finite() && *f >= 0.0 && *f < 1e9)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| bad(k, "a number of seconds"))
            };
            let int = || x.as_u64().ok_or_else(|| bad(k, "a non-negative integer"));
            let flag = || x.as_bool().ok_or_else(|| bad(k, "true or false"));
            match k.as_str() {
                "enabled" => o.enabled = flag()?,
                "fetch_timeout" => o.fetch_timeout = secs()?,
                "max_document_bytes" => {
                    o.max_document_bytes = usize::try_from(int()?).map_err(|_| bad(k, "a smaller integer"))?
                }
                "cache_ttl" => o.cache_ttl = int()?,
                "min_cache_ttl" => o.min_cache_ttl = int()?,
                "max_cache_ttl" => o.max_cache_ttl = int()?,
                "failure_cooldown" => o.failure_cooldown = secs()?,
                "allow_private_networks_for_testing" => o.allow_private_networks_for_testing = flag()?,
                "extra_root_certificates_pem" => {
                    o.extra_root_certificates_pem = x
                        .as_array()
                        .and_then(|a| a.iter().map(|p| p.as_str().map(str::to_owned)).collect())
                        .ok_or_else(|| bad(k, "an array of PEM strings"))?
                }
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "unknown config member `cimd.{k}`"
                    )))
                }
            }
        }
        Ok(o)
    }

    /// Checks the bounds; the message names the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidArgument(format!("cimd.{m}")));
        if self.fetch_timeout.is_zero() || self.fetch_timeout > Duration::from_secs(60) {
            return bad("fetch_timeout must be more than 0 and at most 60 seconds");
        }
        if !(512..=1024 * 1024).contains(&self.max_document_bytes) {
            return bad("max_document_bytes must be between 512 and 1048576");
        }
        if self.min_cache_ttl > self.max_cache_ttl || self.max_cache_ttl > MAX_LIFETIME_SECS {
            return bad("min_cache_ttl must not exceed max_cache_ttl (at most 10 years)");
        }
        if self.failure_cooldown > Duration::from_secs(3600) {
            return bad("failure_cooldown must be at most 3600 seconds");
        }
        Ok(())
    }
}

/// Everything an [`OAuthProxy`](super::OAuthProxy) needs. Build with [`OAuthProxyConfig::new`], adjust fields,
/// pass to `OAuthProxy::new`, which validates it.
#[derive(Clone)]
pub struct OAuthProxyConfig {
    /// Public URL of this server (issuer and audience of our JWTs; callback = base_url + redirect_path).
    pub base_url: String,
    /// Upstream authorization endpoint.
    pub upstream_authorization_endpoint: String,
    /// Upstream token endpoint.
    pub upstream_token_endpoint: String,
    /// Our client id at the upstream provider.
    pub upstream_client_id: String,
    /// Our client secret at the upstream provider.
    pub upstream_client_secret: String,
    /// Where state lives. `None`: a MemoryStore (lost on restart).
    pub token_storage: Option<Arc<dyn Store>>,
    /// Key of the EncryptedStore the proxy wraps `token_storage` in. `None`: a random key (values then die with the
    /// process); ignored when `encryption_disabled`.
    pub encryption_key: Option<String>,
    /// Keys that still decrypt during an encryption-key rotation.
    pub previous_encryption_keys: Vec<String>,
    /// Store values in clear (only when `token_storage` already encrypts, or for debugging).
    pub encryption_disabled: bool,
    /// HMAC key of our JWTs. `None`: random (tokens die with the process; a warning is logged).
    pub jwt_signing_key: Option<String>,
    /// Keys that still verify during a signing-key rotation.
    pub previous_jwt_signing_keys: Vec<String>,
    /// Issue our own JWTs (default) or pass the upstream tokens through.
    pub enable_token_swap: bool,
    /// Access-token lifetime when upstream gives no `expires_in` but a refresh token (seconds).
    pub access_token_ttl: u64,
    /// Access-token lifetime when upstream gives neither `expires_in` nor a refresh token (seconds; GitHub OAuth
    /// Apps answer so): without a way to refresh, a short lifetime would log the user out every hour. Default one
    /// year (fastmcp Python's rule and name, #2534).
    pub fallback_access_token_expiry_seconds: u64,
    /// Our access tokens' lifetime whatever upstream's `expires_in` (seconds; fastmcp Python's name and rule): for
    /// upstreams with short-lived tokens and clients that refresh badly. Without an upstream refresh token it can
    /// only shorten the lifetime (nothing could renew it). `None` (default): upstream's lifetime.
    pub fastmcp_access_token_expiry_seconds: Option<u64>,
    /// Refresh-token lifetime when upstream gives none (seconds).
    pub refresh_token_ttl: u64,
    /// Lifetime of the codes we hand to clients (seconds).
    pub authorization_code_ttl: u64,
    /// Lifetime of an authorization transaction (seconds).
    pub transaction_ttl: u64,
    /// Scopes requested upstream when the client names none; also advertised in metadata.
    pub scopes: Vec<String>,
    /// When set, the only scopes clients may request (at registration, authorize and refresh); others are
    /// `invalid_scope` (fastmcp Python's `valid_scopes`).
    pub valid_scopes: Option<Vec<String>>,
    /// Send the grant's scopes upstream on a refresh without `scope` (RFC 6749 §6 lets the client omit it, but
    /// Entra refuses such a refresh: AADSTS90009). Default true; turn off for providers that object.
    pub send_scope_on_refresh: bool,
    /// Resources (RFC 8707) accepted besides those on `base_url`'s origin; exact URIs.
    pub accepted_resources: Vec<String>,
    /// Send the client's `resource` on to upstream at authorize and token (fastmcp Python's `forward_resource`).
    /// Default false: most providers refuse resources they do not know.
    pub forward_resource: bool,
    /// Patterns a client's redirect URIs must match, component by component (see
    /// [`redirect_policy`](super::redirect_policy) for the syntax). Default: loopback on any port or none, any
    /// path (RFC 8252 §7.3). An empty list rejects every URI. Parsed when the proxy is built; a malformed
    /// pattern is an error naming it.
    pub allowed_redirect_uri_patterns: Vec<String>,
    /// Allow plain `http` redirect URIs (and patterns) for hosts other than loopback. Default false: RFC 9700
    /// §2.1 requires TLS for every redirect but loopback ones.
    pub allow_http_redirect_uris: bool,
    /// Most client registrations kept in memory (LRU); the rest are read from the store when used.
    pub client_cache_size: usize,
    /// Seconds a registration lives until an authorization completes with it (then it lives as long as its
    /// grants). 0: registrations never expire (fastmcp's behaviour). Default 3 days.
    pub unused_client_ttl: u64,
    /// Most authorizations one client may have in progress (per process); more are refused with
    /// `temporarily_unavailable`. 0: no limit.
    pub max_transactions_per_client: usize,
    /// Accept `plain` PKCE from clients (S256 is always accepted).
    pub allow_plain_pkce: bool,
    /// Require PKCE from clients (OAuth 2.1, MCP). fastmcp makes it optional; we default to required.
    pub require_pkce: bool,
    /// Show a consent page before redirecting upstream; the callback refuses transactions never approved.
    pub consent_required: bool,
    /// Send the proxy's own S256 PKCE to upstream (fastmcp Python's meaning of `forward_pkce`, default true).
    pub forward_pkce: bool,
    /// Extra authorization parameters for upstream; never override the protocol's own.
    pub extra_authorization_params: BTreeMap<String, String>,
    /// How we authenticate to the upstream token endpoint.
    pub upstream_token_endpoint_auth_method: UpstreamAuthMethod,
    /// Timeout of each upstream request.
    pub upstream_request_timeout: Duration,
    /// Path of our callback under base_url.
    pub redirect_path: String,
    /// Claim layout of our JWTs.
    pub claim_layout: ClaimLayout,
    /// Where the proxy's endpoints live under `base_url` (metadata and the consent form name them): fastmcp TS's
    /// `/oauth/authorize` … (default) or fastmcp Python's `/authorize` …; the callback is `redirect_path` either way.
    pub route_layout: RouteLayout,
    /// Prefix of the API's scopes at upstream (`api://<client id>/`, Microsoft Entra ID; see
    /// [`upstream_scopes`](super::upstream_scopes)). `None` (default): scopes go upstream as the client gave them.
    pub upstream_scope_prefix: Option<String>,
    /// Scopes added to every upstream authorization request (other resources', `offline_access`); of these only
    /// the OpenID Connect ones go with token requests when `upstream_scope_prefix` is set.
    pub additional_authorize_scopes: Vec<String>,
    /// A just-rotated refresh token presented again within this window gets a fresh access token (client retry,
    /// replicas racing); after it, the reuse counts as replay and revokes the grant (RFC 9700 §4.14.2).
    pub refresh_grace_window: Duration,
    /// Name shown on the consent page.
    pub provider_name: Option<String>,
    /// Copy claims of the upstream access/ID token (when JWTs) into our JWTs, as fastmcp TS's
    /// `customClaimsPassthrough` (see [`ClaimsPassthrough`]). `None` (default): off.
    pub custom_claims_passthrough: Option<ClaimsPassthrough>,
    /// Client ID Metadata Documents (URL client ids); see [`CimdOptions`].
    pub cimd: CimdOptions,
    /// Rate limits of the endpoints (429 with `Retry-After`); see [`RateLimits`].
    pub rate_limits: RateLimits,
    /// Also count issued tokens per client (`fastmcp_auth_tokens_issued_by_client_total{client_id, grant}`), for
    /// the first 1,000 client ids (later ones as `client_id="(other)"`): opt-in, as every registration adds a series.
    /// Default false.
    pub metrics_client_ids: bool,
    /// Refuse to start on any production finding ([`production_findings`](Self::production_findings): a missing or
    /// weak key, plain http to a non-loopback host) instead of logging it as a warning. Default false.
    pub strict: bool,
}

impl std::fmt::Debug for OAuthProxyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthProxyConfig")
            .field("base_url", &self.base_url)
            .field(
                "upstream_authorization_endpoint",
                &self.upstream_authorization_endpoint,
            )
            .field("upstream_token_endpoint", &self.upstream_token_endpoint)
            .field("upstream_client_id", &self.upstream_client_id)
            .field("upstream_client_secret", &"[redacted]")
            .field("enable_token_swap", &self.enable_token_swap)
            .finish_non_exhaustive()
    }
}

/// Default redirect-URI allow-list: loopback on any port or none, any path (RFC 8252 §7.3).
pub fn default_redirect_patterns() -> Vec<String> {
    vec![
        "http://localhost:*".into(),
        "http://127.0.0.1:*".into(),
        "http://[::1]:*".into(),
    ]
}

impl OAuthProxyConfig {
    /// A configuration with every default of the spec.
    pub fn new(
        base_url: impl Into<String>,
        upstream_authorization_endpoint: impl Into<String>,
        upstream_token_endpoint: impl Into<String>,
        upstream_client_id: impl Into<String>,
        upstream_client_secret: impl Into<String>,
    ) -> Self {
        OAuthProxyConfig {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            upstream_authorization_endpoint: upstream_authorization_endpoint.into(),
            upstream_token_endpoint: upstream_token_endpoint.into(),
            upstream_client_id: upstream_client_id.into(),
            upstream_client_secret: upstream_client_secret.into(),
            token_storage: None,
            encryption_key: None,
            previous_encryption_keys: Vec::new(),
            encryption_disabled: false,
            jwt_signing_key: None,
            previous_jwt_signing_keys: Vec::new(),
            enable_token_swap: true,
            access_token_ttl: 3600,
            fallback_access_token_expiry_seconds: 365 * 86_400,
            fastmcp_access_token_expiry_seconds: None,
            refresh_token_ttl: 2_592_000,
            authorization_code_ttl: 300,
            transaction_ttl: 600,
            scopes: Vec::new(),
            valid_scopes: None,
            send_scope_on_refresh: true,
            accepted_resources: Vec::new(),
            forward_resource: false,
            allowed_redirect_uri_patterns: default_redirect_patterns(),
            allow_http_redirect_uris: false,
            client_cache_size: 1_000,
            unused_client_ttl: 3 * 86_400,
            max_transactions_per_client: 20,
            allow_plain_pkce: false,
            require_pkce: true,
            consent_required: true,
            forward_pkce: true,
            extra_authorization_params: BTreeMap::new(),
            upstream_token_endpoint_auth_method: UpstreamAuthMethod::ClientSecretBasic,
            upstream_request_timeout: Duration::from_secs(10),
            redirect_path: "/oauth/callback".into(),
            claim_layout: ClaimLayout::FastmcpTs,
            route_layout: RouteLayout::FastmcpTs,
            upstream_scope_prefix: None,
            additional_authorize_scopes: Vec::new(),
            refresh_grace_window: Duration::from_secs(30),
            provider_name: None,
            custom_claims_passthrough: None,
            cimd: CimdOptions::default(),
            rate_limits: RateLimits::default(),
            metrics_client_ids: false,
            strict: false,
        }
    }

    /// GitHub: form-encoded token responses; OAuth Apps give neither `expires_in` nor a refresh token, so our
    /// access tokens then live `fallback_access_token_expiry_seconds` (one year by default, as fastmcp Python).
    pub fn github(
        base_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        let mut c = Self::new(
            base_url,
            "https://github.com/login/oauth/authorize",
            "https://github.com/login/oauth/access_token",
            client_id,
            client_secret,
        );
        c.scopes = vec!["read:user".into(), "user:email".into()];
        c.upstream_token_endpoint_auth_method = UpstreamAuthMethod::ClientSecretPost;
        c.provider_name = Some("GitHub".into());
        c
    }

    /// Google: `access_type=offline` and `prompt=consent` so a refresh token is issued.
    pub fn google(
        base_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        let mut c = Self::new(
            base_url,
            "https://accounts.google.com/o/oauth2/v2/auth",
            "https://oauth2.googleapis.com/token",
            client_id,
            client_secret,
        );
        c.scopes = vec!["openid".into(), "email".into(), "profile".into()];
        c.extra_authorization_params
            .insert("access_type".into(), "offline".into());
        c.extra_authorization_params
            .insert("prompt".into(), "consent".into());
        c.provider_name = Some("Google".into());
        c
    }

    /// Azure / Entra ID: the tenant's v2.0 endpoints (`common`, `organizations`, or a tenant id).
    pub fn azure(
        base_url: impl Into<String>,
        tenant: &str,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        let mut c = Self::new(
            base_url,
            format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize"),
            format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"),
            client_id,
            client_secret,
        );
        c.scopes = vec![
            "openid".into(),
            "profile".into(),
            "email".into(),
            "offline_access".into(),
        ];
        c.upstream_token_endpoint_auth_method = UpstreamAuthMethod::ClientSecretPost;
        c.provider_name = Some("Microsoft".into());
        c
    }

    /// Builds a configuration from a JSON object whose members are this struct's field names (durations in
    /// seconds, `claim_layout` and `route_layout` `"ts"`/`"py"`). The five upstream/base fields are required; unknown members are an
    /// error (a typo must not silently fall back to a default). `token_storage` cannot be given as JSON.
    /// This is what the C, Python and Node bindings hand over.
    pub fn from_json(v: &serde_json::Value) -> Result<Self> {
        use serde_json::Value;
        let m = v
            .as_object()
            .ok_or_else(|| Error::InvalidArgument("proxy config must be a JSON object".into()))?;
        let bad = |k: &str, what: &str| Error::InvalidArgument(format!("config `{k}` must be {what}"));
        let s = |k: &str| -> Result<Option<String>> {
            match m.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(x)) => Ok(Some(x.clone())),
                _ => Err(bad(k, "a string")),
            }
        };
        let req = |k: &str| s(k)?.ok_or_else(|| Error::InvalidArgument(format!("config `{k}` is required")));
        let strings = |k: &str| -> Result<Option<Vec<String>>> {
            match m.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| {
                        x.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| bad(k, "an array of strings"))
                    })
                    .collect::<Result<Vec<_>>>()
                    .map(Some),
                _ => Err(bad(k, "an array of strings")),
            }
        };
        let u = |k: &str| -> Result<Option<u64>> {
            match m.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(x) => x
                    .as_u64()
                    .map(Some)
                    .ok_or_else(|| bad(k, "a non-negative integer")),
            }
        };
        let b = |k: &str| -> Result<Option<bool>> {
            match m.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(x) => x.as_bool().map(Some).ok_or_else(|| bad(k, "true or false")),
            }
        };
        let secs = |k: &str| -> Result<Option<Duration>> {
            match m.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(x) => x
                    .as_f64()
                    .filter(|f| f.is_finite() && *f >= 0.0 && *f < 1e9)
                    .map(|f| Some(Duration::from_secs_f64(f)))
                    .ok_or_else(|| bad(k, "a number of seconds")),
            }
        };
        const KNOWN: &[&str] = &[
            "base_url",
            "upstream_authorization_endpoint",
            "upstream_token_endpoint",
            "upstream_client_id",
            "upstream_client_secret",
            "encryption_key",
            "previous_encryption_keys",
            "encryption_disabled",
            "jwt_signing_key",
            "previous_jwt_signing_keys",
            "enable_token_swap",
            "access_token_ttl",
            "fallback_access_token_expiry_seconds",
            "fastmcp_access_token_expiry_seconds",
            "valid_scopes",
            "send_scope_on_refresh",
            "accepted_resources",
            "forward_resource",
            "refresh_token_ttl",
            "authorization_code_ttl",
            "transaction_ttl",
            "scopes",
            "allowed_redirect_uri_patterns",
            "allow_http_redirect_uris",
            "client_cache_size",
            "unused_client_ttl",
            "max_transactions_per_client",
            "allow_plain_pkce",
            "require_pkce",
            "consent_required",
            "forward_pkce",
            "extra_authorization_params",
            "upstream_token_endpoint_auth_method",
            "upstream_request_timeout",
            "redirect_path",
            "claim_layout",
            "route_layout",
            "upstream_scope_prefix",
            "additional_authorize_scopes",
            "refresh_grace_window",
            "provider_name",
            "custom_claims_passthrough",
            "cimd",
            "rate_limits",
            "metrics_client_ids",
            "strict",
            "preset",
        ];
        if let Some(k) = m.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(Error::InvalidArgument(format!("unknown config member `{k}`")));
        }
        let mut c = Self::new(
            req("base_url")?,
            req("upstream_authorization_endpoint")?,
            req("upstream_token_endpoint")?,
            req("upstream_client_id")?,
            s("upstream_client_secret")?.unwrap_or_default(),
        );
        c.encryption_key = s("encryption_key")?;
        c.previous_encryption_keys = strings("previous_encryption_keys")?.unwrap_or_default();
        c.encryption_disabled = b("encryption_disabled")?.unwrap_or(false);
        c.jwt_signing_key = s("jwt_signing_key")?;
        // `preset`: a provider's settings from the presets above (how the secret is sent upstream, the name on the
        // consent page, extra authorization parameters), under the members given. Endpoints and scopes stay as
        // given: the bindings' provider classes name their own (fastmcp's defaults).
        if let Some(name) = s("preset")? {
            let (base, id, secret) = (
                c.base_url.clone(),
                c.upstream_client_id.clone(),
                c.upstream_client_secret.clone(),
            );
            let p = match name.as_str() {
                "github" => Self::github(base, id, secret),
                "google" => Self::google(base, id, secret),
                "azure" => Self::azure(base, "common", id, secret),
                _ => return Err(bad("preset", "\"github\", \"google\" or \"azure\"")),
            };
            c.upstream_token_endpoint_auth_method = p.upstream_token_endpoint_auth_method;
            c.provider_name = p.provider_name;
            c.extra_authorization_params = p.extra_authorization_params;
        }
        c.previous_jwt_signing_keys = strings("previous_jwt_signing_keys")?.unwrap_or_default();
        c.fastmcp_access_token_expiry_seconds = u("fastmcp_access_token_expiry_seconds")?;
        c.upstream_scope_prefix = s("upstream_scope_prefix")?;
        c.additional_authorize_scopes = strings("additional_authorize_scopes")?.unwrap_or_default();
        // Optional members overwrite the defaults only when present.
        macro_rules! set {
            ($($field:ident: $get:ident),* $(,)?) => {
                $(if let Some(x) = $get(stringify!($field))? {
                    c.$field = x;
                })*
            };
        }
        set!(
            enable_token_swap: b,
            access_token_ttl: u,
            fallback_access_token_expiry_seconds: u,
            send_scope_on_refresh: b,
            accepted_resources: strings,
            forward_resource: b,
            refresh_token_ttl: u,
            authorization_code_ttl: u,
            transaction_ttl: u,
            scopes: strings,
            allowed_redirect_uri_patterns: strings,
            allow_http_redirect_uris: b,
            unused_client_ttl: u,
            allow_plain_pkce: b,
            require_pkce: b,
            consent_required: b,
            forward_pkce: b,
            metrics_client_ids: b,
            strict: b,
        );
        match m.get("extra_authorization_params") {
            None | Some(Value::Null) => {}
            Some(Value::Object(o)) => {
                for (k, v) in o {
                    let v = v
                        .as_str()
                        .ok_or_else(|| bad("extra_authorization_params", "an object of strings"))?;
                    c.extra_authorization_params.insert(k.clone(), v.to_owned());
                }
            }
            _ => return Err(bad("extra_authorization_params", "an object of strings")),
        }
        for (k, field) in [
            ("client_cache_size", &mut c.client_cache_size),
            ("max_transactions_per_client", &mut c.max_transactions_per_client),
        ] {
            if let Some(x) = u(k)? {
                *field = usize::try_from(x).map_err(|_| bad(k, "a smaller integer"))?;
            }
        }
        if let Some(x) = s("upstream_token_endpoint_auth_method")? {
            c.upstream_token_endpoint_auth_method = UpstreamAuthMethod::parse(&x)?;
        }
        if let Some(x) = secs("upstream_request_timeout")? {
            c.upstream_request_timeout = x;
        }
        if let Some(x) = s("redirect_path")? {
            c.redirect_path = x;
        }
        if let Some(x) = s("claim_layout")? {
            c.claim_layout = ClaimLayout::parse(&x)?;
        }
        if let Some(x) = s("route_layout")? {
            c.route_layout = RouteLayout::parse(&x)?;
        }
        if let Some(x) = secs("refresh_grace_window")? {
            c.refresh_grace_window = x;
        }
        if let Some(x) = s("provider_name")? {
            c.provider_name = Some(x);
        }
        c.valid_scopes = strings("valid_scopes")?;
        if let Some(x) = m.get("custom_claims_passthrough") {
            c.custom_claims_passthrough = ClaimsPassthrough::from_json(x)?;
        }
        if let Some(x) = m.get("cimd") {
            c.cimd = CimdOptions::from_json(x)?;
        }
        if let Some(x) = m.get("rate_limits") {
            c.rate_limits = RateLimits::from_json(x)?;
        }
        c.validate()?;
        Ok(c)
    }

    /// How scopes cross to upstream and back (see [`upstream_scopes`](super::upstream_scopes)).
    pub fn upstream_scopes(&self) -> super::upstream_scopes::UpstreamScopes {
        super::upstream_scopes::UpstreamScopes {
            prefix: self.upstream_scope_prefix.clone(),
            additional: self.additional_authorize_scopes.clone(),
        }
    }

    /// The absolute URL of one of the proxy's endpoints (`base_url` + its path in `route_layout`).
    pub fn endpoint_url(&self, route: Route) -> String {
        format!("{}{}", self.base_url, self.route_layout.path(route))
    }

    /// RFC 8414 authorization server metadata of a proxy with this configuration.
    pub fn authorization_server_metadata(&self) -> Value {
        let b = &self.base_url;
        let mut m = json!({
            "issuer": b,
            "authorization_endpoint": self.endpoint_url(Route::Authorize),
            "token_endpoint": self.endpoint_url(Route::Token),
            "registration_endpoint": self.endpoint_url(Route::Register),
            "revocation_endpoint": self.endpoint_url(Route::Revoke),
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": if self.allow_plain_pkce { json!(["S256", "plain"]) } else { json!(["S256"]) },
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "authorization_response_iss_parameter_supported": true,
            "scopes_supported": self.valid_scopes.as_ref().unwrap_or(&self.scopes),
        });
        if self.cimd.enabled {
            // MCP authorization 2025-11-25, "Client ID Metadata Documents": clients look for this member.
            m["client_id_metadata_document_supported"] = json!(true);
        }
        m
    }

    /// The RFC 9728 metadata document of `resource` (the MCP endpoint, e.g. `https://mcp.example.com/mcp`):
    /// `resource`, `authorization_servers` (this proxy's issuer), `scopes_supported` (never `offline_access`, which
    /// is the proxy's business with upstream, not a scope of the resource), `bearer_methods_supported`.
    pub fn protected_resource_metadata(&self, resource: &str) -> Value {
        let scopes: Vec<&String> = self
            .valid_scopes
            .as_ref()
            .unwrap_or(&self.scopes)
            .iter()
            .filter(|s| s.as_str() != "offline_access")
            .collect();
        json!({
            "resource": resource,
            "authorization_servers": [self.base_url],
            "scopes_supported": scopes,
            "bearer_methods_supported": ["header"],
        })
    }

    /// What the production checklist (MCP authorization, "Security Best Practices") finds wrong with this
    /// configuration, one sentence each, naming the option and never its value (see
    /// [`secret_policy`](super::secret_policy)): keys not set (state would not survive a restart) or weak, and
    /// plain `http` to a non-loopback host. The proxy logs each as a warning, or refuses to start with `strict`.
    pub fn production_findings(&self) -> Vec<String> {
        use super::secret_policy::{is_insecure_url, key_weakness};
        let mut out = Vec::new();
        if self.enable_token_swap {
            match &self.jwt_signing_key {
                None => out.push("jwt_signing_key is not set: a random key is used and issued tokens die with this process".to_owned()),
                Some(k) => out.extend(key_weakness(k).map(|w| format!("jwt_signing_key is weak: {w}"))),
            }
        }
        if !self.encryption_disabled {
            match &self.encryption_key {
                None => out.push("encryption_key is not set: a random key is used and stored tokens are unreadable after a restart".to_owned()),
                Some(k) => out.extend(key_weakness(k).map(|w| format!("encryption_key is weak: {w}"))),
            }
        }
        if let (true, false, Some(j), Some(e)) = (
            self.enable_token_swap,
            self.encryption_disabled,
            &self.jwt_signing_key,
            &self.encryption_key,
        ) {
            if j == e {
                out.push(
                    "jwt_signing_key and encryption_key are the same key: use two independent keys"
                        .to_owned(),
                );
            }
        }
        for (name, keys) in [
            ("previous_jwt_signing_keys", &self.previous_jwt_signing_keys),
            ("previous_encryption_keys", &self.previous_encryption_keys),
        ] {
            for (i, k) in keys.iter().enumerate() {
                // A weak key being rotated away is a warning, never a reason for `strict` to refuse (the rotation
                // needs it for one lifetime): `OAuthProxy::new` skips `previous_` findings under `strict`.
                out.extend(
                    key_weakness(k).map(|w| {
                        format!("{name}[{i}] is weak: {w} (retire it once its tokens have expired)")
                    }),
                );
            }
        }
        for (name, url) in [
            ("base_url", &self.base_url),
            (
                "upstream_authorization_endpoint",
                &self.upstream_authorization_endpoint,
            ),
            ("upstream_token_endpoint", &self.upstream_token_endpoint),
        ] {
            if is_insecure_url(url) {
                out.push(format!(
                    "{name} is plain http to a non-loopback host: serve it over https"
                ));
            }
        }
        out
    }

    /// Checks every field; the message names the field, never a secret.
    pub fn validate(&self) -> Result<()> {
        let url = |name: &str, v: &str| -> Result<()> {
            match url::Url::parse(v) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
                _ => Err(Error::InvalidArgument(format!(
                    "{name} must be an absolute http(s) URL"
                ))),
            }
        };
        url("base_url", &self.base_url)?;
        self.cimd.validate()?;
        self.rate_limits.validate()?;
        url(
            "upstream_authorization_endpoint",
            &self.upstream_authorization_endpoint,
        )?;
        url("upstream_token_endpoint", &self.upstream_token_endpoint)?;
        if self.upstream_client_id.is_empty() {
            return Err(Error::InvalidArgument(
                "upstream_client_id must not be empty".into(),
            ));
        }
        for (name, v) in [
            ("access_token_ttl", self.access_token_ttl),
            (
                "fallback_access_token_expiry_seconds",
                self.fallback_access_token_expiry_seconds,
            ),
            ("refresh_token_ttl", self.refresh_token_ttl),
            ("authorization_code_ttl", self.authorization_code_ttl),
            ("transaction_ttl", self.transaction_ttl),
        ] {
            if v == 0 {
                return Err(Error::InvalidArgument(format!(
                    "{name} must be at least 1 second"
                )));
            }
            if v > MAX_LIFETIME_SECS {
                return Err(Error::InvalidArgument(format!(
                    "{name} must be at most {MAX_LIFETIME_SECS} seconds (10 years)"
                )));
            }
        }
        if let Some(p) = &self.upstream_scope_prefix {
            // Scope-tokens only (RFC 6749 §3.3): the prefix goes into every scope sent upstream.
            if p.is_empty() || !p.ends_with('/') || !super::scope_policy::is_scope_token(p) {
                return Err(Error::InvalidArgument(
                    "upstream_scope_prefix must be a scope-token ending with `/` (e.g. api://<client id>/)"
                        .into(),
                ));
            }
        }
        if !self
            .additional_authorize_scopes
            .iter()
            .all(|s| super::scope_policy::is_scope_token(s))
        {
            return Err(Error::InvalidArgument(
                "additional_authorize_scopes must be RFC 6749 scope-tokens".into(),
            ));
        }
        if let Some(v) = self.fastmcp_access_token_expiry_seconds {
            if v == 0 || v > MAX_LIFETIME_SECS {
                return Err(Error::InvalidArgument(format!(
                    "fastmcp_access_token_expiry_seconds must be between 1 and {MAX_LIFETIME_SECS} seconds"
                )));
            }
        }
        if self.unused_client_ttl > MAX_LIFETIME_SECS {
            return Err(Error::InvalidArgument(format!(
                "unused_client_ttl must be at most {MAX_LIFETIME_SECS} seconds (10 years)"
            )));
        }
        if self.refresh_grace_window > Duration::from_secs(86_400) {
            return Err(Error::InvalidArgument(
                "refresh_grace_window must be at most one day".into(),
            ));
        }
        if self.upstream_request_timeout > Duration::from_secs(3_600) {
            return Err(Error::InvalidArgument(
                "upstream_request_timeout must be at most one hour".into(),
            ));
        }
        if self.upstream_request_timeout.is_zero() {
            return Err(Error::InvalidArgument(
                "upstream_request_timeout must be positive".into(),
            ));
        }
        if !self.redirect_path.starts_with('/') {
            return Err(Error::InvalidArgument("redirect_path must start with '/'".into()));
        }
        if self.client_cache_size == 0 {
            return Err(Error::InvalidArgument(
                "client_cache_size must be at least 1".into(),
            ));
        }
        super::resource::ResourcePolicy::new(&self.base_url, &self.accepted_resources)?;
        super::redirect_policy::RedirectPolicy::new(
            &self.allowed_redirect_uri_patterns,
            self.allow_http_redirect_uris,
        )?;
        if self.jwt_signing_key.as_deref() == Some("") {
            return Err(Error::InvalidArgument("jwt_signing_key must not be empty".into()));
        }
        if self.encryption_key.as_deref() == Some("") {
            return Err(Error::InvalidArgument("encryption_key must not be empty".into()));
        }
        Ok(())
    }
}
