//! RFC 7591 dynamic client registration and client authentication (RFC 6749 §2.3).

use std::time::SystemTime;

use rand::RngCore;
use serde_json::{json, Value};

use super::error::{OAuthError, OAuthResult};
use super::model::*;
use super::provider::{random_id, sha256_hex, OAuthProxy};
use super::rate_limit::Endpoint;
use super::scope_policy;
use crate::pkce::constant_time_eq;

/// Most redirect URIs one client may register.
pub const MAX_REDIRECT_URIS: usize = 20;
/// Largest registration request (its JSON text), in bytes.
pub const MAX_REGISTRATION_BYTES: usize = 16 * 1024;
/// Longest `client_name`, in characters (it is shown on the consent page).
pub const MAX_CLIENT_NAME_CHARS: usize = 200;
/// Largest other metadata value (its JSON text), in bytes.
pub const MAX_METADATA_BYTES: usize = 2048;

/// Whether a `client_name` shows on the consent page as what it is: visible text, bounded, without control,
/// zero-width or bidirectional-override characters (`"Claude\u{202e}moc.live"` must not read as another name).
pub(super) fn displayable_name(n: &str) -> bool {
    let hidden = |c: char| {
        c.is_control()
            || matches!(
                c,
                // soft hyphen, combining grapheme joiner, Arabic letter mark, Hangul fillers, Khmer inherent
                // vowels, Mongolian vowel separator
                '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}' | '\u{180E}'
                // zero-width and direction marks, line/paragraph separators, embeddings and overrides,
                // invisible operators, isolates
                | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{206F}'
                // Hangul filler, variation selectors (not FE0E/FE0F, the text/emoji presentation selectors of
                // everyday emoji), BOM, halfwidth filler, interlinear annotations
                | '\u{3164}' | '\u{FE00}'..='\u{FE0D}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF9}'..='\u{FFFB}'
                // musical format controls, tags, variation selectors supplement
                | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E007F}' | '\u{E0100}'..='\u{E01EF}'
            )
    };
    !n.trim().is_empty() && n.chars().count() <= MAX_CLIENT_NAME_CHARS && !n.chars().any(hidden)
}

impl OAuthProxy {
    /// Whether `uri` is acceptable as a client redirect URI under the configured redirect policy (see
    /// [`redirect_policy`](super::redirect_policy)).
    pub fn validate_redirect_uri(&self, uri: &str) -> bool {
        self.redirect_policy.allows(uri)
    }

    /// RFC 7591 dynamic client registration. Issues our own `client_id` and `client_secret` (none for
    /// `token_endpoint_auth_method: "none"`) and persists the registration, so every instance sharing the store
    /// knows the client.
    pub async fn register_client(&self, request: &Value) -> OAuthResult<Value> {
        self.register_client_from(request, None).await
    }

    /// [`register_client`](Self::register_client) with the caller's address (rate limits count per address;
    /// without one, every registration counts against one shared limit).
    pub async fn register_client_from(
        &self,
        request: &Value,
        remote_addr: Option<&str>,
    ) -> OAuthResult<Value> {
        self.rate_limit(Endpoint::Register, remote_addr, None, false)
            .await?;
        let r = self.register(request).await;
        if r.is_ok() {
            self.metrics.registrations.inc();
        }
        r
    }

