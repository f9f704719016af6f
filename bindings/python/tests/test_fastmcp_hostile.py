"""Hostile HTTP against a real fastmcp server with ``auth=fastmcp_auth.fastmcp.OAuthProxy(...)`` (consent on).

One server per module (uvicorn on a loopback port, in a background thread) in front of the mock identity provider
(``idp`` fixture). Every response any test receives goes through ``Server._check``: never a 5xx, every HTML page
carries Content-Security-Policy and X-Frame-Options, and no code, token, secret, verifier or CSRF token sent in the
request comes back in the response body (nor, except the transaction id upstream gets as ``state``, in
``Location``). The last test reads every log record the server produced (core at ``trace``, root at DEBUG) and
looks for every secret the module saw.

Deliberate settings: rate limits are off (``core_options={"rate_limits": False}``: the tests send hundreds of
refused requests from one address; the limiter has its own tests in test_proxy.py); uvicorn's h11 header limit is
raised to 64 KiB so a 20 KB ``Cookie`` header reaches the proxy instead of being refused by the HTTP parser;
``refresh_grace_window=1`` so the rotated-out refresh token test waits one second, not thirty.
"""

from __future__ import annotations

import base64
import html
import http.client
import json
import logging
import re
import secrets
import socket
import threading
import time
import urllib.parse
from types import SimpleNamespace

import httpx2 as httpx
import pytest
import uvicorn
from fastmcp import FastMCP
from fastmcp.server.auth.auth import AccessToken, TokenVerifier

import fastmcp_auth as fa
from fastmcp_auth import _native
from fastmcp_auth.aio import AsyncDiskStore
from fastmcp_auth.fastmcp import OAuthProxy

REDIRECT = "http://127.0.0.1:33419/callback"
WEB_REDIRECT = "https://app.example.com/cb"
UPSTREAM_SECRET = "upstream secret+/="  # what the mock identity provider accepts
SIGNING_KEY = b"hostile-test-signing-key-0123456789abcdef"
OTHER_KEY = b"another-servers-signing-key-0123456789abc"
GRACE = 1.0
MB = b"a" * (1 << 20)

# Request parameters whose values must never come back in a response body (nor in Location, but the transaction id,
# which is upstream's `state` by design).
SENSITIVE = ("code", "token", "refresh_token", "access_token", "client_secret", "code_verifier", "csrf_token",
             "transaction_id")
NOT_IN_LOCATION = ("code", "token", "refresh_token", "access_token", "client_secret", "code_verifier", "csrf_token")
CLIENT_SIDE_LOGGERS = ("httpx", "httpcore", "hpack", "urllib3")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_parts(token):
    h, p, _ = token.split(".")
    dec = lambda s: json.loads(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))  # noqa: E731
    return dec(h), dec(p)


def query_of(location):
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))


class UpstreamVerifier(TokenVerifier):
    """The mock provider's access tokens (opaque ``up-at-…``); remembers them for the log check."""

    def __init__(self):
        super().__init__(required_scopes=["openid"])
        self.seen = set()

    async def verify_token(self, token):
        self.seen.add(token)
        if token.startswith("up-at-"):
            return AccessToken(token=token, client_id="upstream-app", scopes=["openid"], expires_at=None)
        return None


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.records = []
        self._ids = set()

    def emit(self, record):
        if id(record) not in self._ids:  # attached to several loggers: keep one copy
            self._ids.add(id(record))
            self.records.append(record)


def _request_secrets(request):
    """The sensitive values a request carries: query, form or JSON body, Authorization."""
    found = {}
    pairs = list(urllib.parse.parse_qsl(request.url.query.decode("latin-1") if isinstance(request.url.query, bytes)
                                        else str(request.url.query)))
    try:
        body = request.content
    except Exception:  # a streamed body
        body = b""
    if body and len(body) <= 256 * 1024:
        ctype = request.headers.get("content-type", "")
        if "json" in ctype:
            try:
                doc = json.loads(body)
                if isinstance(doc, dict):
                    pairs += [(k, v) for k, v in doc.items() if isinstance(v, str)]
            except (ValueError, RecursionError):
                pass
        else:
            pairs += urllib.parse.parse_qsl(body.decode("utf-8", "replace"))
    for k, v in pairs:
        if k in SENSITIVE and len(v) >= 8:
            found.setdefault(k, set()).add(v)
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer ") and len(auth) > 15:
        found.setdefault("token", set()).add(auth[7:].strip())
    if auth.lower().startswith("basic "):
        try:
            _, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
            if len(pw) >= 8:
                found.setdefault("client_secret", set()).add(urllib.parse.unquote_plus(pw))
        except Exception:
            pass
    return found


def check_response(status, headers, body_text, sent, where):
    """What every answer of the server must satisfy (see the module docstring)."""
    assert status < 500, f"{where}: {status} {body_text[:300]}"
    ctype = headers.get("content-type", "")
    if "text/html" in ctype:
        assert headers.get("content-security-policy"), f"{where}: HTML without Content-Security-Policy"
        assert headers.get("x-frame-options"), f"{where}: HTML without X-Frame-Options"
    location = headers.get("location", "")
    for key, values in sent.items():
        for v in values:
            assert v not in body_text, f"{where}: the request's {key} is echoed in the body"
            if key in NOT_IN_LOCATION:
                assert v not in location, f"{where}: the request's {key} is echoed in Location"


