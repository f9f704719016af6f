#!/usr/bin/env bash
# Builds the addon with plain cargo into the workspace's shared target directory (no second compile of every
# dependency under target/<triple>/, which `napi build` would do) and puts it where index.js loads it.
# Usage: scripts/build-cargo.sh [--release]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
root="$(cd "$here/../.." && pwd)"
profile=debug
args=()
if [ "${1:-}" = "--release" ]; then
  profile=release
  args+=(--release)
fi
# CARGO_SELECT: what to build instead of this package alone (scripts/test.sh: the whole workspace, built already
# with the features its tests use, so nothing is compiled twice).
# shellcheck disable=SC2086
cargo build -q ${CARGO_SELECT:--p fastmcp-auth-node} --locked "${args[@]}" --manifest-path "$root/Cargo.toml"
# A new file moved into place (never written over): a process that has the old addon loaded keeps a whole one.
cp "$root/target/$profile/libfastmcp_auth_node.so" "$here/.fastmcp-auth.node.tmp"
mv -f "$here/.fastmcp-auth.node.tmp" "$here/fastmcp-auth.linux-x64-gnu.node"
