#!/usr/bin/env bash
# The main demo (README "Quick start"): runs `fastmcp-auth demo` with its DiskStore in ./demo-data.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
exec cargo run -q -p fastmcp-auth-cli -- demo --dir "${1:-demo-data}"
