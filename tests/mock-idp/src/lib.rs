//! A mock upstream identity provider on 127.0.0.1 for tests and the demo (a test fixture, never product code).
//!
//! `GET /authorize` plays the user who logs in: it records the request and redirects straight back to
//! `redirect_uri` with a code. `POST /token` serves the authorization_code and refresh_token grants, checks client
//! authentication (Basic or post) and PKCE, and can be switched to answer in form encoding, with errors, slowly,
//! with or without refresh-token rotation. Every call is counted.

pub mod doc_host;
pub mod redis_server;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};

/// Switches of the mock.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Client id the token endpoint accepts.
    pub client_id: String,
    /// Client secret the token endpoint accepts.
    pub client_secret: String,
    /// Answer token requests form-encoded (GitHub style) instead of JSON.
    pub form_responses: bool,
    /// Issue a new refresh token on every refresh (otherwise the response carries none).
    pub rotate_refresh_tokens: bool,
    /// Issue refresh tokens at all.
    pub issue_refresh_tokens: bool,
    /// Answer the next N token requests with this status and JSON body.
    pub fail_next: Option<(u32, u16, serde_json::Value)>,
    /// Wait this long before answering token requests.
    pub delay: Duration,
    /// `expires_in` of access tokens (0: omitted, as GitHub OAuth Apps answer).
    pub expires_in: u64,
    /// `scope` returned (None: omitted).
    pub scope: Option<String>,
    /// Claims of a JWT-shaped access token (`up-at-….<payload>.sig`: still starts with `up-at-`). None: opaque.
    pub access_token_claims: Option<serde_json::Value>,
    /// Claims of an OpenID Connect `id_token` (JWT-shaped) sent with every token response. None: no id_token.
    pub id_token_claims: Option<serde_json::Value>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            client_id: "upstream-client".into(),
            client_secret: "upstream secret+/=".into(),
            form_responses: false,
            rotate_refresh_tokens: true,
            issue_refresh_tokens: true,
            fail_next: None,
            delay: Duration::ZERO,
            expires_in: 3600,
            scope: Some("openid email".into()),
            access_token_claims: None,
            id_token_claims: None,
        }
    }
}

/// What the mock has seen.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    /// `GET /authorize` calls.
    pub authorize: u64,
    /// `POST /token` with grant authorization_code.
    pub code_exchanges: u64,
    /// `POST /token` with grant refresh_token.
    pub refreshes: u64,
    /// The form fields of the last token request (client credentials removed).
    pub last_token_form: Vec<(String, String)>,
}

#[derive(Default)]
struct Inner {
    settings: Settings,
    counts: Counts,
    // code -> (redirect_uri, code_challenge)
    codes: HashMap<String, (String, Option<String>)>,
    refresh_tokens: HashSet<String>,
    issued: u64,
}

type Shared = Arc<Mutex<Inner>>;

