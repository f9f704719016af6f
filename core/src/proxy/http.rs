//! Framework-neutral request and response types of the proxy's endpoints, and their parsing from HTTP forms.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};
use url::form_urlencoded;

use super::error::{OAuthError, OAuthResult};

/// Longest accepted request body (forms) in bytes.
pub const MAX_FORM_BYTES: usize = 64 * 1024;
/// Longest accepted single parameter in bytes.
pub const MAX_PARAM_BYTES: usize = 8 * 1024;
/// Longest `state` accepted at the authorization endpoint (it is stored and echoed; clients send 16–128 bytes).
pub const MAX_STATE_BYTES: usize = 1024;
/// Longest `scope` parameter, in bytes, and most scopes in one request.
pub const MAX_SCOPE_BYTES: usize = 4096;
/// Most scopes in one request.
pub const MAX_SCOPES: usize = 100;
/// Longest `Cookie` header read, in bytes (browsers send at most ~8 KiB in practice).
pub const MAX_COOKIE_BYTES: usize = 16 * 1024;

/// The security headers of every HTML page the proxy serves: never cached, never framed.
fn html_headers(csp: &str) -> Vec<(String, String)> {
    vec![
        ("Content-Type".into(), "text/html; charset=utf-8".into()),
        ("Cache-Control".into(), "no-store".into()),
        ("X-Frame-Options".into(), "DENY".into()),
        ("X-Content-Type-Options".into(), "nosniff".into()),
        ("Referrer-Policy".into(), "no-referrer".into()),
        ("Content-Security-Policy".into(), csp.into()),
    ]
}

/// A `Cookie` header as the proxy reads it: `None` when absent or oversized.
fn cookie_header(h: Option<&str>) -> Option<String> {
    h.filter(|h| h.len() <= MAX_COOKIE_BYTES).map(str::to_owned)
}

/// A plain HTTP answer any binding or framework can serve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
    /// Body, if any.
    pub body: Option<String>,
}

impl HttpResponse {
    /// A 302 to `location`.
    pub fn redirect(location: String) -> Self {
        HttpResponse {
            status: 302,
            headers: vec![
                ("Location".into(), location),
                ("Cache-Control".into(), "no-store".into()),
            ],
            body: None,
        }
    }

    /// An HTML page with the security headers (no caching, no framing) and `csp`.
    pub fn html(status: u16, body: String, csp: &str) -> Self {
        HttpResponse {
            status,
            headers: html_headers(csp),
            body: Some(body),
        }
    }

    /// A short HTML page telling the user why the request was refused (`title` and `message` are fixed text).
    pub fn refusal_page(status: u16, title: &str, message: &str) -> Self {
        let body = format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title></head>\n\
             <body><main>\n<h1>{t}</h1>\n<p>{m}</p>\n</main></body></html>\n",
            t = escape_html(title),
            m = escape_html(message),
        );
        Self::html(
            status,
            body,
            "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        )
    }

    /// The values of every `Set-Cookie` header.
    pub fn set_cookies(&self) -> impl Iterator<Item = &str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.as_str())
    }

    /// The `Cookie` request header a browser sends back after this response's `Set-Cookie`s (their `name=value`
    /// pairs), for hosts and tests that play the browser; `None` when it sets none.
    pub fn cookie_header(&self) -> Option<String> {
        let pairs: Vec<String> = self
            .set_cookies()
            .filter_map(|s| cookie::Cookie::parse(s).ok())
            .map(|c| format!("{}={}", c.name(), c.value()))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    /// `{"status": …, "headers": [[name, value], …], "body": … | null}` (for bindings).
    pub fn to_json(&self) -> Value {
        json!({"status": self.status, "headers": self.headers, "body": self.body})
    }

    /// The `Location` header, if any.
    pub fn location(&self) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("location"))
            .map(|(_, v)| v.as_str())
    }

    /// The JSON error answer of `e`.
    pub fn from_error(e: &OAuthError) -> Self {
        HttpResponse {
            status: e.status,
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("Cache-Control".into(), "no-store".into()),
            ],
            body: Some(e.to_json().to_string()),
        }
    }
}

