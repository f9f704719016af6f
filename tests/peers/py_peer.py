"""Drives PyPI `fastmcp` (fastmcp.server.auth.jwt_issuer) for live compatibility checks.

Reads a JSON array of operations on stdin, prints a JSON array of results. Used by core/tests/peers.rs.
"""
import json
import sys

from fastmcp.server.auth.jwt_issuer import JWTIssuer, derive_jwt_key
from joserfc.errors import JoseError


def main() -> None:
    out = []
    for op in json.load(sys.stdin):
        kind = op["op"]
        if kind == "issue":
            i = JWTIssuer(op["issuer"], op["audience"], op["key"].encode())
            if op.get("refresh"):
                out.append(i.issue_refresh_token(op["clientId"], op["scopes"], op["jti"], op["expiresIn"],
                                                 upstream_claims=op.get("upstreamClaims")))
            else:
                out.append(i.issue_access_token(op["clientId"], op["scopes"], op["jti"], op.get("expiresIn", 3600),
                                                upstream_claims=op.get("upstreamClaims"),
                                                subject=op.get("subject"), extra_claims=op.get("extraClaims")))
        elif kind == "verify":
            i = JWTIssuer(op["issuer"], op["audience"], op["key"].encode())
            try:
                out.append({"valid": True, "claims": i.verify_token(op["token"], op.get("expected", "access"))})
            except JoseError as e:
                out.append({"valid": False, "error": str(e)})
        elif kind == "deriveJwtKey":
            out.append(derive_jwt_key(**{op["mode"]: op["material"]}, salt=op["salt"]).decode())
        else:
            raise ValueError(f"unknown op {kind}")
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
