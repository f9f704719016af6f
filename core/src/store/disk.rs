//! One file per key, in fastmcp TS's `DiskStore` format: `{"expiresAt": <ms>, "value": <json>}`, pretty-printed.
//!
//! File names. fastmcp maps every character outside `[A-Za-z0-9_-]` to `_`, so `a:b`, `a.b` and `a_b` share one
//! file and overwrite each other. Two namings here ([`FileNaming`]), each reading the other's files:
//! - `Fastmcp` (default): fastmcp's names, so fastmcp TS reads our directory and we read its. A file whose name
//!   another key could share records its key in a `"key"` member (fastmcp ignores it); a key whose name already
//!   holds another key's file goes to its `Safe` name (or, for a plain key, its hashed name) instead.
//! - `Safe`: a plain key (only `[A-Za-z0-9_-]`) keeps fastmcp's name, any other key is percent-encoded
//!   (`mapping:abc` → `mapping%3Aabc.json`): injective.
//!
//! In both, no `.`/`/`/NUL survives into a name, so no key leaves the directory; a name too long for the
//! filesystem becomes `~<sha256 hex>` (recording the key). A key is looked up under its name, then under its other
//! name, where a file is accepted only if it records no key or exactly this one; `delete`/`take` remove both.
//!
//! A new entry is written to an unnamed file (`O_TMPFILE`, 0600, Linux) that is then linked under its name (one
//! directory operation); a replacement goes to a temp file renamed over the target. Optionally with fsync of file
//! and directory.
//! `take` renames the file to a unique claim name first: rename is atomic, so among threads and processes exactly
//! one caller wins. Corrupt files read as absent, are logged by fingerprint and left in place for inspection.
//!
//! Sweep cost: every save with a TTL records (expiry → name) in an in-memory index, so a sweep visits only what
//! has expired. A full scan (every file read) runs when the store opens and then hourly, to pick up entries
//! other processes wrote.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::ErrorKind;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use percent_encoding::percent_decode_str;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::disk_guard::{check_permissions, open_entry_file, read_entry_file, read_entry_file_nowait};
pub use super::disk_guard::{MAX_ENTRY_BYTES, MAX_NOWAIT_BYTES};
use super::sweeper::Sweeper;
use super::{expires_at_ms, fingerprint, now_ms, validate_key, Store, SyncStore};

// `Store::replace` (compare-and-swap by exchanging files) in its own file.
mod create;
mod expiry_index;
mod naming;
mod replace;
#[cfg(target_os = "linux")]
pub(super) mod spare;
use crate::error::{Error, Result};
use expiry_index::ExpiryIndex;
pub use naming::FileNaming;
use naming::Names;

/// Temp and claim files older than this are crash leftovers and removed by the full scan.
const STALE_AFTER: Duration = Duration::from_secs(3600);

/// Options of a [`DiskStore`].
#[derive(Clone, Debug)]
pub struct DiskStoreOptions {
    /// Directory holding the files; created (0700) when missing.
    pub directory: PathBuf,
    /// Interval of the background sweep; `None` disables it. Default 60 s.
    pub cleanup_interval: Option<Duration>,
    /// Extension of entry files, `.json` by default: a dot and 1-16 of `[A-Za-z0-9_-]`.
    pub file_extension: String,
    /// fsync each file before its rename and the directory after it: durable across power loss, slower.
    pub fsync: bool,
    /// How often the sweep re-reads every file to find entries other processes wrote. Default one hour.
    pub full_scan_interval: Duration,
    /// File names: fastmcp's ([`FileNaming::Fastmcp`], default) or [`FileNaming::Safe`]. Either reads the
    /// other's files.
    pub naming: FileNaming,
    /// Refuse (instead of warning about) a directory that is writable by group or others, or owned by another
    /// user. Default false.
    pub strict_permissions: bool,
}

impl DiskStoreOptions {
    /// Defaults for `directory`.
    pub fn new(directory: impl Into<PathBuf>) -> Self {
        DiskStoreOptions {
            directory: directory.into(),
            cleanup_interval: Some(Duration::from_secs(60)),
            file_extension: ".json".into(),
            fsync: false,
            full_scan_interval: Duration::from_secs(3600),
            naming: FileNaming::Fastmcp,
            strict_permissions: false,
        }
    }
}

