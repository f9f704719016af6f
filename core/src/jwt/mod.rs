//! HS256 JWTs in the two claim layouts of fastmcp (TypeScript and Python), byte-compatible with each.
//!
//! Verification is stricter than either peer: HS256 only (never `none`), a signature compared in constant time,
//! `exp` required, tokens over [`MAX_TOKEN_BYTES`] rejected before any decoding, and reserved claims can never be
//! overridden by caller-supplied claims.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::error::{Error, Result, TokenError};

mod issue;
pub(crate) mod payload;
mod verify;

use payload::{parse_checked_claims, parse_object};
pub use payload::{ClaimLookup, ClaimRef};

type HmacSha256 = Hmac<Sha256>;

/// base64url of `{"alg":"HS256","typ":"JWT"}` (fastmcp TS).
const TS_HEADER_B64: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";
/// base64url of `{"typ":"JWT","alg":"HS256"}` (fastmcp Python / joserfc).
const PY_HEADER_B64: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9";

/// Tokens longer than this are rejected before decoding (16 KiB).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Default access-token lifetime in seconds.
pub const DEFAULT_ACCESS_TOKEN_TTL: u64 = 3600;
/// Default refresh-token lifetime in seconds.
pub const DEFAULT_REFRESH_TOKEN_TTL: u64 = 2_592_000;

/// Claims that caller-supplied claims may never override.
pub const RESERVED_CLAIMS: &[&str] = &[
    "iss",
    "aud",
    "exp",
    "iat",
    "jti",
    "client_id",
    "scope",
    "token_use",
];

/// JSON claims of a token, in issue order.
pub type Claims = Map<String, Value>;

/// Whose claim layout tokens follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ClaimLayout {
    /// fastmcp TS: header `{"alg":"HS256","typ":"JWT"}`, claims `aud, client_id, exp, iat, iss, jti, scope[]`,
    /// extra claims at top level, no `token_use`.
    #[default]
    FastmcpTs,
    /// fastmcp Python: header `{"typ":"JWT","alg":"HS256"}`, claims `iss, aud, client_id, scope "a b", exp, iat,
    /// jti`, `token_use: "refresh"` on refresh tokens, `upstream_claims` nested.
    FastmcpPython,
}

impl ClaimLayout {
    /// Parses `ts` / `py` (also `typescript`, `python`).
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "ts" | "typescript" | "fastmcp-ts" => Ok(ClaimLayout::FastmcpTs),
            "py" | "python" | "fastmcp-py" => Ok(ClaimLayout::FastmcpPython),
            _ => Err(Error::InvalidArgument("layout must be `ts` or `py`".into())),
        }
    }
}

/// Access or refresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenUse {
    /// An access token.
    Access,
    /// A refresh token.
    Refresh,
}

impl TokenUse {
    /// `access` / `refresh`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenUse::Access => "access",
            TokenUse::Refresh => "refresh",
        }
    }

    /// Parses `access` / `refresh`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "access" => Ok(TokenUse::Access),
            "refresh" => Ok(TokenUse::Refresh),
            _ => Err(Error::InvalidArgument(
                "token use must be `access` or `refresh`".into(),
            )),
        }
    }
}

/// Optional inputs to issuing a token.
#[derive(Clone, Debug, Default)]
pub struct IssueOptions {
    /// Token id; 16 random bytes in base64url when absent (fastmcp TS). fastmcp Python callers always pass one.
    pub jti: Option<String>,
    /// Lifetime in seconds; the issuer's TTL for the token kind when absent.
    pub expires_in: Option<u64>,
    /// `sub` claim.
    pub subject: Option<String>,
    /// Claims from the upstream identity provider: nested as `upstream_claims` in the Python layout, merged at top
    /// level in the TS layout (reserved names skipped).
    pub upstream_claims: Option<Claims>,
    /// Extra top-level claims (reserved names skipped).
    pub extra_claims: Option<Claims>,
    /// `aud` of this token instead of the issuer's audience (RFC 8707: the resource the token is for). Verify
    /// accepts it only when the issuer was told to ([`JwtIssuer::with_accepted_audiences`]).
    pub audience: Option<String>,
}

