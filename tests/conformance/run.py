"""The cross-language conformance suite: every face of fastmcp-auth (Rust, C, Python, Node) and both fastmcp
implementations (npm `fastmcp`, PyPI `fastmcp`) agree on every wire format.

1. Vector runners: each of our four faces runs the shared vectors (`vectors/fastmcp-ts.json`,
   `vectors/fastmcp-py.json`, copied from ../shared/conformance) and the hostile vectors this suite generates
   (`target/conformance/generated.json`), printing a line per case and `<face>: N passed, N failed`.
2. Live round trips, producers x consumers over all six: JWTs (each claim layout), DiskStore directories (TTLs
   honoured), encrypted values, derived keys, PKCE challenges. Written to `MATRIX.md`; a failing cell is named.
3. Hostile input is rejected by every face of ours with the same error class.

Run by scripts/test.sh with the .peers/venv Python (which has our extension and PyPI fastmcp); the last line is
`conformance: N passed, N failed`, the exit status non-zero on any failure.
"""

import base64
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUT = ROOT / "target" / "conformance"
NOW = 1_800_000_000  # the fixed "now" of generated vectors

OURS = ["rust", "c", "python", "node"]
PEERS = ["fastmcp-ts", "fastmcp-py"]
# Which face speaks which format ("wherever the format applies"): fastmcp Python has no DiskStore, encrypted
# store, PBKDF2 deriveKey or public PKCE helper of this format; fastmcp TS has only its own claim layout.
CAN = {
    "jwt-ts": OURS + ["fastmcp-ts"],
    "jwt-py": OURS + ["fastmcp-py"],
    "disk": OURS + ["fastmcp-ts"],
    "encrypted": OURS + ["fastmcp-ts"],
    "derive_key": OURS + ["fastmcp-ts"],
    "derive_jwt_key": OURS + ["fastmcp-py"],
    "pkce": OURS + ["fastmcp-ts"],
}

passed = 0
failed = 0
failures = []


def check(label, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"  ok    {label}")
    else:
        failed += 1
        failures.append(label)
        print(f"  FAIL  {label} {detail}")
    return ok


# ---- agents ------------------------------------------------------------------------------------------------------


class Batch:
    """A face that takes a JSON array of operations on stdin and answers with a JSON array."""

    def __init__(self, argv, cwd=ROOT):
        self.argv, self.cwd = argv, cwd

    def run(self, ops):
        p = subprocess.run(self.argv, input=json.dumps(ops), capture_output=True, text=True, cwd=self.cwd,
                           timeout=300)
        if p.returncode != 0:
            raise RuntimeError(f"{self.argv[:2]} failed: {p.stderr[-2000:]}")
        return json.loads(p.stdout)


class PeerTs(Batch):
    """npm fastmcp through tests/peers/ts_peer.mjs: TS layout only, real time only, errors as fastmcp's texts."""

    TEXTS = {"Invalid token format": "malformed_token", "Invalid signature": "invalid_signature",
             "Token expired": "token_expired", "Invalid issuer": "invalid_issuer",
             "Invalid audience": "invalid_audience"}

    def run(self, ops):
        out = []
        for op, r in zip(ops, super().run([self.adapt(op) for op in ops])):
            if op["op"] == "verify":
                r = {"valid": r["valid"], "claims": r.get("claims"),
                     "reason": None if r["valid"] else self.TEXTS.get(r.get("error"), "other")}
            elif op["op"] == "decrypt" and r is None:
                r = {"error": "decrypt_failed"}
            out.append(r)
        return out

    @staticmethod
    def adapt(op):
        return {k: v for k, v in op.items() if k not in ("layout", "now")}


class PeerPy(Batch):
    """PyPI fastmcp through tests/peers/py_peer.py: its JWTIssuer (Python layout) and derive_jwt_key."""

    def run(self, ops):
        adapted = []
        for op in ops:
            op = dict(op)
            if op["op"] == "issue":
                op.setdefault("jti", "peer-jti-" + base64.urlsafe_b64encode(os.urandom(9)).decode())
                op.setdefault("expiresIn", 3600 if not op.get("refresh") else 2592000)
                if op.get("claims"):
                    op["extraClaims"] = op.pop("claims")
            adapted.append(op)
        out = []
        for op, r in zip(ops, super().run(adapted)):
            if op["op"] == "verify" and not r["valid"]:
                text = r.get("error", "").lower()
                reason = ("token_expired" if "expired" in text else "invalid_signature" if "signature" in text
                          else "invalid_issuer" if "iss" in text else "invalid_audience" if "aud" in text
                          else "other")
                r = {"valid": False, "claims": None, "reason": reason}
            out.append(r)
        return out


