"""Hostile ``Authorization`` headers against a real fastmcp server whose bearer check runs *in place* (on the event
loop's thread, from the kernel's caches: ``verify_inline`` before ``verify_async``), with the proxy's default
storage (a ``DiskStore`` under ``fastmcp.settings.home``, here a temporary directory on the test machine's disk).

Every answer must be the one the waiting path gives: 200 for a live token, 401 with a ``Bearer`` challenge for
anything else, never a 5xx, never a token or secret echoed (``Server._check`` of test_fastmcp_hostile). The store's
entry files are attacked between requests: deleted, evicted from the page cache, replaced by a symlink, a FIFO or a
file too large for the in-place read. A spy around the core records whether each check was answered in place or
declined, so the tests know which path produced each answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pathlib
import shutil
import sys
import threading
import time

import httpx2 as httpx
import pytest
import uvicorn
from fastmcp import FastMCP

import fastmcp_auth as fa
from fastmcp_auth import _native
from fastmcp_auth.fastmcp import OAuthProxy

from .test_aio import _evict
from .test_fastmcp_hostile import (
    HOSTILE_BEARERS,
    SIGNING_KEY,
    UPSTREAM_SECRET,
    CLIENT_SIDE_LOGGERS,
    Collect,
    Server,
    UpstreamVerifier,
    _forged,
    _issuer,
    assert_bearer_401,
    check_response,
    free_port,
    jwt_parts,
)

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads that never wait are Linux's (openat2, preadv2)"
)

MCP_BODY = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "inplace-attack", "version": "1"}}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


class Spy:
    """Wraps the native proxy: records, per bearer check, whether it was answered in place (True) or declined."""

    def __init__(self, core):
        self._core = core
        self.inline = []

    def verify_inline(self, token, resource):
        r = self._core.verify_inline(token, resource)
        self.inline.append(r is not NotImplemented)
        return r

    def __getattr__(self, name):
        return getattr(self._core, name)


@pytest.fixture(scope="module")
def server(idp, tmp_path_factory):
    from fastmcp import settings

    collected = Collect()
    loggers = [logging.getLogger(n) for n in ("", "fastmcp_auth", "fastmcp", "mcp", "uvicorn")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(collected)
        lg.setLevel(logging.DEBUG)
    fa.set_log_level("trace")
    old_home = settings.home
    # Not /tmp: on a machine where /tmp is tmpfs the in-place read has nothing to decline.
    home = pathlib.Path(os.environ.get("INPLACE_ATTACK_HOME") or tmp_path_factory.mktemp("inplace-home"))
    settings.home = home

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
        jwt_signing_key=SIGNING_KEY,  # no client_storage: the default DiskStore under settings.home
        allowed_client_redirect_uris=["http://127.0.0.1:*", "https://app.example.com/*"],
        core_options={"rate_limits": False},
    )
    assert isinstance(auth._storage, _native.DiskStore)
    spy = Spy(auth._core)
    auth._core = spy
    mcp = FastMCP("inplace", auth=auth)

    @mcp.tool
    def ping() -> str:
        return "pong"

    uv = uvicorn.Server(uvicorn.Config(mcp.http_app(path="/mcp"), host="127.0.0.1", port=port, log_level="warning",
                                       lifespan="on", limit_concurrency=1000, backlog=1024))
    thread = threading.Thread(target=uv.run, name="inplace-uvicorn", daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not uv.started:
        assert thread.is_alive() and time.time() < deadline, "server did not start"
        time.sleep(0.01)
    srv = Server(base, port, auth, verifier, idp)
    srv.records = collected.records
    srv.spy = spy
    dirs = list((home / "oauth-proxy-rs").iterdir())
    assert len(dirs) == 1, dirs
    srv.store_dir = dirs[0]
    try:
        yield srv
    finally:
        srv.close()
        uv.should_exit = True
        thread.join(timeout=20)
        auth._core = spy._core
        auth.close()
        _native._flush_logging()
        settings.home = old_home
        for lg, level in zip(loggers, levels):
            lg.removeHandler(collected)
            lg.setLevel(level)
        fa.set_log_level("warning")


# ---- helpers -------------------------------------------------------------------------------------------------------


class Grant:
    def __init__(self, server, client, tokens, upstream_file):
        self.client, self.tokens = client, tokens
        self.access, self.refresh = tokens["access_token"], tokens["refresh_token"]
        self.mapping = server.store_dir / f"mapping_{jwt_parts(self.access)[1]['jti']}.json"
        self.refresh_mapping = server.store_dir / f"mapping_{jwt_parts(self.refresh)[1]['jti']}.json"
        self.upstream = upstream_file
        assert self.mapping.is_file() and self.refresh_mapping.is_file() and self.upstream.is_file()


def new_grant(server):
    before = set(server.store_dir.glob("upstream_*.json"))
    client, tokens = server.tokens()
    new = set(server.store_dir.glob("upstream_*.json")) - before
    assert len(new) == 1, new
    return Grant(server, client, tokens, new.pop())


def mcp(server, token):
    """One MCP initialize with `Bearer token`; also returns whether the check was answered in place."""
    n = len(server.spy.inline)
    r = server.mcp("Bearer " + token)
    seen = server.spy.inline[n:]
    return r, seen


def mcp_evicted(server, token, paths, tries=8):
    """Evicts `paths`, then one MCP request, until the check declined in place (page-cache eviction is a hint the
    kernel may not take at once: CI saw one pass kept). Returns every (response, seen), the last one declined."""
    out = []
    for _ in range(tries):
        for p in paths:
            _evict(p)
        r, seen = mcp(server, token)
        out.append((r, seen))
        if seen == [False]:
            return out
        time.sleep(0.05)
    pytest.fail(f"the page cache kept {[p.name for p in paths]} through {tries} evictions: {[s for _, s in out]}")


def assert_ok(r):
    assert r.status_code == 200, (r.status_code, r.text[:300])


def warm(server, grant):
    """Two good requests: the entries are in the kernel's caches, and the second is answered in place."""
    assert_ok(mcp(server, grant.access)[0])
    r, seen = mcp(server, grant.access)
    assert_ok(r)
    assert seen == [True], f"a cached live token was not answered in place: {seen}"


