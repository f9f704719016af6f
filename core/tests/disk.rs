//! DiskStore specifics: fastmcp compatibility, collisions, legacy files, crash safety, cross-process take,
//! corrupt files, directories.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use fastmcp_auth::store::{DiskStore, DiskStoreOptions, FileNaming, SyncStore, NO_EXPIRY_MS};
use fastmcp_auth::ErrorCode;
use serde_json::{json, Value};

fn open(dir: &Path) -> DiskStore {
    DiskStore::open(DiskStoreOptions {
        cleanup_interval: None,
        ..DiskStoreOptions::new(dir)
    })
    .unwrap()
}

fn write_legacy(dir: &Path, name: &str, value: Value, expires_at: u64) {
    let content = serde_json::to_string_pretty(&json!({"expiresAt": expires_at, "value": value})).unwrap();
    std::fs::write(dir.join(name), content).unwrap();
}

#[test]
fn distinct_keys_never_share_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    for (i, k) in ["a:b", "a.b", "a_b", "a/b", "a b", "a%3Ab", "a%b"]
        .iter()
        .enumerate()
    {
        s.save_sync(k, json!(i), None).unwrap();
    }
    for (i, k) in ["a:b", "a.b", "a_b", "a/b", "a b", "a%3Ab", "a%b"]
        .iter()
        .enumerate()
    {
        assert_eq!(s.get_sync(k).unwrap(), Some(json!(i)), "{k}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 7);
}

fn open_fastmcp_named(dir: &Path) -> DiskStore {
    DiskStore::open(DiskStoreOptions {
        cleanup_interval: None,
        naming: FileNaming::Fastmcp,
        ..DiskStoreOptions::new(dir)
    })
    .unwrap()
}

#[test]
fn fastmcp_naming_writes_fastmcp_names_and_never_lets_colliding_keys_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let s = open_fastmcp_named(dir.path());
    s.save_sync("mapping:abc", json!("m"), None).unwrap();
    // fastmcp's name, recording the key (fastmcp ignores the extra member).
    let text = std::fs::read_to_string(dir.path().join("mapping_abc.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["value"], "m");
    assert_eq!(v["key"], "mapping:abc");
    // Keys sharing that name: each is kept (the latecomers under their safe names), none overwrites another.
    for (i, k) in ["mapping.abc", "mapping_abc", "mapping/abc"].iter().enumerate() {
        s.save_sync(k, json!(i), None).unwrap();
    }
    assert_eq!(s.get_sync("mapping:abc").unwrap(), Some(json!("m")));
    for (i, k) in ["mapping.abc", "mapping_abc", "mapping/abc"].iter().enumerate() {
        assert_eq!(s.get_sync(k).unwrap(), Some(json!(i)), "{k}");
    }
    // Overwriting and taking each key touch only that key.
    s.save_sync("mapping.abc", json!("again"), None).unwrap();
    assert_eq!(s.take_sync("mapping.abc").unwrap(), Some(json!("again")));
    assert_eq!(s.get_sync("mapping.abc").unwrap(), None);
    assert_eq!(s.get_sync("mapping:abc").unwrap(), Some(json!("m")));
    assert!(s.delete_sync("mapping:abc").unwrap());
    assert_eq!(s.get_sync("mapping_abc").unwrap(), Some(json!(1)));
    // A file fastmcp wrote (no recorded key) is found under its name.
    write_legacy(dir.path(), "code_xyz.json", json!("c"), NO_EXPIRY_MS);
    assert_eq!(s.take_sync("code:xyz").unwrap(), Some(json!("c")));
    assert_eq!(s.take_sync("code:xyz").unwrap(), None);
}

#[test]
fn both_namings_read_each_others_directories() {
    let dir = tempfile::tempdir().unwrap();
    let f = open_fastmcp_named(dir.path());
    f.save_sync("client:1", json!(1), None).unwrap();
    let safe = open(dir.path());
    safe.save_sync("client:2", json!(2), None).unwrap();
    assert_eq!(safe.get_sync("client:1").unwrap(), Some(json!(1)));
    assert_eq!(f.get_sync("client:2").unwrap(), Some(json!(2)));
    assert_eq!(f.take_sync("client:2").unwrap(), Some(json!(2)));
    assert_eq!(safe.take_sync("client:1").unwrap(), Some(json!(1)));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    // A plain key with `_` under a name a fastmcp-named key already holds: kept apart (hashed name), both ways.
    f.save_sync("code:x", json!("fastmcp-named"), None).unwrap();
    safe.save_sync("code_x", json!("plain"), None).unwrap();
    assert_eq!(f.get_sync("code:x").unwrap(), Some(json!("fastmcp-named")));
    assert_eq!(f.get_sync("code_x").unwrap(), Some(json!("plain")));
    assert_eq!(safe.take_sync("code_x").unwrap(), Some(json!("plain")));
    assert_eq!(safe.get_sync("code:x").unwrap(), Some(json!("fastmcp-named")));
}

#[test]
fn legacy_fastmcp_files_are_found_but_never_for_another_key() {
    let dir = tempfile::tempdir().unwrap();
    // What fastmcp TS wrote for `mapping:abc`.
    write_legacy(
        dir.path(),
        "mapping_abc.json",
        json!({"upstreamTokenKey": "u1"}),
        NO_EXPIRY_MS,
    );
    let s = open(dir.path());
    assert_eq!(
        s.get_sync("mapping:abc").unwrap(),
        Some(json!({"upstreamTokenKey": "u1"}))
    );
    // Our own write takes precedence over the legacy file.
    s.save_sync("mapping:abc", json!("new"), None).unwrap();
    assert_eq!(s.get_sync("mapping:abc").unwrap(), Some(json!("new")));
    // Deleting removes both, so the legacy value cannot resurface.
    assert!(s.delete_sync("mapping:abc").unwrap());
    assert_eq!(s.get_sync("mapping:abc").unwrap(), None);
    assert!(!dir.path().join("mapping_abc.json").exists());

    // A plain key written by us at the legacy name records its key: other keys never read it.
    s.save_sync("mapping_abc", json!("plain"), None).unwrap();
    assert_eq!(s.get_sync("mapping_abc").unwrap(), Some(json!("plain")));
    assert_eq!(s.get_sync("mapping:abc").unwrap(), None);
    assert_eq!(s.take_sync("mapping.abc").unwrap(), None);
    assert!(!s.delete_sync("mapping:abc").unwrap());
    assert_eq!(s.get_sync("mapping_abc").unwrap(), Some(json!("plain")));

    // take consumes a legacy entry exactly once.
    write_legacy(dir.path(), "code_xyz.json", json!("c"), NO_EXPIRY_MS);
    assert_eq!(s.take_sync("code:xyz").unwrap(), Some(json!("c")));
    assert_eq!(s.take_sync("code:xyz").unwrap(), None);
    // Expired legacy entries read as absent.
    write_legacy(dir.path(), "old_one.json", json!("x"), 1);
    assert_eq!(s.get_sync("old:one").unwrap(), None);
}

#[test]
fn files_are_fastmcp_shaped() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.save_sync("upstream-xyz", json!({"accessToken": "t"}), None)
        .unwrap();
    let text = std::fs::read_to_string(dir.path().join("upstream-xyz.json")).unwrap();
    assert_eq!(
        text,
        "{\n  \"expiresAt\": 9007199254740991,\n  \"value\": {\n    \"accessToken\": \"t\"\n  }\n}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("upstream-xyz.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    s.save_sync("ttl", json!(1), Some(Duration::from_secs(10)))
        .unwrap();
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("ttl.json")).unwrap()).unwrap();
    let exp = v["expiresAt"].as_u64().unwrap();
    let now = fastmcp_auth::store::now_ms();
    assert!(exp > now + 9_000 && exp <= now + 10_000);
}

