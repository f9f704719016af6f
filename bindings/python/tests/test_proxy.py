"""The OAuth proxy from Python: the whole flow against the loopback mock identity provider."""

import http.client
import http.cookies
import urllib.parse

import pytest

import fastmcp_auth as fa

REDIRECT = "http://127.0.0.1:33418/cb"


def browser(url):
    """GET the upstream authorize URL without following the redirect; return the Location."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.request("GET", f"{u.path}?{u.query}")
    r = conn.getresponse()
    assert r.status == 302
    return r.getheader("Location")


def location(resp):
    return dict((k.lower(), v) for k, v in resp["headers"])["location"]


def jar(resp):
    """The Cookie header a browser sends back after this response's Set-Cookie headers."""
    cookies = http.cookies.SimpleCookie()
    for k, v in resp["headers"]:
        if k.lower() == "set-cookie":
            cookies.load(v)
    return "; ".join(f"{m.key}={m.value}" for m in cookies.values()) or None


def hidden(page, name):
    return page["body"].split(f'name="{name}" value="')[1].split('"')[0]


def make_proxy(idp, tmp_path, **extra):
    config = {
        "base_url": "http://127.0.0.1:8000",
        "upstream_authorization_endpoint": f"{idp}/authorize",
        "upstream_token_endpoint": f"{idp}/token",
        "upstream_client_id": "upstream-client",
        "upstream_client_secret": "upstream secret+/=",
        "jwt_signing_key": "py-jwt-key",
        "encryption_key": "py-enc-key",
        **extra,
    }
    return fa.OAuthProxy(config, storage=fa.DiskStore(tmp_path / "oauth"))


def login(p):
    """Register, authorize, consent, upstream login, callback; returns (client id, secret, token request form)."""
    reg = p.register_client({"redirect_uris": [REDIRECT], "client_name": "py"})
    cid, secret = reg["client_id"], reg["client_secret"]
    verifier = fa.generate_verifier(64)
    q = urllib.parse.urlencode({
        "client_id": cid, "redirect_uri": REDIRECT, "response_type": "code", "state": "s1",
        "code_challenge": fa.generate_challenge(verifier), "code_challenge_method": "S256",
    })
    page = p.authorize(q)
    assert page["status"] == 200
    cookie = jar(page)
    consent = {"transaction_id": hidden(page, "transaction_id"), "csrf_token": hidden(page, "csrf_token"), "action": "approve"}
    up = p.handle_consent(urllib.parse.urlencode(consent).encode(), cookie)
    callback = browser(location(up))
    back = p.handle_callback(urllib.parse.urlsplit(callback).query, cookie)
    params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location(back)).query))
    assert params["state"] == "s1"
    form = urllib.parse.urlencode({
        "grant_type": "authorization_code", "code": params["code"], "code_verifier": verifier,
        "client_id": cid, "client_secret": secret,
    }).encode()
    return cid, secret, form


def test_whole_flow_and_restart(idp, tmp_path):
    p = make_proxy(idp, tmp_path)
    cid, secret, form = login(p)
    tokens = p.token(form)
    assert tokens["token_type"] == "Bearer"
    assert p.load_upstream_tokens(tokens["access_token"])["accessToken"].startswith("up-at-")
    refreshed = p.exchange_refresh_token(urllib.parse.urlencode({
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
        "client_id": cid, "client_secret": secret,
    }).encode())
    assert refreshed["refresh_token"] != tokens["refresh_token"]
    p.close()
    again = make_proxy(idp, tmp_path)
    assert again.load_upstream_tokens(refreshed["access_token"]) is not None
    assert again.authorization_server_metadata()["issuer"] == "http://127.0.0.1:8000"
    # A code presented twice: refused, and the grant it yielded is revoked (RFC 6749 §4.1.2).
    form = login(again)[2]
    tokens = again.token(form)
    with pytest.raises(fa.OAuthProxyError) as e:
        again.exchange_authorization_code(form)
    assert e.value.code == "invalid_grant" and e.value.status_code == 400
    assert e.value.to_dict()["error_description"] == "Authorization code already used"
    assert again.load_upstream_tokens(tokens["access_token"]) is None