class CAgent:
    """The C face: tests/conformance/agents/agent.c, one process per operation."""

    def __init__(self, exe):
        self.exe = exe

    def one(self, *args):
        p = subprocess.run([str(self.exe), *map(str, args)], capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise RuntimeError(f"C agent {args[0]}: {p.stderr}")
        return json.loads(p.stdout)

    def run(self, ops):
        return [self.op(op) for op in ops]

    def op(self, op):
        kind, now = op["op"], str(op["now"]) if op.get("now") is not None else "-"
        if kind == "issue":
            opts = {k: v for k, v in (("jti", op.get("jti")), ("expires_in", op.get("expiresIn")),
                                      ("extra_claims", op.get("claims"))) if v is not None}
            return self.one("issue", op.get("layout", "ts"), op["issuer"], op["audience"], op["key"],
                            op["clientId"], json.dumps(op["scopes"]), json.dumps(opts) if opts else "-",
                            "1" if op.get("refresh") else "0", now)
        if kind == "verify":
            r = self.one("verify", op.get("layout", "ts"), op["issuer"], op["audience"], op["key"], op["token"],
                         op.get("expected", "access"), now)
            return {"valid": r.get("valid", False), "claims": r.get("claims"), "reason": r.get("error")}
        if kind == "deriveKey":
            return self.one("derive-key", op["secret"], op["iterations"])
        if kind == "deriveJwtKey":
            return self.one("derive-jwt-key", op["mode"], op["material"], op["salt"])
        if kind == "challenge":
            return self.one("challenge", op["verifier"], op.get("method", "S256"))
        if kind == "encrypt":
            return self.one("encrypt", op["key"], json.dumps(op["value"]))
        if kind == "decrypt":
            return self.one("decrypt", op["key"], json.dumps(op["stored"]))
        if kind == "diskWrite":
            for e in op["entries"]:
                if "\0" in e["key"]:
                    return {"error": "not_representable_in_c"}
                r = self.one("disk-write", op["dir"], e["key"], json.dumps(e["value"]),
                             int((e.get("ttl") or 0) * 1000))
                if r is not True:
                    return r
            return True
        if kind == "diskRead":
            if any("\0" in k for k in op["keys"]):
                return {"error": "not_representable_in_c"}
            return [self.one("disk-read", op["dir"], k) for k in op["keys"]]
        if kind == "proxyAuthorize":
            r = self.one("proxy-authorize", json.dumps(op["config"]), op["query"])
            return r if "status" in r and "error" not in r else {
                "error": r.get("error"), "error_description": r.get("error_description"), "status": r.get("status")}
        raise ValueError(kind)


def build_faces():
    OUT.mkdir(parents=True, exist_ok=True)
    exe = OUT / "c-agent"
    lib = ROOT / "target" / "debug"
    # The agent records the library's SONAME (libfastmcp_auth.so.<major>): the link an install makes, made here.
    soname = OUT / "libfastmcp_auth.so.0"
    if soname.is_symlink() or soname.exists():
        soname.unlink()
    soname.symlink_to(lib / "libfastmcp_auth.so")
    cc = ["gcc", "-Wall", "-Wextra", "-Werror", "-I", str(ROOT / "include"), str(HERE / "agents" / "agent.c"),
          "-L", str(lib), "-lfastmcp_auth", f"-Wl,-rpath,{OUT}", "-o", str(exe)]
    subprocess.run(cc, check=True)
    return {
        "rust": Batch([str(ROOT / "target" / "debug" / "examples" / "conformance_agent")]),
        "c": CAgent(exe),
        "python": Batch([sys.executable, str(HERE / "agents" / "python_agent.py")]),
        "node": Batch(["node", str(HERE / "agents" / "node.mjs")]),
        "fastmcp-ts": PeerTs(["node", str(ROOT / "tests" / "peers" / "ts_peer.mjs"), str(ROOT / ".peers" / "node")]),
        "fastmcp-py": PeerPy([sys.executable, str(ROOT / "tests" / "peers" / "py_peer.py")]),
    }


# ---- vectors ----------------------------------------------------------------------------------------------------

CFG = {"issuer": "https://mcp.example.com", "audience": "https://mcp.example.com/mcp", "key": "conformance-key"}


def b64(obj):
    return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).rstrip(b"=").decode()


