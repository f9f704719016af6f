#!/usr/bin/env bash
# Python, end to end: a fastmcp Python server with fastmcp_auth.fastmcp.OAuthProxy vs the same server with fastmcp's
# own OAuthProxy (each with its default storage), over HTTP, against the same mock identity provider, plus
# verify_token, JWTIssuer and the aio stores in process (bindings/python/bench/fastmcp_server.py). Release build of
# the extension into .peers/venv. ROUNDS rounds (default 3), medians, sides alternating. Not a test.
# Usage: scripts/bench-fastmcp-python.sh [codes per side, default 400]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash scripts/install-peers.sh
VIRTUAL_ENV="$root/.peers/venv" PATH="$root/.peers/venv/bin:$PATH" \
  .peers/venv/bin/maturin develop --release -q -m bindings/python/Cargo.toml
cargo build -q --release -p fastmcp-auth-mock-idp --bin mock-idp
coproc IDP { ./target/release/mock-idp; }
trap 'kill $IDP_PID 2>/dev/null || true' EXIT
read -r idp <&"${IDP[0]}"
.peers/venv/bin/python -W ignore bindings/python/bench/fastmcp_server.py "$idp" "${1:-400}"
