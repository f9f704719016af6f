//! What a production configuration must not look like (MCP authorization, "Security Best Practices" / the
//! production checklist: strong secrets, HTTPS everywhere). Each finding names the option, never its value; the
//! proxy logs them as warnings at construction, and refuses to start on any of them with `strict`.
//!
//! A key is weak when it is shorter than 32 bytes (HMAC-SHA256 and the AES-256 key derivation want 256 bits of
//! input), has fewer than 8 distinct characters (`aaaa…`, `abab…`), is mostly a run of consecutive characters
//! (`0123456789abcdef…`), or contains a placeholder word (`changeme`, `secret`, `password`, `example`, …) that
//! says nobody generated it. A URL is insecure when it is plain `http` to anything but loopback (RFC 9700 §2.1,
//! MCP: "All authorization server endpoints MUST be served over HTTPS").

/// Words that mark a key as typed by hand or copied from documentation.
const PLACEHOLDERS: &[&str] = &[
    "changeme",
    "change-me",
    "change_me",
    "secret",
    "password",
    "passw0rd",
    "example",
    "placeholder",
    "your-",
    "your_",
    "default",
    "dummy",
    "qwerty",
    "letmein",
    "admin",
    "replace",
];

/// Why `key` is weak, if it is.
pub fn key_weakness(key: &str) -> Option<&'static str> {
    if key.len() < 32 {
        return Some("shorter than 32 bytes");
    }
    let mut distinct: Vec<char> = key.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 8 {
        return Some("fewer than 8 distinct characters");
    }
    let chars: Vec<u32> = key.chars().map(u32::from).collect();
    let consecutive = chars
        .windows(2)
        .filter(|w| w[1] == w[0] + 1 || w[0] == w[1] + 1)
        .count();
    if consecutive * 2 > chars.len() {
        return Some("mostly a run of consecutive characters");
    }
    // A placeholder word in a long random key (a label such as `prod-secret-<64 hex>`) is fine: a key that is
    // little more than the word, or reads as prose (mostly lower-case letters and separators), is flagged.
    let lower = key.to_ascii_lowercase();
    let prose = key
        .bytes()
        .filter(|b| b.is_ascii_lowercase() || matches!(b, b'-' | b'_' | b' ' | b'.'))
        .count()
        * 5
        >= key.len() * 4;
    if PLACEHOLDERS
        .iter()
        .any(|w| lower.contains(w) && (prose || key.len() - w.len() < 32))
    {
        return Some("contains a placeholder word (changeme, secret, password, example, …)");
    }
    None
}

/// Whether `url` is plain `http` to a host other than loopback.
pub fn is_insecure_url(url: &str) -> bool {
    match url::Url::parse(url) {
        Ok(u) => {
            u.scheme() == "http"
                && !u
                    .host()
                    .is_some_and(|h| super::redirect_policy::is_loopback_host(&h))
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        #[rustfmt::skip]
        let table: &[(&str, Option<&str>)] = &[
            ("kQ3v9Zt2Lr8WmX1pYc7HsN4bJd6Fg0Ae", None),
            ("s8K2-x_V9qP4mZ7tR1wY6nB3cF5hJ0gL2dA8eU4iO", None),
            ("4f9c2a7e1b8d3f6a0c5e9b2d7f1a4c8e3b6d9f2a5c8e1b4d7f0a3c6e9b2d5f8a", None),
            ("short", Some("shorter than 32")),
            ("test-jwt-signing-key", Some("shorter than 32")),
            ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", Some("distinct")),
            ("abababababababababababababababababababab", Some("distinct")),
            ("0123456789abcdefghijklmnopqrstuvwxyz", Some("consecutive")),
            ("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN", Some("consecutive")),
            ("please-change-me-before-deploying-this-1234", Some("placeholder")),
            ("my-super-secret-jwt-signing-key-for-prod", Some("placeholder")),
            ("your-256-bit-signing-key-goes-right-here!", Some("placeholder")),
            ("Password1Password1Password1Password1", Some("placeholder")),
            ("prod-secret-4f9c2a7e1b8d3f6a0c5e9b2d7f1a4c8e3b6d9f2a5c8e1b4d7f0a", None),
        ];
        for (key, want) in table {
            match (key_weakness(key), want) {
                (None, None) => {}
                (Some(got), Some(w)) => assert!(got.contains(w), "{key}: {got}"),
                (got, want) => panic!("{key}: got {got:?}, wanted {want:?}"),
            }
        }
    }

    #[test]
    fn urls() {
        for (url, insecure) in [
            ("https://mcp.example.com", false),
            ("http://127.0.0.1:8000", false),
            ("http://localhost:8000", false),
            ("http://[::1]:8000", false),
            ("http://127.5.6.7", false),
            ("http://mcp.example.com", true),
            ("http://10.0.0.5:8000", true),
            ("http://localhost.example.com", true),
            ("HTTP://MCP.EXAMPLE.COM", true),
        ] {
            assert_eq!(is_insecure_url(url), insecure, "{url}");
        }
    }
}
