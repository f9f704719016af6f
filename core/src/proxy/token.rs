//! The token endpoint: the authorization-code grant and the issuing of our tokens (token swap).

use std::time::SystemTime;

use super::error::{OAuthError, OAuthResult};
use super::http::{TokenRequest, TokenResponse};
use super::model::*;
use super::provider::{random_id, OAuthProxy};
use crate::jwt::{IssueOptions, JwtIssuer, TokenUse};
use crate::pkce::{self, constant_time_eq, ChallengeMethod};

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
        let (access_ttl, refresh_ttl) = self.ttls(&up);
        let response = if self.issuer.is_none() {
            TokenResponse::passthrough(up)
        } else {
            let key = random_id();
            self.issue_swapped(&record.client_id, &up, &key, true).await?
        };
        self.keep_client_alive(&client, access_ttl.max(refresh_ttl)).await;
        Ok(response)
    }

    /// A client with a live grant keeps its registration (see `extend_client`); a failure to extend it is logged,
    /// never the client's problem (its tokens are already issued).
    pub(super) async fn keep_client_alive(&self, client: &RegisteredClient, lifetime_secs: u64) {
        if let Err(e) = self.extend_client(client, lifetime_secs).await {
            tracing::warn!(client = %client.client_id, error = %e, "could not extend the client's registration");
        }
    }

    pub(super) fn ttls(&self, up: &UpstreamTokens) -> (u64, u64) {
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

    pub(super) async fn issue_one(
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
}
