//! The redirect URI policy: which URIs a client may register (the configured patterns, matched component by
//! component) and which requested URI matches a registered one (exact, plus the loopback port rule).
//!
//! Why by component: RFC 9700 §4.1.1 shows that a pattern run as a glob over the whole URL string lets
//! `https://attacker.example/.example.com/cb` or `https://attacker.example?.example.com/cb` pass
//! `https://*.example.com/*`, and the code then goes to `attacker.example`. Here a pattern is parsed once, when the
//! configuration is built, and each part of a URI is compared with the same part of the pattern after the URI was
//! parsed the way a browser parses it (WHATWG URL, the `url` crate): the host a code is delivered to is the host the
//! pattern named, whatever the spelling (case, trailing dot, IDNA, `%2e`, IPv6 brackets, default ports, `\`, `@`).
//!
//! Pattern syntax (`allowed_redirect_uri_patterns`):
//! - `scheme://host[:port][/path][?query]`, or `scheme:/path` for a private-use scheme (RFC 8252 §7.1);
//! - scheme: exact (`https`, `http`, or a custom scheme such as `cursor`, `vscode`); `javascript`, `data`, `file`,
//!   `vbscript` and `blob` are never allowed;
//! - host: exact, or `*.suffix` matching one or more whole labels before `suffix` (never `suffix` itself, never an IP
//!   address); a lone `*` host only for custom schemes;
//! - port: exact, `*` (any port, or none), or absent (the scheme's default port only);
//! - path: a glob in which `*` matches any run of characters (it never reaches the query or fragment, which are
//!   other components); no path at all means any path;
//! - query: absent (the URI must have none), exact, or `*` (any query, or none);
//! - userinfo and fragments are refused in patterns and in URIs;
//! - `http` is refused for hosts other than loopback (`127.0.0.0/8`, `[::1]`, `localhost`) unless the
//!   configuration explicitly allows it (RFC 9700 §2.1: redirect URIs must use TLS except on loopback).

use std::net::IpAddr;

use url::{Host, Url};

use crate::error::{Error, Result};

/// Longest redirect URI accepted, in bytes.
pub const MAX_REDIRECT_URI_LEN: usize = 2048;

/// Schemes no redirect may use: they run code or read local data in the browser.
const DANGEROUS_SCHEMES: &[&str] = &["javascript", "data", "file", "vbscript", "blob", "about"];

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    /// Exactly this host (normalised).
    Exact(String),
    /// One or more whole labels, then `.suffix`.
    Subdomains(String),
    /// Any authority (custom schemes only).
    Any,
    /// No authority (`scheme:/path`).
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PortPattern {
    /// The scheme's default port only.
    Default,
    /// Exactly this port.
    Exact(u16),
    /// Any port, or none.
    Any,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum QueryPattern {
    /// No query allowed.
    Absent,
    /// Any query, or none.
    Any,
    /// Exactly this query.
    Exact(String),
}

/// One parsed pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Pattern {
    scheme: String,
    host: HostPattern,
    port: PortPattern,
    /// Glob over the path; `None`: any path.
    path: Option<String>,
    query: QueryPattern,
}

/// The redirect URI policy of one proxy: parsed patterns, and whether plain `http` is allowed beyond loopback.
#[derive(Clone, Debug)]
pub struct RedirectPolicy {
    patterns: Vec<Pattern>,
    allow_http: bool,
}

/// Why a URI or pattern was refused (for error messages; never contains the URI itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Longer than [`MAX_REDIRECT_URI_LEN`].
    TooLong,
    /// A character RFC 3986 does not allow in a URI (space, control characters, `\`, `<`, `"`, …) or a bad `%`.
    BadCharacter,
    /// Not an absolute URI.
    NotAbsolute,
    /// Has user information (`user@host`).
    Userinfo,
    /// Has a fragment (RFC 6749 §3.1.2).
    Fragment,
    /// `javascript:`, `data:`, …
    DangerousScheme,
    /// `http` to a host other than loopback.
    InsecureHttp,
    /// A path a server may resolve elsewhere than it reads (`..;`, encoded `/` or `\`, double encoding, `//`).
    AmbiguousPath,
    /// No configured pattern matches.
    NoPatternMatches,
}

