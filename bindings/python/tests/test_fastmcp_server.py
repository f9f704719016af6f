"""A real fastmcp Python server (PyPI ``fastmcp``) with ``auth=fastmcp_auth.fastmcp.OAuthProxy(...)`` on a real
loopback port, driven by the official MCP Python SDK's own OAuth client (``mcp.client.auth.OAuthClientProvider``
over the streamable HTTP client): discovery, registration, authorize with ``resource``, consent, the mock identity
provider, callback, token, a tool call reading ``get_access_token()``, a refresh, a restart on the same store. The test
only plays the browser (it follows what the SDK hands its redirect handler, submits the consent form, and hands the
code back). The same with fastmcp's own default storage (Fernet over FileTreeStore) as ``client_storage``."""

import asyncio
import html
import re
import socket
import urllib.parse

import httpx2 as httpx
import pytest
import uvicorn
from fastmcp import FastMCP
from fastmcp.server.auth.auth import AccessToken, TokenVerifier
from fastmcp.server.dependencies import get_access_token
from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

import fastmcp_auth as fa
from fastmcp_auth.aio import AsyncDiskStore
from fastmcp_auth.fastmcp import OAuthProxy

CLIENT_REDIRECT = "http://127.0.0.1:33419/callback"
#: Our access tokens' lifetime in the refresh scenario (seconds): short, so the SDK refreshes within the test, and
#: long enough that a login on a busy CI machine does not expire before its first tool call.
TTL = 4


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class UpstreamVerifier(TokenVerifier):
    """The mock provider's access tokens (opaque ``up-at-…``), as a provider's verifier would see them."""

    def __init__(self):
        super().__init__(required_scopes=["openid"])
        self.seen = []

    async def verify_token(self, token):
        self.seen.append(token)
        if token.startswith("up-at-"):
            return AccessToken(token=token, client_id="upstream-app", scopes=["openid"], expires_at=None,
                               claims={"login": "ada"})
        return None


class MemoryTokens:
    """The SDK client's TokenStorage (what a real client keeps on disk)."""

    def __init__(self):
        self.tokens = None
        self.client = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, info: OAuthClientInformationFull):
        self.client = info


class Browser:
    """Plays the user's browser: a cookie jar, no automatic redirects, the consent form approved."""

    def __init__(self, base):
        self.http = httpx.AsyncClient(follow_redirects=False, timeout=10)
        self.base = base
        self.result = None
        self.pages = []
        self.visited = []

    async def visit(self, url):
        r = await self.http.get(url)
        for _ in range(10):
            if r.status_code == 200 and "<form" in r.text:
                self.pages.append(r)
                action = html.unescape(re.search(r'action="([^"]+)"', r.text).group(1))
                fields = dict(re.findall(r'name="(transaction_id|csrf_token)" value="([^"]*)"', r.text))
                r = await self.http.post(action, data={**fields, "action": "approve"})
                continue
            assert r.status_code in (302, 303), (r.status_code, r.text[:300])
            location = r.headers["location"]
            self.visited.append(location)
            if location.startswith(CLIENT_REDIRECT):
                q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
                self.result = AuthorizationCodeResult(code=q["code"], state=q.get("state"), iss=q.get("iss"))
                return
            r = await self.http.get(location)
        raise AssertionError("too many redirects")

    async def redirect_handler(self, url):
        await self.visit(url)

    async def callback_handler(self):
        assert self.result is not None
        return self.result


def sdk_client(mcp_url, storage, browser):
    return OAuthClientProvider(
        server_url=mcp_url,
        client_metadata=OAuthClientMetadata(
            client_name="sdk-test", redirect_uris=[CLIENT_REDIRECT], grant_types=["authorization_code", "refresh_token"],
            response_types=["code"], token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=browser.redirect_handler,
        callback_handler=browser.callback_handler,
    )


def build_server(idp, port, storage, verifier, **extra):
    base = f"http://127.0.0.1:{port}"
    auth = OAuthProxy(
        upstream_authorization_endpoint=f"{idp}/authorize",
        upstream_token_endpoint=f"{idp}/token",
        upstream_client_id="upstream-client",
        upstream_client_secret="upstream secret+/=",
        token_verifier=verifier,
        base_url=base,
        client_storage=storage,
        jwt_signing_key="a-long-enough-jwt-signing-key-for-tests",
        **extra,
    )
    mcp = FastMCP("py-server", auth=auth)

    @mcp.tool
    def whoami() -> dict:
        t = get_access_token()
        return {"client_id": t.client_id, "login": (t.claims or {}).get("login"), "scopes": t.scopes,
                "token_is_upstream": t.token.startswith("up-at-")}

    return auth, mcp.http_app(path="/mcp")


class Served:
    def __init__(self, app, port):
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))

    async def __aenter__(self):
        self.task = asyncio.create_task(self.server.serve())
        for _ in range(500):
            if self.server.started:
                return self
            await asyncio.sleep(0.01)
        raise AssertionError("server did not start")

    async def __aexit__(self, *exc):
        self.server.should_exit = True
        await self.task