class Server:
    """The running server, its clients and what the module has learned (secrets to look for in logs)."""

    def __init__(self, base, port, auth, verifier, idp):
        self.base, self.port, self.auth, self.verifier, self.idp = base, port, auth, verifier, idp
        self.mcp_url = f"{base}/mcp"
        self.secrets = {UPSTREAM_SECRET}
        self.seen = []  # (method, path, status) of every answer, for debugging
        self._clients = []

    # ---- clients ---------------------------------------------------------------------------------------------

    def _check(self, response):
        response.read()
        req = response.request
        if req.url.host != "127.0.0.1" or req.url.port != self.port:
            return  # the mock identity provider
        self.seen.append((req.method, req.url.path, response.status_code))
        headers = {k.lower(): v for k, v in response.headers.items()}
        check_response(response.status_code, headers, response.text, _request_secrets(req),
                       f"{req.method} {req.url.path}")

    def client(self):
        """A new 'browser' (own cookie jar), never following redirects; every answer is checked."""
        c = httpx.Client(follow_redirects=False, timeout=20, event_hooks={"response": [self._check]})
        self._clients.append(c)
        return c

    def raw(self, method, target, headers=(), body=b""):
        """Exactly these bytes on the wire (header values httpx refuses to send); the answer checked as any."""
        lines = [f"{method} {target} HTTP/1.1".encode(), f"Host: 127.0.0.1:{self.port}".encode()]
        lines += [k.encode() + b": " + (v if isinstance(v, bytes) else v.encode()) for k, v in headers]
        lines += [f"Content-Length: {len(body)}".encode(), b"Connection: close"]
        with socket.create_connection(("127.0.0.1", self.port), timeout=20) as s:
            s.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
            resp = http.client.HTTPResponse(s)
            resp.begin()
            data = resp.read()
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        text = data.decode("utf-8", "replace")
        sent = {}
        for k, v in headers:
            v = v.decode("latin-1") if isinstance(v, bytes) else v
            if k.lower() == "authorization" and v.lower().startswith("bearer ") and len(v.strip()) > 15:
                sent["token"] = {v[7:].strip()}
        check_response(resp.status, hdrs, text, sent, f"{method} {target[:60]} (raw)")
        self.seen.append((method, target.split("?")[0], resp.status))
        return SimpleNamespace(status_code=resp.status, headers=hdrs, text=text)

    # ---- the OAuth dance -------------------------------------------------------------------------------------

    def register(self, http=None, **meta):
        body = {"redirect_uris": [REDIRECT, WEB_REDIRECT], "client_name": "hostile-test",
                "token_endpoint_auth_method": "none", **meta}
        r = (http or self.client()).post(f"{self.base}/register", json=body)
        assert r.status_code == 201, r.text
        reg = r.json()
        if reg.get("client_secret"):
            self.secrets.add(reg["client_secret"])
        return reg

    def authorize(self, http, client, **over):
        """GET /authorize in `http` (a browser); returns (response, verifier, params sent)."""
        verifier = fa.generate_verifier(64)
        params = {"client_id": client["client_id"], "redirect_uri": REDIRECT, "response_type": "code",
                  "state": "st-" + secrets.token_urlsafe(8), "code_challenge": fa.generate_challenge(verifier),
                  "code_challenge_method": "S256", "resource": self.mcp_url}
        params.update(over)
        params = {k: v for k, v in params.items() if v is not None}
        r = http.get(f"{self.base}/authorize", params=params)
        return r, verifier, params

    def consent_fields(self, page):
        assert page.status_code == 200 and "<form" in page.text, (page.status_code, page.text[:300])
        fields = dict(re.findall(r'name="(transaction_id|csrf_token)" value="([^"]*)"', page.text))
        fields = {k: html.unescape(v) for k, v in fields.items()}
        self.secrets.add(fields["csrf_token"])
        return fields

    def pending(self, client=None, **over):
        """A browser that has the consent page in front of it: (browser, fields, verifier, params)."""
        client = client or self.register()
        b = self.client()
        page, verifier, params = self.authorize(b, client, **over)
        return b, self.consent_fields(page), verifier, params

    def approve(self, b, fields):
        """Approves; returns the upstream authorization URL the browser is sent to."""
        r = b.post(f"{self.base}/consent", data={**fields, "action": "approve"})
        assert r.status_code in (302, 303), (r.status_code, r.text[:300])
        assert r.headers["location"].startswith(self.idp), r.headers["location"]
        return r.headers["location"]

    def upstream_login(self, b, upstream_url):
        """The mock provider's login: returns our callback URL (with upstream's code and state)."""
        r = b.get(upstream_url)
        assert r.status_code == 302, r.text
        cb = r.headers["location"]
        self.secrets.add(query_of(cb)["code"])
        return cb

    def login(self, client=None, **over):
        """Register (unless given), authorize, approve, upstream login, callback: (client, code, verifier, params)."""
        client = client or self.register()
        b, fields, verifier, params = self.pending(client, **over)
        cb = self.upstream_login(b, self.approve(b, fields))
        r = b.get(cb)
        assert r.status_code == 302, (r.status_code, r.text[:300])
        back = query_of(r.headers["location"])
        assert r.headers["location"].startswith(params["redirect_uri"] + "?")
        assert back["state"] == params["state"] and back["iss"] == self.base, back
        self.secrets.add(back["code"])
        return client, back["code"], verifier, params

    def token_request(self, form, http=None, **kw):
        return (http or self.client()).post(f"{self.base}/token", data=form, **kw)

    def exchange(self, client, code, verifier, redirect_uri=REDIRECT):
        form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                "client_id": client["client_id"], "redirect_uri": redirect_uri}
        if client.get("client_secret"):
            form["client_secret"] = client["client_secret"]
        r = self.token_request(form)
        assert r.status_code == 200, r.text
        tokens = r.json()
        self.secrets.update(t for t in (tokens["access_token"], tokens.get("refresh_token")) if t)
        return tokens

    def tokens(self, **over):
        """A fresh grant: (client, token response)."""
        client, code, verifier, params = self.login(**over)
        return client, self.exchange(client, code, verifier, params["redirect_uri"])

    def refresh(self, client, refresh_token, **extra):
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client["client_id"],
                **extra}
        r = self.token_request(form)
        if r.status_code == 200:
            t = r.json()
            self.secrets.update(x for x in (t["access_token"], t.get("refresh_token")) if x)
        return r

    def revoke(self, client, token, http=None):
        return (http or self.client()).post(f"{self.base}/revoke",
                                            data={"token": token, "client_id": client["client_id"]})

    def mcp(self, authorization=None):
        """An MCP initialize request with this Authorization header (None: no header)."""
        headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        if authorization is not None:
            headers["Authorization"] = authorization
        body = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                           "clientInfo": {"name": "hostile", "version": "1"}}}
        return self.client().post(self.mcp_url, json=body, headers=headers)

    def close(self):
        for c in self._clients:
            c.close()


