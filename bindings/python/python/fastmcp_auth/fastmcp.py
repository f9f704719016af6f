"""fastmcp Python integration: its OAuthProxy with this package's JWTIssuer (and, through ``client_storage=``,
its stores).

    from fastmcp_auth.fastmcp import OAuthProxy
    from fastmcp_auth.aio import AsyncDiskStore
    auth = OAuthProxy(..., client_storage=AsyncDiskStore("/var/lib/fastmcp/oauth", encryption_key=key))

Requires ``fastmcp`` (imported here, not by ``fastmcp_auth`` itself).
"""

from __future__ import annotations

from typing import Any

from fastmcp.server.auth.oauth_proxy import OAuthProxy as _FastMCPOAuthProxy

from ._native import JWTIssuer


class OAuthProxy(_FastMCPOAuthProxy):
    """fastmcp's OAuthProxy, issuing and verifying its JWTs with fastmcp-auth's Rust ``JWTIssuer`` (same claims,
    same bytes, same ``JoseError`` on rejection)."""

    def set_mcp_path(self, mcp_path: Any) -> None:  # noqa: D102 - documented on the base class
        super().set_mcp_path(mcp_path)
        theirs = self._jwt_issuer
        if theirs is not None:
            self._jwt_issuer = JWTIssuer(theirs.issuer, theirs.audience, self._jwt_signing_key)  # type: ignore[assignment]


__all__ = ["OAuthProxy"]