def signed(header_b64, claims, raw_tail=""):
    """An HS256 token under CFG's key whose payload is `claims` plus raw JSON text (what json.dumps cannot write)."""
    text = json.dumps(claims, separators=(",", ":"))[:-1] + raw_tail + "}"
    payload = base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()
    mac = hmac.new(CFG["key"].encode(), f"{header_b64}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header_b64}.{payload}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def generate(rust):
    """Hostile vectors, made with the Rust face at a fixed time (deterministic: fixed jti)."""
    def tok(layout, **kw):
        op = {"op": "issue", "layout": layout, **CFG, "clientId": "client-1", "scopes": ["read"], "jti": "j-1",
              "now": NOW, **kw}
        return op

    ops = [tok("ts"), tok("ts", now=NOW - 7200, expiresIn=3600), tok("ts", key="another-key"),
           tok("ts", issuer="https://evil.example.com"), tok("ts", audience="https://other.example.com"),
           tok("py", refresh=True), tok("py")]
    good, expired, wrong_key, wrong_iss, wrong_aud, py_refresh, py_access = rust.run(ops)
    h, p, s = good.split(".")
    jwt = [
        ("malformed", "ts", "not-a-jwt", "access", "malformed_token"),
        ("two_parts", "ts", f"{h}.{p}", "access", "malformed_token"),
        ("truncated", "ts", good[:-10], "access", "invalid_signature"),
        ("alg_none", "ts", f"{b64({'alg': 'none', 'typ': 'JWT'})}.{p}.", "access", "unsupported_algorithm"),
        ("rs256_header", "ts", f"{b64({'alg': 'RS256', 'typ': 'JWT'})}.{p}.{s}", "access", "unsupported_algorithm"),
        ("expired", "ts", expired, "access", "token_expired"),
        ("wrong_key", "ts", wrong_key, "access", "invalid_signature"),
        ("wrong_issuer", "ts", wrong_iss, "access", "invalid_issuer"),
        ("wrong_audience", "ts", wrong_aud, "access", "invalid_audience"),
        ("refresh_as_access", "py", py_refresh, "access", "wrong_token_use"),
        ("access_as_refresh", "py", py_access, "refresh", "wrong_token_use"),
        ("over_size_limit", "ts", f"{h}.{'A' * 20000}.{s}", "access", "token_too_large"),
        # Correctly signed, but a claim nobody checks holds a number out of f64 range: one verdict on every face.
        ("out_of_range_number", "ts", signed(h, {"aud": CFG["audience"], "client_id": "client-1", "exp": NOW + 3600,
                                                 "iat": NOW, "iss": CFG["issuer"], "jti": "j-1", "scope": ["read"]},
                                             ',"x":1e400'), "access", "malformed_token"),
    ]
    [stored] = rust.run([{"op": "encrypt", "key": "enc-key", "value": {"secret": "s3cret"}}])
    iv, tag, ct = stored.split(":")
    flipped = ct[:-1] + ("1" if ct[-1] == "0" else "0")
    encrypted = [
        ("truncated", "enc-key", f"{iv}:{tag}"),
        ("tampered", "enc-key", f"{iv}:{tag}:{flipped}"),
        ("wrong_key", "other-key", stored),
        ("not_hex", "enc-key", "zz:zz:zz"),
        ("short_tag", "enc-key", f"{iv}:{tag[:10]}:{ct}"),
    ]
    keys = [("traversal", "../escape", "contained"), ("deep_traversal", "../../etc/passwd", "contained"),
            ("nul", "nul\0key", "contained"), ("empty", "", "invalid_key"), ("huge", "k" * 70000, "invalid_key")]
    gen = {"now": NOW, "config": CFG, "good_token": good,
           "jwt": [dict(zip(("name", "layout", "token", "expected", "reason"), j)) for j in jwt],
           "encrypted": [dict(zip(("name", "key", "stored"), e)) for e in encrypted],
           "keys": [dict(zip(("name", "key", "outcome"), k)) for k in keys]}
    (OUT / "generated.json").write_text(json.dumps(gen, indent=1, ensure_ascii=False))
    return gen


def run_vectors(face_name, face, gen):
    global passed, failed
    before = (passed, failed)
    print(f"\n[{face_name}] vector runner")
    ts = json.loads((HERE / "vectors" / "fastmcp-ts.json").read_text())
    py = json.loads((HERE / "vectors" / "fastmcp-py.json").read_text())
    ops, labels = [], []

    def add(label, op, expect):
        ops.append(op)
        labels.append((label, expect))

    for v in ts["derive_key"]:
        add(f"fastmcp-ts derive_key {v['iterations']}", {"op": "deriveKey", "secret": v["secret"],
                                                         "iterations": v["iterations"]}, ("eq", v["key"]))
    for v in ts["jwt"]:
        add(f"fastmcp-ts jwt {v['name']}", {"op": "verify", "layout": "ts", "issuer": v["issuer"],
                                            "audience": v["audience"], "key": v["signing_key"], "token": v["token"],
                                            "now": v["verify_at"]}, ("jwt", v["expect_valid"], v.get("claims")))
    for i, v in enumerate(ts["encrypted"]):
        add(f"fastmcp-ts encrypted #{i}", {"op": "decrypt", "key": v["encryption_key"], "stored": v["stored"]},
            ("eq", v["value"]))
    for v in ts["pkce"]:
        add(f"fastmcp-ts pkce {v['method']}", {"op": "challenge", "verifier": v["verifier"], "method": v["method"]},
            ("eq", v["challenge"]))
    for v in py["derive_jwt_key"]:
        add(f"fastmcp-py derive_jwt_key {v['mode']}", {"op": "deriveJwtKey", "mode": v["mode"],
                                                       "material": v["material"], "salt": v["salt"]},
            ("eq", v["key"]))
    for v in py["jwt"]:
        add(f"fastmcp-py jwt {v['name']}", {"op": "verify", "layout": "py", "issuer": v["issuer"],
                                            "audience": v["audience"], "key": v["signing_key"], "token": v["token"],
                                            "expected": v["expected_token_use"], "now": v["verify_at"]},
            ("jwt", v["expect_valid"], v.get("claims")))
    for v in gen["jwt"]:
        add(f"generated jwt {v['name']}", {"op": "verify", "layout": v["layout"], **gen["config"], "token": v["token"],
                                           "expected": v["expected"], "now": gen["now"]}, ("reason", v["reason"]))
    for v in gen["encrypted"]:
        add(f"generated encrypted {v['name']}", {"op": "decrypt", "key": v["key"], "stored": v["stored"]},
            ("error", "decrypt_failed"))
    results = face.run(ops)
    for (label, expect), r in zip(labels, results):
        if expect[0] == "eq":
            check(f"[{face_name}] {label}", r == expect[1], f"got {str(r)[:120]}")
        elif expect[0] == "jwt":
            ok = r.get("valid") == expect[1] and (not expect[1] or expect[2] is None or r.get("claims") == expect[2])
            check(f"[{face_name}] {label}", ok, f"got {str(r)[:160]}")
        elif expect[0] == "reason":
            ok = r.get("valid") is False and r.get("reason") == expect[1]
            check(f"[{face_name}] {label} -> {expect[1]}", ok, f"got {r.get('reason')}")
        elif expect[0] == "error":
            check(f"[{face_name}] {label} -> {expect[1]}", isinstance(r, dict) and r.get("error") == expect[1],
                  f"got {str(r)[:120]}")
    # DiskStore files as fastmcp wrote them, and the hostile keys and a corrupt entry.
    tmp = Path(tempfile.mkdtemp(prefix=f"conf-{face_name}-"))
    store = tmp / "store"
    store.mkdir()
    now_ms = time.time() * 1000
    for v in ts["disk_files"]:
        (store / v["file_name"]).write_text(v["content"])
    (store / "corrupt.json").write_text('{"value": {"trunc')
    keys = [v["key"] for v in ts["disk_files"]] + ["corrupt"]
    [got] = face.run([{"op": "diskRead", "dir": str(store), "keys": keys}])
    for v, g in zip(ts["disk_files"], got):
        live = json.loads(v["content"])["expiresAt"] > now_ms
        check(f"[{face_name}] fastmcp-ts disk_files {v['key']} ({'live' if live else 'expired'})",
              g == (v["value"] if live else None), f"got {g}")
    check(f"[{face_name}] generated corrupt entry file reads as absent", got[-1] is None, f"got {got[-1]}")
    for v in gen["keys"]:
        d = tmp / f"keys-{v['name']}"
        w, r = face.run([{"op": "diskWrite", "dir": str(d / "store"), "entries": [{"key": v["key"], "value": 7}]},
                         {"op": "diskRead", "dir": str(d / "store"), "keys": [v["key"]]}])
        if isinstance(w, dict) and w.get("error") == "not_representable_in_c":
            print(f"  n/a   [{face_name}] generated key {v['name']} (a C string cannot hold NUL)")
            continue
        if v["outcome"] == "contained":
            inside = sorted(p.name for p in d.iterdir()) == ["store"]
            check(f"[{face_name}] generated key {v['name']} -> contained", w is True and r == [7] and inside,
                  f"got {w} {r} {sorted(p.name for p in d.iterdir()) if d.exists() else '-'}")
        else:
            check(f"[{face_name}] generated key {v['name']} -> {v['outcome']}",
                  isinstance(w, dict) and w.get("error") == v["outcome"], f"got {str(w)[:100]}")
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"{face_name}: {passed - before[0]} passed, {failed - before[1]} failed")


