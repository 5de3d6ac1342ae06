#!/usr/bin/env bash
# The web UI on the 1M-entry library: time to the first rows of the folder view and of a search
# results page (headless Chromium, the page's navigation timing, median of 7 fresh loads), and
# `location.list` over HTTP against the same call on the Unix socket (300 each, interleaved,
# same run). Targets: first render < 200 ms; HTTP ≤ 2× the socket at p50.
#
#   bench/ui.sh [WORKDIR]     # default /tmp/sd-bench; tree (sd-treegen) and library made once
#   FILES=20000 bench/ui.sh   # a quick run on a smaller tree
#
# Needs: chromium (installed when missing, as root).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/sd-bench}
sd=$here/target/release/spacedrive
files=${FILES:-1000000}
tree=$work/tiny$((files / 1000))k
[ "$files" = 1000000 ] && tree=$work/tiny1m
data=$work/data-ui
. "$here/bench/common.sh"
if ! command -v chromium >/dev/null; then
  apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null
fi
(cd "$here" && cargo build --release -q)
"$sd" --data-dir "$data" stop >/dev/null 2>&1 || true   # measure this build's daemon
gen_tree "$tree" -n "$files" --profile tiny
if ! "$sd" --data-dir "$data" --json location list 2>/dev/null | grep -q '"files"'; then
  "$sd" --data-dir "$data" location add "$tree" --no-watch >/dev/null
fi
# The folder of the tree with the most entries directly inside: the worst case for a listing.
folder=$(python3 - "$tree" <<'PY'
import os, sys
best = max(((len(fs) + len(ds), d) for d, ds, fs in os.walk(sys.argv[1])), default=(0, sys.argv[1]))
print(best[1])
PY
)
echo "tree: $tree ($files files); largest folder: $folder ($(ls -A "$folder" | wc -l) entries)"
"$sd" --data-dir "$data" --json search report >/dev/null   # build the search index once
cd "$here"
SD_BENCH_DATA=$data SD_BENCH_FOLDER=$folder SD_BENCH_QUERY=${QUERY:-report} \
  cargo test --release -q --workspace --test tests ui_bench -- --ignored --nocapture 2>&1 |
  grep -E "first render|p50|error|panicked"
"$sd" --data-dir "$data" stop >/dev/null