async def call_tool(mcp_url, provider, name="whoami"):
    """One MCP session over the SDK's streamable HTTP client with its OAuth provider; the tool's structured result."""
    async with httpx.AsyncClient(auth=provider, timeout=30) as http:
        async with streamable_http_client(mcp_url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                r = await session.call_tool(name, {})
                assert not r.is_error, r
                return r.structured_content or r.content


async def scenario(idp, storage_factory, expect_files=None):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    mcp_url = f"{base}/mcp"
    tokens, browser = MemoryTokens(), Browser(base)
    verifier = UpstreamVerifier()
    auth, app = build_server(idp, port, storage_factory(), verifier, fastmcp_access_token_expiry_seconds=TTL)
    async with Served(app, port):
        # Unauthenticated: 401 pointing at the RFC 9728 metadata (what the SDK discovers from).
        async with httpx.AsyncClient() as h:
            r = await h.post(mcp_url, json={})
            assert r.status_code == 401
            assert "resource_metadata=" in r.headers["www-authenticate"]
            meta = (await h.get(f"{base}/.well-known/oauth-authorization-server")).json()
            assert meta["token_endpoint"] == f"{base}/token" and meta["registration_endpoint"] == f"{base}/register"
        client = sdk_client(mcp_url, tokens, browser)
        who = await call_tool(mcp_url, client)
        assert who["client_id"] == "upstream-app" and who["login"] == "ada" and who["token_is_upstream"], who
        # One consent page approved (more only if this machine took longer than TTL between the login and the tool
        # call, which makes the SDK log in again; what follows is compared with this count).
        logins = len(browser.pages)
        assert logins >= 1
        first = tokens.tokens
        assert first.refresh_token
        # Our token is bound to the MCP endpoint (RFC 8707: the SDK sent `resource`).
        claims = fa.JWTIssuer(base, mcp_url, auth._jwt_signing_key).verify_token(first.access_token)
        assert claims["aud"] == mcp_url
        # After expiry the SDK refreshes on its own (refresh_token grant through our /token), no new login.
        await asyncio.sleep(TTL + 0.5)
        who = await call_tool(mcp_url, client)
        assert who["login"] == "ada"
        assert tokens.tokens.access_token != first.access_token and tokens.tokens.refresh_token != first.refresh_token
        assert len(browser.pages) == logins, "refreshed, not logged in again"
        # The rotated-out refresh token is refused after the grace window... and a forged bearer is a 401.
        async with httpx.AsyncClient() as h:
            r = await h.post(mcp_url, json={}, headers={"Authorization": "Bearer " + first.access_token[:-2] + "xx"})
            assert r.status_code == 401
    # Restart on the same store: the client's refresh token (its access token has expired meanwhile) still works,
    # nobody logs in again.
    await asyncio.sleep(TTL + 0.5)
    auth2, app2 = build_server(idp, port, storage_factory(), UpstreamVerifier(), fastmcp_access_token_expiry_seconds=TTL)
    async with Served(app2, port):
        before = tokens.tokens.access_token
        who = await call_tool(mcp_url, client)
        assert tokens.tokens.access_token != before, "refreshed against the restarted server"
        assert who["login"] == "ada"
        assert len(browser.pages) == logins
    auth.close()
    auth2.close()


def test_sdk_client_logs_in_calls_refreshes_and_survives_restart_on_our_disk_store(idp, tmp_path):
    directory = tmp_path / "oauth"
    asyncio.run(scenario(idp, lambda: AsyncDiskStore(directory)))
    assert any(directory.iterdir()), "state lives in our DiskStore"


def test_same_with_fastmcps_default_storage(idp, tmp_path):
    """fastmcp's own default client_storage (FernetEncryptionWrapper over FileTreeStore) through the bridge."""
    from cryptography.fernet import Fernet
    from key_value.aio.stores.filetree import (
        FileTreeStore,
        FileTreeV1CollectionSanitizationStrategy,
        FileTreeV1KeySanitizationStrategy,
    )
    from key_value.aio.wrappers.encryption import FernetEncryptionWrapper

    directory = tmp_path / "filetree"
    directory.mkdir()
    key = Fernet.generate_key()

    def storage():
        return FernetEncryptionWrapper(
            key_value=FileTreeStore(
                data_directory=directory,
                key_sanitization_strategy=FileTreeV1KeySanitizationStrategy(directory),
                collection_sanitization_strategy=FileTreeV1CollectionSanitizationStrategy(directory),
            ),
            fernet=Fernet(key=key),
            raise_on_decryption_error=False,
        )

    asyncio.run(scenario(idp, storage))
    assert any(directory.rglob("*")), "state lives in fastmcp's store"


def mock_github_api(request):
    """GitHub's REST API as GitHubTokenVerifier calls it: /user and /user/repos (its scopes header)."""
    token = request.headers.get("authorization", "").removeprefix("Bearer ")
    if not token.startswith("up-at-"):
        return httpx.Response(401, json={"message": "Bad credentials"})
    if request.url.path == "/user":
        return httpx.Response(200, json={"id": 583231, "login": "octocat", "name": "The Octocat", "email": None})
    if request.url.path == "/user/repos":
        return httpx.Response(200, json=[], headers={"x-oauth-scopes": "user, repo"})
    return httpx.Response(404)


def test_github_provider_with_the_import_swapped(idp, tmp_path):
    """fastmcp's GitHub example with `from fastmcp_auth.fastmcp import GitHubProvider`, against a mock GitHub (our
    mock provider's authorize/token endpoints, GitHub's /user through fastmcp's own GitHubTokenVerifier)."""
    from fastmcp_auth.fastmcp import GitHubProvider

    class MockGitHub(GitHubProvider):
        upstream_authorization_endpoint = f"{idp}/authorize"
        upstream_token_endpoint = f"{idp}/token"

    async def run():
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        mcp_url = f"{base}/mcp"
        api = httpx.AsyncClient(transport=httpx.MockTransport(mock_github_api))
        auth = MockGitHub(client_id="upstream-client", client_secret="upstream secret+/=", base_url=base,
                          client_storage=AsyncDiskStore(tmp_path / "gh"), http_client=api,
                          jwt_signing_key="github-test-signing-key-0123456789")
        mcp = FastMCP("GitHub App", auth=auth)

        @mcp.tool
        def me() -> dict:
            t = get_access_token()
            return {"login": t.claims.get("login"), "name": t.claims.get("name"), "scopes": t.scopes}

        tokens, browser = MemoryTokens(), Browser(base)
        async with Served(mcp.http_app(path="/mcp"), port):
            who = await call_tool(mcp_url, sdk_client(mcp_url, tokens, browser), "me")
            # The consent page names GitHub (the core's preset).
            assert "GitHub" in browser.pages[0].text
        assert who["login"] == "octocat" and who["name"] == "The Octocat" and "user" in who["scopes"], who
        auth.close()

    asyncio.run(run())


def test_azure_provider_with_the_import_swapped(idp, tmp_path):
    """fastmcp's AzureProvider arguments on ours: the API's scopes go to Entra prefixed with the identifier URI, with
    the additional scopes and offline_access, and no `resource`; the client's tokens carry the short scopes. (The
    mock provider stands in for Entra; fastmcp's JWTVerifier on Entra's JWKS is swapped for the mock's verifier.)"""
    from fastmcp_auth.fastmcp import AzureProvider

    class MockEntra(AzureProvider):
        @staticmethod
        def upstream_authorization_endpoint_for(base_authority, tenant_id):
            return f"{idp}/authorize"

        @staticmethod
        def upstream_token_endpoint_for(base_authority, tenant_id):
            return f"{idp}/token"

    async def run():
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        mcp_url = f"{base}/mcp"
        auth = MockEntra(client_id="upstream-client", client_secret="upstream secret+/=", tenant_id="contoso.example",
                         required_scopes=["read", "openid"], additional_authorize_scopes=["User.Read"],
                         base_url=base, client_storage=AsyncDiskStore(tmp_path / "entra"),
                         jwt_signing_key="entra-test-signing-key-0123456789")
        assert auth._token_validator.audience == ["upstream-client", "api://upstream-client"]
        class EntraTokens(TokenVerifier):
            # What fastmcp's JWTVerifier reads from an Entra access token: its `scp` (short form).
            async def verify_token(self, token):
                ok = token.startswith("up-at-")
                return AccessToken(token=token, client_id="entra-app", scopes=["read"], expires_at=None) if ok else None

        auth._token_validator = EntraTokens(required_scopes=["read"])
        mcp = FastMCP("Entra App", auth=auth)

        @mcp.tool
        def me() -> dict:
            t = get_access_token()
            return {"client_id": t.client_id}

        tokens, browser = MemoryTokens(), Browser(base)
        async with Served(mcp.http_app(path="/mcp"), port):
            client = OAuthClientProvider(
                server_url=mcp_url,
                client_metadata=OAuthClientMetadata(
                    client_name="sdk-test", redirect_uris=[CLIENT_REDIRECT], scope="read",
                    grant_types=["authorization_code", "refresh_token"], response_types=["code"],
                    token_endpoint_auth_method="none",
                ),
                storage=tokens, redirect_handler=browser.redirect_handler, callback_handler=browser.callback_handler,
            )
            await call_tool(mcp_url, client, "me")
            assert "Microsoft" in browser.pages[0].text
        upstream = next(u for u in browser.visited if u.startswith(f"{idp}/authorize"))
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(upstream).query))
        asked = q["scope"].split()
        assert asked[0] == "api://upstream-client/read" and asked[-2:] == ["User.Read", "offline_access"], q
        assert "read" not in asked, q
        assert "resource" not in q and q["prompt"] == "select_account", q
        assert "api://" not in (tokens.tokens.scope or ""), tokens.tokens.scope
        auth.close()

    asyncio.run(run())


