"""fastmcp Python, ours vs fastmcp's own, in one run (not a test): `scripts/bench-fastmcp-python.sh`.

Through a real fastmcp Python server over HTTP (uvicorn, one child process per side, built identically except for
the import: `fastmcp_auth.fastmcp.OAuthProxy` vs `fastmcp.server.auth.oauth_proxy.OAuthProxy`, each with its default
client storage, the same mock identity provider, consent off on both so that logins are cheap to prepare):
- code exchanges/s and refreshes/s at the token endpoint, 16 concurrent clients (upstream is called on each, by
  both proxies);
- the longest event-loop pause in the server (a 1 ms ticker in the server) during that load, and while a burst of
  BURST (default 200) code exchanges arrives at once on as many connections. Both servers call `gc.freeze()` once
  the app is built (Python's advice for long-lived servers; GC_FREEZE=0 to skip it): without it, the first full
  cyclic-GC pass over the ~110k objects fastmcp's import leaves takes 80-100 ms on this VM in either server, which
  is the interpreter's pause, not the proxy's (the longest GC pass is printed either way).
In this process:
- `verify_token` of a valid access token (what every MCP request pays), µs per call;
- `JWTIssuer` issue / verify, µs per call (ours vs fastmcp's, same arguments);
- `aio` store put / get vs fastmcp's default client storage (Fernet over FileTreeStore), µs per call (sequential);
- the longest event-loop pause while 2,000 store operations run concurrently (asyncio.gather).

Usage: python fastmcp_server.py <mock idp url> [codes per side, default 400]. Env ROUNDS (default 3): medians.
"""

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