/// A running mock; stops when dropped.
pub struct MockIdp {
    addr: SocketAddr,
    state: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn random() -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

async fn authorize(State(s): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut s = s.lock().unwrap();
    s.counts.authorize += 1;
    let (Some(redirect), Some(state)) = (q.get("redirect_uri"), q.get("state")) else {
        return (StatusCode::BAD_REQUEST, "missing redirect_uri or state").into_response();
    };
    if q.get("client_id") != Some(&s.settings.client_id) {
        return (StatusCode::BAD_REQUEST, "unknown client").into_response();
    }
    let code = format!("up-code-{}", random());
    s.codes
        .insert(code.clone(), (redirect.clone(), q.get("code_challenge").cloned()));
    let mut url = url::Url::parse(redirect).unwrap();
    url.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", state);
    (StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response()
}

fn answer(settings: &Settings, status: StatusCode, body: serde_json::Value) -> Response {
    if settings.form_responses && status.is_success() {
        let mut f = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in body.as_object().unwrap() {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            f.append_pair(k, &text);
        }
        return (
            status,
            [(header::CONTENT_TYPE, "application/x-www-form-urlencoded")],
            f.finish(),
        )
            .into_response();
    }
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn token(
    State(s): State<Shared>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let delay = s.lock().unwrap().settings.delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut s = s.lock().unwrap();
    let grant = f.get("grant_type").cloned().unwrap_or_default();
    match grant.as_str() {
        "authorization_code" => s.counts.code_exchanges += 1,
        "refresh_token" => s.counts.refreshes += 1,
        _ => {}
    }
    s.counts.last_token_form = f
        .iter()
        .filter(|(k, _)| k.as_str() != "client_secret")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let settings = s.settings.clone();
    if let Some((n, status, body)) = s.settings.fail_next.take() {
        if n > 1 {
            s.settings.fail_next = Some((n - 1, status, body.clone()));
        }
        return answer(&settings, StatusCode::from_u16(status).unwrap(), body);
    }
    // Client authentication: Basic with form-encoded parts (RFC 6749 §2.3.1), or in the body.
    let (id, secret) = match headers.get(header::AUTHORIZATION).and_then(|h| h.to_str().ok()) {
        Some(h) => {
            let raw = String::from_utf8(
                STANDARD
                    .decode(h.trim_start_matches("Basic "))
                    .unwrap_or_default(),
            )
            .unwrap_or_default();
            let (a, b) = raw.split_once(':').unwrap_or_default();
            let dec = |x: &str| {
                url::form_urlencoded::parse(format!("v={x}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            // RFC 6749 §2.3.1 says form-encoded; many clients send the raw text, which real providers accept too.
            let (id, secret) = (dec(a), dec(b));
            if id == s.settings.client_id && secret == s.settings.client_secret {
                (id, secret)
            } else {
                (a.to_owned(), b.to_owned())
            }
        }
        None => (
            f.get("client_id").cloned().unwrap_or_default(),
            f.get("client_secret").cloned().unwrap_or_default(),
        ),
    };
    if id != settings.client_id || secret != settings.client_secret {
        return answer(
            &settings,
            StatusCode::UNAUTHORIZED,
            json!({"error": "invalid_client"}),
        );
    }
    let refresh = match grant.as_str() {
        "authorization_code" => {
            let code = f.get("code").cloned().unwrap_or_default();
            let Some((redirect, challenge)) = s.codes.remove(&code) else {
                return answer(
                    &settings,
                    StatusCode::BAD_REQUEST,
                    json!({"error": "invalid_grant", "error_description": "unknown code"}),
                );
            };
            if f.get("redirect_uri") != Some(&redirect) {
                return answer(
                    &settings,
                    StatusCode::BAD_REQUEST,
                    json!({"error": "invalid_grant", "error_description": "redirect_uri mismatch"}),
                );
            }
            if let Some(ch) = challenge {
                let v = f.get("code_verifier").cloned().unwrap_or_default();
                if URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes())) != ch {
                    return answer(
                        &settings,
                        StatusCode::BAD_REQUEST,
                        json!({"error": "invalid_grant", "error_description": "PKCE"}),
                    );
                }
            }
            settings.issue_refresh_tokens
        }
        "refresh_token" => {
            let rt = f.get("refresh_token").cloned().unwrap_or_default();
            if !s.refresh_tokens.contains(&rt) {
                return answer(
                    &settings,
                    StatusCode::BAD_REQUEST,
                    json!({"error": "invalid_grant", "error_description": "unknown refresh token"}),
                );
            }
            if settings.rotate_refresh_tokens {
                s.refresh_tokens.remove(&rt);
            }
            settings.rotate_refresh_tokens
        }
        _ => {
            return answer(
                &settings,
                StatusCode::BAD_REQUEST,
                json!({"error": "unsupported_grant_type"}),
            )
        }
    };
    s.issued += 1;
    let n = s.issued;
    // JWT-shaped tokens are unsigned ("sig"): a proxy reads their claims from its own back channel without verifying.
    let jwt_shaped = |head: String, claims: &serde_json::Value| {
        format!("{head}.{}.sig", URL_SAFE_NO_PAD.encode(claims.to_string()))
    };
    let at = format!("up-at-{n}-{}", random());
    let at = match &settings.access_token_claims {
        Some(c) => jwt_shaped(at, c),
        None => at,
    };
    let mut body = json!({"access_token": at, "token_type": "Bearer"});
    if settings.expires_in > 0 {
        body["expires_in"] = settings.expires_in.into();
    }
    if let Some(c) = &settings.id_token_claims {
        body["id_token"] = jwt_shaped(URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#), c).into();
    }
    if refresh {
        let rt = format!("up-rt-{n}-{}", random());
        s.refresh_tokens.insert(rt.clone());
        body["refresh_token"] = rt.into();
    }
    if let Some(sc) = &settings.scope {
        body["scope"] = sc.clone().into();
    }
    answer(&settings, StatusCode::OK, body)
}

/// Plays the user's browser at an upstream authorization URL: a real HTTP/1.1 GET over TCP, returning the
/// `Location` the provider answers with (the proxy's callback URL with code and state).
pub fn browser_login(authorize_url: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let u = url::Url::parse(authorize_url).map_err(|e| e.to_string())?;
    let host = u.host_str().ok_or("no host")?;
    let port = u.port_or_known_default().ok_or("no port")?;
    if host != "127.0.0.1" && host != "localhost" {
        return Err("the mock browser only talks to loopback".into());
    }
    let path = match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_owned(),
    };
    let mut conn = std::net::TcpStream::connect((host, port)).map_err(|e| e.to_string())?;
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut resp = String::new();
    conn.read_to_string(&mut resp).map_err(|e| e.to_string())?;
    if !resp.starts_with("HTTP/1.1 302") {
        return Err(resp.lines().next().unwrap_or_default().to_owned());
    }
    resp.lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("location"))
                .map(|(_, v)| v.trim().to_owned())
        })
        .ok_or_else(|| "no Location".into())
}

impl MockIdp {
    /// Starts on a free loopback port, served by a thread of its own (usable from sync and async tests).
    pub fn start() -> MockIdp {
        Self::start_with(Settings::default())
    }

    /// Starts with the given settings.
    pub fn start_with(settings: Settings) -> MockIdp {
        let state: Shared = Arc::new(Mutex::new(Inner {
            settings,
            ..Default::default()
        }));
        let app = Router::new()
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(state.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let addr = addr_rx.recv().unwrap();
        MockIdp {
            addr,
            state,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The authorization endpoint.
    pub fn authorize_url(&self) -> String {
        format!("{}/authorize", self.base_url())
    }

    /// The token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.base_url())
    }

    /// Current settings.
    pub fn settings(&self) -> Settings {
        self.state.lock().unwrap().settings.clone()
    }

    /// Changes settings.
    pub fn configure(&self, f: impl FnOnce(&mut Settings)) {
        f(&mut self.state.lock().unwrap().settings)
    }

    /// Calls seen so far.
    pub fn counts(&self) -> Counts {
        self.state.lock().unwrap().counts.clone()
    }

    /// Plays the user's browser at upstream; see [`browser_login`].
    pub fn login(&self, authorize_url: &str) -> Result<String, String> {
        browser_login(authorize_url)
    }

    /// Forgets every refresh token (as if the user revoked access upstream).
    pub fn revoke_all_refresh_tokens(&self) {
        self.state.lock().unwrap().refresh_tokens.clear();
    }
}

impl Drop for MockIdp {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
