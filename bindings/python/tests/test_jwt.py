"""Drop-in for fastmcp Python's JWTIssuer and derive_jwt_key, checked live against the installed fastmcp."""

import json
from pathlib import Path

import pytest
from fastmcp.server.auth import jwt_issuer as theirs
from joserfc.errors import JoseError

import fastmcp_auth as fa

VECTORS = json.loads((Path(__file__).resolve().parents[3] / "tests/conformance/vectors/fastmcp-py.json").read_text())
KEY = b"live-signing-key-0123456789abcdef"


def pair():
    return fa.JWTIssuer("https://i", "https://i/mcp", KEY), theirs.JWTIssuer("https://i", "https://i/mcp", KEY)


def test_same_signatures_and_claims_both_ways():
    ours, peer = pair()
    up = {"email": "u@x", "groups": ["a"]}
    for issuer, verifier in [(ours, peer), (peer, ours)]:
        t = issuer.issue_access_token("c1", ["read", "write"], "j1", expires_in=600, upstream_claims=up, subject="s")
        claims = verifier.verify_token(t)
        assert claims["scope"] == "read write" and claims["upstream_claims"] == up and claims["sub"] == "s"
        r = issuer.issue_refresh_token("c1", ["read"], "j2", 3600)
        assert verifier.verify_token(r, expected_token_use="refresh")["token_use"] == "refresh"
        with pytest.raises(JoseError):
            verifier.verify_token(r)


def test_byte_identical_tokens_in_the_same_second():
    ours, peer = pair()
    for _ in range(3):
        a = ours.issue_access_token("c", ["x"], "same-jti", extra_claims={"k": 1})
        b = peer.issue_access_token("c", ["x"], "same-jti", extra_claims={"k": 1})
        if json.loads(fa_b64(a))["iat"] == json.loads(fa_b64(b))["iat"]:
            assert a == b
            return
    pytest.skip("the second changed three times in a row")


def fa_b64(token):
    import base64

    p = token.split(".")[1]
    return base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))


def test_rejections_raise_jose_error_with_a_code():
    ours, _ = pair()
    other = fa.JWTIssuer("https://i", "https://i/mcp", b"other")
    t = other.issue_access_token("c", [], "j")
    for bad in [t, "a.b", "x" * 20000, t.replace(".", "", 1)]:
        with pytest.raises(JoseError) as e:
            ours.verify_token(bad)
        assert isinstance(e.value, fa.InvalidTokenError) and e.value.code == "invalid_token"
    expired = ours.issue_access_token("c", [], "j", expires_in=0)
    import time

    time.sleep(1.1)
    with pytest.raises(fa.InvalidTokenError) as e:
        ours.verify_token(expired)
    assert e.value.code == "token_expired"


def test_vectors():
    for v in VECTORS["derive_jwt_key"]:
        got = fa.derive_jwt_key(**{v["mode"]: v["material"]}, salt=v["salt"])
        assert got == v["key"].encode()
    assert fa.derive_jwt_key(high_entropy_material="m", salt="s") == theirs.derive_jwt_key(high_entropy_material="m", salt="s")
    with pytest.raises(ValueError):
        fa.derive_jwt_key(high_entropy_material="a", low_entropy_material="b", salt="s")
    with pytest.raises(ValueError):
        fa.derive_jwt_key(salt="s")


def test_keys_and_pkce():
    assert fa.derive_key("secret", 1000) == "0azCaDgbB1X8gNjWeeez+OLi4U5cuHqOwkjmubrpHOE="
    v = fa.generate_verifier(64)
    assert len(v) == 64
    c = fa.generate_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
    assert c == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert fa.validate_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", c, "S256")
    assert not fa.validate_challenge(v, c, "S256")
    with pytest.raises(fa.InvalidArgumentError):
        fa.generate_verifier(10)