@pytest.fixture(scope="module")
def grant(server):
    g = new_grant(server)
    warm(server, g)
    return g


def _replace(path, make):
    """Moves `path` aside and puts `make(path)` in its place; returns a function restoring it."""
    aside = path.with_name(path.name + ".aside")  # not *.json: the store ignores it
    os.rename(path, aside)
    make(path)

    def restore():
        if path.is_symlink() or path.exists():
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        os.rename(aside, path)

    return restore, aside


# ---- hostile bearers, answered in place ------------------------------------------------------------------------------


EXTRA_BEARERS = [
    ("expired-real-jti", lambda s, g: _issuer(s).issue_access_token(
        jwt_parts(g.access)[1]["client_id"], ["openid"], jwt_parts(g.access)[1]["jti"], expires_in=0)),
    ("other-audience-real-jti", lambda s, g: _forged(s, g.tokens, audience=s.base + "/other")),
    ("refresh-token-as-bearer", lambda s, g: g.refresh),
    ("refresh-jti-in-access-token", lambda s, g: _issuer(s).issue_access_token(
        jwt_parts(g.access)[1]["client_id"], ["openid"], jwt_parts(g.refresh)[1]["jti"])),
    ("forged-signature", lambda s, g: g.access[:-6] + ("AAAAAA" if not g.access.endswith("AAAAAA") else "BBBBBB")),
    ("path-traversal-jti", lambda s, g: _issuer(s).issue_access_token(
        jwt_parts(g.access)[1]["client_id"], ["openid"], "../" + g.upstream.stem.split("_", 1)[1])),
    ("upstream-key-as-jti", lambda s, g: _issuer(s).issue_access_token(
        jwt_parts(g.access)[1]["client_id"], ["openid"], g.upstream.stem)),
]


