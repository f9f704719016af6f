//! Attacks on `SyncStore::get_nowait` (DiskStore: `openat2` `RESOLVE_CACHED` + `preadv2` `RWF_NOWAIT`) and on the
//! proxy's in-place checks built on it (`check_bearer_inline`, `load_upstream_tokens_inline`).
//!
//! The rule every test here holds it to: `get_nowait` answers `None` (would block) or exactly what `get_sync`
//! could have answered at some moment of the call — never another key's value, never a value that was never
//! written, never a panic or a hang; an in-place bearer check answers `None` or exactly the async verdict.
#![cfg(target_os = "linux")]

mod support;

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fastmcp_auth::store::{
    DiskStore, DiskStoreOptions, EncryptedStore, FileNaming, Store, SyncStore, MAX_ENTRY_BYTES,
};
use serde_json::{json, Value};

// ---- helpers ---------------------------------------------------------------------------------------------------

fn open(dir: &Path) -> DiskStore {
    DiskStore::open(DiskStoreOptions {
        cleanup_interval: None,
        ..DiskStoreOptions::new(dir)
    })
    .unwrap()
}

fn open_with(dir: &Path, naming: FileNaming) -> DiskStore {
    DiskStore::open(DiskStoreOptions {
        cleanup_interval: None,
        naming,
        ..DiskStoreOptions::new(dir)
    })
    .unwrap()
}

/// Whether any page of the file is in the page cache (`mincore` on a mapping that is never touched).
fn resident(path: &Path) -> bool {
    let f = std::fs::File::open(path).unwrap();
    let len = f.metadata().unwrap().len() as usize;
    if len == 0 {
        return false;
    }
    // SAFETY: a read-only private mapping of an open file, never dereferenced; unmapped before returning.
    unsafe {
        let addr = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            f.as_raw_fd(),
            0,
        );
        assert_ne!(addr, libc::MAP_FAILED);
        let pages = len.div_ceil(4096);
        let mut vec = vec![0u8; pages];
        let rc = libc::mincore(addr, len, vec.as_mut_ptr());
        libc::munmap(addr, len);
        assert_eq!(rc, 0);
        vec.iter().any(|b| b & 1 == 1)
    }
}

/// Writes a file back and drops its pages from the page cache (`POSIX_FADV_DONTNEED` is best effort: a page still
/// on another CPU's LRU batch stays, so it is retried until `mincore` shows the file gone from the cache).
fn evict(path: &Path) {
    for _ in 0..200 {
        let f = std::fs::File::open(path).unwrap();
        f.sync_all().unwrap();
        // SAFETY: a plain syscall on an open descriptor.
        let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(rc, 0);
        drop(f);
        if !resident(path) {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("could not evict {}", path.display());
}

/// An entry file as fastmcp TS writes it (no `key` member).
fn fastmcp_file(value: &Value, expires_at: u64) -> String {
    serde_json::to_string_pretty(&json!({"expiresAt": expires_at, "value": value})).unwrap()
}

const FAR: u64 = 9_007_199_254_740_991;

/// What `get_nowait` may answer given what `get_sync` answered just before and just after (both the same: a quiet
/// store): declined, or the same answer.
fn assert_agrees(s: &dyn SyncStore, key: &str, ctx: &str) {
    let before = s.get_sync(key).map_err(|e| e.to_string());
    let now = s.get_nowait(key).map(|r| r.map_err(|e| e.to_string()));
    let after = s.get_sync(key).map_err(|e| e.to_string());
    assert_eq!(before, after, "{ctx}: the store changed under a quiet test");
    if let Some(now) = now {
        assert_eq!(now, before, "{ctx}: get_nowait vs get_sync for {key:?}");
    }
}

// ---- 1. races --------------------------------------------------------------------------------------------------

/// One writer per key replaces (rename over), deletes, takes, writes with a 1 ms TTL, and exchanges
/// (`replace_sync`) its entry, values `{"key": k, "n": n}` with `n` increasing; readers call `get_nowait` (and
/// `get_sync`) in a loop. Every answer is absent or this key's value with an `n` already issued, and one reader's
/// successive answers never go back in time (a single writer, atomic renames). Keys: plain, fastmcp-named
/// (`mapping:abc` → `mapping_abc.json`, key recorded), hashed (too long for a file name), and percent-encoded
/// (Safe naming).
#[test]
fn concurrent_writers_never_show_another_keys_value_or_go_back_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let fast = Arc::new(open(&dir.path().join("fast")));
    let safe = Arc::new(open_with(&dir.path().join("safe"), FileNaming::Safe));
    let long = "L".repeat(300) + ":x";
    let keys: Vec<(Arc<DiskStore>, String)> = vec![
        (fast.clone(), "plain".into()),
        (fast.clone(), "mapping:abc".into()),
        (fast.clone(), long.clone()),
        (safe.clone(), "mapping:abc".into()),
        (safe.clone(), "up/../x".into()),
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let issued: Arc<Vec<AtomicU64>> = Arc::new((0..keys.len()).map(|_| AtomicU64::new(0)).collect());
    let mut writers = Vec::new();
    for (i, (s, k)) in keys.iter().cloned().enumerate() {
        let (stop, issued) = (stop.clone(), issued.clone());
        writers.push(std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                issued[i].store(n, Ordering::SeqCst);
                let v = json!({"key": k, "n": n});
                match n % 6 {
                    0 => {
                        s.delete_sync(&k).unwrap();
                    }
                    1 => {
                        s.take_sync(&k).unwrap();
                    }
                    2 => s.save_sync(&k, v, Some(Duration::from_millis(1))).unwrap(),
                    3 => {
                        // Compare-and-swap from whatever is there (exchange of files).
                        if let Some(cur) = s.get_sync(&k).unwrap() {
                            s.replace_sync(&k, &cur, v).unwrap();
                        } else {
                            s.save_sync(&k, v, None).unwrap();
                        }
                    }
                    _ => s.save_sync(&k, v, None).unwrap(),
                }
            }
        }));
    }
    let mut readers = Vec::new();
    for r in 0..2 {
        let (keys, stop, issued) = (keys.clone(), stop.clone(), issued.clone());
        readers.push(std::thread::spawn(move || {
            let mut last = vec![0u64; keys.len()];
            let (mut answered, mut declined) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                for (i, (s, k)) in keys.iter().enumerate() {
                    let got = if r == 0 {
                        match s.get_nowait(k) {
                            None => {
                                declined += 1;
                                continue;
                            }
                            Some(g) => g,
                        }
                    } else {
                        s.get_sync(k)
                    };
                    answered += 1;
                    let Some(v) = got.unwrap_or_else(|e| panic!("{k}: {e}")) else {
                        continue;
                    };
                    assert_eq!(v["key"], json!(k), "another key's value under {k:?}");
                    let n = v["n"].as_u64().unwrap();
                    assert!(n <= issued[i].load(Ordering::SeqCst), "a value never written");
                    assert!(n >= last[i], "{k:?}: went back from n={} to n={n}", last[i]);
                    last[i] = n;
                }
            }
            (answered, declined)
        }));
    }
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let (answered, _declined) = readers.remove(0).join().unwrap();
    readers.remove(0).join().unwrap();
    assert!(answered > 1000, "get_nowait answered in place: {answered}");
}

