//! The authorization endpoint (RFC 6749 §4.1.1): validates the request, records a transaction bound to the browser,
//! answers with the consent page or a redirect to upstream.
//!
//! Errors: until the client and its redirect URI are known and match (RFC 6749 §4.1.2.1), an error is a plain 400
//! and never a redirect (the URI may be an attacker's). After that, every error goes back to the client's
//! redirect URI with `error`, `error_description`, the client's `state` and `iss` (RFC 9207), so a native client
//! waiting on its loopback listener learns of it.

use std::time::SystemTime;

use url::Url;

use super::browser_binding;
use super::error::{OAuthError, OAuthResult};
use super::http::{AuthorizeParams, HttpResponse, MAX_STATE_BYTES};
use super::model::*;
use super::provider::{random_id, OAuthProxy};
use super::rate_limit::Endpoint;
use super::redirect_policy;
use super::scope_policy;
use crate::pkce::{self, ChallengeMethod, CodeVerifier};

/// Where authorization answers go: the client's redirect URI and `state`.
pub(super) struct ClientRedirect<'a> {
    pub uri: &'a str,
    pub state: &'a str,
}

impl OAuthProxy {
    /// The authorization endpoint: validates the request, records a transaction bound to the browser (see
    /// [`browser_binding`]), and answers with the consent page or a 302 to upstream, with the browser-binding
    /// cookie. `p.cookie` is the request's `Cookie` header.
    pub async fn authorize(&self, p: &AuthorizeParams) -> OAuthResult<HttpResponse> {
        // Before anything is looked up or fetched (a metadata document): a plain 429.
        self.rate_limit(
            Endpoint::Authorize,
            p.remote_addr.as_deref(),
            p.client_id.as_deref(),
            false,
        )
        .await?;
        let client_id = p
            .client_id
            .as_deref()
            .ok_or_else(|| OAuthError::invalid_request("Missing client_id"))?;
        // Unknown or refused (a metadata document that fails its checks): a plain 400, never a redirect.
        let client = self
            .client(client_id)
            .await
            .map_err(|e| match e.code.as_str() {
                "invalid_client" => e.with_status(400),
                _ => e,
            })?
            .ok_or_else(|| OAuthError::invalid_client("Unknown client_id").with_status(400))?;
        // RFC 6749 §3.1.2.3: without `redirect_uri` the client must have exactly one registered.
        let redirect_uri = match (&p.redirect_uri, client.redirect_uris.as_slice()) {
            (Some(r), _) => r.as_str(),
            (None, [only]) => only.as_str(),
            (None, _) => return Err(OAuthError::invalid_request("Missing redirect_uri")),
        };
        let registered = client
            .redirect_uris
            .iter()
            .any(|u| redirect_policy::matches_registered(u, redirect_uri));
        // The current policy applies too: a registration made under an older, looser policy (or by fastmcp)
        // does not keep a redirect the operator has since refused.
        if !registered {
            return Err(OAuthError::invalid_request(
                "redirect_uri is not registered for this client",
            ));
        }
        if !self.redirect_policy.allows(redirect_uri) {
            return Err(OAuthError::invalid_request(
                "redirect_uri is not allowed by this server's redirect URI policy",
            ));
        }
        let state = p.state.as_deref().unwrap_or("");
        if state.len() > MAX_STATE_BYTES {
            // Too large to echo back safely: a plain error.
            return Err(OAuthError::invalid_request(format!(
                "state longer than {MAX_STATE_BYTES} bytes"
            )));
        }
        let back = ClientRedirect {
            uri: redirect_uri,
            state,
        };
        match self.authorize_checked(p, &client, redirect_uri).await {
            Ok(r) => Ok(r),
            Err(e) if e.status < 500 || e.code == "temporarily_unavailable" => self.redirect_error(&back, &e),
            Err(e) => Err(e),
        }
    }

