"""fastmcp_auth.fastmcp.OAuthProxy (fastmcp's arguments, served by the core) with our DiskStore as client_storage,
its Starlette routes driven in process: registration, authorize, the callback against the loopback mock identity
provider, token exchange, an authenticated request (load_access_token), a refresh; then a new proxy on the same
directory accepts the tokens."""

import asyncio
import base64
import hashlib
import secrets
import urllib.parse

import httpx2 as httpx
import pytest
from fastmcp.server.auth.auth import AccessToken, TokenVerifier
from starlette.applications import Starlette

import fastmcp_auth as fa
from fastmcp_auth.aio import AsyncDiskStore
from fastmcp_auth.fastmcp import OAuthProxy

from .test_proxy import browser

REDIRECT = "http://localhost:33418/callback"
BASE = "http://localhost:8000"
SIGNING_KEY = b"0123456789abcdef0123456789abcdef"


class UpstreamVerifier(TokenVerifier):
    """Accepts the mock provider's access tokens (opaque `up-at-…`)."""

    async def verify_token(self, token):
        if token.startswith("up-at-"):
            return AccessToken(token=token, client_id="upstream", scopes=["openid"], expires_at=None)
        return None


def make(idp, directory):
    proxy = OAuthProxy(
        upstream_authorization_endpoint=f"{idp}/authorize",
        upstream_token_endpoint=f"{idp}/token",
        upstream_client_id="upstream-client",
        upstream_client_secret="upstream secret+/=",
        token_verifier=UpstreamVerifier(),
        base_url=BASE,
        client_storage=AsyncDiskStore(directory, encryption_key="py-storage-key"),
        jwt_signing_key=SIGNING_KEY,
        require_authorization_consent=False,
    )
    routes = proxy.get_routes(mcp_path="/mcp")
    # As fastmcp's, it exposes the issuer of its tokens (ours).
    assert isinstance(proxy.jwt_issuer, fa.JWTIssuer)
    return proxy, Starlette(routes=routes)


def secret(reg):
    """The client secret, when fastmcp issued one (it registers public clients as `none`)."""
    return {"client_secret": reg["client_secret"]} if reg.get("client_secret") else {}


def pkce():
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


async def obtain_code(http):
    """Registration, authorize, upstream login, callback; returns the code's token request (a form)."""
    r = await http.post("/register", json={"redirect_uris": [REDIRECT], "client_name": "test"})
    assert r.status_code in (200, 201), r.text
    reg = r.json()
    verifier, challenge = pkce()
    r = await http.get("/authorize", params={
        "client_id": reg["client_id"], "redirect_uri": REDIRECT, "response_type": "code", "state": "st",
        "code_challenge": challenge, "code_challenge_method": "S256",
    })
    callback = browser(r.headers["location"])
    cb = urllib.parse.urlsplit(callback)
    r = await http.get(f"{cb.path}?{cb.query}")
    back = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(r.headers["location"]).query))
    return {
        "grant_type": "authorization_code", "code": back["code"], "redirect_uri": REDIRECT,
        "code_verifier": verifier, "client_id": reg["client_id"], **secret(reg),
    }


async def obtain_tokens(http):
    """Registration, authorize, upstream login, callback, code exchange; returns the token response."""
    r = await http.post("/token", data=await obtain_code(http))
    assert r.status_code == 200, r.text
    return r.json()


def test_simultaneous_redemptions_through_an_async_key_value_client_storage(idp):
    """RFC 6749 §4.1.2 with a py-key-value store as client_storage (the bridge's compare-and-swap): of several
    simultaneous redemptions of one code at most one gets tokens, and those no longer work afterwards."""
    from key_value.aio.stores.memory import MemoryStore

    async def run():
        proxy = OAuthProxy(
            upstream_authorization_endpoint=f"{idp}/authorize", upstream_token_endpoint=f"{idp}/token",
            upstream_client_id="upstream-client", upstream_client_secret="upstream secret+/=",
            token_verifier=UpstreamVerifier(), base_url=BASE, client_storage=MemoryStore(),
            jwt_signing_key=SIGNING_KEY, require_authorization_consent=False,
            # The refused redemptions would trip the token endpoint's rate limit (tested elsewhere).
            core_options={"rate_limits": False},
        )
        app = Starlette(routes=proxy.get_routes(mcp_path="/mcp"))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
            for racers in (2, 3, 4, 6):
                form = await obtain_code(http)
                answers = await asyncio.gather(*(http.post("/token", data=form) for _ in range(racers)))
                ok = [r.json() for r in answers if r.status_code == 200]
                assert len(ok) <= 1, [r.text for r in answers]
                assert all(r.status_code == 400 and r.json()["error"] == "invalid_grant"
                           for r in answers if r.status_code != 200), [r.text for r in answers]
                for t in ok:
                    assert await proxy.load_access_token(t["access_token"]) is None, "revoked"
                again = await http.post("/token", data=form)
                assert again.status_code == 400 and again.json()["error_description"] == "Authorization code already used"

    asyncio.run(run())


