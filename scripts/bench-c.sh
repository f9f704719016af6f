#!/usr/bin/env bash
# JWT verify and DiskStore get per call through the C ABI vs the same calls in Rust, one run; prints the overhead.
# Not a test. Usage: scripts/bench-c.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
cargo build -q --release -p fastmcp-auth-ffi
cargo build -q --release -p fastmcp-auth --example bench_c_parity
work="$(mktemp -d "$root/target/bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# The program records the SONAME (libfastmcp_auth.so.0): the link an install makes, made beside it.
ln -s "$root/target/release/libfastmcp_auth.so" "$work/libfastmcp_auth.so.0"
gcc -std=c11 -O2 -Wall -Wextra -Werror -Iinclude tests/c/bench.c -Ltarget/release -lfastmcp_auth \
  -Wl,-rpath,"$work" -o "$work/bench_c"
c=$("$work/bench_c" "$work/c-store")
rust=$(./target/release/examples/bench_c_parity "$work/rust-store")
python3 - "$c" "$rust" <<'PY'
import json, sys
c, r = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"{'operation':28} {'C ABI':>10} {'Rust':>10} {'C/Rust':>8}")
for name, k in [("JWT verify (claims as JSON)", "verify_us"), ("DiskStore get (blocking)", "get_us")]:
    print(f"{name:28} {c[k]:>7.2f} µs {r[k]:>7.2f} µs {c[k]/r[k]:>7.2f}x")
PY