impl Refusal {
    /// A short description for the `error_description` of `invalid_redirect_uri`.
    pub fn describe(self) -> &'static str {
        match self {
            Refusal::TooLong => "redirect URI too long",
            Refusal::BadCharacter => "redirect URI contains characters a URI may not contain",
            Refusal::NotAbsolute => "redirect URI must be an absolute URI",
            Refusal::Userinfo => "redirect URI must not contain user information",
            Refusal::Fragment => "redirect URI must not contain a fragment",
            Refusal::DangerousScheme => "redirect URI scheme not allowed",
            Refusal::InsecureHttp => "redirect URI must use https (http only for loopback)",
            Refusal::AmbiguousPath => "redirect URI path contains an ambiguous segment or encoding",
            Refusal::NoPatternMatches => "redirect URI not allowed by this server's redirect URI policy",
        }
    }
}

/// RFC 3986 §2: unreserved, reserved and `%XX`; everything else (controls, space, `"<>\^`{|}`, non-ASCII) is refused,
/// so a URI is stored and later sent exactly as the browser will read it.
pub(super) fn rfc3986_chars(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let ok = c.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=".contains(&c);
        if c == b'%' {
            if i + 2 >= b.len() || !(b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit()) {
                return false;
            }
            i += 3;
            continue;
        }
        if !ok {
            return false;
        }
        i += 1;
    }
    true
}

/// Path spellings that a server behind the redirect URI may resolve outside what a path glob matched
/// (Tomcat/Spring `..;`, an encoded `/` or `\`, double encoding, an empty segment that some servers collapse).
fn ambiguous_path(path: &str) -> bool {
    let p = path.to_ascii_lowercase();
    ["%2f", "%5c", "%25", "/..;", "/.;", "//"]
        .iter()
        .any(|bad| p.contains(bad))
}

fn is_special(scheme: &str) -> bool {
    matches!(scheme, "http" | "https")
}

/// Loopback as RFC 8252 §7.3 / §8.3 names it: `127.0.0.0/8`, `::1`, and the name `localhost` (exactly).
pub fn is_loopback_host(host: &Host<&str>) -> bool {
    match host {
        Host::Ipv4(a) => a.is_loopback(),
        Host::Ipv6(a) => a.is_loopback(),
        Host::Domain(d) => d.trim_end_matches('.').eq_ignore_ascii_case("localhost"),
    }
}

/// The host of a parsed URI as compared with patterns: lowercase, punycode, no trailing dot, IPv6 in brackets.
fn normal_host(u: &Url) -> Option<String> {
    match u.host()? {
        Host::Domain(d) => Some(d.trim_end_matches('.').to_ascii_lowercase()),
        Host::Ipv4(a) => Some(a.to_string()),
        Host::Ipv6(a) => Some(format!("[{a}]")),
    }
}

/// Glob over one component: `*` matches any run of characters; everything else matches itself.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != b'*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