@pytest.mark.parametrize("kwargs,error", [
    ({"upstream_revocation_endpoint": "https://idp/revoke"}, NotImplementedError),
    ({"extra_token_params": {"audience": "x"}}, NotImplementedError),
    ({"consent_csp_policy": ""}, NotImplementedError),
    ({"token_expiry_threshold_seconds": 30}, NotImplementedError),
    ({"identity_assertion": object()}, NotImplementedError),
    ({"issuer_url": "https://issuer.example.com"}, NotImplementedError),
    ({"upstream_client_secret": None, "jwt_signing_key": "k" * 32}, NotImplementedError),
    ({"token_endpoint_auth_method": "none"}, NotImplementedError),
    ({"jwt_signing_key": b"\xff\xfe" * 16}, NotImplementedError),
    ({"client_storage": object()}, TypeError),
    ({"core_options": {"base_url": "https://other"}}, ValueError),
    ({"core_options": {"no_such_member": 1}}, fa.InvalidArgumentError),
    ({"allowed_client_redirect_uris": ["javascript:*"]}, fa.FastMCPAuthError),
])
def test_what_the_core_cannot_honour_is_refused_by_name(idp, kwargs, error):
    """No argument is silently ignored: each one the core cannot honour raises, naming it."""
    args = dict(upstream_authorization_endpoint=f"{idp}/authorize", upstream_token_endpoint=f"{idp}/token",
                upstream_client_id="upstream-client", upstream_client_secret="upstream secret+/=",
                token_verifier=UpstreamVerifier(), base_url="http://127.0.0.1:8000",
                client_storage=fa.MemoryStore())
    args.update(kwargs)
    with pytest.raises(error) as e:
        OAuthProxy(**args)
    if error is NotImplementedError:
        name = next(iter(kwargs)) if "upstream_client_secret" not in kwargs else "upstream_client_secret"
        assert name in str(e.value), e.value