CONCURRENCY = int(os.environ.get("CONCURRENCY", "16"))
BURST = int(os.environ.get("BURST", "200"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
REDIRECT = "http://127.0.0.1:33418/callback"
SIGNING_KEY = "bench-jwt-signing-key-0123456789abcdef"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- the server (child process) --------------------------------------------------------------------------------


def verifier_class():
    from fastmcp.server.auth.auth import AccessToken, TokenVerifier

    class Upstream(TokenVerifier):
        async def verify_token(self, token):
            if token.startswith("up-at-"):
                return AccessToken(token=token, client_id="upstream", scopes=[], expires_at=None)
            return None

    return Upstream


def provider(side, base, idp, memory=False):
    """The same OAuthProxy arguments for both sides; `memory`: each side's in-memory client storage instead of its
    default (ours: DiskStore; fastmcp's: Fernet over FileTreeStore)."""
    if side == "ours":
        from fastmcp_auth.fastmcp import OAuthProxy
    else:
        from fastmcp.server.auth.oauth_proxy import OAuthProxy
    extra = {"core_options": {"rate_limits": False}} if side == "ours" else {}
    if memory:
        if side == "ours":
            from fastmcp_auth.aio import AsyncMemoryStore

            extra["client_storage"] = AsyncMemoryStore()
        else:
            from key_value.aio.stores.memory import MemoryStore

            extra["client_storage"] = MemoryStore()
    return OAuthProxy(
        upstream_authorization_endpoint=f"{idp}/authorize",
        upstream_token_endpoint=f"{idp}/token",
        upstream_client_id="upstream-client",
        upstream_client_secret="upstream secret+/=",
        token_verifier=verifier_class()(),
        base_url=base,
        jwt_signing_key=SIGNING_KEY,
        require_authorization_consent=False,
        allowed_client_redirect_uris=["http://127.0.0.1:*"],
        **extra,
    )


def serve(side, port, idp):
    import logging

    import uvicorn
    from fastmcp import FastMCP
    from starlette.responses import JSONResponse

    logging.disable(logging.WARNING)
    base = f"http://127.0.0.1:{port}"
    mcp = FastMCP("bench", auth=provider(side, base, idp))
    lag = {"max": 0.0, "max_cpu": 0.0, "task": None, "gc": 0.0, "gc_started": 0.0}

    import gc

    def gc_watch(phase, info):
        # The longest cyclic-GC pass, for the report: a pause the interpreter takes, not the proxy.
        if phase == "start":
            lag["gc_started"] = time.perf_counter()
        else:
            lag["gc"] = max(lag["gc"], time.perf_counter() - lag["gc_started"])

    gc.callbacks.append(gc_watch)

    async def ticker():
        while True:
            t, c = time.perf_counter(), time.thread_time()
            await asyncio.sleep(0.001)
            gap = time.perf_counter() - t - 0.001
            if gap > lag["max"]:
                # How much of the longest gap this thread spent running (the rest: waiting for a CPU or the GIL).
                lag["max"], lag["max_cpu"] = gap, time.thread_time() - c

    @mcp.custom_route("/_lag", methods=["GET"])
    async def read_lag(request):
        if lag["task"] is None:
            lag["task"] = asyncio.get_running_loop().create_task(ticker())
        out = {"max_ms": lag["max"] * 1000, "cpu_s": time.process_time(), "gc_ms": lag["gc"] * 1000,
               "max_running_ms": lag["max_cpu"] * 1000}
        lag["max"] = lag["max_cpu"] = 0.0
        lag["gc"] = 0.0
        return JSONResponse(out)

    app = mcp.http_app(path="/mcp")
    if os.environ.get("GC_FREEZE", "1") != "0":
        gc.collect()
        gc.freeze()
    print("ready", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error")


# ---- the load (this process) -----------------------------------------------------------------------------------


def pkce():
    import base64
    import hashlib
    import secrets

    v = secrets.token_urlsafe(48)
    return v, base64.urlsafe_b64encode(hashlib.sha256(v.encode()).digest()).rstrip(b"=").decode()


async def login(http, base, client_id):
    """One authorization: authorize → upstream (mock, auto-approves) → callback → the code."""
    import httpx2 as httpx

    verifier, challenge = pkce()
    r = await http.get(f"{base}/authorize", params={
        "client_id": client_id, "redirect_uri": REDIRECT, "response_type": "code", "state": "s",
        "code_challenge": challenge, "code_challenge_method": "S256", "resource": f"{base}/mcp"})
    for _ in range(6):
        loc = r.headers["location"]
        if loc.startswith(REDIRECT):
            return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(loc).query))["code"], verifier
        r = await http.get(loc) if loc.startswith("http") else await http.get(f"{base}{loc}")
        assert r.status_code in (302, 303, 307), (r.status_code, r.text[:200])
    raise AssertionError("login did not complete")


async def token_round(base, codes):
    import httpx2 as httpx

    limits = httpx.Limits(max_connections=CONCURRENCY * 2)
    async with httpx.AsyncClient(follow_redirects=False, timeout=60, limits=limits) as http:
        clients = []
        for i in range(CONCURRENCY):
            r = await http.post(f"{base}/register", json={"redirect_uris": [REDIRECT], "client_name": f"b{i}",
                                                           "token_endpoint_auth_method": "none"})
            assert r.status_code in (200, 201), r.text
            clients.append(r.json()["client_id"])
        per = codes // CONCURRENCY
        prepared = [[await login(http, base, c) for _ in range(per)] for c in clients]
        cpu0 = (await http.get(f"{base}/_lag")).json()["cpu_s"]

        async def exchange(i):
            out = []
            for code, verifier in prepared[i]:
                r = await http.post(f"{base}/token", data={
                    "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                    "code_verifier": verifier, "client_id": clients[i], "resource": f"{base}/mcp"})
                assert r.status_code == 200, r.text
                out.append(r.json())
            return out

        t = time.perf_counter()
        issued = await asyncio.gather(*(exchange(i) for i in range(CONCURRENCY)))
        exchange_s = time.perf_counter() - t
        exchange_lag = (await http.get(f"{base}/_lag")).json()
        exchange_lag_ms, cpu1, gc_ms = exchange_lag["max_ms"], exchange_lag["cpu_s"], exchange_lag["gc_ms"]

        async def refresh(i):
            for tok in issued[i]:
                rt = tok["refresh_token"]
                r = await http.post(f"{base}/token", data={
                    "grant_type": "refresh_token", "refresh_token": rt, "client_id": clients[i]})
                assert r.status_code == 200, r.text

        t = time.perf_counter()
        await asyncio.gather(*(refresh(i) for i in range(CONCURRENCY)))
        refresh_s = time.perf_counter() - t
        lag = (await http.get(f"{base}/_lag")).json()
        n = per * CONCURRENCY
        load_lag = max((exchange_lag_ms, exchange_lag["max_running_ms"]), (lag["max_ms"], lag["max_running_ms"]))

        # The burst: BURST exchanges sent at once, each on its own connection (opened beforehand).
        burst = [(clients[i % CONCURRENCY], await login(http, base, clients[i % CONCURRENCY])) for i in range(BURST)]
        async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=BURST)) as many:
            await asyncio.gather(*(many.get(f"{base}/.well-known/oauth-authorization-server") for _ in range(BURST)))
            await http.get(f"{base}/_lag")

            async def one(client_id, code, verifier):
                r = await many.post(f"{base}/token", data={
                    "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                    "code_verifier": verifier, "client_id": client_id, "resource": f"{base}/mcp"})
                assert r.status_code == 200, r.text

            await asyncio.gather(*(one(c, code, v) for c, (code, v) in burst))
        blag = (await http.get(f"{base}/_lag")).json()
        return {
            "exchange_per_s": n / exchange_s, "refresh_per_s": n / refresh_s,
            "exchange_cpu_us": (cpu1 - cpu0) / n * 1e6, "refresh_cpu_us": (lag["cpu_s"] - cpu1) / n * 1e6,
            "lag_ms": load_lag[0], "lag_running_ms": load_lag[1],
            "burst_lag_ms": blag["max_ms"], "burst_lag_running_ms": blag["max_running_ms"],
            "gc_ms": max(gc_ms, lag["gc_ms"], blag["gc_ms"]),
            "access_token": issued[0][0]["access_token"],
        }


def start_server(side, idp, home):
    port = free_port()
    env = {**os.environ, "FASTMCP_HOME": home, "FASTMCP_LOG_LEVEL": "ERROR"}
    p = subprocess.Popen([sys.executable, __file__, "--serve", side, str(port), idp], env=env,
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    for _ in range(500):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.02)
    return p, f"http://127.0.0.1:{port}"


async def per_call_us(fn, n):
    t = time.perf_counter()
    for _ in range(n):
        await fn()
    return (time.perf_counter() - t) / n * 1e6


def sync_us(fn, n):
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e6


async def verify_round(idp, home, memory=False):
    """verify_token of a valid token, in this process, each provider fed one real token through its routes."""
    import httpx2 as httpx
    from starlette.applications import Starlette

    out = {}
    for side in ("ours", "theirs"):
        os.environ["FASTMCP_HOME"] = os.path.join(home, f"verify-{side}")
        base = "http://127.0.0.1:8000"
        auth = provider(side, base, idp, memory)
        app = Starlette(routes=auth.get_routes(mcp_path="/mcp"))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base) as http:
            r = await http.post("/register", json={"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"})
            cid = r.json()["client_id"]
            verifier, challenge = pkce()
            r = await http.get("/authorize", params={
                "client_id": cid, "redirect_uri": REDIRECT, "response_type": "code", "state": "s",
                "code_challenge": challenge, "code_challenge_method": "S256", "resource": f"{base}/mcp"})
            import http.client as hc

            loc = r.headers["location"]
            u = urllib.parse.urlsplit(loc)
            c = hc.HTTPConnection(u.hostname, u.port)
            c.request("GET", f"{u.path}?{u.query}")
            cb = urllib.parse.urlsplit(c.getresponse().getheader("Location"))
            r = await http.get(f"{cb.path}?{cb.query}")
            code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(r.headers["location"]).query))["code"]
            r = await http.post("/token", data={"grant_type": "authorization_code", "code": code,
                                                "redirect_uri": REDIRECT, "code_verifier": verifier, "client_id": cid,
                                                "resource": f"{base}/mcp"})
            tok = r.json()["access_token"]
        assert await auth.verify_token(tok) is not None, side
        n = 2000
        await per_call_us(lambda: auth.verify_token(tok), 200)
        out[side] = await per_call_us(lambda: auth.verify_token(tok), n)
    return out


