//! Where the proxy's endpoints live under `base_url` (config member `route_layout`): fastmcp TS's `/oauth/...` paths
//! or fastmcp Python's, so a server switching to us keeps its URLs. Metadata (RFC 8414) and the consent form name
//! them from here.

use crate::error::{Error, Result};
use crate::jwt::ClaimLayout;

/// One of the proxy's endpoints (the callback is `redirect_path`, outside the layout).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// RFC 6749 §3.1 authorization endpoint.
    Authorize,
    /// RFC 6749 §3.2 token endpoint.
    Token,
    /// RFC 7591 registration endpoint.
    Register,
    /// RFC 7009 revocation endpoint.
    Revoke,
    /// The consent form's POST target.
    Consent,
}

/// Whose endpoint paths the proxy serves, so a server switching to us keeps its URLs (clients find them through
/// RFC 8414 metadata either way; reverse-proxy rules and firewall allow-lists name them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RouteLayout {
    /// fastmcp TS: `/oauth/authorize`, `/oauth/token`, `/oauth/register`, `/oauth/revoke`, `/oauth/consent`.
    #[default]
    FastmcpTs,
    /// fastmcp Python (`OAuthProxy.get_routes`): `/authorize`, `/token`, `/register`, `/revoke`, `/consent`.
    FastmcpPython,
}

impl RouteLayout {
    /// Parses `ts` / `py` (the names `claim_layout` takes).
    pub fn parse(s: &str) -> Result<Self> {
        match ClaimLayout::parse(s) {
            Ok(ClaimLayout::FastmcpTs) => Ok(RouteLayout::FastmcpTs),
            Ok(ClaimLayout::FastmcpPython) => Ok(RouteLayout::FastmcpPython),
            Err(_) => Err(Error::InvalidArgument(
                "config `route_layout` must be `ts` or `py`".into(),
            )),
        }
    }

    /// The path of `route` under `base_url`.
    pub fn path(self, route: Route) -> &'static str {
        let ts = matches!(self, RouteLayout::FastmcpTs);
        match route {
            Route::Authorize if ts => "/oauth/authorize",
            Route::Authorize => "/authorize",
            Route::Token if ts => "/oauth/token",
            Route::Token => "/token",
            Route::Register if ts => "/oauth/register",
            Route::Register => "/register",
            Route::Revoke if ts => "/oauth/revoke",
            Route::Revoke => "/revoke",
            Route::Consent if ts => "/oauth/consent",
            Route::Consent => "/consent",
        }
    }
}
