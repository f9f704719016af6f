//! Issuing our JWTs: the claims in the layout's order (reserved claims protected), written straight to JSON in the
//! common cases, then signed with the current key.

use super::*;

impl JwtIssuer {
    /// Issues an access token for `client_id` with `scopes`.
    pub fn issue_access_token<S: AsRef<str>>(
        &self,
        client_id: &str,
        scopes: &[S],
        opts: IssueOptions,
    ) -> Result<String> {
        self.issue(TokenUse::Access, client_id, scopes, opts)
    }

    /// Issues a refresh token for `client_id` with `scopes` (`token_use: "refresh"` in the Python layout).
    pub fn issue_refresh_token<S: AsRef<str>>(
        &self,
        client_id: &str,
        scopes: &[S],
        opts: IssueOptions,
    ) -> Result<String> {
        self.issue(TokenUse::Refresh, client_id, scopes, opts)
    }

    /// Builds the claims a token of `kind` would carry, in the layout's order.
    pub fn build_claims<S: AsRef<str>>(
        &self,
        kind: TokenUse,
        client_id: &str,
        scopes: &[S],
        opts: IssueOptions,
    ) -> Result<Claims> {
        let (now, exp) = self.lifetime(kind, opts.expires_in)?;
        let jti = opts.jti.unwrap_or_else(generate_jti);
        let audience = opts.audience.unwrap_or_else(|| self.audience.clone());
        let mut c = Map::new();
        match self.layout {
            ClaimLayout::FastmcpTs => {
                c.insert("aud".into(), audience.into());
                c.insert("client_id".into(), client_id.into());
                c.insert("exp".into(), exp.into());
                c.insert("iat".into(), now.into());
                c.insert("iss".into(), self.issuer.clone().into());
                c.insert("jti".into(), jti.into());
                c.insert(
                    "scope".into(),
                    Value::Array(scopes.iter().map(|s| s.as_ref().into()).collect()),
                );
                if let Some(sub) = opts.subject {
                    c.insert("sub".into(), sub.into());
                }
                merge_unreserved(&mut c, opts.upstream_claims);
                merge_unreserved(&mut c, opts.extra_claims);
            }
            ClaimLayout::FastmcpPython => {
                c.insert("iss".into(), self.issuer.clone().into());
                c.insert("aud".into(), audience.into());
                c.insert("client_id".into(), client_id.into());
                let scope: Vec<&str> = scopes.iter().map(|s| s.as_ref()).collect();
                c.insert("scope".into(), scope.join(" ").into());
                c.insert("exp".into(), exp.into());
                c.insert("iat".into(), now.into());
                c.insert("jti".into(), jti.into());
                match kind {
                    TokenUse::Refresh => {
                        c.insert("token_use".into(), "refresh".into());
                    }
                    TokenUse::Access => {
                        if let Some(sub) = opts.subject {
                            c.insert("sub".into(), sub.into());
                        }
                        merge_unreserved(&mut c, opts.extra_claims);
                    }
                }
                if let Some(up) = opts.upstream_claims.filter(|m| !m.is_empty()) {
                    c.insert("upstream_claims".into(), Value::Object(up));
                }
            }
        }
        Ok(c)
    }

    fn issue<S: AsRef<str>>(
        &self,
        kind: TokenUse,
        client_id: &str,
        scopes: &[S],
        opts: IssueOptions,
    ) -> Result<String> {
        // The direct writers cover every case whose caller-supplied claims can only follow the fixed ones; the
        // rest (a caller claim that could replace one written earlier: `sub` in the TS layout, or one of the
        // two caller maps repeating a name of the other) go through the claims map. A table test holds the two
        // paths to the same bytes.
        let payload = match self.layout {
            ClaimLayout::FastmcpTs if opts.subject.is_none() && opts.upstream_claims.is_none() => {
                self.ts_payload(kind, client_id, scopes, opts)?
            }
            ClaimLayout::FastmcpPython
                if kind == TokenUse::Refresh || opts.extra_claims.as_ref().is_none_or(Map::is_empty) =>
            {
                self.py_payload(kind, client_id, scopes, opts)?
            }
            _ => serde_json::to_vec(&self.build_claims(kind, client_id, scopes, opts)?)?,
        };
        self.sign_payload(&payload)
    }