def jwt_round():
    from fastmcp.server.auth.jwt_issuer import JWTIssuer as Theirs

    import fastmcp_auth

    key = b"0123456789abcdef0123456789abcdef"
    ours = fastmcp_auth.JWTIssuer("http://127.0.0.1:8000", "http://127.0.0.1:8000/mcp", key)
    theirs = Theirs("http://127.0.0.1:8000", "http://127.0.0.1:8000/mcp", key)
    out = {}
    for name, iss in (("ours", ours), ("theirs", theirs)):
        tok = iss.issue_access_token("client", ["read"], "jti-1", expires_in=3600)
        out[name] = {
            "issue": sync_us(lambda: iss.issue_access_token("client", ["read"], "jti-1", expires_in=3600), 5000),
            "verify": sync_us(lambda: iss.verify_token(tok), 5000),
        }
    return out


def fastmcp_default_storage(directory):
    from cryptography.fernet import Fernet
    from key_value.aio.stores.filetree import (
        FileTreeStore,
        FileTreeV1CollectionSanitizationStrategy,
        FileTreeV1KeySanitizationStrategy,
    )
    from key_value.aio.wrappers.encryption import FernetEncryptionWrapper

    os.makedirs(directory, exist_ok=True)
    return FernetEncryptionWrapper(
        key_value=FileTreeStore(data_directory=directory,
                                key_sanitization_strategy=FileTreeV1KeySanitizationStrategy(directory),
                                collection_sanitization_strategy=FileTreeV1CollectionSanitizationStrategy(directory)),
        fernet=Fernet(key=Fernet.generate_key()), raise_on_decryption_error=False)


