#!/usr/bin/env bash
# Content identity and duplicates benchmark on the 100k realistic tree, against peers in the
# same run:
#   - content phase files/s, against a bare sampled-hash pass over the same files
#     (crates/sd-core/examples/sampled_pass.rs);
#   - `spacedrive dupes TREE` (not indexed, warm cache) against jdupes, rdfind, fclones
#     (../shared/bench/peers.sh dupes), and its groups against truth_dups.py;
#   - `spacedrive dupes` on the already indexed library.
#
#   bench/content.sh [WORKDIR]      # default /tmp/sd-bench; the tree is generated once
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/sd-bench}
runs=${RUNS:-5}
shared=${SHARED:-$here/../shared}
sd=$here/target/release/spacedrive
tree=$work/real100k
data=$work/data-content
mkdir -p "$work"
command -v jdupes >/dev/null && command -v rdfind >/dev/null && command -v fclones >/dev/null && command -v hyperfine >/dev/null \
  || "$shared/bench/peers.sh" install
(cd "$here" && cargo build --release -q && cargo build --release -q --example sampled_pass)
[ -f "$tree.stats.json" ] || python3 "$shared/corpus/gen_corpus.py" "$tree" -n 100000 >/dev/null

find "$tree" -type f -size +0 -print0 > "$work/files.nul"
cat "$work/files.nul" | xargs -0 cat > /dev/null        # warm the page cache
report=$work/content-report.txt
: > "$report"

# 1. Content phase vs a bare sampled-hash pass (same files: no rules on this location).
bare=()
phase=()
for i in $(seq "$runs"); do
  bare+=("$("$here/target/release/examples/sampled_pass" < "$work/files.nul" | awk '{print $4}')")
  "$sd" --data-dir "$data" stop >/dev/null 2>&1 || true
  rm -rf "$data"
  "$sd" --data-dir "$data" --json location add "$tree" --mode content --no-default-rules --no-gitignore > "$work/add.json"
  read -r secs files < <(python3 -c 'import json,sys; p=json.load(open(sys.argv[1]))["job"]["progress"]; print(p["content_ms"]/1000, p["content_done"])' "$work/add.json")
  phase+=("$secs" "$files")
done
python3 - "${bare[@]}" -- "${phase[@]}" <<'PY' | tee -a "$report"
import statistics, sys
args = sys.argv[1:]
cut = args.index("--")
bare = statistics.median(float(x) for x in args[:cut])
ph = [(float(args[i]), int(args[i + 1])) for i in range(cut + 1, len(args), 2)]
secs = statistics.median(p[0] for p in ph)
files = ph[0][1]
print(f"content phase        {secs:7.3f} s  {files/secs:9,.0f} files/s  (target >= 50,000)")
print(f"bare sampled pass    {bare:7.3f} s  {files/bare:9,.0f} files/s")
print(f"ratio                {secs/bare:7.2f}x the bare pass  (target <= 1.5x)")
PY

# 2. Duplicates on the path, cold (not indexed), against peers.
mapfile -t peers < <("$shared/bench/peers.sh" dupes "$tree")
args=()
for p in "${peers[@]}"; do args+=(-n "$(echo "$p" | awk '{print $3}')" "$p"); done
hyperfine -N -w 1 -r "$runs" --export-json "$work/dupes.json" \
  -n spacedrive "$sd --data-dir $work/data-cold --json dupes $tree" "${args[@]}" >/dev/null
"$sd" --data-dir "$work/data-cold" stop >/dev/null 2>&1 || true

# 3. Duplicates from the indexed library.
hyperfine -N -w 1 -r 10 --export-json "$work/dupes-indexed.json" -n "spacedrive dupes (indexed)" "$sd --data-dir $data --json dupes" >/dev/null

# Same groups as the ground truth?
truth=$(python3 "$shared/bench/truth_dups.py" "$tree")
"$sd" --data-dir "$data" --json dupes > "$work/dupes-indexed-out.json"
"$sd" --data-dir "$work/data-cold" --json dupes "$tree" > "$work/dupes-cold-out.json"
"$sd" --data-dir "$work/data-cold" stop >/dev/null 2>&1 || true
"$sd" --data-dir "$data" stop >/dev/null
python3 - "$work" "$truth" <<'PY' | tee -a "$report"
import json, sys
work, truth = sys.argv[1], sys.argv[2]
ours = json.load(open(f"{work}/dupes-indexed-out.json"))
cold = json.load(open(f"{work}/dupes-cold-out.json"))
t = dict(kv.split("=") for kv in truth.split())
res = {r["command"]: r["median"] for r in json.load(open(f"{work}/dupes.json"))["results"]}
idx = json.load(open(f"{work}/dupes-indexed.json"))["results"][0]["median"]
us = res.pop("spacedrive")
print(f"dupes (path, cold)   {us:7.3f} s")
for name, secs in sorted(res.items(), key=lambda kv: kv[1]):
    print(f"  {name:18s} {secs:7.3f} s   spacedrive is {secs/us:5.2f}x faster")
print(f"dupes (indexed)      {idx:7.3f} s  (target < 1 s)")
for label, r in (("path", cold), ("indexed", ours)):
    got = (len(r["groups"]), r["duplicate_files"], r["redundant_files"], r["wasted_bytes"])
    want = (int(t["dup_groups"]), int(t["files_in_groups"]), int(t["redundant"]), int(t["redundant_bytes"]))
    print(f"groups ({label:7s})     {got} vs truth_dups {want}: {'SAME' if got == want else 'DIFFERENT'}")
PY
echo "report: $report"