#[derive(Serialize)]
struct EntryOut<'a> {
    #[serde(rename = "expiresAt")]
    expires_at: u64,
    value: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
}

#[derive(Deserialize)]
struct EntryIn<V = Value> {
    #[serde(rename = "expiresAt")]
    expires_at: f64,
    value: V,
    #[serde(default)]
    key: Option<String>,
}

struct Inner {
    dir: PathBuf,
    ext: String,
    naming: FileNaming,
    fsync: bool,
    full_scan_interval: Duration,
    index: Mutex<ExpiryIndex>,
    last_full_scan: Mutex<Option<Instant>>,
    closed: AtomicBool,
    /// Unnamed files made ahead for new entries (`spare.rs`), and this store as [`spare::prepare_ahead`] finds it.
    #[cfg(target_os = "linux")]
    spares: spare::Spares,
    #[cfg(target_os = "linux")]
    me: std::sync::Weak<Inner>,
}

#[cfg(target_os = "linux")]
impl spare::Refill for Inner {
    fn refill_one(&self) -> spare::RefillOutcome {
        self.spares.refill_one(&self.dir, &self.closed)
    }
}

/// Reads an entry file's bytes (`Ok(Err(why))`: something a store does not write is there).
type ReadFile = fn(&Path) -> std::io::Result<std::result::Result<Vec<u8>, &'static str>>;

/// Result of reading one entry file.
enum Read<V = Value> {
    Missing,
    Corrupt,
    Entry(EntryIn<V>),
}

/// A directory of JSON files, one per key, compatible with fastmcp TS's `DiskStore`.
///
/// ```
/// use fastmcp_auth::store::{DiskStore, DiskStoreOptions, SyncStore};
/// let dir = tempfile::tempdir().unwrap();
/// let store = DiskStore::open(DiskStoreOptions::new(dir.path())).unwrap();
/// store.save_sync("mapping:abc", serde_json::json!("v"), None).unwrap();
/// assert_eq!(store.get_sync("mapping:abc").unwrap(), Some(serde_json::json!("v")));
/// assert!(dir.path().join("mapping_abc.json").exists()); // fastmcp's name: fastmcp TS reads it too
/// ```
pub struct DiskStore {
    inner: Arc<Inner>,
    sweeper: Sweeper,
}

impl std::fmt::Debug for DiskStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskStore")
            .field("directory", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

impl DiskStore {
    /// Opens (creating when missing) the directory, runs the first full scan, starts the sweep.
    pub fn open(options: DiskStoreOptions) -> Result<Self> {
        let ext = options.file_extension;
        let ext_ok = ext.len() >= 2
            && ext.len() <= 17
            && ext.starts_with('.')
            && ext[1..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ext_ok {
            return Err(Error::InvalidArgument(
                "file_extension must be a dot followed by 1-16 of [A-Za-z0-9_-]".into(),
            ));
        }
        ensure_directory(&options.directory)?;
        check_permissions(&options.directory, options.strict_permissions)?;
        let inner = Arc::new_cyclic(|_me| Inner {
            dir: options.directory,
            ext,
            naming: options.naming,
            fsync: options.fsync,
            full_scan_interval: options.full_scan_interval,
            index: Mutex::new(ExpiryIndex::default()),
            last_full_scan: Mutex::new(None),
            closed: AtomicBool::new(false),
            #[cfg(target_os = "linux")]
            spares: spare::Spares::default(),
            #[cfg(target_os = "linux")]
            me: _me.clone(),
        });
        inner.full_scan();
        let sweeper = match options.cleanup_interval {
            Some(i) if !i.is_zero() => {
                Sweeper::spawn("fastmcp-auth-disk-sweep", i, Arc::downgrade(&inner), |s| {
                    if let Err(e) = s.cleanup() {
                        tracing::warn!(error = %e, "DiskStore sweep failed");
                    }
                })
            }
            _ => Sweeper::disabled(),
        };
        Ok(DiskStore { inner, sweeper })
    }

    /// Shorthand for [`open`](Self::open) with default options.
    pub fn new(directory: impl Into<PathBuf>) -> Result<Self> {
        Self::open(DiskStoreOptions::new(directory))
    }

    /// The directory.
    pub fn directory(&self) -> &Path {
        &self.inner.dir
    }

    /// The file our store uses for `key` (for tools and tests).
    pub fn file_name_for(&self, key: &str) -> Result<String> {
        validate_key(key)?;
        Ok(self.inner.names(key).own)
    }

    /// fastmcp's file name for `key`: every character outside `[A-Za-z0-9_-]` becomes `_`.
    pub fn legacy_file_name(key: &str, ext: &str) -> String {
        naming::legacy_file_name(key, ext)
    }

    /// Whether the background sweep thread is running.
    pub fn sweeper_running(&self) -> bool {
        self.sweeper.is_running()
    }

    /// Runs a full scan now (reads every file), as the sweep does hourly; returns how many were removed.
    pub fn full_scan(&self) -> Result<u64> {
        self.inner.check_open()?;
        Ok(self.inner.full_scan())
    }
}

fn ensure_directory(dir: &Path) -> Result<()> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::NotADirectory(dir.display().to_string())),
        Err(e) if e.kind() == ErrorKind::NotFound => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io("create directory", e)),
        Err(e) => Err(Error::io("stat directory", e)),
    }
}