async def max_pause(work):
    """The longest the event loop went without running a 1 ms ticker while `work` ran, and how much of that gap
    this thread was running (the rest: waiting for a CPU), in ms."""
    worst, running = 0.0, 0.0
    done = asyncio.Event()

    async def ticker():
        nonlocal worst, running
        while not done.is_set():
            t, c = time.perf_counter(), time.thread_time()
            await asyncio.sleep(0.001)
            gap = time.perf_counter() - t - 0.001
            if gap > worst:
                worst, running = gap, time.thread_time() - c

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    await work()
    done.set()
    await tick
    return worst * 1000, running * 1000


async def store_round(home):
    import gc

    from fastmcp_auth.aio import AsyncDiskStore

    if os.environ.get("GC_FREEZE", "1") != "0":
        gc.collect()
        gc.freeze()  # as in the servers: this process's imports out of the cyclic GC's scans, for both sides

    value = {"client_id": "c", "scopes": ["read", "write"], "redirect_uris": [REDIRECT], "n": 1}
    out = {}
    for side in ("ours", "theirs"):
        d = os.path.join(home, f"store-{side}")
        s = AsyncDiskStore(d, encryption_key="bench-storage-key-0123456789abcdef") if side == "ours" else \
            fastmcp_default_storage(d)
        n = 1000
        i = iter(range(10**9))
        put = await per_call_us(lambda: s.put(f"k{next(i) % n}", value, collection="c", ttl=3600), n)
        get = await per_call_us(lambda: s.get(f"k{next(i) % n}", collection="c"), n)
        lag, lag_running = await max_pause(lambda: asyncio.gather(
            *(s.put(f"p{j}", value, collection="c", ttl=3600) if j % 2 else s.get(f"k{j % n}", collection="c")
              for j in range(2000))))
        out[side] = {"put": put, "get": get, "lag_ms": lag, "lag_running_ms": lag_running}
        # The same sequential puts and gets with the directory on tmpfs: the software without the file system
        # (on this VM's ext4, creating a file costs either side 0.1-1 ms of kernel time, more the more files were
        # deleted in the last minutes: see the README).
        if os.path.isdir("/dev/shm"):
            with tempfile.TemporaryDirectory(dir="/dev/shm") as shm:
                d = os.path.join(shm, side)
                s = AsyncDiskStore(d, encryption_key="bench-storage-key-0123456789abcdef") if side == "ours" else \
                    fastmcp_default_storage(d)
                i = iter(range(10**9))
                out[side]["put_tmpfs"] = await per_call_us(
                    lambda: s.put(f"k{next(i) % n}", value, collection="c", ttl=3600), n)
                out[side]["get_tmpfs"] = await per_call_us(lambda: s.get(f"k{next(i) % n}", collection="c"), n)

    # asyncio's own share of the pause above: gather() making 2,000 tasks and the loop stepping them all in one
    # turn, with no store at all (each task only yields once).
    async def yield_once():
        await asyncio.sleep(0)

    out["asyncio"] = {"lag_ms": (await max_pause(lambda: asyncio.gather(*(yield_once() for _ in range(2000)))))[0]}
    return out


