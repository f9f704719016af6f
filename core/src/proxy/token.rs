//! The token endpoint: the authorization-code grant and the issuing of our tokens (token swap).

use std::time::SystemTime;

use super::error::{OAuthError, OAuthResult};
use super::http::{TokenRequest, TokenResponse};
use super::metrics::Metrics;
use super::model::*;
use super::provider::{random_id, OAuthProxy};
use super::rate_limit::Endpoint;
use super::resource::same_resource;
use super::scope_policy;
use crate::jwt::{IssueOptions, JwtIssuer, TokenUse, MAX_TOKEN_BYTES};
use crate::pkce::{self, constant_time_eq, ChallengeMethod};

use super::code_use::{CODE_REPLAYED, CODE_UNKNOWN};

impl OAuthProxy {
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

    /// Redeems one of our codes: spent once (code_use.rs: a replay, even a simultaneous one, is refused and revokes
    /// what the code yielded), client binding,
    /// client authentication for confidential clients, PKCE in constant time; answers with our JWTs (swap) or
    /// the upstream tokens (passthrough).
    pub async fn exchange_authorization_code(&self, req: &TokenRequest) -> OAuthResult<TokenResponse> {
        self.token_rate_limited(req, self.redeem_code(req)).await
    }

    /// Runs a token request under the token endpoint's rate limit; a refused client authentication or grant (a
    /// wrong secret, a guessed code, a failed PKCE check) then costs `failure_cost` more.
    pub(super) async fn token_rate_limited<T>(
        &self,
        req: &TokenRequest,
        run: impl std::future::Future<Output = OAuthResult<T>>,
    ) -> OAuthResult<T> {
        let (addr, client) = (req.remote_addr.as_deref(), req.client_id.as_deref());
        self.rate_limit(Endpoint::Token, addr, client, false).await?;
        let r = run.await;
        self.count_token_outcome(req, r.as_ref().err());
        if r.as_ref()
            .is_err_and(|e| matches!(e.code.as_str(), "invalid_client" | "invalid_grant"))
        {
            // Counted, not answered: this request's own answer is the failure itself.
            let _ = self.rate_limit(Endpoint::Token, addr, client, true).await;
        }
        r
    }

    /// The metrics of a token request's outcome (grace reuses and replays are counted where they happen).
    fn count_token_outcome(&self, req: &TokenRequest, error: Option<&OAuthError>) {
        let m = &self.metrics;
        let grant = match req.grant_type.as_deref() {
            Some("authorization_code") => "authorization_code",
            Some("refresh_token") => "refresh_token",
            _ => return,
        };
        let Some(e) = error else {
            Metrics::count(&m.tokens_issued, "grant", grant);
            if let Some(id) = req.client_id.as_deref() {
                m.issued_to(id, grant);
            }
            if grant == "authorization_code" {
                Metrics::count(&m.codes, "outcome", "redeemed");
            } else {
                Metrics::count(&m.refresh, "outcome", "rotated");
            }
            return;
        };
        let d = e.description.as_deref().unwrap_or("");
        if grant == "authorization_code" && e.code == "invalid_grant" {
            // An expired code is gone from the store like one never issued: the two are one outcome.
            let outcome = if d == CODE_REPLAYED {
                "replayed"
            } else if d == CODE_UNKNOWN {
                "unknown_or_expired"
            } else {
                "refused"
            };
            Metrics::count(&m.codes, "outcome", outcome);
        } else if grant == "refresh_token"
            && e.code == "invalid_grant"
            && d != super::refresh::REFRESH_REPLAYED
        {
            Metrics::count(&m.refresh, "outcome", "refused");
        }
    }

