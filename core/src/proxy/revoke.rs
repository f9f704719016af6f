//! Token use and revocation: our access tokens resolved to the upstream tokens, RFC 7009 revocation.

use serde_json::Value;

use super::error::{OAuthError, OAuthResult};
use super::http::RevocationRequest;
use super::model::*;
use super::provider::OAuthProxy;
use super::rate_limit::Endpoint;
use crate::jwt::TokenUse;

impl OAuthProxy {
    // ---- token use ------------------------------------------------------------------------------------------

    /// The upstream tokens behind one of our access tokens; `None` when the token is invalid, expired, revoked,
    /// or a refresh token.
    pub async fn load_upstream_tokens(&self, token: &str) -> OAuthResult<Option<UpstreamTokens>> {
        Ok(self.access_session(token).await?.map(|(_, up)| up))
    }

    /// One of our live access tokens: its claims and the upstream tokens behind it, or `None` (invalid, expired,
    /// revoked, a refresh token). The signature is checked once and the store read once per step (mapping, then
    /// upstream tokens): this is what every MCP request pays.
    pub(super) async fn access_session(
        &self,
        token: &str,
    ) -> OAuthResult<Option<(crate::Claims, UpstreamTokens)>> {
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
        let up = self
            .get_json(&format!("upstream:{}", mapping.upstream_token_key))
            .await?;
        Ok(up.map(|up| (claims, up)))
    }

    /// [`Self::load_upstream_tokens`] run to completion in place when it needs no waiting (a store that completes
    /// inline: memory, a C callback store; disk when the entries are in the kernel's caches), else `None` — use the
    /// async one. For a caller that must not wait but should not pay a thread hop per request either (Node's
    /// `authenticate` on every MCP call).
    pub fn load_upstream_tokens_inline(&self, token: &str) -> Option<OAuthResult<Option<UpstreamTokens>>> {
        self.in_place(self.load_upstream_tokens(token))
    }

    /// Verifies one of our access tokens and returns its claims when it is still live in the store.
    pub async fn verify_access_token(&self, token: &str) -> OAuthResult<Option<crate::Claims>> {
        Ok(self.access_session(token).await?.map(|(claims, _)| claims))
    }

    /// RFC 7009 revocation of one of our tokens. Revoking a refresh token revokes its whole grant; an access
    /// token only itself. Unknown or invalid tokens are not an error (RFC 7009 §2.2).
    pub async fn revoke(&self, token: &str, client_id: &str, client_secret: Option<&str>) -> OAuthResult<()> {
        self.revoke_rate_limited(
            None,
            client_id,
            self.revoke_unlimited(token, client_id, client_secret),
        )
        .await
    }

    /// Runs a revocation under the revocation endpoint's rate limit; a failed client authentication costs
    /// `failure_cost` more.
    async fn revoke_rate_limited(
        &self,
        addr: Option<&str>,
        client_id: &str,
        run: impl std::future::Future<Output = OAuthResult<()>>,
    ) -> OAuthResult<()> {
        self.rate_limit(Endpoint::Revoke, addr, Some(client_id), false)
            .await?;
        let r = run.await;
        if r.as_ref().is_err_and(|e| e.code == "invalid_client") {
            let _ = self
                .rate_limit(Endpoint::Revoke, addr, Some(client_id), true)
                .await;
        }
        r
    }

    async fn revoke_unlimited(
        &self,
        token: &str,
        client_id: &str,
        client_secret: Option<&str>,
    ) -> OAuthResult<()> {
        self.authenticated_client(client_id, client_secret).await?;
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

    /// RFC 7009 §2.1 as an endpoint: the parsed request (client credentials from the body or HTTP Basic). A
    /// missing `token` is `invalid_request`; a missing or unknown client `invalid_client` (401).
    pub async fn revoke_request(&self, r: &RevocationRequest) -> OAuthResult<()> {
        let client_id = r
            .client_id
            .as_deref()
            .ok_or_else(|| OAuthError::invalid_client("client authentication required"))?;
        let token = r
            .token
            .as_deref()
            .ok_or_else(|| OAuthError::invalid_request("Missing token"))?;
        let run = self.revoke_unlimited(token, client_id, r.client_secret.as_deref());
        self.revoke_rate_limited(r.remote_addr.as_deref(), client_id, run)
            .await
    }
}
