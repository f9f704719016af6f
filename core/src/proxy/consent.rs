//! The consent page and its form (MCP Security Best Practices: confused deputy).

use serde_json::Value;
use url::Url;

use super::browser_binding;
use super::error::{OAuthError, OAuthResult};
use super::http::{escape_html, ConsentParams, HttpResponse};
use super::metrics::Metrics;
use super::model::*;
use super::provider::OAuthProxy;
use super::rate_limit::Endpoint;

impl OAuthProxy {
    fn provider_name(&self) -> String {
        self.config.provider_name.clone().unwrap_or_else(|| {
            Url::parse(&self.config.upstream_authorization_endpoint)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_else(|| "the identity provider".into())
        })
    }

    /// The consent page for `tx`, carrying `csrf_token` (see [`browser_binding`]). Every value is escaped; the page
    /// cannot be framed and may only submit to us (and be redirected on to upstream or the client).
    pub(super) fn consent_page(
        &self,
        tx: &Transaction,
        client: &RegisteredClient,
        csrf_token: &str,
    ) -> HttpResponse {
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
        let redirect_host = Url::parse(&tx.client_callback_url)
            .ok()
            .map(|u| match (u.host_str(), u.port()) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                (Some(h), None) => h.to_owned(),
                (None, _) => format!("{}:", u.scheme()),
            })
            .unwrap_or_default();
        // A metadata-document client's name is whatever its document says; the host that published the document
        // is what identifies it (MCP authorization 2025-11-25: show the user the client id's and the redirect's
        // hosts).
        let identity = if self.is_cimd_client_id(&client.client_id) {
            let host = Url::parse(&client.client_id)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_default();
            format!(
                "<p>This client is published by <strong>{host}</strong> (client metadata document \
                 <code>{url}</code>).</p>\n",
                host = escape_html(&host),
                url = escape_html(&client.client_id),
            )
        } else {
            String::new()
        };
        let body = format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Authorization request</title></head>\n\
             <body><main>\n<h1>Authorize {name}?</h1>\n{identity}<p>{name} asks to sign you in with {provider}. \
             Your authorization will be sent to <strong>{host}</strong> (<code>{redirect}</code>).</p>\n\
             <p>Only approve if you started this sign-in yourself.</p>\n<ul>{scopes}</ul>\n\
             <form method=\"POST\" action=\"{action}\">\n\
             <input type=\"hidden\" name=\"transaction_id\" value=\"{tx}\">\n\
             <input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\n\
             <button type=\"submit\" name=\"action\" value=\"approve\">Approve</button>\n\
             <button type=\"submit\" name=\"action\" value=\"deny\">Deny</button>\n</form>\n</main></body></html>\n",
            name = escape_html(name),
            provider = escape_html(&self.provider_name()),
            host = escape_html(&redirect_host),
            redirect = escape_html(&tx.client_callback_url),
            scopes = scopes,
            action = escape_html(&self.config.endpoint_url(super::config::Route::Consent)),
            tx = escape_html(&tx.id),
            csrf = escape_html(csrf_token),
        );
        // CSP `form-action` also governs where the form's answer may redirect (browsers enforce it on the 302):
        // us, upstream (approve) and the client (deny).
        let form_targets = [
            csp_source(&self.config.base_url),
            csp_source(&self.config.upstream_authorization_endpoint),
            csp_source(&tx.client_callback_url),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
        HttpResponse::html(
            200,
            body,
            &format!(
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' {form_targets}; frame-ancestors 'none'; base-uri 'none'"
            ),
        )
    }

    /// The consent form's POST: `approve` continues to upstream, `deny` redirects to the client with
    /// `access_denied`. The POST must come from the page we rendered, in the browser the authorization started in:
    /// its `csrf_token` and the browser-binding cookie (`p.cookie`) must both match the transaction, else the answer
    /// is a 403 page and nothing changes.
    pub async fn handle_consent(&self, p: &ConsentParams) -> OAuthResult<HttpResponse> {
        self.rate_limit(Endpoint::Consent, p.remote_addr.as_deref(), None, false)
            .await?;
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
        // Both proofs, in constant time: the page we rendered (CSRF token) in the browser that started (cookie).
        let browser = browser_binding::browser_id(p.cookie.as_deref(), self.secure_cookies());
        let same_browser = browser_binding::verify(browser.as_deref(), tx.browser_binding_hash.as_deref());
        let same_page = browser_binding::verify(p.csrf_token.as_deref(), tx.csrf_token_hash.as_deref());
        if !(same_browser && same_page) {
            Metrics::count(&self.metrics.consent, "outcome", "binding_failed");
            tracing::warn!(
                client = %tx.client_id,
                cookie = same_browser,
                csrf = same_page,
                "consent POST refused: not from the consent page in the browser that started the authorization"
            );
            return Ok(HttpResponse::refusal_page(
                403,
                "This approval could not be verified",
                "The approval did not come from the consent page shown in this browser, so nothing was approved. \
                 If you started this sign-in, go back to your application and start it again.",
            ));
        }
        if !self.transaction_still_valid(&tx).await? {
            return Err(OAuthError::invalid_request(
                "Transaction callback URL is not registered",
            ));
        }
        Metrics::count(
            &self.metrics.consent,
            "outcome",
            if approve { "approved" } else { "denied" },
        );
        if !approve {
            self.store.delete(&key).await?;
            self.release_transaction_slot(&tx);
            return self.client_redirect(
                &tx.client_redirect(),
                &[
                    ("error", "access_denied"),
                    ("error_description", "User denied authorization"),
                ],
            );
        }
        // The CSRF token is spent: a replayed POST approves nothing more.
        let approved = Transaction {
            consent_given: true,
            csrf_token_hash: None,
            ..tx
        };
        self.save_json(&key, &approved, secs_until(&approved.expires_at).max(1))
            .await?;
        Ok(self.redirect_upstream(&approved))
    }
}

/// The CSP source expression (origin, or `scheme:` for custom schemes) of a URL.
fn csp_source(url: &str) -> Option<String> {
    let u = Url::parse(url).ok()?;
    match u.origin() {
        o @ url::Origin::Tuple(..) => Some(o.ascii_serialization()),
        url::Origin::Opaque(_) => Some(format!("{}:", u.scheme())),
    }
}