async def flow(idp, directory):
    proxy, app = make(idp, directory)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        r = await http.post("/register", json={"redirect_uris": [REDIRECT], "client_name": "test",
                                                "token_endpoint_auth_method": "client_secret_post",
                                                "grant_types": ["authorization_code", "refresh_token"]})
        assert r.status_code in (200, 201), r.text
        reg = r.json()
        verifier, challenge = pkce()
        r = await http.get("/authorize", params={
            "client_id": reg["client_id"], "redirect_uri": REDIRECT, "response_type": "code", "state": "st",
            "code_challenge": challenge, "code_challenge_method": "S256",
        })
        assert r.status_code in (302, 303, 307), r.text
        callback = browser(r.headers["location"])
        cb = urllib.parse.urlsplit(callback)
        r = await http.get(f"{cb.path}?{cb.query}")
        assert r.status_code in (302, 303, 307), r.text
        back = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(r.headers["location"]).query))
        assert back["state"] == "st"
        r = await http.post("/token", data={
            "grant_type": "authorization_code", "code": back["code"], "redirect_uri": REDIRECT,
            "code_verifier": verifier, "client_id": reg["client_id"], **secret(reg),
        })
        assert r.status_code == 200, r.text
        tokens = r.json()
        # Signed with the key given (bytes: as they are, as fastmcp); no `resource` was sent, so the audience is
        # base_url (the core's rule), which verify_token accepts for this server.
        fa.JWTIssuer(proxy.jwt_issuer.issuer, BASE, SIGNING_KEY).verify_token(tokens["access_token"])
        assert await proxy.load_access_token(tokens["access_token"]) is not None
        r = await http.post("/token", data={
            "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
            "client_id": reg["client_id"], **secret(reg),
        })
        assert r.status_code == 200, r.text
        refreshed = r.json()
        assert await proxy.load_access_token(refreshed["access_token"]) is not None
        return refreshed


def test_fastmcp_python_oauth_proxy_on_our_store_and_issuer(idp, tmp_path):
    directory = tmp_path / "oauth"
    refreshed = asyncio.run(flow(idp, directory))
    assert any(directory.iterdir()), "state lives in our DiskStore"

    async def restart():
        proxy, _ = make(idp, directory)
        return await proxy.load_access_token(refreshed["access_token"])

    assert asyncio.run(restart()) is not None


def test_example_server_builds(tmp_path, monkeypatch):
    import importlib.util
    from pathlib import Path

    monkeypatch.setenv("OAUTH_DIR", str(tmp_path / "example"))
    monkeypatch.setenv("JWT_KEY", "example-test-jwt-signing-key-0123456789")
    monkeypatch.setenv("STORAGE_KEY", "example-test-storage-key-0123456789ab")
    for name in ("UPSTREAM_AUTHORIZE", "UPSTREAM_TOKEN", "UPSTREAM_CLIENT_ID", "UPSTREAM_CLIENT_SECRET"):
        monkeypatch.setenv(name, "https://idp.example.com/x")
    path = Path(__file__).resolve().parents[1] / "examples" / "server.py"
    spec = importlib.util.spec_from_file_location("example_server", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    mcp = module.build()
    app = mcp.http_app()
    assert app is not None


def test_bearer_jwt_reaches_an_mcp_tool(idp, tmp_path):
    """An MCP request carrying our Bearer JWT is served; without it, 401."""
    from fastmcp import FastMCP

    async def scenario():
        proxy, app = make(idp, tmp_path / "oauth")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
            tokens = await obtain_tokens(http)
        mcp = FastMCP("t", auth=proxy)

        @mcp.tool
        def hello(name: str) -> str:
            return f"hi {name}"

        server = mcp.http_app(path="/mcp")
        async with server.router.lifespan_context(server):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server), base_url=BASE) as http:
                init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
                headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
                r = await http.post("/mcp", json=init, headers=headers)
                assert r.status_code == 401
                headers["Authorization"] = f"Bearer {tokens['access_token']}"
                r = await http.post("/mcp", json=init, headers=headers)
                assert r.status_code == 200, r.text
                assert "fastmcp" in r.text.lower() or "serverInfo" in r.text

    asyncio.run(scenario())
