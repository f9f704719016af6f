//! The OAuth proxy. Every operation answers JSON; OAuth failures return `OAUTH_ERROR` with
//! `{"error", "error_description", "status"}` in `fastmcp_auth_last_error()`.

use std::ffi::c_char;
use std::sync::Arc;

use fastmcp_auth_core::blocking::OAuthProxy;
use fastmcp_auth_core::proxy::{
    AuthorizeParams, CallbackParams, ConsentParams, OAuthProxyConfig, TokenRequest,
};

use crate::result::*;
use crate::store::{fastmcp_auth_store, store_of};

/// An OAuth proxy. Thread-safe: share one between threads (and between processes through a shared store).
pub struct fastmcp_auth_proxy {
    _private: [u8; 0],
}

fn proxy_of<'a>(p: *const fastmcp_auth_proxy) -> FfiResult<&'a OAuthProxy> {
    handle::<OAuthProxy, _>(p, "proxy")
}

/// A new proxy. `config_json`: the fields of the Rust `OAuthProxyConfig` (snake_case; durations in seconds;
/// `base_url`, `upstream_authorization_endpoint`, `upstream_token_endpoint`, `upstream_client_id`,
/// `upstream_client_secret` required). `store` (may be NULL: a memory store) is shared, not consumed. The proxy
/// encrypts what it stores unless `"encryption_disabled": true`. Free with `fastmcp_auth_proxy_free`.
#[no_mangle]
pub extern "C" fn fastmcp_auth_proxy_new(
    config_json: *const c_char,
    store: *const fastmcp_auth_store,
    proxy_out: *mut *mut fastmcp_auth_proxy,
) -> fastmcp_auth_result {
    boundary(|| {
        let mut c =
            OAuthProxyConfig::from_json(&json(config_json, "config_json", false)?).map_err(from_core)?;
        if !store.is_null() {
            c.token_storage = Some(Arc::clone(store_of(store)?.as_async()));
        }
        put_handle(proxy_out, OAuthProxy::new(c).map_err(from_core)?)
    })
}

/// Frees a proxy (NULL is a no-op).
#[no_mangle]
pub extern "C" fn fastmcp_auth_proxy_free(proxy: *mut fastmcp_auth_proxy) {
    free_handle::<OAuthProxy, _>(proxy)
}

/// RFC 7591 registration: `request_json` in, the registration response JSON out.
#[no_mangle]
pub extern "C" fn fastmcp_auth_proxy_register_client(
    proxy: *const fastmcp_auth_proxy,
    request_json: *const c_char,
    response_json_out: *mut *mut c_char,
) -> fastmcp_auth_result {
    boundary(|| {
        out_ptr(response_json_out, "response_json_out")?;
        let r = proxy_of(proxy)?
            .register_client(&json(request_json, "request_json", false)?)
            .map_err(from_oauth)?;
        put_string(response_json_out, Some(r.to_string()))
    })
}

/// The authorization endpoint: `query` is the request's query string (no `?`); `cookie` the request's `Cookie`
/// header (NULL when it has none). Out: the HTTP response as `{"status", "headers": [[name, value]], "body"}` (a
/// consent page or a 302 to upstream, with a `Set-Cookie` header binding the authorization to this browser: send
/// every header as it is). Once the client and its redirect URI are known, errors are a 302 to the client (RFC
/// 6749 §4.1.2.1) and return `OK`; before that, `OAUTH_ERROR`.
#[no_mangle]
pub extern "C" fn fastmcp_auth_proxy_authorize(
    proxy: *const fastmcp_auth_proxy,
    query: *const c_char,
    cookie: *const c_char,
    http_response_json_out: *mut *mut c_char,
) -> fastmcp_auth_result {
    boundary(|| {
        out_ptr(http_response_json_out, "http_response_json_out")?;
        let p = AuthorizeParams::from_query(text(query, "query")?)
            .map_err(from_oauth)?
            .with_cookie(opt_text(cookie, "cookie")?);
        let r = proxy_of(proxy)?.authorize(&p).map_err(from_oauth)?;
        put_string(http_response_json_out, Some(r.to_json().to_string()))
    })
}

