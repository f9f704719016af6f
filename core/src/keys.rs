//! Key derivation, byte-compatible with both fastmcp implementations.
//!
//! - [`derive_key`]: fastmcp TS `JWTIssuer.deriveKey(secret, iterations)` — PBKDF2-HMAC-SHA256, salt
//!   `fastmcp-oauth-proxy`, 32 bytes, standard base64.
//! - [`derive_jwt_key`]: fastmcp Python `derive_jwt_key(high_entropy_material=… | low_entropy_material=…, salt=…)` —
//!   HKDF-SHA256 (info `Fernet`) or PBKDF2-HMAC-SHA256 with 1,000,000 iterations; urlsafe base64 (padded).

use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::Engine;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Salt fastmcp TS uses for `JWTIssuer.deriveKey`.
pub const DERIVE_KEY_SALT: &[u8] = b"fastmcp-oauth-proxy";
/// Default PBKDF2 iteration count of [`derive_key`] (fastmcp TS default).
pub const DERIVE_KEY_ITERATIONS: u32 = 100_000;
/// PBKDF2 iteration count fastmcp Python uses for low-entropy material.
pub const JWT_KEY_PBKDF2_ITERATIONS: u32 = 1_000_000;

/// Which kind of material [`derive_jwt_key`] receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyMaterial<'a> {
    /// Random, high-entropy input (e.g. a client secret): HKDF-SHA256.
    HighEntropy(&'a str),
    /// A human-chosen password: PBKDF2-HMAC-SHA256 with 1,000,000 iterations.
    LowEntropy(&'a str),
}

/// PBKDF2-HMAC-SHA256 of `secret`, salt `fastmcp-oauth-proxy`, 32 bytes, standard base64 — exactly fastmcp TS's
/// `JWTIssuer.deriveKey(secret, iterations)`.
///
/// ```
/// let key = fastmcp_auth::derive_key("secret", 1000).unwrap();
/// assert_eq!(key, "0azCaDgbB1X8gNjWeeez+OLi4U5cuHqOwkjmubrpHOE=");
/// ```
pub fn derive_key(secret: &str, iterations: u32) -> Result<String> {
    if iterations == 0 {
        return Err(Error::InvalidArgument("iterations must be at least 1".into()));
    }
    let mut out = Zeroizing::new([0u8; 32]);
    pbkdf2::pbkdf2_hmac::<Sha256>(secret.as_bytes(), DERIVE_KEY_SALT, iterations, out.as_mut());
    Ok(STANDARD.encode(out.as_ref()))
}

/// fastmcp Python's `derive_jwt_key`: returns the urlsafe base64 text whose bytes are the HS256 key.
///
/// ```
/// use fastmcp_auth::{derive_jwt_key, KeyMaterial};
/// let key = derive_jwt_key(KeyMaterial::HighEntropy("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
///                          "fastmcp-jwt-signing-key").unwrap();
/// assert_eq!(key, "bZNjJTFMnfygulop1ftTP7ZkR6Vrlcsc8jVDXc4NhGQ=");
/// ```
pub fn derive_jwt_key(material: KeyMaterial<'_>, salt: &str) -> Result<String> {
    derive_jwt_key_with_iterations(material, salt, JWT_KEY_PBKDF2_ITERATIONS)
}

/// [`derive_jwt_key`] with a chosen PBKDF2 iteration count for low-entropy material (fastmcp Python uses 10 in its
/// test mode). Zero iterations is an error.
pub fn derive_jwt_key_with_iterations(
    material: KeyMaterial<'_>,
    salt: &str,
    iterations: u32,
) -> Result<String> {
    let mut out = Zeroizing::new([0u8; 32]);
    match material {
        KeyMaterial::HighEntropy(m) => {
            Hkdf::<Sha256>::new(Some(salt.as_bytes()), m.as_bytes())
                .expand(b"Fernet", out.as_mut())
                .map_err(|_| Error::InvalidArgument("HKDF output length".into()))?;
        }
        KeyMaterial::LowEntropy(m) => {
            if iterations == 0 {
                return Err(Error::InvalidArgument("iterations must be at least 1".into()));
            }
            pbkdf2::pbkdf2_hmac::<Sha256>(m.as_bytes(), salt.as_bytes(), iterations, out.as_mut());
        }
    }
    Ok(URL_SAFE.encode(out.as_ref()))
}

/// Picks the material from two optional inputs the way fastmcp Python does: exactly one must be given.
pub fn key_material<'a>(high: Option<&'a str>, low: Option<&'a str>) -> Result<KeyMaterial<'a>> {
    match (high, low) {
        (Some(h), None) => Ok(KeyMaterial::HighEntropy(h)),
        (None, Some(l)) => Ok(KeyMaterial::LowEntropy(l)),
        (Some(_), Some(_)) => Err(Error::InvalidArgument(
            "Either high_entropy_material or low_entropy_material must be provided, but not both".into(),
        )),
        (None, None) => Err(Error::InvalidArgument(
            "Either high_entropy_material or low_entropy_material must be provided".into(),
        )),
    }
}

/// 32 random bytes as standard base64: a fresh key for `jwt_signing_key` or an encryption key.
pub fn generate_key() -> String {
    use rand::RngCore;
    let mut b = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(b.as_mut());
    STANDARD.encode(b.as_ref())
}

/// A short name for a key that tells keys apart without revealing them: the first 8 hex digits of
/// HMAC-SHA256(key, `fastmcp-auth key fingerprint`). 32 bits cannot recover a strong key; a weak key (which
/// [`crate::proxy::secret_policy::key_weakness`] flags) should be replaced whatever is printed about it.
///
/// ```
/// let f = fastmcp_auth::keys::key_fingerprint(b"a key");
/// assert_eq!(f.len(), 8);
/// assert_ne!(f, fastmcp_auth::keys::key_fingerprint(b"another key"));
/// ```
pub fn key_fingerprint(key: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(b"fastmcp-auth key fingerprint");
    hex::encode(&mac.finalize().into_bytes()[..4])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors() {
        assert!(derive_key("x", 0).is_err());
        assert!(derive_jwt_key_with_iterations(KeyMaterial::LowEntropy("x"), "s", 0).is_err());
        assert!(key_material(None, None).is_err());
        assert!(key_material(Some("a"), Some("b")).is_err());
        assert_eq!(
            key_material(Some("a"), None).unwrap(),
            KeyMaterial::HighEntropy("a")
        );
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(generate_key(), generate_key());
        assert_eq!(STANDARD.decode(generate_key()).unwrap().len(), 32);
    }
}
