#!/usr/bin/env bash
# Remote call latency: `location list` answered by a paired device over loopback (QUIC, iroh)
# against the same request answered by the local daemon, same run, interleaved.
#
#   bench/net.sh [N]        N calls each (default 500)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo="$here/.."
n=${1:-500}
work=$(mktemp -d /tmp/sd-bench-net.XXXXXX)
trap 'for d in a b; do "$bin" --data-dir "$work/$d" stop >/dev/null 2>&1 || true; done; rm -rf "$work"' EXIT

(cd "$repo" && cargo build --release -q -p spacedrive --bin spacedrive --example net_latency)
bin="$repo/target/release/spacedrive"
export SPACEDRIVE_NET_HOST=127.0.0.1 SPACEDRIVE_MDNS=0
a=(--data-dir "$work/a")
b=(--data-dir "$work/b")

# A library with a few locations on the answering side.
for i in 1 2 3; do mkdir -p "$work/tree$i" && echo "$i" >"$work/tree$i/f.txt"; done
for i in 1 2 3; do "$bin" "${a[@]}" location add "$work/tree$i" >/dev/null; done
"$bin" "${b[@]}" library create Empty >/dev/null

# Pair b with a by code.
"$bin" "${a[@]}" --json network pair generate >"$work/gen.out" &
gen=$!
for _ in $(seq 50); do [ -s "$work/gen.out" ] && break; sleep 0.1; done
code=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["code"])' "$work/gen.out")
addr=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["addrs"][0])' "$work/gen.out")
"$bin" "${b[@]}" network pair join "$code" --addr "$addr" >/dev/null
wait $gen
ida=$("$bin" "${a[@]}" --json network status | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')

"$repo/target/release/examples/net_latency" "$work/b" "$ida" "$n"