@pytest.fixture(scope="module")
def server(idp, tmp_path_factory):
    collected = Collect()
    loggers = [logging.getLogger(n) for n in ("", "fastmcp_auth", "fastmcp", "mcp", "uvicorn")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(collected)
        lg.setLevel(logging.DEBUG)
    fa.set_log_level("trace")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    verifier = UpstreamVerifier()
    auth = OAuthProxy(
        upstream_authorization_endpoint=f"{idp}/authorize",
        upstream_token_endpoint=f"{idp}/token",
        upstream_client_id="upstream-client",
        upstream_client_secret=UPSTREAM_SECRET,
        token_verifier=verifier,
        base_url=base,
        client_storage=AsyncDiskStore(tmp_path_factory.mktemp("hostile-oauth")),
        jwt_signing_key=SIGNING_KEY,
        allowed_client_redirect_uris=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*",
                                      "https://app.example.com/*", "https://*.example.com/*"],
        refresh_grace_window=GRACE,
        core_options={"rate_limits": False},
    )
    mcp = FastMCP("hostile", auth=auth)

    @mcp.tool
    def ping() -> str:
        return "pong"

    uv = uvicorn.Server(uvicorn.Config(mcp.http_app(path="/mcp"), host="127.0.0.1", port=port, log_level="warning",
                                       lifespan="on", h11_max_incomplete_event_size=64 * 1024))
    thread = threading.Thread(target=uv.run, name="hostile-uvicorn", daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not uv.started:
        assert thread.is_alive() and time.time() < deadline, "server did not start"
        time.sleep(0.01)
    srv = Server(base, port, auth, verifier, idp)
    srv.records = collected.records
    try:
        yield srv
    finally:
        srv.close()
        uv.should_exit = True
        thread.join(timeout=20)
        auth.close()
        _native._flush_logging()
        for lg, level in zip(loggers, levels):
            lg.removeHandler(collected)
            lg.setLevel(level)
        fa.set_log_level("warning")


@pytest.fixture(scope="module")
def client(server):
    """One registered public client (loopback and https redirect URIs)."""
    return server.register()


@pytest.fixture(scope="module")
def grant(server, client):
    """A live grant of `client` the tests must not spend: its token response."""
    _, tokens = server.tokens(client=client)
    return tokens


def assert_oauth_error(r, status, *codes):
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.json()["error"] in codes, r.text[:300]


def assert_bearer_401(r):
    assert r.status_code == 401, (r.status_code, r.text[:300])
    assert r.headers.get("www-authenticate", "").startswith("Bearer"), r.headers


# ---- sanity: the happy path works, so every refusal below is a refusal ----------------------------------------


def test_metadata_and_a_valid_token_reach_the_mcp_endpoint(server, client, grant):
    http = server.client()
    meta = http.get(f"{server.base}/.well-known/oauth-authorization-server").json()
    assert meta["issuer"] == server.base and meta["code_challenge_methods_supported"] == ["S256"]
    prm = http.get(f"{server.base}/.well-known/oauth-protected-resource/mcp").json()
    assert prm["resource"] == server.mcp_url and prm["authorization_servers"] == [server.base]
    assert jwt_parts(grant["access_token"])[1]["aud"] == server.mcp_url
    assert server.mcp("Bearer " + grant["access_token"]).status_code == 200


# ---- /register ------------------------------------------------------------------------------------------------


def _deep(n, inner=b""):
    return b"[" * n + inner + b"]" * n


REGISTER_BODIES = [
    # (id, body, content type, status, error codes)
    ("form-body", b"redirect_uris=" + REDIRECT.encode(), "application/x-www-form-urlencoded", 400, None),
    ("not-json", b"{not json", "application/json", 400, None),
    ("empty", b"", "application/json", 400, None),
    ("json-array", json.dumps([{"redirect_uris": [REDIRECT]}]).encode(), "application/json", 400, None),
    ("json-null", b"null", "application/json", 400, None),
    ("json-string", b'"redirect_uris"', "application/json", 400, None),
    ("json-huge-number", b"1e999", "application/json", 400, None),
    ("nested-100k", _deep(100_000), "application/json", 413, ("invalid_request",)),
    ("nested-30k-under-the-size-limit", _deep(30_000), "application/json", 400, None),
    ("nested-20k-in-a-member",
     b'{"redirect_uris":["' + REDIRECT.encode() + b'"],"client_name":' + _deep(20_000) + b"}", "application/json",
     400, None),
    ("nested-objects-10k", b'{"a":' * 10_000 + b"1" + b"}" * 10_000, "application/json", 400, None),
    ("1MB", b'{"redirect_uris":["' + REDIRECT.encode() + b'"],"client_name":"' + MB + b'"}', "application/json",
     413, ("invalid_request",)),
    ("invalid-utf8-in-name", b'{"redirect_uris":["' + REDIRECT.encode() + b'"],"client_name":"\xff\xfe"}',
     "application/json", 400, None),
    ("invalid-utf8-in-uri", b'{"redirect_uris":["http://127.0.0.1:33419/\xc3\x28"]}', "application/json", 400, None),
    ("raw-nul-in-uri", b'{"redirect_uris":["http://127.0.0.1:33419/cb\x00"]}', "application/json", 400, None),
    ("escaped-nul-in-uri", json.dumps({"redirect_uris": ["http://127.0.0.1:33419/cb\u0000"]}).encode(),
     "application/json", 400, ("invalid_redirect_uri",)),
    ("escaped-nul-in-name", json.dumps({"redirect_uris": [REDIRECT], "client_name": "a\u0000b"}).encode(),
     "application/json", 400, None),
    ("bidi-override-in-name", json.dumps({"redirect_uris": [REDIRECT], "client_name": "Claude\u202emoc.live"}).encode(),
     "application/json", 400, None),
    ("10k-char-name", json.dumps({"redirect_uris": [REDIRECT], "client_name": "x" * 10_000}).encode(),
     "application/json", 400, None),
    ("redirect-uris-a-string", json.dumps({"redirect_uris": REDIRECT}).encode(), "application/json", 400, None),
    ("redirect-uris-numbers", json.dumps({"redirect_uris": [1, 2]}).encode(), "application/json", 400, None),
    ("redirect-uris-empty", json.dumps({"redirect_uris": []}).encode(), "application/json", 400, None),
    ("no-redirect-uris", json.dumps({"client_name": "x"}).encode(), "application/json", 400, None),
    ("21-redirect-uris", json.dumps({"redirect_uris": [f"http://127.0.0.1:{i}/cb" for i in range(1000, 1021)]}).encode(),
     "application/json", 400, None),
    ("grant-password", json.dumps({"redirect_uris": [REDIRECT], "grant_types": ["password"]}).encode(),
     "application/json", 400, None),
    ("response-type-token", json.dumps({"redirect_uris": [REDIRECT], "response_types": ["token"]}).encode(),
     "application/json", 400, None),
    ("auth-method-private-key-jwt",
     json.dumps({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "private_key_jwt"}).encode(),
     "application/json", 400, None),
]


@pytest.mark.parametrize("body, ctype, status, codes", [c[1:] for c in REGISTER_BODIES],
                         ids=[c[0] for c in REGISTER_BODIES])
def test_register_refuses_malformed_bodies(server, body, ctype, status, codes):
    r = server.client().post(f"{server.base}/register", content=body, headers={"Content-Type": ctype})
    assert_oauth_error(r, status, *(codes or ("invalid_client_metadata", "invalid_redirect_uri")))


def test_register_refuses_a_1mb_chunked_body_unread(server):
    r = server.client().post(f"{server.base}/register", content=iter([MB[:65536]] * 16),
                             headers={"Content-Type": "application/json"})
    assert_oauth_error(r, 413, "invalid_request")


BAD_REDIRECT_URIS = [
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "javascript://127.0.0.1/%0aalert(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "file:///etc/passwd",
    "vbscript:msgbox(1)",
    "http://evil.example/cb",
    "http://127.0.0.1.nip.io/cb",
    "http://localhost.evil.example/cb",
    "http://[::ffff:127.0.0.1]:33419/cb",
    "http://evil@127.0.0.1/",
    "http://evil@127.0.0.1:33419/callback",
    "http://user:pw@localhost:33419/cb",
    "https://app.example.com@attacker.example/",
    "https://attacker.example\\@app.example.com/",
    "http://127.0.0.1:33419/callback#frag",
    "http://127.0.0.1:33419/callback#",
    "https://app.example.com/cb#frag",
    "https://attacker.example/.example.com/cb",
    "https://attacker.example?.example.com/cb",
    "https://app.example.com.attacker.example/cb",
    "https://app.example.com/cb\r\nSet-Cookie: x=y",
    "https://app.example.com/cb/..;/admin",
    "https://app.example.com/cb%2f..%2fadmin",
    "http://app.example.com/cb",
    "https://example.com/cb",
    "/relative/cb",
    "http://127.0.0.1:33419/c b",
    "http://127.0.0.1:33419/cb?x=<script>",
]


@pytest.mark.parametrize("uri", BAD_REDIRECT_URIS)
def test_register_refuses_hostile_redirect_uris(server, uri):
    # Alone, and hidden behind a good one.
    for uris in ([uri], [REDIRECT, uri]):
        r = server.client().post(f"{server.base}/register", json={"redirect_uris": uris})
        assert_oauth_error(r, 400, "invalid_redirect_uri", "invalid_client_metadata")


def test_register_never_takes_the_clients_own_id_or_secret(server):
    r = server.client().post(f"{server.base}/register", json={
        "redirect_uris": [REDIRECT], "client_id": "chosen-client-id", "client_secret": "attacker-chosen-secret",
        "client_secret_expires_at": 1, "registration_access_token": "x" * 20})
    assert r.status_code == 201, r.text
    reg = r.json()
    assert reg["client_id"] != "chosen-client-id" and reg.get("client_secret") != "attacker-chosen-secret"
    assert "registration_access_token" not in reg


# ---- /authorize ------------------------------------------------------------------------------------------------

PLAIN_400 = [
    # (id, parameter overrides): the client or its redirect URI is not established, so never a redirect.
    ("unknown-client", {"client_id": "0" * 32}),
    ("client-id-traversal", {"client_id": "../../../../etc/passwd"}),
    ("client-id-markup", {"client_id": "<script>alert(1)</script>"}),
    ("client-id-url-to-loopback", {"client_id": "https://127.0.0.1:1/client.json"}),
    ("client-id-url-http", {"client_id": "http://127.0.0.1:1/client.json"}),
    ("no-client-id", {"client_id": None}),
    ("rfc9700-path-trick", {"redirect_uri": "https://attacker.example/.example.com/cb"}),
    ("rfc9700-query-trick", {"redirect_uri": "https://attacker.example?.example.com/cb"}),
    ("suffix-host", {"redirect_uri": "https://app.example.com.attacker.example/cb"}),
    ("userinfo-host", {"redirect_uri": "https://app.example.com@attacker.example/cb"}),
    ("other-subdomain", {"redirect_uri": "https://evil.example.com/cb"}),
    ("port-change-https", {"redirect_uri": "https://app.example.com:8443/cb"}),
    ("scheme-downgrade", {"redirect_uri": "http://app.example.com/cb"}),
    ("path-traversal", {"redirect_uri": "https://app.example.com/cb/../admin"}),
    ("path-traversal-encoded", {"redirect_uri": "https://app.example.com/cb/..%2fadmin"}),
    ("path-suffix", {"redirect_uri": "https://app.example.com/cb/evil"}),
    ("trailing-slash", {"redirect_uri": "https://app.example.com/cb/"}),
    ("host-case", {"redirect_uri": "https://APP.EXAMPLE.COM/cb"}),
    ("path-case", {"redirect_uri": "https://app.example.com/CB"}),
    ("added-query", {"redirect_uri": "https://app.example.com/cb?next=https://attacker.example"}),
    ("added-fragment", {"redirect_uri": "https://app.example.com/cb#x"}),
    ("loopback-other-host", {"redirect_uri": "http://localhost:33419/callback"}),
    ("loopback-other-ip", {"redirect_uri": "http://127.0.0.2:33419/callback"}),
    ("loopback-path-traversal", {"redirect_uri": "http://127.0.0.1:33419/callback/../evil"}),
    ("loopback-path-case", {"redirect_uri": "http://127.0.0.1:33419/Callback"}),
    ("loopback-added-query", {"redirect_uri": "http://127.0.0.1:33419/callback?x=1"}),
    ("loopback-userinfo", {"redirect_uri": "http://evil@127.0.0.1:40000/callback"}),
    ("loopback-fragment", {"redirect_uri": "http://127.0.0.1:40000/callback#f"}),
    ("loopback-https", {"redirect_uri": "https://127.0.0.1:33419/callback"}),
    ("javascript", {"redirect_uri": "javascript:alert(1)"}),
    ("state-over-1kb", {"state": "s" * 2000}),
]


@pytest.mark.parametrize("over", [c[1] for c in PLAIN_400], ids=[c[0] for c in PLAIN_400])
def test_authorize_refuses_without_redirecting(server, client, over):
    r, _, _ = server.authorize(server.client(), client, **over)
    assert r.status_code == 400, (r.status_code, r.text[:300])
    assert "location" not in r.headers, "an unestablished client or redirect URI must never be redirected to"
    assert r.json()["error"] in ("invalid_request", "invalid_client")
    assert "set-cookie" not in r.headers


REDIRECTED = [
    # (id, parameter overrides, error the client receives at its redirect URI)
    ("no-pkce", {"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
    ("pkce-plain", {"code_challenge_method": "plain"}, "invalid_request"),
    ("pkce-method-defaults-to-plain", {"code_challenge_method": None}, "invalid_request"),
    ("pkce-unknown-method", {"code_challenge_method": "S512"}, "invalid_request"),
    ("pkce-malformed-challenge", {"code_challenge": "short"}, "invalid_request"),
    ("response-type-token", {"response_type": "token"}, "unsupported_response_type"),
    ("response-type-missing", {"response_type": None}, "invalid_request"),
    ("scope-quote", {"scope": 'openid a"b'}, "invalid_scope"),
    ("scope-del", {"scope": "openid\x7f"}, "invalid_scope"),
    ("scope-tab", {"scope": "openid\tadmin"}, "invalid_scope"),
    ("scope-backslash", {"scope": "a\\b"}, "invalid_scope"),
    ("scope-nul", {"scope": "openid\x00admin"}, "invalid_scope"),
    ("scope-non-ascii", {"scope": "ópenid"}, "invalid_scope"),
    ("scope-150", {"scope": " ".join(f"s{i}" for i in range(150))}, "invalid_scope"),
    ("resource-other-server", {"resource": "https://attacker.example/mcp"}, "invalid_target"),
    ("resource-other-loopback-port", {"resource": "http://127.0.0.1:1/mcp"}, "invalid_target"),
    ("resource-relative", {"resource": "/mcp"}, "invalid_target"),
    ("resource-fragment", {"resource": "RESOURCE#frag"}, "invalid_target"),
    ("resource-userinfo", {"resource": "http://evil@127.0.0.1:PORT/mcp"}, "invalid_target"),
    ("resource-wildcard", {"resource": "http://*.example.com/mcp"}, "invalid_target"),
]


@pytest.mark.parametrize("over, error", [c[1:] for c in REDIRECTED], ids=[c[0] for c in REDIRECTED])
def test_authorize_errors_go_back_to_the_registered_redirect(server, client, over, error):
    over = {k: (v.replace("RESOURCE", server.mcp_url).replace("PORT", str(server.port)) if isinstance(v, str) else v)
            for k, v in over.items()}
    r, _, params = server.authorize(server.client(), client, **over)
    assert r.status_code == 302, (r.status_code, r.text[:300])
    loc = r.headers["location"]
    assert loc.startswith(REDIRECT + "?"), loc
    back = query_of(loc)
    assert back["error"] == error and back["state"] == params["state"] and back["iss"] == server.base, back
    assert "code" not in back


def test_scope_with_markup_is_legal_but_escaped_on_the_consent_page(server, client):
    """RFC 6749 §3.3 scope-tokens may hold < > ( ) /: accepted (no valid_scopes configured), but shown escaped."""
    r, _, _ = server.authorize(server.client(), client, scope="<script>alert(1)</script>")
    assert r.status_code == 200
    assert "<script>alert(1)" not in r.text and "<li>&lt;script&gt;alert(1)&lt;/script&gt;</li>" in r.text


def test_authorize_state_with_crlf_cannot_inject_headers(server, client):
    r, _, _ = server.authorize(server.client(), client, code_challenge=None,
                               state="x\r\nSet-Cookie: injected=1\r\nX-Injected: 1")
    assert r.status_code == 302
    assert "\r" not in r.headers["location"] and "\n" not in r.headers["location"]
    assert "x-injected" not in r.headers and "injected=1" not in r.headers.get("set-cookie", "")
    assert query_of(r.headers["location"])["state"].startswith("x\r\nSet-Cookie")


def test_authorize_repeated_parameter_is_refused(server, client):
    q = urllib.parse.urlencode({"client_id": client["client_id"], "redirect_uri": REDIRECT, "response_type": "code",
                                "code_challenge": fa.generate_challenge(fa.generate_verifier(64)),
                                "code_challenge_method": "S256"})
    r = server.client().get(f"{server.base}/authorize?{q}&redirect_uri=https%3A%2F%2Fattacker.example%2Fcb")
    assert r.status_code == 400 and "location" not in r.headers, (r.status_code, r.text[:200])


def test_authorize_loopback_port_may_change_but_nothing_else(server, client):
    """RFC 8252 §7.3: the one leniency. (The control for the refusals above.)"""
    r, _, _ = server.authorize(server.client(), client, redirect_uri="http://127.0.0.1:40001/callback")
    assert r.status_code == 200 and "<form" in r.text


@pytest.mark.parametrize("cookie", [
    "fastmcp_auth_browser=" + "A" * 20_000,
    "; ".join(f"c{i}={'x' * 90}" for i in range(210)),
    "fastmcp_auth_browser=\x7f\x7f; fastmcp_auth_browser=" + "B" * 43,
], ids=["20kb-binding-cookie", "20kb-many-cookies", "control-chars-and-duplicates"])
def test_authorize_with_a_hostile_cookie_header(server, client, cookie):
    verifier = fa.generate_verifier(64)
    q = urllib.parse.urlencode({"client_id": client["client_id"], "redirect_uri": REDIRECT, "response_type": "code",
                                "state": "s", "code_challenge": fa.generate_challenge(verifier),
                                "code_challenge_method": "S256"})
    r = server.raw("GET", f"/authorize?{q}", [("Cookie", cookie.encode("latin-1"))])
    # The cookie is ignored (oversized or not ours): a consent page and a fresh binding cookie.
    assert r.status_code == 200 and "<form" in r.text, (r.status_code, r.text[:200])
    set_cookie = r.headers.get("set-cookie", "")
    assert set_cookie.startswith("fastmcp_auth_browser=") and "B" * 43 not in set_cookie and "A" * 50 not in set_cookie


def test_authorize_post_with_oversized_body(server):
    r = server.client().post(f"{server.base}/authorize", content=MB,
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_oauth_error(r, 413, "invalid_request")


def test_consent_page_escapes_the_client_name(server):
    hostile = server.register(client_name='<script>alert(1)</script>"><img src=x onerror=alert(1)>')
    page, _, _ = server.authorize(server.client(), hostile)
    assert page.status_code == 200
    assert "<script>alert(1)" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;" in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src" not in csp and "default-src 'none'" in csp and "frame-ancestors 'none'" in csp


# ---- /consent --------------------------------------------------------------------------------------------------


def assert_refused_page(r):
    assert r.status_code == 403, (r.status_code, r.text[:300])
    assert r.text.startswith("<!DOCTYPE html>") and "location" not in r.headers
    assert r.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


def _binding(b):
    return b.cookies.get("fastmcp_auth_browser")


def test_consent_without_the_binding_cookie(server, client):
    b, fields, _, _ = server.pending(client)
    assert_refused_page(server.client().post(f"{server.base}/consent", data={**fields, "action": "approve"}))
    # Nor can a forged POST deny someone else's login.
    assert_refused_page(server.client().post(f"{server.base}/consent", data={**fields, "action": "deny"}))
    # Nothing changed: the real browser still approves.
    server.approve(b, fields)


def test_consent_with_another_browsers_cookie(server, client):
    b, fields, _, _ = server.pending(client)
    attacker, _, _, _ = server.pending(client)
    forged = server.client()
    r = forged.post(f"{server.base}/consent", data={**fields, "action": "approve"},
                    headers={"Cookie": f"fastmcp_auth_browser={_binding(attacker)}"})
    assert_refused_page(r)
    r = forged.post(f"{server.base}/consent", data={**fields, "action": "approve"},
                    headers={"Cookie": "fastmcp_auth_browser=" + "B" * 43})
    assert_refused_page(r)
    server.approve(b, fields)


@pytest.mark.parametrize("csrf", ["wrong", None, "", "X" * 43, "CSRF-OF-ANOTHER-PAGE"])
def test_consent_with_a_wrong_csrf_token(server, client, csrf):
    b, fields, _, _ = server.pending(client)
    if csrf == "CSRF-OF-ANOTHER-PAGE":
        csrf = server.pending(client)[1]["csrf_token"]
    form = {"transaction_id": fields["transaction_id"], "action": "approve"}
    if csrf is not None:
        form["csrf_token"] = csrf
    assert_refused_page(b.post(f"{server.base}/consent", data=form))
    server.approve(b, fields)


@pytest.mark.xfail(strict=True, reason=(
    "Login-in-progress eviction (DoS, low severity): the open-transaction cap (max_transactions_per_client, 20) of "
    "a dynamically registered client is keyed on the client_id alone (transaction_slot_key in "
    "core/src/proxy/provider.rs keys per browser only for metadata-document clients), so 20 anonymous, cookie-less "
    "GET /authorize naming a victim's client_id evict the victim's pending transaction; the victim's approval then "
    "gets 400 invalid_request 'Invalid or expired transaction'. Needs only the client_id (public: it is in every "
    "authorization URL); clients that share one registration across users are the exposed case."))
def test_anonymous_authorizations_do_not_evict_another_browsers_login(server):
    victim_client = server.register()
    b, fields, _, _ = server.pending(victim_client)
    for _ in range(20):
        r, _, _ = server.authorize(server.client(), victim_client)
        assert r.status_code == 200
    server.approve(b, fields)


def test_consent_replayed_after_approval(server, client):
    b, fields, _, _ = server.pending(client)
    server.approve(b, fields)
    r = b.post(f"{server.base}/consent", data={**fields, "action": "approve"})
    assert r.status_code in (400, 403), (r.status_code, r.text[:200])
    assert "location" not in r.headers


def test_consent_deny_redirects_access_denied_and_ends_the_transaction(server, client):
    b, fields, _, params = server.pending(client)
    r = b.post(f"{server.base}/consent", data={**fields, "action": "deny"})
    assert r.status_code == 302
    assert r.headers["location"].startswith(REDIRECT + "?")
    back = query_of(r.headers["location"])
    assert back["error"] == "access_denied" and back["state"] == params["state"] and back["iss"] == server.base
    assert "code" not in back
    # The transaction is gone: neither approve nor upstream's callback can resurrect it.
    r = b.post(f"{server.base}/consent", data={**fields, "action": "approve"})
    assert_oauth_error(r, 400, "invalid_request")
    r = b.get(f"{server.base}/auth/callback", params={"code": "up-code-x", "state": fields["transaction_id"]})
    assert_oauth_error(r, 400, "invalid_request")


@pytest.mark.parametrize("form", [
    {"action": "approve"},
    {"transaction_id": "unknown-transaction-id-000000000000000", "csrf_token": "x" * 43, "action": "approve"},
    {"transaction_id": "TX", "csrf_token": "CSRF", "action": "steal"},
    {"transaction_id": "TX", "csrf_token": "CSRF"},
    {"transaction_id": ["TX", "TX"], "csrf_token": "CSRF", "action": "approve"},
], ids=["no-transaction", "unknown-transaction", "unknown-action", "no-action", "repeated-transaction"])
def test_consent_malformed_forms(server, client, form):
    b, fields, _, _ = server.pending(client)
    form = {k: ([fields["transaction_id"]] * 2 if v == ["TX", "TX"] else
                fields["transaction_id"] if v == "TX" else fields["csrf_token"] if v == "CSRF" else v)
            for k, v in form.items()}
    r = b.post(f"{server.base}/consent", data=form)
    assert r.status_code in (400, 403) and "location" not in r.headers, (r.status_code, r.text[:200])
    server.approve(b, fields)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_consent_oversized_body(server, client, chunked):
    b, fields, _, _ = server.pending(client)
    body = urllib.parse.urlencode({**fields, "action": "approve", "pad": "x" * (1 << 20)}).encode()
    content = iter([body[i:i + 65536] for i in range(0, len(body), 65536)]) if chunked else body
    r = b.post(f"{server.base}/consent", content=content,
               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_oauth_error(r, 413, "invalid_request")
    server.approve(b, fields)


def test_consent_invalid_utf8_form(server, client):
    b, fields, _, _ = server.pending(client)
    body = urllib.parse.urlencode(fields).encode() + b"&action=appr%FF%FEove&x=\xff\xfe\x00"
    r = b.post(f"{server.base}/consent", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and "location" not in r.headers, (r.status_code, r.text[:200])


# ---- /auth/callback ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("query", [
    "", "code=up-code-abc", "state=", "code=up-code-abc&state=unknown-state-000000000000000000000",
    "code=x&state=" + "s" * 9000, "code=a&code=b&state=c", "state=%FF%FE%00",
], ids=["empty", "no-state", "empty-state", "unknown-state", "huge-state", "repeated-code", "invalid-utf8-state"])
def test_callback_without_a_live_state(server, query):
    r = server.client().get(f"{server.base}/auth/callback?{query}")
    assert_oauth_error(r, 400, "invalid_request")
    assert "location" not in r.headers


def test_callback_in_a_browser_that_never_started_the_flow(server, client):
    """The attacker approves in his browser and forwards the upstream login link: the victim's browser (no cookie,
    or its own cookie) gets a refusal page, and the transaction is dead for everyone."""
    b, fields, _, _ = server.pending(client)
    cb = server.upstream_login(b, server.approve(b, fields))
    victim, _, _, _ = server.pending(client)  # a browser with a binding cookie of its own
    assert_refused_page(victim.get(cb))
    r = b.get(cb)
    assert_oauth_error(r, 400, "invalid_request")


def test_callback_without_any_cookie(server, client):
    b, fields, _, _ = server.pending(client)
    cb = server.upstream_login(b, server.approve(b, fields))
    r = server.client().get(cb)
    assert_refused_page(r)
    assert "mismatch" in r.text


def test_callback_before_consent_is_refused(server, client):
    """A link straight to upstream (skipping the consent page) must not yield a code."""
    b, fields, _, _ = server.pending(client)
    r = b.get(f"{server.base}/auth/callback", params={"code": "up-code-forged", "state": fields["transaction_id"]})
    assert_refused_page(r)
    assert "never approved" in r.text


@pytest.mark.parametrize("error, expected", [
    ("access_denied", "access_denied"),
    ("invalid_scope", "invalid_scope"),
    ("<script>alert(1)</script>", "access_denied"),
    ("login_required", "access_denied"),
])
def test_callback_upstream_error_reaches_the_client_with_a_fixed_text(server, client, error, expected):
    b, fields, _, params = server.pending(client)
    up = server.approve(b, fields)
    tx_state = query_of(up)["state"]
    r = b.get(f"{server.base}/auth/callback",
              params={"error": error, "error_description": "<b>phish</b> call +1-555", "state": tx_state})
    assert r.status_code == 302, (r.status_code, r.text[:200])
    loc = r.headers["location"]
    back = query_of(loc)
    assert loc.startswith(REDIRECT + "?") and back["error"] == expected and back["state"] == params["state"]
    assert "phish" not in loc and "<script" not in loc and "%3Cscript" not in loc and "code" not in back
    assert back["error_description"].startswith("The identity provider")


def test_callback_with_a_forged_upstream_code(server, client):
    b, fields, _, params = server.pending(client)
    tx_state = query_of(server.approve(b, fields))["state"]
    r = b.get(f"{server.base}/auth/callback", params={"code": "up-code-forged-000000", "state": tx_state})
    assert r.status_code == 302
    back = query_of(r.headers["location"])
    assert back["error"] == "server_error" and back["state"] == params["state"] and "code" not in back


# ---- /token ------------------------------------------------------------------------------------------------------


def test_code_replay_is_refused(server):
    client, code, verifier, _ = server.login()
    form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
            "client_id": client["client_id"], "redirect_uri": REDIRECT}
    first = server.token_request(form)
    assert first.status_code == 200
    server.secrets.update([first.json()["access_token"], first.json()["refresh_token"]])
    assert_oauth_error(server.token_request(form), 400, "invalid_grant")
    assert_oauth_error(server.token_request(form), 400, "invalid_grant")


# RFC 6749 §4.1.2 / §10.5 (and RFC 9700 §4.5.3.1): a code presented twice revokes the tokens already issued from
# it (found by this suite; the core's spent-code tombstone now names the grant it yielded).
def test_code_replay_revokes_the_tokens_issued_from_it(server):
    client, code, verifier, _ = server.login()
    form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
            "client_id": client["client_id"], "redirect_uri": REDIRECT}
    tokens = server.token_request(form).json()
    server.secrets.update([tokens["access_token"], tokens["refresh_token"]])
    assert_oauth_error(server.token_request(form), 400, "invalid_grant")
    assert_bearer_401(server.mcp("Bearer " + tokens["access_token"]))
    assert_oauth_error(server.refresh(client, tokens["refresh_token"]), 400, "invalid_grant")


def _code_form(client, code, verifier, **over):
    form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
            "client_id": client["client_id"], "redirect_uri": REDIRECT, **over}
    return {k: v for k, v in form.items() if v is not None}


@pytest.mark.parametrize("over, status, error", [
    ({"code_verifier": "W" * 64}, 400, "invalid_grant"),
    ({"code_verifier": None}, 400, "invalid_request"),
    ({"code_verifier": "short"}, 400, "invalid_grant"),
    ({"redirect_uri": "http://127.0.0.1:33419/other"}, 400, "invalid_grant"),
    ({"redirect_uri": WEB_REDIRECT}, 400, "invalid_grant"),
    ({"resource": "https://attacker.example/mcp"}, 400, "invalid_target"),
], ids=["wrong-verifier", "no-verifier", "short-verifier", "wrong-redirect-uri", "other-registered-redirect",
        "other-resource"])
def test_code_exchange_refusals_spend_the_code(server, over, status, error):
    client, code, verifier, _ = server.login()
    assert_oauth_error(server.token_request(_code_form(client, code, verifier, **over)), status, error)
    # The code is spent by the failed attempt: the right request now fails too (no retrying PKCE guesses).
    assert_oauth_error(server.token_request(_code_form(client, code, verifier)), 400, "invalid_grant")


def test_another_clients_code(server):
    victim, code, verifier, _ = server.login()
    attacker = server.register()
    r = server.token_request(_code_form(attacker, code, verifier))
    assert_oauth_error(r, 400, "invalid_grant")
    # A confidential attacker with a wrong secret is refused before the code is looked at.
    confidential = server.register(token_endpoint_auth_method="client_secret_post")
    r = server.token_request(_code_form(confidential, code, verifier, client_secret="wrong-secret-value"))
    assert_oauth_error(r, 401, "invalid_client")
    assert r.headers.get("www-authenticate", "").startswith("Basic")


def test_confidential_client_needs_its_secret(server):
    client = server.register(token_endpoint_auth_method="client_secret_post")
    _, code, verifier, _ = server.login(client=client)
    for secret in (None, "wrong-secret-value", client["client_secret"] + "x"):
        r = server.token_request(_code_form(client, code, verifier, client_secret=secret))
        assert_oauth_error(r, 401, "invalid_client")
    basic = base64.b64encode(f"{client['client_id']}:not-the-secret".encode()).decode()
    r = server.token_request(_code_form(client, code, verifier), headers={"Authorization": f"Basic {basic}"})
    assert_oauth_error(r, 401, "invalid_client")
    # Client authentication failures do not spend the code.
    tokens = server.token_request(_code_form(client, code, verifier, client_secret=client["client_secret"]))
    assert tokens.status_code == 200, tokens.text
    server.secrets.update([tokens.json()["access_token"], tokens.json()["refresh_token"]])


def test_refresh_token_is_not_an_access_token(server, grant):
    assert_bearer_401(server.mcp("Bearer " + grant["refresh_token"]))


def test_access_token_is_not_a_refresh_token(server, client, grant):
    assert_oauth_error(server.refresh(client, grant["access_token"]), 400, "invalid_grant")
    # ... and the attempt did not cost the access token its life.
    assert server.mcp("Bearer " + grant["access_token"]).status_code == 200


def test_refresh_token_of_another_client(server, grant):
    attacker = server.register()
    assert_oauth_error(server.refresh(attacker, grant["refresh_token"]), 400, "invalid_grant")


@pytest.mark.parametrize("extra, error", [
    ({"resource": "https://attacker.example/mcp"}, "invalid_target"),
    ({"scope": "openid admin"}, "invalid_scope"),
    ({"scope": 'a"b'}, "invalid_scope"),
], ids=["other-resource", "wider-scope", "bad-scope-chars"])
def test_refresh_cannot_widen_the_grant(server, client, grant, extra, error):
    assert_oauth_error(server.refresh(client, grant["refresh_token"], **extra), 400, error)


def test_rotated_out_refresh_token_after_the_grace_window_revokes_the_grant(server):
    client, tokens = server.tokens()
    r = server.refresh(client, tokens["refresh_token"])
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["refresh_token"] != tokens["refresh_token"]
    # Within the grace window a retry gets the successor (a client that lost the answer).
    retry = server.refresh(client, tokens["refresh_token"])
    assert retry.status_code == 200 and retry.json()["refresh_token"] == second["refresh_token"]
    time.sleep(GRACE + 0.3)
    assert_oauth_error(server.refresh(client, tokens["refresh_token"]), 400, "invalid_grant")
    # RFC 9700 §4.14.2: the replay revokes the whole grant.
    assert_bearer_401(server.mcp("Bearer " + second["access_token"]))
    assert_oauth_error(server.refresh(client, second["refresh_token"]), 400, "invalid_grant")


@pytest.mark.parametrize("grant_type, error", [
    ("password", "unsupported_grant_type"),
    ("client_credentials", "unsupported_grant_type"),
    ("implicit", "unsupported_grant_type"),
    ("urn:ietf:params:oauth:grant-type:jwt-bearer", "unsupported_grant_type"),
    ("urn:ietf:params:oauth:grant-type:token-exchange", "unsupported_grant_type"),
    ("urn:ietf:params:oauth:grant-type:device_code", "unsupported_grant_type"),
    ("AUTHORIZATION_CODE", "unsupported_grant_type"),
    (None, "invalid_request"),
])
def test_unsupported_grant_types(server, client, grant_type, error):
    form = {"client_id": client["client_id"], "username": "ada", "password": "pw", "code": "c" * 20}
    if grant_type is not None:
        form["grant_type"] = grant_type
    assert_oauth_error(server.token_request(form), 400, error)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_token_1mb_body(server, client, chunked):
    body = b"grant_type=authorization_code&client_id=" + client["client_id"].encode() + b"&pad=" + MB
    content = iter([body[i:i + 65536] for i in range(0, len(body), 65536)]) if chunked else body
    r = server.client().post(f"{server.base}/token", content=content,
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_oauth_error(r, 413, "invalid_request")


@pytest.mark.parametrize("body, ctype", [
    (b"grant_type=authorization_code&code=a&code=b&client_id=CID&code_verifier=" + b"v" * 43, "form"),
    (b"grant_type=authorization_code&code=%FF%FE%00&client_id=CID&code_verifier=" + b"v" * 43, "form"),
    (b"grant_type=authorization_code&code=\xff\xfe&client_id=CID&code_verifier=" + b"v" * 43, "form"),
    (b'{"grant_type": "authorization_code", "code": "abc", "client_id": "CID"}', "application/json"),
    (b"grant_type=refresh_token&refresh_token=" + b"x" * 9000 + b"&client_id=CID", "form"),
    (b"grant_type=refresh_token&refresh_token=eyJhbGciOiJub25lIn0.e30.&client_id=CID", "form"),
    (b"\x00\x01\x02\x03", "form"),
], ids=["repeated-code", "encoded-invalid-utf8", "raw-invalid-utf8", "json-body", "9kb-refresh-token",
        "alg-none-refresh-token", "binary"])
def test_token_junk(server, client, body, ctype):
    body = body.replace(b"CID", client["client_id"].encode())
    ctype = "application/x-www-form-urlencoded" if ctype == "form" else ctype
    r = server.client().post(f"{server.base}/token", content=body, headers={"Content-Type": ctype})
    assert r.status_code == 400, (r.status_code, r.text[:200])
    assert r.json()["error"] in ("invalid_request", "invalid_grant", "unsupported_grant_type")


# ---- /mcp with hostile Authorization headers ------------------------------------------------------------------------


def _issuer(server, audience=None, key=SIGNING_KEY, issuer=None, **kw):
    return fa.JWTIssuer(issuer or server.base, audience or server.mcp_url, key, **kw)


def _forged(server, grant, **kw):
    """A token like `grant`'s access token (same jti, client, scope) from another issuer configuration."""
    claims = jwt_parts(grant["access_token"])[1]
    expires_in = kw.pop("expires_in", 3600)
    return _issuer(server, **kw).issue_access_token(claims["client_id"], claims["scope"].split(), claims["jti"],
                                                     expires_in=expires_in)


def _alg_none(token, alg="none"):
    header, payload = jwt_parts(token)
    header["alg"] = alg
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}."


HOSTILE_BEARERS = [
    ("no-header", lambda s, g: None),
    ("bearer-no-token", lambda s, g: "Bearer"),
    ("bearer-empty", lambda s, g: "Bearer "),
    ("bearer-spaces", lambda s, g: "Bearer      "),
    ("basic-scheme", lambda s, g: "Basic " + base64.b64encode(b"user:pass").decode()),
    ("token-without-scheme", lambda s, g: g["access_token"]),
    ("garbage", lambda s, g: "Bearer not-a-jwt-at-all"),
    ("tampered-signature", lambda s, g: "Bearer " + g["access_token"][:-4] + ("AAAA" if not g["access_token"].endswith("AAAA") else "BBBB")),
    ("tampered-payload", lambda s, g: "Bearer " + ".".join([
        g["access_token"].split(".")[0],
        b64url(json.dumps({**jwt_parts(g["access_token"])[1], "scope": "openid admin"}).encode()),
        g["access_token"].split(".")[2]])),
    ("other-key", lambda s, g: "Bearer " + _forged(s, g, key=OTHER_KEY)),
    ("alg-none", lambda s, g: "Bearer " + _alg_none(g["access_token"])),
    ("alg-None", lambda s, g: "Bearer " + _alg_none(g["access_token"], "None")),
    ("alg-none-with-signature", lambda s, g: "Bearer " + _alg_none(g["access_token"]) + g["access_token"].split(".")[2]),
    ("expired-an-hour-ago", lambda s, g: "Bearer " + _forged(s, g, fixed_time=int(time.time()) - 7200)),
    ("other-audience-same-origin", lambda s, g: "Bearer " + _forged(s, g, audience=s.base + "/other")),
    ("other-audience-other-server", lambda s, g: "Bearer " + _forged(s, g, audience="https://attacker.example/mcp")),
    ("other-issuer", lambda s, g: "Bearer " + _forged(s, g, issuer="https://attacker.example")),
    ("valid-key-never-issued", lambda s, g: "Bearer " + _issuer(s).issue_access_token(
        jwt_parts(g["access_token"])[1]["client_id"], ["openid"], "never-issued-jti")),
    ("refresh-token", lambda s, g: "Bearer " + g["refresh_token"]),
    ("20kb-token", lambda s, g: "Bearer " + "A" * 20_000),
    ("two-tokens", lambda s, g: "Bearer " + g["refresh_token"] + " " + g["access_token"]),
    ("invalid-utf8", lambda s, g: b"Bearer \xff\xfe\xfd" + b"x" * 20),
]


@pytest.mark.parametrize("make", [c[1] for c in HOSTILE_BEARERS], ids=[c[0] for c in HOSTILE_BEARERS])
def test_mcp_refuses_hostile_bearers_with_a_challenge(server, grant, make):
    authorization = make(server, grant)
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).encode()
    headers = [("Accept", "application/json, text/event-stream"), ("Content-Type", "application/json")]
    if authorization is not None:
        headers.append(("Authorization", authorization))
    r = server.raw("POST", "/mcp", headers, body)
    assert_bearer_401(r)
    assert "resource_metadata=" in r.headers["www-authenticate"]