/// Keys that share fastmcp's file name (`a:b`, `a.b` → `a_b.json`, and the plain `a_b`) written, deleted and taken
/// concurrently: a read never answers with the other key's value (the recorded `key` member decides).
#[test]
fn colliding_fastmcp_names_never_answer_for_the_other_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(open(dir.path()));
    let keys = ["a:b", "a.b", "a_b"];
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for k in keys {
        let (s, stop) = (s.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                match n % 4 {
                    0 => {
                        s.delete_sync(k).unwrap();
                    }
                    1 => {
                        s.take_sync(k).unwrap();
                    }
                    _ => s.save_sync(k, json!({"key": k, "n": n}), None).unwrap(),
                }
            }
        }));
    }
    let reader = {
        let (s, stop) = (s.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut answered = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for k in keys {
                    if let Some(r) = s.get_nowait(k) {
                        answered += 1;
                        if let Some(v) = r.unwrap() {
                            assert_eq!(v["key"], json!(k), "another key's value under {k:?}");
                        }
                    }
                }
            }
            answered
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    assert!(reader.join().unwrap() > 100);
}

/// An entry file rewritten *in place* (as fastmcp TS's `fs.writeFile` does: truncate, then write), grown past what
/// `fstat` saw, shrunk, truncated to 0 bytes, extended (sparse) past the size limit, or given trailing garbage,
/// while `get_nowait` reads it in a loop: every answer is declined, absent, or exactly one of the two values ever
/// written there — a torn read never parses into something else, and nothing panics.
#[test]
fn in_place_rewrites_growth_and_truncation_never_yield_a_torn_value() {
    rewrites_in(tempfile::tempdir().unwrap(), Duration::from_secs(2));
    if let Ok(shm) = tempfile::tempdir_in("/dev/shm") {
        rewrites_in(shm, Duration::from_secs(1));
    }
}

fn rewrites_in(dir: tempfile::TempDir, run_for: Duration) {
    use std::io::{Seek, SeekFrom, Write};
    let s = Arc::new(open(dir.path()));
    let short = json!({"n": 1});
    let long = json!({"n": 2, "pad": "x".repeat(20_000)});
    let path = dir.path().join("k.json");
    let texts = [fastmcp_file(&short, FAR), fastmcp_file(&long, FAR)];
    std::fs::write(&path, &texts[0]).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, path, texts) = (stop.clone(), path.clone(), texts.clone());
        std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let text = texts[i % 2].as_bytes();
                match i % 5 {
                    // Truncate, then write in two halves (a reader can see 0 bytes, then half).
                    0 | 1 => {
                        f.set_len(0).unwrap();
                        f.seek(SeekFrom::Start(0)).unwrap();
                        let (a, b) = text.split_at(text.len() / 2);
                        f.write_all(a).unwrap();
                        std::thread::yield_now();
                        f.write_all(b).unwrap();
                    }
                    // Trailing garbage after a whole document.
                    2 => {
                        f.seek(SeekFrom::End(0)).unwrap();
                        f.write_all(b"}garbage").unwrap();
                    }
                    // Past the size limit (sparse), then back.
                    3 => {
                        f.set_len(MAX_ENTRY_BYTES + 10).unwrap();
                        std::thread::yield_now();
                        f.set_len(0).unwrap();
                    }
                    // Overwrite without truncating (the long text's tail stays after a short one).
                    _ => {
                        f.seek(SeekFrom::Start(0)).unwrap();
                        f.write_all(text).unwrap();
                    }
                }
            }
        })
    };
    let mut seen = HashMap::new();
    let deadline = Instant::now() + run_for;
    while Instant::now() < deadline {
        let got = match s.get_nowait("k") {
            None => "declined".to_string(),
            Some(Ok(None)) => "absent".to_string(),
            Some(Ok(Some(v))) => {
                assert!(
                    v == short || v == long,
                    "a value never written: {}",
                    &v.to_string()[..80.min(v.to_string().len())]
                );
                format!("n={}", v["n"])
            }
            Some(Err(e)) => panic!("an error reading a file being rewritten: {e}"),
        };
        *seen.entry(got).or_insert(0u64) += 1;
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(seen.keys().any(|k| k.starts_with("n=")), "{seen:?}");
}