    async fn redeem_code(&self, req: &TokenRequest) -> OAuthResult<TokenResponse> {
        if req.grant_type.as_deref() != Some("authorization_code") {
            return Err(OAuthError::new(
                "unsupported_grant_type",
                "Only authorization_code grant type is supported",
            ));
        }
        // RFC 6749 §3.2.1: the client is identified (and authenticated) before anything else is looked at.
        let client_id = req
            .client_id
            .as_deref()
            .ok_or_else(|| OAuthError::invalid_client("client authentication required"))?;
        let code = req
            .code
            .as_deref()
            .ok_or_else(|| OAuthError::invalid_request("Missing code"))?;
        let client = self
            .authenticated_client(client_id, req.client_secret.as_deref())
            .await?;
        // RFC 6749 §4.1.2: the code is spent once, even by simultaneous redemptions (code_use.rs).
        let grant_key = self.issuer.is_some().then(random_id);
        let held = self
            .hold_code(format!("code:{code}"), grant_key.clone(), |r| {
                self.check_code(req, client_id, r)
            })
            .await?;
        let record = &held.record;
        // Issuing writes the upstream tokens and the token mappings. If a write fails, the code is given back (it
        // is single-use only once it has yielded tokens).
        let up = record.upstream_tokens.clone();
        let (access_ttl, refresh_ttl) = self.ttls(&up);
        let issued = match &grant_key {
            None => {
                let mut r = TokenResponse::passthrough(up.clone());
                r.expires_in = access_ttl;
                Ok(r)
            }
            Some(grant_key) => {
                let scope = scope_policy::token_scopes(&up.scope, self.config.valid_scopes.as_deref());
                let grant = GrantRef {
                    client_id: &record.client_id,
                    key: grant_key,
                    scope: &scope,
                    resource: record.resource.as_deref(),
                };
                self.issue_swapped(&grant, &up, true, &scope).await
            }
        };
        let response = match issued {
            Ok(r) => r,
            Err(e) => {
                held.give_back(self).await;
                return Err(e);
            }
        };
        held.finish(self).await?;
        self.keep_client_alive(&client, access_ttl.max(refresh_ttl)).await;
        Ok(response)
    }

    /// What a code's redemption must show (RFC 6749 §4.1.3; RFC 7636 §4.6; RFC 8707 §2.2): the code's own client,
    /// its redirect URI when sent, the PKCE verifier, and no other resource.
    fn check_code(&self, req: &TokenRequest, client_id: &str, record: &ClientCode) -> OAuthResult<()> {
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
        // RFC 8707 §2.2: the token request may name the resource again; it must be the authorization's.
        if let Some(r) = &req.resource {
            if !record.resource.as_deref().is_some_and(|m| same_resource(m, r)) {
                return Err(OAuthError::new(
                    "invalid_target",
                    "resource does not match the authorization request",
                ));
            }
        }
        Ok(())
    }

    /// A client with a live grant keeps its registration (see `extend_client`); a failure to extend it is logged,
    /// never the client's problem (its tokens are already issued).
    pub(super) async fn keep_client_alive(&self, client: &RegisteredClient, lifetime_secs: u64) {
        if let Err(e) = self.extend_client(client, lifetime_secs).await {
            tracing::warn!(client = %client.client_id, error = %e, "could not extend the client's registration");
        }
    }

    /// Lifetimes (seconds) of our access and refresh tokens for `up` (fastmcp Python's rule, #2534): upstream's
    /// `expires_in` when it gave one; else `access_token_ttl` when it gave a refresh token (the client refreshes),
    /// else `fallback_access_token_expiry_seconds` (nothing to refresh with: GitHub OAuth Apps). Refresh tokens
    /// live upstream's `refresh_expires_in`, else `refresh_token_ttl`; none without an upstream refresh token.
    /// `fastmcp_access_token_expiry_seconds` replaces the access lifetime, but only shortens it when upstream gave
    /// no refresh token (fastmcp Python's rule: nothing could renew a longer one).
    pub(super) fn ttls(&self, up: &UpstreamTokens) -> (u64, u64) {
        let upstream = match (up.expires_in, &up.refresh_token) {
            (0, Some(_)) => self.config.access_token_ttl,
            (0, None) => self.config.fallback_access_token_expiry_seconds,
            (n, _) => n,
        };
        let access = match (self.config.fastmcp_access_token_expiry_seconds, &up.refresh_token) {
            (Some(v), Some(_)) => v,
            (Some(v), None) => v.min(upstream),
            (None, _) => upstream,
        };
        let refresh = if up.refresh_token.is_some() {
            up.refresh_expires_in.unwrap_or(self.config.refresh_token_ttl)
        } else {
            0
        };
        (access, refresh)
    }

