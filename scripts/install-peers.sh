#!/usr/bin/env bash
# Installs the two reference implementations (npm `fastmcp`, PyPI `fastmcp`) into the git-ignored .peers/
# folder, once. Idempotent: a second run with everything present does nothing. Versions are pinned to the
# ones that generated ../shared/conformance (see its `generator` fields).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
peers="$root/.peers"
TS_VERSION="${FASTMCP_TS_VERSION:-4.20.16}"
PY_VERSION="${FASTMCP_PY_VERSION:-4.2.3}"
mkdir -p "$peers/node"
if [ ! -f "$peers/node/node_modules/fastmcp/package.json" ]; then
  echo "install-peers: npm fastmcp@$TS_VERSION"
  (cd "$peers/node" && { [ -f package.json ] || echo '{"name":"peers","private":true}' > package.json; } \
    && npm install --no-audit --no-fund --loglevel=error "fastmcp@$TS_VERSION" >/dev/null)
fi
if [ ! -x "$peers/venv/bin/python" ]; then
  python3 -m venv "$peers/venv"
fi
if ! "$peers/venv/bin/python" -c "import maturin, pytest" 2>/dev/null; then
  echo "install-peers: maturin and pytest (to build and test bindings/python)"
  "$peers/venv/bin/pip" install -q --disable-pip-version-check "maturin>=1.5,<2" "pytest>=7"
fi
if ! "$peers/venv/bin/python" -c "import fastmcp.server.auth.jwt_issuer" 2>/dev/null; then
  echo "install-peers: PyPI fastmcp==$PY_VERSION"
  "$peers/venv/bin/pip" install -q --disable-pip-version-check "fastmcp==$PY_VERSION"
fi