/// Deterministic bad contents at an entry's name: empty, one byte, truncated documents, wrong shapes, trailing
/// data, a UTF-8 BOM, NaN-ish numbers, a huge `expiresAt`, a negative one: `get_nowait` answers what `get_sync`
/// answers, file by file.
#[test]
fn corrupt_and_odd_entry_files_answer_as_get_sync_does() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let valid = fastmcp_file(&json!({"v": 1}), FAR);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("one byte", b"{".to_vec()),
        ("half", valid.as_bytes()[..valid.len() / 2].to_vec()),
        ("trailing", format!("{valid}}}").into_bytes()),
        ("trailing ws", format!("{valid}\n\n  ").into_bytes()),
        ("bom", [b"\xEF\xBB\xBF".as_slice(), valid.as_bytes()].concat()),
        ("array", b"[1,2]".to_vec()),
        ("no value", br#"{"expiresAt": 1e300}"#.to_vec()),
        ("null value", br#"{"expiresAt": 1e300, "value": null}"#.to_vec()),
        ("string expiry", br#"{"expiresAt": "never", "value": 1}"#.to_vec()),
        ("negative expiry", br#"{"expiresAt": -1, "value": 1}"#.to_vec()),
        ("huge expiry", br#"{"expiresAt": 1e308, "value": 1}"#.to_vec()),
        ("overflow expiry", br#"{"expiresAt": 1e999, "value": 1}"#.to_vec()),
        (
            "dup value",
            br#"{"expiresAt": 1e300, "value": 1, "value": 2}"#.to_vec(),
        ),
        (
            "other key",
            br#"{"expiresAt": 1e300, "value": 1, "key": "x"}"#.to_vec(),
        ),
        ("nul bytes", vec![0u8; 4096]),
        ("deep", ("[".repeat(10_000) + &"]".repeat(10_000)).into_bytes()),
        (
            "invalid utf8",
            b"{\"expiresAt\": 1e300, \"value\": \"\xff\xfe\"}".to_vec(),
        ),
    ];
    for (i, (name, bytes)) in cases.iter().enumerate() {
        let key = format!("case{i}");
        std::fs::write(dir.path().join(format!("{key}.json")), bytes).unwrap();
        assert_agrees(&s, &key, name);
    }
}

/// A key found under its other name (fastmcp TS's file for a non-plain key read by a Safe store, and a Safe
/// store's percent-encoded file read by a Fastmcp store), a legacy file that records another key, a hashed name
/// without a recorded key, and an expired legacy file: `get_nowait` answers as `get_sync` in every case.
#[test]
fn legacy_and_other_names_answer_as_get_sync_does() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let safe = open_with(d, FileNaming::Safe);
    let fast = open_with(d, FileNaming::Fastmcp);
    // fastmcp TS's file for `mapping:abc` (no key member).
    std::fs::write(d.join("mapping_abc.json"), fastmcp_file(&json!("ts"), FAR)).unwrap();
    // A Safe store's file for `x:y`.
    safe.save_sync("x:y", json!("safe"), None).unwrap();
    // fastmcp's name for `p:q` holding another key's record.
    std::fs::write(
        d.join("p_q.json"),
        serde_json::to_string(&json!({"expiresAt": FAR, "value": "theirs", "key": "p.q"})).unwrap(),
    )
    .unwrap();
    // An expired legacy file.
    std::fs::write(d.join("old_one.json"), fastmcp_file(&json!("old"), 1)).unwrap();
    // A hashed name for a key, without a recorded key.
    let long = "h".repeat(300) + ":z";
    let hashed = fast.file_name_for(&long).unwrap();
    assert!(hashed.starts_with('~'), "{hashed}");
    std::fs::write(d.join(&hashed), fastmcp_file(&json!("unowned"), FAR)).unwrap();
    // A plain key with `_` whose name holds another key's file: it lives under its hashed name.
    fast.save_sync("c:d", json!("c:d"), None).unwrap();
    fast.save_sync("c_d", json!("c_d"), None).unwrap();
    for s in [&safe as &dyn SyncStore, &fast] {
        for key in [
            "mapping:abc",
            "x:y",
            "p:q",
            "p.q",
            "old:one",
            "old_one",
            &long,
            "c:d",
            "c_d",
            "absent:k",
        ] {
            assert_agrees(s, key, "legacy");
        }
    }
    assert_eq!(
        safe.get_nowait("mapping:abc").unwrap().unwrap(),
        Some(json!("ts"))
    );
    assert_eq!(fast.get_nowait("x:y").unwrap().unwrap(), Some(json!("safe")));
    assert_eq!(fast.get_nowait("p:q").unwrap().unwrap(), None);
    assert_eq!(fast.get_nowait(&long).unwrap().unwrap(), None);
    assert_eq!(fast.get_nowait("c_d").unwrap().unwrap(), Some(json!("c_d")));
    assert_eq!(fast.get_nowait("c:d").unwrap().unwrap(), Some(json!("c:d")));
}

/// A key saved under its other name while another key held its fastmcp name, then saved again once that name was
/// free, leaves its older copy under the other name. Whatever removes the newer copy alone (the sweep of an
/// expired entry here) makes the *older, overwritten* value readable again — by `get_sync` and `get_nowait` alike.
#[test]
#[ignore = "defect (DiskStore, not specific to get_nowait): an overwritten value resurfaces from the key's other \
            name once its newer copy expires"]
fn an_overwritten_value_never_resurfaces_from_the_other_name() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.save_sync("a_b", json!("B"), None).unwrap(); // holds a_b.json
    s.save_sync("a:b", json!("old"), None).unwrap(); // → a%3Ab.json (a_b.json is taken)
    assert!(s.delete_sync("a_b").unwrap());
    s.save_sync("a:b", json!("new"), Some(Duration::from_millis(20)))
        .unwrap(); // → a_b.json, fresh
    assert_eq!(s.get_sync("a:b").unwrap(), Some(json!("new")));
    std::thread::sleep(Duration::from_millis(40));
    s.cleanup_sync().unwrap();
    assert_eq!(
        s.get_sync("a:b").unwrap(),
        None,
        "get_sync: the overwritten value came back"
    );
    assert_eq!(
        s.get_nowait("a:b").unwrap().unwrap(),
        None,
        "get_nowait: the overwritten value came back"
    );
}

/// The same stale copy, seen without any expiry: while another key's `delete` holds the shared fastmcp name
/// claimed (renamed to `<name>.<random>.claim`, restored a moment later because the file is not its own), a read
/// of the key that lives there falls through to its other name and answers the value it overwrote.
#[test]
#[ignore = "defect (DiskStore, not specific to get_nowait): during a colliding key's delete, a read answers the \
            key's overwritten value from its other name"]
fn a_colliding_keys_delete_never_shows_an_overwritten_value() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.save_sync("a_b", json!("B"), None).unwrap();
    s.save_sync("a:b", json!("old"), None).unwrap(); // → a%3Ab.json
    assert!(s.delete_sync("a_b").unwrap());
    s.save_sync("a:b", json!("new"), None).unwrap(); // → a_b.json; a%3Ab.json still holds "old"
                                                     // What `delete("a_b")` does first (take_name → claim): rename the shared name away.
    let claim = dir.path().join("a_b.json.0123456789abcdef.claim");
    std::fs::rename(dir.path().join("a_b.json"), &claim).unwrap();
    let sync = s.get_sync("a:b").unwrap();
    let now = s.get_nowait("a:b").map(|r| r.unwrap());
    std::fs::rename(&claim, dir.path().join("a_b.json")).unwrap(); // … and restores it
    assert_ne!(
        sync,
        Some(json!("old")),
        "get_sync answered the overwritten value"
    );
    assert_ne!(
        now,
        Some(Some(json!("old"))),
        "get_nowait answered the overwritten value"
    );
}

// ---- 2. hostile files ------------------------------------------------------------------------------------------

/// What can sit at an entry's name besides a file the store wrote: a FIFO (with and without a writer), symlinks
/// (to /dev/zero, out of the directory, to a directory, dangling, a chain), a directory, device nodes (root:
/// mknod of /dev/zero's and /dev/null's numbers), a Unix socket, a sparse file over the limit and one of exactly
/// the limit, a hard link to a file outside the directory. `get_nowait` never hangs, never answers a value
/// `get_sync` does not, never reads through a link, and leaves everything in place.
#[test]
fn hostile_files_at_entry_names() {
    hostile_files_in(tempfile::tempdir().unwrap());
    // tmpfs: no RWF_NOWAIT there; its files are read with plain reads (they live in memory).
    if let Ok(shm) = tempfile::tempdir_in("/dev/shm") {
        hostile_files_in(shm);
    }
}

fn hostile_files_in(dir: tempfile::TempDir) {
    use std::os::unix::fs::symlink;
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.json");
    std::fs::write(&secret, fastmcp_file(&json!("outside"), FAR)).unwrap();
    let d = dir.path();
    let mk = |name: &str| d.join(format!("{name}.json"));
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: plain syscalls on NUL-terminated paths.
    unsafe {
        assert_eq!(libc::mkfifo(c(&mk("fifo")).as_ptr(), 0o600), 0);
        assert_eq!(libc::mkfifo(c(&mk("fifo_w")).as_ptr(), 0o600), 0);
    }
    // A FIFO with a writer holding it open (a read would block without O_NONBLOCK).
    let _writer = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(mk("fifo_w"))
        .unwrap();
    symlink("/dev/zero", mk("zero")).unwrap();
    symlink(&secret, mk("escape")).unwrap();
    symlink(outside.path(), mk("dirlink")).unwrap();
    symlink(d.join("nowhere"), mk("dangling")).unwrap();
    symlink(mk("escape"), mk("chain")).unwrap();
    std::fs::create_dir(mk("adir")).unwrap();
    let root = rustix::process::geteuid().is_root();
    if root {
        // SAFETY: as above.
        unsafe {
            assert_eq!(
                libc::mknod(
                    c(&mk("devzero")).as_ptr(),
                    libc::S_IFCHR | 0o600,
                    libc::makedev(1, 5)
                ),
                0
            );
            assert_eq!(
                libc::mknod(
                    c(&mk("devnull")).as_ptr(),
                    libc::S_IFCHR | 0o600,
                    libc::makedev(1, 3)
                ),
                0
            );
        }
    }
    let _sock = std::os::unix::net::UnixListener::bind(mk("sock")).unwrap();
    let big = std::fs::File::create(mk("big")).unwrap();
    big.set_len(MAX_ENTRY_BYTES + 1).unwrap();
    let limit = std::fs::File::create(mk("limit")).unwrap();
    limit.set_len(MAX_ENTRY_BYTES).unwrap();
    drop((big, limit));
    // A hard link to a file outside the directory (same file system): it *is* a regular file here.
    let linked = std::fs::hard_link(&secret, mk("hardlink")).is_ok();
    let s = open(d);
    let names = [
        "fifo", "fifo_w", "zero", "escape", "dirlink", "dangling", "chain", "adir", "devzero", "devnull",
        "sock", "big", "limit",
    ];
    for k in names {
        if !root && k.starts_with("dev") {
            continue;
        }
        let started = Instant::now();
        for _ in 0..3 {
            let now = s.get_nowait(k);
            assert!(
                matches!(now, None | Some(Ok(None))) || (k == "sock" && matches!(now, Some(Err(_)))),
                "{k}: {now:?}"
            );
        }
        let sync = s.get_sync(k);
        assert!(
            matches!(sync, Ok(None)) || (k == "sock" && sync.is_err()),
            "{k}: {sync:?}"
        );
        assert_agrees(&s, k, k);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{k}: took {:?}",
            started.elapsed()
        );
        assert!(std::fs::symlink_metadata(mk(k)).is_ok(), "{k} left in place");
    }
    if linked {
        // What a hard link shows is the file itself: both reads agree (the directory's owner decides what is in it).
        assert_agrees(&s, "hardlink", "hardlink");
    }
    assert!(secret.exists());
}

