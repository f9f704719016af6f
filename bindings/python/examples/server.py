"""A fastmcp Python server whose OAuth proxy is fastmcp-auth's Rust core (fastmcp_auth.fastmcp.OAuthProxy: fastmcp's
arguments, every OAuth route and token check served by the core), its state in fastmcp-auth's encrypted DiskStore.

    pip install fastmcp ./bindings/python
    UPSTREAM_AUTHORIZE=https://idp.example.com/authorize UPSTREAM_TOKEN=https://idp.example.com/token \\
    UPSTREAM_CLIENT_ID=... UPSTREAM_CLIENT_SECRET=... \\
    STORAGE_KEY=$(openssl rand -base64 32) JWT_KEY=$(openssl rand -base64 32) \\
    python bindings/python/examples/server.py

Environment:
    UPSTREAM_AUTHORIZE, UPSTREAM_TOKEN   the provider's authorization and token endpoints (required)
    UPSTREAM_CLIENT_ID, UPSTREAM_CLIENT_SECRET   this server's OAuth app at the provider (required)
    UPSTREAM_JWKS   the provider's JWKS URL, when its access tokens are JWTs: they are then verified with it.
                    Unset (GitHub, most providers: opaque tokens): an upstream token is accepted as the proxy
                    obtained it from the token endpoint (ProxiedUpstreamToken below).
    STORAGE_KEY     encryption key of the DiskStore, at least 32 characters (required: without a stable key the
                    stored tokens are unreadable after a restart)
    JWT_KEY         signing key of the proxy's JWTs, at least 32 characters (required, same reason)
    HOST, PORT      where to listen (default 127.0.0.1, 8000)
    BASE_URL        the URL clients use to reach this server (default http://HOST:PORT; MCP clients check that
                    the resource they connect to is the one the server names, so it must match)
    OAUTH_DIR       the DiskStore directory (default oauth-data)
"""

import os
import sys
import time
from typing import Optional

from fastmcp import FastMCP
from fastmcp.server.auth.auth import AccessToken, TokenVerifier

from fastmcp_auth.aio import AsyncDiskStore
from fastmcp_auth.fastmcp import OAuthProxy


class ProxiedUpstreamToken(TokenVerifier):
    """For providers with opaque access tokens: fastmcp's proxy calls this only with the upstream token it stored for
    a JWT it has just verified (our signature, audience, expiry) — a token the proxy itself received from the
    provider's token endpoint. So there is nothing to check but that it exists; use a provider-specific verifier
    (fastmcp's GitHubTokenVerifier, JWTVerifier with UPSTREAM_JWKS, ...) to read who the user is."""

    async def verify_token(self, token: str) -> Optional[AccessToken]:
        if not token:
            return None
        return AccessToken(token=token, client_id="upstream", scopes=[], expires_at=int(time.time()) + 3600)


def need(name: str, min_len: int = 1) -> str:
    value = os.environ.get(name, "")
    if len(value) < min_len:
        what = f"at least {min_len} characters" if min_len > 1 else "set"
        sys.exit(f"server.py: {name} must be {what} (see the docstring at the top of this file)")
    return value


def build() -> FastMCP:
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8000"))
    jwks = os.environ.get("UPSTREAM_JWKS")
    if jwks:
        from fastmcp.server.auth.providers.jwt import JWTVerifier

        verifier: TokenVerifier = JWTVerifier(jwks_uri=jwks)
    else:
        verifier = ProxiedUpstreamToken()
    auth = OAuthProxy(
        upstream_authorization_endpoint=need("UPSTREAM_AUTHORIZE"),
        upstream_token_endpoint=need("UPSTREAM_TOKEN"),
        upstream_client_id=need("UPSTREAM_CLIENT_ID"),
        upstream_client_secret=need("UPSTREAM_CLIENT_SECRET"),
        token_verifier=verifier,
        base_url=os.environ.get("BASE_URL", f"http://{host}:{port}"),
        client_storage=AsyncDiskStore(os.environ.get("OAUTH_DIR", "oauth-data"), encryption_key=need("STORAGE_KEY", 32)),
        jwt_signing_key=need("JWT_KEY", 32).encode(),
    )
    mcp = FastMCP("fastmcp-auth example", auth=auth)

    @mcp.tool
    def hello(name: str) -> str:
        """Greets the authenticated caller."""
        return f"Hello, {name}!"

    return mcp


if __name__ == "__main__":
    build().run(transport="http", host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "8000")))
