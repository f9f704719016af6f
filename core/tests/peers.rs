//! Live, both-way compatibility with the real packages: npm `fastmcp` and PyPI `fastmcp`, installed into the
//! git-ignored `.peers/` by scripts/install-peers.sh (run here when missing).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use fastmcp_auth::keys::{derive_jwt_key_with_iterations, KeyMaterial, JWT_KEY_PBKDF2_ITERATIONS};
use fastmcp_auth::pkce::{generate_challenge, ChallengeMethod, CodeVerifier};
use fastmcp_auth::store::{DiskStore, DiskStoreOptions, EncryptedStore, MemoryStore, SyncStore};
use fastmcp_auth::{derive_key, ClaimLayout, IssueOptions, JwtIssuer, TokenUse};
use serde_json::{json, Value};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn peers() -> PathBuf {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        let st = Command::new("bash")
            .arg(root().join("scripts/install-peers.sh"))
            .status()
            .expect("bash");
        assert!(
            st.success(),
            "scripts/install-peers.sh failed: the live peer checks need npm and PyPI fastmcp"
        );
    });
    root().join(".peers")
}

fn call(mut cmd: Command, ops: &Value) -> Vec<Value> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(ops.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "peer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
}

fn ts(ops: Value) -> Vec<Value> {
    let p = peers();
    let mut c = Command::new("node");
    c.arg(root().join("tests/peers/ts_peer.mjs")).arg(p.join("node"));
    call(c, &ops)
}

fn py(ops: Value) -> Vec<Value> {
    let p = peers();
    let mut c = Command::new(p.join("venv/bin/python"));
    c.arg("-W")
        .arg("ignore")
        .arg(root().join("tests/peers/py_peer.py"));
    call(c, &ops)
}

const ISS: &str = "https://mcp.example.com";
const AUD: &str = "https://mcp.example.com/mcp";
const KEY: &str = "live-signing-key-0123456789abcdef";

#[test]
fn jwt_ts_both_ways() {
    let ours = JwtIssuer::new(ISS, AUD, KEY).unwrap();
    let mut extra = serde_json::Map::new();
    extra.insert("email".into(), json!("u@example.com"));
    extra.insert("roles".into(), json!(["admin"]));
    let our_access = ours
        .issue_access_token(
            "client-αβγ",
            &["read", "write"],
            IssueOptions {
                extra_claims: Some(extra),
                ..Default::default()
            },
        )
        .unwrap();
    let our_refresh = ours
        .issue_refresh_token("client-1", &["read"], IssueOptions::default())
        .unwrap();
    let base = json!({"issuer": ISS, "audience": AUD, "key": KEY});
    let with = |extra: Value| {
        let mut v = base.clone();
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    };
    let r = ts(json!([
        with(json!({"op": "issue", "clientId": "client-1", "scopes": ["read", "write"], "claims": {"email": "e@x"}})),
        with(json!({"op": "issue", "clientId": "client-1", "scopes": [], "refresh": true})),
        with(json!({"op": "verify", "token": our_access})),
        with(json!({"op": "verify", "token": our_refresh})),
        {"op": "verify", "issuer": ISS, "audience": AUD, "key": "wrong", "token": our_access},
    ]));
    // Theirs verify in ours, with the exact claims.
    let c = ours.verify(r[0].as_str().unwrap(), TokenUse::Access).unwrap();
    assert_eq!(c["client_id"], "client-1");
    assert_eq!(c["scope"], json!(["read", "write"]));
    assert_eq!(c["email"], "e@x");
    assert!(ours.verify(r[1].as_str().unwrap(), TokenUse::Refresh).is_ok());
    // Ours verify in theirs.
    assert_eq!(r[2]["valid"], true, "{}", r[2]);
    assert_eq!(r[2]["claims"]["client_id"], "client-αβγ");
    assert_eq!(r[2]["claims"]["roles"], json!(["admin"]));
    assert_eq!(r[3]["valid"], true);
    assert_eq!(r[4]["valid"], false);
    assert_eq!(r[4]["error"], "Invalid signature");
}