impl Pattern {
    fn parse(raw: &str, allow_http: bool) -> std::result::Result<Self, String> {
        if raw.len() > MAX_REDIRECT_URI_LEN || !rfc3986_chars(raw) {
            return Err("contains characters a URI may not contain".into());
        }
        let (scheme, rest) = raw.split_once(':').ok_or("has no scheme")?;
        let scheme = scheme.to_ascii_lowercase();
        let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        if !scheme_ok {
            return Err("has an invalid scheme".into());
        }
        if DANGEROUS_SCHEMES.contains(&scheme.as_str()) {
            return Err(format!("uses the scheme `{scheme}`, which is never allowed"));
        }
        if rest.contains('#') {
            return Err("has a fragment".into());
        }
        let (before_query, query) = match rest.split_once('?') {
            Some((a, q)) => (
                a,
                if q == "*" {
                    QueryPattern::Any
                } else {
                    QueryPattern::Exact(q.to_owned())
                },
            ),
            None => (rest, QueryPattern::Absent),
        };
        let (host, port, path) = if let Some(after) = before_query.strip_prefix("//") {
            let (authority, path) = match after.find('/') {
                Some(i) => (&after[..i], Some(&after[i..])),
                None => (after, None),
            };
            if authority.contains('@') {
                return Err("has user information".into());
            }
            let (host_part, port_part) = split_port(authority)?;
            let port = match port_part {
                None => PortPattern::Default,
                Some("*") => PortPattern::Any,
                Some(p) => {
                    let n: u16 = p.parse().map_err(|_| "has an invalid port")?;
                    if default_port(&scheme) == Some(n) {
                        PortPattern::Default
                    } else {
                        PortPattern::Exact(n)
                    }
                }
            };
            let host = if host_part == "*" {
                if is_special(&scheme) {
                    return Err("has the host `*`; name the host or use `*.domain`".into());
                }
                HostPattern::Any
            } else if let Some(suffix) = host_part.strip_prefix("*.") {
                let h = normalise_pattern_host(&scheme, suffix)?;
                if h.starts_with('[') || h.parse::<IpAddr>().is_ok() {
                    return Err("uses `*.` before an IP address".into());
                }
                if !h.contains('.') && is_special(&scheme) {
                    return Err("uses `*.` before a top-level domain".into());
                }
                HostPattern::Subdomains(h)
            } else {
                if host_part.is_empty() {
                    return Err("has no host".into());
                }
                HostPattern::Exact(normalise_pattern_host(&scheme, host_part)?)
            };
            (host, port, path)
        } else {
            if is_special(&scheme) {
                return Err("must be scheme://host/…".into());
            }
            let path = (!before_query.is_empty()).then_some(before_query);
            (HostPattern::None, PortPattern::Default, path)
        };
        if let Some(p) = path {
            if p.contains("..") || p.to_ascii_lowercase().contains("%2e") {
                return Err("has a dot segment in its path".into());
            }
        }
        if scheme == "http" && !allow_http {
            let loopback = match &host {
                HostPattern::Exact(h) => Url::parse(&format!("http://{h}/"))
                    .ok()
                    .and_then(|u| u.host().map(|h| is_loopback_host(&h)))
                    .unwrap_or(false),
                _ => false,
            };
            if !loopback {
                return Err(
                    "uses http for a host other than loopback (set allow_http_redirect_uris to allow it)"
                        .into(),
                );
            }
        }
        Ok(Pattern {
            scheme,
            host,
            port,
            path: path.map(str::to_owned),
            query,
        })
    }

