//! The OAuth 2.1 proxy between MCP clients and an upstream identity provider, with the token swap pattern.
//!
//! Every endpoint is a method returning plain data ([`HttpResponse`], [`TokenResponse`], JSON), so any HTTP
//! framework or binding can serve it. State lives in a [`Store`](crate::Store) (encrypted by default), so several
//! instances sharing one store (a directory, Redis) serve one flow together.
//!
//! Refresh in swap mode: the refresh token's mapping is claimed atomically; upstream is refreshed (keeping the old
//! upstream refresh token when upstream does not rotate); a new refresh token is issued. The rotated token is
//! remembered: presented again within `refresh_grace_window` (a client retry, two replicas racing) it receives a
//! fresh access token and the same successor refresh token; after the window the reuse is a replay and the whole
//! grant is revoked (RFC 9700 §4.14.2). A transient upstream failure puts the claim back.

pub mod address_policy;
mod authorize;
mod browser_binding;
mod callback;
mod cimd;
pub mod cimd_document;
mod claims;
mod code_use;
mod config;
mod consent;
mod error;
mod health;
mod http;
mod metadata;
mod metrics;
mod model;
mod provider;
pub mod rate_limit;
mod read_mode;
pub mod redirect_policy;
mod refresh;
mod register;
pub mod resource;
mod resource_server;
mod revoke;
mod route_layout;
pub mod safe_fetch;
pub mod scope_policy;
pub mod secret_policy;
mod token;
mod upstream;
pub mod upstream_scopes;

pub use claims::ClaimsPassthrough;
pub use config::{
    default_redirect_patterns, CimdOptions, OAuthProxyConfig, Route, RouteLayout, UpstreamAuthMethod,
    MAX_LIFETIME_SECS,
};
pub use error::{OAuthError, OAuthResult};
pub use health::Health;
pub use http::{
    escape_html, parse_form, AuthorizeParams, CallbackParams, ConsentParams, HttpResponse, RevocationRequest,
    TokenRequest, TokenResponse,
};
pub use model::{RegisteredClient, TokenMapping, Transaction, UpstreamTokens};
pub use provider::OAuthProxy;
pub use rate_limit::{Caller, Endpoint, Limit, Limiter, RateLimits};
pub use resource_server::BearerCheck;