    /// Everything after the client and its redirect URI are known: errors here are redirected.
    async fn authorize_checked(
        &self,
        p: &AuthorizeParams,
        client: &RegisteredClient,
        redirect_uri: &str,
    ) -> OAuthResult<HttpResponse> {
        match p.response_type.as_deref() {
            Some("code") => {}
            Some(_) => {
                return Err(OAuthError::new(
                    "unsupported_response_type",
                    "Only 'code' response type is supported",
                ))
            }
            None => return Err(OAuthError::invalid_request("Missing response_type")),
        }
        let method = self.check_pkce_challenge(p, self.is_cimd_client_id(&client.client_id))?;
        let scope = self.requested_scope(p.scope.as_deref())?;
        let registered = client.metadata.get("scope").and_then(serde_json::Value::as_str);
        scope_policy::check_registered(&scope, registered)?;
        let resource = p
            .resource
            .as_deref()
            .map(|r| self.resource_policy.check(r))
            .transpose()?;
        let tx_id = random_id();
        let browser = browser_binding::browser_id(p.cookie.as_deref(), self.secure_cookies())
            .unwrap_or_else(browser_binding::new_browser_id);
        let browser_hash = browser_binding::digest(&browser);
        let slot = self.transaction_slot_key(&client.client_id, Some(&browser_hash));
        if let Some(oldest) = self.reserve_transaction_slot(&slot, &tx_id) {
            tracing::info!(client = %client.client_id, "open-transaction cap reached; the oldest one was given up");
            self.store.delete(&format!("transaction:{oldest}")).await?;
        }

        let csrf = self.config.consent_required.then(random_id);
        let proxy_verifier = CodeVerifier::generate(64)?;
        let tx = Transaction {
            client_callback_url: redirect_uri.to_owned(),
            client_code_challenge: p.code_challenge.clone().unwrap_or_default(),
            client_code_challenge_method: method.map(|m| m.as_str()).unwrap_or("plain").to_owned(),
            client_id: client.client_id.clone(),
            consent_given: false,
            created_at: iso(SystemTime::now()),
            expires_at: iso_in(self.config.transaction_ttl),
            id: tx_id,
            proxy_code_challenge: proxy_verifier.challenge(ChallengeMethod::S256),
            proxy_code_verifier: proxy_verifier.as_str().to_owned(),
            scope,
            state: p.state.clone().unwrap_or_default(),
            browser_binding_hash: Some(browser_hash),
            csrf_token_hash: csrf.as_deref().map(browser_binding::digest),
            resource,
        };
        let saved = self
            .save_json(
                &format!("transaction:{}", tx.id),
                &tx,
                self.config.transaction_ttl,
            )
            .await;
        if let Err(e) = saved {
            self.release_transaction_slot(&tx);
            return Err(e);
        }
        let mut response = match &csrf {
            Some(token) => self.consent_page(&tx, client, token),
            None => self.redirect_upstream(&tx),
        };
        response.headers.push((
            "Set-Cookie".into(),
            browser_binding::set_cookie(&browser, self.config.transaction_ttl, self.secure_cookies()),
        ));
        Ok(response)
    }

    /// PKCE (RFC 7636 §4.3; OAuth 2.1 and MCP require it): S256, `plain` only when allowed. A metadata-document
    /// client (`url_client`) is a public client anyone can name: S256 always, whatever the configuration (MCP
    /// authorization 2025-11-25, "Client ID Metadata Documents").
    fn check_pkce_challenge(
        &self,
        p: &AuthorizeParams,
        url_client: bool,
    ) -> OAuthResult<Option<ChallengeMethod>> {
        let require = self.config.require_pkce || url_client;
        let allow_plain = self.config.allow_plain_pkce && !url_client;
        match (&p.code_challenge, &p.code_challenge_method) {
            (None, _) if require => Err(OAuthError::invalid_request("code_challenge required (PKCE)")),
            (None, _) => Ok(None),
            // RFC 7636 §4.3: the method defaults to `plain`, which we refuse unless allowed.
            (Some(c), m) => {
                let m = match m {
                    Some(m) => ChallengeMethod::parse(m)
                        .map_err(|_| OAuthError::invalid_request("unsupported code_challenge_method"))?,
                    None => ChallengeMethod::Plain,
                };
                if m == ChallengeMethod::Plain && !allow_plain {
                    return Err(OAuthError::invalid_request(
                        "code_challenge_method 'plain' is not supported; use S256",
                    ));
                }
                if !pkce::is_valid_verifier(c) {
                    return Err(OAuthError::invalid_request("malformed code_challenge"));
                }
                Ok(Some(m))
            }
        }
    }

