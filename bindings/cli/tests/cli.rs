//! The CLI's contract: outputs, and exit status 0 / 1 (rejected input) / 2 (usage).

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fastmcp-auth"))
        .args(args)
        .env_remove("FASTMCP_AUTH_JWT_KEY")
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap().trim_end().to_owned()
}

fn code(args: &[&str]) -> i32 {
    run(args).status.code().unwrap()
}

#[test]
fn derive_keys() {
    assert_eq!(
        ok(&["derive-key", "--secret", "secret", "--iterations", "1000"]),
        "0azCaDgbB1X8gNjWeeez+OLi4U5cuHqOwkjmubrpHOE="
    );
    assert_eq!(
        ok(&[
            "derive-jwt-key",
            "--high-entropy",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "--salt",
            "fastmcp-jwt-signing-key"
        ]),
        "bZNjJTFMnfygulop1ftTP7ZkR6Vrlcsc8jVDXc4NhGQ="
    );
    assert_eq!(code(&["derive-key", "--secret", "s", "--iterations", "0"]), 1);
    assert_eq!(code(&["derive-jwt-key", "--salt", "s"]), 2);
    assert_eq!(
        code(&[
            "derive-jwt-key",
            "--high-entropy",
            "a",
            "--low-entropy",
            "b",
            "--salt",
            "s"
        ]),
        2
    );
    assert_eq!(code(&["no-such-command"]), 2);
}

#[test]
fn jwt_issue_and_verify() {
    let common = ["--key", "k", "--issuer", "https://i", "--audience", "https://a"];
    for layout in ["ts", "py"] {
        let mut issue = vec!["jwt", "issue"];
        issue.extend(common);
        issue.extend([
            "--layout",
            layout,
            "--client-id",
            "c1",
            "--scope",
            "read",
            "--scope",
            "write",
            "--jti",
            "j1",
            "--claims",
            r#"{"email":"u@x","iss":"evil"}"#,
        ]);
        let token = ok(&issue);
        let mut verify = vec!["jwt", "verify"];
        verify.extend(common);
        verify.extend(["--layout", layout, &token]);
        let claims: serde_json::Value = serde_json::from_str(&ok(&verify)).unwrap();
        assert_eq!(claims["client_id"], "c1");
        assert_eq!(claims["jti"], "j1");
        assert_eq!(claims["iss"], "https://i");
        assert_eq!(claims["email"], "u@x");
        // As a refresh token it is refused in the Python layout (token_use), accepted in TS (no token_use).
        let mut as_refresh = verify.clone();
        as_refresh.push("--refresh");
        assert_eq!(code(&as_refresh), if layout == "py" { 1 } else { 0 });
        // Expired at a later time, wrong key, garbage.
        let mut late = verify.clone();
        late.extend(["--now", "99999999999"]);
        assert_eq!(code(&late), 1);
        let o = run(&[
            "jwt",
            "verify",
            "--key",
            "other",
            "--issuer",
            "https://i",
            "--audience",
            "https://a",
            "--layout",
            layout,
            &token,
        ]);
        assert_eq!(o.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&o.stderr).contains("Invalid signature"));
    }
    assert_eq!(
        code(&[
            "jwt",
            "verify",
            "--key",
            "k",
            "--issuer",
            "i",
            "--audience",
            "a",
            "not-a-token"
        ]),
        1
    );
    assert_eq!(
        code(&[
            "jwt",
            "issue",
            "--key",
            "k",
            "--issuer",
            "i",
            "--audience",
            "a",
            "--client-id",
            "c",
            "--claims",
            "[1]"
        ]),
        1
    );
    assert_eq!(
        code(&[
            "jwt",
            "issue",
            "--key",
            "k",
            "--issuer",
            "i",
            "--audience",
            "a",
            "--client-id",
            "c",
            "--layout",
            "xx"
        ]),
        2
    );
    assert_eq!(
        code(&[
            "jwt",
            "issue",
            "--issuer",
            "i",
            "--audience",
            "a",
            "--client-id",
            "c"
        ]),
        2
    );
}