    fn matches(&self, u: &Url) -> bool {
        if u.scheme() != self.scheme {
            return false;
        }
        let host_ok = match &self.host {
            HostPattern::None => !u.has_host() || u.host_str() == Some(""),
            HostPattern::Any => true,
            HostPattern::Exact(h) => normal_host(u).as_deref() == Some(h.as_str()),
            HostPattern::Subdomains(suffix) => match (u.host(), normal_host(u)) {
                (Some(Host::Domain(_)), Some(h)) => h
                    .strip_suffix(suffix.as_str())
                    .and_then(|prefix| prefix.strip_suffix('.'))
                    .is_some_and(|labels| !labels.is_empty() && !labels.starts_with('.')),
                _ => false,
            },
        };
        if !host_ok {
            return false;
        }
        let port_ok = match self.port {
            PortPattern::Any => true,
            PortPattern::Default => u.port().is_none(),
            PortPattern::Exact(p) => u.port() == Some(p),
        };
        if !port_ok {
            return false;
        }
        if let Some(p) = &self.path {
            if !glob(p, u.path()) {
                return false;
            }
        }
        match &self.query {
            QueryPattern::Absent => u.query().is_none(),
            QueryPattern::Any => true,
            QueryPattern::Exact(q) => u.query() == Some(q.as_str()),
        }
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// `host[:port]` with IPv6 brackets.
fn split_port(authority: &str) -> std::result::Result<(&str, Option<&str>), String> {
    if authority.starts_with('[') {
        let end = authority.find(']').ok_or("has an unclosed IPv6 bracket")?;
        let (h, rest) = authority.split_at(end + 1);
        return match rest {
            "" => Ok((h, None)),
            r => r
                .strip_prefix(':')
                .map(|p| (h, Some(p)))
                .ok_or_else(|| "has text after its IPv6 address".into()),
        };
    }
    Ok(match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    })
}

/// A pattern's host in the form URIs' hosts are compared in.
fn normalise_pattern_host(scheme: &str, host: &str) -> std::result::Result<String, String> {
    if host.contains('*') {
        return Err("has `*` inside its host (only a leading `*.` is allowed)".into());
    }
    let probe = if is_special(scheme) { scheme } else { "https" };
    let u = Url::parse(&format!("{probe}://{host}/")).map_err(|_| "has an invalid host")?;
    normal_host(&u).ok_or_else(|| "has an invalid host".into())
}

impl RedirectPolicy {
    /// Parses every pattern; a malformed one is a configuration error naming it.
    pub fn new(patterns: &[String], allow_http: bool) -> Result<Self> {
        let patterns = patterns
            .iter()
            .map(|p| {
                Pattern::parse(p.trim(), allow_http).map_err(|why| {
                    Error::InvalidArgument(format!("allowed_redirect_uri_patterns: `{p}` {why}"))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RedirectPolicy { patterns, allow_http })
    }

    /// Parses `uri` as a browser would and checks what every redirect URI must satisfy, patterns aside.
    fn parse_uri(&self, uri: &str) -> std::result::Result<Url, Refusal> {
        if uri.len() > MAX_REDIRECT_URI_LEN {
            return Err(Refusal::TooLong);
        }
        if !rfc3986_chars(uri) {
            return Err(Refusal::BadCharacter);
        }
        let u = Url::parse(uri).map_err(|_| Refusal::NotAbsolute)?;
        if DANGEROUS_SCHEMES.contains(&u.scheme()) {
            return Err(Refusal::DangerousScheme);
        }
        if !u.username().is_empty() || u.password().is_some() {
            return Err(Refusal::Userinfo);
        }
        if u.fragment().is_some() {
            return Err(Refusal::Fragment);
        }
        if is_special(u.scheme()) && u.host().is_none() {
            return Err(Refusal::NotAbsolute);
        }
        if u.scheme() == "http" && !self.allow_http && !u.host().is_some_and(|h| is_loopback_host(&h)) {
            return Err(Refusal::InsecureHttp);
        }
        if ambiguous_path(u.path()) {
            return Err(Refusal::AmbiguousPath);
        }
        Ok(u)
    }

    /// Whether a client may register `uri` (RFC 7591 §2; RFC 9700 §4.1.1).
    pub fn check(&self, uri: &str) -> std::result::Result<(), Refusal> {
        let u = self.parse_uri(uri)?;
        if self.patterns.iter().any(|p| p.matches(&u)) {
            Ok(())
        } else {
            Err(Refusal::NoPatternMatches)
        }
    }

    /// Whether `uri` is allowed.
    pub fn allows(&self, uri: &str) -> bool {
        self.check(uri).is_ok()
    }
}

/// Whether the `requested` redirect URI of an authorization request matches the `registered` one (RFC 6749
/// §3.1.2.3: simple string comparison), with the one exception of RFC 8252 §7.3: for `http` on a loopback IP
/// literal or `localhost`, the port may differ (native apps bind an ephemeral port per login); scheme, host, path
/// and query must still be equal. Nothing else gets this leniency (not https, not other hosts).
pub fn matches_registered(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    let (Ok(r), Ok(q)) = (Url::parse(registered), Url::parse(requested)) else {
        return false;
    };
    let loopback = |u: &Url| u.scheme() == "http" && u.host().is_some_and(|h| is_loopback_host(&h));
    loopback(&r)
        && loopback(&q)
        && rfc3986_chars(requested)
        && q.username().is_empty()
        && q.password().is_none()
        && q.fragment().is_none()
        && r.host_str() == q.host_str()
        && r.path() == q.path()
        && r.query() == q.query()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy(patterns: &[&str]) -> RedirectPolicy {
        RedirectPolicy::new(&patterns.iter().map(|s| s.to_string()).collect::<Vec<_>>(), false).unwrap()
    }

    const WILD: &[&str] = &["https://*.example.com/*"];
    const DEFAULT: &[&str] = &["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"];

    /// (patterns, uri, allowed). RFC 9700 §4.1.1's example and the attacks are among them.
    #[test]
    fn table() {
        let cases: &[(&[&str], &str, bool)] = &[
            // RFC 9700 §4.1.1: a glob over the whole string would deliver to attacker.example.
            (WILD, "https://attacker.example/.example.com/cb", false),
            (WILD, "https://attacker.example?.example.com/cb", false),
            (WILD, "https://attacker.example#.example.com/cb", false),
            (WILD, "https://app.example.com/cb", true),
            (WILD, "https://a.b.example.com/cb", true),
            (WILD, "https://example.com/cb", false),
            (WILD, "https://evilexample.com/cb", false),
            (WILD, "https://app.example.com.attacker.example/cb", false),
            (WILD, "https://app.example.com@attacker.example/", false),
            (WILD, "https://attacker.example\\@app.example.com/", false),
            (WILD, "https://attacker.example%2F.example.com/cb", false),
            (WILD, "https://app.example.com:8443/cb", false),
            (WILD, "https://app.example.com:443/cb", true),
            (WILD, "https://APP.Example.COM/cb", true),
            (WILD, "https://app.example.com./cb", true),
            (WILD, "https://app%2eexample.com/cb", true),
            (WILD, "https://app.example.com/cb?x=1", false),
            (WILD, "https://app.example.com/cb#frag", false),
            (WILD, "http://app.example.com/cb", false),
            (WILD, "https://user:pw@app.example.com/cb", false),
            (WILD, "https://app.example.com/cb\r\nLocation: x", false),
            (WILD, "https://app.example.com/c b", false),
            (WILD, "https://app.example.com/cb\u{0}", false),
            (WILD, "https://app.example.com/cb\t", false),
            (WILD, "https://app.example.com/%zz", false),
            (WILD, "https://1.2.3.4/cb", false),
            (WILD, "javascript://app.example.com/%0aalert(1)", false),
            (WILD, "https://xn--bcher-kva.example.com/cb", true),
            (WILD, "https://bücher.example.com/cb", false), // raw non-ASCII is not RFC 3986
            (
                &["https://app.example.com/cb"],
                "https://app.example.com/cb",
                true,
            ),
            (
                &["https://app.example.com/cb"],
                "https://app.example.com/cb/x",
                false,
            ),
            (
                &["https://app.example.com/cb"],
                "https://app.example.com/cb/../cb",
                true,
            ), // normalised to /cb
            (
                &["https://app.example.com/cb/*"],
                "https://app.example.com/cb/%2e%2e/admin",
                false,
            ),
            (
                &["https://app.example.com/cb"],
                "https://app.example.com:444/cb",
                false,
            ),
            (
                &["https://app.example.com/cb?mode=x"],
                "https://app.example.com/cb?mode=x",
                true,
            ),
            (
                &["https://app.example.com/cb?mode=x"],
                "https://app.example.com/cb?mode=y",
                false,
            ),
            (
                &["https://app.example.com/cb?*"],
                "https://app.example.com/cb?anything",
                true,
            ),
            (
                &["https://app.example.com/cb?*"],
                "https://app.example.com/cb",
                true,
            ),
            (
                &["https://app.example.com"],
                "https://app.example.com/any/path",
                true,
            ),
            (
                &["https://app.example.com"],
                "https://app.example.com.evil/x",
                false,
            ),
            (&["https://[2001:db8::1]/cb"], "https://[2001:db8:0::1]/cb", true),
            // Loopback defaults: any port or none, any path, http allowed.
            (DEFAULT, "http://127.0.0.1:33418/callback", true),
            (DEFAULT, "http://127.0.0.1/callback", true),
            (DEFAULT, "http://localhost/callback", true),
            (DEFAULT, "http://LOCALHOST:5000/cb", true),
            (DEFAULT, "http://[::1]:8080/cb", true),
            (DEFAULT, "http://[0:0:0:0:0:0:0:1]:8080/cb", true),
            (DEFAULT, "https://localhost:5000/cb", false),
            (DEFAULT, "http://127.0.0.1.attacker.example/", false),
            (DEFAULT, "http://localhost.attacker.example/", false),
            (DEFAULT, "http://user@127.0.0.1:5000/cb", false),
            (DEFAULT, "http://127.0.0.1:5000@attacker.example/", false),
            (DEFAULT, "http://127.0.0.2:5000/cb", false),
            (DEFAULT, "http://127.0.0.1:5000/cb?code=x", false),
            // Custom schemes when listed.
            (
                &["cursor://*"],
                "cursor://anysphere.cursor-retrieval/oauth/user-x/callback",
                true,
            ),
            (
                &["vscode://vscode.github-authentication/*"],
                "vscode://vscode.github-authentication/did-authenticate",
                true,
            ),
            (
                &["vscode://vscode.github-authentication/*"],
                "vscode://evil.ext/did-authenticate",
                false,
            ),
            (
                &["com.example.app:/oauth2redirect"],
                "com.example.app:/oauth2redirect",
                true,
            ),
            (
                &["com.example.app:/oauth2redirect"],
                "com.example.app:/other",
                false,
            ),
            (DEFAULT, "cursor://anysphere.cursor-retrieval/cb", false),
            (&[], "http://127.0.0.1:5000/cb", false),
        ];
        assert!(cases.len() >= 40);
        for (patterns, uri, want) in cases {
            assert_eq!(policy(patterns).allows(uri), *want, "{patterns:?} {uri}");
        }
    }

    #[test]
    fn malformed_patterns_are_config_errors_naming_them() {
        for p in [
            "https://*/cb",
            "https://*.com/cb",
            "https://a*b.example.com/",
            "https://*.127.0.0.1/",
            "https://app.example.com/#x",
            "https://u@app.example.com/",
            "https://app.example.com:99999/",
            "http://app.example.com/cb",
            "javascript:alert(1)",
            "no scheme",
            "https://app.example.com/a/../b",
            "https:/app.example.com",
        ] {
            let e = RedirectPolicy::new(&[p.to_string()], false).unwrap_err();
            assert!(e.to_string().contains(p), "{e}");
        }
        assert!(RedirectPolicy::new(&["http://app.example.com/cb".into()], true).is_ok());
        let p = RedirectPolicy::new(&["http://app.example.com/*".into()], true).unwrap();
        assert!(p.allows("http://app.example.com/cb"));
    }

    #[test]
    fn loopback_port_rule() {
        let cases: &[(&str, &str, bool)] = &[
            (
                "http://127.0.0.1:33418/callback",
                "http://127.0.0.1:51004/callback",
                true,
            ),
            (
                "http://127.0.0.1/callback",
                "http://127.0.0.1:51004/callback",
                true,
            ),
            ("http://localhost:1/cb", "http://localhost:2/cb", true),
            ("http://[::1]:1/cb", "http://[::1]:2/cb", true),
            ("http://127.0.0.1:1/cb", "http://127.0.0.1:2/other", false),
            ("http://127.0.0.1:1/cb", "http://localhost:2/cb", false),
            ("http://127.0.0.1:1/cb?a=1", "http://127.0.0.1:2/cb?a=2", false),
            ("http://127.0.0.1:1/cb", "http://127.0.0.1:2/cb#f", false),
            ("http://127.0.0.1:1/cb", "http://u@127.0.0.1:2/cb", false),
            ("http://127.0.0.1:1/cb", "https://127.0.0.1:2/cb", false),
            (
                "https://app.example.com:1/cb",
                "https://app.example.com:2/cb",
                false,
            ),
            (
                "http://app.example.com:1/cb",
                "http://app.example.com:2/cb",
                false,
            ),
            (
                "http://localhost:1/cb",
                "http://localhost.attacker.example:2/cb",
                false,
            ),
            ("https://app.example.com/cb", "https://app.example.com/cb", true),
            ("https://app.example.com/cb", "https://app.example.com/cb/", false),
        ];
        for (reg, req, want) in cases {
            assert_eq!(matches_registered(reg, req), *want, "{reg} vs {req}");
        }
    }

    fn piece() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "https://",
            "http://",
            "attacker.example",
            "app.example.com",
            "example.com",
            ".",
            "@",
            "\\",
            "?",
            "#",
            "/",
            "%2e",
            "%2E",
            "%40",
            "%2f",
            ":443",
            ":8443",
            ":",
            "*",
            "EXAMPLE.COM",
            "..",
            ";",
            "[::1]",
            "xn--80ak6aa92e",
            "%00",
            "&",
            "=",
            "a",
            "-",
            "127.0.0.1",
            "localhost",
        ])
    }

