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


def _signed(payload: bytes, key=KEY):
    """A token over `payload` exactly as given, signed with `key` (the peers' fixed header)."""
    import base64
    import hashlib
    import hmac

    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    head = b64(b'{"typ":"JWT","alg":"HS256"}') + "." + b64(payload)
    return head + "." + b64(hmac.new(key, head.encode(), hashlib.sha256).digest())


_OK = b'"iss":"https://i","aud":"https://i/mcp","exp":99999999999'
HOSTILE_PAYLOADS = [
    ("plain", b"{" + _OK + b',"client_id":"c","scope":"a b","jti":"j"}'),
    ("duplicate iss", b"{" + _OK + b',"iss":"https://i"}'),
    ("duplicate iss, escaped", b"{" + _OK + b',"\\u0069ss":"https://evil"}'),
    ("duplicate unchecked claim", b"{" + _OK + b',"email":"a","email":"b"}'),
    ("duplicate inside a nested object", b"{" + _OK + b',"upstream_claims":{"a":1,"a":2,"b":[{"c":1,"c":3}]}}'),
    ("array", b"[1,2]"),
    ("string", b'"x"'),
    ("null", b"null"),
    ("empty", b""),
    ("trailing garbage", b"{" + _OK + b"} x"),
    ("two objects", b"{" + _OK + b"}{}"),
    ("trailing whitespace", b"{" + _OK + b"} \n"),
    ("nested 200 deep", b"{" + _OK + b',"n":' + b"[" * 200 + b"]" * 200 + b"}"),
    ("nested 100 deep", b"{" + _OK + b',"n":' + b"[" * 100 + b"]" * 100 + b"}"),
    ("number out of range", b"{" + _OK + b',"n":1e400}'),
    ("big and small integers", b"{" + _OK + b',"a":18446744073709551615,"b":-9223372036854775808,"c":18446744073709551616,'
     b'"d":-0.0,"e":1.5e3,"f":0}'),
    ("exp as text", b'{"iss":"https://i","aud":"https://i/mcp","exp":"99999999999"}'),
    ("exp missing", b'{"iss":"https://i","aud":"https://i/mcp"}'),
    ("exp as float", b'{"iss":"https://i","aud":"https://i/mcp","exp":99999999999.5}'),
    ("expired", b'{"iss":"https://i","aud":"https://i/mcp","exp":9}'),
    ("nbf in the future", b"{" + _OK + b',"nbf":99999999998}'),
    ("iss as number", b'{"iss":1,"aud":"https://i/mcp","exp":99999999999}'),
    ("iss escaped, same text", b'{"\\u0069ss":"https:\\/\\/i","aud":"https://i/mcp","exp":99999999999}'),
    ("aud as list", b'{"iss":"https://i","aud":["https://i/mcp"],"exp":99999999999}'),
    ("refresh token as access", b"{" + _OK + b',"token_use":"refresh"}'),
    ("token_use as number", b"{" + _OK + b',"token_use":1}'),
    ("lone surrogate", b"{" + _OK + b',"s":"\\ud800"}'),
    ("escapes and non-ASCII", b"{" + _OK + b',"s":"\\u0000\\n\\"\xc3\xa9\xf0\x9f\x98\x80","\xc3\xa9":true,"z":null}'),
    ("invalid UTF-8", b"{" + _OK + b',"s":"\xff"}'),
    ("500 claims", b"{" + _OK + b"".join(b',"c%d":%d' % (n, n) for n in range(500)) + b"}"),
]


@pytest.mark.parametrize("name,payload", HOSTILE_PAYLOADS, ids=[n for n, _ in HOSTILE_PAYLOADS])
def test_verify_token_reads_payloads_as_the_core_does(name, payload):
    """verify_token reads the payload straight into Python objects; verify() goes through the core's own parse.
    Both must accept the same payloads, give the same claims in the same order, and refuse with the same reason."""
    ours, _ = pair()
    t = _signed(payload)
    detailed = ours.verify(t)
    if detailed["valid"]:
        claims = ours.verify_token(t)
        assert list(claims.items()) == list(detailed["claims"].items())
        assert json.dumps(claims) == json.dumps(detailed["claims"])
    else:
        with pytest.raises(fa.InvalidTokenError) as e:
            ours.verify_token(t)
        assert str(e.value).endswith(detailed["message"])
        assert e.value.code == ("token_expired" if detailed["error"] == "token_expired" else "invalid_token")
    # A payload under another key is refused on its signature, whatever it holds.
    with pytest.raises(fa.InvalidTokenError) as e:
        ours.verify_token(_signed(payload, b"another key"))
    assert "signature" in str(e.value).lower()


def test_hostile_payload_verdicts():
    """The verdicts the table above must reach, so that agreement is not agreement on a wrong answer."""
    ours, _ = pair()
    verdict = {n: ours.verify(_signed(p)).get("error") for n, p in HOSTILE_PAYLOADS}
    for n in ["plain", "duplicate inside a nested object", "trailing whitespace", "nested 100 deep",
              "big and small integers", "exp as float", "iss escaped, same text", "escapes and non-ASCII", "500 claims"]:
        assert verdict[n] is None, n
    for n in ["duplicate iss", "duplicate iss, escaped", "duplicate unchecked claim", "array", "string", "null", "empty",
              "trailing garbage", "two objects", "nested 200 deep", "number out of range", "lone surrogate",
              "invalid UTF-8"]:
        assert verdict[n] == "malformed_token", n
    assert verdict["exp as text"] == verdict["exp missing"] == "missing_expiry"
    assert verdict["expired"] == "token_expired"
    assert verdict["nbf in the future"] == "token_not_yet_valid"
    assert verdict["iss as number"] == "invalid_issuer"
    assert verdict["aud as list"] == "invalid_audience"
    assert verdict["refresh token as access"] == verdict["token_use as number"] == "wrong_token_use"
    claims = ours.verify_token(_signed(HOSTILE_PAYLOADS[4][1]))
    assert claims["upstream_claims"] == {"a": 2, "b": [{"c": 3}]}
    big = ours.verify_token(_signed(HOSTILE_PAYLOADS[15][1]))
    assert (big["a"], big["b"], big["c"], big["e"]) == (2**64 - 1, -(2**63), 2.0**64, 1500.0)
    assert type(big["f"]) is int and type(big["e"]) is float
