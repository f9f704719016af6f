//! Attacks on Client ID Metadata Documents (URL client ids): SSRF, hostile document hosts (headers, bodies,
//! timing), cache confusion, resource exhaustion, hostile documents, consent-page injection, grant misuse and
//! panics on odd input.
//!
//! Besides tests/mock-idp's `DocHost`, this file runs a raw HTTPS server of its own (`RawHost`: blocking rustls over
//! std TCP, a CA made once with openssl and embedded below) so an answer can be any bytes at any pace, and a
//! "tarpit" that accepts TCP connections and never speaks TLS.
//!
//! Written by a red-team pass; the six weaknesses it found (a panic on a multi-byte byte 8 of `client_id`, a
//! cool-down anyone could start with a 404, one global pool of fetch slots, a stale copy not standing in when the
//! slots were full, a shared URL client's logins evictable by anonymous requests, invisible characters accepted in
//! `client_name`) are fixed and their tests below now pass.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fastmcp_auth::blocking::OAuthProxy;
use fastmcp_auth::proxy::{
    address_policy, cimd_document, CallbackParams, CimdOptions, ConsentParams, HttpResponse, OAuthError,
    OAuthProxyConfig, RevocationRequest, TokenRequest,
};
use fastmcp_auth::store::{MemoryStore, Store};
use fastmcp_auth::{ChallengeMethod, CodeVerifier};
use fastmcp_auth_mock_idp::doc_host::{good_document, DocHost};
use fastmcp_auth_mock_idp::MockIdp;
use serde_json::{json, Value};

mod support;
use support::{hidden, params, query_param, REDIRECT};

const BASE: &str = "http://127.0.0.1:8000";

// ---- a CA and a leaf for `localhost`, `127.0.0.1` and `vm` (valid 2020..2120; test material only) -------------

const RAW_CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBbzCCARWgAwIBAgIBATAKBggqhkjOPQQDAjAeMRwwGgYDVQQDDBNjaW1kIGF0
dGFjayB0ZXN0IENBMCAXDTIwMDEwMTAwMDAwMFoYDzIxMjAwMTAxMDAwMDAwWjAe
MRwwGgYDVQQDDBNjaW1kIGF0dGFjayB0ZXN0IENBMFkwEwYHKoZIzj0CAQYIKoZI
zj0DAQcDQgAEQRs0gCkyNsndp2RlR2zrWfc69n9CbN0QWAfcRY9ucuxG7EsRtGcj
+5TDUa4EFNh/Lbb0vf1rtoaKWynJeOcHOqNCMEAwDwYDVR0TAQH/BAUwAwEB/zAO
BgNVHQ8BAf8EBAMCAQYwHQYDVR0OBBYEFHtHRrv1cllZLL6z+IrG+88GGyasMAoG
CCqGSM49BAMCA0gAMEUCIAv4GJXdVVp5EqL0Qt5Xvey/i2VhvVXEXjfoIGAQ3C1R
AiEAo2hM5Ijoz7t8A8w6lN5W6ftajJqtPwma04DE/V6mpbE=
-----END CERTIFICATE-----
";

const RAW_LEAF_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBuzCCAWCgAwIBAgIBAjAKBggqhkjOPQQDAjAeMRwwGgYDVQQDDBNjaW1kIGF0
dGFjayB0ZXN0IENBMCAXDTIwMDEwMTAwMDAwMFoYDzIxMjAwMTAxMDAwMDAwWjAU
MRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAATz
W/jmLM/iuOhAcnRjqVpefU40dhWeV2MhEDcOsUPQnnwz1hPeyROlRr1M6yAyfTS+
Kk+lyvKTNWLnBeSJGY1yo4GWMIGTMAwGA1UdEwEB/wQCMAAwDgYDVR0PAQH/BAQD
AgeAMBMGA1UdJQQMMAoGCCsGAQUFBwMBMB4GA1UdEQQXMBWCCWxvY2FsaG9zdIcE
fwAAAYICdm0wHwYDVR0jBBgwFoAUe0dGu/VyWVksvrP4isb7zwYbJqwwHQYDVR0O
BBYEFGwHNK65CHk4ypYuF40dUnPFebAhMAoGCCqGSM49BAMCA0kAMEYCIQDDla+0
SNE45rXSE1ehn8YBtuK5S3WX5wW2FP/xWDJwygIhAMfCzSK7leSd9BDJR79Jhnom
Q52e0ZkxlRaS5qydrpwq
-----END CERTIFICATE-----
";

const RAW_LEAF_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgqLqpUp9D0NCkUZEw
WF2zzV3kBheLe5T1E8G43liOM9ChRANCAATzW/jmLM/iuOhAcnRjqVpefU40dhWe
V2MhEDcOsUPQnnwz1hPeyROlRr1M6yAyfTS+Kk+lyvKTNWLnBeSJGY1y
-----END PRIVATE KEY-----
";

// ---- RawHost: an HTTPS server whose answers are scripts of raw bytes and pauses ------------------------------

/// One step of an answer.
enum Step {
    Send(Vec<u8>),
    Sleep(Duration),
}

/// What the script sees of a request.
struct RawReq {
    /// `https://localhost:PORT`.
    base: String,
    path: String,
}

type Script = Arc<dyn Fn(&RawReq) -> Vec<Step> + Send + Sync>;

struct RawHost {
    port: u16,
    base: String,
    requests: Arc<Mutex<Vec<String>>>,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl RawHost {
    fn start(script: impl Fn(&RawReq) -> Vec<Step> + Send + Sync + 'static) -> RawHost {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let script: Script = Arc::new(script);
        let chain = vec![
            CertificateDer::from_pem_slice(RAW_LEAF_PEM.as_bytes()).unwrap(),
            CertificateDer::from_pem_slice(RAW_CA_PEM.as_bytes()).unwrap(),
        ];
        let key = PrivateKeyDer::from_pem_slice(RAW_LEAF_KEY_PEM.as_bytes()).unwrap();
        let tls = Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let base = format!("https://localhost:{port}");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, c, s, b) = (requests.clone(), connections.clone(), stop.clone(), base.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                c.fetch_add(1, Ordering::SeqCst);
                let (tls, script, r, b) = (tls.clone(), script.clone(), r.clone(), b.clone());
                std::thread::spawn(move || serve_raw(stream, tls, script, r, b));
            }
        });
        RawHost {
            port,
            base,
            requests,
            connections,
            stop,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for RawHost {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve_raw(
    stream: TcpStream,
    tls: Arc<rustls::ServerConfig>,
    script: Script,
    requests: Arc<Mutex<Vec<String>>>,
    base: String,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(15)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(15)));
    let Ok(conn) = rustls::ServerConnection::new(tls) else {
        return;
    };
    let mut s = rustls::StreamOwned::new(conn, stream);
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        if head.len() > 65536 {
            return;
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    requests.lock().unwrap().push(head);
    let req = RawReq { base, path };
    for step in script(&req) {
        match step {
            Step::Send(b) => {
                if s.write_all(&b).is_err() || s.flush().is_err() {
                    return;
                }
            }
            Step::Sleep(d) => std::thread::sleep(d),
        }
    }
    s.conn.send_close_notify();
    let _ = s.flush();
}

/// A whole HTTP/1.1 answer with a Content-Length.
fn answer(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// The good document for the URL the request was made to (`https://localhost:PORT/path`).
fn mirrored_document(r: &RawReq) -> Value {
    good_document(&format!("{}{}", r.base, r.path))
}

fn json_answer(v: &Value) -> Vec<Step> {
    vec![Step::Send(answer(
        "200 OK",
        &[("Content-Type", "application/json")],
        v.to_string().as_bytes(),
    ))]
}

/// A TCP listener that accepts and holds connections and never says a word (no TLS).
struct Tarpit {
    port: u16,
    accepted: Arc<AtomicUsize>,
    first_lines: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Tarpit {
    fn start() -> Tarpit {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let first_lines = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, f, s) = (accepted.clone(), first_lines.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut stream) = stream else { continue };
                a.fetch_add(1, Ordering::SeqCst);
                let f = f.clone();
                std::thread::spawn(move || {
                    // Record what the client says first (a proxy CONNECT, a TLS ClientHello), then hold the line.
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
                    let mut buf = [0u8; 1024];
                    if let Ok(n) = stream.read(&mut buf) {
                        let text = String::from_utf8_lossy(&buf[..n]);
                        f.lock()
                            .unwrap()
                            .push(text.lines().next().unwrap_or("").to_owned());
                    }
                    std::thread::sleep(Duration::from_secs(20));
                });
            }
        });
        Tarpit {
            port,
            accepted,
            first_lines,
            stop,
        }
    }
}