/// The store's directory reached through a symlink (an intermediate path component — entry names never hold a
/// `/`), and that link swapped to another directory between reads: `get_nowait` resolves it as `get_sync` does,
/// answering from whichever directory the link names at the time, never a mix of the two.
#[test]
fn a_symlinked_directory_swapped_between_reads() {
    use std::os::unix::fs::symlink;
    let base = tempfile::tempdir().unwrap();
    let (a, b) = (base.path().join("a"), base.path().join("b"));
    std::fs::create_dir(&a).unwrap();
    std::fs::create_dir(&b).unwrap();
    std::fs::write(a.join("k.json"), fastmcp_file(&json!("A"), FAR)).unwrap();
    std::fs::write(b.join("k.json"), fastmcp_file(&json!("B"), FAR)).unwrap();
    let link = base.path().join("link");
    symlink(&a, &link).unwrap();
    let s = Arc::new(open(&link));
    // A link just made (or renamed) needs its atime updated when followed (relatime), which a cached-only lookup
    // cannot do: declined until a blocking read has followed it.
    if s.get_nowait("k").is_none() {
        assert_eq!(s.get_sync("k").unwrap(), Some(json!("A")));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, base, a, b) = (stop.clone(), base.path().to_path_buf(), a.clone(), b.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let tmp = base.join("tmp");
                let _ = std::fs::remove_file(&tmp);
                symlink(if i % 2 == 0 { &a } else { &b }, &tmp).unwrap();
                std::fs::rename(&tmp, base.join("link")).unwrap();
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut answers = 0;
    while Instant::now() < deadline {
        match s.get_nowait("k") {
            Some(r) => {
                let v = r.unwrap();
                assert!(v == Some(json!("A")) || v == Some(json!("B")), "{v:?}");
                answers += 1;
            }
            // As a caller would: the blocking read (which follows the link, updating its atime).
            None => {
                let v = s.get_sync("k").unwrap();
                assert!(v == Some(json!("A")) || v == Some(json!("B")), "{v:?}");
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    assert!(answers > 0);
}

/// A file with mode 000: root reads it (CAP_DAC_OVERRIDE) and both reads answer its value; a reader without that
/// capability (a thread whose own credentials were dropped to `nobody` with raw syscalls, which affect that
/// thread only) gets an error from both — never a value, never a hang, never a decline that would later succeed.
#[test]
fn a_mode_000_file_as_root_and_as_nobody() {
    use std::os::unix::fs::PermissionsExt;
    if !rustix::process::geteuid().is_root() {
        return; // needs root to set up both sides
    }
    let base = tempfile::tempdir().unwrap();
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = base.path().join("store");
    let s = Arc::new(open(&d));
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    s.save_sync("locked", json!({"secret": 1}), None).unwrap();
    s.save_sync("open", json!({"public": 1}), None).unwrap();
    let p = d.join("locked.json");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o000)).unwrap();
    std::fs::set_permissions(d.join("open.json"), std::fs::Permissions::from_mode(0o644)).unwrap();
    // Root: both read it.
    assert_eq!(s.get_sync("locked").unwrap(), Some(json!({"secret": 1})));
    assert_eq!(
        s.get_nowait("locked").unwrap().unwrap(),
        Some(json!({"secret": 1}))
    );
    // nobody, on one thread.
    let s2 = s.clone();
    let (now, sync, open_now, open_sync) = std::thread::spawn(move || {
        // SAFETY: raw syscalls change only this thread's credentials (glibc's wrappers would change every thread's).
        unsafe {
            assert_eq!(
                libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()),
                0
            );
            assert_eq!(libc::syscall(libc::SYS_setresgid, 65534, 65534, 65534), 0);
            assert_eq!(libc::syscall(libc::SYS_setresuid, 65534, 65534, 65534), 0);
        }
        let now = s2.get_nowait("locked").map(|r| r.map_err(|e| e.to_string()));
        let sync = s2.get_sync("locked").map_err(|e| e.to_string());
        let open_now = s2.get_nowait("open").map(|r| r.map_err(|e| e.to_string()));
        let open_sync = s2.get_sync("open").map_err(|e| e.to_string());
        (now, sync, open_now, open_sync)
    })
    .join()
    .unwrap();
    assert!(sync.is_err(), "get_sync as nobody: {sync:?}");
    assert!(
        matches!(now, None | Some(Err(_))),
        "get_nowait as nobody: {now:?}"
    );
    assert_eq!(open_sync, Ok(Some(json!({"public": 1}))));
    assert!(matches!(open_now, None | Some(Ok(Some(_)))), "{open_now:?}");
    // This thread is still root.
    assert_eq!(
        s.get_nowait("locked").unwrap().unwrap(),
        Some(json!({"secret": 1}))
    );
}

/// A write lease on an entry file (another process about to rewrite it): an open for reading would wait for the
/// lease to be broken. Both reads use O_NONBLOCK: `get_sync` fails with an error, `get_nowait` declines or fails
/// — neither waits the lease-break time (45 s by default).
#[test]
fn a_leased_entry_file_never_blocks() {
    if !rustix::process::geteuid().is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.save_sync("leased", json!(1), None).unwrap();
    let p = dir.path().join("leased.json");
    // SAFETY: ignoring SIGIO (the lease-break notice) so that it cannot end the test process.
    unsafe { libc::signal(libc::SIGIO, libc::SIG_IGN) };
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&p)
        .unwrap();
    // SAFETY: fcntl on an open descriptor.
    let rc = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLEASE, libc::F_WRLCK) };
    if rc != 0 {
        return; // leases not available here (e.g. a file system without them)
    }
    let started = Instant::now();
    let now = s.get_nowait("leased");
    let sync = s.get_sync("leased");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(now, None | Some(Err(_))), "{now:?}");
    assert!(sync.is_err() || sync.as_ref().unwrap().is_some(), "{sync:?}");
    // SAFETY: as above.
    unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK) };
    drop(f);
    assert_eq!(s.get_sync("leased").unwrap(), Some(json!(1)));
}