@pytest.mark.parametrize("make", [c[1] for c in HOSTILE_BEARERS], ids=[c[0] for c in HOSTILE_BEARERS])
def test_hostile_bearers_after_a_cached_good_one(server, grant, make):
    """test_fastmcp_hostile's list, each right after the good token was answered in place from the caches."""
    warm(server, grant)
    authorization = make(server, grant.tokens)
    headers = [("Accept", "application/json, text/event-stream"), ("Content-Type", "application/json")]
    if authorization is not None:
        headers.append(("Authorization", authorization))
    r = server.raw("POST", "/mcp", headers, json.dumps(MCP_BODY).encode())
    assert_bearer_401(r)
    assert "resource_metadata=" in r.headers["www-authenticate"]


@pytest.mark.parametrize("make", [c[1] for c in EXTRA_BEARERS], ids=[c[0] for c in EXTRA_BEARERS])
def test_real_key_bearers_that_must_fail_in_place(server, grant, make):
    """Signed with the real key (or the real refresh token), the store entries they name are cached: the in-place
    answer must still be a refusal."""
    warm(server, grant)
    token = make(server, grant)
    exp = jwt_parts(token)[1]["exp"]
    if exp < time.time() + 5:  # `expires_in=0`: wait until it is past
        time.sleep(max(0.0, exp + 1.05 - time.time()))
    r, seen = mcp(server, token)
    assert_bearer_401(r)
    # The good token still works (the refusal cost it nothing).
    assert_ok(mcp(server, grant.access)[0])


# ---- revocation ------------------------------------------------------------------------------------------------------


def test_revoked_access_token_is_refused_at_once_though_cached(server):
    g = new_grant(server)
    warm(server, g)
    assert server.revoke(g.client, g.access).status_code == 200
    r, seen = mcp(server, g.access)
    assert_bearer_401(r)
    assert not g.mapping.exists()
    r, seen = mcp(server, g.access)  # the missing entry's lookup now cached: refused in place too
    assert_bearer_401(r)
    assert seen == [True], seen


def test_revoked_refresh_token_ends_the_cached_access_token_at_once(server):
    g = new_grant(server)
    warm(server, g)
    assert server.revoke(g.client, g.refresh).status_code == 200
    r, seen = mcp(server, g.access)
    assert_bearer_401(r)


def test_revocation_of_an_evicted_entry(server):
    """The entries are evicted (the check would decline in place), then the token revoked: refused."""
    g = new_grant(server)
    warm(server, g)
    for p in (g.mapping, g.upstream):
        _evict(p)
    assert server.revoke(g.client, g.access).status_code == 200
    assert_bearer_401(mcp(server, g.access)[0])


# ---- the store directory under attack between requests ---------------------------------------------------------------


@pytest.mark.parametrize("which", ["mapping", "upstream"])
def test_entry_deleted_between_requests(server, which):
    g = new_grant(server)
    warm(server, g)
    os.unlink(getattr(g, which))
    r, seen = mcp(server, g.access)
    assert_bearer_401(r)
    # and again, now that the negative lookup is cached
    assert_bearer_401(mcp(server, g.access)[0])


@pytest.mark.parametrize("which", ["mapping", "upstream", "both"])
def test_evicted_entries_fall_back_and_still_answer_200(server, which):
    g = new_grant(server)
    warm(server, g)
    paths = [g.mapping, g.upstream] if which == "both" else [getattr(g, which)]
    for r, _ in mcp_evicted(server, g.access, paths):
        assert_ok(r)
    # The fallback read them back into the caches: in place again.
    r, seen = mcp(server, g.access)
    assert_ok(r)
    assert seen == [True], seen