# ---- the live matrix ----------------------------------------------------------------------------------------------

VALUES = {
    "client:abc": {"clientId": "abc", "redirectUris": ["http://127.0.0.1:1/cb"]},
    "mapping:jti-1": {"jti": "jti-1", "scope": ["openid", "profile"], "upstreamTokenKey": "upstream:u1"},
    "plain-key": "a string",
    "unicode:ключ": {"ü": [1, 2.5, None, True]},
}


def matrix(faces):
    cells = {f: {} for f in CAN}

    def cell(fmt, p, c, ok, why=""):
        cells[fmt][(p, c)] = "ok" if ok else f"FAIL {why}"
        check(f"[matrix] {fmt}: {p} -> {c}", ok, why)

    print("\n[matrix] live round trips, producer -> consumer")
    # JWTs, both layouts.
    claims = {"email": "user@example.com"}
    for fmt, layout in (("jwt-ts", "ts"), ("jwt-py", "py")):
        made = {}
        for p in CAN[fmt]:
            op = {"op": "issue", "layout": layout, **CFG, "clientId": f"client-{p}", "scopes": ["read", "write"]}
            made[p] = faces[p].run([op, {**op, "claims": claims}])
        for c in CAN[fmt]:
            ops = [{"op": "verify", "layout": layout, **CFG, "token": t, "expected": "access"}
                   for p in CAN[fmt] for t in made[p]]
            res = iter(faces[c].run(ops))
            for p in CAN[fmt]:
                plain, extra = next(res), next(res)
                ok = (plain.get("valid") and extra.get("valid") and plain["claims"].get("client_id") == f"client-{p}"
                      and extra["claims"].get("email") == "user@example.com")
                cell(fmt, p, c, bool(ok), f"{plain.get('reason')} {extra.get('reason')}")
    # Derived keys and PKCE: every pair agrees.
    for fmt, ops in (
        ("derive_key", [{"op": "deriveKey", "secret": "s3cret ü", "iterations": 1000},
                        {"op": "deriveKey", "secret": "another", "iterations": 100000}]),
        ("derive_jwt_key", [{"op": "deriveJwtKey", "mode": "high_entropy_material", "material": "a" * 43,
                             "salt": "fastmcp-jwt-signing-key"},
                            {"op": "deriveJwtKey", "mode": "low_entropy_material", "material": "password",
                             "salt": "salt-1"}]),
        ("pkce", [{"op": "challenge", "verifier": v, "method": m} for v in ("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
                                                                           "x" * 128) for m in ("S256", "plain")]),
    ):
        got = {f: faces[f].run(ops) for f in CAN[fmt]}
        for p in CAN[fmt]:
            for c in CAN[fmt]:
                cell(fmt, p, c, got[p] == got[c] and not any(isinstance(x, dict) for x in got[p]),
                     f"{got[p]} vs {got[c]}")
    # Encrypted values.
    values = [{"secret": "s3cret", "n": [1, 2]}, "a string", 42]
    sealed = {p: faces[p].run([{"op": "encrypt", "key": "shared-enc-key", "value": v} for v in values])
              for p in CAN["encrypted"]}
    for c in CAN["encrypted"]:
        ops = [{"op": "decrypt", "key": "shared-enc-key", "stored": s} for p in CAN["encrypted"] for s in sealed[p]]
        res = iter(faces[c].run(ops))
        for p in CAN["encrypted"]:
            got = [next(res) for _ in values]
            cell("encrypted", p, c, got == values, str(got)[:120])
    # DiskStore directories, with a TTL that has run out by the time they are read.
    tmp = Path(tempfile.mkdtemp(prefix="conf-disk-"))
    entries = [{"key": k, "value": v, "ttl": 3600} for k, v in VALUES.items()]
    entries += [{"key": "forever", "value": 42}, {"key": "short-lived", "value": "gone", "ttl": 1}]
    for p in CAN["disk"]:
        r = faces[p].run([{"op": "diskWrite", "dir": str(tmp / p), "entries": entries}])
        if r != [True]:
            print(f"  {p} could not write its directory: {r}")
    time.sleep(1.3)
    keys = [e["key"] for e in entries]
    expected = [e["value"] if e["key"] != "short-lived" else None for e in entries]
    for c in CAN["disk"]:
        res = faces[c].run([{"op": "diskRead", "dir": str(tmp / p), "keys": keys} for p in CAN["disk"]])
        for p, got in zip(CAN["disk"], res):
            cell("disk", p, c, got == expected, str(got)[:160])
    shutil.rmtree(tmp, ignore_errors=True)
    return cells