#[test]
fn corrupt_files_read_as_absent_and_stop_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.save_sync("good", json!(1), None).unwrap();
    s.save_sync("expired", json!(1), Some(Duration::from_millis(1)))
        .unwrap();
    std::fs::write(dir.path().join("bad.json"), b"{\"expiresAt\": 1, \"val").unwrap();
    std::fs::write(dir.path().join("binary.json"), [0xff, 0xfe, 0x00, 0x80]).unwrap();
    std::fs::write(dir.path().join("shape.json"), b"[1,2,3]").unwrap();
    assert_eq!(s.get_sync("bad").unwrap(), None);
    assert_eq!(s.get_sync("binary").unwrap(), None);
    assert_eq!(s.take_sync("shape").unwrap(), None);
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(
        s.full_scan().unwrap(),
        1,
        "the expired entry is swept despite corrupt neighbours"
    );
    assert_eq!(s.get_sync("good").unwrap(), Some(json!(1)));
    // Corrupt files stay for inspection; an explicit delete removes them.
    assert!(dir.path().join("bad.json").exists());
    assert!(dir.path().join("shape.json").exists());
    assert!(s.delete_sync("bad").unwrap());
    assert!(!dir.path().join("bad.json").exists());
}

#[test]
fn directory_handling() {
    let base = tempfile::tempdir().unwrap();
    let nested = base.path().join("a/b/c");
    let s = open(&nested);
    s.save_sync("k", json!(1), None).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&nested).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let file = base.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let err = DiskStore::new(&file).unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotADirectory);
    for bad in ["json", ".", "./x", ".a/b", ""] {
        let err = DiskStore::open(DiskStoreOptions {
            file_extension: bad.into(),
            ..DiskStoreOptions::new(&nested)
        })
        .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgument, "{bad}");
    }
}

