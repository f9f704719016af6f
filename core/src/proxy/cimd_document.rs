//! What a Client ID Metadata Document and its URL must be (draft-ietf-oauth-client-id-metadata-document §3, §4;
//! MCP authorization 2025-11-25, "Client ID Metadata Documents"). Pure rules, no I/O: the fetch is
//! [`safe_fetch`](super::safe_fetch), the cache and flow [`cimd`](super::cimd).
//!
//! Decisions beyond the draft, each refusing rather than guessing:
//! - The URL must be in canonical form (what the WHATWG parser gives back): `HTTPS://Example.com/a`,
//!   `https://example.com:443/a`, `https://example.com/a/../b` name the same document under another `client_id`,
//!   so they are refused rather than fetched.
//! - No query (the rule; the draft says SHOULD NOT), and a path other than `/` (PyPI fastmcp's rule: a
//!   host's root is its home page, not a document).
//! - Public clients only: `token_endpoint_auth_method` absent or `none`. Shared-secret methods are forbidden by
//!   the draft (§4.1); `private_key_jwt` is refused as not supported here (PyPI fastmcp accepts it).
//! - Every listed redirect URI must be an absolute URI; whether one may be *used* is decided per request by the
//!   proxy's redirect policy. A listed URI the policy refuses does not void the document: VS Code's lists both a
//!   loopback and a `vscode.dev` URI, and a server allowing loopback only must still let VS Code in with the
//!   loopback one (npm fastmcp refuses the whole document then).

use serde_json::{Map, Value};
use url::Url;

use super::provider::MAX_CLIENT_ID_BYTES;
use super::register::{displayable_name, MAX_METADATA_BYTES};
use crate::jwt::payload::NoDupObject;

/// Most redirect URIs one document may list.
pub const MAX_DOCUMENT_REDIRECT_URIS: usize = 100;

/// Whether `client_id` is meant as a metadata-document URL (and so must pass [`check_url`] when CIMD is on):
/// it starts with `https://`. Ids the proxy issues are hex, fastmcp's UUIDs: they never do.
pub fn is_url_client_id(client_id: &str) -> bool {
    // Bytes, not a `str` slice: byte 8 may fall inside a multi-byte character (found by the red-team pass).
    client_id
        .as_bytes()
        .get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"https://"))
}

/// Checks a URL `client_id`; the error says what is wrong with it (it is the client's own text, not echoed).
pub fn check_url(client_id: &str) -> Result<Url, &'static str> {
    if client_id.len() > MAX_CLIENT_ID_BYTES {
        return Err("client_id URL is too long");
    }
    let u = Url::parse(client_id).map_err(|_| "client_id is not a valid URL")?;
    if u.scheme() != "https" {
        return Err("client_id URL must use https");
    }
    if u.host().is_none() {
        return Err("client_id URL has no host");
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("client_id URL must not contain credentials");
    }
    if u.query().is_some() {
        return Err("client_id URL must not contain a query");
    }
    if u.fragment().is_some() {
        return Err("client_id URL must not contain a fragment");
    }
    if u.path() == "/" || u.path().is_empty() {
        return Err("client_id URL must have a path");
    }
    if u.as_str() != client_id {
        // Dot segments, an explicit :443, upper case, percent-encoding the parser normalises: not canonical.
        return Err("client_id URL is not in canonical form (dot segments, default port, case or encoding)");
    }
    Ok(u)
}

/// The parts of a document the proxy uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientDocument {
    /// `client_name`, when the document gives a displayable one.
    pub client_name: Option<String>,
    /// The listed redirect URIs, in order.
    pub redirect_uris: Vec<String>,
    /// Metadata kept for display and echo: `client_name`, `client_uri`, `logo_uri`, `tos_uri`, `policy_uri`,
    /// `scope`, `software_id`, `software_version` when strings.
    pub metadata: Map<String, Value>,
}

