//! The refresh-token grant: rotation with a grace window, replay detection revoking the grant (RFC 9700 §4.14.2).

use std::time::Duration;

use serde_json::Value;

use super::error::{OAuthError, OAuthResult};
use super::http::{TokenRequest, TokenResponse};
use super::model::*;
use super::provider::OAuthProxy;
use super::upstream::Grant;
use crate::jwt::TokenUse;
use crate::store::now_ms;

impl OAuthProxy {
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
                let resp = self.rotate(jti, mapping, req.scope.as_deref()).await?;
                let lifetime = resp.expires_in.max(self.config.refresh_token_ttl);
                self.keep_client_alive(&client, lifetime).await;
                return Ok(resp);
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
                if e.code != "invalid_grant" {
                    // Only a dead grant ends it (upstream said invalid_grant, or the upstream tokens are gone);
                    // any other failure gives the claim back so the same refresh token works on the next try.
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
    pub(super) async fn revoke_grant(
        &self,
        upstream_key: &str,
        mut successor: Option<&str>,
    ) -> OAuthResult<()> {
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
}