/// Removes the whitespace between JSON tokens (strings untouched): pretty-printed file text → compact text.
fn compact_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    out
}

fn random_suffix() -> String {
    let mut b = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

impl Inner {
    fn names(&self, key: &str) -> Names {
        naming::names(key, &self.ext, self.naming)
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    /// Whether a file under a key's other name (`Names::legacy`) holds that key: it records no key (fastmcp
    /// wrote it under its name for this key) or records exactly this one.
    fn other_holds<V>(entry: &EntryIn<V>, key: &str) -> bool {
        entry.key.as_deref().is_none_or(|k| k == key)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn read(&self, path: &Path) -> Result<Read> {
        self.read_as(path)
    }

    fn read_as<V: serde::de::DeserializeOwned>(&self, path: &Path) -> Result<Read<V>> {
        self.read_with(path, read_entry_file)
    }

    /// [`Self::read_as`] through `read_file` (blocking or not); an I/O error of kind `WouldBlock` is passed on.
    fn read_with<V: serde::de::DeserializeOwned>(&self, path: &Path, read_file: ReadFile) -> Result<Read<V>> {
        let bytes = match read_file(path) {
            Ok(Ok(b)) => b,
            Ok(Err(why)) => {
                let name = path.file_name().and_then(OsStr::to_str).unwrap_or("");
                tracing::warn!(file = %fingerprint(name), why, "DiskStore: entry skipped (left in place)");
                return Ok(Read::Corrupt);
            }
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Read::Missing),
            Err(e) => return Err(Error::io("read entry", e)),
        };
        match serde_json::from_slice::<EntryIn<V>>(&bytes) {
            Ok(entry) => Ok(Read::Entry(entry)),
            Err(_) => {
                let name = path.file_name().and_then(OsStr::to_str).unwrap_or("");
                tracing::warn!(file = %fingerprint(name), "DiskStore: corrupt entry file ignored (left in place)");
                Ok(Read::Corrupt)
            }
        }
    }

    /// Whether the entry at our own name belongs to `key`.
    fn owns<V>(entry: &EntryIn<V>, key: &str, names: &Names) -> bool {
        match &entry.key {
            Some(k) => k == key,
            // A hashed name must say whose it is; other names are the key itself (or fastmcp's file for it).
            None => !names.own.starts_with('~'),
        }
    }

    fn get(&self, key: &str) -> Result<Option<Value>> {
        self.get_as(key)
    }

    /// The value's own JSON text (compacted), without building a `Value` tree.
    fn get_text(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .get_as::<Box<serde_json::value::RawValue>>(key)?
            .map(|raw| compact_json(raw.get())))
    }

    fn get_as<V: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<V>> {
        self.get_with(key, read_entry_file)
    }

    /// `get` answered only from the kernel's caches (see [`read_entry_file_nowait`]): `None` when a read would
    /// have to wait on the device.
    fn get_nowait(&self, key: &str) -> Option<Result<Option<Value>>> {
        match self.get_with(key, read_entry_file_nowait) {
            Err(Error::Io { source, .. }) if source.kind() == ErrorKind::WouldBlock => None,
            r => Some(r),
        }
    }

    fn get_with<V: serde::de::DeserializeOwned>(&self, key: &str, read_file: ReadFile) -> Result<Option<V>> {
        self.check_open()?;
        validate_key(key)?;
        let names = self.names(key);
        let now = now_ms() as f64;
        match self.read_with::<V>(&self.path(&names.own), read_file)? {
            Read::Entry(e) if Self::owns(&e, key, &names) => {
                return Ok((e.expires_at >= now).then_some(e.value));
            }
            // Another key's file under a shared (fastmcp) name: this key may live under its other name.
            Read::Missing | Read::Entry(_) => {}
            _ => return Ok(None),
        }
        if let Some(legacy) = &names.legacy {
            if let Read::Entry(e) = self.read_with::<V>(&self.path(legacy), read_file)? {
                if Self::other_holds(&e, key) && e.expires_at >= now {
                    return Ok(Some(e.value));
                }
            }
        }
        Ok(None)
    }

    fn save(&self, key: &str, value: &Value, ttl: Option<Duration>) -> Result<()> {
        self.check_open()?;
        validate_key(key)?;
        let names = self.names(key);
        let expires_at = expires_at_ms(ttl);
        let mut target = &names.own;
        // Whether the target name is known to be free (then the entry can be created in one directory operation).
        let mut fresh = None;
        if names.records_key {
            // A name other keys can share: never overwrite another key's file there, use this key's other name.
            match self.read_as::<serde::de::IgnoredAny>(&self.path(&names.own))? {
                Read::Missing => fresh = Some(true),
                Read::Entry(e) if !Self::owns(&e, key, &names) => match &names.legacy {
                    Some(other) => target = other,
                    None => fresh = Some(false),
                },
                _ => fresh = Some(false),
            }
        }
        let entry = EntryOut {
            expires_at,
            value,
            key: (names.records_key || target != &names.own).then_some(key),
        };
        let content = serde_json::to_vec_pretty(&entry)?;
        let target_path = self.path(target);
        let fresh = fresh.unwrap_or_else(|| fs::symlink_metadata(&target_path).is_err());
        if fresh && self.create_linked(&target_path, &content)? {
            self.finish_save(target, expires_at)?;
            return Ok(());
        }
        let tmp = self.path(&format!(".{}.{}.tmp", target, random_suffix()));
        let write = || self.write_new_file(&tmp, &content);
        let mut written = write();
        if matches!(&written, Err(e) if e.kind() == ErrorKind::NotFound) {
            // The directory was removed under us (fastmcp re-creates it too): create it and retry once.
            ensure_directory(&self.dir)?;
            written = write();
        }
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io("write entry", e));
        }
        if let Err(e) = fs::rename(&tmp, &target_path) {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io("rename entry", e));
        }
        self.finish_save(target, expires_at)
    }

    fn finish_save(&self, name: &str, expires_at: u64) -> Result<()> {
        if self.fsync {
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| Error::io("fsync directory", e))?;
        }
        self.lock_index().set(name, expires_at);
        Ok(())
    }

    fn lock_index(&self) -> std::sync::MutexGuard<'_, ExpiryIndex> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Renames `name` to a unique claim name. `Ok(None)` when it does not exist (another caller won).
    fn claim(&self, name: &str) -> Result<Option<PathBuf>> {
        let claim = self.path(&format!("{name}.{}.claim", random_suffix()));
        match fs::rename(self.path(name), &claim) {
            Ok(()) => Ok(Some(claim)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("claim entry", e)),
        }
    }

    /// Puts a claimed file back under `name` unless a newer file took its place meanwhile.
    fn unclaim(&self, claim: &Path, name: &str) {
        match fs::hard_link(claim, self.path(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => {
                tracing::warn!(error = %e, file = %fingerprint(name), "DiskStore: could not restore a claimed file")
            }
        }
        let _ = fs::remove_file(claim);
    }

    /// Claims `name` and decides with `accept` whether to consume it (`None` = the file is corrupt); otherwise
    /// it is restored. Returns the consumed entry (`Some(None)` for a consumed corrupt file).
    fn take_name(
        &self,
        name: &str,
        accept: impl Fn(Option<&EntryIn>) -> bool,
    ) -> Result<Option<Option<EntryIn>>> {
        let Some(claim) = self.claim(name)? else {
            return Ok(None);
        };
        let read = match self.read(&claim) {
            Ok(Read::Entry(e)) => Some(e),
            Ok(_) => None,
            Err(err) => {
                self.unclaim(&claim, name);
                return Err(err);
            }
        };
        if accept(read.as_ref()) {
            let _ = fs::remove_file(&claim);
            self.lock_index().remove(name);
            Ok(Some(read))
        } else {
            self.unclaim(&claim, name);
            Ok(None)
        }
    }

    fn take(&self, key: &str) -> Result<Option<Value>> {
        self.check_open()?;
        validate_key(key)?;
        let names = self.names(key);
        let now = now_ms() as f64;
        let live = |e: EntryIn| (e.expires_at >= now).then_some(e.value);
        let legacy_ok = |e: Option<&EntryIn>| e.is_some_and(|e| Self::other_holds(e, key));
        if let Some(Some(e)) =
            self.take_name(&names.own, |e| e.is_some_and(|e| Self::owns(e, key, &names)))?
        {
            // Also drop a stale legacy file, so it cannot resurface.
            if let Some(l) = &names.legacy {
                self.take_name(l, legacy_ok)?;
            }
            return Ok(live(e));
        }
        if let Some(l) = &names.legacy {
            if let Some(Some(e)) = self.take_name(l, legacy_ok)? {
                return Ok(live(e));
            }
        }
        Ok(None)
    }

    fn delete(&self, key: &str) -> Result<bool> {
        self.check_open()?;
        validate_key(key)?;
        let names = self.names(key);
        // An explicit delete also removes a corrupt file under the key's own name.
        let mut removed = self
            .take_name(&names.own, |e| e.is_none_or(|e| Self::owns(e, key, &names)))?
            .is_some();
        if let Some(l) = &names.legacy {
            removed |= self
                .take_name(l, |e| e.is_some_and(|e| Self::other_holds(e, key)))?
                .is_some();
        }
        Ok(removed)
    }

    /// Removes `name` if it is (still) expired at `now`. Corrupt files stay.
    fn remove_if_expired(&self, name: &str, now: f64) -> Result<bool> {
        Ok(self
            .take_name(name, |e| e.is_some_and(|e| e.expires_at < now))?
            .is_some())
    }

    fn cleanup(&self) -> Result<u64> {
        self.check_open()?;
        let due = {
            let last = self.last_full_scan.lock().unwrap_or_else(|p| p.into_inner());
            last.is_none_or(|t| t.elapsed() >= self.full_scan_interval)
        };
        if due {
            return Ok(self.full_scan());
        }
        let started = Instant::now();
        let now = now_ms();
        let expired = self.lock_index().drain_expired(now);
        let scanned = expired.len() as u64;
        let mut removed = 0;
        for name in expired {
            match self.remove_if_expired(&name, now as f64) {
                Ok(true) => removed += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, file = %fingerprint(&name), "DiskStore: sweep could not remove")
                }
            }
        }
        super::sweep_stats::record("disk", scanned, removed, started.elapsed());
        Ok(removed)
    }

    /// Entry file names in the directory (temp and claim files excluded).
    fn entry_names(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io("list directory", e)),
        };
        for ent in rd {
            let ent = ent.map_err(|e| Error::io("list directory", e))?;
            let Ok(name) = ent.file_name().into_string() else {
                continue;
            };
            if self.is_entry_name(&name) {
                out.push(name);
            }
        }
        Ok(out)
    }

    fn is_entry_name(&self, name: &str) -> bool {
        match name.strip_suffix(self.ext.as_str()) {
            // Our names and fastmcp's never contain a dot before the extension; temp/claim files do.
            Some(stem) => !stem.is_empty() && !stem.contains('.'),
            None => false,
        }
    }

    /// The `expiresAt` of an entry file, reading only its head when it has the usual layout (both fastmcp and
    /// we write `{\n  "expiresAt": N,` first); other files are parsed whole. `None`: missing or corrupt.
    fn expiry_of(&self, path: &Path) -> Option<f64> {
        use std::io::Read as _;
        const HEAD: &[u8] = b"{\n  \"expiresAt\": ";
        let mut f = open_entry_file(path).ok()?.ok()?;
        let mut buf = [0u8; 64];
        let n = f.read(&mut buf).ok()?;
        if let Some(rest) = buf[..n].strip_prefix(HEAD) {
            if let Some(end) = rest.iter().position(|b| *b == b',' || *b == b'\n') {
                if let Some(v) = std::str::from_utf8(&rest[..end])
                    .ok()
                    .and_then(|t| t.trim().parse::<f64>().ok())
                {
                    return Some(v);
                }
            }
        }
        match self.read(path) {
            Ok(Read::Entry(e)) => Some(e.expires_at),
            _ => None,
        }
    }

    /// Reads every file: removes the expired, rebuilds the index, clears crash leftovers. The files are read by
    /// up to four threads (a scan is one open+read per file, so it is bound by syscalls, not by bandwidth).
    fn full_scan(&self) -> u64 {
        let started = Instant::now();
        let now = now_ms();
        let Ok(rd) = fs::read_dir(&self.dir) else { return 0 };
        let mut names = Vec::new();
        for ent in rd.flatten() {
            let Ok(name) = ent.file_name().into_string() else {
                continue;
            };
            if self.is_entry_name(&name) {
                names.push(name);
            } else if name.ends_with(".tmp") || name.contains(".claim") {
                // Leftovers of a crash between write and rename, or between claim and unlink.
                // By change time: a rename (a claim, a replace's swap) keeps the modification time of a file
                // written long ago but sets its change time to now, so a claim made a moment ago is not "old".
                let old = ent
                    .metadata()
                    .map(|m| {
                        use std::os::unix::fs::MetadataExt;
                        let changed = UNIX_EPOCH
                            + Duration::new(
                                m.ctime().max(0) as u64,
                                m.ctime_nsec().clamp(0, 999_999_999) as u32,
                            );
                        SystemTime::now().duration_since(changed).unwrap_or_default() > STALE_AFTER
                    })
                    .unwrap_or(false);
                if old {
                    let _ = fs::remove_file(ent.path());
                }
            }
        }
        let scanned = names.len() as u64;
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 4);
        let chunk = names.len().div_ceil(workers).max(1);
        let mut parts = Vec::with_capacity(workers);
        while !names.is_empty() {
            let rest = names.split_off(names.len().saturating_sub(chunk));
            parts.push(rest);
        }
        let results: Vec<(u64, Vec<(String, u64)>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = parts
                .into_iter()
                .map(|part| {
                    scope.spawn(move || {
                        let (mut removed, mut live) = (0u64, Vec::with_capacity(part.len()));
                        for name in part {
                            match self.expiry_of(&self.path(&name)) {
                                Some(t) if t < now as f64 => {
                                    if let Ok(true) = self.remove_if_expired(&name, now as f64) {
                                        removed += 1;
                                    }
                                }
                                Some(t) => live.push((name, t.max(0.0) as u64)),
                                None => {}
                            }
                        }
                        (removed, live)
                    })
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        let mut removed = 0;
        {
            // Entries saved by this process during the scan are already in the live index; merge, never replace.
            let mut index = self.lock_index();
            for (n, live) in results {
                removed += n;
                for (name, t) in live {
                    if !index.contains(&name) {
                        index.insert_new(name, t);
                    }
                }
            }
        }
        *self.last_full_scan.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        super::sweep_stats::record("disk", scanned, removed, started.elapsed());
        removed
    }

    fn keys(&self) -> Result<Vec<String>> {
        self.check_open()?;
        let mut out = Vec::new();
        for name in self.entry_names()? {
            let stem = &name[..name.len() - self.ext.len()];
            let recorded = || match self.read(&self.path(&name)) {
                Ok(Read::Entry(e)) => e.key,
                _ => None,
            };
            if stem.starts_with('~') {
                out.extend(recorded());
            } else if stem.contains('%') {
                if let Ok(k) = percent_decode_str(stem).decode_utf8() {
                    out.push(k.into_owned());
                }
            } else if stem.contains('_') {
                out.push(recorded().unwrap_or_else(|| stem.to_owned()));
            } else {
                out.push(stem.to_owned());
            }
        }
        Ok(out)
    }
}

impl SyncStore for DiskStore {
    fn save_sync(&self, key: &str, value: Value, ttl: Option<Duration>) -> Result<()> {
        self.inner.save(key, &value, ttl)
    }
    fn get_sync(&self, key: &str) -> Result<Option<Value>> {
        self.inner.get(key)
    }
    fn get_json_text(&self, key: &str) -> Result<Option<String>> {
        self.inner.get_text(key)
    }
    fn get_nowait(&self, key: &str) -> Option<Result<Option<Value>>> {
        self.inner.get_nowait(key)
    }
    fn delete_sync(&self, key: &str) -> Result<bool> {
        self.inner.delete(key)
    }
    fn take_sync(&self, key: &str) -> Result<Option<Value>> {
        self.inner.take(key)
    }
    fn cleanup_sync(&self) -> Result<u64> {
        self.inner.cleanup()
    }
    fn size_sync(&self) -> Result<u64> {
        self.inner.check_open()?;
        Ok(self.inner.entry_names()?.len() as u64)
    }
    fn keys_sync(&self) -> Result<Vec<String>> {
        self.inner.keys()
    }
    fn replace_sync(&self, key: &str, expected: &Value, new: Value) -> Result<Option<super::Replaced>> {
        self.inner.replace(key, expected, &new)
    }
}

/// Runs a file operation on tokio's blocking pool so async callers never stall their executor on disk I/O.
async fn off_thread<T: Send + 'static>(
    inner: &Arc<Inner>,
    f: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
) -> Result<T> {
    let inner = Arc::clone(inner);
    tokio::task::spawn_blocking(move || f(&inner))
        .await
        .map_err(|e| Error::Task(e.to_string()))?
}

