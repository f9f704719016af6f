//! AES-256-GCM over any store, byte-compatible with fastmcp TS's `EncryptedTokenStorage`.
//!
//! Key: scrypt(N=16384, r=8, p=1) of the key string with salt `fastmcp-oauth-proxy-salt`, 32 bytes, derived once
//! per store. Value: `JSON.stringify(value)` encrypted with a random 16-byte IV, stored as the string
//! `<iv hex>:<tag hex>:<ciphertext hex>`.

use std::sync::Arc;
use std::time::Duration;

use aes_gcm::aead::consts::U16;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, Nonce, Tag};
use async_trait::async_trait;
use rand::RngCore;
use serde_json::Value;
use zeroize::Zeroizing;

use super::{fingerprint, Store, SyncStore};
use crate::error::{Error, Result};

/// AES-256-GCM with fastmcp's 16-byte IV.
type Cipher = AesGcm<Aes256, U16>;

/// Salt fastmcp TS uses for the scrypt derivation.
pub const ENCRYPTION_SALT: &[u8] = b"fastmcp-oauth-proxy-salt";

/// Derives the AES key fastmcp TS derives from `key` (scrypt N=16384, r=8, p=1, 32 bytes).
pub fn derive_encryption_key(key: &str) -> Result<Zeroizing<[u8; 32]>> {
    let params =
        scrypt::Params::new(14, 8, 1, 32).map_err(|_| Error::InvalidArgument("scrypt parameters".into()))?;
    let mut out = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(key.as_bytes(), ENCRYPTION_SALT, &params, out.as_mut())
        .map_err(|_| Error::InvalidArgument("scrypt output length".into()))?;
    Ok(out)
}

/// Encryption keys of a store: the current one writes, all of them read.
#[derive(Clone)]
pub struct Keyring {
    ciphers: Arc<Vec<Cipher>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyring([redacted; {}])", self.ciphers.len())
    }
}

impl Keyring {
    /// Derives `current` and each of `previous` once.
    pub fn new(current: &str, previous: &[&str]) -> Result<Self> {
        if current.is_empty() {
            return Err(Error::InvalidArgument("encryption key must not be empty".into()));
        }
        let mut ciphers = Vec::with_capacity(1 + previous.len());
        for k in std::iter::once(&current).chain(previous) {
            let key = derive_encryption_key(k)?;
            ciphers.push(
                Cipher::new_from_slice(key.as_ref())
                    .map_err(|_| Error::InvalidArgument("key length".into()))?,
            );
        }
        Ok(Keyring {
            ciphers: Arc::new(ciphers),
        })
    }

    /// Encrypts the JSON text of `value` with the current key.
    pub fn encrypt(&self, value: &Value) -> Result<String> {
        let mut buf = Zeroizing::new(serde_json::to_vec(value)?);
        let mut iv = [0u8; 16];
        // A CSPRNG (ChaCha12, OS-seeded): random 128-bit IVs, as fastmcp's randomBytes(16).
        rand::thread_rng().fill_bytes(&mut iv);
        let tag = self.ciphers[0]
            .encrypt_in_place_detached(Nonce::<U16>::from_slice(&iv), b"", buf.as_mut())
            .map_err(|_| Error::InvalidArgument("value too large to encrypt".into()))?;
        let mut out = String::with_capacity(32 + 1 + 32 + 1 + buf.len() * 2);
        out.push_str(&hex::encode(iv));
        out.push(':');
        out.push_str(&hex::encode(tag));
        out.push(':');
        out.push_str(&hex::encode(buf.as_slice()));
        Ok(out)
    }

    /// Decrypts a stored string with any key of the ring.
    pub fn decrypt(&self, stored: &str) -> Result<Value> {
        self.decrypt_indexed(stored).map(|(v, _)| v)
    }

