//! One error type for the whole crate, with a stable machine-readable code.
//!
//! Every binding (C, Python, Node, CLI) maps on [`Error::code`], never on the Display text: messages may be
//! reworded, codes are API. No message ever contains a token, a secret or key bytes.

use std::fmt;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a JWT was rejected. Each reason has a stable code and the peer's wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenError {
    /// Not three base64url parts, or the header/payload is not a JSON object.
    Malformed,
    /// The token is larger than the accepted maximum (checked before any decoding).
    TooLarge,
    /// `alg` is not `HS256` (this includes `none`), or the header asks for something unsupported.
    UnsupportedAlgorithm,
    /// The HMAC does not match any accepted key.
    InvalidSignature,
    /// `exp` is in the past (leeway applied).
    Expired,
    /// `exp` is missing or not a number.
    MissingExpiry,
    /// `iss` differs from the configured issuer.
    InvalidIssuer,
    /// `aud` differs from the configured audience.
    InvalidAudience,
    /// A refresh token was presented where an access token was expected, or the other way round.
    WrongTokenUse,
    /// `iat`/`nbf` lie in the future beyond the leeway.
    NotYetValid,
}

impl TokenError {
    /// Stable code of this reason.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed_token",
            TokenError::TooLarge => "token_too_large",
            TokenError::UnsupportedAlgorithm => "unsupported_algorithm",
            TokenError::InvalidSignature => "invalid_signature",
            TokenError::Expired => "token_expired",
            TokenError::MissingExpiry => "missing_expiry",
            TokenError::InvalidIssuer => "invalid_issuer",
            TokenError::InvalidAudience => "invalid_audience",
            TokenError::WrongTokenUse => "wrong_token_use",
            TokenError::NotYetValid => "token_not_yet_valid",
        }
    }

    /// The human text fastmcp TS gives for the same verdict (where it has one).
    pub fn message(self) -> &'static str {
        match self {
            TokenError::Malformed => "Invalid token format",
            TokenError::TooLarge => "Token too large",
            TokenError::UnsupportedAlgorithm => "Unsupported algorithm",
            TokenError::InvalidSignature => "Invalid signature",
            TokenError::Expired => "Token expired",
            TokenError::MissingExpiry => "Token has no expiry",
            TokenError::InvalidIssuer => "Invalid issuer",
            TokenError::InvalidAudience => "Invalid audience",
            TokenError::WrongTokenUse => "Token type mismatch",
            TokenError::NotYetValid => "Token not yet valid",
        }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// Every failure the crate reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A JWT was rejected; the reason says why.
    #[error("invalid token: {0}")]
    InvalidToken(TokenError),
    /// An argument or configuration value is unacceptable (the text names which, never its secret value).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A store key cannot be used (empty, too large, or contains what the backend cannot hold).
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// A stored value could not be decrypted with any configured key, or its envelope is malformed.
    #[error("decryption failed: {0}")]
    DecryptFailed(&'static str),
    /// Data read from storage is not what the format says (not JSON, wrong shape).
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// The storage path exists but is not a directory.
    #[error("not a directory: {0}")]
    NotADirectory(String),
    /// An operating-system I/O failure in a storage backend.
    #[error("storage I/O error during {op}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The store was closed; no more operations are accepted.
    #[error("store is closed")]
    Closed,
    /// A value could not be serialised to or parsed from JSON.
    #[error("JSON error: {0}")]
    Json(#[from] serde_json::Error),
    /// A blocking call was made from inside an async runtime, where it would deadlock.
    #[error("blocking call made from inside an async runtime; use the async API there")]
    BlockingInAsync,
    /// A background task failed (panicked or was cancelled).
    #[error("background task failed: {0}")]
    Task(String),
}

/// Stable, fieldless error codes: the wire form every binding exposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// See [`Error::InvalidToken`].
    InvalidToken,
    /// Token expired (a subset of invalid tokens with its own code).
    TokenExpired,
    /// See [`Error::InvalidArgument`].
    InvalidArgument,
    /// See [`Error::InvalidKey`].
    InvalidKey,
    /// See [`Error::DecryptFailed`].
    DecryptFailed,
    /// See [`Error::Corrupt`].
    Corrupt,
    /// See [`Error::NotADirectory`].
    NotADirectory,
    /// See [`Error::Io`].
    StorageIo,
    /// See [`Error::Closed`].
    Closed,
    /// See [`Error::Json`].
    InvalidJson,
    /// See [`Error::BlockingInAsync`].
    BlockingInAsync,
    /// See [`Error::Task`].
    Internal,
}

impl ErrorCode {
    /// The stable string form of the code.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::InvalidKey => "invalid_key",
            ErrorCode::DecryptFailed => "decrypt_failed",
            ErrorCode::Corrupt => "corrupt_data",
            ErrorCode::NotADirectory => "not_a_directory",
            ErrorCode::StorageIo => "storage_io",
            ErrorCode::Closed => "store_closed",
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::BlockingInAsync => "blocking_in_async",
            ErrorCode::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Error {
    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidToken(TokenError::Expired) => ErrorCode::TokenExpired,
            Error::InvalidToken(_) => ErrorCode::InvalidToken,
            Error::InvalidArgument(_) => ErrorCode::InvalidArgument,
            Error::InvalidKey(_) => ErrorCode::InvalidKey,
            Error::DecryptFailed(_) => ErrorCode::DecryptFailed,
            Error::Corrupt(_) => ErrorCode::Corrupt,
            Error::NotADirectory(_) => ErrorCode::NotADirectory,
            Error::Io { .. } => ErrorCode::StorageIo,
            Error::Closed => ErrorCode::Closed,
            Error::Json(_) => ErrorCode::InvalidJson,
            Error::BlockingInAsync => ErrorCode::BlockingInAsync,
            Error::Task(_) => ErrorCode::Internal,
        }
    }

    /// The token rejection reason, when this error is one.
    pub fn token_error(&self) -> Option<TokenError> {
        match self {
            Error::InvalidToken(r) => Some(*r),
            _ => None,
        }
    }

    pub(crate) fn io(op: &'static str, source: std::io::Error) -> Self {
        Error::Io { op, source }
    }
}

impl From<TokenError> for Error {
    fn from(r: TokenError) -> Self {
        Error::InvalidToken(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        assert_eq!(
            Error::InvalidToken(TokenError::Expired).code().as_str(),
            "token_expired"
        );
        assert_eq!(
            Error::InvalidToken(TokenError::Malformed).code().as_str(),
            "invalid_token"
        );
        assert_eq!(Error::DecryptFailed("x").code().as_str(), "decrypt_failed");
        assert_eq!(
            Error::io("read", std::io::Error::other("x")).code().as_str(),
            "storage_io"
        );
    }
}