impl IssueOptions {
    /// From JSON (for bindings): `jti`, `expires_in`, `subject`, `upstream_claims`, `extra_claims`; null or absent
    /// members keep their defaults, unknown members are an error.
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut o = IssueOptions::default();
        let Some(m) = v.as_object() else {
            return if v.is_null() {
                Ok(o)
            } else {
                Err(Error::InvalidArgument(
                    "issue options must be a JSON object".into(),
                ))
            };
        };
        let bad = |k: &str| Error::InvalidArgument(format!("issue option `{k}` has the wrong type"));
        for (k, v) in m.iter().filter(|(_, v)| !v.is_null()) {
            match k.as_str() {
                "jti" => o.jti = Some(v.as_str().ok_or_else(|| bad(k))?.to_owned()),
                "subject" => o.subject = Some(v.as_str().ok_or_else(|| bad(k))?.to_owned()),
                "expires_in" => o.expires_in = Some(v.as_u64().ok_or_else(|| bad(k))?),
                "upstream_claims" => o.upstream_claims = Some(v.as_object().ok_or_else(|| bad(k))?.clone()),
                "extra_claims" => o.extra_claims = Some(v.as_object().ok_or_else(|| bad(k))?.clone()),
                "audience" => o.audience = Some(v.as_str().ok_or_else(|| bad(k))?.to_owned()),
                _ => return Err(Error::InvalidArgument(format!("unknown issue option `{k}`"))),
            }
        }
        Ok(o)
    }
}

impl Verification {
    /// `{"valid": …, "claims": …, "error": "<code>", "message": "<peer wording>"}`.
    pub fn to_json(&self) -> Value {
        let mut v = serde_json::json!({"valid": self.valid});
        if let Some(c) = &self.claims {
            v["claims"] = Value::Object(c.clone());
        }
        if let Some(e) = self.error {
            v["error"] = e.as_str().into();
            v["message"] = e.message().into();
        }
        v
    }
}

/// The outcome of [`JwtIssuer::verify_detailed`], shaped like fastmcp TS's `verify()` result.
#[derive(Clone, Debug, PartialEq)]
pub struct Verification {
    /// Whether the token is accepted.
    pub valid: bool,
    /// The decoded claims, whenever the signature was good (also for expired or wrong-audience tokens).
    pub claims: Option<Claims>,
    /// Why it was rejected.
    pub error: Option<TokenError>,
}

struct SigningKey {
    kid: Option<String>,
    // HMAC state after absorbing the key; cloned per signature, so the key schedule runs once. No raw copy of
    // the key is kept.
    mac: HmacSha256,
}

impl SigningKey {
    fn new(secret: &[u8], kid: Option<String>) -> Result<Self> {
        if secret.is_empty() {
            return Err(Error::InvalidArgument("signing key must not be empty".into()));
        }
        let mac = HmacSha256::new_from_slice(secret)
            .map_err(|_| Error::InvalidArgument("signing key rejected by HMAC".into()))?;
        Ok(SigningKey { kid, mac })
    }
}

/// Issues and verifies HS256 JWTs.
///
/// ```
/// use fastmcp_auth::{JwtIssuer, IssueOptions, TokenUse};
/// let issuer = JwtIssuer::new("https://mcp.example.com", "https://mcp.example.com", b"secret").unwrap();
/// let token = issuer.issue_access_token("client-1", &["read"], IssueOptions::default()).unwrap();
/// let claims = issuer.verify(&token, TokenUse::Access).unwrap();
/// assert_eq!(claims["client_id"], "client-1");
/// ```
pub struct JwtIssuer {
    issuer: String,
    audience: String,
    keys: Vec<SigningKey>,
    layout: ClaimLayout,
    access_token_ttl: u64,
    refresh_token_ttl: u64,
    leeway: u64,
    fixed_now: Option<u64>,
    // Precomputed base64url header of the current key (it never changes per token).
    header_b64: String,
    // Audiences verify accepts besides `audience` (RFC 8707 resources the issuer issues for).
    accepted_audiences: Option<AudienceCheck>,
}

/// Which further audiences an issuer accepts.
pub type AudienceCheck = std::sync::Arc<dyn Fn(&str) -> bool + Send + Sync>;

impl fmt::Debug for JwtIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtIssuer")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("layout", &self.layout)
            .field("keys", &format_args!("[redacted; {}]", self.keys.len()))
            .finish()
    }
}

