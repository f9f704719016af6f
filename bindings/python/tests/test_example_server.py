"""bindings/python/examples/server.py run as its docstring says, with the documented variables pointing at the
loopback mock identity provider: a client registers, logs in through the consent page and the provider, exchanges the
code, and calls the MCP tool with its Bearer JWT (401 without)."""

import html
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import httpx2 as httpx

from .test_fastmcp_proxy import pkce, secret
from .test_proxy import browser

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "server.py"
REDIRECT = "http://127.0.0.1:33418/callback"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env(idp, tmp_path, port, **overrides):
    e = {**os.environ, "UPSTREAM_AUTHORIZE": f"{idp}/authorize", "UPSTREAM_TOKEN": f"{idp}/token",
         "UPSTREAM_CLIENT_ID": "upstream-client", "UPSTREAM_CLIENT_SECRET": "upstream secret+/=",
         "STORAGE_KEY": "example-storage-key-0123456789abcdef", "JWT_KEY": "example-jwt-signing-key-0123456789ab",
         "PORT": str(port), "OAUTH_DIR": str(tmp_path / "oauth")}
    e.update(overrides)
    return {k: v for k, v in e.items() if v is not None}


def test_missing_keys_are_refused_with_the_variable_named(idp, tmp_path):
    r = subprocess.run([sys.executable, str(EXAMPLE)], env=env(idp, tmp_path, free_port(), STORAGE_KEY=None),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "STORAGE_KEY must be at least 32 characters" in r.stderr, r.stderr
    r = subprocess.run([sys.executable, str(EXAMPLE)], env=env(idp, tmp_path, free_port(), JWT_KEY="short"),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "JWT_KEY" in r.stderr


def test_the_example_logs_a_client_in_and_serves_the_tool(idp, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, str(EXAMPLE)], env=env(idp, tmp_path, port),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()
                assert time.time() < deadline, "the example did not start"
                time.sleep(0.2)
        with httpx.Client(base_url=base, follow_redirects=False, timeout=30) as http:
            r = http.post("/register", json={"redirect_uris": [REDIRECT], "client_name": "example-test"})
            assert r.status_code in (200, 201), r.text
            reg = r.json()
            verifier, challenge = pkce()
            r = http.get("/authorize", params={
                "client_id": reg["client_id"], "redirect_uri": REDIRECT, "response_type": "code", "state": "st",
                "code_challenge": challenge, "code_challenge_method": "S256", "resource": f"{base}/mcp",
            })
            if r.status_code == 200:
                # The consent page (served by the core): approve, as the user would, with the browser-binding
                # cookie the page set (it rides in the client's jar) and every hidden field, to the form's action.
                action = html.unescape(re.search(r'action="([^"]+)"', r.text).group(1))
                fields = dict(re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', r.text))
                r = http.post(action, data={**fields, "action": "approve"})
            assert r.status_code in (302, 303, 307), r.text
            callback = browser(r.headers["location"])
            cb = urllib.parse.urlsplit(callback)
            r = http.get(f"{cb.path}?{cb.query}")
            assert r.status_code in (302, 303, 307), r.text
            back = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(r.headers["location"]).query))
            r = http.post("/token", data={
                "grant_type": "authorization_code", "code": back["code"], "redirect_uri": REDIRECT,
                "code_verifier": verifier, "client_id": reg["client_id"], **secret(reg),
            })
            assert r.status_code == 200, r.text
            token = r.json()["access_token"]
            headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
            init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
            assert http.post("/mcp", json=init, headers=headers).status_code == 401
            headers["Authorization"] = f"Bearer {token}"
            r = http.post("/mcp", json=init, headers=headers)
            assert r.status_code == 200, r.text
            session = r.headers.get("mcp-session-id")
            if session:
                headers["Mcp-Session-Id"] = session
            http.post("/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
            call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "hello", "arguments": {"name": "Ada"}}}
            r = http.post("/mcp", json=call, headers=headers)
            assert r.status_code == 200 and "Hello, Ada!" in r.text, r.text
    finally:
        server.terminate()
        server.wait(timeout=10)