/// Parses and checks the document fetched from `client_id`. The error is a fixed text naming the rule broken.
pub fn parse(client_id: &str, body: &[u8]) -> Result<ClientDocument, &'static str> {
    // serde_json's recursion limit (128) refuses deep nesting without exhausting the stack.
    let v: Value = serde_json::from_slice(body).map_err(|_| "client metadata document is not valid JSON")?;
    let m = v
        .as_object()
        .ok_or("client metadata document is not a JSON object")?;
    // Two `client_id` (or `redirect_uris`) members: parsers disagree on which wins; refuse rather than pick.
    if serde_json::from_slice::<NoDupObject>(body).is_err() {
        return Err("client metadata document has a duplicate member");
    }
    // §4.1: the document's client_id is exactly the URL it was fetched from.
    match m.get("client_id") {
        Some(Value::String(id)) if id == client_id => {}
        Some(Value::String(_)) => return Err("client metadata document's client_id does not match its URL"),
        _ => return Err("client metadata document has no client_id string"),
    }
    let redirect_uris: Vec<String> = match m.get("redirect_uris") {
        Some(Value::Array(a)) if a.is_empty() => {
            return Err("client metadata document's redirect_uris is empty")
        }
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or("client metadata document's redirect_uris must all be strings")?,
        Some(_) => return Err("client metadata document's redirect_uris is not an array"),
        None => return Err("client metadata document has no redirect_uris"),
    };
    if redirect_uris.len() > MAX_DOCUMENT_REDIRECT_URIS {
        return Err("client metadata document lists more than 100 redirect_uris");
    }
    if redirect_uris
        .iter()
        .any(|r| r.len() > MAX_METADATA_BYTES || Url::parse(r).is_err())
    {
        return Err("client metadata document's redirect_uris must be absolute URIs");
    }
    // §4.1: no shared secret; this server takes public clients only.
    if m.contains_key("client_secret") || m.contains_key("client_secret_expires_at") {
        return Err("client metadata document must not contain a client_secret");
    }
    match m.get("token_endpoint_auth_method") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s == "none" => {}
        Some(Value::String(s)) if s.starts_with("client_secret_") => return Err(
            "client metadata documents cannot use shared-secret authentication (token_endpoint_auth_method)",
        ),
        Some(Value::String(s)) if s == "private_key_jwt" => {
            return Err("token_endpoint_auth_method private_key_jwt is not supported; use none with PKCE")
        }
        Some(_) => return Err("token_endpoint_auth_method must be none"),
    }
    let lists = |k: &str, needed: &str| match m.get(k) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(a)) if a.iter().any(|x| x.as_str() == Some(needed)) => Ok(()),
        Some(_) => Err(()),
    };
    lists("grant_types", "authorization_code")
        .map_err(|_| "client metadata document's grant_types must include authorization_code")?;
    lists("response_types", "code")
        .map_err(|_| "client metadata document's response_types must include code")?;
    let client_name = match m.get("client_name") {
        None | Some(Value::Null) => None,
        Some(Value::String(n)) if displayable_name(n) => Some(n.clone()),
        Some(_) => {
            return Err(
                "client metadata document's client_name must be visible text of at most 200 characters",
            )
        }
    };
    let mut metadata = Map::new();
    for k in [
        "client_name",
        "client_uri",
        "logo_uri",
        "tos_uri",
        "policy_uri",
        "scope",
        "software_id",
        "software_version",
    ] {
        if let Some(Value::String(s)) = m.get(k) {
            if s.len() <= MAX_METADATA_BYTES {
                metadata.insert(k.into(), Value::String(s.clone()));
            }
        }
    }
    Ok(ClientDocument {
        client_name,
        redirect_uris,
        metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "https://client.example.com/oauth/metadata.json";

    #[test]
    fn urls() {
        #[rustfmt::skip]
        let table: &[(&str, Result<(), &str>)] = &[
            (ID, Ok(())),
            ("https://claude.ai/oauth/mcp-oauth-client-metadata", Ok(())),
            ("https://vscode.dev/oauth/client-metadata.json", Ok(())),
            ("https://client.example.com:8443/m", Ok(())),
            ("https://[2606:4700::1]/m", Ok(())),
            ("https://127.0.0.1/m", Ok(())), // shape is fine; the address policy refuses it at fetch time
            ("http://client.example.com/m", Err("https")),
            ("https://client.example.com", Err("must have a path")),
            ("https://client.example.com/", Err("must have a path")),
            ("https://client.example.com/m?x=1", Err("query")),
            ("https://client.example.com/m?", Err("query")),
            ("https://client.example.com/m#f", Err("fragment")),
            ("https://user:pw@client.example.com/m", Err("credentials")),
            ("https://user@client.example.com/m", Err("credentials")),
            ("https://client.example.com/a/../m", Err("canonical")),
            ("https://client.example.com/./m", Err("canonical")),
            ("https://client.example.com/a/%2e%2e/m", Err("canonical")),
            ("https://Client.Example.com/m", Err("canonical")),
            ("HTTPS://client.example.com/m", Err("canonical")),
            ("https://client.example.com:443/m", Err("canonical")),
            ("https://client.example.com/m m", Err("canonical")),
            ("https://xn--bcher-kva.example/m", Ok(())),
            ("https://bücher.example/m", Err("canonical")),
            ("https://0x7f.1/m", Err("canonical")),
            ("https://2130706433/m", Err("canonical")),
            ("https:///m", Err("must have a path")), // the parser reads host "m"
            ("https://", Err("not a valid URL")),
        ];
        for (url, want) in table {
            let got = check_url(url);
            match (got, want) {
                (Ok(_), Ok(())) => {}
                (Err(e), Err(w)) => assert!(e.contains(w), "{url}: {e} (wanted {w})"),
                (got, want) => panic!("{url}: got {got:?}, wanted {want:?}"),
            }
        }
        assert!(check_url(&format!("https://a.example/{}", "x".repeat(3000))).is_err());
        assert!(is_url_client_id("https://x/y") && is_url_client_id("HTTPS://x/y"));
        assert!(
            !is_url_client_id("0123456789abcdef")
                && !is_url_client_id("http://x/y")
                && !is_url_client_id("é")
        );
    }

    fn doc(extra: Value) -> Vec<u8> {
        let mut d = json!({
            "client_id": ID,
            "client_name": "Example Client",
            "redirect_uris": ["http://127.0.0.1:33418/", "https://client.example.com/cb"],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                d.as_object_mut().unwrap().remove(k);
            } else {
                d[k] = v.clone();
            }
        }
        d.to_string().into_bytes()
    }

    #[test]
    fn documents() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        #[rustfmt::skip]
        let table: Vec<(&str, Vec<u8>, Result<(), &str>)> = vec![
            ("good", doc(json!({})), Ok(())),
            ("minimal", json!({"client_id": ID, "redirect_uris": ["http://localhost/cb"]}).to_string().into_bytes(), Ok(())),
            ("private-use scheme", doc(json!({"redirect_uris": ["com.example.app:/cb"]})), Ok(())),
            ("client_id mismatch", doc(json!({"client_id": "https://evil.example/m"})), Err("does not match")),
            ("client_id with trailing slash", doc(json!({"client_id": format!("{ID}/")})), Err("does not match")),
            ("client_id differs in case", doc(json!({"client_id": ID.to_uppercase()})), Err("does not match")),
            ("client_id missing", doc(json!({"client_id": null})), Err("no client_id")),
            ("client_id not a string", doc(json!({"client_id": 7})), Err("no client_id")),
            ("redirect_uris missing", doc(json!({"redirect_uris": null})), Err("no redirect_uris")),
            ("redirect_uris empty", doc(json!({"redirect_uris": []})), Err("empty")),
            ("redirect_uris a string", doc(json!({"redirect_uris": "http://127.0.0.1/cb"})), Err("not an array")),
            ("redirect_uris with a number", doc(json!({"redirect_uris": ["http://127.0.0.1/cb", 5]})), Err("strings")),
            ("redirect_uris relative", doc(json!({"redirect_uris": ["/cb"]})), Err("absolute")),
            ("redirect_uris too many", doc(json!({"redirect_uris": vec!["http://127.0.0.1/cb"; 101]})), Err("more than 100")),
            ("client_secret_basic", doc(json!({"token_endpoint_auth_method": "client_secret_basic"})), Err("shared-secret")),
            ("client_secret_post", doc(json!({"token_endpoint_auth_method": "client_secret_post"})), Err("shared-secret")),
            ("client_secret_jwt", doc(json!({"token_endpoint_auth_method": "client_secret_jwt"})), Err("shared-secret")),
            ("private_key_jwt", doc(json!({"token_endpoint_auth_method": "private_key_jwt"})), Err("not supported")),
            ("auth method not a string", doc(json!({"token_endpoint_auth_method": ["none"]})), Err("must be none")),
            ("a client_secret", doc(json!({"client_secret": "s"})), Err("client_secret")),
            ("grant_types without code", doc(json!({"grant_types": ["client_credentials"]})), Err("grant_types")),
            ("response_types without code", doc(json!({"response_types": ["token"]})), Err("response_types")),
            ("client_name with bidi override", doc(json!({"client_name": "Claude\u{202e}moc.live"})), Err("client_name")),
            ("client_name too long", doc(json!({"client_name": "x".repeat(201)})), Err("client_name")),
            ("client_name not a string", doc(json!({"client_name": {"en": "x"}})), Err("client_name")),
            ("not an object", b"[1,2]".to_vec(), Err("not a JSON object")),
            ("not JSON", b"<html>hello</html>".to_vec(), Err("not valid JSON")),
            ("empty", Vec::new(), Err("not valid JSON")),
            ("nesting 10,000 deep", deep.into_bytes(), Err("not valid JSON")),
            ("duplicate-free trailing garbage", [doc(json!({})), b"x".to_vec()].concat(), Err("not valid JSON")),
            ("invalid UTF-8", b"{\"client_id\": \"\xff\"}".to_vec(), Err("not valid JSON")),
            ("two client_id members", format!("{{\"client_id\":\"https://evil.example/m\",\"redirect_uris\":[\"http://127.0.0.1/cb\"],\"client_id\":\"{ID}\"}}").into_bytes(), Err("duplicate member")),
        ];
        for (name, body, want) in table {
            match (parse(ID, &body), want) {
                (Ok(_), Ok(())) => {}
                (Err(e), Err(w)) => assert!(e.contains(w), "{name}: {e} (wanted {w})"),
                (got, want) => panic!("{name}: got {got:?}, wanted {want:?}"),
            }
        }
        let d = parse(
            ID,
            &doc(json!({"logo_uri": "https://client.example.com/l.png", "jwks": {"keys": []}})),
        )
        .unwrap();
        assert_eq!(d.client_name.as_deref(), Some("Example Client"));
        assert_eq!(d.redirect_uris.len(), 2);
        assert!(d.metadata.contains_key("logo_uri") && !d.metadata.contains_key("jwks"));
    }
}