def test_errors(idp, tmp_path):
    with pytest.raises(fa.InvalidArgumentError):
        fa.OAuthProxy({"base_url": "x"})
    p = make_proxy(idp, tmp_path)
    with pytest.raises(fa.OAuthProxyError) as e:
        p.register_client({"redirect_uris": ["https://evil.example/cb"]})
    assert e.value.code == "invalid_redirect_uri"
    with pytest.raises(fa.OAuthProxyError) as e:
        p.token(b"grant_type=password")
    assert e.value.code == "unsupported_grant_type"
    with pytest.raises(fa.OAuthProxyError) as e:
        p.authorize("client_id=" + "a" * 10000)
    assert e.value.code == "invalid_request"


def test_upstream_claims_pass_through_when_configured(claims_idp, tmp_path):
    import base64
    import json

    def claims(token):
        part = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))

    p = make_proxy(claims_idp, tmp_path, custom_claims_passthrough={"claim_prefix": "up_", "blocked_claims": ["sub"]})
    tokens = p.token(login(p)[2])
    c = claims(tokens["access_token"])
    assert c["up_email"] == "ada@example.com" and c["up_name"] == "Ada"
    assert "up_sub" not in c and c["iss"] == "http://127.0.0.1:8000"
    p.close()
    off = make_proxy(claims_idp, tmp_path / "off")
    assert not any(k.startswith("up_") or k == "email" for k in claims(off.token(login(off)[2])["access_token"]))
    with pytest.raises(fa.InvalidArgumentError):
        make_proxy(claims_idp, tmp_path / "bad", custom_claims_passthrough={"claimPrefix": "x"})


def test_consent_is_bound_to_the_browser(idp, tmp_path):
    """The attacks of the consent confused deputy: a forwarded upstream login link, a forged consent POST."""
    p = make_proxy(idp, tmp_path)
    reg = p.register_client({"redirect_uris": [REDIRECT]})
    q = urllib.parse.urlencode({
        "client_id": reg["client_id"], "redirect_uri": REDIRECT, "response_type": "code", "state": "s",
        "code_challenge": fa.generate_challenge(fa.generate_verifier(64)), "code_challenge_method": "S256",
    })
    page = p.authorize(q)
    attacker = jar(page)
    assert attacker.startswith("fastmcp_auth_browser=")
    set_cookie = [v for k, v in page["headers"] if k == "Set-Cookie"][0]
    assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie and "Path=/" in set_cookie
    tx, csrf = hidden(page, "transaction_id"), hidden(page, "csrf_token")
    # The attacker's own form fields posted from the victim's browser: no token, or another browser's cookie.
    for form, cookie in [
        ({"transaction_id": tx, "action": "approve"}, attacker),
        ({"transaction_id": tx, "action": "approve", "csrf_token": csrf}, None),
        ({"transaction_id": tx, "action": "approve", "csrf_token": csrf}, "fastmcp_auth_browser=" + "B" * 43),
    ]:
        r = p.handle_consent(urllib.parse.urlencode(form).encode(), cookie)
        assert r["status"] == 403 and r["body"].startswith("<!DOCTYPE html>")
        assert "location" not in dict((k.lower(), v) for k, v in r["headers"])
    # The attacker approves in his own browser and forwards the upstream login link to a victim.
    up = p.handle_consent(urllib.parse.urlencode({"transaction_id": tx, "action": "approve", "csrf_token": csrf}).encode(), attacker)
    callback = browser(location(up))
    victim = p.handle_callback(urllib.parse.urlsplit(callback).query, None)
    assert victim["status"] == 403 and "mismatch" in victim["body"]
    # The transaction is dead: even the attacker's own browser gets nothing now.
    with pytest.raises(fa.OAuthProxyError):
        p.handle_callback(urllib.parse.urlsplit(callback).query, attacker)
    p.close()


@pytest.mark.parametrize("uri", [
    "https://attacker.example/.example.com/cb",
    "https://attacker.example?.example.com/cb",
    "https://app.example.com@attacker.example/",
    "https://attacker.example\\@app.example.com/",
    "https://app.example.com/cb\r\nSet-Cookie: x=y",
    "https://app.example.com/cb#frag",
    "http://app.example.com/cb",
    "http://127.0.0.1.attacker.example/cb",
])
def test_redirect_policy_is_matched_by_component(idp, tmp_path, uri):
    p = make_proxy(idp, tmp_path, allowed_redirect_uri_patterns=["https://*.example.com/*", "http://127.0.0.1:*"])
    with pytest.raises(fa.OAuthProxyError) as e:
        p.register_client({"redirect_uris": [uri]})
    assert e.value.code == "invalid_redirect_uri"
    assert p.register_client({"redirect_uris": ["https://APP.example.com./cb"]})["client_id"]
    p.close()


