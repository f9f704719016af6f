//! Verifying our JWTs: the signature (HS256 only, constant time, every accepted key), then the checked claims
//! (`exp` required, `nbf`, `iss`, `aud`, `token_use`), with the same verdict whichever entry point is used.

use super::*;

impl JwtIssuer {
    /// Verifies a token and returns its claims, or the reason it was rejected.
    ///
    /// `expected` is compared with the `token_use` claim (absent = `access`) in the Python layout. fastmcp TS tokens
    /// carry no token use, so in the TS layout the claim is only checked when present.
    pub fn verify(&self, token: &str, expected: TokenUse) -> Result<Claims> {
        self.verify_at(token, expected, self.now())
    }

    /// [`verify`](Self::verify) at a given time (seconds since the epoch).
    pub fn verify_at(&self, token: &str, expected: TokenUse, now: u64) -> Result<Claims> {
        let (claims, _) = self.decode_verified(token)?;
        self.check_claims(&claims, expected, now)?;
        Ok(claims)
    }

    /// Like [`verify`](Self::verify), but returns the token's own payload JSON text (for bindings that hand JSON
    /// on: no re-serialisation of the claims).
    pub fn verify_json(&self, token: &str, expected: TokenUse) -> Result<String> {
        match self.verify_payload(token, expected) {
            (Some(text), None) => Ok(text),
            (_, err) => Err(err.unwrap_or(TokenError::Malformed).into()),
        }
    }

    /// Like fastmcp TS's `verify()`: a verdict plus the claims whenever the signature was good.
    pub fn verify_detailed(&self, token: &str, expected: TokenUse) -> Verification {
        match self.decode_verified(token) {
            Err(e) => Verification {
                valid: false,
                claims: None,
                error: e.token_error(),
            },
            Ok((claims, _)) => match self.check_claims(&claims, expected, self.now()) {
                Ok(()) => Verification {
                    valid: true,
                    claims: Some(claims),
                    error: None,
                },
                Err(e) => Verification {
                    valid: false,
                    claims: Some(claims),
                    error: e.token_error(),
                },
            },
        }
    }

    /// Like [`verify_detailed`](Self::verify_detailed), but hands back the token's own payload JSON text instead of
    /// the claims (for bindings: the host language parses it once, nothing is re-serialised). The payload is
    /// present whenever the signature was good; the error whenever the token is rejected.
    pub fn verify_payload(&self, token: &str, expected: TokenUse) -> (Option<String>, Option<TokenError>) {
        // Only the claims `check_claims` reads are built (duplicates are still refused): the caller parses the
        // payload itself, so building every value here would be done twice.
        let payload = match self.decode_signed(token) {
            Ok(p) => p,
            Err(e) => return (None, Some(e.token_error().unwrap_or(TokenError::Malformed))),
        };
        let err = match parse_checked_claims(&payload) {
            Ok(claims) => self.check_claims(&claims, expected, self.now()).err(),
            Err(e) => return (None, Some(e.token_error().unwrap_or(TokenError::Malformed))),
        };
        let err = err.map(|e| e.token_error().unwrap_or(TokenError::Malformed));
        match String::from_utf8(payload) {
            Ok(text) => (Some(text), err),
            Err(_) => (None, Some(TokenError::Malformed)),
        }
    }

    /// Verifies a token whose payload the caller reads itself (a binding building its host language's objects in
    /// one pass): the size, structure, algorithm and signature are checked first, and only then is the payload
    /// JSON handed to `read`; the claims it reports are then checked as [`verify`](Self::verify) checks them.
    ///
    /// `read` must refuse what [`verify`](Self::verify) refuses in a payload, with [`TokenError::Malformed`]: a
    /// payload that is not one JSON object, and a claim name given twice (a parser-confusion vector).
    pub fn verify_with<T: ClaimLookup>(
        &self,
        token: &str,
        expected: TokenUse,
        read: impl FnOnce(&[u8]) -> Result<T>,
    ) -> Result<T> {
        let payload = self.decode_signed(token)?;
        let claims = read(&payload)?;
        self.check_claims(&claims, expected, self.now())?;
        Ok(claims)
    }

    /// Checks size, structure, algorithm and signature; returns the claims (and the payload JSON they came from)
    /// without checking their values.
    fn decode_verified(&self, token: &str) -> Result<(Claims, Vec<u8>)> {
        let payload = self.decode_signed(token)?;
        let claims = parse_object(&payload)?;
        Ok((claims, payload))
    }

