//! The refresh-token grant: rotation with a grace window, replay detection revoking the grant (RFC 9700 §4.14.2).

use std::time::Duration;

use serde_json::Value;

use super::error::{OAuthError, OAuthResult};
use super::http::{TokenRequest, TokenResponse};
use super::metrics::Metrics;
use super::model::*;
use super::provider::OAuthProxy;
use super::resource::same_resource;
use super::scope_policy;
use super::token::GrantRef;
use super::upstream::Grant;
use crate::jwt::TokenUse;
use crate::store::now_ms;

/// The answer to a rotated refresh token presented after the grace window (the grant is revoked).
pub(super) const REFRESH_REPLAYED: &str = "Refresh token reuse detected; the grant has been revoked";

impl OAuthProxy {
    /// Refreshes: in swap mode our refresh token is rotated (see the module docs for the grace window and
    /// replay revocation); in passthrough mode the request goes to upstream as is.
    pub async fn exchange_refresh_token(&self, req: &TokenRequest) -> OAuthResult<TokenResponse> {
        self.token_rate_limited(req, self.refresh(req)).await
    }

    async fn refresh(&self, req: &TokenRequest) -> OAuthResult<TokenResponse> {
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
        let requested = req.scope.as_deref().map(scope_policy::parse).transpose()?;
        if let Some(r) = &requested {
            scope_policy::check_valid(r, self.config.valid_scopes.as_deref())?;
        }
        // (The client's registered scope is enforced at authorize; a refresh can only narrow what that gave.)
        let Some(issuer) = &self.issuer else {
            let scope = self.config.upstream_scopes().refresh_scope(req.scope.clone());
            let up = self
                .upstream_token(
                    Grant::RefreshToken {
                        refresh_token: token,
                        scope: scope.as_deref(),
                        resource: req.resource.as_deref().filter(|_| self.config.forward_resource),
                    },
                    &[],
                )
                .await?;
            let (access_ttl, _) = self.ttls(&up);
            let mut r = TokenResponse::passthrough(up);
            r.expires_in = access_ttl;
            return Ok(r);
        };
        // RFC 6749 §3.2.1, §5.2: the client is identified and authenticated before the grant is looked at, so a
        // client whose registration is gone (expired, or unreadable after a key change) hears `invalid_client` and
        // registers again, instead of `invalid_grant` and a login that ends on "unknown client".
        let named = match req.client_id.as_deref() {
            Some(id) => Some(
                self.authenticated_client(id, req.client_secret.as_deref())
                    .await?,
            ),
            None => None,
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
        let client = match named {
            Some(c) if c.client_id == token_client => c,
            Some(_) => {
                return Err(OAuthError::invalid_grant(
                    "Refresh token was issued to another client",
                ))
            }
            None => {
                self.authenticated_client(token_client, req.client_secret.as_deref())
                    .await?
            }
        };

        let grace = self.config.refresh_grace_window;
        let deadline =
            std::time::Instant::now() + self.config.upstream_request_timeout + Duration::from_secs(2);
        let mut misses = 0;
        loop {
            let mapping_key = format!("mapping:{jti}");
            if let Some(mapping) = self.take_json::<TokenMapping>(&mapping_key).await? {
                if mapping.token_use.as_deref() == Some("access") {
                    self.give_back(jti, &mapping).await;
                    return Err(OAuthError::invalid_grant(
                        "An access token is not a refresh token",
                    ));
                }
                // RFC 6749 §6: never wider than the grant; RFC 8707: never another resource. Refused with the
                // claim given back, so the same refresh token still works with a proper request.
                let within_grant = requested
                    .as_deref()
                    .map_or(Ok(()), |r| scope_policy::check_within_grant(r, &mapping.scope));
                let same_target = match &req.resource {
                    Some(r) if !mapping.resource.as_deref().is_some_and(|m| same_resource(m, r)) => Err(
                        OAuthError::new("invalid_target", "resource does not match the grant"),
                    ),
                    _ => Ok(()),
                };
                let refused = within_grant.and(same_target).err();
                if let Some(e) = refused {
                    self.give_back(jti, &mapping).await;
                    return Err(e);
                }
                let resp = self.rotate(jti, mapping, requested.as_deref()).await?;
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
                    // A rotation older than any upstream call can take died half-way: its claim comes back
                    // (whoever takes the record first) and this request rotates.
                    let stale_after = self.config.upstream_request_timeout + Duration::from_secs(2);
                    if now_ms().saturating_sub(r.at_ms) > stale_after.as_millis() as u64 {
                        if let Some(Rotation {
                            claimed: Some(claimed),
                            ..
                        }) = self.take_json::<Rotation>(&format!("rotated:{jti}")).await?
                        {
                            tracing::warn!(client = %r.client_id, "a stale refresh rotation was rolled back");
                            self.give_back(jti, &claimed).await;
                        }
                        continue;
                    }
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
                        Metrics::count(&self.metrics.refresh, "outcome", "grace_reuse");
                        return self.grace_response(&r).await;
                    }
                    Metrics::count(&self.metrics.refresh, "outcome", "replay_revoked");
                    tracing::warn!(client = %r.client_id, "refresh token replay detected; revoking the grant");
                    self.revoke_grant(&r.upstream_token_key, r.successor_jti.as_deref())
                        .await?;
                    return Err(OAuthError::invalid_grant(REFRESH_REPLAYED));
                }
            }
        }
    }

    /// Rotates the refresh token of `mapping` (claimed): refreshes upstream, stores the fresh upstream tokens,
    /// issues an access token (with `requested` scopes when the client narrowed them, RFC 6749 §6) and a refresh
    /// token with the grant's scope.
    async fn rotate(
        &self,
        jti: &str,
        mapping: TokenMapping,
        requested: Option<&[String]>,
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
            resource: mapping.resource.clone(),
            // If this rotation dies half-way (a crash, a store that stops answering), a later presentation finds
            // the claim here once the rotation is stale and gives it back.
            claimed: Some(mapping.clone()),
        };
        if let Err(e) = self.save_json(&rot_key, &pending, keep).await {
            self.give_back(jti, &mapping).await;
            return Err(e);
        }
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
            // Entra refuses a refresh without scopes (AADSTS90009): send the grant's unless switched off.
            let scope = match requested {
                Some(r) => Some(r.join(" ")),
                None if self.config.send_scope_on_refresh && !mapping.scope.is_empty() => {
                    Some(mapping.scope.join(" "))
                }
                None => None,
            };
            let scope = self.config.upstream_scopes().refresh_scope(scope);
            let fallback_scope = requested
                .map(<[String]>::to_vec)
                .unwrap_or_else(|| old.scope.clone());
            let fresh = self
                .upstream_token(
                    Grant::RefreshToken {
                        refresh_token: &rt,
                        scope: scope.as_deref(),
                        resource: mapping
                            .resource
                            .as_deref()
                            .filter(|_| self.config.forward_resource),
                    },
                    &fallback_scope,
                )
                .await?;
            let (access_ttl, refresh_ttl) = self.ttls(&fresh);
            // Upstream may have rotated its refresh token: the fresh one exists only here until this write lands.
            let wrote = self
                .save_json_retrying(&up_key, &fresh, access_ttl.max(refresh_ttl).max(1))
                .await;
            // A revocation of this grant while upstream was answering (a replayed code or refresh token, RFC 7009)
            // deleted the upstream tokens before the write above brought them back: its mark says so, and the
            // grant stays revoked. (The mark is written before the deletion and read after the write: one of the
            // two sees the other.) Checked whatever the write answered (a failed write may have landed); a mark
            // that cannot be read counts as there: refusing beats reviving a revoked grant.
            if self.grant_revoked_surely(&mapping.upstream_token_key).await {
                self.delete_best_effort(&up_key).await;
                return Err(OAuthError::invalid_grant("Refresh token revoked"));
            }
            wrote?;
            let issuer = self
                .issuer
                .as_ref()
                .ok_or_else(|| OAuthError::server_error("token swap disabled"))?;
            let grant = GrantRef {
                client_id: &mapping.client_id,
                key: &mapping.upstream_token_key,
                scope: &mapping.scope,
                resource: mapping.resource.as_deref(),
            };
            let access_scope = scope_policy::token_scopes(&fresh.scope, self.config.valid_scopes.as_deref());
            let access = GrantRef {
                scope: &access_scope,
                ..grant
            };
            let (access_token, access_jti) = self
                .issue_one(issuer, TokenUse::Access, &access, &fresh, access_ttl)
                .await?;
            let (refresh_token, refresh_jti) = match self
                .issue_one(issuer, TokenUse::Refresh, &grant, &fresh, refresh_ttl.max(1))
                .await
            {
                Ok(x) => x,
                // Free the access mapping's space before the claim is given back (a full disk needs it).
                Err(e) => return Err(self.undo(&[format!("mapping:{access_jti}")], e).await),
            };
            Ok::<_, OAuthError>((
                TokenResponse {
                    access_token,
                    token_type: "Bearer".into(),
                    expires_in: access_ttl,
                    refresh_token: Some(refresh_token),
                    scope: Some(access_scope.join(" ")),
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
                    claimed: None,
                    ..pending
                };
                // The tokens exist and the old refresh token is spent: answer with them even if this record
                // cannot be written (it only serves retries within the grace window and replay detection).
                if let Err(e) = self.save_json_retrying(&rot_key, &done, keep).await {
                    tracing::error!(error = %e, "could not record a finished refresh rotation");
                    self.delete_best_effort(&rot_key).await;
                }
                Ok(resp)
            }
            Err(e) => {
                // Only a dead grant ends it (upstream said invalid_grant, or the upstream tokens are gone); any
                // other failure gives the claim back so the same refresh token works on the next try. When even
                // that cannot be written, the pending record (which holds the claim) stays, and gives it back
                // once it is stale.
                let returned = e.code == "invalid_grant" || self.give_back(jti, &mapping).await;
                if returned {
                    self.delete_best_effort(&rot_key).await;
                }
                Err(e)
            }
        }
    }

    /// Puts a claimed refresh-token mapping back, patiently (5 tries over ~1.5 s while the store is unavailable):
    /// without it the user is logged out. Whether it landed.
    async fn give_back(&self, jti: &str, mapping: &TokenMapping) -> bool {
        let ttl = secs_until(&mapping.expires_at).max(1);
        let key = format!("mapping:{jti}");
        for attempt in 0..5u32 {
            match self.save_json(&key, mapping, ttl).await {
                Ok(()) => return true,
                Err(e) if attempt == 4 => {
                    tracing::error!(error = %e, "could not give back a refresh token's claim");
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50 << attempt)).await,
            }
        }
        false
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
        let scope = scope_policy::token_scopes(&up.scope, self.config.valid_scopes.as_deref());
        let grant = GrantRef {
            client_id: &r.client_id,
            key: &r.upstream_token_key,
            scope: &scope,
            resource: r.resource.as_deref(),
        };
        let (access_token, _) = self
            .issue_one(issuer, TokenUse::Access, &grant, &up, access_ttl)
            .await?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer".into(),
            expires_in: access_ttl,
            refresh_token: r.successor_refresh_token.clone(),
            scope: Some(scope.join(" ")),
            id_token: None,
        })
    }

    /// Whether grant `upstream_key` was revoked in the last minutes (its mark, written by `revoke_grant`): read up to
    /// three times while the store fails, and `true` when it never answers.
    pub(super) async fn grant_revoked_surely(&self, upstream_key: &str) -> bool {
        let key = format!("revoked:{upstream_key}");
        for attempt in 0..3u32 {
            match self.get_json::<serde_json::Value>(&key).await {
                Ok(v) => return v.is_some(),
                Err(_) if attempt < 2 => tokio::time::sleep(Duration::from_millis(20 << (2 * attempt))).await,
                Err(_) => {}
            }
        }
        tracing::error!("could not read a grant's revocation mark after a refresh; the refresh is refused");
        true
    }

    /// Revokes a whole grant: its upstream tokens (so every token of the grant stops resolving) and the live
    /// refresh tokens descending from a rotated one.
    pub(super) async fn revoke_grant(
        &self,
        upstream_key: &str,
        mut successor: Option<&str>,
    ) -> OAuthResult<()> {
        // The mark first, for a rotation of this grant in flight (see `grant_revoked`): it lives as long as one
        // can (upstream's timeout, with room), since later rotations find the upstream tokens gone.
        let mark_ttl = self.config.upstream_request_timeout.as_secs().saturating_mul(3) + 60;
        self.save_json_retrying(&format!("revoked:{upstream_key}"), &true, mark_ttl)
            .await?;
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