/// EncryptedStore over disk: a sealed value swapped for another key's sealed value (a file copied by someone with
/// write access to the directory) reads in place as it reads through `get_sync` (the format binds no key: it
/// opens); tampered ciphertext reads as absent; a closed wrapper answers an error in place.
#[test]
fn encrypted_over_disk_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Arc::new(open(dir.path()));
    let e = EncryptedStore::new(disk.clone(), "nowait-attack-key-0123456789abcdef", &[]).unwrap();
    e.save_sync("alice", json!({"who": "alice"}), None).unwrap();
    e.save_sync("bob", json!({"who": "bob"}), None).unwrap();
    std::fs::copy(dir.path().join("alice.json"), dir.path().join("bob.json")).unwrap();
    // Not bound to its key (fastmcp TS's format: no associated data), by both reads alike.
    assert_agrees(&e, "bob", "swapped ciphertext");
    let text = std::fs::read_to_string(dir.path().join("alice.json")).unwrap();
    let tampered = text.replacen("\"value\": \"", "\"value\": \"A", 1);
    std::fs::write(dir.path().join("alice.json"), tampered).unwrap();
    assert_agrees(&e, "alice", "tampered");
    Store::close(&e);
    assert!(matches!(e.get_nowait("bob"), Some(Err(_))));
}

