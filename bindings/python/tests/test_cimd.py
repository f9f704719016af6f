"""Client ID Metadata Documents from Python: the `cimd` config member, documents over real HTTPS (the doc host with
its own CA), a whole login with refresh and revocation by a URL client, every hostile document refused."""

import re
import threading
import time
import urllib.parse

import pytest

import fastmcp_auth as fa

from .test_proxy import browser, hidden, jar, location

REDIRECT = "http://127.0.0.1:41234/callback"


def make_proxy(idp, doc_host, tmp_path, **cimd):
    options = {
        "allow_private_networks_for_testing": True,
        "extra_root_certificates_pem": [doc_host["ca_pem"]],
        "fetch_timeout": 1,
        "failure_cooldown": 0,
        **cimd,
    }
    return fa.OAuthProxy({
        "base_url": "http://127.0.0.1:8000",
        "upstream_authorization_endpoint": f"{idp}/authorize",
        "upstream_token_endpoint": f"{idp}/token",
        "upstream_client_id": "upstream-client",
        "upstream_client_secret": "upstream secret+/=",
        "jwt_signing_key": "py-jwt-key",
        "encryption_key": "py-enc-key",
        "cimd": options,
    }, storage=fa.DiskStore(tmp_path / "oauth"))


def authorize_query(client_id, verifier, redirect=REDIRECT):
    return urllib.parse.urlencode({
        "client_id": client_id, "redirect_uri": redirect, "response_type": "code", "state": "s1",
        "code_challenge": fa.generate_challenge(verifier), "code_challenge_method": "S256",
    })


def test_a_url_client_logs_in_refreshes_and_revokes(idp, doc_host, tmp_path):
    p = make_proxy(idp, doc_host, tmp_path)
    assert p.authorization_server_metadata()["client_id_metadata_document_supported"] is True
    cid = f"{doc_host['base_url']}/good.json"
    verifier = fa.generate_verifier(64)
    page = p.authorize(authorize_query(cid, verifier))
    assert page["status"] == 200
    assert "published by <strong>localhost</strong>" in page["body"]
    assert "Doc Host Client" in page["body"]
    cookie = jar(page)
    consent = {"transaction_id": hidden(page, "transaction_id"), "csrf_token": hidden(page, "csrf_token"),
               "action": "approve"}
    up = p.handle_consent(urllib.parse.urlencode(consent).encode(), cookie)
    back = p.handle_callback(urllib.parse.urlsplit(browser(location(up))).query, cookie)
    params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location(back)).query))
    tokens = p.token(urllib.parse.urlencode({
        "grant_type": "authorization_code", "code": params["code"], "code_verifier": verifier,
        "client_id": cid, "redirect_uri": REDIRECT,
    }).encode())
    refreshed = p.token(urllib.parse.urlencode({
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": cid,
    }).encode())
    assert p.load_upstream_tokens(refreshed["access_token"]) is not None
    p.revoke(refreshed["access_token"], cid, None)
    assert p.load_upstream_tokens(refreshed["access_token"]) is None
    p.close()


def test_every_hostile_document_is_refused(idp, doc_host, tmp_path):
    p = make_proxy(idp, doc_host, tmp_path)
    verifier = fa.generate_verifier(64)
    for name, fragment in doc_host["hostile"]:
        with pytest.raises(fa.OAuthProxyError) as e:
            p.authorize(authorize_query(f"{doc_host['base_url']}/{name}", verifier))
        assert e.value.code in ("invalid_client", "temporarily_unavailable"), name
        assert fragment in e.value.description, (name, e.value.description)
    for name in doc_host["good"]:
        assert p.authorize(authorize_query(f"{doc_host['base_url']}/{name}", verifier))["status"] == 200
    with pytest.raises(fa.OAuthProxyError) as e:
        p.authorize(authorize_query(f"{doc_host['base_url']}/good.json", verifier, "https://attacker.example/cb"))
    assert e.value.code == "invalid_request"
    p.close()


def test_loopback_is_refused_without_the_test_switch(idp, doc_host, tmp_path):
    p = make_proxy(idp, doc_host, tmp_path, allow_private_networks_for_testing=False)
    with pytest.raises(fa.OAuthProxyError) as e:
        p.authorize(authorize_query(f"{doc_host['base_url']}/good.json", fa.generate_verifier(64)))
    assert "non-public address" in e.value.description
    p.close()


@pytest.mark.parametrize("cimd, message", [
    ({"allow_private_networks": True}, "unknown config member `cimd.allow_private_networks`"),
    ({"fetch_timeout": -1}, "cimd.fetch_timeout"),
    ({"extra_root_certificates_pem": ["not a certificate"]}, "PEM"),
    ("yes", "cimd"),
])
def test_bad_cimd_options_are_value_errors(idp, doc_host, tmp_path, cimd, message):
    config = {
        "base_url": "http://127.0.0.1:8000", "upstream_authorization_endpoint": f"{idp}/authorize",
        "upstream_token_endpoint": f"{idp}/token", "upstream_client_id": "c", "cimd": cimd,
    }
    with pytest.raises(ValueError, match=re.escape(message)):
        fa.OAuthProxy(config)


def test_a_slow_document_does_not_hold_the_gil(idp, doc_host, tmp_path):
    p = make_proxy(idp, doc_host, tmp_path, fetch_timeout=1.5)
    errors = []

    def slow():
        try:
            p.authorize(authorize_query(f"{doc_host['base_url']}/drip.json", fa.generate_verifier(64)))
        except fa.OAuthProxyError as e:
            errors.append(e.description)

    t = threading.Thread(target=slow)
    started = time.monotonic()
    t.start()
    ticks = 0
    while t.is_alive():
        ticks += 1
        time.sleep(0.01)
    assert time.monotonic() - started < 5
    assert ticks > 50, "the main thread ran while the fetch waited"
    assert errors and "timed out" in errors[0]
    p.close()
