#!/usr/bin/env bash
# RedisStore ops/s against redis-benchmark (-t get,set, one connection, no pipelining) on the same fresh
# redis-server, in one run; prints the ratios. Usage: [n, default 50000]. Not a test.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
n="${1:-50000}"
command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }
cargo build -q --release -p fastmcp-auth --example bench_redis
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
dir="$(mktemp -d)"
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" --daemonize no >/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.05; done
bench=$(redis-benchmark -p "$port" -t set,get -n "$n" -c 1 -P 1 -d 40 -q 2>/dev/null | tr '\r' '\n' | grep -E '(SET|GET): [0-9.]+ requests per second' | tail -2)
ours=$(./target/release/examples/bench_redis "redis://127.0.0.1:$port" "$n")
python3 - "$ours" "$bench" <<'PY'
import json, re, sys
o = json.loads(sys.argv[1])
b = {m.group(1): float(m.group(2)) for m in re.finditer(r"(SET|GET): ([0-9.]+) requests per second", sys.argv[2])}
print(f"{'operation':34} {'ops/s':>10} {'redis-benchmark':>16} {'ratio':>7}")
for name, key, ref in [("RedisStore.save (SET PX)", "save", "SET"), ("RedisStore.get (GET)", "get", "GET"),
                       ("RedisStore.take (GETDEL)", "take", "GET"), ("blocking facade get", "blocking_get", "GET")]:
    print(f"{name:34} {o[key]:>10.0f} {b[ref]:>16.0f} {o[key]/b[ref]*100:>6.0f}%")
PY