    /// Checks size, structure, algorithm and signature; returns the payload JSON (not yet parsed).
    fn decode_signed(&self, token: &str) -> Result<Vec<u8>> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge.into());
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed.into());
        };
        // Fast path: the two peers' fixed headers (and our own) need no JSON parsing.
        let kid_owned;
        let kid = if h == self.header_b64 {
            self.keys[0].kid.as_deref()
        } else if h == TS_HEADER_B64 || h == PY_HEADER_B64 {
            None
        } else {
            let header_bytes = URL_SAFE_NO_PAD.decode(h).map_err(|_| TokenError::Malformed)?;
            let header: Map<String, Value> = parse_object(&header_bytes)?;
            if header.get("alg").and_then(Value::as_str) != Some("HS256") || header.contains_key("crit") {
                return Err(TokenError::UnsupportedAlgorithm.into());
            }
            kid_owned = header.get("kid").and_then(Value::as_str).map(str::to_owned);
            kid_owned.as_deref()
        };
        // An HS256 signature is 32 bytes = 43 base64url characters; anything else cannot match.
        let mut sig = [0u8; 32];
        if s.len() != 43 || URL_SAFE_NO_PAD.decode_slice(s, &mut sig) != Ok(32) {
            return Err(TokenError::InvalidSignature.into());
        }
        let signing_input = &token.as_bytes()[..h.len() + 1 + p.len()];
        if !self.signature_matches(signing_input, &sig, kid) {
            return Err(TokenError::InvalidSignature.into());
        }
        b64::decode(p).ok_or_else(|| TokenError::Malformed.into())
    }

    fn signature_matches(&self, input: &[u8], sig: &[u8], kid: Option<&str>) -> bool {
        // A `kid` naming one of our keys selects it; otherwise every key is tried (tokens from peers carry no kid).
        // The per-key comparison is constant time (hmac's verify_slice uses subtle).
        let named = kid.is_some() && self.keys.iter().any(|k| k.kid.as_deref() == kid);
        let mut ok = false;
        for key in self.keys.iter().filter(|k| !named || k.kid.as_deref() == kid) {
            let mut mac = key.mac.clone();
            mac.update(input);
            ok |= mac.verify_slice(sig).is_ok();
        }
        ok
    }

    fn check_claims(&self, claims: &impl ClaimLookup, expected: TokenUse, now: u64) -> Result<()> {
        let exp = match claims.claim("exp") {
            Some(ClaimRef::Number(n)) => n,
            _ => return Err(TokenError::MissingExpiry.into()),
        };
        // fastmcp TS: expired when exp <= now.
        if exp + self.leeway as f64 <= now as f64 {
            return Err(TokenError::Expired.into());
        }
        if let Some(ClaimRef::Number(nbf)) = claims.claim("nbf") {
            if nbf > (now + self.leeway) as f64 {
                return Err(TokenError::NotYetValid.into());
            }
        }
        if claims.claim("iss") != Some(ClaimRef::Str(self.issuer.as_str())) {
            return Err(TokenError::InvalidIssuer.into());
        }
        let aud_ok = match claims.claim("aud") {
            Some(ClaimRef::Str(a)) => {
                a == self.audience.as_str() || self.accepted_audiences.as_ref().is_some_and(|f| f(a))
            }
            _ => false,
        };
        if !aud_ok {
            return Err(TokenError::InvalidAudience.into());
        }
        let ok = match (self.layout, claims.claim("token_use")) {
            (ClaimLayout::FastmcpTs, None) => true,
            (ClaimLayout::FastmcpPython, None) => expected == TokenUse::Access,
            (_, Some(v)) => v == ClaimRef::Str(expected.as_str()),
        };
        if !ok {
            return Err(TokenError::WrongTokenUse.into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A caller's reader seeing only what the core's checks need.
    struct Seen(Claims);
    impl ClaimLookup for Seen {
        fn claim(&self, name: &str) -> Option<ClaimRef<'_>> {
            self.0.claim(name)
        }
    }

    #[test]
    fn verify_with_reads_only_signed_payloads_and_then_checks_their_claims() {
        let i = JwtIssuer::new("https://i", "https://a", b"k")
            .unwrap()
            .with_fixed_time(Some(1_000_000))
            .with_layout(ClaimLayout::FastmcpPython);
        let other = JwtIssuer::new("https://i", "https://a", b"other").unwrap();
        let good = i
            .issue_access_token("c", &["a"], IssueOptions::default())
            .unwrap();
        let refresh = i
            .issue_refresh_token("c", &["a"], IssueOptions::default())
            .unwrap();
        let forged = other
            .issue_access_token("c", &["a"], IssueOptions::default())
            .unwrap();
        let calls = Cell::new(0);
        let read = |p: &[u8]| {
            calls.set(calls.get() + 1);
            parse_object(p).map(Seen)
        };
        let cases: [(&str, TokenUse, Option<TokenError>, usize); 5] = [
            (&good, TokenUse::Access, None, 1),
            (&refresh, TokenUse::Access, Some(TokenError::WrongTokenUse), 1),
            (&forged, TokenUse::Access, Some(TokenError::InvalidSignature), 0),
            ("a.b", TokenUse::Access, Some(TokenError::Malformed), 0),
            (
                &"x".repeat(MAX_TOKEN_BYTES + 1),
                TokenUse::Access,
                Some(TokenError::TooLarge),
                0,
            ),
        ];
        for (token, use_, want, reads) in cases {
            calls.set(0);
            let got = i.verify_with(token, use_, read);
            assert_eq!(got.as_ref().err().and_then(Error::token_error), want);
            assert_eq!(calls.get(), reads, "{want:?}");
            if let Ok(Seen(c)) = got {
                assert_eq!(c, i.verify(token, use_).unwrap());
            }
        }
        // The reader's refusal is the verdict.
        let refused = i.verify_with(&good, TokenUse::Access, |_| {
            Err::<Seen, _>(TokenError::Malformed.into())
        });
        assert_eq!(
            refused.err().and_then(|e| e.token_error()),
            Some(TokenError::Malformed)
        );
    }
}
