"""The Python face (fastmcp_auth, bindings/python) in the conformance suite: a JSON array of operations on stdin, a
JSON array of results on stdout (protocol: tests/conformance/README.md)."""
import json
import sys

import fastmcp_auth as fa


def issuer(op):
    return fa.JWTIssuer(op["issuer"], op["audience"], op["key"].encode(), layout=op.get("layout", "ts"),
                        fixed_time=op.get("now"))


def run(op):
    kind = op["op"]
    if kind == "issue":
        i = issuer(op)
        jti = op.get("jti") or fa.generate_verifier(43)[:22]
        if op.get("refresh"):
            return i.issue_refresh_token(op["clientId"], op["scopes"], jti, op.get("expiresIn") or 2592000)
        return i.issue_access_token(op["clientId"], op["scopes"], jti, op.get("expiresIn") or 3600,
                                    extra_claims=op.get("claims"))
    if kind == "verify":
        v = issuer(op).verify(op["token"], op.get("expected", "access"))
        return {"valid": v["valid"], "reason": v.get("error"), "claims": v.get("claims")}
    if kind == "deriveKey":
        return fa.derive_key(op["secret"], op["iterations"])
    if kind == "deriveJwtKey":
        return fa.derive_jwt_key(**{op["mode"]: op["material"]}, salt=op["salt"]).decode()
    if kind == "challenge":
        return fa.generate_challenge(op["verifier"], op.get("method", "S256"))
    if kind == "encrypt":
        mem = fa.MemoryStore(cleanup_interval=0)
        fa.EncryptedStore(mem, op["key"]).save("k", op["value"])
        return mem.get("k")
    if kind == "decrypt":
        mem = fa.MemoryStore(cleanup_interval=0)
        mem.save("k", op["stored"])
        v = fa.EncryptedStore(mem, op["key"]).get("k")
        return {"error": "decrypt_failed"} if v is None else v
    if kind == "diskWrite":
        d = fa.DiskStore(op["dir"], cleanup_interval=0)
        for e in op["entries"]:
            d.save(e["key"], e["value"], e.get("ttl"))
        d.close()
        return True
    if kind == "diskRead":
        d = fa.DiskStore(op["dir"], cleanup_interval=0)
        out = [d.get(k) for k in op["keys"]]
        d.close()
        return out
    if kind == "proxyAuthorize":
        p = fa.OAuthProxy(op["config"])
        try:
            return {"status": p.authorize(op["query"])["status"]}
        except fa.OAuthProxyError as e:
            return {"error": e.code, "error_description": e.description, "status": e.status_code}
        finally:
            p.close()
    raise ValueError(f"unknown op {kind}")


def main():
    out = []
    for op in json.load(sys.stdin):
        try:
            out.append(run(op))
        except Exception as e:  # noqa: BLE001 - every failure becomes a result the suite compares
            out.append({"error": getattr(e, "code", type(e).__name__)})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