impl JwtIssuer {
    /// An issuer in the fastmcp TS layout with default TTLs. `signing_key` bytes are the HMAC key (both peers use
    /// the UTF-8 bytes of their key string).
    pub fn new(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        signing_key: impl AsRef<[u8]>,
    ) -> Result<Self> {
        let key = SigningKey::new(signing_key.as_ref(), None)?;
        let mut me = JwtIssuer {
            issuer: issuer.into(),
            audience: audience.into(),
            keys: vec![key],
            layout: ClaimLayout::FastmcpTs,
            access_token_ttl: DEFAULT_ACCESS_TOKEN_TTL,
            refresh_token_ttl: DEFAULT_REFRESH_TOKEN_TTL,
            leeway: 0,
            fixed_now: None,
            header_b64: String::new(),
            accepted_audiences: None,
        };
        me.rebuild_header();
        Ok(me)
    }

    /// Verification also accepts tokens whose `aud` passes `check` (the resources this issuer issues tokens for,
    /// RFC 8707), besides the configured audience.
    pub fn with_accepted_audiences(mut self, check: AudienceCheck) -> Self {
        self.accepted_audiences = Some(check);
        self
    }

    /// Selects the claim layout.
    pub fn with_layout(mut self, layout: ClaimLayout) -> Self {
        self.layout = layout;
        self.rebuild_header();
        self
    }

    /// Sets the access and refresh lifetimes (seconds, each at least 1).
    pub fn with_ttls(mut self, access: u64, refresh: u64) -> Result<Self> {
        if access == 0 || refresh == 0 {
            return Err(Error::InvalidArgument(
                "token TTLs must be at least 1 second".into(),
            ));
        }
        self.access_token_ttl = access;
        self.refresh_token_ttl = refresh;
        Ok(self)
    }

