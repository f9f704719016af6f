//! Custom-claims passthrough: claims of the upstream access token and ID token (when they are JWTs) copied into the
//! JWTs the proxy issues, as fastmcp TS's `customClaimsPassthrough` does (on by default there, off by default in
//! the core; the Node `OAuthProxy` turns it on like fastmcp).
//!
//! The upstream tokens come straight from the upstream token endpoint over the proxy's own back channel, so their
//! payloads are read without verifying a signature (fastmcp does the same). What is copied: every claim except the
//! protected ones (`aud`, `client_id`, `exp`, `iat`, `iss`, `jti`, `nbf`, `scope`, and `token_use`, which our
//! Python layout signs), minus `blocked_claims`, only `allowed_claims` when given, strings up to
//! `max_claim_value_size` UTF-16 units (JavaScript's `length`), numbers and booleans, arrays and objects only with
//! `allow_complex_claims` (serialised size within the same limit); `null` never. Names then get `claim_prefix`.
//! Access-token claims win over ID-token claims of the same name. Reserved claims can never be overridden
//! afterwards either: the issuer ignores them in extra claims.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::jwt::RESERVED_CLAIMS;

use super::model::UpstreamTokens;

/// Claims never copied from upstream: the issuer's reserved ones (fastmcp's list plus `token_use`) and `nbf`.
fn protected(name: &str) -> bool {
    RESERVED_CLAIMS.contains(&name) || name == "nbf"
}

/// Upstream JWT payloads larger than this are not read (a token endpoint response is small; this bounds the work).
const MAX_UPSTREAM_TOKEN: usize = 64 * 1024;

/// Decodes base64url as leniently as Node's `Buffer.from(x, "base64url")` where it matters: padding optional,
/// trailing bits ignored.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Which upstream claims the proxy copies into its JWTs (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimsPassthrough {
    /// Read the upstream access token's claims (when it is a JWT). Default true.
    pub from_access_token: bool,
    /// Read the ID token's claims. Default true.
    pub from_id_token: bool,
    /// Only these claim names (before the prefix). `None`: any.
    pub allowed_claims: Option<Vec<String>>,
    /// Never these claim names.
    pub blocked_claims: Vec<String>,
    /// Prefix put before every copied claim name.
    pub claim_prefix: Option<String>,
    /// Copy arrays and objects too. Default false.
    pub allow_complex_claims: bool,
    /// Longest string (or serialised array/object) copied, in UTF-16 units. Default 2000.
    pub max_claim_value_size: usize,
}

impl Default for ClaimsPassthrough {
    fn default() -> Self {
        ClaimsPassthrough {
            from_access_token: true,
            from_id_token: true,
            allowed_claims: None,
            blocked_claims: Vec::new(),
            claim_prefix: None,
            allow_complex_claims: false,
            max_claim_value_size: 2000,
        }
    }
}