    /// The TS layout without `sub` or upstream claims, written straight to JSON: the same bytes `build_claims`
    /// serialises to (the fixed claims are all reserved, so extra claims can only follow them).
    fn ts_payload<S: AsRef<str>>(
        &self,
        kind: TokenUse,
        client_id: &str,
        scopes: &[S],
        opts: IssueOptions,
    ) -> Result<Vec<u8>> {
        let (now, exp) = self.lifetime(kind, opts.expires_in)?;
        let jti = opts.jti.unwrap_or_else(generate_jti);
        let mut p = Json::with_capacity(256);
        p.raw("{\"aud\":");
        p.str(opts.audience.as_deref().unwrap_or(&self.audience))?;
        p.raw(",\"client_id\":");
        p.str(client_id)?;
        p.raw(",\"exp\":");
        p.num(exp);
        p.raw(",\"iat\":");
        p.num(now);
        p.raw(",\"iss\":");
        p.str(&self.issuer)?;
        p.raw(",\"jti\":");
        p.str(&jti)?;
        p.raw(",\"scope\":[");
        for (n, sc) in scopes.iter().enumerate() {
            if n > 0 {
                p.raw(",");
            }
            p.str(sc.as_ref())?;
        }
        p.raw("]");
        for (k, v) in unreserved(opts.extra_claims.iter().flatten()) {
            p.member(k, v)?;
        }
        p.raw("}");
        Ok(p.0)
    }

    /// The Python layout with no extra claims on an access token (fastmcp Python's own calls), written straight to
    /// JSON: the same bytes `build_claims` serialises to. `sub`, `token_use` and `upstream_claims` each follow the
    /// fixed claims, where the map would put them.
    fn py_payload<S: AsRef<str>>(
        &self,
        kind: TokenUse,
        client_id: &str,
        scopes: &[S],
        opts: IssueOptions,
    ) -> Result<Vec<u8>> {
        let (now, exp) = self.lifetime(kind, opts.expires_in)?;
        let jti = opts.jti.unwrap_or_else(generate_jti);
        let mut p = Json::with_capacity(256);
        p.raw("{\"iss\":");
        p.str(&self.issuer)?;
        p.raw(",\"aud\":");
        p.str(opts.audience.as_deref().unwrap_or(&self.audience))?;
        p.raw(",\"client_id\":");
        p.str(client_id)?;
        p.raw(",\"scope\":");
        match scopes {
            [] => p.raw("\"\""),
            [one] => p.str(one.as_ref())?,
            many => p.str(&many.iter().map(AsRef::as_ref).collect::<Vec<&str>>().join(" "))?,
        }
        p.raw(",\"exp\":");
        p.num(exp);
        p.raw(",\"iat\":");
        p.num(now);
        p.raw(",\"jti\":");
        p.str(&jti)?;
        match (kind, opts.subject) {
            (TokenUse::Refresh, _) => p.raw(",\"token_use\":\"refresh\""),
            (TokenUse::Access, Some(sub)) => {
                p.raw(",\"sub\":");
                p.str(&sub)?;
            }
            (TokenUse::Access, None) => {}
        }
        if let Some(up) = opts.upstream_claims.filter(|m| !m.is_empty()) {
            p.raw(",\"upstream_claims\":");
            serde_json::to_writer(&mut p.0, &up)?;
        }
        p.raw("}");
        Ok(p.0)
    }

    /// `(now, exp)` for a token of `kind` living `expires_in` seconds (the issuer's TTL when absent).
    fn lifetime(&self, kind: TokenUse, expires_in: Option<u64>) -> Result<(u64, u64)> {
        let now = self.now();
        let ttl = expires_in.unwrap_or(match kind {
            TokenUse::Access => self.access_token_ttl,
            TokenUse::Refresh => self.refresh_token_ttl,
        });
        let exp = now
            .checked_add(ttl)
            .filter(|e| *e <= (1u64 << 53))
            .ok_or_else(|| Error::InvalidArgument("expires_in is too large".into()))?;
        Ok((now, exp))
    }

    /// Signs `claims` as they are (no reserved-claim protection): the caller owns the layout.
    pub fn sign_claims(&self, claims: &Claims) -> Result<String> {
        self.sign_payload(&serde_json::to_vec(claims)?)
    }

    pub(super) fn sign_payload(&self, payload: &[u8]) -> Result<String> {
        let mut token = String::with_capacity(self.header_b64.len() + payload.len() * 4 / 3 + 48);
        token.push_str(&self.header_b64);
        token.push('.');
        b64::encode_append(payload, &mut token);
        let mut mac = self.keys[0].mac.clone();
        mac.update(token.as_bytes());
        let sig = mac.finalize().into_bytes();
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(sig, &mut token);
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Error::InvalidArgument(
                "claims make a token over the 16 KiB limit".into(),
            ));
        }
        Ok(token)
    }
}

fn merge_unreserved(into: &mut Claims, extra: Option<Claims>) {
    into.extend(unreserved(extra.into_iter().flatten()));
}

/// Caller-supplied claims without the reserved ones (each dropped one is logged by name).
fn unreserved<K: AsRef<str> + fmt::Display, V>(
    claims: impl Iterator<Item = (K, V)>,
) -> impl Iterator<Item = (K, V)> {
    claims.filter(|(k, _)| {
        let reserved = RESERVED_CLAIMS.contains(&k.as_ref());
        if reserved {
            tracing::debug!(claim = %k, "ignoring an attempt to override a reserved JWT claim");
        }
        !reserved
    })
}

/// A JSON object being written by hand, with serde_json's escaping for strings and values.
struct Json(Vec<u8>);