@pytest.mark.parametrize("which", ["mapping", "upstream"])
def test_evicted_then_deleted(server, which):
    g = new_grant(server)
    warm(server, g)
    _evict(getattr(g, which))
    os.unlink(getattr(g, which))
    assert_bearer_401(mcp(server, g.access)[0])


@pytest.mark.parametrize("which", ["mapping", "upstream"])
@pytest.mark.parametrize("target", ["copy-outside", "copy-inside"])
def test_entry_replaced_by_a_symlink_to_its_own_content(server, which, target, tmp_path):
    """A symlink at the entry's name, to a file with the very same (valid) content: refused on both paths (no
    read through a link), and the grant works again once the real file is back."""
    g = new_grant(server)
    warm(server, g)
    path = getattr(g, which)
    dest = (tmp_path / "elsewhere.json") if target == "copy-outside" else path.with_name(path.name + ".copy")
    shutil.copyfile(path, dest)
    restore, _ = _replace(path, lambda p: os.symlink(dest, p))
    try:
        r, seen = mcp(server, g.access)
        assert_bearer_401(r)
        # The link's target evicted: the in-place read declines, the waiting path must refuse it as well.
        _evict(dest)
        r, seen = mcp(server, g.access)
        assert_bearer_401(r)
    finally:
        restore()
        dest.unlink()
    assert_ok(mcp(server, g.access)[0])


@pytest.mark.parametrize("which", ["mapping", "upstream"])
@pytest.mark.parametrize("evict_other", [False, True], ids=["cached", "other-entry-evicted"])
def test_entry_replaced_by_a_fifo(server, which, evict_other):
    """A FIFO named like the entry: refused, never a hang, whichever path opens it (with the other entry evicted
    the in-place check declines first, so the waiting path meets the FIFO)."""
    g = new_grant(server)
    warm(server, g)
    path = getattr(g, which)
    restore, _ = _replace(path, lambda p: os.mkfifo(p, 0o600))
    try:
        if evict_other:
            if which == "mapping":
                pytest.skip("the mapping is read first: nothing to evict before it")
            _evict(g.mapping)
        t = time.monotonic()
        r, seen = mcp(server, g.access)
        assert_bearer_401(r)
        assert time.monotonic() - t < 5
    finally:
        restore()
    assert_ok(mcp(server, g.access)[0])


@pytest.mark.parametrize("which", ["mapping", "upstream"])
def test_entry_padded_over_the_in_place_limit_is_still_valid(server, which):
    """The entry's own JSON padded with whitespace to 100 KiB (> 64 KiB): the in-place read declines, the waiting
    path reads it: the answer is the entry's (200)."""
    g = new_grant(server)
    warm(server, g)
    path = getattr(g, which)
    data = path.read_bytes()
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data + b" " * (100 * 1024))
    os.rename(tmp, path)
    r, seen = mcp(server, g.access)
    assert_ok(r)
    assert seen == [False], seen


@pytest.mark.parametrize("which", ["mapping", "upstream"])
@pytest.mark.parametrize("size, in_place", [(64 * 1024, True), (64 * 1024 + 1, False)], ids=["64k", "64k+1"])
def test_entry_at_the_in_place_size_limit(server, which, size, in_place):
    """The entry padded to exactly 64 KiB (answered in place) and one byte more (declined): 200 both ways."""
    g = new_grant(server)
    warm(server, g)
    path = getattr(g, which)
    data = path.read_bytes()
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data + b" " * (size - len(data)))
    os.rename(tmp, path)
    assert path.stat().st_size == size
    mcp(server, g.access)  # the new file into the caches
    r, seen = mcp(server, g.access)
    assert_ok(r)
    assert seen == [in_place], seen