impl Drop for Tarpit {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

// ---- proxy helpers (after core/tests/cimd.rs) ----------------------------------------------------------------

fn cimd_options(cas: &[&str]) -> CimdOptions {
    CimdOptions {
        allow_private_networks_for_testing: true,
        extra_root_certificates_pem: cas.iter().map(|s| (*s).to_owned()).collect(),
        fetch_timeout: Duration::from_secs(1),
        failure_cooldown: Duration::ZERO,
        ..Default::default()
    }
}

/// A proxy whose upstream is never contacted (authorize and consent only).
fn offline_proxy(cas: &[&str], f: impl FnOnce(&mut OAuthProxyConfig)) -> OAuthProxy {
    let mut c = OAuthProxyConfig::new(
        BASE,
        "https://idp.invalid/authorize",
        "https://idp.invalid/token",
        "upstream-client",
        "upstream-secret",
    );
    c.jwt_signing_key = Some("test-jwt-signing-key".into());
    c.encryption_key = Some("test-encryption-key".into());
    c.cimd = cimd_options(cas);
    f(&mut c);
    OAuthProxy::new(c).unwrap()
}

fn idp_proxy(idp: &MockIdp, cas: &[&str], f: impl FnOnce(&mut OAuthProxyConfig)) -> OAuthProxy {
    let s = idp.settings();
    let mut c = OAuthProxyConfig::new(
        BASE,
        idp.authorize_url(),
        idp.token_url(),
        s.client_id,
        s.client_secret,
    );
    c.jwt_signing_key = Some("test-jwt-signing-key".into());
    c.encryption_key = Some("test-encryption-key".into());
    c.cimd = cimd_options(cas);
    f(&mut c);
    OAuthProxy::new(c).unwrap()
}

fn approve(p: &OAuthProxy, page: &HttpResponse, cookie: Option<&str>) -> Result<HttpResponse, OAuthError> {
    p.handle_consent(
        &ConsentParams {
            transaction_id: Some(hidden(page, "transaction_id")),
            action: Some("approve".into()),
            csrf_token: Some(hidden(page, "csrf_token")),
            ..Default::default()
        }
        .with_cookie(cookie),
    )
}

/// authorize → consent → upstream → callback → our code.
fn login_code(p: &OAuthProxy, idp: &MockIdp, client_id: &str, verifier: &CodeVerifier) -> String {
    let page = p.authorize(&params(client_id, verifier)).unwrap();
    assert_eq!(page.status, 200);
    let cookie = page.cookie_header();
    let upstream = approve(p, &page, cookie.as_deref()).unwrap();
    let callback = idp.login(upstream.location().unwrap()).unwrap();
    let query = url::Url::parse(&callback).unwrap().query().unwrap().to_owned();
    let back = p
        .handle_callback(
            &CallbackParams::from_query(&query)
                .unwrap()
                .with_cookie(cookie.as_deref()),
        )
        .unwrap();
    let to_client = back.location().unwrap();
    assert!(to_client.starts_with(REDIRECT), "{to_client}");
    query_param(to_client, "code").unwrap()
}

fn redeem(
    p: &OAuthProxy,
    client_id: &str,
    code: &str,
    verifier: Option<&CodeVerifier>,
) -> Result<fastmcp_auth::proxy::TokenResponse, OAuthError> {
    p.token(&TokenRequest {
        grant_type: Some("authorization_code".into()),
        code: Some(code.into()),
        redirect_uri: Some(REDIRECT.into()),
        code_verifier: verifier.map(|v| v.as_str().into()),
        client_id: Some(client_id.into()),
        ..Default::default()
    })
}

fn desc(e: &OAuthError) -> String {
    e.description.clone().unwrap_or_default()
}

/// Sets `dynamic.json` to `body` (application/json), fetched again on every use (`max-age=0`, floor 0).
fn serve_dynamic(host: &DocHost, body: impl Into<String>) {
    host.set_dynamic(Some((200, body.into(), Some("max-age=0".into()))));
}

// ==== 1. panics on odd input ===================================================================================

/// `is_url_client_id` slices `client_id[..8]`: a multi-byte character across byte 8 panics. It runs on every
/// client id the token, authorize, refresh and revoke endpoints see, before any other check, CIMD on or off.
#[test]

fn a_client_id_with_a_multibyte_character_at_byte_8_does_not_panic() {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    let mut panicked = Vec::new();
    for id in ["1234567é", "https:/é/x", "abcdefg\u{1F600}"] {
        if catch_unwind(|| cimd_document::is_url_client_id(id)).is_err() {
            panicked.push(format!("is_url_client_id({id:?})"));
        }
    }
    for cimd_enabled in [true, false] {
        let p = offline_proxy(&[], |c| c.cimd.enabled = cimd_enabled);
        let v = CodeVerifier::generate(64).unwrap();
        let id = "1234567é";
        if catch_unwind(AssertUnwindSafe(|| p.authorize(&params(id, &v)))).is_err() {
            panicked.push(format!("authorize (cimd {cimd_enabled})"));
        }
        if catch_unwind(AssertUnwindSafe(|| redeem(&p, id, "x", Some(&v)))).is_err() {
            panicked.push(format!("token (cimd {cimd_enabled})"));
        }
        let refresh = TokenRequest {
            grant_type: Some("refresh_token".into()),
            refresh_token: Some("x".into()),
            client_id: Some(id.into()),
            ..Default::default()
        };
        if catch_unwind(AssertUnwindSafe(|| p.token(&refresh))).is_err() {
            panicked.push(format!("refresh (cimd {cimd_enabled})"));
        }
        let revoke = RevocationRequest {
            token: Some("t".into()),
            client_id: Some(id.into()),
            ..Default::default()
        };
        if catch_unwind(AssertUnwindSafe(|| p.revoke_request(&revoke))).is_err() {
            panicked.push(format!("revoke (cimd {cimd_enabled})"));
        }
    }
    assert!(panicked.is_empty(), "panicked: {panicked:?}");
}

proptest::proptest! {
    /// The pure rules never panic on any text (URL or body); `is_url_client_id` is fed ASCII only here (see the
    /// test above for the multi-byte panic).
    #[test]
    fn url_and_document_rules_never_panic(s in "\\PC{0,80}", ascii in "[ -~]{0,40}") {
        let _ = cimd_document::check_url(&s);
        let _ = cimd_document::check_url(&format!("https://{s}"));
        let _ = cimd_document::parse(&s, s.as_bytes());
        let _ = cimd_document::is_url_client_id(&ascii);
        let _ = cimd_document::is_url_client_id(&format!("https://{ascii}"));
    }

    #[test]
    fn address_policy_never_panics(v4 in proptest::prelude::any::<u32>(), v6 in proptest::prelude::any::<u128>()) {
        let _ = address_policy::is_public(std::net::IpAddr::V4(v4.into()));
        let _ = address_policy::is_public(std::net::IpAddr::V6(v6.into()));
    }
}

// ==== 2. SSRF ==================================================================================================

#[test]
fn more_non_public_address_classes_are_refused() {
    for a in [
        "::ffff:0:7f00:1",                      // SIIT IPv4-translated loopback
        "::ffff:0:a9fe:a9fe",                   // SIIT of the metadata service
        "64:ff9b:1::a9fe:a9fe",                 // local-use NAT64
        "64:ff9b::a00:1",                       // NAT64 of 10.0.0.1
        "64:ff9b::c0a8:1",                      // NAT64 of 192.168.0.1
        "2002:a00:1::1",                        // 6to4 of 10.0.0.1
        "2002:a9fe:a9fe::1",                    // 6to4 of the metadata service
        "2001:0:4136:e378:8000:63bf:3fff:fdd2", // Teredo
        "100.100.100.200",                      // Alibaba metadata (CGNAT range)
        "192.0.0.192",                          // Oracle metadata (IETF protocol assignments)
        "fd00:ec2::254",                        // EC2 IMDS v6
        "::ffff:100.64.0.1",
        "::ffff:255.255.255.255",
        "0.0.0.0",
        "::",
        "::0.0.0.1",
        "ff02::fb",
        "fe80::a9fe:a9fe",
    ] {
        let ip: std::net::IpAddr = a.parse().unwrap();
        assert!(!address_policy::is_public(ip), "{a} judged public");
    }
}

/// Every spelling of loopback/private/unspecified — literal, mapped, translated, encoded, a name resolving inside
/// (`localhost`, `vm` from /etc/hosts), a trailing dot — is refused and nothing connects to the listener.
#[test]
fn ssrf_spellings_never_reach_a_loopback_listener() {
    let raw = RawHost::start(|r| json_answer(&mirrored_document(r)));
    let p = offline_proxy(&[RAW_CA_PEM], |c| {
        c.cimd.allow_private_networks_for_testing = false
    });
    let v = CodeVerifier::generate(64).unwrap();
    let port = raw.port;
    let ids = [
        format!("https://127.0.0.1:{port}/x.json"),
        format!("https://localhost:{port}/x.json"),
        format!("https://vm:{port}/x.json"),
        format!("https://runsc:{port}/x.json"),
        format!("https://localhost.:{port}/x.json"),
        format!("https://[::1]:{port}/x.json"),
        format!("https://[::ffff:7f00:1]:{port}/x.json"),
        format!("https://[::ffff:0:7f00:1]:{port}/x.json"),
        format!("https://[::7f00:1]:{port}/x.json"),
        format!("https://[64:ff9b::7f00:1]:{port}/x.json"),
        format!("https://[2002:7f00:1::]:{port}/x.json"),
        format!("https://0.0.0.0:{port}/x.json"),
        format!("https://[::]:{port}/x.json"),
        // Encodings the WHATWG parser turns into loopback: not canonical, refused before any lookup.
        format!("https://127.1:{port}/x.json"),
        format!("https://0x7f.0.0.1:{port}/x.json"),
        format!("https://0177.0.0.1:{port}/x.json"),
        format!("https://2130706433:{port}/x.json"),
        format!("https://0x7f000001:{port}/x.json"),
        format!("https://0:{port}/x.json"),
        format!("https://[0:0:0:0:0:ffff:127.0.0.1]:{port}/x.json"),
        format!("https://[::ffff:127.0.0.1]:{port}/x.json"),
        format!("https://LOCALHOST:{port}/x.json"),
        format!("https://%6c%6f%63%61%6c%68%6f%73%74:{port}/x.json"),
        format!(
            "https://\u{24db}\u{24de}\u{24d2}\u{24d0}\u{24db}\u{24d7}\u{24de}\u{24e2}\u{24e3}:{port}/x.json"
        ),
        format!("https://127.0.0.1.:{port}/x.json"),
        format!("https://foo@127.0.0.1:{port}/x.json"),
        format!("https://127.0.0.1:{port}\\x.json"),
        format!("https://127.0.0.1:{port}/x.json#@evil.example"),
    ];
    for id in &ids {
        let e = p.authorize(&params(id, &v)).unwrap_err();
        assert!(
            matches!(e.code.as_str(), "invalid_client" | "temporarily_unavailable"),
            "{id}: {e:?}"
        );
        assert!(e.status == 400 || e.status == 503, "{id}: {e:?}");
    }
    assert_eq!(
        raw.connections(),
        0,
        "something connected to the loopback listener"
    );
    // The same listener is reachable with the test switch on (so the zero above means something).
    let p = offline_proxy(&[RAW_CA_PEM], |_| {});
    assert_eq!(p.authorize(&params(&raw.url("x.json"), &v)).unwrap().status, 200);
    assert_eq!(raw.connections(), 1);
}

/// `HTTPS_PROXY`, `ALL_PROXY`, `HTTP_PROXY` (and lower case) are ignored by the document fetch: run in a child
/// process (the variables are process-wide), with a control request from a default reqwest client proving the
/// variables are live there.
#[test]
fn proxy_environment_variables_are_ignored() {
    let proxy = Tarpit::start();
    let proxy_url = format!("http://127.0.0.1:{}", proxy.port);
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["proxy_env_child", "--exact", "--nocapture", "--test-threads=1"])
        .env("CIMD_ATTACKS_PROXY_CHILD", "1")
        .env("HTTPS_PROXY", &proxy_url)
        .env("https_proxy", &proxy_url)
        .env("HTTP_PROXY", &proxy_url)
        .env("http_proxy", &proxy_url)
        .env("ALL_PROXY", &proxy_url)
        .env("all_proxy", &proxy_url)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.contains("1 passed"), "{text}");
    std::thread::sleep(Duration::from_millis(200));
    let lines = proxy.first_lines.lock().unwrap().clone();
    // Exactly one CONNECT: the control client's. The proxy's fetch went straight to the host.
    assert_eq!(proxy.accepted.load(Ordering::SeqCst), 1, "{lines:?}");
    assert!(lines.iter().all(|l| l.starts_with("CONNECT")), "{lines:?}");
}