# ---- Client ID Metadata Documents -----------------------------------------------------------------------------------


def cimd_row(faces):
    """The HTTPS document host's good and hostile documents (tests/mock-idp/src/doc_host.rs) and the request-side
    refusals, authorized through each face of ours with one config: every face must give the verdict and error the
    host names, and all four the same error code. Returns [(case, {face: "ok"|"FAIL"})]."""
    import urllib.parse

    exe = ROOT / "target" / "debug" / "mock-idp"
    proc = subprocess.Popen([str(exe), "doc-host"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    rows = []
    try:
        info = json.loads(proc.stdout.readline())
        base = info["base_url"]

        def config(private=True):
            return {"base_url": "http://127.0.0.1:8000",
                    "upstream_authorization_endpoint": "http://127.0.0.1:9/authorize",
                    "upstream_token_endpoint": "http://127.0.0.1:9/token", "upstream_client_id": "c",
                    "cimd": {"allow_private_networks_for_testing": private,
                             "extra_root_certificates_pem": [info["ca_pem"]], "fetch_timeout": 2,
                             "failure_cooldown": 0}}

        def query(name, redirect="http://127.0.0.1:41234/callback"):
            return urllib.parse.urlencode({"client_id": f"{base}/{name}", "redirect_uri": redirect,
                                           "response_type": "code", "state": "s",
                                           "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                                           "code_challenge_method": "S256"})

        cases = [(f"accepted: {n}", config(), query(n), None) for n in info["good"]]
        cases += [(f"refused: {n}", config(), query(n), frag) for n, frag in info["hostile"]]
        cases += [("refused: redirect URI not in the document", config(),
                   query("good.json", "https://attacker.example/cb"), "not registered"),
                  ("refused: loopback host without the test switch", config(False), query("good.json"),
                   "non-public address")]
        ops = [{"op": "proxyAuthorize", "config": c, "query": q} for _, c, q, _ in cases]
        results = {}
        for f in OURS:
            try:
                results[f] = faces[f].run(ops)
            except Exception as e:  # noqa: BLE001 - a face that cannot run fails its column
                check(f"[{f}] cimd runner ran", False, repr(e)[:300])
                results[f] = [{"error": "runner_failed"}] * len(ops)
        for i, (label, _, _, fragment) in enumerate(cases):
            verdict = {}
            for f in OURS:
                r = results[f][i]
                ok = (r.get("status") == 200 and "error" not in r) if fragment is None else \
                    fragment in (r.get("error_description") or "")
                verdict[f] = "ok" if check(f"[{f}] cimd {label}", ok, json.dumps(r)[:300]) else "FAIL"
            codes = {f: results[f][i].get("error") for f in OURS}
            check(f"cimd {label}: every face gives {codes['rust']}", len(set(codes.values())) == 1, str(codes))
            rows.append((label, verdict))
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)
    return rows


def write_matrix(cells, vector_summary, cimd_rows=()):
    lines = ["# Conformance matrix", "",
             "Written by `tests/conformance/run.py` (run by `scripts/test.sh`); do not edit. Rows produce, columns",
             "consume; `ok` means every check of that pair passed, `—` that the format does not apply to the face.",
             f"Faces: ours (Rust, C, Python, Node) and npm `fastmcp` (fastmcp-ts), PyPI `fastmcp` (fastmcp-py).", ""]
    titles = {"jwt-ts": "JWT, fastmcp TS claim layout (access token, and one with extra claims)",
              "jwt-py": "JWT, fastmcp Python claim layout",
              "disk": "DiskStore directory (4 keys incl. `:` and non-ASCII, one without TTL, one whose 1 s TTL ran out)",
              "encrypted": "EncryptedTokenStorage value (AES-256-GCM, scrypt key)",
              "derive_key": "deriveKey (PBKDF2-SHA256, fastmcp TS): producer and consumer compute the same keys",
              "derive_jwt_key": "derive_jwt_key (fastmcp Python): same keys",
              "pkce": "PKCE challenges (S256 and plain): same challenges"}
    faces = OURS + PEERS
    for fmt, title in titles.items():
        lines += [f"## {title}", "", "| producer \\ consumer | " + " | ".join(faces) + " |",
                  "|---|" + "---|" * len(faces)]
        for p in faces:
            row = [cells[fmt].get((p, c), "—") for c in faces]
            lines.append(f"| {p} | " + " | ".join(row) + " |")
        lines.append("")
    lines += ["## Vector runners and hostile input", "",
              "Each of our faces ran the shared vectors and the generated hostile ones (malformed, truncated, two-part,",
              "`alg: none`, RS256, expired, wrong key/issuer/audience, wrong token use, over-size tokens; truncated,",
              "tampered, short-tag, non-hex and wrong-key ciphertexts; traversal, NUL, empty and huge keys; a corrupt",
              "entry file), each rejected with the same reason by every face:", "",
              "| face | passed | failed |", "|---|---|---|"]
    lines += [f"| {f} | {p} | {n} |" for f, (p, n) in vector_summary.items()]
    lines += ["", "A C string cannot hold NUL, so the NUL-key case does not apply to the C face.", ""]
    lines += ["## Client ID Metadata Documents", "",
              "Documents served over HTTPS by the test host (its own CA, trusted through `cimd.extra_root_certificates_pem`),",
              "authorized through each face with the same config; `ok`: the verdict and error the host names, and the same",
              "error code from every face. The fastmcp packages are not in this row: both refuse a loopback host outright.", "",
              "| case | " + " | ".join(OURS) + " |", "|---|" + "---|" * len(OURS)]
    lines += [f"| {label} | " + " | ".join(v[f] for f in OURS) + " |" for label, v in cimd_rows]
    lines.append("")
    (HERE / "MATRIX.md").write_text("\n".join(lines))


def main():
    faces = build_faces()
    gen = generate(faces["rust"])
    summary = {}
    for f in OURS:
        b = (passed, failed)
        try:
            run_vectors(f, faces[f], gen)
        except Exception as e:  # noqa: BLE001 - a face that cannot run fails its row, the rest still runs
            check(f"[{f}] vector runner ran", False, repr(e)[:300])
        summary[f] = (passed - b[0], failed - b[1])
    cells = matrix(faces)
    cimd_rows = cimd_row(faces)
    write_matrix(cells, summary, cimd_rows)
    print("\nMATRIX.md written" + (f"; failing: {', '.join(failures)}" if failures else ""))
    print(f"conformance: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
