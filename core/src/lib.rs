//! fastmcp-auth: the security-critical half of an MCP server's OAuth — token stores, HS256 JWTs, key derivation
//! and PKCE — wire-compatible with both fastmcp implementations (npm `fastmcp`, PyPI `fastmcp`).
//!
//! - [`store`]: [`MemoryStore`], [`DiskStore`], [`EncryptedStore`] behind one async [`Store`] trait.
//! - [`jwt`]: [`JwtIssuer`] in the fastmcp TS or Python claim layout.
//! - [`keys`]: [`derive_key`] (TS) and [`derive_jwt_key`] (Python).
//! - [`pkce`]: verifiers and challenges.
//! - [`proxy`]: the OAuth proxy with token swap ([`proxy::OAuthProxy`]).
//! - [`blocking`]: the synchronous facade; [`runtime`]: the shared tokio runtime.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod blocking;
pub mod error;
pub mod jwt;
pub mod keys;
pub mod log;
pub mod pkce;
pub mod proxy;
pub mod runtime;
pub mod store;

pub use error::{Error, ErrorCode, Result, TokenError};
pub use jwt::{dangerous, ClaimLayout, Claims, IssueOptions, JwtIssuer, TokenUse, Verification};
pub use keys::{derive_jwt_key, derive_key, KeyMaterial};
pub use pkce::{ChallengeMethod, CodeVerifier};
pub use proxy::{OAuthError, OAuthProxy, OAuthProxyConfig};
pub use store::{
    DiskStore, DiskStoreOptions, EncryptedStore, MemoryStore, RedisStore, RedisStoreOptions, Store, SyncStore,
};