/// Parses `application/x-www-form-urlencoded` (or a query string) into pairs, refusing oversized input.
/// Invalid UTF-8 is replaced (U+FFFD), so it can never match a stored value.
pub fn parse_form(bytes: &[u8]) -> OAuthResult<Vec<(String, String)>> {
    if bytes.len() > MAX_FORM_BYTES {
        return Err(OAuthError::invalid_request("request too large").with_status(413));
    }
    let mut out = Vec::new();
    for (k, v) in form_urlencoded::parse(bytes) {
        if v.len() > MAX_PARAM_BYTES || k.len() > 256 {
            return Err(OAuthError::invalid_request(format!(
                "parameter {} too large",
                truncate(&k, 32)
            )));
        }
        out.push((k.into_owned(), v.into_owned()));
    }
    Ok(out)
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// One parameter; a repeated parameter is an error (RFC 6749 §3.1: "MUST NOT be included more than once").
fn single(pairs: &[(String, String)], name: &str) -> OAuthResult<Option<String>> {
    let mut it = pairs.iter().filter(|(k, _)| k == name);
    let first = it.next().map(|(_, v)| v.clone());
    if it.next().is_some() {
        return Err(OAuthError::invalid_request(format!("parameter {name} repeated")));
    }
    Ok(first.filter(|v| !v.is_empty()))
}

/// Parameters of the authorization endpoint.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AuthorizeParams {
    /// `client_id`.
    pub client_id: Option<String>,
    /// `redirect_uri`.
    pub redirect_uri: Option<String>,
    /// `response_type`.
    pub response_type: Option<String>,
    /// `state`.
    pub state: Option<String>,
    /// `scope` (space-separated).
    pub scope: Option<String>,
    /// `code_challenge`.
    pub code_challenge: Option<String>,
    /// `code_challenge_method`.
    pub code_challenge_method: Option<String>,
    /// `resource` (RFC 8707): the MCP server the token is for.
    pub resource: Option<String>,
    /// The request's `Cookie` header (the browser binding, see the proxy's `browser_binding` module).
    pub cookie: Option<String>,
    /// The caller's address as the host sees it (rate limits); `None` when the host does not say.
    pub remote_addr: Option<String>,
}

impl AuthorizeParams {
    /// From a query string (without `?`).
    pub fn from_query(query: &str) -> OAuthResult<Self> {
        let p = parse_form(query.as_bytes())?;
        Ok(AuthorizeParams {
            cookie: None,
            remote_addr: None,
            resource: single(&p, "resource")?,
            client_id: single(&p, "client_id")?,
            redirect_uri: single(&p, "redirect_uri")?,
            response_type: single(&p, "response_type")?,
            state: single(&p, "state")?,
            scope: single(&p, "scope")?,
            code_challenge: single(&p, "code_challenge")?,
            code_challenge_method: single(&p, "code_challenge_method")?,
        })
    }
}

/// Parameters of the upstream callback.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CallbackParams {
    /// Upstream's code.
    pub code: Option<String>,
    /// Our transaction id.
    pub state: Option<String>,
    /// Upstream's error.
    pub error: Option<String>,
    /// Upstream's error text (logged at debug level, never shown to the client).
    pub error_description: Option<String>,
    /// The request's `Cookie` header: it must carry the browser binding of the transaction.
    pub cookie: Option<String>,
    /// The caller's address as the host sees it (rate limits); `None` when the host does not say.
    pub remote_addr: Option<String>,
}

