//! Several proxy replicas in separate processes sharing one real redis-server: a flow started on one finishes
//! on the other; concurrent refreshes across both rotate exactly once; Redis down → server_error, nothing lost.
//! The test binary re-runs itself as the second replica (`child_replica`).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use fastmcp_auth::blocking::OAuthProxy;
use fastmcp_auth::proxy::{AuthorizeParams, CallbackParams, ConsentParams, OAuthProxyConfig, TokenRequest};
use fastmcp_auth::{ChallengeMethod, CodeVerifier, RedisStore, RedisStoreOptions};
use fastmcp_auth_mock_idp::redis_server::RedisServer;
use fastmcp_auth_mock_idp::{browser_login, MockIdp};
use serde_json::{json, Value};

const BASE: &str = "http://127.0.0.1:8000";
const REDIRECT: &str = "http://127.0.0.1:33418/callback";

fn replica(redis_url: &str, idp_base: &str, grace_ms: u64) -> OAuthProxy {
    let mut o = RedisStoreOptions::new(redis_url);
    o.response_timeout = Duration::from_millis(500);
    o.connection_timeout = Duration::from_millis(300);
    o.reconnect_retries = 1;
    let store = RedisStore::open_blocking(o).unwrap();
    let mut c = OAuthProxyConfig::new(
        BASE,
        format!("{idp_base}/authorize"),
        format!("{idp_base}/token"),
        "upstream-client",
        "upstream secret+/=",
    );
    c.token_storage = Some(Arc::new(store));
    c.jwt_signing_key = Some("shared-jwt-key".into());
    c.encryption_key = Some("shared-encryption-key".into());
    c.refresh_grace_window = Duration::from_millis(grace_ms);
    OAuthProxy::new(c).unwrap()
}

fn refresh_req(client_id: &str, secret: &str, rt: &str) -> TokenRequest {
    TokenRequest {
        grant_type: Some("refresh_token".into()),
        refresh_token: Some(rt.into()),
        client_id: Some(client_id.into()),
        client_secret: Some(secret.into()),
        ..Default::default()
    }
}

/// The second replica: reads one JSON command per line on stdin, answers one JSON line on stdout.
#[test]
fn child_replica() {
    let Ok(args) = std::env::var("REPLICA_ARGS") else {
        return;
    };
    let a: Value = serde_json::from_str(&args).unwrap();
    let p = replica(
        a["redis"].as_str().unwrap(),
        a["idp"].as_str().unwrap(),
        a["grace_ms"].as_u64().unwrap(),
    );
    println!("READY");
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        if line.trim().is_empty() {
            continue;
        }
        let cmd: Value = serde_json::from_str(&line).unwrap();
        let out = match cmd["op"].as_str().unwrap() {
            "callback_and_token" => {
                let back = p
                    .handle_callback(
                        &CallbackParams::from_query(cmd["query"].as_str().unwrap())
                            .unwrap()
                            .with_cookie(cmd["cookie"].as_str()),
                    )
                    .unwrap();
                let loc = back.location().unwrap();
                let code = url::Url::parse(loc)
                    .unwrap()
                    .query_pairs()
                    .find(|(k, _)| k == "code")
                    .unwrap()
                    .1
                    .into_owned();
                let t = p
                    .token(&TokenRequest {
                        grant_type: Some("authorization_code".into()),
                        code: Some(code),
                        code_verifier: cmd["verifier"].as_str().map(String::from),
                        client_id: cmd["client_id"].as_str().map(String::from),
                        client_secret: cmd["secret"].as_str().map(String::from),
                        redirect_uri: Some(REDIRECT.into()),
                        ..Default::default()
                    })
                    .unwrap();
                t.to_json()
            }
            "refresh_race" => {
                let go = std::path::PathBuf::from(cmd["go"].as_str().unwrap());
                let req = refresh_req(
                    cmd["client_id"].as_str().unwrap(),
                    cmd["secret"].as_str().unwrap(),
                    cmd["rt"].as_str().unwrap(),
                );
                let n = cmd["threads"].as_u64().unwrap() as usize;
                let ok: usize = std::thread::scope(|s| {
                    let hs: Vec<_> = (0..n)
                        .map(|_| {
                            s.spawn(|| {
                                while !go.exists() {
                                    std::thread::yield_now();
                                }
                                p.token(&req).is_ok() as usize
                            })
                        })
                        .collect();
                    hs.into_iter().map(|h| h.join().unwrap()).sum()
                });
                json!({"ok": ok})
            }
            other => panic!("unknown op {other}"),
        };
        println!("{out}");
    }
}