/// Helper of [`proxy_environment_variables_are_ignored`]; does nothing unless run by it.
#[test]
fn proxy_env_child() {
    if std::env::var_os("CIMD_ATTACKS_PROXY_CHILD").is_none() {
        return;
    }
    let host = DocHost::start();
    let p = offline_proxy(&[host.ca_pem()], |_| {});
    let v = CodeVerifier::generate(64).unwrap();
    let r = p.authorize(&params(&host.url("good.json"), &v));
    assert_eq!(r.map(|r| r.status).map_err(|e| desc(&e)), Ok(200));
    assert_eq!(host.fetches("good.json"), 1);
    // Control: a default client does use the proxy variables (its CONNECT goes to the tarpit and times out).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let control = rt.block_on(async {
        reqwest::Client::builder()
            .timeout(Duration::from_millis(500))
            .add_root_certificate(reqwest::Certificate::from_pem(host.ca_pem().as_bytes()).unwrap())
            .build()
            .unwrap()
            .get(host.url("good.json"))
            .send()
            .await
    });
    assert!(
        control.is_err(),
        "the control request should have gone to the tarpit proxy"
    );
    assert_eq!(host.fetches("good.json"), 1);
}

/// 3xx of every kind is refused and never followed (only one request reaches the host).
#[test]
fn redirects_are_never_followed() {
    let raw = RawHost::start(|r| {
        if r.path == "/good.json" {
            return json_answer(&mirrored_document(r));
        }
        let status = match r.path.as_str() {
            "/r301.json" => "301 Moved Permanently",
            "/r302.json" => "302 Found",
            "/r303.json" => "303 See Other",
            "/r307.json" => "307 Temporary Redirect",
            _ => "308 Permanent Redirect",
        };
        let location = format!("{}/good.json", r.base);
        vec![Step::Send(answer(
            status,
            &[
                ("Location", location.as_str()),
                ("Content-Type", "application/json"),
            ],
            b"{}",
        ))]
    });
    let p = offline_proxy(&[RAW_CA_PEM], |_| {});
    let v = CodeVerifier::generate(64).unwrap();
    for name in ["r301.json", "r302.json", "r303.json", "r307.json", "r308.json"] {
        let e = p.authorize(&params(&raw.url(name), &v)).unwrap_err();
        assert!(desc(&e).contains("redirect"), "{name}: {e:?}");
    }
    let reqs = raw.requests();
    assert_eq!(reqs.len(), 5, "{reqs:?}");
    assert!(
        reqs.iter().all(|h| !h.contains("/good.json")),
        "a redirect was followed"
    );
}

