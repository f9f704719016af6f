//! How scopes cross to upstream and back, for providers whose API scopes are named by the app's identifier URI.
//!
//! Microsoft Entra ID (v2 endpoints) knows an API's scopes only fully qualified (`api://<client id>/read`), while
//! MCP clients ask for and expect the short form (`read`, the form the metadata advertises). With
//! `upstream_scope_prefix` set (fastmcp Python's `AzureProvider`: `identifier_uri + "/"`), the proxy:
//! - prefixes each scope it sends upstream, except the OpenID Connect ones (`openid`, `profile`, `email`,
//!   `offline_access`) and scopes already qualified (containing `/`, e.g. `https://graph.microsoft.com/User.Read`);
//! - adds `additional_authorize_scopes` (other resources' scopes, `offline_access` for a refresh token) to the
//!   authorization request only, and of those only the OIDC ones to token requests: Entra allows one resource per
//!   token request (AADSTS28000) and requires scopes on them (AADSTS28003 / AADSTS90009);
//! - strips the prefix from the scopes upstream grants, so our tokens carry what the client asked for.
//!
//! Without a prefix and additional scopes every function is the identity: other providers see exactly the
//! client's scopes.

/// OpenID Connect scopes: never prefixed, and the only additional scopes sent with token requests.
pub const OIDC_SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];

/// The translation of one proxy's configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpstreamScopes {
    /// `api://<client id>/` (ends with `/`), or none.
    pub prefix: Option<String>,
    /// Scopes added to the authorization request.
    pub additional: Vec<String>,
}

fn dedup(v: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(v.len());
    for s in v {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

impl UpstreamScopes {
    fn qualify(&self, scope: &str) -> String {
        match &self.prefix {
            Some(p) if !OIDC_SCOPES.contains(&scope) && !scope.contains('/') => format!("{p}{scope}"),
            _ => scope.to_owned(),
        }
    }

    /// The scopes of the upstream authorization request for a grant of `scopes`.
    pub fn authorize(&self, scopes: &[String]) -> Vec<String> {
        dedup(
            scopes
                .iter()
                .map(|s| self.qualify(s))
                .chain(self.additional.iter().cloned())
                .collect(),
        )
    }

    /// The `scope` of an upstream token request (code exchange, refresh) for a grant of `scopes`, or `None` to
    /// send none (no prefix configured: the request stays as the provider's standard flow has it).
    pub fn token_request(&self, scopes: &[String]) -> Option<String> {
        self.prefix.as_ref()?;
        let v = dedup(
            scopes
                .iter()
                .map(|s| self.qualify(s))
                .chain(
                    self.additional
                        .iter()
                        .filter(|s| OIDC_SCOPES.contains(&s.as_str()))
                        .cloned(),
                )
                .collect(),
        );
        (!v.is_empty()).then(|| v.join(" "))
    }

    /// A refresh's `scope` in upstream's terms (`scope` is in ours); unchanged without a prefix.
    pub fn refresh_scope(&self, scope: Option<String>) -> Option<String> {
        match (&self.prefix, scope) {
            (None, s) => s,
            (Some(_), Some(s)) => {
                let ours: Vec<String> = s
                    .split(' ')
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect();
                self.token_request(&ours)
            }
            (Some(_), None) => None,
        }
    }

    /// Scopes upstream granted, in the form our clients use (the prefix removed).
    pub fn from_upstream(&self, scopes: Vec<String>) -> Vec<String> {
        match &self.prefix {
            None => scopes,
            Some(p) => dedup(
                scopes
                    .into_iter()
                    .map(|s| s.strip_prefix(p.as_str()).map(str::to_owned).unwrap_or(s))
                    .collect(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    fn entra() -> UpstreamScopes {
        UpstreamScopes {
            prefix: Some("api://app-id/".into()),
            additional: v(&[
                "User.Read",
                "https://graph.microsoft.com/Mail.Read",
                "offline_access",
                "openid",
            ]),
        }
    }

    #[test]
    fn identity_without_configuration() {
        let none = UpstreamScopes::default();
        let cases: &[&[&str]] = &[&[], &["read"], &["openid", "read", "api://x/y"]];
        for c in cases {
            assert_eq!(none.authorize(&v(c)), v(c));
            assert_eq!(none.token_request(&v(c)), None);
            assert_eq!(none.from_upstream(v(c)), v(c));
            assert_eq!(none.refresh_scope(Some(c.join(" "))), Some(c.join(" ")));
        }
    }

    #[test]
    fn entra_translation_table() {
        let e = entra();
        // (client's scopes, authorization request, token request, granted by upstream, as our tokens carry them)
        type Case<'a> = (&'a [&'a str], &'a [&'a str], &'a str);
        let cases: &[Case] = &[
            (
                &["read", "write"],
                &[
                    "api://app-id/read",
                    "api://app-id/write",
                    "User.Read",
                    "https://graph.microsoft.com/Mail.Read",
                    "offline_access",
                    "openid",
                ],
                "api://app-id/read api://app-id/write offline_access openid",
            ),
            // OIDC and qualified scopes pass unprefixed; duplicates once.
            (
                &["openid", "read", "https://graph.microsoft.com/Files.Read", "read"],
                &[
                    "openid",
                    "api://app-id/read",
                    "https://graph.microsoft.com/Files.Read",
                    "User.Read",
                    "https://graph.microsoft.com/Mail.Read",
                    "offline_access",
                ],
                "openid api://app-id/read https://graph.microsoft.com/Files.Read offline_access",
            ),
            // Already prefixed by the client: not prefixed twice.
            (
                &["api://app-id/read"],
                &[
                    "api://app-id/read",
                    "User.Read",
                    "https://graph.microsoft.com/Mail.Read",
                    "offline_access",
                    "openid",
                ],
                "api://app-id/read offline_access openid",
            ),
        ];
        for (client, authorize, token) in cases {
            assert_eq!(e.authorize(&v(client)), v(authorize), "{client:?}");
            assert_eq!(e.token_request(&v(client)).as_deref(), Some(*token), "{client:?}");
        }
        assert_eq!(
            e.from_upstream(v(&[
                "api://app-id/read",
                "openid",
                "api://app-id/read",
                "User.Read",
                "api://other/x"
            ])),
            v(&["read", "openid", "User.Read", "api://other/x"])
        );
        assert_eq!(
            e.refresh_scope(Some("read write".into())).as_deref(),
            Some("api://app-id/read api://app-id/write offline_access openid")
        );
        assert_eq!(e.refresh_scope(None), None);
        // A prefix without additional scopes: nothing added anywhere.
        let bare = UpstreamScopes {
            prefix: Some("api://a/".into()),
            additional: vec![],
        };
        assert_eq!(bare.authorize(&v(&["read"])), v(&["api://a/read"]));
        assert_eq!(bare.token_request(&[]), None);
    }
}
