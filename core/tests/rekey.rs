//! `store::rekey` and `Store::replace`: re-encrypting a store under a new key while another process (a "server"
//! holding the new key and the old one as previous) reads, writes and takes entries.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fastmcp_auth::store::{
    rekey, DiskStore, DiskStoreOptions, EncryptedStore, MemoryStore, RedisStore, RedisStoreOptions, Replaced,
    Store,
};
use fastmcp_auth_mock_idp::redis_server::RedisServer;
use serde_json::{json, Value};

const OLD: &str = "old-encryption-key-0123456789abcdef";
const NEW: &str = "new-encryption-key-fedcba9876543210";
const ENTRIES: usize = 10_000;
/// Keys the server rewrites (each round), takes (once) and reads (checking the value) while the rekey runs.
const WRITES: std::ops::Range<usize> = 0..2000;
const TAKES: std::ops::Range<usize> = 2000..2500;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn disk(dir: &Path) -> Arc<dyn Store> {
    let o = DiskStoreOptions {
        cleanup_interval: None,
        ..DiskStoreOptions::new(dir)
    };
    Arc::new(DiskStore::open(o).unwrap())
}

async fn redis(url: &str) -> Arc<dyn Store> {
    Arc::new(RedisStore::open(RedisStoreOptions::new(url)).await.unwrap())
}

fn original(i: usize) -> Value {
    json!({"i": i, "round": -1, "pad": "x".repeat(64)})
}

/// The backend a child process opens: `disk:<dir>` or `redis:<url>`.
async fn backend(spec: &str) -> Arc<dyn Store> {
    match spec.split_once(':').unwrap() {
        ("disk", dir) => disk(Path::new(dir)),
        ("redis", url) => redis(url).await,
        _ => panic!("backend {spec}"),
    }
}

/// The server: runs in a child process started by `rekey_while_a_server_works`, with the new key and the old
/// one as previous. Round after round until told to stop, it rewrites entries, reads others (each must read
/// whole and right at every moment) and, in the first round, takes some. Prints the rounds it finished.
#[test]
#[ignore = "run as a child process by the rekey tests"]
fn rekey_server_child() {
    let (Ok(spec), Ok(flags)) = (
        std::env::var("REKEY_CHILD_BACKEND"),
        std::env::var("REKEY_CHILD_FLAGS"),
    ) else {
        return;
    };
    let flags = PathBuf::from(flags);
    rt().block_on(async {
        let raw = backend(&spec).await;
        let server = EncryptedStore::new(raw, NEW, &[OLD]).unwrap();
        std::fs::write(flags.join("ready"), "").unwrap();
        let mut rounds = 0;
        let (mut reads, mut takes) = (0, 0);
        loop {
            for i in WRITES {
                server
                    .save(&format!("k{i}"), json!({"i": i, "round": rounds}), None)
                    .await
                    .unwrap();
            }
            if rounds == 0 {
                for i in TAKES {
                    let got = server.take(&format!("k{i}")).await.unwrap();
                    assert_eq!(got, Some(original(i)), "take k{i}");
                    takes += 1;
                }
            }
            for i in (TAKES.end..ENTRIES).step_by(3) {
                let got = server.get(&format!("k{i}")).await.unwrap();
                assert_eq!(got, Some(original(i)), "read k{i} in round {rounds}");
                reads += 1;
            }
            rounds += 1;
            if flags.join("stop").exists() {
                break;
            }
        }
        println!("child rounds {rounds} reads {reads} takes {takes}");
    });
}