/// The consent form POST: `form`/`form_len` is the urlencoded body, `cookie` the request's `Cookie` header (NULL
/// when none). Out: the HTTP response JSON: a 302 (upstream on approve, the client on deny), or a 403 page when the
/// POST did not come from the consent page in the browser that started the authorization (nothing changes).
#[no_mangle]
pub extern "C" fn fastmcp_auth_proxy_handle_consent(
    proxy: *const fastmcp_auth_proxy,
    form: *const u8,
    form_len: usize,
    cookie: *const c_char,
    http_response_json_out: *mut *mut c_char,
) -> fastmcp_auth_result {
    boundary(|| {
        out_ptr(http_response_json_out, "http_response_json_out")?;
        let p = ConsentParams::from_form(bytes(form, form_len, "form")?)
            .map_err(from_oauth)?
            .with_cookie(opt_text(cookie, "cookie")?);
        let r = proxy_of(proxy)?.handle_consent(&p).map_err(from_oauth)?;
        put_string(http_response_json_out, Some(r.to_json().to_string()))
    })
}

/// The upstream callback: `query` is its query string, `cookie` the request's `Cookie` header (NULL when none).
/// Out: the HTTP response JSON: a 302 to the client, or a 403 page when this is not the browser that started the
/// authorization (the transaction is then dead).
#[no_mangle]
pub extern "C" fn fastmcp_auth_proxy_handle_callback(
    proxy: *const fastmcp_auth_proxy,
    query: *const c_char,
    cookie: *const c_char,
    http_response_json_out: *mut *mut c_char,
) -> fastmcp_auth_result {
    boundary(|| {
        out_ptr(http_response_json_out, "http_response_json_out")?;
        let p = CallbackParams::from_query(text(query, "query")?)
            .map_err(from_oauth)?
            .with_cookie(opt_text(cookie, "cookie")?);
        let r = proxy_of(proxy)?.handle_callback(&p).map_err(from_oauth)?;
        put_string(http_response_json_out, Some(r.to_json().to_string()))
    })
}

enum Grant {
    Any,
    Code,
    Refresh,
}

fn token(
    proxy: *const fastmcp_auth_proxy,
    form: *const u8,
    form_len: usize,
    authorization: *const c_char,
    out: *mut *mut c_char,
    g: Grant,
) -> fastmcp_auth_result {
    boundary(|| {
        out_ptr(out, "token_json_out")?;
        let req = TokenRequest::from_form(
            bytes(form, form_len, "form")?,
            opt_text(authorization, "authorization")?,
        )
        .map_err(from_oauth)?;
        let p = proxy_of(proxy)?;
        let r = match g {
            Grant::Any => p.token(&req),
            Grant::Code => p.exchange_authorization_code(&req),
            Grant::Refresh => p.exchange_refresh_token(&req),
        }
        .map_err(from_oauth)?;
        put_string(out, Some(r.to_json().to_string()))
    })
}

/// The token endpoint, any grant: `form` is the urlencoded body, `authorization` the `Authorization` header
/// (may be NULL). Out: the RFC 6749 §5.1 token response JSON.
#[no_mangle]
pub extern "C" fn fastmcp_auth_proxy_token(
    proxy: *const fastmcp_auth_proxy,
    form: *const u8,
    form_len: usize,
    authorization: *const c_char,
    token_json_out: *mut *mut c_char,
) -> fastmcp_auth_result {
    token(proxy, form, form_len, authorization, token_json_out, Grant::Any)
}