/// Closed while other threads read in place: every answer is a value or an error, never a panic; after
/// `close` returns, never a value.
#[test]
fn close_while_reading_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(open(dir.path()));
    for i in 0..50 {
        s.save_sync(&format!("k{i}"), json!(i), None).unwrap();
    }
    let closed = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (s, closed) = (s.clone(), closed.clone());
            std::thread::spawn(move || {
                let mut after = 0;
                for round in 0..200_000u32 {
                    let i = round % 50;
                    let was_closed = closed.load(Ordering::SeqCst);
                    match s.get_nowait(&format!("k{i}")) {
                        Some(Ok(Some(v))) => {
                            assert_eq!(v, json!(i));
                            assert!(!was_closed, "a value after close returned");
                        }
                        Some(Ok(None)) => panic!("k{i} read as absent"),
                        Some(Err(_)) | None => {}
                    }
                    if was_closed {
                        after += 1;
                        if after > 1000 {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    Store::close(s.as_ref());
    closed.store(true, Ordering::SeqCst);
    for r in readers {
        r.join().unwrap();
    }
}

// ---- 3. the proxy ----------------------------------------------------------------------------------------------

mod proxy_in_place {
    use super::*;
    use crate::support::{hidden, params, proxy_config, query_param, REDIRECT};
    use fastmcp_auth::blocking::OAuthProxy;
    use fastmcp_auth::proxy::{AuthorizeParams, CallbackParams, ConsentParams, TokenRequest, TokenResponse};
    use fastmcp_auth::{CodeVerifier, JwtIssuer};
    use fastmcp_auth_mock_idp::MockIdp;

    pub use crate::support::BASE;
    /// `proxy_config`'s JWT signing key (tokens re-signed with it are ones the proxy could have issued).
    const JWT_KEY: &str = "test-jwt-signing-key";

    pub fn proxy(idp: &MockIdp, store: Arc<dyn Store>, encrypted: bool) -> OAuthProxy {
        let mut c = proxy_config(idp);
        c.encryption_disabled = !encrypted;
        c.token_storage = Some(store);
        OAuthProxy::new(c).unwrap()
    }

    pub struct Client {
        pub id: String,
        pub secret: Option<String>,
    }

    pub fn login(p: &OAuthProxy, idp: &MockIdp) -> (Client, TokenResponse) {
        let r = p.register_client(&json!({"redirect_uris": [REDIRECT]})).unwrap();
        let c = Client {
            id: r["client_id"].as_str().unwrap().into(),
            secret: r["client_secret"].as_str().map(String::from),
        };
        let verifier = CodeVerifier::generate(64).unwrap();
        let params = AuthorizeParams {
            scope: Some("openid email".into()),
            ..params(&c.id, &verifier)
        };
        let page = p.authorize(&params).unwrap();
        let upstream = if p.as_async().config().consent_required {
            p.handle_consent(
                &ConsentParams {
                    transaction_id: Some(hidden(&page, "transaction_id")),
                    action: Some("approve".into()),
                    csrf_token: Some(hidden(&page, "csrf_token")),
                    ..Default::default()
                }
                .with_cookie(page.cookie_header().as_deref()),
            )
            .unwrap()
        } else {
            page.clone()
        };
        let callback = idp.login(upstream.location().unwrap()).unwrap();
        let query = url::Url::parse(&callback)
            .unwrap()
            .query()
            .unwrap_or_default()
            .to_owned();
        let back = p
            .handle_callback(
                &CallbackParams::from_query(&query)
                    .unwrap()
                    .with_cookie(page.cookie_header().as_deref()),
            )
            .unwrap();
        let code = query_param(back.location().unwrap(), "code").unwrap();
        let t = p
            .token(&TokenRequest {
                grant_type: Some("authorization_code".into()),
                code: Some(code),
                redirect_uri: Some(REDIRECT.into()),
                code_verifier: Some(verifier.as_str().to_owned()),
                client_id: Some(c.id.clone()),
                client_secret: c.secret.clone(),
                ..Default::default()
            })
            .unwrap();
        (c, t)
    }

    /// `token`'s claims changed by `f`, signed with the proxy's key (a token the proxy could have issued).
    pub fn resigned(token: &str, f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
        let mut claims = fastmcp_auth::dangerous::insecure_decode_claims(token).unwrap();
        f(&mut claims);
        JwtIssuer::new(BASE, BASE, JWT_KEY.as_bytes())
            .unwrap()
            .sign_claims(&claims)
            .unwrap()
    }

    pub fn jti(token: &str) -> String {
        fastmcp_auth::dangerous::insecure_decode_claims(token).unwrap()["jti"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Inline vs async verdicts: the inline one, when given, is the async one.
    pub fn verdicts(
        p: &OAuthProxy,
        header: Option<&str>,
        resource: &str,
        scopes: &[String],
    ) -> (Option<Value>, Value) {
        let inline = p
            .as_async()
            .check_bearer_inline(header, resource, scopes)
            .map(|r| {
                r.map(|c| c.to_json())
                    .unwrap_or_else(|e| json!({"error": e.code}))
            });
        let awaited = p
            .check_bearer(header, resource, scopes)
            .map(|c| c.to_json())
            .unwrap_or_else(|e| json!({"error": e.code}));
        (inline, awaited)
    }

    /// The entry files of the token's mapping and of its upstream tokens.
    pub fn entry_files(p: &OAuthProxy, disk: &DiskStore, token: &str) -> (PathBuf, PathBuf) {
        let mkey = format!("mapping:{}", jti(token));
        let mapping = p
            .as_async()
            .store()
            .as_sync()
            .unwrap()
            .get_sync(&mkey)
            .unwrap()
            .unwrap();
        let ukey = format!("upstream:{}", mapping["upstreamTokenKey"].as_str().unwrap());
        (
            disk.directory().join(disk.file_name_for(&mkey).unwrap()),
            disk.directory().join(disk.file_name_for(&ukey).unwrap()),
        )
    }
}

/// Every kind of token through `check_bearer_inline` on a DiskStore, in clear and encrypted: live, live with a
/// missing scope, forged signature, expired (re-signed with `exp` in the past, its mapping still stored),
/// another audience (re-signed; and a live token checked for another resource), a refresh token (its mapping
/// says `refresh`), a refresh token's claims re-signed as an access token, a revoked access token, a token of a
/// revoked grant, a token whose upstream entry is gone, a token with an unknown `jti`, no header, another scheme.
/// With every entry in the caches each is answered in place, with exactly the async verdict.
#[test]
fn inline_verdicts_are_the_async_verdicts_for_every_kind_of_token() {
    use proxy_in_place::*;
    let idp = fastmcp_auth_mock_idp::MockIdp::start();
    for encrypted in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let disk = Arc::new(open(dir.path()));
        let p = proxy(&idp, disk.clone(), encrypted);
        let (client, t) = login(&p, &idp);
        let (_, revoked) = login(&p, &idp);
        p.revoke(&revoked.access_token, &client.id, client.secret.as_deref())
            .ok();
        // `revoked` was another client's: revoke as its owner instead.
        let (c3, t3) = login(&p, &idp);
        p.revoke(&t3.access_token, &c3.id, c3.secret.as_deref()).unwrap();
        let (c4, t4) = login(&p, &idp);
        p.revoke(t4.refresh_token.as_deref().unwrap(), &c4.id, c4.secret.as_deref())
            .unwrap();
        let (_, t5) = login(&p, &idp);
        let (_, up5) = entry_files(&p, &disk, &t5.access_token);
        std::fs::remove_file(&up5).unwrap();
        let at = &t.access_token;
        let rt = t.refresh_token.clone().unwrap();
        let past = fastmcp_auth::jwt::unix_now() - 3600;
        let expired = resigned(at, |c| {
            c.insert("exp".into(), json!(past));
            c.insert("iat".into(), json!(past - 60));
        });
        let other_aud = resigned(at, |c| {
            c.insert("aud".into(), json!("https://evil.example/mcp"));
        });
        let refresh_as_access = resigned(&rt, |c| {
            c.remove("token_use");
        });
        let unknown_jti = resigned(at, |c| {
            c.insert("jti".into(), json!("no-such-jti"));
        });
        let b = |t: &str| format!("Bearer {t}");
        type Case<'a> = (&'a str, Option<String>, &'a str, Vec<String>, Option<bool>);
        let cases: Vec<Case> = vec![
            ("live", Some(b(at)), BASE, vec![], Some(true)),
            (
                "live, lower-case scheme",
                Some(format!("bearer {at}")),
                BASE,
                vec![],
                Some(true),
            ),
            (
                "missing scope",
                Some(b(at)),
                BASE,
                vec!["admin".into()],
                Some(false),
            ),
            ("forged", Some(format!("{}x", b(at))), BASE, vec![], Some(false)),
            ("expired", Some(b(&expired)), BASE, vec![], Some(false)),
            ("other audience", Some(b(&other_aud)), BASE, vec![], Some(false)),
            // A token for `base_url` is accepted for any resource (what clients that send no `resource` get).
            (
                "other resource",
                Some(b(at)),
                "https://elsewhere.example/mcp",
                vec![],
                None,
            ),
            ("refresh token", Some(b(&rt)), BASE, vec![], Some(false)),
            (
                "refresh re-signed as access",
                Some(b(&refresh_as_access)),
                BASE,
                vec![],
                Some(false),
            ),
            (
                "revoked (not the owner's revoke)",
                Some(b(&revoked.access_token)),
                BASE,
                vec![],
                None,
            ),
            (
                "revoked access token",
                Some(b(&t3.access_token)),
                BASE,
                vec![],
                Some(false),
            ),
            (
                "revoked grant",
                Some(b(&t4.access_token)),
                BASE,
                vec![],
                Some(false),
            ),
            (
                "upstream entry gone",
                Some(b(&t5.access_token)),
                BASE,
                vec![],
                Some(false),
            ),
            ("unknown jti", Some(b(&unknown_jti)), BASE, vec![], Some(false)),
            ("no header", None, BASE, vec![], Some(false)),
            ("basic", Some("Basic abc".into()), BASE, vec![], Some(false)),
            ("empty bearer", Some("Bearer ".into()), BASE, vec![], Some(false)),
        ];
        for (name, header, resource, scopes, want) in &cases {
            // Twice: the first read of an absent name may have to go to the device (no negative dentry yet).
            let _ = verdicts(&p, header.as_deref(), resource, scopes);
            let (inline, awaited) = verdicts(&p, header.as_deref(), resource, scopes);
            let inline = inline.unwrap_or_else(|| {
                panic!("{name} (encrypted: {encrypted}): declined with everything cached")
            });
            assert_eq!(inline, awaited, "{name} (encrypted: {encrypted})");
            if let Some(want) = want {
                assert_eq!(
                    inline["authorized"],
                    json!(*want),
                    "{name} (encrypted: {encrypted}): {inline}"
                );
            }
            // The upstream-token load in place agrees too.
            if let Some(h) = header.as_deref().and_then(|h| h.strip_prefix("Bearer ")) {
                let inline = p
                    .as_async()
                    .load_upstream_tokens_inline(h)
                    .map(|r| r.map(|u| u.map(|u| u.access_token)).ok());
                let awaited = p.load_upstream_tokens(h).map(|u| u.map(|u| u.access_token)).ok();
                if let Some(inline) = inline {
                    assert_eq!(inline, awaited, "{name}: load_upstream_tokens_inline");
                }
            }
        }
    }
}

/// Only one of the two entries a check reads (mapping, then upstream tokens) evicted from the page cache: the
/// in-place check declines (`None`), never "invalid" for a live token. (A declined `RWF_NOWAIT` read starts the
/// readahead itself, and a fast device may finish it before the kernel re-checks the page: then the read is
/// answered, with the right data — so each case is tried a few times and must decline at least once.) Once the
/// async check has brought the entry back, in place answers again with the async verdict.
#[test]
fn evicting_one_of_the_two_entries_declines_rather_than_refuses() {
    use proxy_in_place::*;
    let idp = fastmcp_auth_mock_idp::MockIdp::start();
    for encrypted in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let disk = Arc::new(open(dir.path()));
        let p = proxy(&idp, disk.clone(), encrypted);
        let (_, t) = login(&p, &idp);
        let auth = format!("Bearer {}", t.access_token);
        let awaited = p.check_bearer(Some(&auth), BASE, &[]).unwrap().to_json();
        assert_eq!(awaited["authorized"], true);
        let (mapping, upstream) = entry_files(&p, &disk, &t.access_token);
        for (which, path) in [("mapping", &mapping), ("upstream", &upstream)] {
            let mut declined = 0;
            for _ in 0..10 {
                evict(path);
                match p.as_async().check_bearer_inline(Some(&auth), BASE, &[]) {
                    None => declined += 1,
                    Some(r) => assert_eq!(r.unwrap().to_json(), awaited, "{which} (encrypted: {encrypted})"),
                }
                if let Some(r) = p.as_async().load_upstream_tokens_inline(&t.access_token) {
                    assert!(r.unwrap().is_some(), "{which}: refused in place");
                }
                assert_eq!(p.check_bearer(Some(&auth), BASE, &[]).unwrap().to_json(), awaited);
                let inline = p
                    .as_async()
                    .check_bearer_inline(Some(&auth), BASE, &[])
                    .expect("cached again");
                assert_eq!(inline.unwrap().to_json(), awaited);
            }
            assert!(declined > 0, "{which} (encrypted: {encrypted}): never declined");
        }
    }
}

/// A thread evicting the upstream entry over and over while another checks the live token in place: every in-place
/// answer is declined or "authorized", never "invalid" or an error.
#[test]
fn eviction_racing_in_place_checks_never_refuses_a_live_token() {
    use proxy_in_place::*;
    let idp = fastmcp_auth_mock_idp::MockIdp::start();
    let dir = tempfile::tempdir().unwrap();
    let disk = Arc::new(open(dir.path()));
    let p = Arc::new(proxy(&idp, disk.clone(), true));
    let (_, t) = login(&p, &idp);
    let auth = format!("Bearer {}", t.access_token);
    let (mapping, upstream) = entry_files(&p, &disk, &t.access_token);
    let stop = Arc::new(AtomicBool::new(false));
    let evictor = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                evict(if i % 2 == 0 { &mapping } else { &upstream });
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };
    let (mut answered, mut declined) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        match p.as_async().check_bearer_inline(Some(&auth), BASE, &[]) {
            None => {
                declined += 1;
                // The blocking check brings it back (as the Python binding's fallback does).
                let b = p
                    .as_async()
                    .check_bearer_blocking(Some(&auth), BASE, &[])
                    .unwrap()
                    .unwrap();
                assert_eq!(b.to_json()["authorized"], true);
            }
            Some(r) => {
                answered += 1;
                assert_eq!(r.unwrap().to_json()["authorized"], true);
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    evictor.join().unwrap();
    assert!(
        answered > 0 && declined > 0,
        "answered {answered}, declined {declined}"
    );
}

/// Revocation racing in-place checks: once `revoke` has returned, no in-place check says "authorized" again.
#[test]
fn no_in_place_authorization_after_revoke_returns() {
    use proxy_in_place::*;
    let idp = fastmcp_auth_mock_idp::MockIdp::start();
    let dir = tempfile::tempdir().unwrap();
    let disk = Arc::new(open(dir.path()));
    let p = Arc::new(proxy(&idp, disk.clone(), true));
    for round in 0..5 {
        let (c, t) = login(&p, &idp);
        let auth = format!("Bearer {}", t.access_token);
        let revoked = Arc::new(AtomicBool::new(false));
        let checker = {
            let (p, auth, revoked) = (p.clone(), auth.clone(), revoked.clone());
            std::thread::spawn(move || {
                let mut after = 0;
                loop {
                    let was_revoked = revoked.load(Ordering::SeqCst);
                    if let Some(r) = p.as_async().check_bearer_inline(Some(&auth), BASE, &[]) {
                        let ok = r.unwrap().to_json()["authorized"] == json!(true);
                        assert!(
                            !(ok && was_revoked),
                            "round {round}: authorized in place after revoke returned"
                        );
                    }
                    if was_revoked {
                        after += 1;
                        if after > 2000 {
                            return;
                        }
                    }
                }
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        // Revoke the whole grant (the refresh token) so that both entries go.
        p.revoke(t.refresh_token.as_deref().unwrap(), &c.id, c.secret.as_deref())
            .unwrap();
        revoked.store(true, Ordering::SeqCst);
        checker.join().unwrap();
    }
}

/// A proxy on a DiskStore with in-place reads counted by the metrics: an in-place check that declines half way
/// (mapping cached, upstream evicted) and then runs the async check counts the reads the check did.
#[test]
fn metrics_count_in_place_reads() {
    use proxy_in_place::*;
    let idp = fastmcp_auth_mock_idp::MockIdp::start();
    let dir = tempfile::tempdir().unwrap();
    let disk = Arc::new(open(dir.path()));
    let p = proxy(&idp, disk.clone(), true);
    let (_, t) = login(&p, &idp);
    let auth = format!("Bearer {}", t.access_token);
    let gets = || {
        p.as_async()
            .metrics_text()
            .lines()
            .filter(|l| l.starts_with("fastmcp_auth_store_operations_total") && l.contains("op=\"get\""))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum::<f64>()
    };
    let before = gets();
    assert!(p.as_async().check_bearer_inline(Some(&auth), BASE, &[]).is_some());
    assert_eq!(gets() - before, 2.0, "two reads in place, two counted");
    let (_, upstream) = entry_files(&p, &disk, &t.access_token);
    for _ in 0..10 {
        evict(&upstream);
        let before = gets();
        if p.as_async().check_bearer_inline(Some(&auth), BASE, &[]).is_none() {
            // The mapping read was answered (and counted), the upstream one declined (not counted).
            assert_eq!(gets() - before, 1.0);
            return;
        }
        p.check_bearer(Some(&auth), BASE, &[]).unwrap();
    }
    panic!("never declined");
}