    /// Names the current key: tokens carry a `kid` header, and verification picks the key by it.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.keys[0].kid = Some(kid.into());
        self.rebuild_header();
        self
    }

    /// Adds a previous key that still verifies (never signs) during a signing-key rotation.
    pub fn with_previous_key(mut self, key: impl AsRef<[u8]>, kid: Option<String>) -> Result<Self> {
        self.keys.push(SigningKey::new(key.as_ref(), kid)?);
        Ok(self)
    }

    /// Seconds of clock skew tolerated on `exp`/`nbf`.
    pub fn with_leeway(mut self, seconds: u64) -> Self {
        self.leeway = seconds;
        self
    }

    /// Freezes "now" (seconds since the epoch) for issuing and verifying — for tests and vectors.
    pub fn with_fixed_time(mut self, now: Option<u64>) -> Self {
        self.fixed_now = now;
        self
    }

    /// Applies options given as JSON (for bindings): `layout` (`"ts"`/`"py"`), `access_token_ttl`,
    /// `refresh_token_ttl`, `kid`, `leeway`, `fixed_time`, `previous_keys` (`[{"key": "...", "kid": "..."}]`, key as
    /// text whose UTF-8 bytes are the HMAC key). Unknown members are an error.
    pub fn configure_from_json(mut self, opts: &Value) -> Result<Self> {
        let Some(m) = opts.as_object() else {
            return Err(Error::InvalidArgument(
                "issuer options must be a JSON object".into(),
            ));
        };
        let bad = |k: &str| Error::InvalidArgument(format!("issuer option `{k}` has the wrong type"));
        for (k, v) in m {
            match k.as_str() {
                "layout" => self = self.with_layout(ClaimLayout::parse(v.as_str().ok_or_else(|| bad(k))?)?),
                "kid" => self = self.with_kid(v.as_str().ok_or_else(|| bad(k))?),
                "leeway" => self = self.with_leeway(v.as_u64().ok_or_else(|| bad(k))?),
                "fixed_time" => {
                    self = self.with_fixed_time(if v.is_null() {
                        None
                    } else {
                        Some(v.as_u64().ok_or_else(|| bad(k))?)
                    })
                }
                "access_token_ttl" | "refresh_token_ttl" => {}
                "previous_keys" => {
                    for p in v.as_array().ok_or_else(|| bad(k))? {
                        let key = p.get("key").and_then(Value::as_str).ok_or_else(|| bad(k))?;
                        let kid = p.get("kid").and_then(Value::as_str).map(str::to_owned);
                        self = self.with_previous_key(key.as_bytes(), kid)?;
                    }
                }
                _ => return Err(Error::InvalidArgument(format!("unknown issuer option `{k}`"))),
            }
        }
        let ttl = |k: &str, d: u64| m.get(k).map_or(Ok(d), |v| v.as_u64().ok_or_else(|| bad(k)));
        let (a, r) = (
            ttl("access_token_ttl", self.access_token_ttl)?,
            ttl("refresh_token_ttl", self.refresh_token_ttl)?,
        );
        self.with_ttls(a, r)
    }

    /// The configured issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The configured audience.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The claim layout.
    pub fn layout(&self) -> ClaimLayout {
        self.layout
    }

    /// Access-token lifetime in seconds.
    pub fn access_token_ttl(&self) -> u64 {
        self.access_token_ttl
    }

    /// Refresh-token lifetime in seconds.
    pub fn refresh_token_ttl(&self) -> u64 {
        self.refresh_token_ttl
    }

    fn rebuild_header(&mut self) {
        let mut header = String::with_capacity(64);
        match self.layout {
            ClaimLayout::FastmcpTs => header.push_str(r#"{"alg":"HS256","typ":"JWT""#),
            ClaimLayout::FastmcpPython => header.push_str(r#"{"typ":"JWT","alg":"HS256""#),
        }
        if let Some(kid) = &self.keys[0].kid {
            header.push_str(",\"kid\":");
            header.push_str(&Value::String(kid.clone()).to_string());
        }
        header.push('}');
        self.header_b64 = URL_SAFE_NO_PAD.encode(header.as_bytes());
    }

    fn now(&self) -> u64 {
        self.fixed_now.unwrap_or_else(unix_now)
    }
}

/// base64url without padding for the payload segment, which every issue encodes and every verify decodes: SIMD where
/// the CPU has it (AVX2 / SSE4.1 / NEON, detected at run time; ~3× the `base64` crate on a 300-byte payload). Exactly
/// as strict as `base64`'s URL_SAFE_NO_PAD (no padding, canonical trailing bits): a differential test holds them
/// to the same answers.
mod b64 {
    use base64_simd::URL_SAFE_NO_PAD;

    /// One spare byte of capacity: the C ABI hands the payload out NUL-terminated, without reallocating.
    pub(super) fn decode(text: &str) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(text.len() / 4 * 3 + 3);
        URL_SAFE_NO_PAD.decode_append(text, &mut out).ok()?;
        Some(out)
    }

    pub(super) fn encode_append(bytes: &[u8], out: &mut String) {
        URL_SAFE_NO_PAD.encode_append(bytes, out);
    }
}