fn rekey_while_a_server_works(spec: &str) {
    let flags = tempfile::tempdir().unwrap();
    let rt = rt();
    let raw = rt.block_on(backend(spec));
    // Before the rotation: 10,000 entries under the old key, some with a TTL (kept by the rewrite).
    let before = EncryptedStore::new(raw.clone(), OLD, &[]).unwrap();
    rt.block_on(async {
        for i in 0..ENTRIES {
            let ttl = (i % 2 == 0).then(|| Duration::from_secs(3600));
            before.save(&format!("k{i}"), original(i), ttl).await.unwrap();
        }
    });
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "rekey_server_child", "--ignored", "--nocapture"])
        .env("REKEY_CHILD_BACKEND", spec)
        .env("REKEY_CHILD_FLAGS", flags.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !flags.path().join("ready").exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the server child did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let summary = rt
        .block_on(rekey(raw.as_ref(), NEW, &[OLD], false, &|_, _| {}))
        .unwrap();
    std::fs::write(flags.path().join("stop"), "").unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "server child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rounds: i64 = stdout
        .split("child rounds ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stdout}"));
    eprintln!("{spec}: {summary:?}; server: {}", stdout.trim());

    assert_eq!(summary.total, ENTRIES as u64);
    assert_eq!(
        (summary.unreadable, summary.contended, summary.not_encrypted),
        (0, 0, 0)
    );
    assert_eq!(
        summary.rewritten + summary.already_new + summary.gone,
        ENTRIES as u64
    );
    // Afterwards the new key alone opens everything: nothing lost, nothing unreadable, the server's writes kept.
    let after = EncryptedStore::new(raw.clone(), NEW, &[]).unwrap();
    rt.block_on(async {
        for i in 0..ENTRIES {
            let got = after.get(&format!("k{i}")).await.unwrap();
            let want = if WRITES.contains(&i) {
                Some(json!({"i": i, "round": rounds - 1}))
            } else if TAKES.contains(&i) {
                None
            } else {
                Some(original(i))
            };
            assert_eq!(got, want, "k{i}");
        }
        // A second run finds nothing under the old key.
        let again = rekey(raw.as_ref(), NEW, &[OLD], true, &|_, _| {}).await.unwrap();
        assert_eq!(again.rewritten, 0);
        assert_eq!(again.already_new, (ENTRIES - TAKES.len()) as u64);
    });
}

#[test]
fn rekey_disk_while_a_server_works() {
    let dir = tempfile::tempdir().unwrap();
    rekey_while_a_server_works(&format!("disk:{}", dir.path().display()));
    // No temp file left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn rekey_redis_while_a_server_works() {
    let server = RedisServer::start();
    rekey_while_a_server_works(&format!("redis:{}", server.url()));
}

/// `replace` on each backend: swaps only the expected value, keeps the expiry, never revives what is gone.
#[test]
fn replace_is_compare_and_swap_keeping_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let redis_server = RedisServer::start();
    let rt = rt();
    let sealed = |inner: Arc<dyn Store>| -> Arc<dyn Store> {
        Arc::new(EncryptedStore::new(inner, "replace-test-key", &[]).unwrap())
    };
    // A value this encryption cannot open reads as absent, so it is absent to `replace` too (never overwritten).
    let below: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let other_key = EncryptedStore::new(below.clone(), "another-key", &[]).unwrap();
    rt.block_on(async {
        other_key.save("k", json!("v"), None).await.unwrap();
        assert_eq!(
            sealed(below.clone())
                .replace("k", &json!("v"), json!("w"))
                .await
                .unwrap(),
            Some(Replaced::Absent)
        );
        assert_eq!(
            other_key.get("k").await.unwrap(),
            Some(json!("v")),
            "left as it was"
        );
    });
    let stores: Vec<(&str, Arc<dyn Store>)> = vec![
        ("memory", Arc::new(MemoryStore::new())),
        ("disk", disk(dir.path())),
        ("redis", rt.block_on(redis(&redis_server.url()))),
        // Through the encryption: compared on the plaintext, swapped on the ciphertext by the store below.
        ("memory, encrypted", sealed(Arc::new(MemoryStore::new()))),
        ("disk, encrypted", sealed(disk(&dir.path().join("sealed")))),
        (
            "redis, encrypted",
            sealed(rt.block_on(redis(&redis_server.url()))),
        ),
    ];
    for (name, s) in stores {
        // Each store its own keys (two share one redis-server).
        let k = |key: &str| format!("{name}/{key}");
        rt.block_on(async {
            s.save(&k("a"), json!("one"), Some(Duration::from_secs(2)))
                .await
                .unwrap();
            s.save(&k("b:odd key"), json!({"x": 1}), None).await.unwrap();
            let cases: [(&str, Value, Value, Replaced); 5] = [
                ("a", json!("wrong"), json!("two"), Replaced::Changed),
                ("a", json!("one"), json!("two"), Replaced::Replaced),
                ("a", json!("one"), json!("three"), Replaced::Changed),
                ("b:odd key", json!({"x": 1}), json!({"x": 2}), Replaced::Replaced),
                ("missing", json!("one"), json!("two"), Replaced::Absent),
            ];
            for (key, expected, new, want) in cases {
                assert_eq!(
                    s.replace(&k(key), &expected, new).await.unwrap(),
                    Some(want),
                    "{name}: {key} expecting {expected}"
                );
            }
            assert_eq!(s.get(&k("a")).await.unwrap(), Some(json!("two")), "{name}");
            assert_eq!(
                s.get(&k("b:odd key")).await.unwrap(),
                Some(json!({"x": 2})),
                "{name}"
            );
            assert_eq!(s.get(&k("missing")).await.unwrap(), None, "{name}: not created");
            // The expiry stayed: "a" still dies within its original 2 s.
            tokio::time::sleep(Duration::from_millis(2100)).await;
            assert_eq!(s.get(&k("a")).await.unwrap(), None, "{name}: expiry kept");
            assert_eq!(
                s.replace(&k("a"), &json!("two"), json!("four")).await.unwrap(),
                Some(Replaced::Absent),
                "{name}: expired is absent"
            );
            assert_eq!(
                s.get(&k("b:odd key")).await.unwrap(),
                Some(json!({"x": 2})),
                "{name}: no expiry stays"
            );
        });
    }
}

