//! Test fixture: a real HTTPS server on 127.0.0.1 serving Client ID Metadata Documents, good and hostile, under a
//! certificate for `localhost` and `127.0.0.1` signed by a CA made for this run (trusted by the proxy only through
//! `cimd.extra_root_certificates_pem`). Never product code.
//!
//! Every document named in [`HOSTILE`] is refused by the proxy with the error text given there; [`GOOD`] documents
//! are accepted. `dynamic.json` answers whatever [`DocHost::set_dynamic`] last set; every path starting with `drip`
//! sends one byte per 100 ms for 5 minutes. Fetches are counted per path.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use serde_json::{json, Value};

/// Documents the proxy accepts. Their redirect URIs: `http://127.0.0.1/callback`, `http://localhost/callback`
/// (any port: RFC 8252 §7.3) and `https://client.example/cb`.
pub const GOOD: &[&str] = &["good.json", "good-minimal.json", "good-json-suffix.json"];

/// Hostile documents and a fragment of the error the proxy gives for each.
pub const HOSTILE: &[(&str, &str)] = &[
    ("mismatch.json", "client_id does not match"),
    ("no-redirect-uris.json", "no redirect_uris"),
    ("empty-redirect-uris.json", "redirect_uris is empty"),
    ("string-redirect-uris.json", "redirect_uris is not an array"),
    ("huge.json", "larger than cimd.max_document_bytes"),
    ("huge-chunked.json", "larger than cimd.max_document_bytes"),
    ("drip.json", "timed out"),
    ("redirect.json", "redirect"),
    ("not-json.json", "not valid JSON"),
    ("deep.json", "not valid JSON"),
    ("text-html.json", "not served as application/json"),
    ("secret-basic.json", "shared-secret"),
    ("missing.json", "did not answer 200"),
    ("server-error.json", "server error"),
];

#[derive(Default)]
struct Inner {
    fetches: HashMap<String, usize>,
    dynamic: Option<(u16, String, Option<String>)>,
}

type Shared = Arc<(String, Mutex<Inner>)>;

/// The HTTPS document host. Stops when dropped.
pub struct DocHost {
    base: String,
    ca_pem: String,
    state: Shared,
    handle: axum_server::Handle,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A good document for `client_id`.
pub fn good_document(client_id: &str) -> Value {
    json!({
        "client_id": client_id,
        "client_name": "Doc Host Client",
        "client_uri": "https://client.example",
        "redirect_uris": ["http://127.0.0.1/callback", "http://localhost/callback", "https://client.example/cb"],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    })
}

fn respond(status: u16, content_type: &str, body: Body, cache: Option<&str>) -> Response {
    let mut b = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
        .header(header::CONTENT_TYPE, content_type);
    if let Some(c) = cache {
        b = b.header(header::CACHE_CONTROL, c);
    }
    b.body(body).unwrap()
}

fn json_doc(v: Value) -> Response {
    respond(
        200,
        "application/json",
        Body::from(v.to_string()),
        Some("max-age=300"),
    )
}

async fn serve(State(st): State<Shared>, uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/').to_owned();
    let id = format!("{}/{path}", st.0);
    let dynamic = {
        let mut s = st.1.lock().unwrap();
        *s.fetches.entry(path.clone()).or_default() += 1;
        s.dynamic.clone()
    };
    let with = |k: &str, v: Value| {
        let mut d = good_document(&id);
        if v.is_null() {
            d.as_object_mut().unwrap().remove(k);
        } else {
            d[k] = v;
        }
        json_doc(d)
    };
    match path.as_str() {
        "good.json" => with("client_name", json!("Doc Host Client")),
        "good-minimal.json" => {
            json_doc(json!({"client_id": id, "redirect_uris": ["http://127.0.0.1/callback"]}))
        }
        "good-json-suffix.json" => respond(
            200,
            "application/oauth-client-metadata+json; charset=utf-8",
            Body::from(good_document(&id).to_string()),
            None,
        ),
        "mismatch.json" => with("client_id", json!("https://evil.example/client.json")),
        "no-redirect-uris.json" => with("redirect_uris", Value::Null),
        "empty-redirect-uris.json" => with("redirect_uris", json!([])),
        "string-redirect-uris.json" => with("redirect_uris", json!("http://127.0.0.1/callback")),
        "secret-basic.json" => with("token_endpoint_auth_method", json!("client_secret_basic")),
        "huge.json" => respond(200, "application/json", Body::from(vec![b' '; 10 << 20]), None),
        "huge-chunked.json" => {
            let chunks = futures_util::stream::iter(
                (0..160).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 64 << 10]))),
            );
            respond(200, "application/json", Body::from_stream(chunks), None)
        }
        // Every `drip*` path drips (distinct URLs for tests that need several slow fetches of one host).
        p if p.starts_with("drip") => {
            let drip = futures_util::stream::unfold(0u32, |i| async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                (i < 3000).then(|| (Ok::<_, std::io::Error>(Bytes::from_static(b" ")), i + 1))
            });
            respond(200, "application/json", Body::from_stream(drip), None)
        }
        "redirect.json" => Response::builder()
            .status(StatusCode::FOUND)
            .header(header::LOCATION, format!("{}/good.json", st.0))
            .body(Body::empty())
            .unwrap(),
        "not-json.json" => respond(200, "application/json", Body::from("<html>not json</html>"), None),
        "deep.json" => respond(
            200,
            "application/json",
            Body::from(format!("{}{}", "[".repeat(10_000), "]".repeat(10_000))),
            None,
        ),
        "text-html.json" => respond(200, "text/html", Body::from(good_document(&id).to_string()), None),
        "server-error.json" => respond(500, "application/json", Body::from("{}"), None),
        "dynamic.json" => match dynamic {
            Some((status, body, cache)) => {
                respond(status, "application/json", Body::from(body), cache.as_deref())
            }
            None => json_doc(good_document(&id)),
        },
        _ => respond(404, "application/json", Body::from("{}"), None),
    }
}

impl DocHost {
    /// Starts on a free loopback port with a fresh CA, served by a thread of its own.
    pub fn start() -> DocHost {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "fastmcp-auth test CA");
        ca.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap()
            .signed_by(&leaf_key, &ca_cert, &ca_key)
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone(), ca_cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
            )
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let base = format!("https://localhost:{}", addr.port());
        let state: Shared = Arc::new((base.clone(), Mutex::new(Inner::default())));
        let app = Router::new().fallback(serve).with_state(state.clone());
        let handle = axum_server::Handle::new();
        let h = handle.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let config = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(tls));
                let _ = axum_server::from_tcp_rustls(listener, config)
                    .handle(h)
                    .serve(app.into_make_service())
                    .await;
            });
        });
        DocHost {
            base,
            ca_pem: ca_cert.pem(),
            state,
            handle,
            thread: Some(thread),
        }
    }

    /// `https://localhost:PORT`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The URL (and client id) of document `name`.
    pub fn url(&self, name: &str) -> String {
        format!("{}/{name}", self.base)
    }

    /// The CA certificate (PEM) that signed the server's certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// How many times `name` was fetched.
    pub fn fetches(&self, name: &str) -> usize {
        self.state
            .1
            .lock()
            .unwrap()
            .fetches
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    /// What `dynamic.json` answers from now on: status, body, `Cache-Control`. `None`: a good document, max-age=300.
    pub fn set_dynamic(&self, answer: Option<(u16, String, Option<String>)>) {
        self.state.1.lock().unwrap().dynamic = answer;
    }
}

impl Drop for DocHost {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