def test_default_storage_is_our_disk_store_and_survives_a_restart(idp, monkeypatch, tmp_path):
    """No client_storage: our encrypted DiskStore under FASTMCP_HOME/oauth-proxy-rs/<key fingerprint>, so a new
    process with the same configuration still honours the tokens (fastmcp's default survives restarts too)."""
    import fastmcp
    from starlette.applications import Starlette

    from .test_fastmcp_proxy import obtain_tokens

    monkeypatch.setattr(fastmcp.settings, "home", tmp_path)

    def make():
        return OAuthProxy(upstream_authorization_endpoint=f"{idp}/authorize", upstream_token_endpoint=f"{idp}/token",
                          upstream_client_id="upstream-client", upstream_client_secret="upstream secret+/=",
                          token_verifier=UpstreamVerifier(), base_url="http://localhost:8000",
                          jwt_signing_key="default-storage-test-key-0123456789", require_authorization_consent=False)

    async def run():
        auth = make()
        app = Starlette(routes=auth.get_routes(mcp_path="/mcp"))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost:8000") as h:
            tokens = await obtain_tokens(h)
        assert await auth.verify_token(tokens["access_token"]) is not None
        auth.close()
        again = make()
        again.set_mcp_path("/mcp")
        assert await again.verify_token(tokens["access_token"]) is not None
        again.close()

    asyncio.run(run())
    dirs = list((tmp_path / "oauth-proxy-rs").iterdir())
    assert len(dirs) == 1 and any(dirs[0].iterdir())
    # Encrypted at rest: no token text in any file.
    for f in dirs[0].rglob("*"):
        if f.is_file():
            assert b"up-at-" not in f.read_bytes() and b"up-rt-" not in f.read_bytes()


