//! The OAuth 2.1 proxy: registration, authorize, consent, callback, token exchange with token swap, refresh
//! rotation with a grace window and replay revocation, revocation, metadata.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use url::Url;

use super::config::OAuthProxyConfig;
use super::error::{OAuthError, OAuthResult};
use super::http::{
    escape_html, AuthorizeParams, CallbackParams, ConsentParams, HttpResponse, TokenRequest, TokenResponse,
};
use super::model::*;
use super::upstream::{Grant, Upstream};
use crate::jwt::{IssueOptions, JwtIssuer, TokenUse};
use crate::pkce::{self, constant_time_eq, ChallengeMethod, CodeVerifier};
use crate::store::{now_ms, EncryptedStore, MemoryStore, Store};

const MAX_REDIRECT_URIS: usize = 20;
const MAX_URI_LEN: usize = 2048;

/// 32 random bytes, base64url: ids, codes, keys.
fn random_id() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Glob match: `*` any run of characters, `?` exactly one.
fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// The OAuth proxy. Cheap to share (`Arc`); every method is safe to call concurrently, from several instances in
/// several processes sharing one store.
pub struct OAuthProxy {
    config: OAuthProxyConfig,
    store: Arc<dyn Store>,
    issuer: Option<JwtIssuer>,
    upstream: Upstream,
    redirect_uri: String,
    // Registrations never change once written, so caching them cannot go stale.
    clients: Mutex<HashMap<String, RegisteredClient>>,
}

