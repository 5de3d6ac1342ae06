#!/usr/bin/env bash
# Filename search on the 1M-entry library: engine latency (the daemon's own timing, p50/p99
# over many queries) and CLI end-to-end against plocate on the same tree, in the same run; plus
# the in-memory index's build time and the daemon's memory with it loaded.
#
#   bench/search.sh [WORKDIR]     # default /tmp/sd-bench; tree (sd-treegen) and library are made once
#
# Needs: python3; hyperfine and plocate are installed when missing (bench/common.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/sd-bench}
sd=$here/target/release/spacedrive
files=${FILES:-1000000}   # FILES=20000 for a quick run
tree=$work/tiny$((files / 1000))k
[ "$files" = 1000000 ] && tree=$work/tiny1m
data=$work/data-search
. "$here/bench/common.sh"
need hyperfine
need plocate
need updatedb
(cd "$here" && cargo build --release -q)
"$sd" --data-dir "$data" stop >/dev/null 2>&1 || true   # measure this build's daemon
gen_tree "$tree" -n "$files" --profile tiny
if ! "$sd" --data-dir "$data" --json location list 2>/dev/null | grep -q '"files"'; then
  "$sd" --data-dir "$data" location add "$tree" --no-watch >/dev/null
fi
# No watcher, so no start-up rescan runs beside the measurements.
"$sd" --data-dir "$data" location set 1 --watch off >/dev/null
"$sd" --data-dir "$data" stop >/dev/null
rm -f /tmp/peer-plocate.db   # plocate's database of the same tree, nothing pruned
updatedb -U "$tree" -o /tmp/peer-plocate.db --prunepaths "" --prunefs "" --prunenames ""

queries=(report invoice café résumé json photo draft 2019 "summer 2019" mod.rs screenshot zzzz ab e IMG_)
# Build the in-memory index once (reported), then measure warm queries.
built=$("$sd" --data-dir "$data" --json search zzzz | python3 -c 'import json,sys; print(json.load(sys.stdin)["index_built_ms"])')
pid=$("$sd" --data-dir "$data" --json status | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"]["pid"])')
rss=$(awk '/VmRSS/ {print $2}' /proc/"$pid"/status)
: > "$work/search-took.txt"
for q in "${queries[@]}"; do
  for _ in $(seq 20); do
    "$sd" --data-dir "$data" --json search "$q" --limit 50 | python3 -c 'import json,sys; print(json.load(sys.stdin)["took_us"])' >> "$work/search-took.txt"
  done
done

args=()
for q in report café json; do
  args+=(-n "spacedrive search $q" "$sd --data-dir $data --json search $q --limit 50")
  # Same answer size for both: the first 50 matches (plocate matches whole paths, we match names).
  args+=(-n "plocate $q" "plocate -d /tmp/peer-plocate.db -i -l 50 $q")
done
hyperfine -N -w 3 -r 30 --export-json "$work/search.json" "${args[@]}" >/dev/null

python3 - "$work" "$built" "$rss" "${#queries[@]}" <<'PY' | tee "$work/search-report.txt"
import json, statistics, sys
work, built, rss, nq = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
took = sorted(int(l) / 1000 for l in open(f"{work}/search-took.txt"))
p = lambda q: took[round((len(took) - 1) * q)]
print(f"in-memory index build  {built} ms; daemon RSS with it loaded {rss/1024:.0f} MB")
print(f"engine latency ({nq} queries x 20): p50 {p(0.5):.2f} ms  p99 {p(0.99):.2f} ms  max {took[-1]:.2f} ms  (targets: p50 < 5, p99 < 50)")
res = {r["command"]: r["median"] * 1000 for r in json.load(open(f"{work}/search.json"))["results"]}
for q in ("report", "café", "json"):
    ours, peer = res[f"spacedrive search {q}"], res[f"plocate {q}"]
    print(f"CLI end to end '{q}': spacedrive {ours:6.1f} ms  plocate {peer:6.1f} ms  ratio {ours/peer:4.2f}x  (target <= 2x)")
PY
"$sd" --data-dir "$data" stop >/dev/null   # leave no daemon behind
