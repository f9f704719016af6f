//! The same behaviour checks on every store: memory, disk, and encryption over each.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use fastmcp_auth::blocking::Store;
use fastmcp_auth::store::{DiskStoreOptions, MAX_KEY_BYTES};
use fastmcp_auth::ErrorCode;
use serde_json::json;

struct Fixture {
    store: Store,
    _dir: Option<tempfile::TempDir>,
    _redis: Option<RedisFixture>,
}

fn memory() -> Fixture {
    Fixture {
        store: Store::memory(),
        _dir: None,
        _redis: None,
    }
}

fn disk() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::disk(DiskStoreOptions {
        cleanup_interval: None,
        ..DiskStoreOptions::new(dir.path())
    })
    .unwrap();
    Fixture {
        store,
        _dir: Some(dir),
        _redis: None,
    }
}

struct RedisFixture {
    _server: fastmcp_auth_mock_idp::redis_server::RedisServer,
}

fn redis_with_prefix(prefix: &str) -> (Store, fastmcp_auth_mock_idp::redis_server::RedisServer) {
    let server = fastmcp_auth_mock_idp::redis_server::RedisServer::start();
    let mut o = fastmcp_auth::RedisStoreOptions::new(server.url());
    o.prefix = prefix.into();
    (Store::redis(o).unwrap(), server)
}

fn redis() -> Fixture {
    let (store, server) = redis_with_prefix("test:");
    Fixture {
        store,
        _dir: None,
        _redis: Some(RedisFixture { _server: server }),
    }
}

fn enc_redis() -> Fixture {
    let f = redis();
    Fixture {
        store: f.store.encrypted("test-key", &[]).unwrap(),
        _dir: None,
        _redis: f._redis,
    }
}

fn enc_memory() -> Fixture {
    let f = memory();
    Fixture {
        store: f.store.encrypted("test-key", &[]).unwrap(),
        _dir: f._dir,
        _redis: None,
    }
}

fn enc_disk() -> Fixture {
    let f = disk();
    Fixture {
        store: f.store.encrypted("test-key", &[]).unwrap(),
        _dir: f._dir,
        _redis: None,
    }
}

fn basic_crud(f: Fixture) {
    let s = &f.store;
    assert_eq!(s.get("missing").unwrap(), None);
    s.save("k1", json!({"a": 1, "b": [true, null, "x"]}), None)
        .unwrap();
    assert_eq!(
        s.get("k1").unwrap(),
        Some(json!({"a": 1, "b": [true, null, "x"]}))
    );
    s.save("k1", json!("replaced"), None).unwrap();
    assert_eq!(s.get("k1").unwrap(), Some(json!("replaced")));
    s.save("k2", json!(2), Some(Duration::from_secs(60))).unwrap();
    assert_eq!(s.size().unwrap(), 2);
    let mut keys = s.keys().unwrap();
    keys.sort();
    assert_eq!(keys, vec!["k1", "k2"]);
    assert!(s.delete("k1").unwrap());
    assert!(!s.delete("k1").unwrap());
    assert_eq!(s.get("k1").unwrap(), None);
    assert_eq!(s.take("k2").unwrap(), Some(json!(2)));
    assert_eq!(s.take("k2").unwrap(), None);
    assert_eq!(s.size().unwrap(), 0);
}

