#!/usr/bin/env bash
# The one command that runs every test (README "Quick start"); .ci/run calls it.
# Installs what it needs (npm/PyPI fastmcp into .peers/), checks formatting and lints, runs every test binary,
# and ends with "N passed, N failed". Exits non-zero on any failure.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
fail=0
step() { echo "== $*"; }

step "reference implementations (.peers/)"
bash scripts/install-peers.sh || { echo "install-peers failed"; exit 1; }

if ! command -v redis-server >/dev/null 2>&1; then
  step "installing redis-server (the RedisStore tests start their own servers on free loopback ports)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; } \
    || { echo "could not install redis-server"; exit 1; }
fi

step "cargo fmt --check"
cargo fmt --all -- --check || fail=1

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -q -- -D warnings || fail=1

step "cargo build -p fastmcp-auth-ffi (libfastmcp_auth.so and .a for the C tests)"
cargo build -p fastmcp-auth-ffi --locked || fail=1

step "cargo test --workspace"
cargo test --workspace --locked -- --skip c_programs 2>&1 | tee "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || fail=1

step "C tests (gcc -Wall -Wextra -Werror; shared, static, valgrind)"
cargo test -p fastmcp-auth-ffi --locked --test c -- --nocapture 2>&1 | tee -a "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || fail=1

passed=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) if ($(i+1) ~ /^passed/) s += $i } END { print s + 0 }' "$log")
failed=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) if ($(i+1) ~ /^failed/) s += $i } END { print s + 0 }' "$log")
echo
echo "total: ${passed:-0} passed, ${failed:-0} failed"
if [ "$fail" -ne 0 ] || [ "${failed:-0}" -ne 0 ] || [ "${passed:-0}" -eq 0 ]; then
  exit 1
fi
