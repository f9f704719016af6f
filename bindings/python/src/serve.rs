//! The proxy's HTTP endpoints as awaitables for asyncio (`fastmcp_auth.fastmcp` serves them from Starlette).
//!
//! Each call parses the request parts, spawns the core's future on the core's tokio runtime and returns an asyncio
//! future (bridge.rs) that completes with `{"status", "headers", "body"}` — the exact answer to send, errors
//! included (RFC 6749 §5.2 JSON with the status the core chose). The GIL is held only on the event loop's thread to
//! convert arguments and the answer, never while the core waits on a store, upstream or a timer.
//!
//! A panic inside the core (a bug) becomes a bare 500, never a crash of the host.

use std::future::Future;
use std::sync::Arc;

use fastmcp_auth::proxy::{
    AuthorizeParams, CallbackParams, ConsentParams, HttpResponse, OAuthError, OAuthProxy, RevocationRequest,
    TokenRequest,
};
use futures_util::FutureExt;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use serde_json::{json, Value};

/// The JSON answer of an OAuth error, with the headers RFC 6749 §5.2 and RFC 6585 ask for.
pub(crate) fn error_response(e: &OAuthError) -> HttpResponse {
    let mut r = HttpResponse::from_error(e);
    r.headers.push(("Pragma".into(), "no-cache".into()));
    if let Some(s) = e.retry_after {
        r.headers.push(("Retry-After".into(), s.to_string()));
    }
    if e.status == 401 {
        // RFC 6749 §5.2: a 401 from the token endpoint names the scheme the client may authenticate with.
        r.headers
            .push(("WWW-Authenticate".into(), "Basic realm=\"oauth\"".into()));
    }
    r
}

/// A JSON answer that is never cached (RFC 6749 §5.1).
pub(crate) fn json_response(status: u16, v: &Value) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![
            ("Content-Type".into(), "application/json".into()),
            ("Cache-Control".into(), "no-store".into()),
            ("Pragma".into(), "no-cache".into()),
        ],
        body: Some(v.to_string()),
    }
}

fn response_to_py(py: Python<'_>, r: &HttpResponse) -> PyResult<Py<PyAny>> {
    let d = PyDict::new(py);
    d.set_item("status", r.status)?;
    let headers = PyList::empty(py);
    for (k, v) in &r.headers {
        headers.append((k.as_str(), v.as_str()))?;
    }
    d.set_item("headers", headers)?;
    d.set_item("body", r.body.as_deref())?;
    Ok(d.into_any().unbind())
}

/// Runs `fut` on the core's runtime; the returned asyncio future completes with its response dict (a panic: 500).
fn respond<'py, F>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = HttpResponse> + Send + 'static,
{
    crate::bridge::spawn(py, async move {
        let r = std::panic::AssertUnwindSafe(fut)
            .catch_unwind()
            .await
            .unwrap_or_else(|_| error_response(&OAuthError::server_error("internal error")));
        Box::new(move |py: Python<'_>| response_to_py(py, &r)) as crate::bridge::Complete
    })
}

fn page(r: Result<HttpResponse, OAuthError>) -> HttpResponse {
    r.unwrap_or_else(|e| error_response(&e))
}

/// RFC 7591 §3: the registration request's JSON body → 201 with the client information, or 400
/// `invalid_client_metadata` / `invalid_redirect_uri`.
pub(crate) fn register<'py>(
    py: Python<'py>,
    proxy: Arc<OAuthProxy>,
    body: Vec<u8>,
    remote_addr: Option<String>,
) -> PyResult<Bound<'py, PyAny>> {
    respond(py, async move {
        // serde_json refuses nesting deeper than 128 levels itself: no stack overflow on hostile input.
        let request: Value = match serde_json::from_slice(&body) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return json_response(
                    400,
                    &json!({"error": "invalid_client_metadata", "error_description": "body must be a JSON object"}),
                )
            }
        };
        match proxy.register_client_from(&request, remote_addr.as_deref()).await {
            Ok(v) => json_response(201, &v),
            Err(e) => error_response(&e),
        }
    })
}

/// One browser step: the request part parsed, the browser's `Cookie` header and address attached, the core's step
/// run; its page or redirect (with any `Set-Cookie`) is the answer.
macro_rules! browser_step {
    ($(#[$doc:meta])* $name:ident($input:ty) => $params:ident::$parse:ident, $step:ident) => {
        $(#[$doc])*
        pub(crate) fn $name<'py>(
            py: Python<'py>,
            proxy: Arc<OAuthProxy>,
            input: $input,
            cookie: Option<String>,
            remote_addr: Option<String>,
        ) -> PyResult<Bound<'py, PyAny>> {
            respond(py, async move {
                let p = match $params::$parse(&input) {
                    Ok(p) => p
                        .with_cookie(cookie.as_deref())
                        .with_remote_addr(remote_addr.as_deref()),
                    Err(e) => return error_response(&e),
                };
                page(proxy.$step(&p).await)
            })
        }
    };
}

