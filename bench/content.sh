#!/usr/bin/env bash
# Content identity and duplicates benchmark on the 100k realistic tree, against peers in the
# same run:
#   - content phase files/s, against a bare sampled-hash pass over the same files
#     (crates/sd-core/examples/sampled_pass.rs);
#   - `spacedrive dupes TREE` (not indexed, warm cache) against jdupes, rdfind, fclones (and
#     czkawka with WITH_CZKAWKA=1), each installed when missing or skipped with a message, and its
#     groups against crates/spacedrive/tests/dupes_truth.py, the tests' independent ground truth,
#     on the realistic tree and on the tiny tree (TINY files, mostly empty: per-file costs);
#   - `spacedrive dupes` on the already indexed library.
#
#   bench/content.sh [WORKDIR]      # default /tmp/sd-bench; the trees (sd-treegen) are made once
#   FILES=5000 TINY=0 RUNS=1 bench/content.sh /tmp/sd-smoke   # a quick run, no tiny tree
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/sd-bench}
runs=${RUNS:-5}
sd=$here/target/release/spacedrive
files=${FILES:-100000}
tiny=${TINY:-1000000}
tree=$work/real$((files / 1000))k
data=$work/data-content
mkdir -p "$work"
. "$here/bench/common.sh"
need hyperfine
# Duplicate finders (byte-exact groups), each as: name, command, for the tree in $1.
peers_for() {
  peers=()
  local t=$1
  want jdupes && peers+=(jdupes "sh -c 'jdupes -r $t > /dev/null 2>&1'")
  want fclones && peers+=(fclones "sh -c 'fclones group -. -A $t -o /dev/null 2>/dev/null'")
  want rdfind && peers+=(rdfind "sh -c 'rdfind -outputname /tmp/peer-rdfind.txt $t > /dev/null 2>&1'")
  want czkawka_cli && peers+=(czkawka "sh -c 'czkawka_cli dup -d $t -H -m 1 -N -M -W > /dev/null 2>&1'")
  return 0
}
(cd "$here" && cargo build --release -q && cargo build --release -q --example sampled_pass)
gen_tree "$tree" -n "$files"

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
print(f"ratio                {secs/bare:7.2f}x the bare pass  (target <= 1.25x)")
PY

# 2. Duplicates on the path, cold (not indexed), against peers; `race TREE NAME` writes
#    $work/dupes-NAME.json (timings), dupes-NAME-out.json (our groups), dupes-NAME-truth.json.
race() {
  local t=$1 name=$2 args=()
  peers_for "$t"
  for ((i = 0; i < ${#peers[@]}; i += 2)); do args+=(-n "${peers[i]}" "${peers[i + 1]}"); done
  find "$t" -type f -print0 | xargs -0 cat > /dev/null        # warm the page cache
  hyperfine -N -w 1 -r "$runs" --export-json "$work/dupes-$name.json" \
    -n spacedrive "$sd --data-dir $work/data-cold --json dupes $t" "${args[@]}" >/dev/null
  "$sd" --data-dir "$work/data-cold" --json dupes "$t" > "$work/dupes-$name-out.json"
  "$sd" --data-dir "$work/data-cold" stop >/dev/null 2>&1 || true
  python3 "$here/crates/spacedrive/tests/dupes_truth.py" "$t" > "$work/dupes-$name-truth.json"
}
race "$tree" real
races=(real)
if [ "$tiny" -gt 0 ]; then
  tinytree=$work/tiny$((tiny / 1000))k
  [ "$tiny" = 1000000 ] && tinytree=$work/tiny1m
  gen_tree "$tinytree" -n "$tiny" --profile tiny
  race "$tinytree" tiny
  races+=(tiny)
fi

# 3. Duplicates from the indexed library.
hyperfine -N -w 1 -r 10 --export-json "$work/dupes-indexed.json" -n "spacedrive dupes (indexed)" "$sd --data-dir $data --json dupes" >/dev/null

# Same groups as the ground truth?
"$sd" --data-dir "$data" --json dupes > "$work/dupes-indexed-out.json"
"$sd" --data-dir "$data" stop >/dev/null
python3 - "$work" "${races[@]}" <<'PY' | tee -a "$report"
import json, sys
work, races = sys.argv[1], sys.argv[2:]
def same(r, t):
    got = (len(r["groups"]), r["duplicate_files"], r["redundant_files"], r["wasted_bytes"])
    want = (t["dup_groups"], t["files_in_groups"], t["redundant"], t["redundant_bytes"])
    return f"{got} vs dupes_truth.py {want}: {'SAME' if got == want else 'DIFFERENT'}"
for name in races:
    res = {r["command"]: r["median"] for r in json.load(open(f"{work}/dupes-{name}.json"))["results"]}
    us = res.pop("spacedrive")
    print(f"dupes {name} tree (path, cold) {us:7.3f} s")
    for peer, secs in sorted(res.items(), key=lambda kv: kv[1]):
        print(f"  {peer:18s} {secs:7.3f} s   spacedrive is {secs/us:5.2f}x faster")
    truth = json.load(open(f"{work}/dupes-{name}-truth.json"))
    print(f"  groups {same(json.load(open(f'{work}/dupes-{name}-out.json')), truth)}")
idx = json.load(open(f"{work}/dupes-indexed.json"))["results"][0]["median"]
print(f"dupes (indexed)      {idx:7.3f} s  (target < 1 s)")
truth = json.load(open(f"{work}/dupes-real-truth.json"))
print(f"  groups {same(json.load(open(f'{work}/dupes-indexed-out.json')), truth)}")
PY
echo "report: $report"