    proptest! {
        /// No accepted URI is delivered (as a browser parses it) to a host outside what its pattern names.
        #[test]
        fn accepted_hosts_stay_inside_the_pattern(parts in prop::collection::vec(piece(), 1..10)) {
            let uri: String = parts.concat();
            let p = policy(&["https://*.example.com/*", "https://app.example.com/cb", "http://localhost:*"]);
            if p.allows(&uri) {
                let u = Url::parse(&uri).unwrap();
                let host = normal_host(&u).unwrap();
                let inside = host.ends_with(".example.com") || host == "app.example.com" || host == "localhost";
                prop_assert!(inside, "{} went to {}", uri, host);
                prop_assert!(u.username().is_empty() && u.fragment().is_none());
            }
        }

        /// The loopback rule never moves a code off the registered loopback host or path.
        #[test]
        fn loopback_rule_keeps_host_and_path(parts in prop::collection::vec(piece(), 1..8), port in 1u16..) {
            let requested: String = parts.concat();
            let registered = format!("http://127.0.0.1:{port}/cb");
            if matches_registered(&registered, &requested) {
                let u = Url::parse(&requested).unwrap();
                prop_assert_eq!(u.host_str(), Some("127.0.0.1"));
                prop_assert_eq!(u.path(), "/cb");
            }
        }
    }
}