class BrokenStore:
    """An AsyncKeyValue whose backend is down, with a secret in its error text."""

    async def get(self, key, *, collection=None):
        raise RuntimeError("redis://admin:hunter2@db down")

    put = delete = get


def test_a_failing_client_storage_is_a_clean_server_error(idp):
    from starlette.applications import Starlette

    auth = OAuthProxy(upstream_authorization_endpoint=f"{idp}/authorize", upstream_token_endpoint=f"{idp}/token",
                      upstream_client_id="upstream-client", upstream_client_secret="upstream secret+/=",
                      token_verifier=UpstreamVerifier(), base_url="http://localhost:8000",
                      client_storage=BrokenStore(), jwt_signing_key="broken-store-test-key-0123456789")

    async def run():
        app = Starlette(routes=auth.get_routes(mcp_path="/mcp"))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost:8000") as h:
            r = await h.post("/register", json={"redirect_uris": [CLIENT_REDIRECT]})
            assert r.status_code in (500, 503), r.text
            assert "hunter2" not in r.text and r.json()["error"] == "server_error"
            r = await h.post("/token", data={"grant_type": "authorization_code", "code": "x", "client_id": "c",
                                             "redirect_uri": CLIENT_REDIRECT, "code_verifier": "v" * 43})
            assert r.status_code >= 400 and "hunter2" not in r.text
        assert await auth.verify_token("not-a-token") is None

    asyncio.run(run())


def test_google_provider_has_fastmcps_defaults_on_the_core(tmp_path):
    """GoogleProvider with fastmcp's constructor: its verifier class, openid by default, offline access (yours on
    top), scope shorthands normalised, Google's endpoints; the consent page names Google (the core's preset)."""
    from fastmcp.server.auth.providers.google import GoogleProvider as Theirs
    from fastmcp.server.auth.providers.google import GoogleTokenVerifier

    from fastmcp_auth.fastmcp import GoogleProvider

    kwargs = dict(client_id="123.apps.googleusercontent.com", client_secret="GOCSPX-x", base_url="http://127.0.0.1:9",
                  valid_scopes=["openid", "email"], extra_authorize_params={"prompt": "select_account", "hd": "ex.com"},
                  jwt_signing_key="google-test-signing-key-0123456789")
    ours = GoogleProvider(client_storage=fa.MemoryStore(), **kwargs)
    theirs = Theirs(client_storage=__import__("key_value.aio.stores.memory", fromlist=["x"]).MemoryStore(), **kwargs)
    assert isinstance(ours._token_validator, GoogleTokenVerifier)
    assert ours.required_scopes == theirs.required_scopes == ["openid"]
    assert ours._config["valid_scopes"] == theirs.client_registration_options.valid_scopes
    assert ours._config["extra_authorization_params"] == theirs._extra_authorize_params
    assert ours._config["upstream_authorization_endpoint"] == theirs._upstream_authorization_endpoint
    assert ours._config["upstream_token_endpoint"] == theirs._upstream_token_endpoint
    assert ours._config["preset"] == "google"
    ours.close()


@pytest.mark.parametrize("tenant", ["", "..", "...", "a/b", "x?y=1", "t#f", "%2e%2e", ".%2e", "a%2fb", "a b",
                                    "a@evil.com", ":443", "a;b", "a\\b"])
def test_azure_tenant_must_be_one_path_segment(tenant):
    from fastmcp_auth.fastmcp import AzureProvider

    with pytest.raises(ValueError):
        AzureProvider(client_id="c", client_secret="s", tenant_id=tenant, required_scopes=["read"],
                      base_url="http://127.0.0.1:9", client_storage=fa.MemoryStore())


@pytest.mark.parametrize("tenant", ["common", "organizations", "consumers", "contoso.onmicrosoft.com",
                                    "72f988bf-86f1-41af-91ab-2d7cd011db47"])
def test_azure_real_tenant_ids_are_accepted(tenant):
    from fastmcp_auth.fastmcp import AzureProvider

    auth = AzureProvider(client_id="c", client_secret="s", tenant_id=tenant, required_scopes=["read"],
                         base_url="http://127.0.0.1:9", client_storage=fa.MemoryStore())
    assert auth._config["upstream_token_endpoint"] == f"https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"
    auth.close()