impl Json {
    fn with_capacity(n: usize) -> Self {
        Json(Vec::with_capacity(n))
    }

    /// Text that is already JSON.
    fn raw(&mut self, json: &str) {
        self.0.extend_from_slice(json.as_bytes());
    }

    fn str(&mut self, s: &str) -> Result<()> {
        Ok(serde_json::to_writer(&mut self.0, s)?)
    }

    fn num(&mut self, n: u64) {
        use std::io::Write;
        // Writing to a Vec cannot fail.
        let _ = write!(self.0, "{n}");
    }

    /// `,"name":value`.
    fn member(&mut self, name: &str, v: &Value) -> Result<()> {
        self.raw(",");
        self.str(name)?;
        self.raw(":");
        Ok(serde_json::to_writer(&mut self.0, v)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every path `issue` can take gives the bytes of the claims map, over a table of layouts, token kinds and
    /// caller claims, including the ones that must not reach the token (reserved names, a `sub` in the extra
    /// claims replacing the subject in the TS layout, a name in both caller maps) and text that needs escaping.
    #[test]
    fn direct_payloads_are_byte_identical_to_the_claims_map() {
        let mut extra = Map::new();
        extra.insert("email".into(), "u@x\"\u{e9}\n".into());
        extra.insert("iss".into(), "evil".into());
        extra.insert("token_use".into(), "access".into());
        extra.insert("nested".into(), serde_json::json!({"a": [1, 2.5, null, -3]}));
        extra.insert("sub".into(), "s-from-extra".into());
        extra.insert("upstream_claims".into(), "not the map".into());
        let mut upstream = Map::new();
        upstream.insert("login".into(), "octo\u{1}cat".into());
        upstream.insert("email".into(), "up@x".into());
        upstream.insert("exp".into(), 1.into());
        let maps = || {
            [
                None,
                Some(Map::new()),
                Some(upstream.clone()),
                Some(extra.clone()),
            ]
        };
        let scope_sets: [&[&str]; 4] = [&[], &["a"], &["a", "b\"c", "d e"], &["\u{2028}"]];
        let mut compared = 0;
        for layout in [ClaimLayout::FastmcpTs, ClaimLayout::FastmcpPython] {
            let i = JwtIssuer::new("https://i/\"x", "https://a", b"k")
                .unwrap()
                .with_fixed_time(Some(1_000_000))
                .with_kid("k1")
                .with_layout(layout);
            for kind in [TokenUse::Access, TokenUse::Refresh] {
                for scopes in scope_sets {
                    for subject in [None, Some("user\\1".to_owned())] {
                        for audience in [None, Some("https://r/mcp".to_owned())] {
                            for upstream_claims in maps() {
                                for extra_claims in maps() {
                                    let opts = IssueOptions {
                                        jti: Some("j\u{1}1".into()),
                                        expires_in: Some(60),
                                        subject: subject.clone(),
                                        upstream_claims: upstream_claims.clone(),
                                        extra_claims,
                                        audience: audience.clone(),
                                    };
                                    let direct = i.issue(kind, "c\\1", scopes, opts.clone()).unwrap();
                                    let claims = i.build_claims(kind, "c\\1", scopes, opts.clone()).unwrap();
                                    assert_eq!(
                                        direct,
                                        i.sign_claims(&claims).unwrap(),
                                        "{layout:?} {kind:?} {opts:?}"
                                    );
                                    compared += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(compared, 2 * 2 * 4 * 2 * 2 * 4 * 4);
    }

    #[test]
    fn generated_jti_and_default_lifetimes_on_the_direct_paths() {
        for layout in [ClaimLayout::FastmcpTs, ClaimLayout::FastmcpPython] {
            let i = JwtIssuer::new("https://i", "https://a", b"k")
                .unwrap()
                .with_fixed_time(Some(1_000_000))
                .with_layout(layout);
            let a = i
                .issue_access_token("c", &["a"], IssueOptions::default())
                .unwrap();
            let b = i
                .issue_access_token("c", &["a"], IssueOptions::default())
                .unwrap();
            let (ca, cb) = (
                i.verify(&a, TokenUse::Access).unwrap(),
                i.verify(&b, TokenUse::Access).unwrap(),
            );
            assert_ne!(ca["jti"], cb["jti"]);
            assert_eq!(ca["jti"].as_str().unwrap().len(), 22);
            assert_eq!(ca["exp"], 1_000_000 + DEFAULT_ACCESS_TOKEN_TTL);
            let r = i
                .issue_refresh_token("c", &["a"], IssueOptions::default())
                .unwrap();
            assert_eq!(
                i.verify(&r, TokenUse::Refresh).unwrap()["exp"],
                1_000_000 + DEFAULT_REFRESH_TOKEN_TTL
            );
            let huge = IssueOptions {
                expires_in: Some(u64::MAX),
                ..Default::default()
            };
            assert!(matches!(
                i.issue_access_token("c", &["a"], huge),
                Err(Error::InvalidArgument(_))
            ));
        }
    }
}