/// The authorization_code grant only (arguments as `fastmcp_auth_proxy_token`).
#[no_mangle]
pub extern "C" fn fastmcp_auth_proxy_exchange_authorization_code(
    proxy: *const fastmcp_auth_proxy,
    form: *const u8,
    form_len: usize,
    authorization: *const c_char,
    token_json_out: *mut *mut c_char,
) -> fastmcp_auth_result {
    token(proxy, form, form_len, authorization, token_json_out, Grant::Code)
}

/// The refresh_token grant only (arguments as `fastmcp_auth_proxy_token`).
#[no_mangle]
pub extern "C" fn fastmcp_auth_proxy_exchange_refresh_token(
    proxy: *const fastmcp_auth_proxy,
    form: *const u8,
    form_len: usize,
    authorization: *const c_char,
    token_json_out: *mut *mut c_char,
) -> fastmcp_auth_result {
    token(
        proxy,
        form,
        form_len,
        authorization,
        token_json_out,
        Grant::Refresh,
    )
}

/// The upstream tokens behind one of our access tokens, as JSON; `*upstream_json_out` is NULL when the token is
/// invalid, expired, revoked or a refresh token.
#[no_mangle]
pub extern "C" fn fastmcp_auth_proxy_load_upstream_tokens(
    proxy: *const fastmcp_auth_proxy,
    access_token: *const c_char,
    upstream_json_out: *mut *mut c_char,
) -> fastmcp_auth_result {
    boundary(|| {
        out_ptr(upstream_json_out, "upstream_json_out")?;
        let t = proxy_of(proxy)?
            .load_upstream_tokens(text(access_token, "access_token")?)
            .map_err(from_oauth)?;
        put_string(
            upstream_json_out,
            t.map(|t| serde_json::to_string(&t).unwrap_or_default()),
        )
    })
}

/// RFC 7009 revocation of one of our tokens by its client (`client_secret` may be NULL for public clients).
#[no_mangle]
pub extern "C" fn fastmcp_auth_proxy_revoke(
    proxy: *const fastmcp_auth_proxy,
    token: *const c_char,
    client_id: *const c_char,
    client_secret: *const c_char,
) -> fastmcp_auth_result {
    boundary(|| {
        proxy_of(proxy)?
            .revoke(
                text(token, "token")?,
                text(client_id, "client_id")?,
                opt_text(client_secret, "client_secret")?,
            )
            .map_err(from_oauth)
    })
}

/// RFC 8414 authorization server metadata JSON.
#[no_mangle]
pub extern "C" fn fastmcp_auth_proxy_metadata(
    proxy: *const fastmcp_auth_proxy,
    metadata_json_out: *mut *mut c_char,
) -> fastmcp_auth_result {
    boundary(|| {
        out_ptr(metadata_json_out, "metadata_json_out")?;
        put_string(
            metadata_json_out,
            Some(proxy_of(proxy)?.authorization_server_metadata().to_string()),
        )
    })
}

/// Readiness: one write/read/delete round trip of a probe entry through the proxy's store within `timeout_ms`
/// milliseconds (0: 2,000). Out: `{"ok", "store" ("ok" or what failed), "latency_ms", "warnings"}` (`warnings`:
/// the production checklist's findings, as `fastmcp_auth_proxy_config_warnings`). `OK` whether or not the store
/// is healthy; an error only for bad arguments.
#[no_mangle]
pub extern "C" fn fastmcp_auth_proxy_health(
    proxy: *const fastmcp_auth_proxy,
    timeout_ms: u64,
    health_json_out: *mut *mut c_char,
) -> fastmcp_auth_result {
    boundary(|| {
        out_ptr(health_json_out, "health_json_out")?;
        let ms = if timeout_ms == 0 {
            2000
        } else {
            timeout_ms.min(3_600_000)
        };
        let h = proxy_of(proxy)?
            .health(std::time::Duration::from_millis(ms))
            .map_err(from_oauth)?;
        put_string(health_json_out, Some(h.to_json().to_string()))
    })
}