def test_malformed_redirect_pattern_is_a_config_error(idp, tmp_path):
    with pytest.raises(ValueError, match=r"https://a\*b.example.com/"):
        make_proxy(idp, tmp_path, allowed_redirect_uri_patterns=["https://a*b.example.com/"])


def test_deep_or_circular_values_are_value_errors(idp, tmp_path):
    """A 3 KB body nested 1,420 deep (json.loads on Python 3.12+ accepts it) must not crash the interpreter."""
    p = make_proxy(idp, tmp_path)
    deep = []
    for _ in range(1420):
        deep = [deep]
    with pytest.raises(ValueError, match="deeper"):
        p.register_client({"redirect_uris": [REDIRECT], "client_name": deep})
    cyclic = {"redirect_uris": [REDIRECT]}
    cyclic["self"] = cyclic
    with pytest.raises(ValueError):
        p.register_client(cyclic)
    store = fa.MemoryStore()
    with pytest.raises(ValueError):
        store.save("k", cyclic)
    p.close()


def test_bearer_check_and_protected_resource_metadata(idp, tmp_path):
    """RFC 6750 §3 / RFC 9728 §5.1: the answers an MCP server sends, built by the core."""
    p = make_proxy(idp, tmp_path, scopes=["openid", "offline_access"])
    resource = "http://127.0.0.1:8000/mcp"
    meta = p.protected_resource_metadata(resource)
    assert meta["authorization_servers"] == ["http://127.0.0.1:8000"] and meta["scopes_supported"] == ["openid"]
    r = p.check_bearer(None, resource)
    assert r["authorized"] is False and r["response"]["status"] == 401
    www = dict(r["response"]["headers"])["WWW-Authenticate"]
    assert www == 'Bearer resource_metadata="http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp"'
    assert p.check_bearer("Bearer forged", resource)["response"]["status"] == 401
    cid, secret, form = login(p)
    tokens = p.token(form)
    ok = p.check_bearer("Bearer " + tokens["access_token"], resource, ["openid"])
    assert ok["authorized"] is True and ok["upstream"]["accessToken"].startswith("up-at-")
    assert ok["claims"]["client_id"] == cid
    denied = p.check_bearer("Bearer " + tokens["access_token"], resource, ["admin"])
    assert denied["response"]["status"] == 403
    assert 'error="insufficient_scope"' in dict(denied["response"]["headers"])["WWW-Authenticate"]
    p.close()


@pytest.mark.parametrize("resource, scope", [
    ("/mcp", None), ("http://127.0.0.1:8000/mcp#x", None), ("https://attacker.example/mcp", None),
    (None, " ".join(f"s{i}" for i in range(150))), (None, 'a"b'),
])
def test_bad_resource_or_scope_goes_back_to_the_client(idp, tmp_path, resource, scope):
    p = make_proxy(idp, tmp_path)
    reg = p.register_client({"redirect_uris": [REDIRECT]})
    q = {"client_id": reg["client_id"], "redirect_uri": "http://127.0.0.1:51004/cb", "response_type": "code",
         "state": "s", "code_challenge": fa.generate_challenge(fa.generate_verifier(64)), "code_challenge_method": "S256"}
    if resource:
        q["resource"] = resource
    if scope:
        q["scope"] = scope
    r = p.authorize(urllib.parse.urlencode(q))
    assert r["status"] == 302
    back = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location(r)).query))
    assert location(r).startswith("http://127.0.0.1:51004/cb?"), "the loopback port rule applies to errors too"
    assert back["error"] == ("invalid_target" if resource else "invalid_scope")
    assert back["state"] == "s" and back["iss"] == "http://127.0.0.1:8000"
    p.close()


def test_ten_thousand_scopes_are_refused_before_anything_is_stored(idp, tmp_path):
    p = make_proxy(idp, tmp_path)
    reg = p.register_client({"redirect_uris": [REDIRECT]})
    q = urllib.parse.urlencode({"client_id": reg["client_id"], "redirect_uri": REDIRECT, "response_type": "code",
                                "scope": "s " * 10_000})
    with pytest.raises(fa.OAuthProxyError) as e:
        p.authorize(q)
    assert e.value.code == "invalid_request" and "too large" in e.value.description
    p.close()


def test_a_panic_inside_the_library_is_a_normal_exception():
    """pyo3 would raise PanicException, a BaseException that `except Exception` misses."""
    from fastmcp_auth import _native
    with pytest.raises(fa.FastMCPAuthError) as e:
        _native._test_panic()
    assert isinstance(e.value, Exception)


