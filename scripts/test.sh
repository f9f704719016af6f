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
# Each step line carries the minutes:seconds since the start (CI must stay well under its limit: see the README).
step() { printf '== [%d:%02d] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }

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

# One build of every crate, binary, example and test of the workspace, with the features `cargo test --workspace`
# resolves: the steps below reuse it (libfastmcp_auth.so/.a for the C tests, mock-idp, the conformance agent, the
# Node addon). A `-p <package>` build resolves features for that package alone and compiles the core and many
# dependencies once more each (on a fresh machine that was ~3.5 min per package). The "output filename collision"
# warning is the ffi crate's rlib, named like the core's (its cdylib must be libfastmcp_auth.so); nothing uses it.
step "cargo build --workspace --all-targets (reused by every step below)"
cargo build --workspace --all-targets --locked || fail=1

step "cargo test --workspace"
cargo test --workspace --locked -- --skip c_programs 2>&1 | tee "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || fail=1

step "C tests (gcc -Wall -Wextra -Werror; shared, static, valgrind)"
cargo test --workspace --locked --test c -- --nocapture 2>&1 | tee -a "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || fail=1

step "Python extension: maturin develop into .peers/venv, then pytest"
if VIRTUAL_ENV="$root/.peers/venv" PATH="$root/.peers/venv/bin:$PATH" \
    .peers/venv/bin/maturin develop -q -m bindings/python/Cargo.toml; then
  .peers/venv/bin/python -m pytest -q -p no:cacheprovider bindings/python/tests 2>&1 | tee -a "$log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || fail=1
else
  echo "maturin develop failed"
  fail=1
fi

step "Node addon: build (cargo, shared target), npm ci, node --test"
if CARGO_SELECT="--workspace --all-targets" bash bindings/node/scripts/build-cargo.sh && (cd bindings/node && npm ci --no-audit --no-fund --loglevel=error); then
  (cd bindings/node && node --test test/*.test.mjs) 2>&1 | tee -a "$log" | grep -E '^# (tests|pass|fail)|^not ok|^    not ok|^# Subtest'
  [ "${PIPESTATUS[0]}" -eq 0 ] || fail=1
else
  echo "building the Node addon failed"
  fail=1
fi

step "Conformance suite: Rust, C, Python, Node, npm fastmcp and PyPI fastmcp agree (writes tests/conformance/MATRIX.md)"
if [ -x target/debug/examples/conformance_agent ]; then
  .peers/venv/bin/python tests/conformance/run.py 2>&1 | tee -a "$log" | grep -vE '^  ok '
  [ "${PIPESTATUS[0]}" -eq 0 ] || fail=1
else
  echo "no conformance agent: the workspace build above failed"
  fail=1
fi

# cargo's "test result: ok. N passed; N failed" lines, pytest's "N passed[, N failed] in Xs" line and node --test's
# "# pass N" / "# fail N" lines, and the conformance suite's "conformance: N passed, N failed".
count() {
  awk -v word="$1" '
    /^test result:/ || / in [0-9.]+s/ { for (i = 1; i < NF; i++) if ($(i+1) ~ "^" word) s += $i }
    /^# (pass|fail) [0-9]+$/ { if (word ~ "^" $2) s += $3 }
    /^conformance: [0-9]+ passed, [0-9]+ failed$/ { s += (word == "passed" ? $2 : $4) }
    END { print s + 0 }' "$log"
}
passed=$(count passed)
failed=$(count failed)
step "done"
echo
echo "total: ${passed:-0} passed, ${failed:-0} failed"
if [ "$fail" -ne 0 ] || [ "${failed:-0}" -ne 0 ] || [ "${passed:-0}" -eq 0 ]; then
  exit 1
fi
