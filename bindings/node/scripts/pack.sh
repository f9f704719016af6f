#!/usr/bin/env bash
# Packs the npm packages the way napi-rs packages are published: the main package `fastmcp-auth` (JS, types,
# README, licences; its optionalDependencies name one package per platform) and the platform package of this
# machine, `fastmcp-auth-linux-x64-gnu` (the addon, with `os`/`cpu`/`libc` so npm installs only the matching one).
# Other platforms' packages are built by .github/workflows/release.yml.
#
# Usage: scripts/pack.sh [--debug] [--zig] [--out DIR]
#   --debug  pack the debug addon the tests use (no release compile; for the install test)
#   --zig    link against glibc 2.17 with zig (cargo-zigbuild and zig from PyPI), so the addon
#            loads on every maintained Linux distribution (RHEL 8, Debian 11, Ubuntu 20.04, Amazon Linux 2)
# Prints the tarballs' paths.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$root/dist/npm"
profile=release
zig=0
while [ $# -gt 0 ]; do
  case "$1" in
    --debug) profile=debug ;;
    --zig) zig=1 ;;
    --out) out="$2"; shift ;;
    *) echo "pack.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$out"
out="$(cd "$out" && pwd)"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
platform=linux-x64-gnu
addon="fastmcp-auth.$platform.node"

# 1. The addon.
if [ "$zig" = 1 ]; then
  # cargo-zigbuild (PyPI, with zig from `ziglang`) links against glibc 2.17; it shares the workspace target dir
  # (target/x86_64-unknown-linux-gnu/).
  venv="$root/.peers/venv"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  [ -x "$venv/bin/cargo-zigbuild" ] || "$venv/bin/pip" install -q --disable-pip-version-check cargo-zigbuild
  flags=(--locked -p fastmcp-auth-node --target x86_64-unknown-linux-gnu.2.17 --manifest-path "$root/Cargo.toml")
  [ "$profile" = release ] && flags+=(--release)
  PATH="$venv/bin:$PATH" cargo-zigbuild zigbuild -q "${flags[@]}" >&2
  cp "$root/target/x86_64-unknown-linux-gnu/$profile/libfastmcp_auth_node.so" "$stage/$addon"
else
  if [ "$profile" = release ]; then bash "$here/scripts/build-cargo.sh" --release; else bash "$here/scripts/build-cargo.sh"; fi
  cp "$here/$addon" "$stage/$addon"
fi
# Debug info is for developers, not for the package (the debug addon drops from ~110 MB to ~15 MB).
strip --strip-debug "$stage/$addon"

# 2. The platform package.
mkdir -p "$stage/platform"
cp "$here/npm/$platform/package.json" "$here/npm/$platform/README.md" "$stage/$addon" "$stage/platform/"
cp "$root/LICENSE-MIT" "$root/LICENSE-APACHE" "$stage/platform/"
node -e "const f='$stage/platform/package.json',p=require(f);p.files=[...p.files,'LICENSE-MIT','LICENSE-APACHE'];require('fs').writeFileSync(f,JSON.stringify(p,null,2)+'\n')"
(cd "$stage/platform" && npm pack --silent --pack-destination "$out" >/dev/null)

# 3. The main package, its optionalDependencies naming every platform package at this version.
mkdir -p "$stage/main"
cp "$here/index.js" "$here/index.d.ts" "$here/README.md" "$root/LICENSE-MIT" "$root/LICENSE-APACHE" "$stage/main/"
node - "$here" "$stage/main/package.json" <<'JS'
const [dir, dest] = process.argv.slice(2);
const fs = require('node:fs');
const path = require('node:path');
const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
const optional = {};
for (const d of fs.readdirSync(path.join(dir, 'npm'))) {
  const p = JSON.parse(fs.readFileSync(path.join(dir, 'npm', d, 'package.json'), 'utf8'));
  optional[p.name] = pkg.version;
}
pkg.optionalDependencies = optional;
pkg.files = ['index.js', 'index.d.ts', 'README.md', 'LICENSE-MIT', 'LICENSE-APACHE'];
delete pkg.devDependencies;
delete pkg.scripts;
fs.writeFileSync(dest, JSON.stringify(pkg, null, 2) + '\n');
JS
(cd "$stage/main" && npm pack --silent --pack-destination "$out" >/dev/null)
version=$(node -p "require('$here/package.json').version")
echo "$out/fastmcp-auth-$version.tgz"
echo "$out/fastmcp-auth-$platform-$version.tgz"
