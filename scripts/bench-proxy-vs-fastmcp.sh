#!/usr/bin/env bash
# Code exchange and refresh throughput (DiskStore, encrypted) of our proxy and of fastmcp TS's OAuthProxy against
# the same loopback mock identity provider, in one run; prints the ratios. Usage: [n, default 500]. Not a test.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
n="${1:-500}"
bash scripts/install-peers.sh
cargo build -q --release -p fastmcp-auth --example bench_proxy -p fastmcp-auth-mock-idp --bin mock-idp
work="$(mktemp -d "$root/target/bench.XXXXXX")"
coproc IDP { ./target/release/mock-idp; }
trap 'kill $IDP_PID 2>/dev/null; rm -rf "$work"' EXIT
read -r idp <&"${IDP[0]}"
ours=$(./target/release/examples/bench_proxy "$idp" "$work/ours" "$n")
theirs=$(node scripts/bench/ts_proxy_bench.mjs .peers/node "$idp" "$work/ts" "$n")
python3 - "$ours" "$theirs" "$n" <<'PY'
import json, sys
o, t, n = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
print(f"{'operation (' + n + ' each, DiskStore + encryption)':48} {'fastmcp-auth':>14} {'fastmcp TS':>14} {'ratio':>7}")
for name, k in [("exchange_authorization_code", "exchange_per_s"), ("refresh (incl. upstream HTTP)", "refresh_per_s")]:
    print(f"{name:48} {o[k]:>10.0f}/s {t[k]:>10.0f}/s {o[k]/t[k]:>6.1f}x")
PY
