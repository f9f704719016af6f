"""The core's log records reach Python `logging` (loggers `fastmcp_auth.*`), from any thread, never holding a token,
secret or key."""

import logging
import urllib.parse

import pytest

import fastmcp_auth as fa
from fastmcp_auth import _native

from .test_proxy import login, make_proxy


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def keyless_proxy():
    """A proxy without keys: its construction logs the "jwt_signing_key is not set" warning."""
    fa.OAuthProxy({
        "base_url": "http://127.0.0.1:8000",
        "upstream_authorization_endpoint": "http://127.0.0.1:9/a",
        "upstream_token_endpoint": "http://127.0.0.1:9/t",
        "upstream_client_id": "c",
    }).close()


@pytest.fixture
def collected():
    h = Collect()
    root = logging.getLogger("fastmcp_auth")
    root.addHandler(h)
    old = root.level
    root.setLevel(logging.DEBUG)
    try:
        yield h.records
    finally:
        _native._flush_logging()
        root.removeHandler(h)
        root.setLevel(old)
        fa.set_log_level("warning")


def test_warnings_reach_logging(collected):
    keyless_proxy()
    assert _native._flush_logging()
    texts = [(r.levelno, r.name, r.getMessage()) for r in collected]
    assert any(
        level == logging.WARNING and name.startswith("fastmcp_auth.") and "jwt_signing_key is not set" in msg
        for level, name, msg in texts
    ), texts


def test_no_secret_or_token_in_any_record(idp, tmp_path, collected):
    fa.set_log_level("debug")
    p = make_proxy(idp, tmp_path)
    cid, secret, form = login(p)
    tokens = p.token(form)
    refresh = urllib.parse.urlencode({
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
        "client_id": cid, "client_secret": secret,
    }).encode()
    p.token(refresh)
    # Failures log too: a replayed code, a wrong client secret, a replayed refresh token past the grace window.
    for bad in (form, form.replace(secret.encode(), b"wrong-secret")):
        with pytest.raises(fa.OAuthProxyError):
            p.token(bad)
    p.close()
    assert _native._flush_logging()
    text = "\n".join(r.getMessage() for r in collected)
    for s in (secret, tokens["access_token"], tokens["refresh_token"], "upstream secret", "py-jwt-key", "py-enc-key"):
        assert s not in text, f"a record holds {s[:8]}…"
    assert "eyJ" not in text


def test_levels_and_a_failing_handler(collected):
    with pytest.raises(ValueError):
        fa.set_log_level("loud")

    class Broken(logging.Handler):
        def emit(self, record):
            raise RuntimeError("handler bug")

    broken = Broken()
    logging.getLogger("fastmcp_auth").addHandler(broken)
    try:
        fa.set_log_level("error")
        keyless_proxy()
        assert _native._flush_logging()
        assert not [r for r in collected if r.levelno == logging.WARNING], "warnings filtered at 'error'"
        fa.set_log_level("warning")
        keyless_proxy()
        assert _native._flush_logging()
        assert [r for r in collected if r.levelno == logging.WARNING]
    finally:
        logging.getLogger("fastmcp_auth").removeHandler(broken)


def test_a_forked_child_logs_through_its_own_thread(collected):
    import os

    fa.set_log_level("info")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its records must reach its logging (the parent's log thread did not survive the fork)
        code = 1
        try:
            os.close(r)
            keyless_proxy()
            _native._flush_logging(5.0)
            got = any("jwt_signing_key is not set" in rec.getMessage() for rec in collected)
            os.write(w, b"yes" if got else b"no")
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    answer = os.read(r, 16)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert answer == b"yes"