/// The proxy's metrics in the Prometheus text exposition format (serve it at `/metrics` with `Content-Type:
/// application/openmetrics-text; version=1.0.0; charset=utf-8`). No label carries a token, secret, client id or
/// address.
#[no_mangle]
pub extern "C" fn fastmcp_auth_proxy_metrics(
    proxy: *const fastmcp_auth_proxy,
    metrics_text_out: *mut *mut c_char,
) -> fastmcp_auth_result {
    boundary(|| {
        out_ptr(metrics_text_out, "metrics_text_out")?;
        put_string(metrics_text_out, Some(proxy_of(proxy)?.as_async().metrics_text()))
    })
}

/// What the production checklist found in the configuration at construction (a weak or missing key, plain http to a
/// non-loopback host), as a JSON array of sentences naming the option, never its value; `[]` when nothing. A
/// config with `"strict": true` refuses to build instead.
#[no_mangle]
pub extern "C" fn fastmcp_auth_proxy_config_warnings(
    proxy: *const fastmcp_auth_proxy,
    warnings_json_out: *mut *mut c_char,
) -> fastmcp_auth_result {
    boundary(|| {
        out_ptr(warnings_json_out, "warnings_json_out")?;
        let w = serde_json::to_string(proxy_of(proxy)?.as_async().config_warnings())
            .unwrap_or_else(|_| "[]".into());
        put_string(warnings_json_out, Some(w))
    })
}

/// RFC 9728 protected resource metadata of `resource` (the MCP endpoint URL, e.g. `https://mcp.example.com/mcp`):
/// `{"resource", "authorization_servers", "scopes_supported", "bearer_methods_supported"}` (never
/// `offline_access`). Serve it at `/.well-known/oauth-protected-resource<path of resource>`.
#[no_mangle]
pub extern "C" fn fastmcp_auth_proxy_protected_resource_metadata(
    proxy: *const fastmcp_auth_proxy,
    resource: *const c_char,
    metadata_json_out: *mut *mut c_char,
) -> fastmcp_auth_result {
    boundary(|| {
        out_ptr(metadata_json_out, "metadata_json_out")?;
        let r = proxy_of(proxy)?
            .as_async()
            .protected_resource_metadata(text(resource, "resource")?);
        put_string(metadata_json_out, Some(r.to_string()))
    })
}

/// Checks a request to `resource` (RFC 6750 §3, RFC 9728 §5.1): `authorization` is its `Authorization` header
/// (NULL when absent), `required_scopes_json` a JSON array of scope strings (NULL: none). Out:
/// `{"authorized": true, "claims": {...}, "upstream": {...}}`, or `{"authorized": false, "response": {"status",
/// "headers", "body"}}`, the 401/403 with its `WWW-Authenticate` challenge to send as it is. Storage failures are
/// `OAUTH_ERROR` (`server_error`, 503).
#[no_mangle]
pub extern "C" fn fastmcp_auth_proxy_check_bearer(
    proxy: *const fastmcp_auth_proxy,
    authorization: *const c_char,
    resource: *const c_char,
    required_scopes_json: *const c_char,
    result_json_out: *mut *mut c_char,
) -> fastmcp_auth_result {
    boundary(|| {
        out_ptr(result_json_out, "result_json_out")?;
        let scopes_v = json(required_scopes_json, "required_scopes_json", true)?;
        let scopes: Vec<String> = if scopes_v.is_null() {
            Vec::new()
        } else {
            string_array(&scopes_v, "required_scopes_json")?
                .into_iter()
                .map(str::to_owned)
                .collect()
        };
        let r = proxy_of(proxy)?
            .check_bearer(
                opt_text(authorization, "authorization")?,
                text(resource, "resource")?,
                &scopes,
            )
            .map_err(from_oauth)?;
        put_string(result_json_out, Some(r.to_json().to_string()))
    })
}