#[test]
fn jwt_python_both_ways() {
    let ours = JwtIssuer::new(ISS, AUD, KEY)
        .unwrap()
        .with_layout(ClaimLayout::FastmcpPython);
    let up = json!({"email": "u@example.com", "groups": ["a", "b"], "name": "Zoë"});
    let our_access = ours
        .issue_access_token(
            "client-1",
            &["read", "write"],
            IssueOptions {
                jti: Some("jti-ours".into()),
                subject: Some("user-1".into()),
                upstream_claims: up.as_object().cloned(),
                ..Default::default()
            },
        )
        .unwrap();
    let our_refresh = ours
        .issue_refresh_token(
            "client-1",
            &["read"],
            IssueOptions {
                jti: Some("r1".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let b = |mut v: Value| {
        v.as_object_mut().unwrap().extend(
            json!({"issuer": ISS, "audience": AUD, "key": KEY})
                .as_object()
                .unwrap()
                .clone(),
        );
        v
    };
    let r = py(json!([
        b(
            json!({"op": "issue", "clientId": "client-1", "scopes": ["read", "write"], "jti": "j1", "upstreamClaims": up, "subject": "s"})
        ),
        b(
            json!({"op": "issue", "clientId": "client-1", "scopes": ["read"], "jti": "j2", "expiresIn": 600, "refresh": true})
        ),
        b(json!({"op": "verify", "token": our_access})),
        b(json!({"op": "verify", "token": our_refresh, "expected": "refresh"})),
        b(json!({"op": "verify", "token": our_refresh, "expected": "access"})),
    ]));
    let c = ours.verify(r[0].as_str().unwrap(), TokenUse::Access).unwrap();
    assert_eq!(c["jti"], "j1");
    assert_eq!(c["scope"], "read write");
    assert_eq!(c["upstream_claims"], up);
    assert_eq!(c["sub"], "s");
    let c = ours.verify(r[1].as_str().unwrap(), TokenUse::Refresh).unwrap();
    assert_eq!(c["token_use"], "refresh");
    assert!(ours.verify(r[1].as_str().unwrap(), TokenUse::Access).is_err());
    assert_eq!(r[2]["valid"], true, "{}", r[2]);
    assert_eq!(r[2]["claims"]["upstream_claims"], up);
    assert_eq!(r[3]["valid"], true, "{}", r[3]);
    assert_eq!(r[4]["valid"], false);
    // Same inputs, same second → byte-identical token.
    let now = fastmcp_auth::jwt::unix_now();
    let fixed = ours.with_fixed_time(Some(now));
    let again = fixed
        .issue_access_token(
            "client-1",
            &["read", "write"],
            IssueOptions {
                jti: Some("j1".into()),
                subject: Some("s".into()),
                upstream_claims: up.as_object().cloned(),
                ..Default::default()
            },
        )
        .unwrap();
    let theirs = r[0].as_str().unwrap();
    let their_iat = fastmcp_auth::dangerous::insecure_decode_claims(theirs).unwrap()["iat"]
        .as_u64()
        .unwrap();
    if their_iat == now {
        assert_eq!(again, theirs);
    }
}

#[test]
fn derived_keys_match() {
    let secrets = ["", "secret", "ünïcødé", "correct horse battery staple"];
    let ops: Vec<Value> = secrets
        .iter()
        .map(|s| json!({"op": "deriveKey", "secret": s, "iterations": 2000}))
        .collect();
    let r = ts(Value::Array(ops));
    for (s, theirs) in secrets.iter().zip(r) {
        assert_eq!(derive_key(s, 2000).unwrap(), theirs.as_str().unwrap());
    }
    let cases = [
        ("high_entropy_material", "x".repeat(43)),
        ("high_entropy_material", "ünïcødé".into()),
        ("low_entropy_material", "hunter2".into()),
    ];
    let ops: Vec<Value> = cases
        .iter()
        .map(|(m, v)| json!({"op": "deriveJwtKey", "mode": m, "material": v, "salt": "fastmcp-jwt-signing-key"}))
        .collect();
    let r = py(Value::Array(ops));
    for ((mode, m), theirs) in cases.iter().zip(r) {
        let material = if *mode == "high_entropy_material" {
            KeyMaterial::HighEntropy(m)
        } else {
            KeyMaterial::LowEntropy(m)
        };
        let ours =
            derive_jwt_key_with_iterations(material, "fastmcp-jwt-signing-key", JWT_KEY_PBKDF2_ITERATIONS)
                .unwrap();
        assert_eq!(ours, theirs.as_str().unwrap());
    }
}

#[test]
fn pkce_matches() {
    let verifiers: Vec<String> = (0..5)
        .map(|i| CodeVerifier::generate(43 + i * 20).unwrap().as_str().to_owned())
        .collect();
    let r = ts(Value::Array(
        verifiers
            .iter()
            .map(|v| json!({"op": "challenge", "verifier": v}))
            .collect(),
    ));
    for (v, theirs) in verifiers.iter().zip(r) {
        assert_eq!(
            generate_challenge(v, ChallengeMethod::S256),
            theirs.as_str().unwrap()
        );
    }
}

#[test]
fn ciphertexts_both_ways() {
    let values = [
        json!({"accessToken": "at", "scope": ["a"]}),
        json!("plain"),
        json!([1, {"a": null}]),
        json!("ünï"),
    ];
    let mut ops = Vec::new();
    for v in &values {
        ops.push(json!({"op": "encrypt", "key": "storage-key", "value": v}));
    }
    let mem = Arc::new(MemoryStore::new());
    let ours = EncryptedStore::new(mem.clone(), "storage-key", &[]).unwrap();
    for (i, v) in values.iter().enumerate() {
        ours.save_sync(&format!("k{i}"), v.clone(), None).unwrap();
        let stored = mem.get_sync(&format!("k{i}")).unwrap().unwrap();
        ops.push(json!({"op": "decrypt", "key": "storage-key", "stored": stored}));
    }
    ops.push(json!({"op": "decrypt", "key": "other-key", "stored": mem.get_sync("k0").unwrap().unwrap()}));
    let r = ts(Value::Array(ops));
    let n = values.len();
    for (i, v) in values.iter().enumerate() {
        // Theirs decrypt in ours.
        mem.save_sync("theirs", r[i].clone(), None).unwrap();
        assert_eq!(ours.get_sync("theirs").unwrap().as_ref(), Some(v));
        // Ours decrypt in theirs.
        assert_eq!(&r[n + i], v);
    }
    assert_eq!(r[2 * n], Value::Null, "a wrong key must not decrypt");
}

#[test]
fn disk_directories_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    // fastmcp writes; we read (keys of the shapes its OAuthProxy uses, TTLs, encryption).
    let entries = json!([
        {"key": "mapping:abc-DEF_123", "value": {"upstreamTokenKey": "u1"}, "ttl": 3600},
        {"key": "upstream_tokens:xyz", "value": {"accessToken": "t", "expiresIn": 3600}},
        {"key": "plain-key", "value": "v", "ttl": 60},
        {"key": "short:lived", "value": 1, "ttl": 0.001},
    ]);
    ts(json!([{"op": "diskWrite", "dir": d, "entries": entries}]));
    let enc_dir = dir.path().join("enc");
    ts(
        json!([{"op": "diskWrite", "dir": enc_dir, "encryptionKey": "ek", "entries": [{"key": "client:c1", "value": {"secret": "s"}}]}]),
    );
    std::thread::sleep(Duration::from_millis(20));
    let s = DiskStore::open(DiskStoreOptions {
        cleanup_interval: None,
        ..DiskStoreOptions::new(dir.path())
    })
    .unwrap();
    assert_eq!(
        s.get_sync("mapping:abc-DEF_123").unwrap(),
        Some(json!({"upstreamTokenKey": "u1"}))
    );
    assert_eq!(
        s.get_sync("upstream_tokens:xyz").unwrap(),
        Some(json!({"accessToken": "t", "expiresIn": 3600}))
    );
    assert_eq!(s.get_sync("plain-key").unwrap(), Some(json!("v")));
    assert_eq!(s.get_sync("short:lived").unwrap(), None);
    let enc = EncryptedStore::new(Arc::new(DiskStore::new(&enc_dir).unwrap()), "ek", &[]).unwrap();
    assert_eq!(enc.get_sync("client:c1").unwrap(), Some(json!({"secret": "s"})));

    // We write; fastmcp reads. Plain keys (the names both agree on), with and without `_`, and encrypted values.
    let ours_dir = dir.path().join("ours");
    let o = DiskStore::new(&ours_dir).unwrap();
    o.save_sync("plain-key", json!({"a": [1, 2]}), Some(Duration::from_secs(60)))
        .unwrap();
    o.save_sync("with_underscore", json!("u"), None).unwrap();
    o.save_sync("expired", json!("x"), Some(Duration::from_millis(1)))
        .unwrap();
    let oe = EncryptedStore::new(Arc::new(DiskStore::new(ours_dir.join("enc")).unwrap()), "ek", &[]).unwrap();
    oe.save_sync("sealed", json!({"accessToken": "at"}), None)
        .unwrap();
    std::thread::sleep(Duration::from_millis(5));
    let r = ts(json!([
        {"op": "diskRead", "dir": ours_dir, "keys": ["plain-key", "with_underscore", "expired"]},
        {"op": "diskRead", "dir": ours_dir.join("enc"), "encryptionKey": "ek", "keys": ["sealed"]},
    ]));
    assert_eq!(r[0], json!([{"a": [1, 2]}, "u", null]));
    assert_eq!(r[1], json!([{"accessToken": "at"}]));
}