    /// The scopes of an authorization request (RFC 6749 §3.3; see [`scope_policy`]); the configured scopes when
    /// none.
    fn requested_scope(&self, scope: Option<&str>) -> OAuthResult<Vec<String>> {
        let Some(s) = scope else {
            return Ok(self.config.scopes.clone());
        };
        let scopes = scope_policy::parse(s)?;
        scope_policy::check_valid(&scopes, self.config.valid_scopes.as_deref())?;
        Ok(scopes)
    }

    /// Whether our cookies are `Secure` and `__Host-` prefixed: when this server is served over https.
    pub(super) fn secure_cookies(&self) -> bool {
        self.https
    }

    /// The 302 to upstream's authorization endpoint for `tx`.
    pub(super) fn redirect_upstream(&self, tx: &Transaction) -> HttpResponse {
        const RESERVED: &[&str] = &[
            "client_id",
            "code_challenge",
            "code_challenge_method",
            "redirect_uri",
            "resource",
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
            let scope = self.config.upstream_scopes().authorize(&tx.scope);
            if !scope.is_empty() {
                q.append_pair("scope", &scope.join(" "));
            }
            if self.config.forward_pkce {
                q.append_pair("code_challenge", &tx.proxy_code_challenge);
                q.append_pair("code_challenge_method", "S256");
            }
            if let (true, Some(r)) = (self.config.forward_resource, &tx.resource) {
                q.append_pair("resource", r);
            }
        }
        HttpResponse::redirect(u.into())
    }

    /// Whether the transaction's client still exists and still has the transaction's redirect URI.
    pub(super) async fn transaction_still_valid(&self, tx: &Transaction) -> OAuthResult<bool> {
        Ok(self.client(&tx.client_id).await?.is_some_and(|c| {
            c.redirect_uris
                .iter()
                .any(|u| redirect_policy::matches_registered(u, &tx.client_callback_url))
        }) && self.redirect_policy.allows(&tx.client_callback_url))
    }

    /// A 302 to the client's redirect URI with `params`, its `state` and our `iss` (RFC 9207 §2).
    pub(super) fn client_redirect(
        &self,
        to: &ClientRedirect<'_>,
        params: &[(&str, &str)],
    ) -> OAuthResult<HttpResponse> {
        let mut u = Url::parse(to.uri).map_err(|_| OAuthError::invalid_request("bad redirect URI"))?;
        {
            let mut q = u.query_pairs_mut();
            for (k, v) in params {
                q.append_pair(k, v);
            }
            if !to.state.is_empty() {
                q.append_pair("state", to.state);
            }
            q.append_pair("iss", &self.config.base_url);
        }
        Ok(HttpResponse::redirect(u.into()))
    }

    /// An error answered as a redirect to the client (RFC 6749 §4.1.2.1), with its fixed description.
    pub(super) fn redirect_error(
        &self,
        to: &ClientRedirect<'_>,
        e: &OAuthError,
    ) -> OAuthResult<HttpResponse> {
        let code = match e.code.as_str() {
            "invalid_request"
            | "unauthorized_client"
            | "access_denied"
            | "unsupported_response_type"
            | "invalid_scope"
            | "invalid_target"
            | "server_error"
            | "temporarily_unavailable" => e.code.as_str(),
            _ => "invalid_request",
        };
        let desc = e.description.as_deref().unwrap_or(code);
        self.client_redirect(to, &[("error", code), ("error_description", desc)])
    }
}

impl Transaction {
    /// Where answers about this transaction go.
    pub(super) fn client_redirect(&self) -> ClientRedirect<'_> {
        ClientRedirect {
            uri: &self.client_callback_url,
            state: &self.state,
        }
    }
}