#[test]
fn store_commands() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    for enc in [None, Some("enc-key")] {
        let mut base = vec!["store", "--dir", d];
        if let Some(k) = enc {
            base.extend(["--encryption-key", k]);
        }
        let with =
            |extra: &[&str]| -> Vec<String> { base.iter().chain(extra).map(|s| s.to_string()).collect() };
        let r = |extra: &[&str]| run(&with(extra).iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(r(&["put", "mapping:abc", r#"{"a":1}"#]).status.code(), Some(0));
        assert_eq!(r(&["put", "t", "2", "--ttl", "60"]).status.code(), Some(0));
        assert_eq!(
            String::from_utf8(r(&["get", "mapping:abc"]).stdout).unwrap(),
            "{\"a\":1}\n"
        );
        assert_eq!(String::from_utf8(r(&["ls"]).stdout).unwrap(), "mapping:abc\nt\n");
        assert_eq!(String::from_utf8(r(&["size"]).stdout).unwrap(), "2\n");
        assert_eq!(
            String::from_utf8(r(&["stats"]).stdout).unwrap(),
            "(other) 1\nmapping 1\ntotal 2\n"
        );
        assert_eq!(String::from_utf8(r(&["take", "t"]).stdout).unwrap(), "2\n");
        assert_eq!(r(&["take", "t"]).status.code(), Some(1));
        assert_eq!(r(&["get", "missing"]).status.code(), Some(1));
        assert_eq!(r(&["delete", "mapping:abc"]).status.code(), Some(0));
        assert_eq!(r(&["delete", "mapping:abc"]).status.code(), Some(1));
        assert_eq!(r(&["put", "k", "{not json"]).status.code(), Some(1));
        assert_eq!(String::from_utf8(r(&["cleanup"]).stdout).unwrap(), "0\n");
    }
    // A wrong encryption key reads as absent (exit 1), never as garbage.
    assert_eq!(
        code(&["store", "--dir", d, "--encryption-key", "k1", "put", "x", "1"]),
        0
    );
    assert_eq!(
        code(&["store", "--dir", d, "--encryption-key", "k2", "get", "x"]),
        1
    );
    // A file where the directory should be.
    let file = dir.path().join("f");
    std::fs::write(&file, "").unwrap();
    let o = run(&["store", "--dir", file.to_str().unwrap(), "size"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not_a_directory"));
    assert_eq!(code(&["store", "size"]), 2);
}

#[test]
fn store_commands_on_redis() {
    let server = fastmcp_auth_mock_idp::redis_server::RedisServer::start();
    let url = server.url();
    let base = ["store", "--redis", url.as_str(), "--redis-prefix", "cli:"];
    let r = |extra: &[&str]| run(&base.iter().chain(extra).copied().collect::<Vec<_>>());
    assert_eq!(
        r(&["put", "mapping:abc", r#"{"a":1}"#, "--ttl", "60"])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        String::from_utf8(r(&["get", "mapping:abc"]).stdout).unwrap(),
        "{\"a\":1}\n"
    );
    assert_eq!(String::from_utf8(r(&["ls"]).stdout).unwrap(), "mapping:abc\n");
    assert_eq!(String::from_utf8(r(&["size"]).stdout).unwrap(), "1\n");
    assert_eq!(
        String::from_utf8(r(&["take", "mapping:abc"]).stdout).unwrap(),
        "{\"a\":1}\n"
    );
    assert_eq!(r(&["take", "mapping:abc"]).status.code(), Some(1));
    assert_eq!(code(&["store", "--redis", "nonsense", "size"]), 1);
    assert_eq!(
        code(&["store", "--redis", url.as_str(), "--dir", "/tmp/x", "size"]),
        2
    );
}

#[test]
fn demo_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(&["demo", "--dir", dir.path().join("d").to_str().unwrap()]);
    assert!(out.contains("demo: all steps passed"));
}

fn run_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fastmcp-auth"));
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[test]
fn store_rekey() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (old, new) = (
        "old-key-for-the-rekey-test-0123456789",
        "new-key-for-the-rekey-test-9876543210",
    );
    for i in 0..20 {
        let ttl = if i % 2 == 0 { "3600" } else { "0" };
        let v = format!("{{\"i\":{i}}}");
        ok(&[
            "store",
            "--dir",
            d,
            "--encryption-key",
            old,
            "put",
            &format!("k{i}"),
            &v,
            "--ttl",
            ttl,
        ]);
    }
    ok(&["store", "--dir", d, "put", "ratelimit:x", "123"]);
    let keys = [
        ("FASTMCP_AUTH_OLD_ENCRYPTION_KEY", old),
        ("FASTMCP_AUTH_NEW_ENCRYPTION_KEY", new),
    ];
    // --check counts and writes nothing; exit 3 while entries are under the old key.
    let o = run_env(&["store", "--dir", d, "rekey", "--check"], &keys);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(3), "{out}{err}");
    assert!(
        out.starts_with("under_old_key 20\nalready_new 0\nnot_encrypted 1\n"),
        "{out}"
    );
    // The keys, given through the environment, appear nowhere.
    assert!(!out.contains(old) && !err.contains(old) && !out.contains(new) && !err.contains(new));
    let o = run_env(&["store", "--dir", d, "rekey"], &keys);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "rewritten 20\nalready_new 0\nnot_encrypted 1\nunreadable 0\ngone 0\ncontended 0\ntotal 21\n"
    );
    assert_eq!(
        ok(&["store", "--dir", d, "--encryption-key", new, "get", "k7"]),
        "{\"i\":7}"
    );
    assert_eq!(
        code(&["store", "--dir", d, "--encryption-key", old, "get", "k7"]),
        1
    );
    // Rerun: nothing left to do; --check now passes.
    let o = run_env(&["store", "--dir", d, "rekey", "--check"], &keys);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("already_new 20"));
    // Entries no given key opens: reported, exit 3, left alone.
    ok(&[
        "store",
        "--dir",
        d,
        "--encryption-key",
        "a-third-key-nobody-gave",
        "put",
        "stray",
        "1",
    ]);
    let o = run_env(&["store", "--dir", d, "rekey"], &keys);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stdout).contains("unreadable 1"));
    // A directory that does not exist is refused, not created (a typo must not read as "nothing left to rekey").
    let missing = dir.path().join("typo");
    let o = run_env(
        &["store", "--dir", missing.to_str().unwrap(), "rekey", "--check"],
        &keys,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(!missing.exists());
    // Usage: no old key, or the new key also given as old.
    assert_eq!(code(&["store", "--dir", d, "rekey", "--new-key", new]), 2);
    let o = run_env(&["store", "--dir", d, "rekey", "--old-key", new], &[keys[1]]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("also given as an old key"));
}

#[test]
fn jwt_key_set_state() {
    let strong = "c2VjcmV0LWtleS1vZi10aGlydHktdHdvLWJ5dGVzIQ";
    let o = run_env(
        &["jwt", "keys"],
        &[
            ("FASTMCP_AUTH_JWT_SIGNING_KEY", strong),
            (
                "FASTMCP_AUTH_PREVIOUS_JWT_SIGNING_KEYS",
                "b2xkLWtleS1vZi10aGlydHktdHdvLWJ5dGVzLCE,aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            ),
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(o.status.code(), Some(3), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("current ") && lines[0].ends_with(" ok"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("previous#1 ") && lines[1].ends_with(" ok"),
        "{out}"
    );
    assert!(
        lines[2].starts_with("previous#2 ") && lines[2].contains("weak"),
        "{out}"
    );
    assert!(lines[3].starts_with("tokens are signed with "), "{out}");
    assert!(!out.contains(strong) && !out.contains("aaaaaaaa"));
    // The fingerprint is stable and tells keys apart.
    let fp = |k: &str| {
        String::from_utf8_lossy(&run_env(&["jwt", "keys"], &[("FASTMCP_AUTH_JWT_SIGNING_KEY", k)]).stdout)
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_owned()
    };
    assert_eq!(fp(strong), fp(strong));
    assert_ne!(fp(strong), fp("ZGlmZmVyZW50LWtleS1vZi10aGlydHktdHdvLWJ5dGVz"));
    assert_eq!(code(&["jwt", "keys"]), 2);
}