struct Child {
    proc: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Child {
    fn start(redis: &str, idp: &str, grace_ms: u64) -> Child {
        let mut proc = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_replica", "--nocapture", "--test-threads=1"])
            .env(
                "REPLICA_ARGS",
                json!({"redis": redis, "idp": idp, "grace_ms": grace_ms}).to_string(),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(proc.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains("READY") {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "replica died before READY");
        }
        Child { proc, out }
    }

    fn send(&mut self, cmd: Value) {
        writeln!(self.proc.stdin.as_mut().unwrap(), "{cmd}").unwrap();
    }

    fn recv(&mut self) -> Value {
        let mut line = String::new();
        loop {
            line.clear();
            assert!(self.out.read_line(&mut line).unwrap() > 0, "replica died");
            if let Ok(v) = serde_json::from_str::<Value>(line.trim()) {
                return v;
            }
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.proc.kill();
        let _ = self.proc.wait();
    }
}

/// Registration, authorize, consent and the upstream login in one browser; returns the client, the verifier, the
/// callback query and that browser's cookie.
fn start_flow(p: &OAuthProxy) -> (String, String, String, String, String) {
    let reg = p.register_client(&json!({"redirect_uris": [REDIRECT]})).unwrap();
    let (id, secret) = (
        reg["client_id"].as_str().unwrap().to_owned(),
        reg["client_secret"].as_str().unwrap().to_owned(),
    );
    let v = CodeVerifier::generate(64).unwrap();
    let page = p
        .authorize(&AuthorizeParams {
            client_id: Some(id.clone()),
            redirect_uri: Some(REDIRECT.into()),
            response_type: Some("code".into()),
            code_challenge: Some(v.challenge(ChallengeMethod::S256)),
            code_challenge_method: Some("S256".into()),
            ..Default::default()
        })
        .unwrap();
    let cookie = page.cookie_header().unwrap();
    let body = page.body.unwrap();
    let hidden = |name: &str| {
        body.split(&format!("name=\"{name}\" value=\""))
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_owned()
    };
    let up = p
        .handle_consent(&ConsentParams {
            transaction_id: Some(hidden("transaction_id")),
            action: Some("approve".into()),
            csrf_token: Some(hidden("csrf_token")),
            cookie: Some(cookie.clone()),
            remote_addr: None,
        })
        .unwrap();
    let cb = browser_login(up.location().unwrap()).unwrap();
    let query = url::Url::parse(&cb).unwrap().query().unwrap().to_owned();
    (id, secret, v.as_str().to_owned(), query, cookie)
}

#[test]
fn flow_crosses_replicas_and_refresh_race_rotates_once() {
    let redis = RedisServer::start();
    let idp = MockIdp::start();
    idp.configure(|s| s.delay = Duration::from_millis(30));
    let a = replica(&redis.url(), &idp.base_url(), 0);
    let mut b = Child::start(&redis.url(), &idp.base_url(), 0);

    // Authorize on A; the callback and the token exchange land on B.
    let (id, secret, verifier, query, cookie) = start_flow(&a);
    b.send(json!({"op": "callback_and_token", "query": query, "cookie": cookie, "client_id": id, "secret": secret, "verifier": verifier}));
    let tokens = b.recv();
    let access = tokens["access_token"].as_str().unwrap();
    assert!(
        a.load_upstream_tokens(access).unwrap().is_some(),
        "A sees what B issued"
    );
    assert_eq!(idp.counts().code_exchanges, 1);

    // 50 concurrent refreshes of one token, 25 on each replica: exactly one rotation.
    let rt = tokens["refresh_token"].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    b.send(
        json!({"op": "refresh_race", "go": go, "client_id": id, "secret": secret, "rt": rt, "threads": 25}),
    );
    let barrier = Arc::new(Barrier::new(25));
    let req = refresh_req(&id, &secret, rt);
    std::thread::sleep(Duration::from_millis(200));
    let ours: usize = std::thread::scope(|s| {
        let hs: Vec<_> = (0..25)
            .map(|_| {
                let (barrier, req, a, go) = (barrier.clone(), req.clone(), a.clone(), go.clone());
                s.spawn(move || {
                    if barrier.wait().is_leader() {
                        std::fs::write(&go, "").unwrap();
                    }
                    a.token(&req).is_ok() as usize
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let theirs = b.recv()["ok"].as_u64().unwrap() as usize;
    assert_eq!(ours + theirs, 1, "ours {ours}, theirs {theirs}");
    assert_eq!(idp.counts().refreshes, 1, "exactly one rotation upstream");
}

#[test]
fn redis_down_means_server_error_and_nothing_lost() {
    let mut redis = RedisServer::start();
    let idp = MockIdp::start();
    let p = replica(&redis.url(), &idp.base_url(), 30_000);
    let (id, secret, verifier, query, cookie) = start_flow(&p);
    let back = p
        .handle_callback(
            &CallbackParams::from_query(&query)
                .unwrap()
                .with_cookie(Some(&cookie)),
        )
        .unwrap();
    let code = url::Url::parse(back.location().unwrap())
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let t = p
        .token(&TokenRequest {
            grant_type: Some("authorization_code".into()),
            code: Some(code),
            code_verifier: Some(verifier),
            client_id: Some(id.clone()),
            client_secret: Some(secret.clone()),
            ..Default::default()
        })
        .unwrap();
    redis.kill();
    let e = p
        .token(&refresh_req(&id, &secret, t.refresh_token.as_deref().unwrap()))
        .unwrap_err();
    assert_eq!((e.code.as_str(), e.status), ("server_error", 503));
    let e = p.load_upstream_tokens(&t.access_token).unwrap_err();
    assert_eq!(e.code, "server_error");
    redis.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut r = p.token(&refresh_req(&id, &secret, t.refresh_token.as_deref().unwrap()));
    while r.as_ref().is_err_and(|e| e.status == 503) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        r = p.token(&refresh_req(&id, &secret, t.refresh_token.as_deref().unwrap()));
    }
    let t2 = r.expect("the refresh token survived the outage");
    assert!(p.load_upstream_tokens(&t2.access_token).unwrap().is_some());
}
