//! Resource indicators and token audience (RFC 8707; MCP authorization spec, "Token Audience Binding and
//! Validation" and "Resource Parameter Implementation").
//!
//! A client names the MCP server it wants a token for with `resource` at `/authorize` and `/token`. The proxy
//! accepts a resource only when it is this server: an absolute `http(s)` URI without fragment (RFC 8707 §2) on
//! `base_url`'s origin, or one of the configured `accepted_resources` (exact match, after the same parse). Anything
//! else is `invalid_target` (RFC 8707 §2): the proxy never mints a token for another server. The resource becomes
//! the token's `aud`; without one, `aud` stays `base_url` (what fastmcp issues). The proxy's own verification
//! accepts exactly these audiences, so a token minted for another server is refused.

use url::Url;

use super::error::OAuthError;

/// Longest `resource` accepted, in bytes.
pub const MAX_RESOURCE_LEN: usize = 2048;

/// The resources one proxy issues tokens for.
#[derive(Clone, Debug)]
pub struct ResourcePolicy {
    origin: url::Origin,
    accepted: Vec<String>,
}

fn parse(resource: &str) -> Option<Url> {
    // RFC 3986 characters only (no CR, LF, space, `*` wildcard…): the resource becomes a signed claim.
    if resource.len() > MAX_RESOURCE_LEN
        || !super::redirect_policy::rfc3986_chars(resource)
        || resource.contains('*')
    {
        return None;
    }
    let u = Url::parse(resource).ok()?;
    let ok = matches!(u.scheme(), "http" | "https")
        && u.host().is_some()
        && u.fragment().is_none()
        && u.username().is_empty()
        && u.password().is_none();
    ok.then_some(u)
}

impl ResourcePolicy {
    /// The policy of a proxy served at `base_url`, also accepting `accepted` (each must be a valid resource; the
    /// message names the bad one).
    pub fn new(base_url: &str, accepted: &[String]) -> crate::Result<Self> {
        let origin = Url::parse(base_url)
            .map_err(|_| crate::Error::InvalidArgument("base_url must be an absolute http(s) URL".into()))?
            .origin();
        let accepted = accepted
            .iter()
            .map(|r| {
                parse(r).map(|u| u.to_string()).ok_or_else(|| {
                    crate::Error::InvalidArgument(format!(
                        "accepted_resources: `{r}` is not an absolute http(s) URI without fragment"
                    ))
                })
            })
            .collect::<crate::Result<Vec<_>>>()?;
        Ok(ResourcePolicy { origin, accepted })
    }

    /// The resource as it goes into `aud`: its canonical spelling (WHATWG serialisation: lowercase scheme and
    /// host, no default port, dot segments resolved), so every spelling of one resource yields tokens the
    /// resource server accepts; or `invalid_target`.
    pub fn check(&self, resource: &str) -> Result<String, OAuthError> {
        let u = parse(resource).ok_or_else(|| {
            OAuthError::new(
                "invalid_target",
                "resource must be an absolute http(s) URI of at most 2048 bytes, without user information or fragment",
            )
        })?;
        if u.origin() == self.origin || self.accepted.iter().any(|a| a == u.as_str()) {
            Ok(u.to_string())
        } else {
            Err(OAuthError::new(
                "invalid_target",
                "resource is not served by this authorization server",
            ))
        }
    }

    /// Whether a token with audience `aud` is one this proxy may have issued.
    pub fn accepts(&self, aud: &str) -> bool {
        self.check(aud).is_ok()
    }
}

/// Whether two resource URIs name the same resource (compared in canonical form; unparseable ones only when equal).
pub fn same_resource(a: &str, b: &str) -> bool {
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let p = ResourcePolicy::new(
            "https://mcp.example.com",
            &["https://other.example.com/mcp".to_string()],
        )
        .unwrap();
        let cases: &[(&str, bool)] = &[
            ("https://mcp.example.com/mcp", true),
            ("https://mcp.example.com", true),
            ("https://mcp.example.com:443/mcp", true),
            ("https://MCP.example.com/mcp", true),
            ("https://other.example.com/mcp", true),
            ("https://other.example.com/mcp2", false),
            ("https://attacker.example/mcp", false),
            ("https://mcp.example.com.attacker.example/mcp", false),
            ("http://mcp.example.com/mcp", false),
            ("https://mcp.example.com:8443/mcp", false),
            ("https://mcp.example.com/mcp#frag", false),
            ("https://mcp.example.com/mcp\n", false),
            ("https://mcp.example.com/m cp", false),
            ("https://*.example.com/mcp", false),
            ("/mcp", false),
            ("mcp", false),
            ("", false),
            ("https://user@mcp.example.com/mcp", false),
            ("urn:mcp:server", false),
            ("javascript:alert(1)", false),
        ];
        for (r, ok) in cases {
            assert_eq!(p.check(r).is_ok(), *ok, "{r}");
            if !ok {
                assert_eq!(p.check(r).unwrap_err().code, "invalid_target");
            }
        }
        assert_eq!(
            p.check("HTTPS://MCP.example.com:443/x/../mcp").unwrap(),
            "https://mcp.example.com/mcp"
        );
        assert!(same_resource(
            "https://mcp.example.com/mcp",
            "HTTPS://mcp.EXAMPLE.com:443/mcp"
        ));
        assert!(!same_resource(
            "https://mcp.example.com/mcp",
            "https://mcp.example.com/mcp/"
        ));
        let long = format!("https://mcp.example.com/{}", "a".repeat(MAX_RESOURCE_LEN));
        assert!(p.check(&long).is_err());
        assert!(ResourcePolicy::new("https://mcp.example.com", &["/relative".into()]).is_err());
    }
}