    /// Decrypts a stored string with any key of the ring, and says which: 0 is the current key, 1.. the previous
    /// keys in the order given.
    pub fn decrypt_indexed(&self, stored: &str) -> Result<(Value, usize)> {
        let mut parts = stored.split(':');
        let (Some(iv), Some(tag), Some(ct), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::DecryptFailed("not an <iv>:<tag>:<ciphertext> envelope"));
        };
        let iv = hex::decode(iv).map_err(|_| Error::DecryptFailed("IV is not hex"))?;
        let tag = hex::decode(tag).map_err(|_| Error::DecryptFailed("tag is not hex"))?;
        let ct = Zeroizing::new(hex::decode(ct).map_err(|_| Error::DecryptFailed("ciphertext is not hex"))?);
        if iv.len() != 16 || tag.len() != 16 {
            return Err(Error::DecryptFailed("IV and tag must be 16 bytes"));
        }
        for (index, cipher) in self.ciphers.iter().enumerate() {
            let mut buf = Zeroizing::new(ct.to_vec());
            let ok = cipher
                .decrypt_in_place_detached(
                    Nonce::<U16>::from_slice(&iv),
                    b"",
                    buf.as_mut(),
                    Tag::from_slice(&tag),
                )
                .is_ok();
            if ok {
                return serde_json::from_slice(&buf)
                    .map(|v| (v, index))
                    .map_err(|_| Error::DecryptFailed("plaintext is not JSON"));
            }
        }
        Err(Error::DecryptFailed(
            "no key authenticates this value (wrong key or tampered data)",
        ))
    }

    /// Reads a value the inner store returned: absent stays absent, anything undecryptable reads as absent.
    fn open(&self, key: &str, stored: Option<Value>) -> Option<Value> {
        let stored = stored?;
        let result = match &stored {
            Value::String(s) => self.decrypt(s),
            _ => Err(Error::DecryptFailed("stored value is not an encrypted string")),
        };
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(key = %fingerprint(key), error = %e, "EncryptedStore: value ignored");
                None
            }
        }
    }
}

/// Encrypts values before handing them to another store.
///
/// ```
/// use std::sync::Arc;
/// use fastmcp_auth::store::{EncryptedStore, MemoryStore, SyncStore};
/// let store = EncryptedStore::new(Arc::new(MemoryStore::new()), "storage-key", &[]).unwrap();
/// store.save_sync("k", serde_json::json!({"accessToken": "t"}), None).unwrap();
/// assert_eq!(store.get_sync("k").unwrap().unwrap()["accessToken"], "t");
/// ```
pub struct EncryptedStore {
    inner: Arc<dyn Store>,
    keys: Keyring,
    // Closing the wrapper closes only the wrapper: the inner store was passed in and stays its owner's (one rule
    // on every face: what you passed in stays yours).
    closed: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for EncryptedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptedStore")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl EncryptedStore {
    /// Wraps `inner`; `key` encrypts and decrypts, `previous_keys` only decrypt (key rotation).
    pub fn new(inner: Arc<dyn Store>, key: &str, previous_keys: &[&str]) -> Result<Self> {
        Ok(Self::with_keyring(inner, Keyring::new(key, previous_keys)?))
    }

