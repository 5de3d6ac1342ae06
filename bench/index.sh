#!/usr/bin/env bash
# Shallow-index benchmark: our indexer against `find -printf` and plocate's `updatedb` on the same
# trees, in the same run, plus peak RSS, library bytes per entry and hierarchy-query latency.
#
#   bench/index.sh [WORKDIR]        # default WORKDIR: /tmp/sd-bench (corpora are generated once)
#   RUNS=5 TREES="tiny1m real100k" bench/index.sh
#
# Needs: python3, hyperfine, plocate (installed with apt-get when missing), a release build.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/sd-bench}
runs=${RUNS:-5}
trees=${TREES:-"tiny1m real100k"}
shared=${SHARED:-$here/../shared}
sd=$here/target/release/spacedrive
mkdir -p "$work"

command -v hyperfine >/dev/null && command -v updatedb >/dev/null || {
  apt-get update -qq && apt-get install -y -qq hyperfine plocate >/dev/null
}
(cd "$here" && cargo build --release -q)

gen() { # name -> path of a generated tree
  local name=$1 root=$work/$1
  if [ ! -f "$root.stats.json" ]; then
    rm -rf "$root"
    case $name in
      tiny1m) python3 "$shared/corpus/gen_corpus.py" "$root" -n 1000000 --profile tiny >/dev/null ;;
      real100k) python3 "$shared/corpus/gen_corpus.py" "$root" -n 100000 >/dev/null ;;
      *) echo "unknown tree $name" >&2; exit 2 ;;
    esac
  fi
  echo "$root"
}

report=$work/report.txt
: > "$report"
for name in $trees; do
  tree=$(gen "$name")
  data=$work/data-$name
  echo "== $name: $tree" | tee -a "$report"
  find "$tree" -printf x >/dev/null  # warm the cache once
  "$sd" --data-dir "$data" stop >/dev/null 2>&1 || true
  rm -rf "$data"

  walk=$("$shared/bench/peers.sh" walk "$tree" | head -1)
  updatedb_cmd=$("$shared/bench/peers.sh" index "$tree")
  fresh="$sd --data-dir $data location add $tree"
  prep="sh -c '$sd --data-dir $data stop >/dev/null 2>&1; rm -rf $data'"
  hyperfine -N -w 1 -r "$runs" --export-json "$work/$name-index.json" \
    -n find "$walk" -n updatedb "$updatedb_cmd" \
    --prepare 'true' --prepare 'true' --prepare "$prep" -n spacedrive-index "$fresh" >/dev/null

  # One more fresh index to read peak RSS (the daemon's VmHWM) and the library's size.
  eval "$prep"
  $fresh >/dev/null
  pid=$("$sd" --data-dir "$data" --json status | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"]["pid"])')
  rss_kb=$(awk '/VmHWM/ {print $2}' /proc/"$pid"/status)
  entries=$("$sd" --data-dir "$data" --json library info | python3 -c 'import json,sys; print(json.load(sys.stdin)["entries"])')

  # Rescan of the unchanged tree (daemon stays up between runs).
  hyperfine -N -w 1 -r "$runs" --export-json "$work/$name-rescan.json" \
    -n find "$walk" -n spacedrive-rescan "$sd --data-dir $data location rescan 1" >/dev/null

  # Hierarchy queries: a small folder's subtree and the whole tree's first 1000 entries,
  # end to end through the CLI; both should cost about the same on a big library.
  small=$(python3 - "$tree" <<'PY'
import os, sys
best = None
for dp, dns, fns in os.walk(sys.argv[1]):
    n = len(dns) + len(fns)
    if dp.count(os.sep) - sys.argv[1].count(os.sep) >= 3 and 10 <= n <= 40 and dns:
        best = dp; break
print(best or sys.argv[1])
PY
)
  small_n=$("$sd" --data-dir "$data" --json ls "$small" --recursive | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["entries"]))')
  hyperfine -N -w 2 -r 20 --export-json "$work/$name-query.json" \
    -n "subtree of a small folder ($small_n entries)" "$sd --data-dir $data --json ls '$small' --recursive" \
    -n "recursive size of the root" "$sd --data-dir $data --json ls $tree --limit 1" \
    -n "first 1000 entries of the whole subtree" "$sd --data-dir $data --json ls $tree --recursive --limit 1000" >/dev/null
  "$sd" --data-dir "$data" stop >/dev/null
  lib_bytes=$(du -sb "$data/libraries" | cut -f1)

  python3 - "$work" "$name" "$rss_kb" "$entries" "$lib_bytes" <<'PY' | tee -a "$report"
import json, sys
work, name, rss_kb, entries, lib_bytes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
def load(kind):
    return {r["command"]: r for r in json.load(open(f"{work}/{name}-{kind}.json"))["results"]}
idx, res, q = load("index"), load("rescan"), load("query")
med = lambda r: r["median"]
f = med(idx["find"])
print(f"  find -printf          {f:8.3f} s")
print(f"  updatedb (plocate)    {med(idx['updatedb']):8.3f} s   {med(idx['updatedb'])/f:5.2f}x find")
o = med(idx["spacedrive-index"])
print(f"  spacedrive index      {o:8.3f} s   {o/f:5.2f}x find   {o/med(idx['updatedb']):5.2f}x updatedb   (target <= 2x find)")
rf, ro = med(res["find"]), med(res["spacedrive-rescan"])
print(f"  spacedrive rescan     {ro:8.3f} s   {ro/rf:5.2f}x find (same run: find {rf:.3f} s)   (target <= 1.5x)")
print(f"  entries               {entries:>10,}   {entries/o:,.0f} entries/s")
print(f"  peak RSS (daemon)     {rss_kb/1024:8.1f} MB   (target <= 150 MB)")
print(f"  library size          {lib_bytes/1e6:8.1f} MB   {lib_bytes/entries:6.1f} bytes/entry   (target < 300)")
for cmd, r in q.items():
    print(f"  query: {cmd:45s} {med(r)*1000:7.1f} ms (CLI end to end)")
PY
done
echo "report: $report"