impl CallbackParams {
    /// From a query string (without `?`).
    pub fn from_query(query: &str) -> OAuthResult<Self> {
        let p = parse_form(query.as_bytes())?;
        Ok(CallbackParams {
            cookie: None,
            remote_addr: None,
            code: single(&p, "code")?,
            state: single(&p, "state")?,
            error: single(&p, "error")?,
            error_description: single(&p, "error_description")?,
        })
    }
}

/// The consent form.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConsentParams {
    /// Transaction being approved or denied.
    pub transaction_id: Option<String>,
    /// `approve` or `deny`.
    pub action: Option<String>,
    /// The consent page's CSRF token.
    pub csrf_token: Option<String>,
    /// The request's `Cookie` header: it must carry the browser binding of the transaction.
    pub cookie: Option<String>,
    /// The caller's address as the host sees it (rate limits); `None` when the host does not say.
    pub remote_addr: Option<String>,
}

impl ConsentParams {
    /// From the form body.
    pub fn from_form(body: &[u8]) -> OAuthResult<Self> {
        let p = parse_form(body)?;
        Ok(ConsentParams {
            transaction_id: single(&p, "transaction_id")?,
            action: single(&p, "action")?,
            csrf_token: single(&p, "csrf_token")?,
            cookie: None,
            remote_addr: None,
        })
    }
}

/// `Debug` that shows which secrets are present, never their values (codes, CSRF tokens, cookies).
macro_rules! redacted_debug {
    ($t:ty { $($plain:ident),* } { $($secret:ident),* }) => {
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($t))
                    $(.field(stringify!($plain), &self.$plain))*
                    $(.field(stringify!($secret), &self.$secret.as_ref().map(|_| "[redacted]")))*
                    .finish()
            }
        }
    };
}
redacted_debug!(AuthorizeParams { client_id, redirect_uri, response_type, state, scope, code_challenge_method, resource, remote_addr } { code_challenge, cookie });
redacted_debug!(CallbackParams { state, error, error_description, remote_addr } { code, cookie });
redacted_debug!(ConsentParams { transaction_id, action, remote_addr } { csrf_token, cookie });
impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"[redacted]")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("scope", &self.scope)
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}
redacted_debug!(TokenRequest { grant_type, redirect_uri, scope, resource, client_id, remote_addr } { code, code_verifier, refresh_token, client_secret });

macro_rules! with_remote_addr {
    ($($t:ty),*) => {$(
        impl $t {
            /// The same request with the caller's address (the socket's peer, or what a trusted reverse proxy
            /// forwarded): rate limits then count per address. At most 256 bytes are kept.
            pub fn with_remote_addr(mut self, addr: Option<&str>) -> Self {
                // An oversized value (a forwarded header an attacker filled) still counts, under one key.
                self.remote_addr = addr
                    .filter(|a| !a.is_empty())
                    .map(|a| if a.len() <= 256 { a.to_owned() } else { "oversized".to_owned() });
                self
            }
        }
    )*};
}
with_remote_addr!(
    AuthorizeParams,
    CallbackParams,
    ConsentParams,
    TokenRequest,
    RevocationRequest
);

macro_rules! with_cookie {
    ($($t:ty),*) => {$(
        impl $t {
            /// The same parameters with the request's `Cookie` header (`None` when absent; an oversized header
            /// is ignored, so the browser binding then fails closed).
            pub fn with_cookie(mut self, cookie: Option<&str>) -> Self {
                self.cookie = cookie_header(cookie);
                self
            }
        }
    )*};
}
with_cookie!(AuthorizeParams, CallbackParams, ConsentParams);

/// A token-endpoint request (any grant), with the client's credentials from the body or HTTP Basic.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TokenRequest {
    /// `grant_type`.
    pub grant_type: Option<String>,
    /// `code`.
    pub code: Option<String>,
    /// `redirect_uri`.
    pub redirect_uri: Option<String>,
    /// `code_verifier`.
    pub code_verifier: Option<String>,
    /// `refresh_token`.
    pub refresh_token: Option<String>,
    /// `scope`.
    pub scope: Option<String>,
    /// `resource` (RFC 8707).
    pub resource: Option<String>,
    /// `client_id`.
    pub client_id: Option<String>,
    /// `client_secret`.
    pub client_secret: Option<String>,
    /// The caller's address as the host sees it (rate limits); `None` when the host does not say.
    pub remote_addr: Option<String>,
}