fn ttl_expiry(f: Fixture) {
    let s = &f.store;
    s.save("short", json!(1), Some(Duration::from_millis(20)))
        .unwrap();
    s.save("long", json!(2), Some(Duration::from_secs(600))).unwrap();
    s.save("forever", json!(3), None).unwrap();
    s.save("zero-is-forever", json!(4), Some(Duration::ZERO)).unwrap();
    assert_eq!(s.get("short").unwrap(), Some(json!(1)));
    thread::sleep(Duration::from_millis(60));
    assert_eq!(s.get("short").unwrap(), None);
    assert_eq!(s.take("short").unwrap(), None);
    s.save("short2", json!(1), Some(Duration::from_millis(10)))
        .unwrap();
    thread::sleep(Duration::from_millis(40));
    // Memory and disk remove expired entries in cleanup; Redis expires them itself (cleanup is a no-op there).
    s.cleanup().unwrap();
    assert_eq!(s.size().unwrap(), 3, "only live entries remain after cleanup");
    assert_eq!(s.get("long").unwrap(), Some(json!(2)));
    assert_eq!(s.get("forever").unwrap(), Some(json!(3)));
    assert_eq!(s.get("zero-is-forever").unwrap(), Some(json!(4)));
}

fn take_is_atomic(f: Fixture) {
    let s = f.store.clone();
    for round in 0..20 {
        let key = format!("code:{round}");
        s.save(&key, json!({"round": round}), None).unwrap();
        let barrier = Arc::new(Barrier::new(8));
        let winners: usize = (0..8)
            .map(|_| {
                let (s, key, barrier) = (s.clone(), key.clone(), barrier.clone());
                thread::spawn(move || {
                    barrier.wait();
                    s.take(&key).unwrap().is_some() as usize
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(winners, 1, "round {round}");
    }
}

fn hostile_keys(f: Fixture) {
    let s = &f.store;
    let long = "k".repeat(1000);
    let keys = [
        "../escape",
        "../../etc/passwd",
        "/abs/path",
        "a\0b",
        "\\windows\\path",
        ".",
        "..",
        "ünïcødé/🔑",
        "mapping:abc",
        "mapping.abc",
        "mapping_abc",
        long.as_str(),
    ];
    for (i, k) in keys.iter().enumerate() {
        s.save(k, json!(i), None).unwrap();
    }
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(s.get(k).unwrap(), Some(json!(i)), "{k:?}");
    }
    let mut listed = s.keys().unwrap();
    listed.sort();
    let mut expected: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    expected.sort();
    assert_eq!(listed, expected);
    assert_eq!(
        s.save("", json!(1), None).unwrap_err().code(),
        ErrorCode::InvalidKey
    );
    let huge = "h".repeat(MAX_KEY_BYTES + 1);
    assert_eq!(
        s.save(&huge, json!(1), None).unwrap_err().code(),
        ErrorCode::InvalidKey
    );
    assert_eq!(s.get(&huge).unwrap_err().code(), ErrorCode::InvalidKey);
    if let Some(dir) = &f._dir {
        // Nothing was written outside the directory, and every file is a direct child of it.
        for ent in std::fs::read_dir(dir.path()).unwrap() {
            let ent = ent.unwrap();
            assert!(ent.file_type().unwrap().is_file());
            assert!(ent.file_name().len() <= 255);
        }
        assert!(!dir.path().join("../escape.json").exists());
    }
}

fn close_stops(f: Fixture) {
    f.store.save("k", json!(1), None).unwrap();
    f.store.close();
    assert_eq!(f.store.get("k").unwrap_err().code(), ErrorCode::Closed);
}

macro_rules! for_each_store {
    ($($backend:ident),*) => {$(
        mod $backend {
            #[test] fn basic_crud() { super::basic_crud(super::$backend()) }
            #[test] fn ttl_expiry() { super::ttl_expiry(super::$backend()) }
            #[test] fn take_is_atomic() { super::take_is_atomic(super::$backend()) }
            #[test] fn hostile_keys() { super::hostile_keys(super::$backend()) }
            #[test] fn close_stops() { super::close_stops(super::$backend()) }
        }
    )*};
}

for_each_store!(memory, disk, redis, enc_memory, enc_disk, enc_redis);

#[test]
fn async_api_matches_blocking() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(fastmcp_auth::DiskStore::new(dir.path()).unwrap());
    rt.block_on(async {
        use fastmcp_auth::Store as _;
        store.save("a:b", json!([1]), None).await.unwrap();
        assert_eq!(store.get("a:b").await.unwrap(), Some(json!([1])));
        assert_eq!(store.take("a:b").await.unwrap(), Some(json!([1])));
        assert_eq!(store.size().await.unwrap(), 0);
        // The blocking facade refuses to run inside a runtime instead of deadlocking.
        let err = fastmcp_auth::runtime::block_on(async {}).unwrap_err();
        assert_eq!(err.code(), ErrorCode::BlockingInAsync);
    });
}

#[test]
fn memory_sweeper_stops_on_drop_and_close() {
    let s = fastmcp_auth::MemoryStore::with_cleanup_interval(Duration::from_millis(5));
    assert!(s.sweeper_running());
    fastmcp_auth::Store::close(&s);
    assert!(!s.sweeper_running());
    // Background sweep removes expired entries without anyone calling cleanup.
    use fastmcp_auth::SyncStore;
    let s = fastmcp_auth::MemoryStore::with_cleanup_interval(Duration::from_millis(5));
    s.save_sync("x", json!(1), Some(Duration::from_millis(1)))
        .unwrap();
    thread::sleep(Duration::from_millis(60));
    assert_eq!(s.size_sync().unwrap(), 0);
    drop(s);
}

#[test]
fn encrypted_rotation_and_tamper() {
    let plain = Store::memory();
    let old = plain.encrypted("old-key", &[]).unwrap();
    old.save("k", json!({"accessToken": "secret-at"}), None).unwrap();
    let raw = plain.get("k").unwrap().unwrap();
    assert!(!raw.to_string().contains("secret-at"), "value stored in clear");
    let rotated = plain.encrypted("new-key", &["old-key"]).unwrap();
    assert_eq!(
        rotated.get("k").unwrap(),
        Some(json!({"accessToken": "secret-at"}))
    );
    rotated.save("k2", json!(1), None).unwrap();
    assert_eq!(old.get("k2").unwrap(), None, "writes must use the new key");
    // Tampered ciphertext and foreign values read as absent.
    let s = raw.as_str().unwrap();
    let flipped = format!(
        "{}{}",
        &s[..s.len() - 1],
        if s.ends_with('0') { '1' } else { '0' }
    );
    plain.save("k", json!(flipped), None).unwrap();
    assert_eq!(rotated.get("k").unwrap(), None);
    plain.save("k", json!({"not": "encrypted"}), None).unwrap();
    assert_eq!(rotated.get("k").unwrap(), None);
    plain.save("k", json!("only:two"), None).unwrap();
    assert_eq!(rotated.take("k").unwrap(), None);
}

#[test]
fn redis_prefixes_namespace_and_escape() {
    let server = fastmcp_auth_mock_idp::redis_server::RedisServer::start();
    let open = |p: &str| {
        let mut o = fastmcp_auth::RedisStoreOptions::new(server.url());
        o.prefix = p.into();
        Store::redis(o).unwrap()
    };
    let (a, b, glob) = (open("app-a:"), open("app-b:"), open("a*"));
    a.save("k", json!(1), None).unwrap();
    b.save("k", json!(2), None).unwrap();
    assert_eq!(a.get("k").unwrap(), Some(json!(1)));
    assert_eq!(b.size().unwrap(), 1);
    // A prefix with glob characters matches literally in SCAN.
    assert_eq!(glob.size().unwrap(), 0);
    glob.save("x", json!(3), None).unwrap();
    assert_eq!(glob.keys().unwrap(), vec!["x".to_string()]);
    assert_eq!(a.size().unwrap(), 1);
}

#[test]
fn redis_errors_are_clear() {
    let bad = Store::redis(fastmcp_auth::RedisStoreOptions::new("not-a-url")).unwrap_err();
    assert_eq!(bad.code(), ErrorCode::InvalidArgument);
    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut o = fastmcp_auth::RedisStoreOptions::new(format!("redis://127.0.0.1:{port}"));
    o.connection_timeout = Duration::from_millis(300);
    o.reconnect_retries = 0;
    let e = Store::redis(o).unwrap_err();
    assert_eq!(e.code(), ErrorCode::StorageIo);
    assert!(
        e.to_string().contains("unreachable") || e.to_string().contains("in time"),
        "{e}"
    );
    // rediss:// is supported (rustls): against a server that does not speak TLS the handshake fails cleanly.
    let server = fastmcp_auth_mock_idp::redis_server::RedisServer::start();
    let mut o = fastmcp_auth::RedisStoreOptions::new(format!("rediss://127.0.0.1:{}", server.port()));
    o.connection_timeout = Duration::from_millis(500);
    o.reconnect_retries = 0;
    let e = Store::redis(o).unwrap_err();
    assert_eq!(e.code(), ErrorCode::StorageIo, "{e}");
}

#[test]
fn redis_restart_keeps_what_was_persisted_and_operations_resume() {
    let mut server = fastmcp_auth_mock_idp::redis_server::RedisServer::start();
    let mut o = fastmcp_auth::RedisStoreOptions::new(server.url());
    o.response_timeout = Duration::from_millis(500);
    o.connection_timeout = Duration::from_millis(300);
    o.reconnect_retries = 1;
    let s = Store::redis(o).unwrap().encrypted("k", &[]).unwrap();
    for i in 0..100 {
        s.save(
            &format!("mapping:{i}"),
            json!({"i": i}),
            Some(Duration::from_secs(600)),
        )
        .unwrap();
    }
    server.kill();
    // While Redis is down: a clear storage error, quickly, never a panic or a hang.
    let t = std::time::Instant::now();
    let e = s.get("mapping:1").unwrap_err();
    assert_eq!(e.code(), ErrorCode::StorageIo);
    assert!(t.elapsed() < Duration::from_secs(5));
    server.restart();
    // The manager reconnects; everything acknowledged before the crash is there.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut got = s.get("mapping:1");
    while got.is_err() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        got = s.get("mapping:1");
    }
    assert_eq!(got.unwrap(), Some(json!({"i": 1})));
    for i in 0..100 {
        assert_eq!(s.get(&format!("mapping:{i}")).unwrap(), Some(json!({"i": i})));
    }
    assert_eq!(s.size().unwrap(), 100);
    s.save("after", json!(true), None).unwrap();
    assert_eq!(s.take("after").unwrap(), Some(json!(true)));
}

/// One rule on every face: what you passed in stays yours. Closing an EncryptedStore or a proxy leaves the store
/// it was given open.
#[test]
fn closing_a_wrapper_leaves_the_inner_store_open() {
    use fastmcp_auth::store::{EncryptedStore, MemoryStore, Store};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let inner: std::sync::Arc<dyn Store> = std::sync::Arc::new(MemoryStore::new());
    let enc = EncryptedStore::new(inner.clone(), "k", &[]).unwrap();
    rt.block_on(enc.save("a", serde_json::json!(1), None)).unwrap();
    enc.close();
    assert_eq!(
        rt.block_on(enc.get("a")).unwrap_err().code(),
        fastmcp_auth::ErrorCode::Closed
    );
    rt.block_on(inner.save("b", serde_json::json!(2), None)).unwrap();
    let mut c = fastmcp_auth::proxy::OAuthProxyConfig::new(
        "http://127.0.0.1:8000",
        "http://127.0.0.1:9/a",
        "http://127.0.0.1:9/t",
        "id",
        "secret",
    );
    c.token_storage = Some(inner.clone());
    c.encryption_key = Some("k".into());
    let p = fastmcp_auth::proxy::OAuthProxy::new(c).unwrap();
    p.close();
    rt.block_on(inner.save("c", serde_json::json!(3), None)).unwrap();
}
