#!/usr/bin/env bash
# Shallow-index benchmark: our indexer against `find -printf` and plocate's `updatedb` on the same
# trees, in the same run, plus peak RSS, library bytes per entry and hierarchy-query latency.
#
#   bench/index.sh [WORKDIR]        # default WORKDIR: /tmp/sd-bench (corpora are generated once)
#   RUNS=5 TREES="tiny1m real100k" bench/index.sh    # trees: tinyN{k,m}, realN{k,m} files
#
# Needs: python3; hyperfine and plocate are installed when missing (bench/common.sh), trees come
# from sd-treegen, the project's generator.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/sd-bench}
runs=${RUNS:-5}
trees=${TREES:-"tiny1m real100k"}
sd=$here/target/release/spacedrive
mkdir -p "$work"

. "$here/bench/common.sh"
need hyperfine
have_updatedb=
want updatedb && have_updatedb=1
(cd "$here" && cargo build --release -q)

gen() { # name -> path of a generated tree
  local name=$1 root=$work/$1
  local profile count
  case $name in
    tiny*) profile=tiny count=${name#tiny} ;;
    real*) profile=realistic count=${name#real} ;;
    *) echo "unknown tree $name (tinyNk, tinyNm, realNk)" >&2; exit 2 ;;
  esac
  case $count in
    *m) count=$((${count%m} * 1000000)) ;;
    *k) count=$((${count%k} * 1000)) ;;
    *) echo "unknown tree $name (tinyNk, tinyNm, realNk)" >&2; exit 2 ;;
  esac
  gen_tree "$root" -n "$count" --profile "$profile" >&2
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

  walk="sh -c 'find $tree -printf \"%i %s %T@ %p\\n\" > /dev/null'"   # the floor for a metadata walk
  peer=(-n find "$walk")
  prepares=(--prepare true)
  if [ -n "$have_updatedb" ]; then   # a peer that builds a searchable filename database
    peer+=(-n updatedb "sh -c 'rm -f /tmp/peer-plocate.db; updatedb -U $tree -o /tmp/peer-plocate.db --prunepaths \"\" --prunefs \"\" --prunenames \"\"'")
    prepares+=(--prepare true)
  fi
  fresh="$sd --data-dir $data location add $tree"
  prep="sh -c '$sd --data-dir $data stop >/dev/null 2>&1; rm -rf $data'"
  hyperfine -N -w 1 -r "$runs" --export-json "$work/$name-index.json" \
    "${peer[@]}" "${prepares[@]}" --prepare "$prep" -n spacedrive-index "$fresh" >/dev/null

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
o = med(idx["spacedrive-index"])
if "updatedb" in idx:
    u = med(idx["updatedb"])
    print(f"  updatedb (plocate)    {u:8.3f} s   {u/f:5.2f}x find")
    print(f"  spacedrive index      {o:8.3f} s   {o/f:5.2f}x find   {o/u:5.2f}x updatedb   (target <= 1.0x find on 1M files, issue 17)")
else:
    print(f"  spacedrive index      {o:8.3f} s   {o/f:5.2f}x find   (updatedb skipped)   (target <= 1.0x find on 1M files, issue 17)")
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
