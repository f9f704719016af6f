//! Binding an authorization to the browser that started it, and the consent form's CSRF token.
//!
//! The attack (fastmcp Python's consent confused-deputy advisory; MCP Security Best Practices, "Confused Deputy";
//! RFC 9700 §4.7 CSRF): an attacker starts an authorization with his own client, approves it in his own browser, and
//! sends the resulting upstream login link (it carries our transaction id as `state`) to a victim. The victim logs
//! in; upstream sends the victim's browser to our callback; without a binding the code goes to the attacker's
//! client.
//!
//! The design (fastmcp Python's, chosen over moving consent after the upstream login because it also holds when
//! consent is turned off, and keeps the page where users and fastmcp expect it): `/authorize` gives the browser a
//! random browser id in a cookie (`__Host-fastmcp_auth_browser` on https, `fastmcp_auth_browser` on plain-http
//! loopback; `HttpOnly`, `Secure` on https, `SameSite=Lax`, `Path=/`, `Max-Age` = the transaction lifetime). Only its
//! SHA-256 is stored with the transaction. The consent POST and the callback must present the same cookie;
//! otherwise the callback answers 403 and the transaction is dead, the consent POST answers 403 and nothing changes.
//!
//! One id per browser, reused while it is valid, so several transactions in one browser each work and the cookie
//! stays one fixed-size value (fastmcp Python #3747: consent cookies that grew without bound). `SameSite=Lax`
//! sends the cookie on the top-level GET that upstream redirects to (the callback), never on a cross-site POST.
//!
//! The consent form also carries a per-transaction CSRF token (32 random bytes; its SHA-256 stored with the
//! transaction): the POST needs the cookie (this browser) *and* the token (the page we rendered), so neither a form
//! of the attacker's posted from the victim's browser nor a leaked transaction id (it travels to upstream as
//! `state`) approves anything. Each page has its own token, so two consent pages open in one browser both work
//! (fastmcp Python #4814).

use cookie::{Cookie, SameSite};

use super::provider::{random_id, sha256_hex};
use crate::pkce::constant_time_eq;

/// The cookie's name: `__Host-` prefixed when the server is served over https (browsers then refuse it from a
/// subdomain or over http, so no neighbour can plant one).
pub fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-fastmcp_auth_browser"
    } else {
        "fastmcp_auth_browser"
    }
}

/// A well-formed browser id: exactly what [`new_browser_id`] makes (43 base64url characters).
fn well_formed(v: &str) -> bool {
    v.len() == 43
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The browser id in a `Cookie` request header, if there is exactly one well-formed value under our name.
/// Two values (a planted cookie beside the real one) count as none: refusing beats guessing which is real.
pub fn browser_id(cookie_header: Option<&str>, secure: bool) -> Option<String> {
    let header = cookie_header?;
    let name = cookie_name(secure);
    let mut found: Option<String> = None;
    for c in Cookie::split_parse(header).flatten() {
        if c.name() == name {
            if found.is_some() {
                return None;
            }
            found = Some(c.value().to_owned());
        }
    }
    found.filter(|v| well_formed(v))
}

/// A fresh browser id.
pub fn new_browser_id() -> String {
    random_id()
}

/// The `Set-Cookie` value carrying `id` for `max_age_secs`.
pub fn set_cookie(id: &str, max_age_secs: u64, secure: bool) -> String {
    Cookie::build((cookie_name(secure), id.to_owned()))
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .path("/")
        .max_age(cookie::time::Duration::seconds(
            i64::try_from(max_age_secs).unwrap_or(i64::MAX),
        ))
        .build()
        .to_string()
}

/// What is stored for a secret (browser id, CSRF token): its SHA-256, so a store dump binds nothing.
pub fn digest(secret: &str) -> String {
    sha256_hex(secret)
}

/// Whether `presented` is the secret whose digest is `stored`, in constant time. A missing side never matches.
pub fn verify(presented: Option<&str>, stored: Option<&str>) -> bool {
    match (presented, stored) {
        (Some(p), Some(s)) => constant_time_eq(digest(p).as_bytes(), s.as_bytes()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_exactly_one_well_formed_value() {
        let id = new_browser_id();
        let other = new_browser_id();
        let cases: Vec<(String, bool, Option<&str>)> = vec![
            (format!("fastmcp_auth_browser={id}"), false, Some(&id)),
            (format!("a=1; fastmcp_auth_browser={id}; b=2"), false, Some(&id)),
            (format!("__Host-fastmcp_auth_browser={id}"), true, Some(&id)),
            // The unprefixed name is never read on https (a subdomain could have planted it).
            (format!("fastmcp_auth_browser={id}"), true, None),
            (format!("__Host-fastmcp_auth_browser={id}"), false, None),
            // A planted second cookie beside the real one: neither is trusted.
            (
                format!("fastmcp_auth_browser={id}; fastmcp_auth_browser={other}"),
                false,
                None,
            ),
            ("fastmcp_auth_browser=short".into(), false, None),
            (format!("fastmcp_auth_browser={id}x"), false, None),
            (format!("fastmcp_auth_browser=\"{id}\""), false, None),
            ("".into(), false, None),
            (";;;=;".into(), false, None),
        ];
        for (header, secure, want) in cases {
            assert_eq!(browser_id(Some(&header), secure).as_deref(), want, "{header}");
        }
        assert_eq!(browser_id(None, false), None);
    }

    #[test]
    fn cookie_attributes() {
        let s = set_cookie("abc", 600, true);
        for part in [
            "__Host-fastmcp_auth_browser=abc",
            "HttpOnly",
            "Secure",
            "SameSite=Lax",
            "Path=/",
            "Max-Age=600",
        ] {
            assert!(s.contains(part), "{s}");
        }
        assert!(!s.contains("Domain"));
        let s = set_cookie("abc", 600, false);
        assert!(
            s.starts_with("fastmcp_auth_browser=abc") && !s.contains("Secure"),
            "{s}"
        );
    }

    #[test]
    fn verification() {
        let id = new_browser_id();
        let stored = digest(&id);
        assert!(verify(Some(&id), Some(&stored)));
        assert!(!verify(Some(&new_browser_id()), Some(&stored)));
        assert!(!verify(None, Some(&stored)));
        assert!(!verify(Some(&id), None));
        assert!(!verify(Some(&stored), Some(&stored)));
    }
}