impl TokenRequest {
    /// Parses the form body and an optional `Authorization: Basic …` header (RFC 6749 §2.3.1: form-encoded
    /// id and secret). Credentials in both places are an error.
    pub fn from_form(body: &[u8], authorization: Option<&str>) -> OAuthResult<Self> {
        let p = parse_form(body)?;
        let mut r = TokenRequest {
            grant_type: single(&p, "grant_type")?,
            code: single(&p, "code")?,
            redirect_uri: single(&p, "redirect_uri")?,
            code_verifier: single(&p, "code_verifier")?,
            refresh_token: single(&p, "refresh_token")?,
            scope: single(&p, "scope")?,
            resource: single(&p, "resource")?,
            client_id: single(&p, "client_id")?,
            client_secret: single(&p, "client_secret")?,
            remote_addr: None,
        };
        merge_basic(authorization, &mut r.client_id, &mut r.client_secret)?;
        Ok(r)
    }
}

/// Takes the client's credentials from an `Authorization: Basic …` header into the form's `client_id` and
/// `client_secret`; a secret in both places, or two different ids, is an error (RFC 6749 §2.3.1: one method only).
fn merge_basic(
    authorization: Option<&str>,
    client_id: &mut Option<String>,
    client_secret: &mut Option<String>,
) -> OAuthResult<()> {
    if let Some(h) = authorization {
        let (id, secret) = basic_credentials(h)?;
        if client_secret.is_some() || client_id.as_deref().is_some_and(|c| c != id) {
            return Err(OAuthError::invalid_request("client credentials given twice"));
        }
        *client_id = Some(id);
        *client_secret = Some(secret);
    }
    Ok(())
}

/// `Authorization: Basic …` (RFC 6749 §2.3.1: the id and secret are form-encoded before base64), with the same
/// size limit as form parameters.
fn basic_credentials(h: &str) -> OAuthResult<(String, String)> {
    let Some(b64) = h.strip_prefix("Basic ").or_else(|| h.strip_prefix("basic ")) else {
        return Err(OAuthError::invalid_client("unsupported Authorization scheme"));
    };
    if b64.len() > 2 * MAX_PARAM_BYTES {
        return Err(OAuthError::invalid_request("parameter Authorization too large"));
    }
    let raw = STANDARD
        .decode(b64.trim())
        .map_err(|_| OAuthError::invalid_client("malformed Basic credentials"))?;
    let raw =
        String::from_utf8(raw).map_err(|_| OAuthError::invalid_client("malformed Basic credentials"))?;
    let (id, secret) = raw
        .split_once(':')
        .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
    let decode = |s: &str| {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let (id, secret) = (decode(id), decode(secret));
    // The same limits and messages as the form parameters they stand for.
    for (name, v) in [("client_id", &id), ("client_secret", &secret)] {
        if v.len() > MAX_PARAM_BYTES {
            return Err(OAuthError::invalid_request(format!("parameter {name} too large")));
        }
    }
    Ok((id, secret))
}

/// An RFC 7009 revocation request, with the client's credentials from the body or HTTP Basic.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RevocationRequest {
    /// `token`.
    pub token: Option<String>,
    /// `token_type_hint` (`access_token` / `refresh_token`; a hint only, RFC 7009 §2.1).
    pub token_type_hint: Option<String>,
    /// `client_id`.
    pub client_id: Option<String>,
    /// `client_secret`.
    pub client_secret: Option<String>,
    /// The caller's address as the host sees it (rate limits); `None` when the host does not say.
    pub remote_addr: Option<String>,
}

