//! The upstream callback: consumes the transaction, exchanges upstream's code, hands the client a code of ours.

use std::time::SystemTime;

use super::browser_binding;
use super::error::{OAuthError, OAuthResult};
use super::http::{CallbackParams, HttpResponse};
use super::model::*;
use super::provider::{random_id, OAuthProxy};
use super::rate_limit::Endpoint;
use super::upstream::Grant;

impl OAuthProxy {
    /// The upstream callback: consumes the single-use transaction, checks that this browser is the one that
    /// started it (`p.cookie`, see [`browser_binding`]) and that consent was given, exchanges upstream's code, and
    /// redirects to the client with a fresh single-use code of ours. A browser other than the one that started
    /// the authorization gets a 403 page; the transaction is then dead and nothing reaches the client.
    pub async fn handle_callback(&self, p: &CallbackParams) -> OAuthResult<HttpResponse> {
        self.rate_limit(Endpoint::Callback, p.remote_addr.as_deref(), None, false)
            .await?;
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
        self.release_transaction_slot(&tx);
        let browser = browser_binding::browser_id(p.cookie.as_deref(), self.secure_cookies());
        if !browser_binding::verify(browser.as_deref(), tx.browser_binding_hash.as_deref()) {
            tracing::warn!(
                client = %tx.client_id,
                cookie_present = browser.is_some(),
                "callback refused: not the browser that started the authorization"
            );
            return Ok(HttpResponse::refusal_page(
                403,
                "Authorization session mismatch",
                "This sign-in was started in another browser, or its session expired. Nothing was authorized. \
                 If you followed a link someone sent you, close this page. Otherwise go back to your application \
                 and start the sign-in again.",
            ));
        }
        if !self.transaction_still_valid(&tx).await? {
            return Err(OAuthError::invalid_request(
                "Transaction callback URL is not registered",
            ));
        }
        if let Some(err) = &p.error {
            // Upstream refused: tell the client, with a code it can trust (never upstream's free text, which is
            // not logged either: it comes through the browser and can carry anything).
            let err_logged = Some(err.as_str())
                .filter(|c| c.len() <= 64 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
            tracing::debug!(error = ?err_logged, description_len = p.error_description.as_deref().map(str::len), "upstream authorization error");
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
            let description = match code {
                "invalid_scope" => "The identity provider refused the requested scope",
                "temporarily_unavailable" | "server_error" => {
                    "The identity provider is unavailable; try again"
                }
                _ => "The identity provider denied the authorization",
            };
            return self.client_redirect(
                &tx.client_redirect(),
                &[("error", code), ("error_description", description)],
            );
        }
        let code = p
            .code
            .as_deref()
            .ok_or_else(|| OAuthError::invalid_request("Missing code or state parameter"))?;
        if self.config.consent_required && !tx.consent_given {
            // Without this check a link straight to upstream would skip the consent page (a confused deputy).
            return Ok(HttpResponse::refusal_page(
                403,
                "Authorization not approved",
                "This sign-in was never approved on the consent page, so nothing was authorized. Go back to your \
                 application and start the sign-in again.",
            ));
        }
        let verifier = self
            .config
            .forward_pkce
            .then_some(tx.proxy_code_verifier.as_str());
        let scope = self.config.upstream_scopes().token_request(&tx.scope);
        let exchanged = self
            .upstream_token(
                Grant::AuthorizationCode {
                    code,
                    redirect_uri: &self.redirect_uri,
                    code_verifier: verifier,
                    resource: tx.resource.as_deref().filter(|_| self.config.forward_resource),
                    scope: scope.as_deref(),
                },
                &tx.scope,
            )
            .await;
        let tokens = match exchanged {
            Ok(t) => t,
            Err(e) => {
                // The browser is verified and the redirect URI registered: tell the client (RFC 6749 §4.1.2.1)
                // rather than leave a native client waiting on its loopback listener. Fixed texts only.
                tracing::warn!(client = %tx.client_id, code = %e.code, "upstream code exchange failed");
                let (code, description) = if e.status == 504 {
                    (
                        "temporarily_unavailable",
                        "The identity provider did not answer in time; try again",
                    )
                } else {
                    (
                        "server_error",
                        "The identity provider did not complete the sign-in; try again",
                    )
                };
                return self.client_redirect(
                    &tx.client_redirect(),
                    &[("error", code), ("error_description", description)],
                );
            }
        };
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
            resource: tx.resource.clone(),
        };
        // Upstream's code is spent: this write is the login, so it is tried again while the store hiccups.
        self.save_json_retrying(
            &format!("code:{our_code}"),
            &record,
            self.config.authorization_code_ttl,
        )
        .await?;
        self.client_redirect(&tx.client_redirect(), &[("code", &our_code)])
    }
}
