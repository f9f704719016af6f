//! Re-encrypting a store under a new key while servers keep using it (`fastmcp-auth store rekey`).
//!
//! The procedure (README "Key rotation runbook"): servers run with the new key as `encryption_key` and the old one
//! in `previous_encryption_keys`, so they read both and write only the new one; then [`rekey`] rewrites every entry
//! still under an old key; then the old key can go. Each entry is rewritten with [`Store::replace`] (compare and
//! swap, expiry kept): a value a server wrote meanwhile is never overwritten, and is read again (a server writes
//! under the new key, so the second look finds it done). Interrupted and run again, it resumes: entries already
//! under the new key are counted and left alone.

use futures_util::stream::{self, StreamExt};
use serde_json::Value;

use super::{Keyring, Replaced, Store};
use crate::error::{Error, Result};

/// Entries rewritten concurrently (each is a few small I/O operations; more mostly queues on the store).
const CONCURRENCY: usize = 8;
/// Attempts per entry when other writers keep changing it.
const ATTEMPTS: usize = 5;

/// What [`rekey`] did (or, with `dry_run`, would do), entry by entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RekeySummary {
    /// Entries examined (the store's keys when the run started).
    pub total: u64,
    /// Re-encrypted under the new key (with `dry_run`: entries under an old key, which a run would rewrite).
    pub rewritten: u64,
    /// Already under the new key (written by a server since the rotation, or by an earlier run).
    pub already_new: u64,
    /// Not encrypted values (the rate limits' counters, a plain store): left alone.
    pub not_encrypted: u64,
    /// Encrypted, but under none of the given keys (or tampered with): left alone.
    pub unreadable: u64,
    /// Gone before they could be read or rewritten (taken, deleted or expired meanwhile): nothing to do.
    pub gone: u64,
    /// Changed by other writers on every attempt: left as they wrote them (run again to pick them up).
    pub contended: u64,
}

impl RekeySummary {
    /// Whether every entry that was encrypted is now under the new key (nothing unreadable or contended).
    pub fn complete(&self) -> bool {
        self.unreadable == 0 && self.contended == 0
    }
}

/// One entry's outcome.
enum Outcome {
    Rewritten,
    AlreadyNew,
    NotEncrypted,
    Unreadable,
    Gone,
    Contended,
}

/// Rewrites every entry of `raw` (the store *under* the EncryptedStore, holding the `<iv>:<tag>:<ciphertext>`
/// strings) that `old_keys` can open under `new_key`. `progress(done, total)` is called after each entry. With
/// `dry_run` nothing is written: the summary counts what a run would rewrite.
///
/// Errors: [`Error::InvalidArgument`] for an empty key, no old key, the new key among the old ones, or a store
/// that cannot swap values atomically (a store implemented in Node/Python, a filesystem without
/// `RENAME_EXCHANGE`); the store's own errors (I/O, Redis) as they happen — entries rewritten
/// before stay rewritten, and a rerun resumes.
pub async fn rekey(
    raw: &dyn Store,
    new_key: &str,
    old_keys: &[&str],
    dry_run: bool,
    progress: &(dyn Fn(u64, u64) + Send + Sync),
) -> Result<RekeySummary> {
    if old_keys.is_empty() {
        return Err(Error::InvalidArgument("rekey needs at least one old key".into()));
    }
    if old_keys.iter().any(|k| k.is_empty()) {
        return Err(Error::InvalidArgument("an old key is empty".into()));
    }
    if old_keys.contains(&new_key) {
        return Err(Error::InvalidArgument(
            "the new key is also given as an old key".into(),
        ));
    }
    let ring = Keyring::new(new_key, old_keys)?;
    let keys = raw.keys().await?;
    let total = keys.len() as u64;
    let mut summary = RekeySummary {
        total,
        ..Default::default()
    };
    let mut outcomes = stream::iter(keys)
        .map(|key| {
            let ring = &ring;
            async move { rekey_one(raw, ring, &key, dry_run).await }
        })
        .buffer_unordered(CONCURRENCY);
    let mut done = 0;
    while let Some(outcome) = outcomes.next().await {
        match outcome? {
            Outcome::Rewritten => summary.rewritten += 1,
            Outcome::AlreadyNew => summary.already_new += 1,
            Outcome::NotEncrypted => summary.not_encrypted += 1,
            Outcome::Unreadable => summary.unreadable += 1,
            Outcome::Gone => summary.gone += 1,
            Outcome::Contended => summary.contended += 1,
        }
        done += 1;
        progress(done, total);
    }
    Ok(summary)
}

