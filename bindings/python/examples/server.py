"""A fastmcp Python server whose OAuth proxy keeps its state in fastmcp-auth's encrypted DiskStore and signs its
JWTs with fastmcp-auth's JWTIssuer.

    pip install fastmcp ./bindings/python
    UPSTREAM_CLIENT_ID=... UPSTREAM_CLIENT_SECRET=... STORAGE_KEY=... python bindings/python/examples/server.py
"""

import os

from fastmcp import FastMCP
from fastmcp.server.auth.providers.jwt import JWTVerifier

from fastmcp_auth.aio import AsyncDiskStore
from fastmcp_auth.fastmcp import OAuthProxy


def build() -> FastMCP:
    auth = OAuthProxy(
        upstream_authorization_endpoint=os.environ.get("UPSTREAM_AUTHORIZE", "https://idp.example.com/authorize"),
        upstream_token_endpoint=os.environ.get("UPSTREAM_TOKEN", "https://idp.example.com/token"),
        upstream_client_id=os.environ.get("UPSTREAM_CLIENT_ID", "client-id"),
        upstream_client_secret=os.environ.get("UPSTREAM_CLIENT_SECRET", "client-secret"),
        token_verifier=JWTVerifier(jwks_uri=os.environ.get("UPSTREAM_JWKS", "https://idp.example.com/jwks")),
        base_url=os.environ.get("BASE_URL", "http://localhost:8000"),
        client_storage=AsyncDiskStore(
            os.environ.get("OAUTH_DIR", "oauth-data"), encryption_key=os.environ.get("STORAGE_KEY", "change-me")
        ),
        jwt_signing_key=os.environ.get("JWT_KEY", "change-me-too").encode(),
    )
    mcp = FastMCP("fastmcp-auth example", auth=auth)

    @mcp.tool
    def hello(name: str) -> str:
        """Greets the authenticated caller."""
        return f"Hello, {name}!"

    return mcp


if __name__ == "__main__":
    build().run(transport="http", port=8000)
