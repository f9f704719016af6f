import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _start_idp(env=None):
    exe = ROOT / "target" / "debug" / "mock-idp"
    if not exe.exists():
        subprocess.run(["cargo", "build", "-q", "-p", "fastmcp-auth-mock-idp", "--bin", "mock-idp"], cwd=ROOT, check=True)
    proc = subprocess.Popen([str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    return proc, proc.stdout.readline().strip()


@pytest.fixture(scope="session")
def idp():
    """The loopback mock identity provider (tests/mock-idp, built by scripts/test.sh)."""
    proc, url = _start_idp()
    yield url
    proc.stdin.close()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def claims_idp():
    """The mock provider issuing JWT-shaped access tokens and ID tokens with claims."""
    proc, url = _start_idp({
        "MOCK_IDP_ACCESS_TOKEN_CLAIMS": '{"email": "ada@example.com", "sub": "u-1", "iss": "https://idp"}',
        "MOCK_IDP_ID_TOKEN_CLAIMS": '{"name": "Ada"}',
    })
    yield url
    proc.stdin.close()
    proc.wait(timeout=10)


@pytest.fixture
def redis_url(tmp_path):
    """A real redis-server on a free loopback port, stopped afterwards."""
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as c:
                c.sendall(b"PING\r\n")
                if c.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def doc_host():
    """The HTTPS Client ID Metadata Document host (`mock-idp doc-host`, its own CA): a dict with `base_url`,
    `ca_pem`, `good` (document names) and `hostile` ([name, fragment of the proxy's error])."""
    import json

    exe = ROOT / "target" / "debug" / "mock-idp"
    if not exe.exists():
        subprocess.run(["cargo", "build", "-q", "-p", "fastmcp-auth-mock-idp", "--bin", "mock-idp"], cwd=ROOT, check=True)
    proc = subprocess.Popen([str(exe), "doc-host"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    info = json.loads(proc.stdout.readline())
    yield info
    proc.stdin.close()
    proc.wait(timeout=10)