/// A disk entry written by fastmcp TS (its file name, no recorded key) is rewritten in place under that name.
#[test]
fn replace_keeps_fastmcp_files_readable_by_fastmcp() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mapping_abc.json"),
        r#"{"expiresAt": 9007199254740991, "value": "old"}"#,
    )
    .unwrap();
    let s = disk(dir.path());
    let rt = rt();
    rt.block_on(async {
        assert_eq!(
            s.replace("mapping:abc", &json!("old"), json!("new"))
                .await
                .unwrap(),
            Some(Replaced::Replaced)
        );
        assert_eq!(s.get("mapping:abc").await.unwrap(), Some(json!("new")));
    });
    let text = std::fs::read_to_string(dir.path().join("mapping_abc.json")).unwrap();
    let file: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(file["value"], "new");
    assert_eq!(file["expiresAt"], json!(9007199254740991u64));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no second file"
    );
}

/// Stores that cannot swap atomically (the default) make rekey refuse with a clear error, writing nothing.
#[test]
fn rekey_refuses_a_store_without_replace() {
    struct NoReplace(MemoryStore);
    #[async_trait::async_trait]
    impl Store for NoReplace {
        async fn save(&self, k: &str, v: Value, t: Option<Duration>) -> fastmcp_auth::Result<()> {
            self.0.save(k, v, t).await
        }
        async fn get(&self, k: &str) -> fastmcp_auth::Result<Option<Value>> {
            self.0.get(k).await
        }
        async fn delete(&self, k: &str) -> fastmcp_auth::Result<bool> {
            self.0.delete(k).await
        }
        async fn take(&self, k: &str) -> fastmcp_auth::Result<Option<Value>> {
            self.0.take(k).await
        }
        async fn cleanup(&self) -> fastmcp_auth::Result<u64> {
            self.0.cleanup().await
        }
        async fn size(&self) -> fastmcp_auth::Result<u64> {
            self.0.size().await
        }
        async fn keys(&self) -> fastmcp_auth::Result<Vec<String>> {
            self.0.keys().await
        }
    }
    let raw: Arc<dyn Store> = Arc::new(NoReplace(MemoryStore::new()));
    let rt = rt();
    rt.block_on(async {
        let old = EncryptedStore::new(raw.clone(), OLD, &[]).unwrap();
        old.save("k", json!(1), None).await.unwrap();
        let e = rekey(raw.as_ref(), NEW, &[OLD], false, &|_, _| {})
            .await
            .unwrap_err();
        assert!(e.to_string().contains("cannot replace values atomically"), "{e}");
        assert_eq!(old.get("k").await.unwrap(), Some(json!(1)));
    });
}