impl ClaimsPassthrough {
    /// From the JSON the bindings hand over: `true` (defaults), `false`/`null` (off), or an object with the field
    /// names above (`claim_prefix` may be `false`); unknown members are an error.
    pub fn from_json(v: &Value) -> Result<Option<Self>> {
        let bad = |what: &str| Error::InvalidArgument(format!("config `custom_claims_passthrough`: {what}"));
        let m = match v {
            Value::Null | Value::Bool(false) => return Ok(None),
            Value::Bool(true) => return Ok(Some(Self::default())),
            Value::Object(m) => m,
            _ => return Err(bad("must be true, false or an object")),
        };
        let mut c = Self::default();
        for (k, v) in m {
            let names = |v: &Value| -> Result<Vec<String>> {
                v.as_array()
                    .and_then(|a| a.iter().map(|x| x.as_str().map(str::to_owned)).collect())
                    .ok_or_else(|| bad(&format!("`{k}` must be an array of strings")))
            };
            let flag = |v: &Value| {
                v.as_bool()
                    .ok_or_else(|| bad(&format!("`{k}` must be true or false")))
            };
            match (k.as_str(), v) {
                (_, Value::Null) => {}
                ("from_access_token", v) => c.from_access_token = flag(v)?,
                ("from_id_token", v) => c.from_id_token = flag(v)?,
                ("allow_complex_claims", v) => c.allow_complex_claims = flag(v)?,
                ("allowed_claims", v) => c.allowed_claims = Some(names(v)?),
                ("blocked_claims", v) => c.blocked_claims = names(v)?,
                ("claim_prefix", Value::Bool(false)) => c.claim_prefix = None,
                ("claim_prefix", Value::String(p)) => c.claim_prefix = (!p.is_empty()).then(|| p.clone()),
                ("claim_prefix", _) => return Err(bad("`claim_prefix` must be a string or false")),
                ("max_claim_value_size", v) => {
                    c.max_claim_value_size = v
                        .as_u64()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| bad("`max_claim_value_size` must be a positive integer"))?
                        as usize
                }
                _ => return Err(bad(&format!("unknown member `{k}`"))),
            }
        }
        Ok(Some(c))
    }

    /// The claims to add to the JWTs issued for `up`; `None` when there are none.
    pub fn extract(&self, up: &UpstreamTokens) -> Option<Map<String, Value>> {
        let mut out = Map::new();
        if self.from_access_token {
            out.extend(self.claims_of(&up.access_token));
        }
        if let (true, Some(id)) = (self.from_id_token, &up.id_token) {
            for (k, v) in self.claims_of(id) {
                out.entry(k).or_insert(v);
            }
        }
        (!out.is_empty()).then_some(out)
    }

    /// The copyable claims of one upstream token, prefixed; nothing when it is not a JWT with an object payload.
    fn claims_of(&self, token: &str) -> Map<String, Value> {
        let mut out = Map::new();
        if token.len() > MAX_UPSTREAM_TOKEN {
            return out;
        }
        let mut parts = token.split('.');
        let (Some(_), Some(payload), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return out;
        };
        let Some(Value::Object(claims)) = LENIENT
            .decode(payload)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        else {
            tracing::debug!("upstream token payload is not a JSON object; no claims copied");
            return out;
        };
        for (k, v) in claims {
            let allowed = self.allowed_claims.as_ref().is_none_or(|a| a.contains(&k));
            if protected(&k) || self.blocked_claims.contains(&k) || !allowed {
                continue;
            }
            if !self.value_ok(&v) {
                tracing::debug!(claim = %k, "skipping an upstream claim: type or size not allowed");
                continue;
            }
            let name = match &self.claim_prefix {
                Some(p) => format!("{p}{k}"),
                None => k,
            };
            out.insert(name, v);
        }
        out
    }

    fn value_ok(&self, v: &Value) -> bool {
        let utf16_len = |s: &str| s.encode_utf16().count();
        match v {
            Value::Null => false,
            Value::Bool(_) | Value::Number(_) => true,
            Value::String(s) => utf16_len(s) <= self.max_claim_value_size,
            Value::Array(_) | Value::Object(_) => {
                self.allow_complex_claims && utf16_len(&v.to_string()) <= self.max_claim_value_size
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    fn jwt(payload: &Value) -> String {
        let p = URL_SAFE_NO_PAD.encode(payload.to_string());
        format!("eyJhbGciOiJSUzI1NiJ9.{p}.c2ln")
    }

    fn up(access: &str, id: Option<&str>) -> UpstreamTokens {
        UpstreamTokens {
            access_token: access.into(),
            expires_in: 3600,
            id_token: id.map(str::to_owned),
            issued_at: "2026-01-01T00:00:00.000Z".into(),
            refresh_expires_in: None,
            refresh_token: None,
            scope: vec!["openid".into()],
            token_type: "Bearer".into(),
        }
    }

    #[test]
    fn copies_plain_claims_and_protects_the_reserved_ones() {
        let at = jwt(&json!({
            "sub": "u1", "email": "a@b.c", "admin": true, "n": 3.5, "nothing": null,
            "iss": "evil", "aud": "evil", "exp": 1, "iat": 1, "jti": "x", "nbf": 1, "scope": "all",
            "client_id": "evil", "token_use": "refresh", "groups": ["a"], "org": {"id": 1}
        }));
        let c = ClaimsPassthrough::default().extract(&up(&at, None)).unwrap();
        assert_eq!(
            Value::Object(c),
            json!({"sub": "u1", "email": "a@b.c", "admin": true, "n": 3.5})
        );
    }

    #[test]
    fn access_token_claims_win_over_id_token_claims() {
        let at = jwt(&json!({"email": "from-access", "a": 1}));
        let id = jwt(&json!({"email": "from-id", "name": "N"}));
        let c = ClaimsPassthrough::default().extract(&up(&at, Some(&id))).unwrap();
        assert_eq!(
            Value::Object(c),
            json!({"email": "from-access", "a": 1, "name": "N"})
        );
        let only_id = ClaimsPassthrough {
            from_access_token: false,
            ..Default::default()
        };
        let c = only_id.extract(&up(&at, Some(&id))).unwrap();
        assert_eq!(Value::Object(c), json!({"email": "from-id", "name": "N"}));
        let none = ClaimsPassthrough {
            from_access_token: false,
            from_id_token: false,
            ..Default::default()
        };
        assert_eq!(none.extract(&up(&at, Some(&id))), None);
    }

    #[test]
    fn allow_block_prefix_complex_and_sizes() {
        let at = jwt(&json!({
            "a": "x", "b": "y", "c": "z", "groups": ["g1", "g2"], "long": "é".repeat(10), "astral": "😀".repeat(3)
        }));
        let cfg = ClaimsPassthrough::from_json(&json!({
            "allowed_claims": ["a", "b", "groups", "long", "astral"], "blocked_claims": ["b"],
            "claim_prefix": "up_", "allow_complex_claims": true, "max_claim_value_size": 15
        }))
        .unwrap()
        .unwrap();
        let c = cfg.extract(&up(&at, None)).unwrap();
        // "é"×10 is 10 UTF-16 units (kept); "😀"×3 is 6 (kept); ["g1","g2"] serialises to 11 (kept).
        assert_eq!(
            Value::Object(c),
            json!({"up_a": "x", "up_groups": ["g1", "g2"], "up_long": "é".repeat(10), "up_astral": "😀".repeat(3)})
        );
        let tight = ClaimsPassthrough {
            max_claim_value_size: 5,
            allow_complex_claims: true,
            ..Default::default()
        };
        let c = tight.extract(&up(&at, None)).unwrap();
        assert_eq!(Value::Object(c), json!({"a": "x", "b": "y", "c": "z"}));
    }

    #[test]
    fn opaque_malformed_and_oversized_tokens_give_nothing() {
        let p = ClaimsPassthrough::default();
        for t in [
            "opaque-token".to_owned(),
            "a.b".into(),
            "a.b.c.d".into(),
            "a.!!!.c".into(),
            format!("a.{}.c", URL_SAFE_NO_PAD.encode("[1,2]")),
            format!("a.{}.c", URL_SAFE_NO_PAD.encode("{\"x\":")),
            jwt(&json!({"big": "x".repeat(MAX_UPSTREAM_TOKEN)})),
        ] {
            assert_eq!(p.extract(&up(&t, None)), None, "{t:.40}");
        }
        // Padded payloads decode too (Node's Buffer accepts them).
        let padded = format!(
            "a.{}.c",
            base64::engine::general_purpose::URL_SAFE.encode("{\"k\":1}")
        );
        assert_eq!(
            p.extract(&up(&padded, None)),
            Some(json!({"k": 1}).as_object().unwrap().clone())
        );
    }

    #[test]
    fn config_json() {
        assert_eq!(ClaimsPassthrough::from_json(&json!(false)).unwrap(), None);
        assert_eq!(ClaimsPassthrough::from_json(&Value::Null).unwrap(), None);
        assert_eq!(
            ClaimsPassthrough::from_json(&json!(true)).unwrap(),
            Some(ClaimsPassthrough::default())
        );
        let c = ClaimsPassthrough::from_json(&json!({"claim_prefix": false, "from_id_token": false}))
            .unwrap()
            .unwrap();
        assert_eq!((c.claim_prefix, c.from_id_token), (None, false));
        for bad in [
            json!(1),
            json!({"nope": 1}),
            json!({"allowed_claims": "a"}),
            json!({"allowed_claims": [1]}),
            json!({"claim_prefix": 3}),
            json!({"max_claim_value_size": 0}),
            json!({"from_access_token": "yes"}),
        ] {
            assert!(ClaimsPassthrough::from_json(&bad).is_err(), "{bad}");
        }
    }
}
