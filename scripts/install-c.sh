#!/usr/bin/env bash
# Builds and installs the C library: PREFIX/lib/libfastmcp_auth.{so,a}, PREFIX/include/fastmcp_auth.h and
# PREFIX/lib/pkgconfig/fastmcp_auth.pc, so that `cc app.c $(pkg-config --cflags --libs fastmcp_auth)` works
# (with PKG_CONFIG_PATH=PREFIX/lib/pkgconfig when PREFIX is not a system prefix).
# Usage: scripts/install-c.sh PREFIX=/usr/local   [PROFILE=release|debug] [BUILD=0 to install what is built]
# Each setting can also come from the environment (PREFIX=/opt/x scripts/install-c.sh); an argument wins.
# The shared library is installed as libfastmcp_auth.so.<version> with the links .so.<major> (its SONAME) and .so.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX="${PREFIX:-/usr/local}"
PROFILE="${PROFILE:-release}"
BUILD="${BUILD:-1}"
for a in "$@"; do case "$a" in PREFIX=*) PREFIX="${a#PREFIX=}" ;; PROFILE=*) PROFILE="${a#PROFILE=}" ;; BUILD=*) BUILD="${a#BUILD=}" ;; *) echo "unknown argument $a" >&2; exit 2 ;; esac; done
cd "$root"
if [ "$BUILD" = 1 ]; then
  if [ "$PROFILE" = release ]; then cargo build -q --release -p fastmcp-auth-ffi; else cargo build -q -p fastmcp-auth-ffi; fi
fi
target="${CARGO_TARGET_DIR:-$root/target}/$PROFILE"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
mkdir -p "$PREFIX/lib/pkgconfig" "$PREFIX/include"
install -m 0644 include/fastmcp_auth.h "$PREFIX/include/"
major="${version%%.*}"
install -m 0755 "$target/libfastmcp_auth.so" "$PREFIX/lib/libfastmcp_auth.so.$version"
ln -sfn "libfastmcp_auth.so.$version" "$PREFIX/lib/libfastmcp_auth.so.$major"
ln -sfn "libfastmcp_auth.so.$major" "$PREFIX/lib/libfastmcp_auth.so"
install -m 0644 "$target/libfastmcp_auth.a" "$PREFIX/lib/"
cat > "$PREFIX/lib/pkgconfig/fastmcp_auth.pc" <<PC
prefix=$PREFIX
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: fastmcp_auth
Description: Token storage, HS256 JWTs, key derivation, PKCE and the OAuth proxy token swap for MCP servers
Version: $version
Cflags: -I\${includedir}
Libs: -L\${libdir} -Wl,-rpath,\${libdir} -lfastmcp_auth
Libs.private: -lpthread -ldl -lm
PC
echo "installed libfastmcp_auth $version into $PREFIX"