#[test]
fn sweep_uses_the_index_and_full_scan_finds_foreign_entries() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    for i in 0..50 {
        let ttl = if i % 10 == 0 {
            Duration::from_millis(1)
        } else {
            Duration::from_secs(600)
        };
        s.save_sync(&format!("k{i}"), json!(i), Some(ttl)).unwrap();
    }
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(s.cleanup_sync().unwrap(), 5);
    assert_eq!(s.size_sync().unwrap(), 45);
    // An entry another process wrote (not in our index) is found by the full scan.
    write_legacy(dir.path(), "foreign.json", json!(1), 1);
    assert_eq!(
        s.cleanup_sync().unwrap(),
        0,
        "indexed sweep does not read unindexed files"
    );
    assert_eq!(s.full_scan().unwrap(), 1);
    // A reopened store's first scan removes what expired while it was closed.
    s.save_sync("later", json!(1), Some(Duration::from_millis(1)))
        .unwrap();
    drop(s);
    std::thread::sleep(Duration::from_millis(5));
    let s = open(dir.path());
    assert_eq!(s.get_sync("later").unwrap(), None);
    assert!(!dir.path().join("later.json").exists());
    // A re-saved value is never swept by a stale index entry.
    s.save_sync("again", json!(1), Some(Duration::from_millis(1)))
        .unwrap();
    s.save_sync("again", json!(2), None).unwrap();
    std::thread::sleep(Duration::from_millis(5));
    s.cleanup_sync().unwrap();
    assert_eq!(s.get_sync("again").unwrap(), Some(json!(2)));
}

#[test]
fn background_sweep_runs_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let s = DiskStore::open(DiskStoreOptions {
        cleanup_interval: Some(Duration::from_millis(10)),
        ..DiskStoreOptions::new(dir.path())
    })
    .unwrap();
    s.save_sync("x", json!(1), Some(Duration::from_millis(1)))
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while dir.path().join("x.json").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!dir.path().join("x.json").exists());
    assert!(s.sweeper_running());
    fastmcp_auth::Store::close(&s);
    assert!(!s.sweeper_running());
}

// ---- multi-process tests: this test binary re-runs itself as the child process -------------------------------

fn child(test: &str, envs: &[(&str, String)]) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    c.env("FASTMCP_AUTH_CHILD", "1");
    for (k, v) in envs {
        c.env(k, v);
    }
    c
}

#[test]
fn child_take() {
    if std::env::var("FASTMCP_AUTH_CHILD").is_err() {
        return;
    }
    let dir = std::env::var("DIR").unwrap();
    let go = std::path::PathBuf::from(std::env::var("GO").unwrap());
    let s = open(Path::new(&dir));
    while !go.exists() {
        std::thread::yield_now();
    }
    let got = s.take_sync("code:shared").unwrap();
    println!("RESULT {}", if got.is_some() { "GOT" } else { "NONE" });
}