impl std::fmt::Debug for OAuthProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthProxy")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl OAuthProxy {
    /// Validates `config` and builds the proxy (derives the storage key, which takes ~50 ms of scrypt).
    pub fn new(mut config: OAuthProxyConfig) -> crate::Result<Self> {
        config.validate()?;
        let base: Arc<dyn Store> = config
            .token_storage
            .take()
            .unwrap_or_else(|| Arc::new(MemoryStore::new()));
        let store: Arc<dyn Store> = if config.encryption_disabled {
            base
        } else {
            let key = config.encryption_key.clone().unwrap_or_else(|| {
                tracing::warn!(
                    "OAuthProxy: no encryption_key; stored tokens will not be readable after a restart"
                );
                crate::keys::generate_key()
            });
            let prev: Vec<&str> = config
                .previous_encryption_keys
                .iter()
                .map(String::as_str)
                .collect();
            Arc::new(EncryptedStore::new(base, &key, &prev)?)
        };
        let issuer = if config.enable_token_swap {
            let key = config.jwt_signing_key.clone().unwrap_or_else(|| {
                tracing::warn!("OAuthProxy: no jwt_signing_key; issued tokens die with this process");
                crate::keys::generate_key()
            });
            let mut i = JwtIssuer::new(&config.base_url, &config.base_url, key.as_bytes())?
                .with_layout(config.claim_layout)
                .with_ttls(config.access_token_ttl, config.refresh_token_ttl)?;
            for k in &config.previous_jwt_signing_keys {
                i = i.with_previous_key(k.as_bytes(), None)?;
            }
            Some(i)
        } else {
            None
        };
        let upstream = Upstream::new(&config)?;
        let redirect_uri = format!("{}{}", config.base_url, config.redirect_path);
        Ok(OAuthProxy {
            config,
            store,
            issuer,
            upstream,
            redirect_uri,
            clients: Mutex::new(HashMap::new()),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &OAuthProxyConfig {
        &self.config
    }

    /// The (encrypted) store the proxy keeps its state in.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The JWT issuer (swap mode only).
    pub fn jwt_issuer(&self) -> Option<&JwtIssuer> {
        self.issuer.as_ref()
    }

    /// Our callback URL at upstream (`base_url + redirect_path`).
    pub fn callback_url(&self) -> &str {
        &self.redirect_uri
    }

    /// Stops background work of the store.
    pub fn close(&self) {
        self.store.close();
    }

    // ---- storage helpers ------------------------------------------------------------------------------------

    async fn get_json<T: DeserializeOwned>(&self, key: &str) -> OAuthResult<Option<T>> {
        Ok(self
            .store
            .get(key)
            .await?
            .and_then(|v| serde_json::from_value(v).ok()))
    }

    async fn take_json<T: DeserializeOwned>(&self, key: &str) -> OAuthResult<Option<T>> {
        Ok(self
            .store
            .take(key)
            .await?
            .and_then(|v| serde_json::from_value(v).ok()))
    }

    async fn save_json<T: Serialize>(&self, key: &str, value: &T, ttl_secs: u64) -> OAuthResult<()> {
        let v = serde_json::to_value(value).map_err(crate::Error::from)?;
        let ttl = (ttl_secs > 0).then(|| Duration::from_secs(ttl_secs));
        Ok(self.store.save(key, v, ttl).await?)
    }

    async fn client(&self, client_id: &str) -> OAuthResult<Option<RegisteredClient>> {
        if let Some(c) = self
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(client_id)
        {
            return Ok(Some(c.clone()));
        }
        let c: Option<RegisteredClient> = self.get_json(&format!("client:{client_id}")).await?;
        if let Some(c) = &c {
            self.clients
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(client_id.to_owned(), c.clone());
        }
        Ok(c)
    }

    // ---- registration ---------------------------------------------------------------------------------------

    /// Whether `uri` is acceptable as a client redirect URI under the configured patterns.
    pub fn validate_redirect_uri(&self, uri: &str) -> bool {
        if uri.len() > MAX_URI_LEN {
            return false;
        }
        let Ok(u) = Url::parse(uri) else { return false };
        if !u.username().is_empty() || u.password().is_some() || u.fragment().is_some() {
            return false;
        }
        // Match the normalised form, so case or encoding tricks cannot slip past a pattern.
        let normal = u.as_str();
        self.config
            .allowed_redirect_uri_patterns
            .iter()
            .any(|p| glob_match(p, normal) || glob_match(p, uri) && uri == normal)
    }

    /// RFC 7591 dynamic client registration. Issues our own `client_id` and `client_secret` (none for
    /// `token_endpoint_auth_method: "none"`) and persists the registration, so every instance sharing the store
    /// knows the client.
    pub async fn register_client(&self, request: &Value) -> OAuthResult<Value> {
        let req = request
            .as_object()
            .ok_or_else(|| OAuthError::new("invalid_client_metadata", "body must be a JSON object"))?;
        let uris: Vec<String> = match req.get("redirect_uris") {
            Some(Value::Array(a)) if !a.is_empty() => a
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or_else(|| OAuthError::new("invalid_client_metadata", "redirect_uris must be strings"))?,
            _ => {
                return Err(OAuthError::new(
                    "invalid_client_metadata",
                    "redirect_uris is required",
                ))
            }
        };
        if uris.len() > MAX_REDIRECT_URIS {
            return Err(OAuthError::new(
                "invalid_client_metadata",
                "too many redirect_uris",
            ));
        }
        for u in &uris {
            if !self.validate_redirect_uri(u) {
                return Err(OAuthError::new(
                    "invalid_redirect_uri",
                    "redirect URI not allowed",
                ));
            }
        }
        let method = match req.get("token_endpoint_auth_method") {
            None | Some(Value::Null) => "client_secret_basic".to_owned(),
            Some(Value::String(m))
                if ["none", "client_secret_basic", "client_secret_post"].contains(&m.as_str()) =>
            {
                m.clone()
            }
            _ => {
                return Err(OAuthError::new(
                    "invalid_client_metadata",
                    "unsupported token_endpoint_auth_method",
                ))
            }
        };
        let grant_types = req
            .get("grant_types")
            .cloned()
            .unwrap_or(json!(["authorization_code", "refresh_token"]));
        let ok_grants = grant_types.as_array().is_some_and(|a| {
            a.iter()
                .all(|g| matches!(g.as_str(), Some("authorization_code" | "refresh_token")))
        });
        if !ok_grants {
            return Err(OAuthError::new(
                "invalid_client_metadata",
                "unsupported grant_types",
            ));
        }
        let response_types = req.get("response_types").cloned().unwrap_or(json!(["code"]));
        if response_types != json!(["code"]) {
            return Err(OAuthError::new(
                "invalid_client_metadata",
                "response_types must be [\"code\"]",
            ));
        }
        let mut metadata = serde_json::Map::new();
        for name in [
            "client_name",
            "client_uri",
            "contacts",
            "jwks",
            "jwks_uri",
            "logo_uri",
            "policy_uri",
            "scope",
            "software_id",
            "software_version",
            "tos_uri",
        ] {
            if let Some(v) = req.get(name).filter(|v| !v.is_null()) {
                if v.to_string().len() > MAX_URI_LEN {
                    return Err(OAuthError::new(
                        "invalid_client_metadata",
                        format!("{name} too large"),
                    ));
                }
                metadata.insert(name.into(), v.clone());
            }
        }
        let client_id = {
            let mut b = [0u8; 16];
            rand::thread_rng().fill_bytes(&mut b);
            hex::encode(b)
        };
        let secret = (method != "none").then(random_id);
        let client = RegisteredClient {
            callback_url: uris[0].clone(),
            client_id: client_id.clone(),
            client_secret: None,
            client_secret_hash: secret.as_deref().map(sha256_hex),
            metadata: Value::Object(metadata.clone()),
            redirect_uris: uris.clone(),
            registered_at: iso(SystemTime::now()),
            token_endpoint_auth_method: Some(method.clone()),
        };
        self.save_json(&format!("client:{client_id}"), &client, 0).await?;
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(client_id.clone(), client);
        let mut resp = json!({
            "client_id": client_id,
            "client_id_issued_at": crate::jwt::unix_now(),
            "redirect_uris": uris,
            "grant_types": grant_types,
            "response_types": response_types,
            "token_endpoint_auth_method": method,
        });
        let m = resp.as_object_mut().expect("object");
        if let Some(s) = secret {
            m.insert("client_secret".into(), s.into());
            m.insert("client_secret_expires_at".into(), 0.into());
        }
        m.extend(metadata);
        Ok(resp)
    }

    /// Checks the client's credentials when the registration requires them (fastmcp never does).
    fn authenticate(&self, client: &RegisteredClient, secret: Option<&str>) -> OAuthResult<()> {
        let method = client
            .token_endpoint_auth_method
            .as_deref()
            .unwrap_or("client_secret_basic");
        if method == "none" {
            return Ok(());
        }
        let presented = secret.ok_or_else(|| OAuthError::invalid_client("client authentication required"))?;
        let ok = match (&client.client_secret_hash, &client.client_secret) {
            (Some(h), _) => constant_time_eq(sha256_hex(presented).as_bytes(), h.as_bytes()),
            (None, Some(s)) => constant_time_eq(presented.as_bytes(), s.as_bytes()),
            // A fastmcp registration without a secret: nothing to check against.
            (None, None) => true,
        };
        if ok {
            Ok(())
        } else {
            Err(OAuthError::invalid_client("client authentication failed"))
        }
    }

    // ---- authorize / consent --------------------------------------------------------------------------------

    /// The authorization endpoint: validates the request, records a transaction, and answers with the consent
    /// page or a 302 to upstream. Errors are never redirected (the redirect URI may be the attacker's).
    pub async fn authorize(&self, p: &AuthorizeParams) -> OAuthResult<HttpResponse> {
        let (Some(client_id), Some(redirect_uri), Some(response_type)) =
            (&p.client_id, &p.redirect_uri, &p.response_type)
        else {
            return Err(OAuthError::invalid_request("Missing required parameters"));
        };
        let client = self
            .client(client_id)
            .await?
            .ok_or_else(|| OAuthError::invalid_client("Unknown client_id"))?;
        if !client.redirect_uris.iter().any(|u| u == redirect_uri) {
            return Err(OAuthError::invalid_request(
                "redirect_uri is not registered for this client",
            ));
        }
        if response_type != "code" {
            return Err(OAuthError::new(
                "unsupported_response_type",
                "Only 'code' response type is supported",
            ));
        }
        let method = match (&p.code_challenge, &p.code_challenge_method) {
            (None, _) if self.config.require_pkce => {
                return Err(OAuthError::invalid_request("code_challenge required (PKCE)"))
            }
            (None, _) => None,
            (Some(_), None) => {
                return Err(OAuthError::invalid_request(
                    "code_challenge_method required when code_challenge is present",
                ))
            }
            (Some(c), Some(m)) => {
                let m = ChallengeMethod::parse(m)
                    .map_err(|_| OAuthError::invalid_request("unsupported code_challenge_method"))?;
                if m == ChallengeMethod::Plain && !self.config.allow_plain_pkce {
                    return Err(OAuthError::invalid_request(
                        "code_challenge_method 'plain' is not supported; use S256",
                    ));
                }
                if !pkce::is_valid_verifier(c) {
                    return Err(OAuthError::invalid_request("malformed code_challenge"));
                }
                Some(m)
            }
        };
        let proxy_verifier = CodeVerifier::generate(64)?;
        let tx = Transaction {
            client_callback_url: redirect_uri.clone(),
            client_code_challenge: p.code_challenge.clone().unwrap_or_default(),
            client_code_challenge_method: method.map(|m| m.as_str()).unwrap_or("plain").to_owned(),
            client_id: client_id.clone(),
            consent_given: false,
            created_at: iso(SystemTime::now()),
            expires_at: iso_in(self.config.transaction_ttl),
            id: random_id(),
            proxy_code_challenge: proxy_verifier.challenge(ChallengeMethod::S256),
            proxy_code_verifier: proxy_verifier.as_str().to_owned(),
            scope: match &p.scope {
                Some(s) => s
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
                None => self.config.scopes.clone(),
            },
            state: p.state.clone().unwrap_or_default(),
        };
        self.save_json(
            &format!("transaction:{}", tx.id),
            &tx,
            self.config.transaction_ttl,
        )
        .await?;
        if self.config.consent_required {
            return Ok(self.consent_page(&tx, &client));
        }
        Ok(self.redirect_upstream(&tx))
    }

    fn provider_name(&self) -> String {
        self.config.provider_name.clone().unwrap_or_else(|| {
            Url::parse(&self.config.upstream_authorization_endpoint)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_else(|| "the identity provider".into())
        })
    }

    fn consent_page(&self, tx: &Transaction, client: &RegisteredClient) -> HttpResponse {
        let name = client
            .metadata
            .get("client_name")
            .and_then(Value::as_str)
            .unwrap_or("An MCP client");
        let scopes: String = if tx.scope.is_empty() {
            "<li>(no specific scopes)</li>".into()
        } else {
            tx.scope
                .iter()
                .map(|s| format!("<li>{}</li>", escape_html(s)))
                .collect()
        };
        let body = format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Authorization request</title></head>\n\
             <body><main>\n<h1>Authorize {name}?</h1>\n<p>{name} asks to sign you in with {provider} and will be redirected to \
             <code>{redirect}</code>.</p>\n<ul>{scopes}</ul>\n<form method=\"POST\" action=\"{action}\">\n\
             <input type=\"hidden\" name=\"transaction_id\" value=\"{tx}\">\n\
             <button type=\"submit\" name=\"action\" value=\"approve\">Approve</button>\n\
             <button type=\"submit\" name=\"action\" value=\"deny\">Deny</button>\n</form>\n</main></body></html>\n",
            name = escape_html(name),
            provider = escape_html(&self.provider_name()),
            redirect = escape_html(&tx.client_callback_url),
            scopes = scopes,
            action = escape_html(&format!("{}/oauth/consent", self.config.base_url)),
            tx = escape_html(&tx.id),
        );
        HttpResponse {
            status: 200,
            headers: vec![
                ("Content-Type".into(), "text/html; charset=utf-8".into()),
                ("Cache-Control".into(), "no-store".into()),
                ("X-Frame-Options".into(), "DENY".into()),
                (
                    "Content-Security-Policy".into(),
                    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'".into(),
                ),
            ],
            body: Some(body),
        }
    }

    fn redirect_upstream(&self, tx: &Transaction) -> HttpResponse {
        const RESERVED: &[&str] = &[
            "client_id",
            "code_challenge",
            "code_challenge_method",
            "redirect_uri",
            "response_type",
            "scope",
            "state",
        ];
        let mut u = match Url::parse(&self.config.upstream_authorization_endpoint) {
            Ok(u) => u,
            Err(_) => return HttpResponse::from_error(&OAuthError::server_error("bad upstream URL")),
        };
        {
            let mut q = u.query_pairs_mut();
            for (k, v) in &self.config.extra_authorization_params {
                if !RESERVED.contains(&k.as_str()) {
                    q.append_pair(k, v);
                }
            }
            q.append_pair("client_id", &self.config.upstream_client_id);
            q.append_pair("redirect_uri", &self.redirect_uri);
            q.append_pair("response_type", "code");
            q.append_pair("state", &tx.id);
            if !tx.scope.is_empty() {
                q.append_pair("scope", &tx.scope.join(" "));
            }
            if self.config.forward_pkce {
                q.append_pair("code_challenge", &tx.proxy_code_challenge);
                q.append_pair("code_challenge_method", "S256");
            }
        }
        HttpResponse::redirect(u.into())
    }

    async fn transaction_still_valid(&self, tx: &Transaction) -> OAuthResult<bool> {
        Ok(self
            .client(&tx.client_id)
            .await?
            .is_some_and(|c| c.redirect_uris.contains(&tx.client_callback_url)))
    }

    fn client_redirect(tx: &Transaction, params: &[(&str, &str)]) -> OAuthResult<HttpResponse> {
        let mut u = Url::parse(&tx.client_callback_url)
            .map_err(|_| OAuthError::invalid_request("bad redirect URI"))?;
        {
            let mut q = u.query_pairs_mut();
            for (k, v) in params {
                q.append_pair(k, v);
            }
            if !tx.state.is_empty() {
                q.append_pair("state", &tx.state);
            }
        }
        Ok(HttpResponse::redirect(u.into()))
    }

    /// The consent form: `approve` continues to upstream, `deny` redirects to the client with `access_denied`;
    /// anything else is `invalid_request`.
    pub async fn handle_consent(&self, p: &ConsentParams) -> OAuthResult<HttpResponse> {
        let id = p
            .transaction_id
            .as_deref()
            .ok_or_else(|| OAuthError::invalid_request("Missing transaction_id"))?;
        let approve = match p.action.as_deref() {
            Some("approve") => true,
            Some("deny") => false,
            _ => return Err(OAuthError::invalid_request("action must be 'approve' or 'deny'")),
        };
        let key = format!("transaction:{id}");
        let tx: Transaction = match self.get_json::<Transaction>(&key).await? {
            Some(t) if !is_past(&t.expires_at) => t,
            _ => return Err(OAuthError::invalid_request("Invalid or expired transaction")),
        };
        if !self.transaction_still_valid(&tx).await? {
            return Err(OAuthError::invalid_request(
                "Transaction callback URL is not registered",
            ));
        }
        if !approve {
            self.store.delete(&key).await?;
            return Self::client_redirect(
                &tx,
                &[
                    ("error", "access_denied"),
                    ("error_description", "User denied authorization"),
                ],
            );
        }
        let approved = Transaction {
            consent_given: true,
            ..tx
        };
        self.save_json(&key, &approved, secs_until(&approved.expires_at).max(1))
            .await?;
        Ok(self.redirect_upstream(&approved))
    }

    // ---- callback -------------------------------------------------------------------------------------------

    /// The upstream callback: consumes the single-use transaction, exchanges upstream's code, and redirects to
    /// the client with a fresh single-use code of ours.
    pub async fn handle_callback(&self, p: &CallbackParams) -> OAuthResult<HttpResponse> {
        let state = p
            .state
            .as_deref()
            .ok_or_else(|| OAuthError::invalid_request("Missing code or state parameter"))?;
        let tx: Transaction = match self
            .take_json::<Transaction>(&format!("transaction:{state}"))
            .await?
        {
            Some(t) if !is_past(&t.expires_at) => t,
            _ => return Err(OAuthError::invalid_request("Invalid or expired state")),
        };
        if !self.transaction_still_valid(&tx).await? {
            return Err(OAuthError::invalid_request(
                "Transaction callback URL is not registered",
            ));
        }
        if let Some(err) = &p.error {
            // Upstream refused: tell the client, with a code it can trust (never upstream's free text).
            let code = if [
                "access_denied",
                "invalid_scope",
                "temporarily_unavailable",
                "server_error",
            ]
            .contains(&err.as_str())
            {
                err.as_str()
            } else {
                "access_denied"
            };
            return Self::client_redirect(&tx, &[("error", code)]);
        }
        let code = p
            .code
            .as_deref()
            .ok_or_else(|| OAuthError::invalid_request("Missing code or state parameter"))?;
        if self.config.consent_required && !tx.consent_given {
            // Without this check a link straight to upstream would skip the consent page (a confused deputy).
            return Err(OAuthError::new(
                "access_denied",
                "authorization was not approved on the consent page",
            )
            .with_status(403));
        }
        let verifier = self
            .config
            .forward_pkce
            .then_some(tx.proxy_code_verifier.as_str());
        let tokens = self
            .upstream
            .token(
                Grant::AuthorizationCode {
                    code,
                    redirect_uri: &self.redirect_uri,
                    code_verifier: verifier,
                },
                &tx.scope,
            )
            .await?;
        let our_code = random_id();
        let record = ClientCode {
            client_id: tx.client_id.clone(),
            code: our_code.clone(),
            code_challenge: tx.client_code_challenge.clone(),
            code_challenge_method: tx.client_code_challenge_method.clone(),
            created_at: iso(SystemTime::now()),
            expires_at: iso_in(self.config.authorization_code_ttl),
            transaction_id: tx.id.clone(),
            upstream_tokens: tokens,
            redirect_uri: Some(tx.client_callback_url.clone()),
        };
        self.save_json(
            &format!("code:{our_code}"),
            &record,
            self.config.authorization_code_ttl,
        )
        .await?;
        Self::client_redirect(&tx, &[("code", &our_code)])
    }

    // ---- token endpoint -------------------------------------------------------------------------------------

    /// The token endpoint for any grant.
    pub async fn token(&self, req: &TokenRequest) -> OAuthResult<TokenResponse> {
        match req.grant_type.as_deref() {
            Some("authorization_code") => self.exchange_authorization_code(req).await,
            Some("refresh_token") => self.exchange_refresh_token(req).await,
            Some(_) => Err(OAuthError::new(
                "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token",
            )),
            None => Err(OAuthError::invalid_request("Missing grant_type")),
        }
    }

    /// Redeems one of our codes: atomic take (a tombstone makes a replay report "already used"), client binding,
    /// client authentication for confidential clients, PKCE in constant time; answers with our JWTs (swap) or
    /// the upstream tokens (passthrough).
    pub async fn exchange_authorization_code(&self, req: &TokenRequest) -> OAuthResult<TokenResponse> {
        if req.grant_type.as_deref() != Some("authorization_code") {
            return Err(OAuthError::new(
                "unsupported_grant_type",
                "Only authorization_code grant type is supported",
            ));
        }
        let client_id = req
            .client_id
            .as_deref()
            .ok_or_else(|| OAuthError::invalid_request("Missing client_id"))?;
        let code = req
            .code
            .as_deref()
            .ok_or_else(|| OAuthError::invalid_request("Missing code"))?;
        let client = self
            .client(client_id)
            .await?
            .ok_or_else(|| OAuthError::invalid_client("Unknown client_id"))?;
        self.authenticate(&client, req.client_secret.as_deref())?;
        let key = format!("code:{code}");
        let taken = self.store.take(&key).await?;
        let Some(taken) = taken else {
            return Err(OAuthError::invalid_grant("Invalid or expired authorization code"));
        };
        if let Ok(spent) = serde_json::from_value::<SpentCode>(taken.clone()) {
            if spent.used {
                // Put the tombstone back for the next replay.
                self.save_json(&key, &spent, secs_until(&spent.expires_at).max(1))
                    .await?;
                return Err(OAuthError::invalid_grant("Authorization code already used"));
            }
        }
        let record: ClientCode = match serde_json::from_value(taken) {
            Ok(r) => r,
            Err(_) => return Err(OAuthError::invalid_grant("Invalid or expired authorization code")),
        };
        if is_past(&record.expires_at) {
            return Err(OAuthError::invalid_grant("Invalid or expired authorization code"));
        }
        let tomb = SpentCode {
            expires_at: record.expires_at.clone(),
            used: true,
        };
        self.save_json(&key, &tomb, secs_until(&record.expires_at).max(1))
            .await?;
        if !constant_time_eq(record.client_id.as_bytes(), client_id.as_bytes()) {
            return Err(OAuthError::invalid_grant(
                "Authorization code was issued to another client",
            ));
        }
        if let (Some(sent), Some(expected)) = (&req.redirect_uri, &record.redirect_uri) {
            if sent != expected {
                return Err(OAuthError::invalid_grant(
                    "redirect_uri does not match the authorization request",
                ));
            }
        }
        if !record.code_challenge.is_empty() {
            let verifier = req
                .code_verifier
                .as_deref()
                .ok_or_else(|| OAuthError::invalid_request("code_verifier required for PKCE"))?;
            let method = ChallengeMethod::parse(&record.code_challenge_method)
                .map_err(|_| OAuthError::invalid_grant("Invalid PKCE method"))?;
            if method == ChallengeMethod::Plain && !self.config.allow_plain_pkce {
                return Err(OAuthError::invalid_grant(
                    "code_challenge_method 'plain' is not supported; use S256",
                ));
            }
            if !pkce::validate_challenge(verifier, &record.code_challenge, method) {
                return Err(OAuthError::invalid_grant("Invalid PKCE verifier"));
            }
        } else if self.config.require_pkce {
            return Err(OAuthError::invalid_grant("PKCE is required"));
        }
        let up = record.upstream_tokens;
        if self.issuer.is_none() {
            return Ok(TokenResponse::passthrough(up));
        }
        let key = random_id();
        self.issue_swapped(&record.client_id, &up, &key, true).await
    }

    fn ttls(&self, up: &UpstreamTokens) -> (u64, u64) {
        let access = if up.expires_in > 0 {
            up.expires_in
        } else {
            self.config.access_token_ttl
        };
        let refresh = if up.refresh_token.is_some() {
            up.refresh_expires_in.unwrap_or(self.config.refresh_token_ttl)
        } else {
            0
        };
        (access, refresh)
    }

    /// Stores the upstream tokens under `key` (when `store_upstream`) and issues our access (+ refresh) JWTs.
    async fn issue_swapped(
        &self,
        client_id: &str,
        up: &UpstreamTokens,
        key: &str,
        store_upstream: bool,
    ) -> OAuthResult<TokenResponse> {
        let issuer = self
            .issuer
            .as_ref()
            .ok_or_else(|| OAuthError::server_error("token swap disabled"))?;
        let (access_ttl, refresh_ttl) = self.ttls(up);
        if store_upstream {
            self.save_json(&format!("upstream:{key}"), up, access_ttl.max(refresh_ttl).max(1))
                .await?;
        }
        let (access_token, _) = self
            .issue_one(issuer, TokenUse::Access, client_id, up, key, access_ttl)
            .await?;
        let refresh_token = match up.refresh_token {
            Some(_) => Some(
                self.issue_one(issuer, TokenUse::Refresh, client_id, up, key, refresh_ttl)
                    .await?
                    .0,
            ),
            None => None,
        };
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer".into(),
            expires_in: access_ttl,
            refresh_token,
            scope: Some(up.scope.join(" ")),
            id_token: None,
        })
    }

    async fn issue_one(
        &self,
        issuer: &JwtIssuer,
        kind: TokenUse,
        client_id: &str,
        up: &UpstreamTokens,
        key: &str,
        ttl: u64,
    ) -> OAuthResult<(String, String)> {
        let scope = &up.scope;
        let jti = crate::jwt::generate_jti();
        let opts = IssueOptions {
            jti: Some(jti.clone()),
            expires_in: Some(ttl),
            // Upstream claims, when configured (see `claims`); the issuer never lets them override reserved ones.
            extra_claims: self
                .config
                .custom_claims_passthrough
                .as_ref()
                .and_then(|c| c.extract(up)),
            ..Default::default()
        };
        let token = match kind {
            TokenUse::Access => issuer.issue_access_token(client_id, scope, opts)?,
            TokenUse::Refresh => issuer.issue_refresh_token(client_id, scope, opts)?,
        };
        let mapping = TokenMapping {
            client_id: client_id.to_owned(),
            created_at: iso(SystemTime::now()),
            expires_at: iso_in(ttl),
            jti: jti.clone(),
            scope: scope.to_vec(),
            upstream_token_key: key.to_owned(),
            token_use: Some(kind.as_str().to_owned()),
        };
        self.save_json(&format!("mapping:{jti}"), &mapping, ttl).await?;
        Ok((token, jti))
    }

    /// Refreshes: in swap mode our refresh token is rotated (see the module docs for the grace window and
    /// replay revocation); in passthrough mode the request goes to upstream as is.
    pub async fn exchange_refresh_token(&self, req: &TokenRequest) -> OAuthResult<TokenResponse> {
        if req.grant_type.as_deref() != Some("refresh_token") {
            return Err(OAuthError::new(
                "unsupported_grant_type",
                "Only refresh_token grant type is supported",
            ));
        }
        let token = req
            .refresh_token
            .as_deref()
            .ok_or_else(|| OAuthError::invalid_request("Missing refresh_token"))?;
        let Some(issuer) = &self.issuer else {
            let up = self
                .upstream
                .token(
                    Grant::RefreshToken {
                        refresh_token: token,
                        scope: req.scope.as_deref(),
                    },
                    &[],
                )
                .await?;
            return Ok(TokenResponse::passthrough(up));
        };
        let claims = issuer
            .verify(token, TokenUse::Refresh)
            .map_err(|_| OAuthError::invalid_grant("Invalid or expired refresh token"))?;
        let jti = claims
            .get("jti")
            .and_then(Value::as_str)
            .ok_or_else(|| OAuthError::invalid_grant("Refresh token missing JTI"))?;
        let token_client = claims
            .get("client_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if req.client_id.as_deref().is_some_and(|c| c != token_client) {
            return Err(OAuthError::invalid_grant(
                "Refresh token was issued to another client",
            ));
        }
        let client = self
            .client(token_client)
            .await?
            .ok_or_else(|| OAuthError::invalid_client("Unknown client_id"))?;
        self.authenticate(&client, req.client_secret.as_deref())?;

        let grace = self.config.refresh_grace_window;
        let deadline =
            std::time::Instant::now() + self.config.upstream_request_timeout + Duration::from_secs(2);
        let mut misses = 0;
        loop {
            let mapping_key = format!("mapping:{jti}");
            if let Some(mapping) = self.take_json::<TokenMapping>(&mapping_key).await? {
                if mapping.token_use.as_deref() == Some("access") {
                    self.save_json(&mapping_key, &mapping, secs_until(&mapping.expires_at).max(1))
                        .await?;
                    return Err(OAuthError::invalid_grant(
                        "An access token is not a refresh token",
                    ));
                }
                return self.rotate(jti, mapping, req.scope.as_deref()).await;
            }
            match self.get_json::<Rotation>(&format!("rotated:{jti}")).await? {
                // A concurrent winner may sit between its claim and its "pending" record: look again briefly.
                None if !grace.is_zero() && misses < 10 => {
                    misses += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                None => return Err(OAuthError::invalid_grant("Refresh token already used or expired")),
                Some(r) if r.state == "pending" => {
                    if grace.is_zero() || std::time::Instant::now() >= deadline {
                        return Err(OAuthError::invalid_grant(
                            "Refresh token is being used by a concurrent request",
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Some(r) => {
                    let age = Duration::from_millis(now_ms().saturating_sub(r.at_ms));
                    if age <= grace && !grace.is_zero() {
                        return self.grace_response(&r).await;
                    }
                    tracing::warn!(client = %r.client_id, "refresh token replay detected; revoking the grant");
                    self.revoke_grant(&r.upstream_token_key, r.successor_jti.as_deref())
                        .await?;
                    return Err(OAuthError::invalid_grant(
                        "Refresh token reuse detected; the grant has been revoked",
                    ));
                }
            }
        }
    }

    async fn rotate(
        &self,
        jti: &str,
        mapping: TokenMapping,
        scope: Option<&str>,
    ) -> OAuthResult<TokenResponse> {
        let rot_key = format!("rotated:{jti}");
        let keep = secs_until(&mapping.expires_at).max(self.config.refresh_grace_window.as_secs() + 60);
        let pending = Rotation {
            state: "pending".into(),
            at_ms: now_ms(),
            client_id: mapping.client_id.clone(),
            upstream_token_key: mapping.upstream_token_key.clone(),
            successor_refresh_token: None,
            successor_jti: None,
        };
        self.save_json(&rot_key, &pending, keep).await?;
        let result = async {
            let up_key = format!("upstream:{}", mapping.upstream_token_key);
            let old: UpstreamTokens = self
                .get_json(&up_key)
                .await?
                .ok_or_else(|| OAuthError::invalid_grant("Upstream tokens not found or expired"))?;
            let rt = old
                .refresh_token
                .clone()
                .ok_or_else(|| OAuthError::invalid_grant("No upstream refresh token available"))?;
            let fresh = self
                .upstream
                .token(
                    Grant::RefreshToken {
                        refresh_token: &rt,
                        scope,
                    },
                    &old.scope,
                )
                .await?;
            let (access_ttl, refresh_ttl) = self.ttls(&fresh);
            self.save_json(&up_key, &fresh, access_ttl.max(refresh_ttl).max(1))
                .await?;
            let issuer = self
                .issuer
                .as_ref()
                .ok_or_else(|| OAuthError::server_error("token swap disabled"))?;
            let (access_token, _) = self
                .issue_one(
                    issuer,
                    TokenUse::Access,
                    &mapping.client_id,
                    &fresh,
                    &mapping.upstream_token_key,
                    access_ttl,
                )
                .await?;
            let (refresh_token, refresh_jti) = self
                .issue_one(
                    issuer,
                    TokenUse::Refresh,
                    &mapping.client_id,
                    &fresh,
                    &mapping.upstream_token_key,
                    refresh_ttl.max(1),
                )
                .await?;
            Ok::<_, OAuthError>((
                TokenResponse {
                    access_token,
                    token_type: "Bearer".into(),
                    expires_in: access_ttl,
                    refresh_token: Some(refresh_token),
                    scope: Some(fresh.scope.join(" ")),
                    id_token: None,
                },
                refresh_jti,
            ))
        }
        .await;
        match result {
            Ok((resp, refresh_jti)) => {
                let done = Rotation {
                    state: "done".into(),
                    at_ms: now_ms(),
                    successor_refresh_token: resp.refresh_token.clone(),
                    successor_jti: Some(refresh_jti),
                    ..pending
                };
                self.save_json(&rot_key, &done, keep).await?;
                Ok(resp)
            }
            Err(e) => {
                if e.is_transient() {
                    // Upstream hiccup: give the claim back so the user is not logged out.
                    self.save_json(
                        &format!("mapping:{jti}"),
                        &mapping,
                        secs_until(&mapping.expires_at).max(1),
                    )
                    .await?;
                }
                self.store.delete(&rot_key).await?;
                Err(e)
            }
        }
    }

    async fn grace_response(&self, r: &Rotation) -> OAuthResult<TokenResponse> {
        let issuer = self
            .issuer
            .as_ref()
            .ok_or_else(|| OAuthError::server_error("token swap disabled"))?;
        let up: UpstreamTokens = self
            .get_json(&format!("upstream:{}", r.upstream_token_key))
            .await?
            .ok_or_else(|| OAuthError::invalid_grant("Grant revoked or expired"))?;
        let (access_ttl, _) = self.ttls(&up);
        let (access_token, _) = self
            .issue_one(
                issuer,
                TokenUse::Access,
                &r.client_id,
                &up,
                &r.upstream_token_key,
                access_ttl,
            )
            .await?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer".into(),
            expires_in: access_ttl,
            refresh_token: r.successor_refresh_token.clone(),
            scope: Some(up.scope.join(" ")),
            id_token: None,
        })
    }

    /// Revokes a whole grant: its upstream tokens (so every token of the grant stops resolving) and the live
    /// refresh tokens descending from a rotated one.
    async fn revoke_grant(&self, upstream_key: &str, mut successor: Option<&str>) -> OAuthResult<()> {
        self.store.delete(&format!("upstream:{upstream_key}")).await?;
        let mut hops = 0;
        let mut owned;
        while let Some(j) = successor {
            self.store.delete(&format!("mapping:{j}")).await?;
            hops += 1;
            if hops > 32 {
                break;
            }
            owned = self
                .get_json::<Rotation>(&format!("rotated:{j}"))
                .await?
                .and_then(|r| r.successor_jti);
            successor = owned.as_deref();
        }
        Ok(())
    }

    // ---- token use ------------------------------------------------------------------------------------------

    /// The upstream tokens behind one of our access tokens; `None` when the token is invalid, expired, revoked,
    /// or a refresh token.
    pub async fn load_upstream_tokens(&self, token: &str) -> OAuthResult<Option<UpstreamTokens>> {
        let Some(issuer) = &self.issuer else {
            return Ok(None);
        };
        let Ok(claims) = issuer.verify(token, TokenUse::Access) else {
            return Ok(None);
        };
        let Some(jti) = claims.get("jti").and_then(Value::as_str) else {
            return Ok(None);
        };
        let Some(mapping) = self.get_json::<TokenMapping>(&format!("mapping:{jti}")).await? else {
            return Ok(None);
        };
        if mapping.token_use.as_deref() == Some("refresh") {
            return Ok(None);
        }
        self.get_json(&format!("upstream:{}", mapping.upstream_token_key))
            .await
    }

    /// Verifies one of our access tokens and returns its claims when it is still live in the store.
    pub async fn verify_access_token(&self, token: &str) -> OAuthResult<Option<crate::Claims>> {
        let Some(issuer) = &self.issuer else {
            return Ok(None);
        };
        let Ok(claims) = issuer.verify(token, TokenUse::Access) else {
            return Ok(None);
        };
        if self.load_upstream_tokens(token).await?.is_none() {
            return Ok(None);
        }
        Ok(Some(claims))
    }

    /// RFC 7009 revocation of one of our tokens. Revoking a refresh token revokes its whole grant; an access
    /// token only itself. Unknown or invalid tokens are not an error (RFC 7009 §2.2).
    pub async fn revoke(&self, token: &str, client_id: &str, client_secret: Option<&str>) -> OAuthResult<()> {
        let client = self
            .client(client_id)
            .await?
            .ok_or_else(|| OAuthError::invalid_client("Unknown client_id"))?;
        self.authenticate(&client, client_secret)?;
        let Some(issuer) = &self.issuer else { return Ok(()) };
        let claims = match issuer
            .verify(token, TokenUse::Refresh)
            .or_else(|_| issuer.verify(token, TokenUse::Access))
        {
            Ok(c) => c,
            Err(_) => return Ok(()),
        };
        if claims.get("client_id").and_then(Value::as_str) != Some(client_id) {
            return Ok(()); // not this client's token: nothing is revealed, nothing revoked
        }
        let Some(jti) = claims.get("jti").and_then(Value::as_str) else {
            return Ok(());
        };
        let Some(mapping) = self.take_json::<TokenMapping>(&format!("mapping:{jti}")).await? else {
            return Ok(());
        };
        if mapping.token_use.as_deref() != Some("access") {
            self.revoke_grant(&mapping.upstream_token_key, None).await?;
        }
        Ok(())
    }

    /// RFC 8414 authorization server metadata.
    pub fn authorization_server_metadata(&self) -> Value {
        self.config.authorization_server_metadata()
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs() {
        assert!(glob_match("http://localhost:*", "http://localhost:1234/cb"));
        assert!(glob_match(
            "https://app.example.com/cb?",
            "https://app.example.com/cb1"
        ));
        assert!(!glob_match("http://localhost:*", "https://localhost:1/"));
        assert!(!glob_match("https://a.com/*", "https://a.com.evil/x"));
        assert!(glob_match("*", ""));
    }
}
