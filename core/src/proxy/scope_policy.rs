//! Scope rules (RFC 6749 §3.3, §6): the syntax and size of a `scope` parameter, the optional `valid_scopes`
//! allow-list (fastmcp Python's name), and refresh requests that may narrow but never widen a grant.

use super::error::OAuthError;
use super::http::{MAX_SCOPES, MAX_SCOPE_BYTES};

/// `scope` split on spaces, bounded in size and checked against RFC 6749 §3.3's
/// `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
pub fn parse(scope: &str) -> Result<Vec<String>, OAuthError> {
    let mut scopes: Vec<String> = Vec::new();
    for s in scope.split(' ').filter(|s| !s.is_empty()) {
        if scopes.len() > MAX_SCOPES {
            break;
        }
        // A scope named twice is one scope (RFC 6749 §3.3: the order does not matter, the set does).
        if !scopes.iter().any(|x| x == s) {
            scopes.push(s.to_owned());
        }
    }
    if scope.len() > MAX_SCOPE_BYTES || scopes.len() > MAX_SCOPES {
        return Err(OAuthError::new(
            "invalid_scope",
            format!("at most {MAX_SCOPES} scopes and {MAX_SCOPE_BYTES} bytes"),
        ));
    }
    if !scopes.iter().all(|t| is_scope_token(t)) {
        return Err(OAuthError::new("invalid_scope", "malformed scope"));
    }
    Ok(scopes)
}

/// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
pub fn is_scope_token(t: &str) -> bool {
    !t.is_empty()
        && t.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// With `valid_scopes` configured, every requested scope must be one of them.
pub fn check_valid(scopes: &[String], valid: Option<&[String]>) -> Result<(), OAuthError> {
    match valid {
        Some(v) if !scopes.iter().all(|s| v.contains(s)) => Err(OAuthError::new(
            "invalid_scope",
            "requested scope is not offered by this server",
        )),
        _ => Ok(()),
    }
}

/// A client that registered a `scope` (RFC 7591 §2) may request only those scopes.
pub fn check_registered(scopes: &[String], registered: Option<&str>) -> Result<(), OAuthError> {
    match registered {
        Some(r) if !scopes.iter().all(|s| r.split(' ').any(|x| x == s)) => Err(OAuthError::new(
            "invalid_scope",
            "requested scope is not among the client's registered scopes",
        )),
        _ => Ok(()),
    }
}

/// The scopes our tokens carry for what upstream granted: with `valid_scopes`, only those (upstream may grant
/// more than was asked; what this server never offers is not ours to hand out).
pub fn token_scopes(granted: &[String], valid: Option<&[String]>) -> Vec<String> {
    match valid {
        Some(v) => granted.iter().filter(|s| v.contains(s)).cloned().collect(),
        None => granted.to_vec(),
    }
}

/// RFC 6749 §6: a refresh "MUST NOT include any scope not originally granted".
pub fn check_within_grant(requested: &[String], granted: &[String]) -> Result<(), OAuthError> {
    if requested.iter().all(|s| granted.contains(s)) {
        Ok(())
    } else {
        Err(OAuthError::new(
            "invalid_scope",
            "requested scope exceeds the scope originally granted",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn table() {
        assert_eq!(parse("read  write").unwrap(), v(&["read", "write"]));
        assert_eq!(parse("read read write read").unwrap(), v(&["read", "write"]));
        assert!(check_registered(&v(&["admin"]), Some("read write")).is_err());
        assert!(check_registered(&v(&["read"]), Some("read write")).is_ok());
        assert!(check_registered(&v(&["admin"]), None).is_ok());
        assert_eq!(
            token_scopes(&v(&["read", "superuser"]), Some(&v(&["read", "write"]))),
            v(&["read"])
        );
        assert_eq!(
            token_scopes(&v(&["read", "superuser"]), None),
            v(&["read", "superuser"])
        );
        assert_eq!(parse("").unwrap(), Vec::<String>::new());
        for bad in ["a\"b", "a\\b", "a\tb", "é", "a\u{0}"] {
            assert_eq!(parse(bad).unwrap_err().code, "invalid_scope", "{bad:?}");
        }
        assert!(parse(&"s ".repeat(10_000)).is_err());
        assert!(parse(&"x".repeat(MAX_SCOPE_BYTES + 1)).is_err());
        assert!(check_valid(&v(&["read"]), Some(&v(&["read", "write"]))).is_ok());
        assert!(check_valid(&v(&["admin"]), Some(&v(&["read"]))).is_err());
        assert!(check_valid(&v(&["admin"]), None).is_ok());
        assert!(check_within_grant(&v(&["read"]), &v(&["read", "write"])).is_ok());
        assert!(check_within_grant(&v(&[]), &v(&["read"])).is_ok());
        assert!(check_within_grant(&v(&["read", "admin"]), &v(&["read", "write"])).is_err());
    }
}