@pytest.mark.parametrize("which", ["mapping", "upstream"])
@pytest.mark.parametrize("evicted", [False, True], ids=["cached", "evicted"])
def test_entry_expired_on_disk_but_not_swept(server, which, evicted):
    """The entry's `expiresAt` set a second in the past (the sweep has not run): refused on either path."""
    g = new_grant(server)
    warm(server, g)
    path = getattr(g, which)
    doc = json.loads(path.read_bytes())
    doc["expiresAt"] = int(time.time() * 1000) - 1000
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2))
    os.rename(tmp, path)
    mcp(server, g.access)
    if evicted:
        for r, _ in mcp_evicted(server, g.access, [path]):
            assert_bearer_401(r)
    else:
        r, seen = mcp(server, g.access)
        assert_bearer_401(r)
        assert seen == [True], seen


@pytest.mark.parametrize("which", ["mapping", "upstream"])
@pytest.mark.parametrize("kind", ["100k-garbage", "17m-sparse", "directory", "empty", "truncated"])
def test_entry_replaced_by_junk(server, which, kind):
    g = new_grant(server)
    warm(server, g)
    path = getattr(g, which)
    real = path.read_bytes()

    def make(p):
        if kind == "100k-garbage":
            p.write_bytes(b"\x00\xff" * 51200)
        elif kind == "17m-sparse":
            with open(p, "wb") as f:
                f.truncate(17 * 1024 * 1024)
        elif kind == "directory":
            p.mkdir()
        elif kind == "empty":
            p.write_bytes(b"")
        else:
            p.write_bytes(real[: len(real) // 2])

    restore, _ = _replace(path, make)
    try:
        t = time.monotonic()
        assert_bearer_401(mcp(server, g.access)[0])
        assert_bearer_401(mcp(server, g.access)[0])  # with the junk cached
        assert time.monotonic() - t < 5
    finally:
        restore()
    assert_ok(mcp(server, g.access)[0])


def test_entry_swapped_for_another_grants_entry(server):
    """Grant A's mapping file replaced by grant B's (a valid file of the same store, another key): whatever the
    store makes of it, the in-place answer and the waiting path's answer (file evicted) are the same, and B's own
    token is unaffected."""
    a, b = new_grant(server), new_grant(server)
    warm(server, a)
    warm(server, b)
    restore, _ = _replace(a.mapping, lambda p: shutil.copyfile(b.mapping, p))
    try:
        first, seen_first = mcp(server, a.access)
        first, seen_first = mcp(server, a.access)  # cached now
        _evict(a.mapping)
        second, seen_second = mcp(server, a.access)
        assert first.status_code in (200, 401) and first.status_code == second.status_code, (
            first.status_code, seen_first, second.status_code, seen_second)
        assert_ok(mcp(server, b.access)[0])
    finally:
        restore()


# ---- concurrency ---------------------------------------------------------------------------------------------------------


async def _send(http, server, token, i):
    headers = dict(MCP_HEADERS)
    if token is not None:
        headers["Authorization"] = "Bearer " + token
    r = await http.post(server.mcp_url, json={**MCP_BODY, "id": i}, headers=headers)
    check_response(r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.text,
                   {"token": {token}} if token and len(token) > 8 else {}, f"request {i}")
    return r


def test_200_concurrent_requests_mixing_valid_and_invalid(server):
    live = [new_grant(server) for _ in range(3)]
    for g in live:
        warm(server, g)
    evicted = new_grant(server)
    warm(server, evicted)
    revoked = new_grant(server)
    warm(server, revoked)
    assert server.revoke(revoked.client, revoked.access).status_code == 200
    deleted = new_grant(server)
    warm(server, deleted)
    os.unlink(deleted.upstream)
    for p in (evicted.mapping, evicted.upstream):
        _evict(p)
    g0 = live[0]
    cases = [(g.access, 200) for g in live] + [
        (evicted.access, 200),
        (revoked.access, 401),
        (deleted.access, 401),
        (g0.refresh, 401),
        (g0.access[:-4] + ("AAAA" if not g0.access.endswith("AAAA") else "BBBB"), 401),
        (_forged(server, g0.tokens, audience="https://attacker.example/mcp"), 401),
        ("not-a-jwt", 401),
        (None, 401),
    ]
    plan = [cases[i % len(cases)] for i in range(200)]

    async def run():
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=30, limits=limits) as http:
            return await asyncio.gather(*(_send(http, server, tok, i) for i, (tok, _) in enumerate(plan)))

    n = len(server.spy.inline)
    responses = asyncio.run(run())
    wrong = [(i, r.status_code, want) for i, ((_, want), r) in enumerate(zip(plan, responses))
             if r.status_code != want]
    assert not wrong, wrong[:20]
    for (_, want), r in zip(plan, responses):
        if want == 401:
            assert r.headers.get("www-authenticate", "").startswith("Bearer")
    seen = server.spy.inline[n:]
    assert True in seen, "no check of the burst was answered in place"


@pytest.mark.parametrize("revoke", ["access", "refresh"])
def test_token_used_concurrently_with_its_revocation(server, revoke):
    """Eight workers hammer /mcp with one token while it (or its grant) is revoked: every request sent after the
    revocation's answer came back gets 401; before it, 200 or 401; nothing else."""
    g = new_grant(server)
    warm(server, g)
    results = []  # (sent at, status)
    done = {}

    async def worker(http, stop):
        i = 0
        while not stop.is_set():
            t = time.monotonic()
            r = await _send(http, server, g.access, i)
            results.append((t, r.status_code))
            i += 1

    async def run():
        stop = asyncio.Event()
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=16)) as http:
            workers = [asyncio.create_task(worker(http, stop)) for _ in range(8)]
            await asyncio.sleep(0.4)
            r = await http.post(f"{server.base}/revoke", data={"token": getattr(g, revoke),
                                                                 "client_id": g.client["client_id"]})
            done["at"] = time.monotonic()
            done["status"] = r.status_code
            await asyncio.sleep(0.6)
            stop.set()
            await asyncio.gather(*workers)

    asyncio.run(run())
    assert done["status"] == 200
    assert {s for _, s in results} <= {200, 401}, {s for _, s in results}
    before = [s for t, s in results if t < done["at"]]
    after = [s for t, s in results if t > done["at"]]
    assert 200 in before, "the token never worked before its revocation (the race was not exercised)"
    assert after, "no request after the revocation"
    assert set(after) == {401}, f"{after.count(200)} of {len(after)} requests after the revocation got 200"