    /// Stores the upstream tokens under the grant's key (when `store_upstream`) and issues our access token with
    /// `access_scope` (a refresh may narrow it, RFC 6749 §6) and a refresh token with the grant's scope.
    pub(super) async fn issue_swapped(
        &self,
        grant: &GrantRef<'_>,
        up: &UpstreamTokens,
        store_upstream: bool,
        access_scope: &[String],
    ) -> OAuthResult<TokenResponse> {
        let issuer = self
            .issuer
            .as_ref()
            .ok_or_else(|| OAuthError::server_error("token swap disabled"))?;
        let (access_ttl, refresh_ttl) = self.ttls(up);
        let upstream_key = format!("upstream:{}", grant.key);
        if store_upstream {
            self.save_json(&upstream_key, up, access_ttl.max(refresh_ttl).max(1))
                .await?;
        }
        // A failure part-way removes what this call wrote, so the space it took is free again for the give-back
        // of the code (on a full disk, the give-back needs exactly that space).
        let mut written = Vec::new();
        if store_upstream {
            written.push(upstream_key);
        }
        let access = GrantRef {
            scope: access_scope,
            ..*grant
        };
        let (access_token, access_jti) = match self
            .issue_one(issuer, TokenUse::Access, &access, up, access_ttl)
            .await
        {
            Ok(x) => x,
            Err(e) => return Err(self.undo(&written, e).await),
        };
        written.push(format!("mapping:{access_jti}"));
        let refresh_token = match up.refresh_token {
            Some(_) => match self
                .issue_one(issuer, TokenUse::Refresh, grant, up, refresh_ttl)
                .await
            {
                Ok((t, _)) => Some(t),
                Err(e) => return Err(self.undo(&written, e).await),
            },
            None => None,
        };
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer".into(),
            expires_in: access_ttl,
            refresh_token,
            scope: Some(access_scope.join(" ")),
            id_token: None,
        })
    }

    /// Deletes the records a failed issue wrote (best effort) and hands back its error.
    pub(super) async fn undo(&self, written: &[String], e: OAuthError) -> OAuthError {
        for key in written {
            self.delete_best_effort(key).await;
        }
        e
    }

    /// Issues one token of `grant` and records its mapping.
    pub(super) async fn issue_one(
        &self,
        issuer: &JwtIssuer,
        kind: TokenUse,
        grant: &GrantRef<'_>,
        up: &UpstreamTokens,
        ttl: u64,
    ) -> OAuthResult<(String, String)> {
        let jti = crate::jwt::generate_jti();
        // Upstream claims, when configured (see `claims`); the issuer never lets them override reserved ones.
        let mut extra = self
            .config
            .custom_claims_passthrough
            .as_ref()
            .and_then(|c| c.extract(up));
        let token = loop {
            let opts = IssueOptions {
                jti: Some(jti.clone()),
                expires_in: Some(ttl),
                extra_claims: extra.clone(),
                // RFC 8707: the token is for the resource the client named; `base_url` otherwise.
                audience: grant.resource.map(str::to_owned),
                ..Default::default()
            };
            let issued = match kind {
                TokenUse::Access => issuer.issue_access_token(grant.client_id, grant.scope, opts),
                TokenUse::Refresh => issuer.issue_refresh_token(grant.client_id, grant.scope, opts),
            };
            match issued {
                Ok(token) if token.len() <= MAX_TOKEN_BYTES => break token,
                // Over 16 KiB (the issuer refuses to sign what verification would refuse).
                Ok(_) | Err(crate::Error::InvalidArgument(_)) => {}
                Err(e) => return Err(e.into()),
            }
            // A token verification would refuse (over 16 KiB): drop the largest passed-through claim and try again
            // (its name is logged, never its value) rather than fail the login for the IdP's generosity.
            let largest = extra.as_ref().and_then(|m| {
                m.iter()
                    .max_by_key(|(_, v)| v.to_string().len())
                    .map(|(k, _)| k.clone())
            });
            match (largest, extra.as_mut()) {
                (Some(name), Some(m)) => {
                    tracing::warn!(claim = %name, "upstream claim dropped: the token would exceed 16 KiB");
                    m.remove(&name);
                }
                _ => {
                    return Err(OAuthError::server_error(
                        "the identity provider's answer does not fit in a token",
                    )
                    .with_status(502))
                }
            }
        };
        let mapping = TokenMapping {
            client_id: grant.client_id.to_owned(),
            created_at: iso(SystemTime::now()),
            expires_at: iso_in(ttl),
            jti: jti.clone(),
            scope: grant.scope.to_vec(),
            upstream_token_key: grant.key.to_owned(),
            token_use: Some(kind.as_str().to_owned()),
            resource: grant.resource.map(str::to_owned),
        };
        self.save_json(&format!("mapping:{jti}"), &mapping, ttl).await?;
        Ok((token, jti))
    }
}

/// One grant, as the tokens issued for it carry it.
#[derive(Clone, Copy)]
pub(super) struct GrantRef<'a> {
    pub client_id: &'a str,
    /// Key of the upstream tokens (shared by every token of the grant).
    pub key: &'a str,
    pub scope: &'a [String],
    pub resource: Option<&'a str>,
}
