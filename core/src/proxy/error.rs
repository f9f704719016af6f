//! The one error type of the OAuth proxy: an RFC 6749 error code, a description and an HTTP status.

use std::fmt;

use serde_json::json;

/// An OAuth error as the token, authorization and registration endpoints report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthError {
    /// RFC 6749 / 7591 / 7009 error code (`invalid_request`, `invalid_grant`, `server_error`, …).
    pub code: String,
    /// Human-readable text for the developer; never contains a token or secret.
    pub description: Option<String>,
    /// HTTP status to answer with.
    pub status: u16,
    /// Seconds the client should wait before trying again: the `Retry-After` header of a 429 (rate limits).
    pub retry_after: Option<u64>,
}

impl OAuthError {
    /// An error with status 400.
    pub fn new(code: &str, description: impl Into<String>) -> Self {
        OAuthError {
            code: code.to_owned(),
            description: Some(description.into()),
            status: 400,
            retry_after: None,
        }
    }

    /// Same error with a `Retry-After` (seconds).
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// The HTTP headers this error's answer carries besides the JSON body: `Retry-After` when set.
    pub fn headers(&self) -> Vec<(String, String)> {
        self.retry_after
            .map(|s| vec![("Retry-After".to_owned(), s.to_string())])
            .unwrap_or_default()
    }

    /// Same error with another status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// `invalid_request`.
    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new("invalid_request", d)
    }
    /// `invalid_client` (401).
    pub fn invalid_client(d: impl Into<String>) -> Self {
        Self::new("invalid_client", d).with_status(401)
    }
    /// `invalid_grant`.
    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new("invalid_grant", d)
    }
    /// `server_error` (500 unless a status is given).
    pub fn server_error(d: impl Into<String>) -> Self {
        Self::new("server_error", d).with_status(500)
    }

    /// `{"error": …, "error_description": …}` as the token endpoint answers.
    pub fn to_json(&self) -> serde_json::Value {
        match &self.description {
            Some(d) => json!({"error": self.code, "error_description": d}),
            None => json!({"error": self.code}),
        }
    }

    /// Whether the failure was transient (upstream unreachable, timed out, or answered 5xx).
    pub fn is_transient(&self) -> bool {
        self.code == "server_error" || self.code == "temporarily_unavailable"
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.description {
            Some(d) => write!(f, "{}: {}", self.code, d),
            None => f.write_str(&self.code),
        }
    }
}

impl std::error::Error for OAuthError {}

impl From<crate::Error> for OAuthError {
    /// Storage and internal failures become `server_error` (503 while storage is unavailable): the client may
    /// retry, and nothing already stored is lost.
    fn from(e: crate::Error) -> Self {
        use crate::ErrorCode as C;
        match e.code() {
            C::InvalidKey | C::InvalidArgument => OAuthError::invalid_request(e.to_string()),
            C::BlockingInAsync => OAuthError::server_error(e.to_string()),
            C::StorageIo | C::Closed => {
                tracing::error!(error = %e, "OAuth proxy: storage unavailable");
                OAuthError::server_error("token storage is unavailable").with_status(503)
            }
            _ => {
                tracing::error!(error = %e, "OAuth proxy: internal error");
                OAuthError::server_error("internal error")
            }
        }
    }
}

/// Result of proxy operations.
pub type OAuthResult<T> = std::result::Result<T, OAuthError>;
