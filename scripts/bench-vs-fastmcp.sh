#!/usr/bin/env bash
# Times fastmcp-auth and fastmcp TS (npm) on the same operations in one run and prints the ratios.
# Usage: scripts/bench-vs-fastmcp.sh [entries for the sweep, default 100000]   (not a test; takes ~1-2 minutes)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
entries="${1:-100000}"
bash scripts/install-peers.sh
cargo build -q --release -p fastmcp-auth --example bench_compare
work="$(mktemp -d "$root/target/bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# The sweep dataset: plain keys (both read them), 1% already expired; one copy per contender.
python3 - "$work/sweep-ts" "$entries" <<'PY'
import json, os, sys, time
d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d)
now = int(time.time() * 1000)
for i in range(n):
    exp = now - 1000 if i % 100 == 0 else now + 3_600_000
    with open(f"{d}/entry-{i}.json", "w") as f:
        f.write(json.dumps({"expiresAt": exp, "value": {"upstreamTokenKey": f"u{i}"}}, indent=2))
PY
cp -r "$work/sweep-ts" "$work/sweep-ours"
ours=$(./target/release/examples/bench_compare "$work/ours" "$work/sweep-ours")
theirs=$(node scripts/bench/ts_bench.mjs .peers/node "$work/ts" "$work/sweep-ts")
python3 - "$ours" "$theirs" "$entries" <<'PY'
import json, sys
o, t, n = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
rows = [("JWT issue", "issue_us", "issue_us", "µs"), ("JWT verify", "verify_us", "verify_us", "µs"),
        ("DiskStore save", "save_us", "save_us", "µs"), ("DiskStore get", "get_us", "get_us", "µs"),
        ("DiskStore take", "take_us", "take_us", "µs"),
        (f"sweep {n} (1% expired), running store", "sweep_running_ms", "sweep_ms", "ms"),
        (f"sweep {n} (1% expired), freshly opened", "sweep_fresh_ms", "sweep_ms", "ms")]
print(f"{'operation':45} {'fastmcp-auth':>14} {'fastmcp TS':>14} {'speed-up':>9}")
for name, ok, tk, unit in rows:
    print(f"{name:45} {o[ok]:>11.2f} {unit} {t[tk]:>11.2f} {unit} {t[tk]/o[ok]:>8.1f}x")
PY