def test_forgery_control_the_real_key_and_jti_are_accepted(server, grant):
    """Control for the forgeries above: the grant's claims re-signed with the real key (even with `iat` two hours in
    the future: no `nbf` is checked, harmless without the key) are accepted, so each refusal above is due to the one
    claim or key that differs."""
    assert server.mcp("Bearer " + _forged(server, grant)).status_code == 200
    assert server.mcp("Bearer " + _forged(server, grant, fixed_time=int(time.time()) + 7200)).status_code == 200


def test_mcp_refuses_a_real_expired_token(server, client, grant):
    """Expiry on its own: everything else (key, jti in the store, audience) is right."""
    claims = jwt_parts(grant["access_token"])[1]
    expired = _issuer(server).issue_access_token(claims["client_id"], ["openid"], claims["jti"], expires_in=0)
    time.sleep(1.1)
    assert_bearer_401(server.mcp("Bearer " + expired))


def test_mcp_refuses_a_real_token_for_another_resource_of_this_origin(server):
    """A token the proxy really issued, for http://127.0.0.1:PORT/other (same origin: the core accepts that
    resource at /authorize), must not open /mcp."""
    _, tokens = server.tokens(resource=server.base + "/other")
    assert jwt_parts(tokens["access_token"])[1]["aud"] == server.base + "/other"
    assert_bearer_401(server.mcp("Bearer " + tokens["access_token"]))


