//! PKCE (RFC 7636): verifiers, S256 and plain challenges, constant-time validation.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};

/// Shortest verifier RFC 7636 §4.1 allows.
pub const MIN_VERIFIER_LEN: usize = 43;
/// Longest verifier RFC 7636 §4.1 allows.
pub const MAX_VERIFIER_LEN: usize = 128;

/// A PKCE challenge method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChallengeMethod {
    /// `BASE64URL(SHA256(verifier))`.
    S256,
    /// The verifier itself (only when explicitly allowed).
    Plain,
}

impl ChallengeMethod {
    /// Parses `S256` / `plain` (exact spelling, as RFC 7636 defines them).
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "S256" => Ok(ChallengeMethod::S256),
            "plain" => Ok(ChallengeMethod::Plain),
            _ => Err(Error::InvalidArgument("Unsupported challenge method".into())),
        }
    }

    /// The RFC spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeMethod::S256 => "S256",
            ChallengeMethod::Plain => "plain",
        }
    }
}

/// A code verifier: `[A-Za-z0-9-._~]{43,128}`.
#[derive(Clone, PartialEq, Eq)]
pub struct CodeVerifier(String);

impl std::fmt::Debug for CodeVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeVerifier([redacted])")
    }
}

impl CodeVerifier {
    /// A fresh random verifier of `len` characters (43-128), as fastmcp TS's `PKCEUtils.generateVerifier`.
    pub fn generate(len: usize) -> Result<Self> {
        if !(MIN_VERIFIER_LEN..=MAX_VERIFIER_LEN).contains(&len) {
            return Err(Error::InvalidArgument(
                "PKCE verifier length must be between 43 and 128".into(),
            ));
        }
        let mut bytes = vec![0u8; (len * 3).div_ceil(4)];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let mut s = URL_SAFE_NO_PAD.encode(&bytes);
        s.truncate(len);
        Ok(CodeVerifier(s))
    }

    /// Accepts a caller's verifier after checking length and alphabet.
    pub fn from_string(s: impl Into<String>) -> Result<Self> {
        let s = s.into();
        if !is_valid_verifier(&s) {
            return Err(Error::InvalidArgument(
                "PKCE verifier must be 43-128 characters of [A-Za-z0-9-._~]".into(),
            ));
        }
        Ok(CodeVerifier(s))
    }

    /// The verifier text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its challenge under `method`.
    pub fn challenge(&self, method: ChallengeMethod) -> String {
        generate_challenge(&self.0, method)
    }
}

/// Whether `s` is a verifier RFC 7636 accepts.
pub fn is_valid_verifier(s: &str) -> bool {
    (MIN_VERIFIER_LEN..=MAX_VERIFIER_LEN).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The challenge of `verifier` (fastmcp TS `PKCEUtils.generateChallenge`).
///
/// ```
/// use fastmcp_auth::pkce::{generate_challenge, ChallengeMethod};
/// assert_eq!(generate_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", ChallengeMethod::S256),
///            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
/// ```
pub fn generate_challenge(verifier: &str, method: ChallengeMethod) -> String {
    match method {
        ChallengeMethod::Plain => verifier.to_owned(),
        ChallengeMethod::S256 => URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
    }
}

/// Checks `verifier` against `challenge` in constant time. Empty inputs never validate.
pub fn validate_challenge(verifier: &str, challenge: &str, method: ChallengeMethod) -> bool {
    if verifier.is_empty() || challenge.is_empty() {
        return false;
    }
    let computed = generate_challenge(verifier, method);
    constant_time_eq(computed.as_bytes(), challenge.as_bytes())
}

/// Constant-time equality of two byte strings (length is not secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_lengths() {
        for len in [43, 64, 128] {
            let v = CodeVerifier::generate(len).unwrap();
            assert_eq!(v.as_str().len(), len);
            assert!(is_valid_verifier(v.as_str()));
        }
        assert!(CodeVerifier::generate(42).is_err());
        assert!(CodeVerifier::generate(129).is_err());
        assert!(CodeVerifier::from_string("short").is_err());
        assert!(CodeVerifier::from_string("a".repeat(43) + " ").is_err());
        assert_eq!(
            format!("{:?}", CodeVerifier::generate(43).unwrap()),
            "CodeVerifier([redacted])"
        );
    }

    #[test]
    fn validation() {
        let v = CodeVerifier::generate(64).unwrap();
        let c = v.challenge(ChallengeMethod::S256);
        assert!(validate_challenge(v.as_str(), &c, ChallengeMethod::S256));
        assert!(!validate_challenge(v.as_str(), &c, ChallengeMethod::Plain));
        assert!(validate_challenge(v.as_str(), v.as_str(), ChallengeMethod::Plain));
        assert!(!validate_challenge("", "", ChallengeMethod::Plain));
        assert!(!validate_challenge(v.as_str(), &c[..10], ChallengeMethod::S256));
        assert_eq!(ChallengeMethod::parse("S256").unwrap(), ChallengeMethod::S256);
        assert!(ChallengeMethod::parse("s256").is_err());
    }
}
