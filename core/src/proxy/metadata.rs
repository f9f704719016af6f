//! RFC 8414 authorization server metadata.

use serde_json::Value;

use super::provider::OAuthProxy;

impl OAuthProxy {
    /// RFC 8414 authorization server metadata.
    pub fn authorization_server_metadata(&self) -> Value {
        self.config.authorization_server_metadata()
    }
}