redacted_debug!(RevocationRequest { token_type_hint, client_id, remote_addr } { token, client_secret });

impl RevocationRequest {
    /// Parses the form body and an optional `Authorization: Basic …` header. Credentials in both places are an
    /// error.
    pub fn from_form(body: &[u8], authorization: Option<&str>) -> OAuthResult<Self> {
        let p = parse_form(body)?;
        let mut r = RevocationRequest {
            token: single(&p, "token")?,
            token_type_hint: single(&p, "token_type_hint")?,
            client_id: single(&p, "client_id")?,
            client_secret: single(&p, "client_secret")?,
            remote_addr: None,
        };
        merge_basic(authorization, &mut r.client_id, &mut r.client_secret)?;
        Ok(r)
    }
}

/// A token-endpoint answer.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenResponse {
    /// Our JWT (swap) or the upstream access token (passthrough).
    pub access_token: String,
    /// Usually `Bearer`.
    pub token_type: String,
    /// Lifetime in seconds.
    pub expires_in: u64,
    /// Refresh token, if any.
    pub refresh_token: Option<String>,
    /// Space-separated scopes.
    pub scope: Option<String>,
    /// Upstream ID token (passthrough only).
    pub id_token: Option<String>,
}

impl TokenResponse {
    /// The upstream tokens as they are (passthrough mode).
    pub fn passthrough(up: super::UpstreamTokens) -> Self {
        TokenResponse {
            scope: (!up.scope.is_empty()).then(|| up.scope.join(" ")),
            access_token: up.access_token,
            token_type: up.token_type,
            expires_in: up.expires_in,
            refresh_token: up.refresh_token,
            id_token: up.id_token,
        }
    }

    /// The JSON body (RFC 6749 §5.1).
    pub fn to_json(&self) -> Value {
        let mut v = json!({"access_token": self.access_token, "token_type": self.token_type, "expires_in": self.expires_in});
        let m = v.as_object_mut().expect("object");
        if let Some(r) = &self.refresh_token {
            m.insert("refresh_token".into(), r.clone().into());
        }
        if let Some(s) = &self.scope {
            m.insert("scope".into(), s.clone().into());
        }
        if let Some(i) = &self.id_token {
            m.insert("id_token".into(), i.clone().into());
        }
        v
    }
}

/// Escapes text for HTML element content and quoted attributes.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let h = format!("Basic {}", STANDARD.encode("my+client:s%3Acret"));
        let r = TokenRequest::from_form(b"grant_type=authorization_code", Some(&h)).unwrap();
        assert_eq!(r.client_id.as_deref(), Some("my client"));
        assert_eq!(r.client_secret.as_deref(), Some("s:cret"));
        assert!(TokenRequest::from_form(b"client_secret=x", Some(&h)).is_err());
        assert!(TokenRequest::from_form(b"", Some("Bearer x")).is_err());
        assert!(TokenRequest::from_form(b"code=a&code=b", None).is_err());
        assert!(TokenRequest::from_form(&vec![b'a'; MAX_FORM_BYTES + 1], None).is_err());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = ConsentParams {
            transaction_id: Some("tx".into()),
            action: Some("approve".into()),
            csrf_token: Some("csrf-secret".into()),
            cookie: Some("fastmcp_auth_browser=cookie-secret".into()),
            remote_addr: None,
        };
        let cb = CallbackParams {
            code: Some("code-secret".into()),
            ..Default::default()
        }
        .with_cookie(Some("a=cookie-secret"));
        let text = format!(
            "{c:?} {cb:?} {:?}",
            AuthorizeParams::default().with_cookie(Some("x=cookie-secret"))
        );
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("[redacted]"));
    }

    #[test]
    fn escaping() {
        assert_eq!(
            escape_html("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#x27;&amp;&#x27;&lt;/a&gt;"
        );
    }
}