def main():
    import gc

    idp = sys.argv[1]
    if os.environ.get("GC_FREEZE", "1") != "0":
        # As in the servers: what the imports leave is kept out of the cyclic GC's scans, for both sides' in-process
        # rows alike (a full pass over it takes tens of ms here, landing in whichever row is running).
        import fastmcp.server.auth.jwt_issuer  # noqa: F401
        import fastmcp.server.auth.oauth_proxy  # noqa: F401
        import httpx2  # noqa: F401
        import key_value.aio.stores.filetree  # noqa: F401

        import fastmcp_auth.fastmcp  # noqa: F401

        gc.collect()
        gc.freeze()
    codes = int(sys.argv[2]) if len(sys.argv) > 2 else 400
    rounds = {"token": [], "verify": [], "verify_memory": [], "jwt": [], "store": []}
    with tempfile.TemporaryDirectory() as home:
        for r in range(ROUNDS):
            token = {}
            for side in (("ours", "theirs") if r % 2 == 0 else ("theirs", "ours")):
                p, base = start_server(side, idp, os.path.join(home, f"{side}-{r}"))
                try:
                    token[side] = asyncio.run(token_round(base, codes))
                finally:
                    p.terminate()
                    p.wait(timeout=10)
            rounds["token"].append(token)
            rounds["verify"].append(asyncio.run(verify_round(idp, os.path.join(home, f"v{r}"))))
            rounds["verify_memory"].append(asyncio.run(verify_round(idp, os.path.join(home, f"m{r}"), memory=True)))
            rounds["jwt"].append(jwt_round())
            rounds["store"].append(asyncio.run(store_round(os.path.join(home, f"s{r}"))))

    def med(path):
        vals = []
        for rr in rounds[path[0]]:
            v = rr
            for k in path[1:]:
                v = v[k]
            vals.append(v)
        return statistics.median(vals)

    rows = [
        # name, ours, theirs, unit, higher is better
        ("code exchanges (16 clients, HTTP)", med(["token", "ours", "exchange_per_s"]),
         med(["token", "theirs", "exchange_per_s"]), "/s", True),
        ("  server CPU per exchange", med(["token", "ours", "exchange_cpu_us"]),
         med(["token", "theirs", "exchange_cpu_us"]), "µs", False),
        ("refreshes (16 clients, HTTP)", med(["token", "ours", "refresh_per_s"]),
         med(["token", "theirs", "refresh_per_s"]), "/s", True),
        ("  server CPU per refresh", med(["token", "ours", "refresh_cpu_us"]),
         med(["token", "theirs", "refresh_cpu_us"]), "µs", False),
        ("verify_token (default storage)", med(["verify", "ours"]), med(["verify", "theirs"]), "µs", False),
        ("verify_token (in-memory storage)", med(["verify_memory", "ours"]), med(["verify_memory", "theirs"]), "µs",
         False),
        ("JWTIssuer issue", med(["jwt", "ours", "issue"]), med(["jwt", "theirs", "issue"]), "µs", False),
        ("JWTIssuer verify", med(["jwt", "ours", "verify"]), med(["jwt", "theirs", "verify"]), "µs", False),
        ("aio store put (encrypted, on disk)", med(["store", "ours", "put"]), med(["store", "theirs", "put"]), "µs", False),
        ("aio store get (encrypted, on disk)", med(["store", "ours", "get"]), med(["store", "theirs", "get"]), "µs", False),
        ("aio store put (encrypted, tmpfs)", med(["store", "ours", "put_tmpfs"]), med(["store", "theirs", "put_tmpfs"]),
         "µs", False),
        ("aio store get (encrypted, tmpfs)", med(["store", "ours", "get_tmpfs"]), med(["store", "theirs", "get_tmpfs"]),
         "µs", False),
        ("longest loop pause, 2,000 store ops", med(["store", "ours", "lag_ms"]), med(["store", "theirs", "lag_ms"]),
         "ms", False),
        ("  of which the loop thread was running", med(["store", "ours", "lag_running_ms"]),
         med(["store", "theirs", "lag_running_ms"]), "ms", False),
        (f"longest server loop pause, {CONCURRENCY} clients", med(["token", "ours", "lag_ms"]),
         med(["token", "theirs", "lag_ms"]), "ms", False),
        ("  of which the loop thread was running", med(["token", "ours", "lag_running_ms"]),
         med(["token", "theirs", "lag_running_ms"]), "ms", False),
        (f"longest server loop pause, {BURST} at once", med(["token", "ours", "burst_lag_ms"]),
         med(["token", "theirs", "burst_lag_ms"]), "ms", False),
        ("  of which the loop thread was running", med(["token", "ours", "burst_lag_running_ms"]),
         med(["token", "theirs", "burst_lag_running_ms"]), "ms", False),
        ("  longest cyclic GC pass in the server", med(["token", "ours", "gc_ms"]), med(["token", "theirs", "gc_ms"]),
         "ms", False),
    ]
    freeze = "gc.freeze() after startup" if os.environ.get("GC_FREEZE", "1") != "0" else "no gc.freeze()"
    print(f"fastmcp Python server, ours vs fastmcp {__import__('fastmcp').__version__}'s OAuthProxy "
          f"({codes} codes per side, {ROUNDS} rounds, medians; servers: {freeze})")
    print(f"{'':42} {'fastmcp-auth':>14} {'fastmcp':>14} {'ratio':>8}")
    for name, o, t, unit, higher in rows:
        ratio = o / t if higher else t / o
        print(f"{name:42} {o:>11.1f} {unit:<2} {t:>11.1f} {unit:<2} {ratio:>7.1f}x")
    print(f"longest loop pause, 2,000 tasks that only yield (asyncio alone): {med(['store', 'asyncio', 'lag_ms']):.1f} ms")


if __name__ == "__main__":
    if sys.argv[1] == "--serve":
        serve(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        main()