async fn rekey_one(raw: &dyn Store, ring: &Keyring, key: &str, dry_run: bool) -> Result<Outcome> {
    for _ in 0..ATTEMPTS {
        let Some(stored) = raw.get(key).await? else {
            return Ok(Outcome::Gone);
        };
        let Value::String(text) = &stored else {
            return Ok(Outcome::NotEncrypted);
        };
        if !looks_sealed(text) {
            return Ok(Outcome::NotEncrypted);
        }
        let value = match ring.decrypt_indexed(text) {
            Ok((_, 0)) => return Ok(Outcome::AlreadyNew),
            Ok((value, _)) => value,
            Err(_) => return Ok(Outcome::Unreadable),
        };
        if dry_run {
            return Ok(Outcome::Rewritten);
        }
        let sealed = Value::String(ring.encrypt(&value)?);
        match raw.replace(key, &stored, sealed).await? {
            Some(Replaced::Replaced) => return Ok(Outcome::Rewritten),
            // Another writer got there first, or the entry was out of sight for a moment (a DiskStore claim that is
            // put back): look again — the next read decides (gone, or written under the new key by a server).
            Some(Replaced::Changed | Replaced::Absent) => continue,
            None => {
                return Err(Error::InvalidArgument(
                    "this store cannot replace values atomically, so it cannot be rekeyed while in use \
                     (DiskStore needs a filesystem with renameat2 RENAME_EXCHANGE: ext4, xfs, btrfs, tmpfs)"
                        .into(),
                ))
            }
        }
    }
    Ok(Outcome::Contended)
}

/// Whether a stored string has the EncryptedStore envelope's shape: `<32 hex>:<32 hex>:<hex>`.
fn looks_sealed(text: &str) -> bool {
    let mut parts = text.split(':');
    let hex = |p: &str| p.bytes().all(|b| b.is_ascii_hexdigit());
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(iv), Some(tag), Some(ct), None) => {
            iv.len() == 32 && tag.len() == 32 && ct.len() % 2 == 0 && hex(iv) && hex(tag) && hex(ct)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EncryptedStore, MemoryStore, SyncStore};
    use std::sync::Arc;

    #[test]
    fn envelope_shape() {
        let sealed = Keyring::new("k", &[]).unwrap().encrypt(&Value::from(1)).unwrap();
        for (text, want) in [
            (sealed.as_str(), true),
            ("12345", false),
            ("a:b:c", false),
            ("", false),
            (
                "00000000000000000000000000000000:00000000000000000000000000000000:",
                true,
            ),
            (
                "00000000000000000000000000000000:00000000000000000000000000000000:0",
                false,
            ),
            (
                "0000000000000000000000000000000g:00000000000000000000000000000000:00",
                false,
            ),
            (
                "00000000000000000000000000000000:00000000000000000000000000000000:00:00",
                false,
            ),
        ] {
            assert_eq!(looks_sealed(text), want, "{text:?}");
        }
    }

    #[tokio::test]
    async fn rewrites_old_entries_and_counts_the_rest() {
        let raw: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let old = EncryptedStore::new(raw.clone(), "old-key", &[]).unwrap();
        let new = EncryptedStore::new(raw.clone(), "new-key", &[]).unwrap();
        let other = EncryptedStore::new(raw.clone(), "someone-else", &[]).unwrap();
        old.save_sync("a", Value::from("A"), None).unwrap();
        old.save_sync("b", Value::from("B"), None).unwrap();
        new.save_sync("c", Value::from("C"), None).unwrap();
        other.save_sync("d", Value::from("D"), None).unwrap();
        raw.save("ratelimit:x", Value::from(123), None).await.unwrap();
        raw.save("plain", Value::from("not sealed"), None).await.unwrap();

        let dry = rekey(raw.as_ref(), "new-key", &["old-key"], true, &|_, _| {})
            .await
            .unwrap();
        assert_eq!((dry.rewritten, dry.already_new), (2, 1));
        assert_eq!(
            old.get_sync("a").unwrap(),
            Some(Value::from("A")),
            "a dry run writes nothing"
        );

        let seen = std::sync::atomic::AtomicU64::new(0);
        let s = rekey(raw.as_ref(), "new-key", &["old-key"], false, &|d, t| {
            assert!(d <= t);
            seen.store(d, std::sync::atomic::Ordering::Relaxed);
        })
        .await
        .unwrap();
        assert_eq!(
            s,
            RekeySummary {
                total: 6,
                rewritten: 2,
                already_new: 1,
                not_encrypted: 2,
                unreadable: 1,
                gone: 0,
                contended: 0,
            }
        );
        assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 6);
        assert_eq!(new.get_sync("a").unwrap(), Some(Value::from("A")));
        assert_eq!(new.get_sync("b").unwrap(), Some(Value::from("B")));
        assert_eq!(old.get_sync("a").unwrap(), None, "the old key no longer opens it");
        assert_eq!(other.get_sync("d").unwrap(), Some(Value::from("D")), "left alone");
        // A rerun finds nothing to do.
        let again = rekey(raw.as_ref(), "new-key", &["old-key"], false, &|_, _| {})
            .await
            .unwrap();
        assert_eq!((again.rewritten, again.already_new), (0, 3));
    }

    #[tokio::test]
    async fn refuses_bad_keys() {
        let raw = MemoryStore::new();
        for (new, old) in [("n", vec![]), ("n", vec![""]), ("n", vec!["n"]), ("", vec!["o"])] {
            assert!(rekey(&raw, new, &old, false, &|_, _| {}).await.is_err());
        }
    }
}
