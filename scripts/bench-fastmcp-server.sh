#!/usr/bin/env bash
# Node, end to end: a FastMCP TypeScript server with our OAuthProvider vs the same server with fastmcp's, over HTTP,
# same mock identity provider, in one run of ROUNDS rounds (default 3), sides alternating, medians
# (bindings/node/bench/fastmcp-server.mjs). Release addon. Not a test.
# Usage: scripts/bench-fastmcp-server.sh [codes, default 400] [seconds of tool calls, default 5]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/bindings/node"
[ -d node_modules/fastmcp ] || npm ci --no-audit --no-fund --loglevel=error
bash scripts/build-cargo.sh --release
cargo build -q --manifest-path "$root/Cargo.toml" -p fastmcp-auth-mock-idp --bin mock-idp
node bench/fastmcp-server.mjs "$@"
