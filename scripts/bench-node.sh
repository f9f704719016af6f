#!/usr/bin/env bash
# Node: our JWTIssuer and DiskStore vs npm fastmcp's, in one process (bindings/node/bench/bench.mjs), release build.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/bindings/node"
[ -d node_modules/fastmcp ] || npm ci --no-audit --no-fund --loglevel=error
bash scripts/build-cargo.sh --release
node bench/bench.mjs