#[test]
fn take_is_atomic_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    for round in 0..3 {
        s.save_sync("code:shared", json!({"round": round}), None).unwrap();
        let go = dir.path().join(format!("go-{round}"));
        let kids: Vec<_> = (0..8)
            .map(|_| {
                child(
                    "child_take",
                    &[
                        ("DIR", dir.path().display().to_string()),
                        ("GO", go.display().to_string()),
                    ],
                )
                .spawn()
                .unwrap()
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        std::fs::write(&go, "").unwrap();
        let outs: Vec<String> = kids
            .into_iter()
            .map(|k| String::from_utf8(k.wait_with_output().unwrap().stdout).unwrap())
            .collect();
        let got = outs.iter().filter(|o| o.contains("RESULT GOT")).count();
        let none = outs.iter().filter(|o| o.contains("RESULT NONE")).count();
        assert_eq!((got, none), (1, 7), "round {round}: {outs:?}");
    }
}

#[test]
fn child_writer() {
    if std::env::var("FASTMCP_AUTH_CHILD").is_err() {
        return;
    }
    let dir = std::env::var("DIR").unwrap();
    let s = open(Path::new(&dir));
    let big = "x".repeat(256 * 1024);
    for i in 0u64.. {
        s.save_sync("victim", json!({"i": i, "pad": big}), None).unwrap();
        if i == 0 {
            println!("STARTED");
        }
    }
}

#[test]
fn killed_writer_leaves_old_or_new_value() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    for _ in 0..3 {
        let mut kid = child("child_writer", &[("DIR", dir.path().display().to_string())])
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(kid.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        kid.kill().unwrap(); // SIGKILL, mid-write with high probability
        kid.wait().unwrap();
        let v = s.get_sync("victim").unwrap().expect("a complete value survives");
        assert!(v["i"].is_u64() && v["pad"].as_str().unwrap().len() == 256 * 1024);
    }
    // Temp files from killed writers are not entries.
    assert_eq!(s.size_sync().unwrap(), 1);
    assert_eq!(s.keys_sync().unwrap(), vec!["victim".to_string()]);
}

/// The store reads only what it wrote: a FIFO, a symlink (to /dev/zero or out of the directory), a directory or an
/// oversized file under an entry's name reads as absent, promptly, at open and at `get`/`take`, and stays in place.
#[test]
fn reads_only_regular_files_it_could_have_written() {
    use std::os::unix::fs::{symlink, PermissionsExt};
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.json");
    write_legacy(outside.path(), "secret.json", json!("outside"), NO_EXPIRY_MS);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fifo = d.join("fifo.json");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    symlink("/dev/zero", d.join("zero.json")).unwrap();
    symlink(&secret, d.join("escape.json")).unwrap();
    std::fs::create_dir(d.join("adir.json")).unwrap();
    let big = std::fs::File::create(d.join("big.json")).unwrap();
    big.set_len(fastmcp_auth::store::MAX_ENTRY_BYTES + 1).unwrap();
    drop(big);
    let started = std::time::Instant::now();
    let s = DiskStore::open(DiskStoreOptions::new(d)).unwrap(); // the open scan must not hang on the FIFO
    for k in ["fifo", "zero", "escape", "adir", "big"] {
        assert_eq!(s.get_sync(k).unwrap(), None, "{k}");
        // The read that never waits refuses the same files (or declines to answer).
        assert!(matches!(s.get_nowait(k), None | Some(Ok(None))), "{k}");
        assert_eq!(s.take_sync(k).unwrap(), None, "{k}");
    }
    assert!(started.elapsed() < Duration::from_secs(10), "nothing blocked");
    assert!(secret.exists(), "the file outside the directory is untouched");
    assert!(fifo.exists(), "left in place");
    s.save_sync("ok", json!(1), None).unwrap();
    assert_eq!(s.get_sync("ok").unwrap(), Some(json!(1)));
    drop(s);
    // A directory writable by others: a warning, or a refusal in strict mode.
    let shared = tempfile::tempdir().unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    assert!(DiskStore::open(DiskStoreOptions::new(shared.path())).is_ok());
    let e = DiskStore::open(DiskStoreOptions {
        strict_permissions: true,
        ..DiskStoreOptions::new(shared.path())
    })
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
}

/// `get_nowait` (an event loop's read): answered from the kernel's caches with what `get_sync` answers (a value,
/// an absent key, an expired entry, through encryption too); declines (`None`) when the entry's data is not in the
/// page cache, which a blocking read then brings back; never answers for a closed store with a value.
#[cfg(target_os = "linux")]
#[test]
fn nowait_reads_answer_from_the_caches_or_decline() {
    use fastmcp_auth::store::{EncryptedStore, Store};
    use std::os::fd::AsRawFd;
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(DiskStore::open(DiskStoreOptions::new(dir.path())).unwrap());
    let value = json!({"client_id": "c", "scopes": ["read"], "n": 1});
    s.save_sync("mapping:abc", value.clone(), None).unwrap();
    s.save_sync("gone soon", json!(1), Some(Duration::from_millis(1)))
        .unwrap();
    s.save_sync("a:b/c?d", json!("odd key"), None).unwrap();
    std::thread::sleep(Duration::from_millis(5));
    let cases: &[(&str, Option<Value>)] = &[
        ("mapping:abc", Some(value.clone())),
        ("absent", None),
        ("gone soon", None),
        ("a:b/c?d", Some(json!("odd key"))),
    ];
    for (key, want) in cases {
        assert_eq!(s.get_sync(key).unwrap(), *want, "{key}");
        let got = s
            .get_nowait(key)
            .expect("in the caches: answered in place (Linux 5.12+)");
        assert_eq!(got.unwrap(), *want, "{key}");
    }
    assert!(
        s.get_nowait("").unwrap().is_err(),
        "an invalid key is refused, not declined"
    );
    // Out of the page cache (written back, then dropped): declined, never answered as absent.
    // DONTNEED is best effort, and a declined read starts readahead that a fast device may finish before the
    // kernel's re-check: tried until one read declines; every read that does answer answers right.
    let path = dir.path().join(s.file_name_for("mapping:abc").unwrap());
    let declined = (0..50).any(|_| {
        let f = std::fs::File::open(&path).unwrap();
        f.sync_all().unwrap();
        // SAFETY: a plain syscall on an open descriptor.
        let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(rc, 0);
        match s.get_nowait("mapping:abc") {
            None => true,
            Some(r) => {
                assert_eq!(r.unwrap(), Some(value.clone()));
                std::thread::sleep(Duration::from_millis(2));
                false
            }
        }
    });
    assert!(declined, "data not cached: declined");
    assert_eq!(s.get_sync("mapping:abc").unwrap(), Some(value.clone()));
    assert_eq!(s.get_nowait("mapping:abc").unwrap().unwrap(), Some(value.clone()));
    // Through encryption: the same answers, decrypted.
    let e = EncryptedStore::new(s.clone(), "nowait-test-key-0123456789abcdef", &[]).unwrap();
    e.save_sync("secret", json!({"t": "x"}), None).unwrap();
    assert_eq!(e.get_nowait("secret").unwrap().unwrap(), Some(json!({"t": "x"})));
    assert_eq!(e.get_nowait("absent").unwrap().unwrap(), None);
    // Larger than MAX_NOWAIT_BYTES (64 KiB): declined even when cached (it would hold an event loop for ms).
    let big = json!("x".repeat(100 * 1024));
    s.save_sync("big", big.clone(), None).unwrap();
    assert_eq!(s.get_sync("big").unwrap(), Some(big));
    assert!(s.get_nowait("big").is_none(), "a large entry is read on a thread");
    // Closed: an error, never a value.
    Store::close(s.as_ref());
    assert!(matches!(s.get_nowait("mapping:abc"), Some(Err(_))));
    // tmpfs has no RWF_NOWAIT, and keeps its files in memory: answered in place with plain reads.
    if let Ok(shm) = tempfile::tempdir_in("/dev/shm") {
        let s = DiskStore::open(DiskStoreOptions::new(shm.path())).unwrap();
        s.save_sync("k", value.clone(), None).unwrap();
        assert_eq!(s.get_nowait("k").expect("tmpfs: in place").unwrap(), Some(value));
    }
}