@pytest.mark.parametrize("value", [1.8e19, 1e300, float("inf"), -1.0])
def test_durations_beyond_range_are_value_errors(tmp_path, value):
    store = fa.MemoryStore()
    with pytest.raises(ValueError):
        store.save("k", {"v": 1}, ttl=value)
    with pytest.raises(ValueError):
        fa.MemoryStore(cleanup_interval=value)
    with pytest.raises(ValueError):
        fa.DiskStore(tmp_path / "d", cleanup_interval=value)


def test_closing_the_proxy_leaves_the_callers_store_open(idp, tmp_path):
    """One rule on every face: what you passed in stays yours."""
    store = fa.DiskStore(tmp_path / "mine")
    p = fa.OAuthProxy({
        "base_url": "http://127.0.0.1:8000", "upstream_authorization_endpoint": f"{idp}/authorize",
        "upstream_token_endpoint": f"{idp}/token", "upstream_client_id": "c", "upstream_client_secret": "s",
        "encryption_key": "k", "jwt_signing_key": "j"}, storage=store)
    p.close()
    store.save("still", {"open": True})
    assert store.get("still") == {"open": True}
    enc = fa.EncryptedStore(store, "k")
    enc.close()
    assert store.get("still") == {"open": True}
    store.close()


def test_rate_limits_answer_429_with_retry_after(idp, tmp_path):
    p = make_proxy(idp, tmp_path, rate_limits={"register": {"per_minute": 60, "burst": 3}, "failure_cost": 5,
                                               "token": {"per_minute": 60, "burst": 10}})
    reg = {"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}
    for _ in range(3):
        p.register_client(reg, remote_addr="198.51.100.7")
    with pytest.raises(fa.OAuthProxyError) as e:
        p.register_client(reg, remote_addr="198.51.100.7")
    assert (e.value.code, e.value.status_code) == ("temporarily_unavailable", 429)
    assert e.value.retry_after is not None and 1 <= e.value.retry_after <= 60
    assert e.value.headers() == {"Retry-After": str(e.value.retry_after)}
    # Another address is served.
    cid = p.register_client(reg, remote_addr="203.0.113.9")["client_id"]
    guess = urllib.parse.urlencode({"grant_type": "authorization_code", "code": "guessed", "client_id": cid,
                                    "code_verifier": "v" * 43}).encode()
    codes = []
    for _ in range(4):
        try:
            p.token(guess, remote_addr="198.51.100.7")
        except fa.OAuthProxyError as err:
            codes.append((err.code, err.status_code))
    # Each refused guess costs 1 + 5 of the burst of 10: the third is refused before it is looked at.
    assert codes[:2] == [("invalid_grant", 400)] * 2 and codes[2:] == [("slow_down", 429)] * 2
    text = p.metrics_text()
    assert 'fastmcp_auth_rate_limited_total{endpoint="register"} 1' in text
    assert 'fastmcp_auth_codes_total{outcome="unknown_or_expired"} 2' in text
    assert "198.51.100.7" not in text and cid not in text
    with pytest.raises(ValueError, match="rate_limits.tokn"):
        make_proxy(idp, tmp_path / "other", rate_limits={"tokn": False})
    p.close()


def test_health_warnings_and_strict(idp, tmp_path):
    p = make_proxy(idp, tmp_path)  # keys "py-jwt-key" / "py-enc-key": short
    h = p.health()
    assert h["ok"] is True and h["store"] == "ok" and h["latency_ms"] >= 0
    warnings = p.config_warnings()
    assert "jwt_signing_key is weak: shorter than 32 bytes" in warnings
    assert not any("py-jwt-key" in w for w in warnings), "never the value"
    assert h["warnings"] == warnings
    with pytest.raises(ValueError, match="timeout"):
        p.health(timeout=0)
    p.close()
    with pytest.raises(ValueError, match="strict: .*jwt_signing_key is weak"):
        make_proxy(idp, tmp_path / "strict", strict=True)
    strong = make_proxy(idp, tmp_path / "strong", strict=True, jwt_signing_key="kQ3v9Zt2Lr8WmX1pYc7HsN4bJd6Fg0Ae",
                        encryption_key="s8K2-x_V9qP4mZ7tR1wY6nB3cF5hJ0gL2dA8eU4iO")
    assert strong.config_warnings() == []
    strong.close()