// ==== 3. hostile answers: headers, bodies, timing ===============================================================

fn gzip_stored(data: &[u8]) -> Vec<u8> {
    fn crc32(d: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in d {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0xEDB8_8320
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    assert!(data.len() < 65535);
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 0x01];
    let len = data.len() as u16;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// No compression is asked for or undone (a gzip bomb cannot expand), Content-Length lies and framing tricks
/// end in a refusal, and none of it is cached.
#[test]
fn body_framing_tricks_are_refused() {
    let raw = RawHost::start(|r| {
        let doc = mirrored_document(r).to_string().into_bytes();
        let ct = "Content-Type: application/json\r\n";
        let raw_answer = |head: String, body: &[u8]| {
            let mut b = head.into_bytes();
            b.extend_from_slice(body);
            vec![Step::Send(b)]
        };
        match r.path.as_str() {
            "/gzip.json" => vec![Step::Send(answer(
                "200 OK",
                &[("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
                &gzip_stored(&doc),
            ))],
            // Content-Length shorter than the document: the body is cut (invalid JSON).
            "/cl-short.json" => raw_answer(format!("HTTP/1.1 200 OK\r\n{ct}Content-Length: 10\r\n\r\n"), &doc),
            // Content-Length longer than what is sent, then the connection closes.
            "/cl-long.json" => raw_answer(
                format!("HTTP/1.1 200 OK\r\n{ct}Content-Length: {}\r\n\r\n", doc.len() + 500),
                &doc,
            ),
            "/cl-huge.json" => raw_answer(
                format!("HTTP/1.1 200 OK\r\n{ct}Content-Length: 10000000000\r\n\r\n"),
                &doc,
            ),
            "/cl-two.json" => raw_answer(
                format!("HTTP/1.1 200 OK\r\n{ct}Content-Length: {}\r\nContent-Length: 5\r\n\r\n", doc.len()),
                &doc,
            ),
            "/cl-negative.json" => raw_answer(format!("HTTP/1.1 200 OK\r\n{ct}Content-Length: -1\r\n\r\n"), &doc),
            // A chunk size of 2^64-1: streamed and cut at the cap, never allocated.
            "/chunk-huge.json" => {
                let mut steps = raw_answer(
                    format!("HTTP/1.1 200 OK\r\n{ct}Transfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n"),
                    b"",
                );
                for _ in 0..40 {
                    steps.push(Step::Send(vec![b' '; 4096]));
                }
                steps
            }
            // Close-delimited (HTTP/1.0, no length) and over the cap.
            "/close-delimited.json" => {
                let mut steps = raw_answer(format!("HTTP/1.0 200 OK\r\n{ct}\r\n"), b"");
                for _ in 0..40 {
                    steps.push(Step::Send(vec![b' '; 4096]));
                }
                steps
            }
            // 1xx before the real answer, which is a 206.
            "/partial.json" => raw_answer(
                format!("HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 206 Partial Content\r\n{ct}Content-Length: {}\r\n\r\n", doc.len()),
                &doc,
            ),
            // A BOM before the JSON.
            "/bom.json" => {
                let mut b = "\u{feff}".as_bytes().to_vec();
                b.extend_from_slice(&doc);
                vec![Step::Send(answer("200 OK", &[("Content-Type", "application/json")], &b))]
            }
            "/content-type-list.json" => vec![Step::Send(answer(
                "200 OK",
                &[("Content-Type", "text/html, application/json")],
                &doc,
            ))],
            "/content-type-second.json" => vec![Step::Send(answer(
                "200 OK",
                &[("Content-Type", "text/html"), ("Content-Type", "application/json")],
                &doc,
            ))],
            _ => json_answer(&mirrored_document(r)),
        }
    });
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let s = store.clone();
    let p = offline_proxy(&[RAW_CA_PEM], |c| {
        c.token_storage = Some(s);
        c.encryption_disabled = true;
        c.cimd.max_document_bytes = 64 * 1024;
    });
    let v = CodeVerifier::generate(64).unwrap();
    for name in [
        "gzip.json",
        "cl-short.json",
        "cl-long.json",
        "cl-huge.json",
        "cl-two.json",
        "cl-negative.json",
        "chunk-huge.json",
        "close-delimited.json",
        "partial.json",
        "bom.json",
        "content-type-list.json",
        "content-type-second.json",
    ] {
        let started = Instant::now();
        let r = p.authorize(&params(&raw.url(name), &v));
        assert!(r.is_err(), "{name} accepted: {r:?}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{name} took {:?}",
            started.elapsed()
        );
        println!("{name}: {}", desc(&r.unwrap_err()));
    }
    for h in raw.requests() {
        assert!(
            !h.to_ascii_lowercase().contains("accept-encoding"),
            "compression asked for: {h}"
        );
    }
    let keys = fastmcp_auth::blocking::Store::from_async(store).keys().unwrap();
    assert!(keys.iter().all(|k| !k.starts_with("cimd:")), "{keys:?}");
}

/// Header floods: more headers than the client takes, one enormous header, an endless header section, headers
/// dripped slowly, a TLS handshake that never comes. Each ends in a refusal within the fetch timeout.
#[test]
fn header_floods_and_slow_hosts_end_in_time() {
    let raw = RawHost::start(|r| {
        let head = |extra: String| format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra}");
        match r.path.as_str() {
            "/many-cache-control.json" => {
                let extra: String = (0..500)
                    .map(|i| format!("Cache-Control: max-age={i}\r\n"))
                    .collect();
                vec![Step::Send(
                    format!("{}Content-Length: 2\r\n\r\n{{}}", head(extra)).into_bytes(),
                )]
            }
            "/one-huge-header.json" => {
                let extra = format!("X-Big: {}\r\n", "a".repeat(2 << 20));
                vec![Step::Send(
                    format!("{}Content-Length: 2\r\n\r\n{{}}", head(extra)).into_bytes(),
                )]
            }
            "/endless-headers.json" => {
                let mut steps = vec![Step::Send(head(String::new()).into_bytes())];
                for i in 0..20_000 {
                    steps.push(Step::Send(format!("X-{i}: {}\r\n", "b".repeat(200)).into_bytes()));
                }
                steps
            }
            "/slow-headers.json" => {
                let mut steps = vec![Step::Send(b"HTTP/1.1 200 OK\r\n".to_vec())];
                for i in 0..100 {
                    steps.push(Step::Sleep(Duration::from_millis(100)));
                    steps.push(Step::Send(format!("X-{i}: y\r\n").into_bytes()));
                }
                steps
            }
            "/slow-status.json" => vec![Step::Sleep(Duration::from_secs(10))],
            _ => json_answer(&mirrored_document(r)),
        }
    });
    let tarpit = Tarpit::start();
    let p = offline_proxy(&[RAW_CA_PEM], |_| {});
    let v = CodeVerifier::generate(64).unwrap();
    let mut ids: Vec<String> = [
        "many-cache-control.json",
        "one-huge-header.json",
        "endless-headers.json",
        "slow-headers.json",
        "slow-status.json",
    ]
    .iter()
    .map(|n| raw.url(n))
    .collect();
    ids.push(format!("https://127.0.0.1:{}/no-tls.json", tarpit.port));
    for id in &ids {
        let started = Instant::now();
        let r = p.authorize(&params(id, &v));
        let took = started.elapsed();
        assert!(r.is_err(), "{id} accepted");
        assert!(took < Duration::from_millis(2500), "{id} took {took:?}");
        println!("{id}: {} ({took:?})", desc(&r.unwrap_err()));
    }
}

// ==== 4. cache confusion =======================================================================================

/// A document serves only the exact URL it names: another host spelling, a sibling path or a concurrently
/// fetched URL never gets it; the store holds one entry per URL.
#[test]
fn a_document_is_never_used_for_another_url() {
    let raw = RawHost::start(|r| {
        let name = r
            .path
            .trim_start_matches('/')
            .trim_end_matches(".json")
            .to_owned();
        let mut d = mirrored_document(r);
        d["redirect_uris"] = json!([format!("http://127.0.0.1/{name}")]);
        match r.path.as_str() {
            // Claims to be /a.json.
            "/claims-a.json" => d["client_id"] = json!(format!("{}/a.json", r.base)),
            "/slow-b.json" => {
                let mut steps = vec![Step::Sleep(Duration::from_millis(300))];
                steps.extend(json_answer(&d));
                return steps;
            }
            _ => {}
        }
        json_answer(&d)
    });
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let s = store.clone();
    let p = Arc::new(offline_proxy(&[RAW_CA_PEM], |c| {
        c.token_storage = Some(s);
        c.encryption_disabled = true;
    }));
    let at = |id: &str, redirect: &str| {
        let v = CodeVerifier::generate(64).unwrap();
        let mut a = params(id, &v);
        a.redirect_uri = Some(redirect.into());
        p.authorize(&a)
    };
    // Concurrently: A and a slow B; each only ever answers with its own redirect URIs.
    let (pa, pb) = (p.clone(), p.clone());
    let (ua, ub) = (raw.url("a.json"), raw.url("slow-b.json"));
    let ta = std::thread::spawn(move || {
        let v = CodeVerifier::generate(64).unwrap();
        let mut a = params(&ua, &v);
        a.redirect_uri = Some("http://127.0.0.1:5/slow-b".into());
        pa.authorize(&a).map(|r| r.status)
    });
    let tb = std::thread::spawn(move || {
        let v = CodeVerifier::generate(64).unwrap();
        let mut a = params(&ub, &v);
        a.redirect_uri = Some("http://127.0.0.1:5/a".into());
        pb.authorize(&a).map(|r| r.status)
    });
    assert!(ta.join().unwrap().is_err(), "A took B's redirect URI");
    assert!(tb.join().unwrap().is_err(), "B took A's redirect URI");
    assert_eq!(
        at(&raw.url("a.json"), "http://127.0.0.1:5/a").unwrap().status,
        200
    );
    assert_eq!(
        at(&raw.url("slow-b.json"), "http://127.0.0.1:5/slow-b")
            .unwrap()
            .status,
        200
    );
    // A document claiming another URL's client_id.
    let e = at(&raw.url("claims-a.json"), "http://127.0.0.1:5/a").unwrap_err();
    assert!(desc(&e).contains("does not match"), "{e:?}");
    // The same document under another spelling of the host: the document names localhost, so it is refused.
    let e = at(
        &format!("https://127.0.0.1:{}/a.json", raw.port),
        "http://127.0.0.1:5/a",
    )
    .unwrap_err();
    assert!(desc(&e).contains("does not match"), "{e:?}");
    // Case and encoding variants of the path are other URLs; their documents are their own.
    assert!(at(&raw.url("A.json"), "http://127.0.0.1:5/a").is_err());
    assert!(at(&raw.url("%61.json"), "http://127.0.0.1:5/a").is_err());
    let keys: Vec<String> = fastmcp_auth::blocking::Store::from_async(store.clone())
        .keys()
        .unwrap()
        .into_iter()
        .filter(|k| k.starts_with("cimd:"))
        .collect();
    let bs = fastmcp_auth::blocking::Store::from_async(store);
    for k in &keys {
        let v = bs.get(k).unwrap().unwrap();
        let id = v["client_id"].as_str().unwrap();
        let name = id.rsplit('/').next().unwrap().trim_end_matches(".json");
        assert_eq!(
            v["redirect_uris"],
            json!([format!("http://127.0.0.1/{name}")]),
            "{k}: {v}"
        );
    }
    // a, slow-b, A (its own, mirrored), %61 (its own, mirrored).
    assert_eq!(keys.len(), 4, "{keys:?}");
}

/// Cache-Control cannot stretch freshness past `max_cache_ttl` nor shrink it below `min_cache_ttl`.
#[test]
fn cache_control_is_bounded() {
    let host = DocHost::start();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let s = store.clone();
    let p = offline_proxy(&[host.ca_pem()], |c| {
        c.token_storage = Some(s);
        c.encryption_disabled = true;
        c.cimd.min_cache_ttl = 30;
        c.cimd.max_cache_ttl = 120;
    });
    let id = host.url("dynamic.json");
    let v = CodeVerifier::generate(64).unwrap();
    let bs = fastmcp_auth::blocking::Store::from_async(store);
    let key = bs.keys().unwrap().into_iter().find(|k| k.starts_with("cimd:"));
    assert!(key.is_none());
    for (cc, want) in [
        ("max-age=31536000, immutable", 120),
        ("max-age=18446744073709551616", 30),
        ("max-age=1, max-age=100000", 120),
        ("s-maxage=100000, no-cache", 30),
    ] {
        host.set_dynamic(Some((200, good_document(&id).to_string(), Some(cc.into()))));
        // Drop the previous copy so this answer is fetched.
        for k in bs.keys().unwrap() {
            bs.delete(&k).unwrap();
        }
        p.authorize(&params(&id, &v)).unwrap();
        let k = bs
            .keys()
            .unwrap()
            .into_iter()
            .find(|k| k.starts_with("cimd:"))
            .unwrap();
        let e = bs.get(&k).unwrap().unwrap();
        let fresh = e["fresh_until"].as_u64().unwrap() - e["fetched_at"].as_u64().unwrap();
        assert_eq!(fresh, want, "{cc}");
    }
}

// ==== 5. resource exhaustion ===================================================================================

/// Spawns one authorization per URL (each a slow fetch, holding a fetch slot until the fetch timeout).
fn spawn_authorizations(p: &Arc<OAuthProxy>, urls: Vec<String>) -> Vec<std::thread::JoinHandle<()>> {
    urls.into_iter()
        .map(|id| {
            let p = p.clone();
            std::thread::spawn(move || {
                let v = CodeVerifier::generate(64).unwrap();
                let _ = p.authorize(&params(&id, &v));
            })
        })
        .collect()
}

/// Waits until `count()` reaches `n` (5 s at most), then checks it stays there a little.
fn settle_at(n: usize, count: impl Fn() -> usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while count() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(count(), n);
}

/// 64 slow URLs of one attacker host hold at most `MAX_FETCHES_PER_HOST` (4) fetch slots; other clients are
/// served meanwhile. (Many slow hosts can still fill the global 256: a rate limit in front of `/authorize` is the
/// answer to that.)
#[test]
fn slow_attacker_urls_do_not_lock_other_clients_out() {
    let host = DocHost::start();
    let tarpit = Tarpit::start();
    let p = Arc::new(offline_proxy(&[host.ca_pem()], |c| {
        c.cimd.fetch_timeout = Duration::from_secs(4);
    }));
    let urls = (0..64)
        .map(|i| format!("https://127.0.0.1:{}/slow-{i}.json", tarpit.port))
        .collect();
    let threads = spawn_authorizations(&p, urls);
    settle_at(4, || tarpit.accepted.load(Ordering::SeqCst));
    let v = CodeVerifier::generate(64).unwrap();
    let r = p.authorize(&params(&host.url("good.json"), &v));
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(r.map(|r| r.status).map_err(|e| desc(&e)), Ok(200));
}

/// With the host's fetch slots full, a client whose cached copy is stale (but live) is served from the copy.
#[test]
fn a_stale_cached_copy_stands_in_when_the_fetch_slots_are_full() {
    let host = DocHost::start();
    let p = Arc::new(offline_proxy(&[host.ca_pem()], |c| {
        c.cimd.fetch_timeout = Duration::from_secs(4);
        c.cimd.min_cache_ttl = 0;
    }));
    let id = host.url("dynamic.json");
    serve_dynamic(&host, good_document(&id).to_string());
    let v = CodeVerifier::generate(64).unwrap();
    assert_eq!(p.authorize(&params(&id, &v)).unwrap().status, 200);
    std::thread::sleep(Duration::from_millis(1100)); // stale now (fresh for 0 s)
    let drips: Vec<String> = (0..4).map(|i| format!("drip-{i}.json")).collect();
    let threads = spawn_authorizations(&p, drips.iter().map(|d| host.url(d)).collect());
    settle_at(4, || drips.iter().map(|d| host.fetches(d)).sum());
    let fetched = host.fetches("dynamic.json");
    let r = p.authorize(&params(&id, &v));
    assert_eq!(host.fetches("dynamic.json"), fetched, "no slot was free for it");
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(r.map(|r| r.status).map_err(|e| desc(&e)), Ok(200));
}

/// Anyone can put a legitimate document host into cool-down by naming a missing document on it: a 404 (the
/// host's perfectly healthy answer) locks every other document of that host out for `failure_cooldown`, and one
/// request per cool-down keeps it so (a permanent outage for first-time users of, say, vscode.dev's client).
#[test]

fn a_missing_document_named_by_anyone_does_not_lock_out_the_host() {
    let host = DocHost::start();
    let p = offline_proxy(&[host.ca_pem()], |c| {
        c.cimd.failure_cooldown = Duration::from_secs(30)
    });
    let v = CodeVerifier::generate(64).unwrap();
    // The attacker: one anonymous request naming a path that does not exist (or any non-document).
    let e = p
        .authorize(&params(&host.url("no-such-document.json"), &v))
        .unwrap_err();
    assert_eq!(e.code, "invalid_client");
    // The victim: the host's real document.
    let r = p.authorize(&params(&host.url("good.json"), &v));
    assert_eq!(r.map(|r| r.status).map_err(|e| desc(&e)), Ok(200));
}

/// The open-transaction cap is per client id; a URL client id is one id shared by every user of an app (every
/// VS Code, every Claude), so anyone who sends `max_transactions_per_client` anonymous authorizations naming it
/// evicts the logins other users have in progress.
#[test]

fn anonymous_authorizations_do_not_evict_other_users_logins_of_a_url_client() {
    let host = DocHost::start();
    let p = offline_proxy(&[host.ca_pem()], |_| {});
    let id = host.url("good.json");
    let victim_v = CodeVerifier::generate(64).unwrap();
    let page = p.authorize(&params(&id, &victim_v)).unwrap();
    let cookie = page.cookie_header();
    // 20 anonymous requests (the default cap), no cookie, no consent.
    for _ in 0..p.as_async().config().max_transactions_per_client {
        let v = CodeVerifier::generate(64).unwrap();
        assert_eq!(p.authorize(&params(&id, &v)).unwrap().status, 200);
    }
    let r = approve(&p, &page, cookie.as_deref());
    assert_eq!(r.map(|r| r.status).map_err(|e| desc(&e)), Ok(302));
}

/// Many distinct valid documents: each is one stored entry, bounded by `max_document_bytes`; nothing invalid is
/// stored. (Volume is bounded only by the store; the same holds for dynamic registration.)
#[test]
fn each_cached_document_is_bounded_by_max_document_bytes() {
    let raw = RawHost::start(|r| {
        let mut d = mirrored_document(r);
        // Fill up to ~3.9 KiB: 30 redirect URIs of 100 bytes.
        let uris: Vec<String> = (0..30).map(|i| format!("http://127.0.0.1/{i:0>90}")).collect();
        d["redirect_uris"] = json!(uris);
        json_answer(&d)
    });
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let s = store.clone();
    let p = offline_proxy(&[RAW_CA_PEM], |c| {
        c.token_storage = Some(s);
        c.encryption_disabled = true;
        c.cimd.max_document_bytes = 4096;
    });
    let v = CodeVerifier::generate(64).unwrap();
    for i in 0..20 {
        let mut a = params(&raw.url(&format!("d{i}.json")), &v);
        a.redirect_uri = Some(format!("http://127.0.0.1:9/{:0>90}", 0));
        p.authorize(&a).unwrap();
    }
    let bs = fastmcp_auth::blocking::Store::from_async(store);
    let keys: Vec<String> = bs
        .keys()
        .unwrap()
        .into_iter()
        .filter(|k| k.starts_with("cimd:"))
        .collect();
    assert_eq!(keys.len(), 20);
    for k in keys {
        assert!(bs.get(&k).unwrap().unwrap().to_string().len() < 4096 + 512);
    }
}

// ==== 6. hostile documents =====================================================================================

/// Duplicate members: parsers disagree on which one wins (serde_json keeps the last, others the first), so a
/// document with any is refused, whichever order the members come in.
#[test]
fn duplicate_members_are_refused() {
    let host = DocHost::start();
    let p = offline_proxy(&[host.ca_pem()], |c| c.cimd.min_cache_ttl = 0);
    let id = host.url("dynamic.json");
    let v = CodeVerifier::generate(64).unwrap();
    let rest = r#""redirect_uris": ["http://127.0.0.1/callback"]"#;
    for doc in [
        format!(r#"{{"client_id": "https://evil.example/x.json", "client_id": "{id}", {rest}}}"#),
        format!(r#"{{"client_id": "{id}", "client_id": "https://evil.example/x.json", {rest}}}"#),
        format!(
            r#"{{"client_id": "{id}", "redirect_uris": ["http://127.0.0.1/callback"], "redirect_uris": ["http://127.0.0.1/other"]}}"#
        ),
        format!(
            r#"{{"client_id": "{id}", {rest}, "token_endpoint_auth_method": "none", "token_endpoint_auth_method": "client_secret_basic"}}"#
        ),
    ] {
        serve_dynamic(&host, doc.clone());
        let e = p.authorize(&params(&id, &v)).unwrap_err();
        assert!(desc(&e).contains("duplicate member"), "{doc}: {e:?}");
    }
}

/// Redirect URIs a document may list but a browser must never be sent to: `javascript:`, `data:`, fragments,
/// userinfo, http to a non-loopback host, dot segments, another port of https. Always a plain 400, never a 302.
#[test]
fn hostile_redirect_uris_in_a_document_never_receive_a_redirect() {
    let host = DocHost::start();
    let p = offline_proxy(&[host.ca_pem()], |c| c.cimd.min_cache_ttl = 0);
    let id = host.url("dynamic.json");
    let v = CodeVerifier::generate(64).unwrap();
    let cases: &[(&[&str], Option<&str>)] = &[
        (&["javascript:alert(document.domain)//"], None),
        (
            &["javascript:alert(document.domain)//"],
            Some("javascript:alert(document.domain)//"),
        ),
        (&["data:text/html,<script>alert(1)</script>"], None),
        (&["vbscript:msgbox"], None),
        (&["http://127.0.0.1/callback#frag"], None),
        (
            &["http://127.0.0.1/callback#frag"],
            Some("http://127.0.0.1:41234/callback#frag"),
        ),
        (&["http://user:pw@127.0.0.1/callback"], None),
        (
            &["http://evil@127.0.0.1/callback"],
            Some("http://evil@127.0.0.1:41234/callback"),
        ),
        (&["http://attacker.example/callback"], None),
        (&["http://127.0.0.1.attacker.example/callback"], None),
        (
            &["http://127.0.0.1/callback"],
            Some("http://127.0.0.1:41234/callback/../../evil"),
        ),
        (
            &["http://127.0.0.1/callback"],
            Some("http://127.0.0.1:41234/callback?x=1"),
        ),
        (
            &["http://127.0.0.1/callback"],
            Some("http://127.0.0.1:41234/callback/"),
        ),
        (
            &["http://127.0.0.1/callback"],
            Some("http://127.0.0.2:41234/callback"),
        ),
        (
            &["http://127.0.0.1/callback"],
            Some("http://localhost:41234/callback"),
        ),
        (
            &["https://127.0.0.1/callback"],
            Some("https://127.0.0.1:8443/callback"),
        ),
        // (`http://127.0.0.1/%2e%2e/callback` is accepted: parsed, matched and delivered as `/callback` on the same
        // loopback host, consistently, so nothing is gained.)
        (&["http://127.0.0.1//evil.example/callback"], None),
        (&["http://127.0.0.1\\@evil.example/callback"], None),
    ];
    for (uris, requested) in cases {
        serve_dynamic(&host, json!({"client_id": id, "redirect_uris": uris}).to_string());
        let mut a = params(&id, &v);
        a.redirect_uri = requested.map(str::to_owned);
        match p.authorize(&a) {
            Ok(r) => panic!("{uris:?} {requested:?}: {} {:?}", r.status, r.location()),
            Err(e) => assert_eq!(e.status, 400, "{uris:?} {requested:?}: {e:?}"),
        }
    }
}

/// HTML in `client_name` and in the client id URL (`'`, `&` stay unencoded in a canonical path) is escaped on the
/// consent page; the page says which host published the document.
#[test]
fn html_in_client_name_and_url_is_escaped_on_the_consent_page() {
    let host = DocHost::start();
    let p = offline_proxy(&[host.ca_pem(), RAW_CA_PEM], |c| c.cimd.min_cache_ttl = 0);
    let id = host.url("dynamic.json");
    let v = CodeVerifier::generate(64).unwrap();
    let name = r#"<img src=x onerror=alert(1)>"'&</h1><form action=https://evil.example>"#;
    let mut d = good_document(&id);
    d["client_name"] = json!(name);
    serve_dynamic(&host, d.to_string());
    let page = p.authorize(&params(&id, &v)).unwrap();
    let body = page.body.clone().unwrap();
    assert!(
        !body.contains("<img") && !body.contains("evil.example>"),
        "{body}"
    );
    assert!(
        body.contains("&lt;img src=x onerror=alert(1)&gt;&quot;&#x27;&amp;&lt;/h1&gt;"),
        "{body}"
    );
    assert!(body.contains("published by <strong>localhost</strong>"), "{body}");

    let raw = RawHost::start(|r| json_answer(&mirrored_document(r)));
    let odd = raw.url("it's&<b>x</b>.json");
    // `<`, `>` are percent-encoded by the parser: not canonical.
    assert!(p.authorize(&params(&odd, &v)).is_err());
    let odd = raw.url("it's&co.json");
    assert!(cimd_document::check_url(&odd).is_ok());
    let page = p.authorize(&params(&odd, &v)).unwrap();
    let body = page.body.clone().unwrap();
    assert!(body.contains("it&#x27;s&amp;co.json"), "{body}");
    assert!(!body.contains("it's&co"), "{body}");
    let csp = page
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-security-policy"))
        .map(|(_, v)| v.clone())
        .unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
}

/// Names that look like other names: bidi marks and invisible characters the rule does not list. `U+061C`
/// (ARABIC LETTER MARK) is a bidi mark like the refused U+200E/U+200F; tag characters, Hangul fillers and
/// interlinear annotation marks are invisible like the refused U+200B.
#[test]

fn client_names_with_other_invisible_or_bidi_characters_are_refused() {
    let host = DocHost::start();
    let p = offline_proxy(&[host.ca_pem()], |c| c.cimd.min_cache_ttl = 0);
    let id = host.url("dynamic.json");
    let v = CodeVerifier::generate(64).unwrap();
    let mut accepted = Vec::new();
    for name in [
        "Claude\u{061C}",
        "Claude\u{E0041}\u{E0042}",
        "Claude\u{3164}",
        "\u{115F}Claude",
        "Claude\u{FFF9}x\u{FFFB}",
        "Claude\u{180E}",
    ] {
        let mut d = good_document(&id);
        d["client_name"] = json!(name);
        serve_dynamic(&host, d.to_string());
        if p.authorize(&params(&id, &v)).is_ok() {
            accepted.push(name.escape_unicode().to_string());
        }
    }
    assert!(accepted.is_empty(), "accepted: {accepted:?}");
}

/// A document's `scope` limits what its client may ask for.
#[test]
fn a_documents_scope_limits_the_request() {
    let host = DocHost::start();
    let p = offline_proxy(&[host.ca_pem()], |c| c.cimd.min_cache_ttl = 0);
    let id = host.url("dynamic.json");
    let v = CodeVerifier::generate(64).unwrap();
    let mut d = good_document(&id);
    d["scope"] = json!("read");
    serve_dynamic(&host, d.to_string());
    let mut a = params(&id, &v);
    a.scope = Some("read admin".into());
    let r = p.authorize(&a).unwrap();
    assert_eq!(
        query_param(r.location().unwrap(), "error").as_deref(),
        Some("invalid_scope")
    );
    a.scope = Some("read".into());
    assert_eq!(p.authorize(&a).unwrap().status, 200);
}

// ==== 7. grant misuse and PKCE =================================================================================

/// A code, refresh token or access token of URL client A is refused to URL client B and to a registered public
/// client; B's revocation of A's refresh token revokes nothing. PKCE is checked at the token endpoint.
#[test]
fn a_url_client_cannot_use_another_clients_grant_or_skip_pkce() {
    let idp = MockIdp::start();
    let host = DocHost::start();
    let p = idp_proxy(&idp, &[host.ca_pem()], |_| {});
    let a = host.url("good.json");
    let b = host.url("good-minimal.json");
    let registered = p
        .register_client(&json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}))
        .unwrap()["client_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // PKCE: no verifier, a wrong verifier.
    let va = CodeVerifier::generate(64).unwrap();
    let code = login_code(&p, &idp, &a, &va);
    assert_eq!(redeem(&p, &a, &code, None).unwrap_err().code, "invalid_request");
    let code = login_code(&p, &idp, &a, &va);
    let wrong = CodeVerifier::generate(64).unwrap();
    assert_eq!(
        redeem(&p, &a, &code, Some(&wrong)).unwrap_err().code,
        "invalid_grant"
    );

    // Another client redeeming A's code (with A's verifier, as a thief who has both would).
    for other in [&b, &registered] {
        let code = login_code(&p, &idp, &a, &va);
        let e = redeem(&p, other, &code, Some(&va)).unwrap_err();
        assert_eq!(e.code, "invalid_grant", "{other}: {e:?}");
    }
    // A non-canonical spelling of A is not A (refused before the code is looked at).
    let code = login_code(&p, &idp, &a, &va);
    let e = redeem(&p, &a.replace("localhost", "LOCALHOST"), &code, Some(&va)).unwrap_err();
    assert_eq!(e.code, "invalid_client");
    assert!(
        redeem(&p, &a, &code, Some(&va)).is_ok(),
        "the code survived the refused spelling"
    );

    let code = login_code(&p, &idp, &a, &va);
    let t = redeem(&p, &a, &code, Some(&va)).unwrap();
    let rt = t.refresh_token.clone().unwrap();
    for other in [&b, &registered] {
        let e = p
            .token(&TokenRequest {
                grant_type: Some("refresh_token".into()),
                refresh_token: Some(rt.clone()),
                client_id: Some(other.clone()),
                ..Default::default()
            })
            .unwrap_err();
        assert_eq!(e.code, "invalid_grant", "{other}: {e:?}");
        p.revoke_request(&RevocationRequest {
            token: Some(rt.clone()),
            client_id: Some(other.clone()),
            ..Default::default()
        })
        .unwrap();
    }
    assert!(
        p.load_upstream_tokens(&t.access_token).unwrap().is_some(),
        "B revoked A's grant"
    );
    // A itself still refreshes (the refresh token survived B's attempts).
    let t2 = p
        .token(&TokenRequest {
            grant_type: Some("refresh_token".into()),
            refresh_token: Some(rt),
            client_id: Some(a.clone()),
            ..Default::default()
        })
        .unwrap();
    assert!(p.load_upstream_tokens(&t2.access_token).unwrap().is_some());
}

/// PKCE for URL clients at authorize, whatever the configuration: no challenge, `plain`, lower-case `s256`, a
/// malformed challenge.
#[test]
fn pkce_s256_is_required_of_url_clients_at_authorize() {
    let host = DocHost::start();
    let p = offline_proxy(&[host.ca_pem()], |c| {
        c.require_pkce = false;
        c.allow_plain_pkce = true;
    });
    let id = host.url("good.json");
    let v = CodeVerifier::generate(64).unwrap();
    let cases: [(Option<String>, Option<&str>); 5] = [
        (None, None),
        (None, Some("S256")),
        (Some(v.as_str().into()), Some("plain")),
        (Some(v.challenge(ChallengeMethod::S256)), Some("s256")),
        (Some("short".into()), Some("S256")),
    ];
    for (challenge, method) in cases {
        let mut a = params(&id, &v);
        a.code_challenge = challenge.clone();
        a.code_challenge_method = method.map(str::to_owned);
        let r = p.authorize(&a).unwrap();
        assert_eq!(
            query_param(r.location().unwrap(), "error").as_deref(),
            Some("invalid_request"),
            "{challenge:?} {method:?}"
        );
    }
}

/// A document withdrawn (404) or turned invalid stops its client at the token endpoint.
#[test]
fn a_withdrawn_document_stops_refresh() {
    let idp = MockIdp::start();
    let host = DocHost::start();
    let p = idp_proxy(&idp, &[host.ca_pem()], |c| c.cimd.min_cache_ttl = 0);
    let id = host.url("dynamic.json");
    serve_dynamic(&host, good_document(&id).to_string());
    let v = CodeVerifier::generate(64).unwrap();
    let code = login_code(&p, &idp, &id, &v);
    let t = redeem(&p, &id, &code, Some(&v)).unwrap();
    host.set_dynamic(Some((404, "{}".into(), None)));
    let e = p
        .token(&TokenRequest {
            grant_type: Some("refresh_token".into()),
            refresh_token: t.refresh_token.clone(),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(e.code, "invalid_client", "{e:?}");
}

/// A leader whose request is dropped mid-fetch (a client that hangs up) does not leave the requests waiting on it
/// without an answer: one of them leads the next fetch.
#[test]
fn a_cancelled_leader_does_not_strand_its_followers() {
    let raw = RawHost::start(|r| {
        let mut steps = vec![Step::Sleep(Duration::from_millis(400))];
        steps.extend(json_answer(&mirrored_document(r)));
        steps
    });
    let p = offline_proxy(&[RAW_CA_PEM], |c| c.cimd.fetch_timeout = Duration::from_secs(3));
    let inner = p.as_async().clone();
    let id = raw.url("slow.json");
    let (leader_cancelled, follower) = fastmcp_auth::runtime::block_on(async move {
        let v = CodeVerifier::generate(64).unwrap();
        let a = params(&id, &v);
        let leader = tokio::time::timeout(Duration::from_millis(100), inner.authorize(&a));
        let follower = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            inner.authorize(&a).await
        };
        let (l, f) = tokio::join!(leader, follower);
        (l.is_err(), f.map(|r| r.status).map_err(|e| desc(&e)))
    })
    .unwrap();
    assert!(leader_cancelled);
    assert_eq!(follower, Ok(200));
    assert_eq!(
        raw.requests().len(),
        2,
        "the follower fetched again after the leader was dropped"
    );
}

/// The fetch carries no credentials: no cookie (even one the host set), no Authorization, nothing from the
/// client's request; it asks for JSON and names itself.
#[test]
fn the_fetch_carries_no_cookies_or_credentials() {
    let raw = RawHost::start(|r| {
        vec![Step::Send(answer(
            "200 OK",
            &[
                ("Content-Type", "application/json"),
                ("Set-Cookie", "sid=secret; Path=/"),
                ("Cache-Control", "max-age=0"),
            ],
            mirrored_document(r).to_string().as_bytes(),
        ))]
    });
    let p = offline_proxy(&[RAW_CA_PEM], |c| c.cimd.min_cache_ttl = 0);
    let v = CodeVerifier::generate(64).unwrap();
    let mut a = params(&raw.url("cookie.json"), &v);
    a.cookie = Some("__Host-session=victim".into());
    for _ in 0..2 {
        assert_eq!(p.authorize(&a).unwrap().status, 200);
    }
    let reqs = raw.requests();
    assert_eq!(reqs.len(), 2);
    for h in reqs {
        let l = h.to_ascii_lowercase();
        assert!(
            !l.contains("\r\ncookie:") && !l.contains("authorization:") && !l.contains("victim"),
            "{h}"
        );
        assert!(
            l.contains("accept: application/json") && l.contains("user-agent: fastmcp-auth/"),
            "{h}"
        );
    }
}