#[async_trait]
impl Store for DiskStore {
    async fn save(&self, key: &str, value: Value, ttl: Option<Duration>) -> Result<()> {
        let key = key.to_owned();
        off_thread(&self.inner, move |i| i.save(&key, &value, ttl)).await
    }
    async fn get(&self, key: &str) -> Result<Option<Value>> {
        let key = key.to_owned();
        off_thread(&self.inner, move |i| i.get(&key)).await
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        let key = key.to_owned();
        off_thread(&self.inner, move |i| i.delete(&key)).await
    }
    async fn take(&self, key: &str) -> Result<Option<Value>> {
        let key = key.to_owned();
        off_thread(&self.inner, move |i| i.take(&key)).await
    }
    async fn cleanup(&self) -> Result<u64> {
        off_thread(&self.inner, |i| i.cleanup()).await
    }
    async fn size(&self) -> Result<u64> {
        off_thread(&self.inner, |i| {
            i.check_open()?;
            Ok(i.entry_names()?.len() as u64)
        })
        .await
    }
    async fn keys(&self) -> Result<Vec<String>> {
        off_thread(&self.inner, |i| i.keys()).await
    }
    fn as_sync(&self) -> Option<&dyn SyncStore> {
        Some(self)
    }
    async fn replace(&self, key: &str, expected: &Value, new: Value) -> Result<Option<super::Replaced>> {
        let (key, expected) = (key.to_owned(), expected.clone());
        off_thread(&self.inner, move |i| i.replace(&key, &expected, &new)).await
    }
    fn close(&self) {
        self.sweeper.stop();
        self.inner.closed.store(true, Ordering::Release);
        #[cfg(target_os = "linux")]
        self.inner.spares.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let dir = tempfile::tempdir().unwrap();
        let s = DiskStore::open(DiskStoreOptions {
            cleanup_interval: None,
            naming: FileNaming::Safe,
            ..DiskStoreOptions::new(dir.path())
        })
        .unwrap();
        assert_eq!(s.file_name_for("plain-Key9").unwrap(), "plain-Key9.json");
        assert_eq!(s.file_name_for("mapping:abc").unwrap(), "mapping%3Aabc.json");
        assert_eq!(s.file_name_for("../x").unwrap(), "%2E%2E%2Fx.json");
        assert_eq!(s.file_name_for("a\0b").unwrap(), "a%00b.json");
        let long = s.file_name_for(&"k".repeat(300)).unwrap();
        assert!(long.starts_with('~') && long.len() < naming::MAX_NAME);
        assert_eq!(
            DiskStore::legacy_file_name("mapping:abc-DEF_123", ".json"),
            "mapping_abc-DEF_123.json"
        );
    }

    #[test]
    fn compacting_keeps_strings() {
        let pretty = "{\n  \"a b\": [\n    1,\n    \"x \\\" y\"\n  ]\n}";
        let compact = compact_json(pretty);
        assert_eq!(compact, r#"{"a b":[1,"x \" y"]}"#);
        let v: Value = serde_json::from_str(pretty).unwrap();
        assert_eq!(compact, v.to_string());
    }
}