/// 16 random bytes in base64url, as fastmcp TS generates token ids.
pub fn generate_jti() -> String {
    // thread_rng is a CSPRNG (ChaCha12) seeded from the OS and reseeded periodically: no syscall per token.
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Decodes the claims of a token WITHOUT verifying it — for display and debugging only.
pub mod dangerous {
    use super::*;

    /// The payload of `token` as JSON, signature unchecked. Never base a decision on it.
    pub fn insecure_decode_claims(token: &str) -> Result<Claims> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge.into());
        }
        let p = token.split('.').nth(1).ok_or(TokenError::Malformed)?;
        let payload = URL_SAFE_NO_PAD.decode(p).map_err(|_| TokenError::Malformed)?;
        parse_object(&payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_base64_agrees_with_the_base64_crate() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let alphabet = b"AQgw_-+/=.\n \0\xffABCDEFGHIJKLMNOPRSTUVWXYZabcdefhijklmnopqrstuvxyz0123456789";
        for _ in 0..200_000 {
            let len = rng.gen_range(0..40);
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
                .collect();
            let Ok(text) = std::str::from_utf8(&bytes) else {
                continue;
            };
            assert_eq!(b64::decode(text), URL_SAFE_NO_PAD.decode(text).ok(), "{text:?}");
            let raw: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            let mut ours = String::from("x.");
            b64::encode_append(&raw, &mut ours);
            assert_eq!(ours, format!("x.{}", URL_SAFE_NO_PAD.encode(&raw)));
        }
    }

    fn issuer() -> JwtIssuer {
        JwtIssuer::new("https://i", "https://a", b"k")
            .unwrap()
            .with_fixed_time(Some(1_000_000))
    }

    /// Signs an arbitrary payload text with the issuer's key and header.
    fn sign_raw(i: &JwtIssuer, payload: &str) -> String {
        let input = format!("{}.{}", i.header_b64, URL_SAFE_NO_PAD.encode(payload));
        let mut mac = i.keys[0].mac.clone();
        mac.update(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn verify_payload_agrees_with_verify_detailed() {
        let i = issuer();
        let good = r#"{"aud":"https://a","exp":1003600,"iss":"https://i","scope":["x"],"n\u0061me":"esc"}"#;
        let payloads = [
            good,
            r#"{"aud":"https://a","exp":1003600,"iss":"https://i","exp":1003600}"#,
            r#"{"aud":"https://a","exp":1003600,"iss":"https://i","x":1,"x":2}"#,
            r#"{"aud":"https://a","exp":1003600,"iss":"https://i","x":1,"\u0078":2}"#,
            r#"{"aud":"https://a","exp":10,"iss":"https://i"}"#,
            r#"{"aud":"https://b","exp":1003600,"iss":"https://i"}"#,
            r#"{"aud":"https://a","exp":1003600,"iss":"https://j"}"#,
            r#"{"aud":"https://a","iss":"https://i"}"#,
            r#"{"aud":"https://a","exp":"1003600","iss":"https://i"}"#,
            r#"{"aud":"https://a","exp":1003600,"iss":"https://i","token_use":"refresh"}"#,
            r#"[1,2]"#,
            r#"{"aud":"https://a","exp":1003600,"iss":"https://i""#,
            r#"{"aud":"https://a","exp":1003600,"iss":"https://i","nbf":2000000}"#,
            // An out-of-range number in a claim nobody checks: one verdict on every face.
            r#"{"aud":"https://a","exp":1003600,"iss":"https://i","x":1e400}"#,
            r#"{"aud":"https://a","exp":1003600,"iss":"https://i","x":[{"y":-1e999}]}"#,
            r#"{"aud":"https://a","exp":1003600,"iss":"https://i","x":123456789012345678901234567890}"#,
        ];
        let many: String = (0..100).map(|n| format!(r#","k{n}":{n}"#)).collect();
        let many_ok = format!(r#"{{"aud":"https://a","exp":1003600,"iss":"https://i"{many}}}"#);
        let many_dup = format!(r#"{{"aud":"https://a","exp":1003600,"iss":"https://i"{many},"k7":0}}"#);
        let many_dup_early =
            format!(r#"{{"aud":"https://a","exp":1003600,"iss":"https://i","k99":1{many}}}"#);
        let payloads =
            payloads
                .iter()
                .copied()
                .chain([many_ok.as_str(), many_dup.as_str(), many_dup_early.as_str()]);
        for p in payloads {
            let t = sign_raw(&i, p);
            let d = i.verify_detailed(&t, TokenUse::Access);
            let (text, err) = i.verify_payload(&t, TokenUse::Access);
            assert_eq!(err, d.error, "{p}");
            let json = i.verify_json(&t, TokenUse::Access);
            assert_eq!(json.as_ref().err().and_then(Error::token_error), d.error, "{p}");
            assert_eq!(json.ok().is_some(), d.valid, "{p}");
            assert_eq!(text.is_some(), d.claims.is_some() || d.error.is_none(), "{p}");
            if d.valid {
                assert_eq!(text.as_deref(), Some(p));
            }
        }
    }

    #[test]
    fn reserved_claims_are_protected() {
        let mut extra = Map::new();
        extra.insert("iss".into(), "evil".into());
        extra.insert("exp".into(), 9_999_999_999u64.into());
        extra.insert("email".into(), "u@x".into());
        for layout in [ClaimLayout::FastmcpTs, ClaimLayout::FastmcpPython] {
            let i = issuer().with_layout(layout);
            let t = i
                .issue_access_token(
                    "c",
                    &["a"],
                    IssueOptions {
                        extra_claims: Some(extra.clone()),
                        ..Default::default()
                    },
                )
                .unwrap();
            let c = i.verify(&t, TokenUse::Access).unwrap();
            assert_eq!(c["iss"], "https://i");
            assert_eq!(c["exp"], 1_003_600);
            assert_eq!(c["email"], "u@x");
        }
    }

    #[test]
    fn token_use_rules() {
        let py = issuer().with_layout(ClaimLayout::FastmcpPython);
        let r = py
            .issue_refresh_token("c", &["a"], IssueOptions::default())
            .unwrap();
        let a = py
            .issue_access_token("c", &["a"], IssueOptions::default())
            .unwrap();
        assert_eq!(
            py.verify(&r, TokenUse::Access).unwrap_err().token_error(),
            Some(TokenError::WrongTokenUse)
        );
        assert_eq!(
            py.verify(&a, TokenUse::Refresh).unwrap_err().token_error(),
            Some(TokenError::WrongTokenUse)
        );
        assert!(py.verify(&r, TokenUse::Refresh).is_ok());
        let ts = issuer();
        let r = ts
            .issue_refresh_token("c", &["a"], IssueOptions::default())
            .unwrap();
        assert!(ts.verify(&r, TokenUse::Refresh).is_ok());
    }

    #[test]
    fn rotation_and_kid() {
        let old = issuer().with_kid("k1");
        let t = old
            .issue_access_token("c", &["a"], IssueOptions::default())
            .unwrap();
        let new = JwtIssuer::new("https://i", "https://a", b"k2")
            .unwrap()
            .with_kid("k2")
            .with_fixed_time(Some(1_000_000))
            .with_previous_key(b"k", Some("k1".into()))
            .unwrap();
        assert!(new.verify(&t, TokenUse::Access).is_ok());
        let only_new = JwtIssuer::new("https://i", "https://a", b"k2")
            .unwrap()
            .with_fixed_time(Some(1_000_000));
        assert_eq!(
            only_new.verify(&t, TokenUse::Access).unwrap_err().token_error(),
            Some(TokenError::InvalidSignature)
        );
        assert!(format!("{new:?}").contains("redacted"));
    }

    #[test]
    fn size_and_structure() {
        let i = issuer();
        let big = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(
            i.verify(&big, TokenUse::Access).unwrap_err().token_error(),
            Some(TokenError::TooLarge)
        );
        for bad in ["", "a.b", "a.b.c.d", "!!.!!.!!", "e30.e30.e30"] {
            assert!(i.verify(bad, TokenUse::Access).is_err(), "{bad}");
        }
        // Duplicate claim names are refused even with a good signature.
        let dup = r#"{"exp":9999999999,"exp":1,"iss":"https://i","aud":"https://a"}"#;
        let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
        let p = URL_SAFE_NO_PAD.encode(dup);
        let mut mac = HmacSha256::new_from_slice(b"k").unwrap();
        mac.update(format!("{h}.{p}").as_bytes());
        let s = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        let t = format!("{h}.{p}.{s}");
        assert_eq!(
            i.verify(&t, TokenUse::Access).unwrap_err().token_error(),
            Some(TokenError::Malformed)
        );
    }

    #[test]
    fn fixed_headers() {
        assert_eq!(
            URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
            TS_HEADER_B64
        );
        assert_eq!(
            URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT","alg":"HS256"}"#),
            PY_HEADER_B64
        );
    }

    #[test]
    fn missing_exp_rejected() {
        let i = issuer();
        let mut c = Map::new();
        c.insert("iss".into(), "https://i".into());
        c.insert("aud".into(), "https://a".into());
        let t = i.sign_claims(&c).unwrap();
        assert_eq!(
            i.verify(&t, TokenUse::Access).unwrap_err().token_error(),
            Some(TokenError::MissingExpiry)
        );
    }

    #[test]
    fn leeway() {
        let i = issuer();
        let t = i
            .issue_access_token(
                "c",
                &["a"],
                IssueOptions {
                    expires_in: Some(10),
                    ..Default::default()
                },
            )
            .unwrap();
        assert!(i.verify_at(&t, TokenUse::Access, 1_000_009).is_ok());
        assert!(i.verify_at(&t, TokenUse::Access, 1_000_010).is_err());
        let lenient = issuer().with_leeway(5);
        assert!(lenient.verify_at(&t, TokenUse::Access, 1_000_014).is_ok());
    }
}