# ---- logs --------------------------------------------------------------------------------------------------------------


def test_logs_never_carry_a_token_or_secret(server):
    """Every server-side record (core at trace) of this module: no token, code, secret or signing key, including
    the warnings the store wrote about the symlinks, FIFOs and junk files above."""
    assert _native._flush_logging()
    secrets_ = set(server.secrets) | set(server.verifier.seen) | {SIGNING_KEY.decode()}
    records = [r for r in server.records if not r.name.startswith(CLIENT_SIDE_LOGGERS)]
    assert any(r.name.startswith("fastmcp_auth") for r in records), "the core's records were captured"
    assert any("entry skipped" in r.getMessage() or "corrupt entry" in r.getMessage() for r in records), \
        "the store's warnings about the planted files were captured"

    def text(rec):
        parts = [rec.getMessage(), repr(rec.args)]
        if rec.exc_info:
            parts.append(logging.Formatter().formatException(rec.exc_info))
        parts += [repr(v) for k, v in vars(rec).items()
                  if k not in logging.LogRecord("", 0, "", 0, "", (), None).__dict__]
        return "\n".join(parts)

    leaks = []
    for rec in records:
        t = text(rec)
        for s in secrets_:
            if s and len(s) >= 8 and s in t:
                leaks.append((rec.name, rec.levelname, s[:12] + "...", rec.getMessage()[:200]))
    assert not leaks, leaks[:10]