    /// Wraps `inner` with an already derived key ring (several stores can share one derivation).
    pub fn with_keyring(inner: Arc<dyn Store>, keys: Keyring) -> Self {
        EncryptedStore {
            inner,
            keys,
            closed: false.into(),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    fn sync_inner(&self) -> Result<&dyn SyncStore> {
        self.live()?
            .as_sync()
            .ok_or_else(|| Error::Task("inner store has no synchronous face".into()))
    }

    /// The inner store, unless this wrapper was closed.
    fn live(&self) -> Result<&Arc<dyn Store>> {
        if self.closed.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(&self.inner)
    }
}

impl SyncStore for EncryptedStore {
    fn save_sync(&self, key: &str, value: Value, ttl: Option<Duration>) -> Result<()> {
        let sealed = self.keys.encrypt(&value)?;
        self.sync_inner()?.save_sync(key, Value::String(sealed), ttl)
    }
    fn get_sync(&self, key: &str) -> Result<Option<Value>> {
        Ok(self.keys.open(key, self.sync_inner()?.get_sync(key)?))
    }
    fn get_nowait(&self, key: &str) -> Option<Result<Option<Value>>> {
        let inner = match self.sync_inner() {
            Ok(s) => s,
            Err(e) => return Some(Err(e)),
        };
        Some(inner.get_nowait(key)?.map(|v| self.keys.open(key, v)))
    }
    fn delete_sync(&self, key: &str) -> Result<bool> {
        self.sync_inner()?.delete_sync(key)
    }
    fn take_sync(&self, key: &str) -> Result<Option<Value>> {
        Ok(self.keys.open(key, self.sync_inner()?.take_sync(key)?))
    }
    fn cleanup_sync(&self) -> Result<u64> {
        self.sync_inner()?.cleanup_sync()
    }
    fn size_sync(&self) -> Result<u64> {
        self.sync_inner()?.size_sync()
    }
    fn keys_sync(&self) -> Result<Vec<String>> {
        self.sync_inner()?.keys_sync()
    }
    fn replace_sync(&self, key: &str, expected: &Value, new: Value) -> Result<Option<super::Replaced>> {
        let inner = self.sync_inner()?;
        for _ in 0..CIPHERTEXT_ROUNDS {
            let stored = inner.get_sync(key)?;
            match self.sealed_replacement(key, stored, expected, &new)? {
                Sealed::Decided(r) => return Ok(Some(r)),
                Sealed::Swap(stored, sealed) => match inner.replace_sync(key, &stored, sealed)? {
                    Some(super::Replaced::Changed) => continue,
                    other => return Ok(other),
                },
            }
        }
        Ok(Some(super::Replaced::Changed))
    }
}

/// How often `replace` reads again after the ciphertext changed under it: a change of ciphertext alone (a rekey
/// re-encrypting the same value, fresh IV) is not a change of value, so the swap is tried again while the plaintext
/// is still the expected one.
const CIPHERTEXT_ROUNDS: usize = 8;

/// What [`Store::replace`] through the encryption does, once the stored value is read.
enum Sealed {
    /// Nothing to swap: absent (or unreadable, which reads as absent), or not the expected value.
    Decided(super::Replaced),
    /// Swap the stored ciphertext for the sealed new value, atomically in the store below: a compare-and-swap on the
    /// ciphertext, so another writer's value (always a fresh ciphertext: a random IV) is never overwritten.
    Swap(Value, Value),
}

impl EncryptedStore {
    fn sealed_replacement(
        &self,
        key: &str,
        stored: Option<Value>,
        expected: &Value,
        new: &Value,
    ) -> Result<Sealed> {
        let Some(stored) = stored else {
            return Ok(Sealed::Decided(super::Replaced::Absent));
        };
        Ok(match self.keys.open(key, Some(stored.clone())) {
            None => Sealed::Decided(super::Replaced::Absent),
            Some(plain) if plain != *expected => Sealed::Decided(super::Replaced::Changed),
            Some(_) => Sealed::Swap(stored, Value::String(self.keys.encrypt(new)?)),
        })
    }
}

#[async_trait]
impl Store for EncryptedStore {
    async fn save(&self, key: &str, value: Value, ttl: Option<Duration>) -> Result<()> {
        let sealed = self.keys.encrypt(&value)?;
        self.live()?.save(key, Value::String(sealed), ttl).await
    }
    async fn get(&self, key: &str) -> Result<Option<Value>> {
        Ok(self.keys.open(key, self.live()?.get(key).await?))
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        self.live()?.delete(key).await
    }
    async fn take(&self, key: &str) -> Result<Option<Value>> {
        Ok(self.keys.open(key, self.live()?.take(key).await?))
    }
    async fn cleanup(&self) -> Result<u64> {
        self.live()?.cleanup().await
    }
    async fn size(&self) -> Result<u64> {
        self.live()?.size().await
    }
    async fn keys(&self) -> Result<Vec<String>> {
        self.live()?.keys().await
    }
    fn as_sync(&self) -> Option<&dyn SyncStore> {
        self.inner.as_sync().map(|_| self as &dyn SyncStore)
    }
    fn completes_inline(&self) -> bool {
        self.inner.completes_inline()
    }
    /// Counters hold no secret (the proxy hashes their keys): the inner store's shared limits, unencrypted.
    async fn rate_limit(
        &self,
        key: &str,
        period: Duration,
        burst: u32,
        cost: u32,
        partial: bool,
    ) -> Result<Option<super::RateLimitAnswer>> {
        self.live()?.rate_limit(key, period, burst, cost, partial).await
    }
    /// Compare-and-swap on the plaintext, done as one on the ciphertext by the store below (`Ok(None)` when that
    /// store cannot).
    async fn replace(&self, key: &str, expected: &Value, new: Value) -> Result<Option<super::Replaced>> {
        let inner = self.live()?;
        for _ in 0..CIPHERTEXT_ROUNDS {
            let stored = inner.get(key).await?;
            match self.sealed_replacement(key, stored, expected, &new)? {
                Sealed::Decided(r) => return Ok(Some(r)),
                Sealed::Swap(stored, sealed) => match inner.replace(key, &stored, sealed).await? {
                    Some(super::Replaced::Changed) => continue,
                    other => return Ok(other),
                },
            }
        }
        Ok(Some(super::Replaced::Changed))
    }
    /// Closes this wrapper (later operations fail with `Closed`); the inner store stays open and its owner's.
    fn close(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rotation() {
        let old = Keyring::new("old", &[]).unwrap();
        let sealed = old.encrypt(&serde_json::json!({"a": [1, 2]})).unwrap();
        let rotated = Keyring::new("new", &["old"]).unwrap();
        assert_eq!(
            rotated.decrypt(&sealed).unwrap(),
            serde_json::json!({"a": [1, 2]})
        );
        let new_only = Keyring::new("new", &[]).unwrap();
        assert_eq!(
            new_only.decrypt(&sealed).unwrap_err().code().as_str(),
            "decrypt_failed"
        );
        for bad in ["", "a:b", "zz:zz:zz", "00:00:00", &sealed[..sealed.len() - 2]] {
            assert!(old.decrypt(bad).is_err(), "{bad}");
        }
        assert!(Keyring::new("", &[]).is_err());
    }
}