browser_step!(
    /// RFC 6749 §4.1.1: the authorization request (query string) → consent page or redirect, with the
    /// browser-binding `Set-Cookie`.
    authorize(String) => AuthorizeParams::from_query, authorize
);
browser_step!(
    /// The consent form's POST (urlencoded body).
    consent(Vec<u8>) => ConsentParams::from_form, handle_consent
);
browser_step!(
    /// The upstream provider's redirect back to `redirect_path` (query string).
    callback(String) => CallbackParams::from_query, handle_callback
);

/// One client (back-channel) step: the urlencoded body and `Authorization` header parsed, the caller's address
/// attached, the core's step run; `$ok` turns its result into the answer, an error is the RFC 6749 §5.2 JSON.
macro_rules! client_step {
    ($(#[$doc:meta])* $name:ident => $req:ident, $step:ident, |$v:ident| $ok:expr) => {
        $(#[$doc])*
        pub(crate) fn $name<'py>(
            py: Python<'py>,
            proxy: Arc<OAuthProxy>,
            form: Vec<u8>,
            authorization: Option<String>,
            remote_addr: Option<String>,
        ) -> PyResult<Bound<'py, PyAny>> {
            respond(py, async move {
                let req = match $req::from_form(&form, authorization.as_deref()) {
                    Ok(r) => r.with_remote_addr(remote_addr.as_deref()),
                    Err(e) => return error_response(&e),
                };
                match proxy.$step(&req).await {
                    Ok($v) => $ok,
                    Err(e) => error_response(&e),
                }
            })
        }
    };
}

client_step!(
    /// RFC 6749 §3.2: the token endpoint, any grant → 200 token JSON.
    token => TokenRequest, token, |t| json_response(200, &t.to_json())
);
client_step!(
    /// RFC 7009 §2: revocation → 200 with no body, also for unknown tokens (§2.2).
    revoke => RevocationRequest, revoke_request, |_done| HttpResponse {
        status: 200,
        headers: vec![("Cache-Control".into(), "no-store".into())],
        body: None,
    }
);

/// What a bearer check of `token` for `resource` found, for `verify_token`: `{"claims", "upstream"}` when the
/// token is ours, live, for this resource and backed by upstream tokens; None otherwise; a storage failure raises.
fn bearer_json(
    r: fastmcp_auth::proxy::OAuthResult<fastmcp_auth::proxy::BearerCheck>,
) -> Result<Value, OAuthError> {
    match r? {
        fastmcp_auth::proxy::BearerCheck::Authorized { claims, upstream } => Ok(json!({
            "claims": claims,
            "upstream": serde_json::to_value(upstream.as_ref()).unwrap_or_default(),
        })),
        fastmcp_auth::proxy::BearerCheck::Challenge(_) => Ok(Value::Null),
    }
}

/// `verify_token`'s check, awaited: see [`bearer_json`]. Answered in place when it needs no waiting (memory; disk
/// entries in the kernel's caches); else, on a store with a synchronous face (disk), the whole check runs on the
/// runtime's blocking pool (one thread hop each way, `check_bearer_blocking`); otherwise (Redis, a Python store)
/// on the runtime.
pub(crate) fn verify<'py>(
    py: Python<'py>,
    proxy: Arc<OAuthProxy>,
    token: String,
    resource: String,
) -> PyResult<Bound<'py, PyAny>> {
    fn complete(
        r: fastmcp_auth::proxy::OAuthResult<fastmcp_auth::proxy::BearerCheck>,
    ) -> crate::bridge::Complete {
        let v = bearer_json(r);
        Box::new(move |py: Python<'_>| {
            let v = v.map_err(crate::oauth_err)?;
            crate::from_json(py, &v).map(Bound::unbind)
        })
    }
    let header = format!("Bearer {token}");
    if proxy.store().as_sync().is_some() {
        let (p2, h2, r2) = (proxy.clone(), header.clone(), resource.clone());
        return crate::bridge::in_place_or(
            py,
            move || {
                Some(complete(proxy.check_bearer_inline(
                    Some(&header),
                    &resource,
                    &[],
                )?))
            },
            move || {
                let r = p2
                    .check_bearer_blocking(Some(&h2), &r2, &[])
                    .unwrap_or_else(|| Err(OAuthError::server_error("internal error")));
                complete(r)
            },
        );
    }
    crate::bridge::spawn(py, async move {
        let r = std::panic::AssertUnwindSafe(proxy.check_bearer(Some(&header), &resource, &[]))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err(OAuthError::server_error("internal error")));
        complete(r)
    })
}

/// The same check run in place when it needs no waiting (memory; disk entries in the kernel's caches) and this
/// turn of the loop has in-place budget left (`bridge::in_place`): the dict / None, or the Python value
/// `NotImplemented` when the caller must await [`verify`] instead.
pub(crate) fn verify_inline<'py>(
    py: Python<'py>,
    proxy: &OAuthProxy,
    token: &str,
    resource: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let header = format!("Bearer {token}");
    match crate::bridge::in_place(py, || proxy.check_bearer_inline(Some(&header), resource, &[]))? {
        None => Ok(py.NotImplemented().into_bound(py)),
        Some(r) => crate::from_json(py, &bearer_json(r).map_err(crate::oauth_err)?),
    }
}
