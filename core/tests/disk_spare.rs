//! DiskStore's unnamed files made ahead for new entries (store/disk/spare.rs): made only when asked, used once,
//! closed with the store, never used by another process or in another directory's stead.
#![cfg(target_os = "linux")]

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use fastmcp_auth::store::{self, DiskStore, DiskStoreOptions, Store, SyncStore};
use serde_json::json;

fn open(dir: &Path) -> DiskStore {
    let mut o = DiskStoreOptions::new(dir);
    o.cleanup_interval = None;
    DiskStore::open(o).unwrap()
}

/// Unnamed files of `dir` this process holds open (`/proc/self/fd/N -> <dir>/#inode (deleted)`).
fn spares_open(dir: &Path) -> usize {
    let dir = dir.canonicalize().unwrap();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|t| t.starts_with(&dir) && t.to_string_lossy().ends_with("(deleted)"))
        .count()
}

fn prepare_all() {
    while store::prepare_ahead() {}
}

/// One test: `prepare_ahead` serves every store of the process, so scenarios running at once would fill each
/// other's spares between a step and its check.
#[test]
fn spares() {
    made_when_asked_used_once_and_closed_with_the_store();
    of_a_replaced_directory_still_make_entries_in_the_new_one();
    at_most_32_in_the_process();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(the_async_face_uses_them_too());
}

fn made_when_asked_used_once_and_closed_with_the_store() {
    store::enable_prepare_ahead();
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    assert_eq!(spares_open(tmp.path()), 0, "none before a store creates an entry");
    s.save_sync("first", json!(0), None).unwrap();
    prepare_all();
    assert_eq!(spares_open(tmp.path()), 2);
    for i in 0..6 {
        s.save_sync(&format!("k{i}"), json!({ "i": i }), None).unwrap();
        if i % 2 == 0 {
            prepare_all();
        }
    }
    let mut inodes = std::collections::HashSet::new();
    for i in 0..6 {
        assert_eq!(s.get_sync(&format!("k{i}")).unwrap(), Some(json!({ "i": i })));
        let m = std::fs::metadata(tmp.path().join(format!("k{i}.json"))).unwrap();
        assert_eq!(m.nlink(), 1, "a spare linked twice");
        assert_eq!(m.mode() & 0o777, 0o600);
        assert!(inodes.insert(m.ino()));
    }
    // A replacement takes one too, as its temp file renamed over the entry: a whole new file, no temp left.
    prepare_all();
    let old = std::fs::metadata(tmp.path().join("k0.json")).unwrap().ino();
    s.save_sync("k0", json!("again"), None).unwrap();
    assert_eq!(spares_open(tmp.path()), 1);
    assert_eq!(s.get_sync("k0").unwrap(), Some(json!("again")));
    let m = std::fs::metadata(tmp.path().join("k0.json")).unwrap();
    assert!(m.ino() != old && m.nlink() == 1 && m.mode() & 0o777 == 0o600);
    let names: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 7, "{names:?}"); // first, k0-k5
    prepare_all();
    assert_eq!(spares_open(tmp.path()), 2);
    s.close();
    assert_eq!(spares_open(tmp.path()), 0, "close releases the spares");
    assert!(!store::prepare_ahead() || spares_open(tmp.path()) == 0);

    // Dropping a store releases them too.
    let t2 = tempfile::tempdir().unwrap();
    let s2 = open(t2.path());
    s2.save_sync("a", json!(1), None).unwrap();
    prepare_all();
    assert_eq!(spares_open(t2.path()), 2);
    drop(s2);
    assert_eq!(spares_open(t2.path()), 0);
    prepare_all(); // a dropped store's request is skipped
}

fn of_a_replaced_directory_still_make_entries_in_the_new_one() {
    store::enable_prepare_ahead();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let s = open(&dir);
    s.save_sync("a", json!(1), None).unwrap();
    prepare_all();
    std::fs::rename(&dir, tmp.path().join("old")).unwrap();
    std::fs::create_dir(&dir).unwrap();
    s.save_sync("b", json!(2), None).unwrap();
    assert_eq!(s.get_sync("b").unwrap(), Some(json!(2)));
    assert!(dir.join("b.json").is_file());
    assert!(!tmp.path().join("old").join("b.json").exists());
}

const FORK_CHILD: &str = "FASTMCP_AUTH_SPARE_FORK_TEST";

#[test]
fn a_forked_child_never_writes_into_its_parents_spares() {
    if std::env::var_os(FORK_CHILD).is_none() {
        // fork() copies only the calling thread: this test again, alone (its only other thread is the harness's,
        // waiting for it), so that no lock is held by a thread the child would not have.
        // Its output captured: the harness's summary line is this test's, not another one to count.
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "a_forked_child_never_writes_into_its_parents_spares",
                "--test-threads=1",
            ])
            .env(FORK_CHILD, "1")
            .output()
            .unwrap();
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    store::enable_prepare_ahead();
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    s.save_sync("warm", json!(0), None).unwrap();
    prepare_all();
    assert_eq!(spares_open(tmp.path()), 2);
    // SAFETY: no other thread holds a lock (see above); the child only writes a file and exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let ok = s.save_sync("child", json!("written by the child"), None).is_ok();
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    s.save_sync("parent", json!("written by the parent"), None)
        .unwrap();
    assert_eq!(s.get_sync("child").unwrap(), Some(json!("written by the child")));
    assert_eq!(
        s.get_sync("parent").unwrap(),
        Some(json!("written by the parent"))
    );
    let ino = |k: &str| {
        std::fs::metadata(tmp.path().join(format!("{k}.json")))
            .unwrap()
            .ino()
    };
    assert_ne!(ino("child"), ino("parent"));
    assert_eq!(
        std::fs::metadata(tmp.path().join("parent.json")).unwrap().nlink(),
        1
    );
}

async fn the_async_face_uses_them_too() {
    store::enable_prepare_ahead();
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    s.save("a", json!(1), None).await.unwrap();
    prepare_all();
    for i in 0..4 {
        s.save(&format!("k{i}"), json!(i), None).await.unwrap();
        prepare_all();
    }
    for i in 0..4 {
        assert_eq!(Store::get(&s, &format!("k{i}")).await.unwrap(), Some(json!(i)));
    }
    assert_eq!(spares_open(tmp.path()), 2);
}

/// Each spare is an open descriptor: 20 stores wanting 2 each get 32 in all, and closing them gives the places back.
fn at_most_32_in_the_process() {
    let tmp = tempfile::tempdir().unwrap();
    let stores: Vec<_> = (0..20)
        .map(|i| {
            let s = open(&tmp.path().join(format!("s{i}")));
            s.save_sync("a", json!(i), None).unwrap();
            s
        })
        .collect();
    prepare_all();
    let held = || -> usize {
        (0..20)
            .map(|i| spares_open(&tmp.path().join(format!("s{i}"))))
            .sum()
    };
    assert_eq!(held(), 32);
    let of_first_five: usize = (0..5)
        .map(|i| spares_open(&tmp.path().join(format!("s{i}"))))
        .sum();
    for s in &stores[..5] {
        s.close();
    }
    assert_eq!(held(), 32 - of_first_five);
    for s in &stores[5..] {
        s.save_sync("b", json!(1), None).unwrap();
    }
    prepare_all();
    assert_eq!(
        held(),
        30,
        "the closed stores gave their places back: 15 stores, 2 each"
    );
    drop(stores);
    assert_eq!(held(), 0);
}