    async fn register(&self, request: &Value) -> OAuthResult<Value> {
        let req = request
            .as_object()
            .ok_or_else(|| OAuthError::new("invalid_client_metadata", "body must be a JSON object"))?;
        if request.to_string().len() > MAX_REGISTRATION_BYTES {
            return Err(OAuthError::new(
                "invalid_client_metadata",
                format!("registration larger than {MAX_REGISTRATION_BYTES} bytes"),
            ));
        }
        let uris: Vec<String> = match req.get("redirect_uris") {
            Some(Value::Array(a)) if !a.is_empty() => a
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or_else(|| OAuthError::new("invalid_client_metadata", "redirect_uris must be strings"))?,
            _ => {
                return Err(OAuthError::new(
                    "invalid_client_metadata",
                    "redirect_uris is required",
                ))
            }
        };
        if uris.len() > MAX_REDIRECT_URIS {
            return Err(OAuthError::new(
                "invalid_client_metadata",
                "too many redirect_uris",
            ));
        }
        for u in &uris {
            if let Err(why) = self.redirect_policy.check(u) {
                return Err(OAuthError::new("invalid_redirect_uri", why.describe()));
            }
        }
        let method = match req.get("token_endpoint_auth_method") {
            None | Some(Value::Null) => "client_secret_basic".to_owned(),
            Some(Value::String(m))
                if ["none", "client_secret_basic", "client_secret_post"].contains(&m.as_str()) =>
            {
                m.clone()
            }
            _ => {
                return Err(OAuthError::new(
                    "invalid_client_metadata",
                    "unsupported token_endpoint_auth_method",
                ))
            }
        };
        let grant_types = req
            .get("grant_types")
            .cloned()
            .unwrap_or(json!(["authorization_code", "refresh_token"]));
        let ok_grants = grant_types.as_array().is_some_and(|a| {
            a.iter()
                .all(|g| matches!(g.as_str(), Some("authorization_code" | "refresh_token")))
        });
        if !ok_grants {
            return Err(OAuthError::new(
                "invalid_client_metadata",
                "unsupported grant_types",
            ));
        }
        let response_types = req.get("response_types").cloned().unwrap_or(json!(["code"]));
        if response_types != json!(["code"]) {
            return Err(OAuthError::new(
                "invalid_client_metadata",
                "response_types must be [\"code\"]",
            ));
        }
        let mut metadata = serde_json::Map::new();
        for name in [
            "client_name",
            "client_uri",
            "contacts",
            "jwks",
            "jwks_uri",
            "logo_uri",
            "policy_uri",
            "scope",
            "software_id",
            "software_version",
            "tos_uri",
        ] {
            if let Some(v) = req.get(name).filter(|v| !v.is_null()) {
                if name == "client_name" && !v.as_str().is_some_and(displayable_name) {
                    return Err(OAuthError::new(
                        "invalid_client_metadata",
                        format!(
                            "client_name must be visible text of at most {MAX_CLIENT_NAME_CHARS} characters, without \
                             control, invisible or direction-changing characters"
                        ),
                    ));
                }
                if name == "scope" {
                    // RFC 7591 §2: the scopes the client may request; with `valid_scopes`, only those.
                    let scopes = v
                        .as_str()
                        .map(scope_policy::parse)
                        .transpose()
                        .ok()
                        .flatten()
                        .ok_or_else(|| {
                            OAuthError::new("invalid_client_metadata", "scope must be a scope string")
                        })?;
                    scope_policy::check_valid(&scopes, self.config.valid_scopes.as_deref()).map_err(|e| {
                        OAuthError::new("invalid_client_metadata", e.description.unwrap_or_default())
                    })?;
                }
                if v.to_string().len() > MAX_METADATA_BYTES {
                    return Err(OAuthError::new(
                        "invalid_client_metadata",
                        format!("{name} too large"),
                    ));
                }
                metadata.insert(name.into(), v.clone());
            }
        }
        let client_id = {
            let mut b = [0u8; 16];
            rand::thread_rng().fill_bytes(&mut b);
            hex::encode(b)
        };
        let secret = (method != "none").then(random_id);
        let client = RegisteredClient {
            callback_url: uris[0].clone(),
            client_id: client_id.clone(),
            client_secret: None,
            client_secret_hash: secret.as_deref().map(sha256_hex),
            metadata: Value::Object(metadata.clone()),
            redirect_uris: uris.clone(),
            registered_at: iso(SystemTime::now()),
            token_endpoint_auth_method: Some(method.clone()),
            // Unused registrations lapse (a registration flood cannot fill the store for good).
            expires_at: (self.config.unused_client_ttl > 0).then(|| iso_in(self.config.unused_client_ttl)),
        };
        self.save_client(&client).await?;
        let mut resp = json!({
            "client_id": client_id,
            "client_id_issued_at": crate::jwt::unix_now(),
            "redirect_uris": uris,
            "grant_types": grant_types,
            "response_types": response_types,
            "token_endpoint_auth_method": method,
        });
        let m = resp.as_object_mut().expect("object");
        if let Some(s) = secret {
            m.insert("client_secret".into(), s.into());
            m.insert("client_secret_expires_at".into(), 0.into());
        }
        m.extend(metadata);
        Ok(resp)
    }

    /// The registered client `client_id`, authenticated (RFC 6749 §2.3): `invalid_client` (401) when it is unknown or
    /// its credentials are missing or wrong.
    pub(super) async fn authenticated_client(
        &self,
        client_id: &str,
        secret: Option<&str>,
    ) -> OAuthResult<RegisteredClient> {
        let client = self
            .client(client_id)
            .await?
            .ok_or_else(|| OAuthError::invalid_client("Unknown client_id"))?;
        self.authenticate(&client, secret)?;
        Ok(client)
    }

    /// Checks the client's credentials when the registration requires them (fastmcp never does).
    fn authenticate(&self, client: &RegisteredClient, secret: Option<&str>) -> OAuthResult<()> {
        let method = client
            .token_endpoint_auth_method
            .as_deref()
            .unwrap_or("client_secret_basic");
        if method == "none" {
            return Ok(());
        }
        let presented = secret.ok_or_else(|| OAuthError::invalid_client("client authentication required"))?;
        let ok = match (&client.client_secret_hash, &client.client_secret) {
            (Some(h), _) => constant_time_eq(sha256_hex(presented).as_bytes(), h.as_bytes()),
            (None, Some(s)) => constant_time_eq(presented.as_bytes(), s.as_bytes()),
            // A fastmcp registration without a secret: nothing to check against.
            (None, None) => true,
        };
        if ok {
            Ok(())
        } else {
            Err(OAuthError::invalid_client("client authentication failed"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::displayable_name;

    #[test]
    fn client_names() {
        #[rustfmt::skip]
        let table: &[(&str, bool)] = &[
            ("Claude", true), ("Visual Studio Code", true), ("Cursor ✳\u{FE0F}", true), ("日本語のクライアント", true),
            ("", false), ("   ", false), (&"x".repeat(201), false),
            ("Claude\u{202E}moc.live", false), ("a\u{200B}b", false), ("a\u{061C}b", false), ("a\u{180E}b", false),
            ("a\u{3164}b", false), ("a\u{FFA0}b", false), ("a\u{115F}b", false), ("a\u{FFF9}b", false),
            ("a\u{E0041}b", false), ("a\u{E0100}b", false), ("a\u{FE00}b", false), ("a\u{034F}b", false),
            ("a\nb", false), ("a\u{7F}b", false), ("a\u{2066}b", false),
        ];
        for (name, ok) in table {
            assert_eq!(displayable_name(name), *ok, "{name:?}");
        }
    }
}