def test_mcp_refuses_a_revoked_access_token(server):
    client, tokens = server.tokens()
    assert server.mcp("Bearer " + tokens["access_token"]).status_code == 200
    r = server.revoke(client, tokens["access_token"])
    assert r.status_code == 200, r.text
    assert_bearer_401(server.mcp("Bearer " + tokens["access_token"]))


def test_revoking_the_refresh_token_revokes_the_grant(server):
    client, tokens = server.tokens()
    assert server.revoke(client, tokens["refresh_token"]).status_code == 200
    assert_bearer_401(server.mcp("Bearer " + tokens["access_token"]))
    assert_oauth_error(server.refresh(client, tokens["refresh_token"]), 400, "invalid_grant")


# ---- /revoke --------------------------------------------------------------------------------------------------------


def test_revoke_another_clients_tokens_does_nothing(server):
    victim, tokens = server.tokens()
    attacker = server.register()
    for t in (tokens["access_token"], tokens["refresh_token"]):
        r = server.revoke(attacker, t)
        assert r.status_code == 200, r.text  # RFC 7009 §2.2: nothing revealed
    assert server.mcp("Bearer " + tokens["access_token"]).status_code == 200
    r = server.refresh(victim, tokens["refresh_token"])
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("form, status, error", [
    ({"client_id": "CID"}, 400, "invalid_request"),
    ({"client_id": "CID", "token": ""}, 400, "invalid_request"),
    ({"token": "TOKEN"}, 401, "invalid_client"),
    ({"client_id": "0" * 32, "token": "TOKEN"}, 401, "invalid_client"),
    ({"client_id": "CONFIDENTIAL", "token": "TOKEN", "client_secret": "wrong-secret-value"}, 401, "invalid_client"),
    ({"client_id": "CID", "token": "junk"}, 200, None),
    ({"client_id": "CID", "token": "eyJhbGciOiJub25lIn0.e30."}, 200, None),
    ({"client_id": "CID", "token": "x" * 9000}, 400, "invalid_request"),
    ({"client_id": "CID", "token": "junk", "token_type_hint": "<script>"}, 200, None),
], ids=["missing-token", "empty-token", "no-client", "unknown-client", "wrong-secret", "junk-token",
        "alg-none-token", "9kb-token", "junk-hint"])
def test_revoke_refusals(server, client, grant, form, status, error):
    confidential = server.register(token_endpoint_auth_method="client_secret_post")
    subst = {"CID": client["client_id"], "CONFIDENTIAL": confidential["client_id"], "TOKEN": grant["access_token"]}
    form = {k: subst.get(v, v) for k, v in form.items()}
    r = server.client().post(f"{server.base}/revoke", data=form)
    if error is None:
        assert r.status_code == status, (r.status_code, r.text[:200])
    else:
        assert_oauth_error(r, status, error)
    # Whatever was sent, the grant is untouched.
    assert server.mcp("Bearer " + grant["access_token"]).status_code == 200


@pytest.mark.parametrize("body", [MB, b"token=\xff\xfe&client_id=\x00", b"\x00" * 100],
                         ids=["1MB", "invalid-utf8", "binary"])
def test_revoke_junk_bodies(server, body):
    r = server.client().post(f"{server.base}/revoke", content=body,
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code in (400, 401, 413), (r.status_code, r.text[:200])


# ---- methods and paths nobody should use ----------------------------------------------------------------------------


@pytest.mark.parametrize("method, path", [
    ("GET", "/token"), ("GET", "/register"), ("GET", "/consent"), ("PUT", "/authorize"), ("DELETE", "/revoke"),
    ("POST", "/auth/callback"), ("GET", "/auth/callback/../token"), ("TRACE", "/authorize"),
])
def test_wrong_methods(server, method, path):
    r = server.raw(method, path)
    assert 400 <= r.status_code < 500, r.status_code


# ---- logs ------------------------------------------------------------------------------------------------------------


def test_logs_never_hold_secrets_tokens_or_codes(server):
    """Runs last: one more complete grant (refresh, revoke, a replay) so the test stands alone, then every record any
    logger received while the module ran (core at trace, root at DEBUG; the test's own HTTP client's loggers aside)."""
    client = server.register(token_endpoint_auth_method="client_secret_post")
    _, tokens = server.tokens(client=client)
    r = server.token_request({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                              "client_id": client["client_id"], "client_secret": client["client_secret"]})
    assert r.status_code == 200
    server.secrets.update([r.json()["access_token"], r.json()["refresh_token"]])
    server.token_request({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                          "client_id": client["client_id"], "client_secret": "wrong-secret-value"})
    assert server.mcp("Bearer " + r.json()["access_token"]).status_code == 200
    server.client().post(f"{server.base}/revoke", data={"token": r.json()["refresh_token"],
                                                        "client_id": client["client_id"],
                                                        "client_secret": client["client_secret"]})
    assert _native._flush_logging()
    server.secrets.update(server.verifier.seen)  # upstream access tokens
    server.secrets.add(SIGNING_KEY.decode())
    records = [r for r in server.records if not r.name.startswith(CLIENT_SIDE_LOGGERS)]
    assert any(r.name.startswith("fastmcp_auth") for r in records), "the core's records were captured"

    def text(rec):
        parts = [rec.getMessage(), repr(rec.args)]
        if rec.exc_info:
            parts.append(logging.Formatter().formatException(rec.exc_info))
        parts += [repr(v) for k, v in vars(rec).items() if k not in logging.LogRecord("", 0, "", 0, "", (), None).__dict__]
        return "\n".join(parts)

    leaks = []
    for rec in records:
        t = text(rec)
        for s in server.secrets:
            if s and len(s) >= 8 and s in t:
                leaks.append((rec.name, rec.levelname, s[:12] + "…", rec.getMessage()[:200]))
        if "up-rt-" in t or "up-code-" in t:
            leaks.append((rec.name, rec.levelname, "upstream refresh token or code", rec.getMessage()[:200]))
    assert not leaks, leaks
