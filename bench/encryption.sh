#!/usr/bin/env bash
# Encrypted library against a plain one, same tree, same run: the 1M shallow index (a fresh
# `location add`), the first search after a daemon start (which builds the in-memory index by
# reading every entry through SQLCipher) and warm searches. Target: encrypted <= 1.3x plain.
#
#   bench/encryption.sh [WORKDIR]     # default /tmp/sd-bench; FILES=20000 for a quick run
#
# Needs: python3; hyperfine is installed when missing (bench/common.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/sd-bench}
runs=${RUNS:-3}
target_dir=${CARGO_TARGET_DIR:-$here/target}
sd=$target_dir/release/spacedrive
files=${FILES:-1000000}
tree=$work/tiny$((files / 1000))k
[ "$files" = 1000000 ] && tree=$work/tiny1m
mkdir -p "$work"
. "$here/bench/common.sh"
need hyperfine
(cd "$here" && cargo build --release -q)
gen_tree "$tree" -n "$files" --profile tiny
find "$tree" -printf x >/dev/null   # warm the page cache once

pass=$work/bench-passphrase
printf 'a bench passphrase\n' > "$pass"
for kind in plain encrypted; do
  "$sd" --data-dir "$work/data-$kind" stop >/dev/null 2>&1 || true
done
create() { # kind -> command line that makes a fresh, empty library
  local kind=$1 data=$work/data-$1 extra=""
  [ "$kind" = encrypted ] && extra="--encrypt --remember --passphrase-file $pass"
  echo "sh -c '$sd --data-dir $data stop >/dev/null 2>&1; rm -rf $data; $sd --data-dir $data library create Bench $extra >/dev/null'"
}

# 1. Shallow index of the whole tree into a fresh library (the library's creation, and with it
# the key derivation, is outside the timing).
hyperfine -N -w 0 -r "$runs" --export-json "$work/encryption-index.json" \
  --prepare "$(create plain)" -n plain "$sd --data-dir $work/data-plain location add $tree --no-watch" \
  --prepare "$(create encrypted)" -n encrypted "$sd --data-dir $work/data-encrypted location add $tree --no-watch" \
  >/dev/null

# 2. Searches on the libraries the last runs left.
queries=(report invoice café json photo draft 2019 "summer 2019" zzzz IMG_)
: > "$work/encryption-search.txt"
for kind in plain encrypted; do
  data=$work/data-$kind
  for _ in $(seq "$runs"); do
    # A fresh daemon: the first search builds the in-memory index from the database.
    "$sd" --data-dir "$data" stop >/dev/null
    "$sd" --data-dir "$data" location list >/dev/null
    built=$("$sd" --data-dir "$data" --json search zzzz | python3 -c 'import json,sys; print(json.load(sys.stdin)["index_built_ms"])')
    echo "$kind build $built" >> "$work/encryption-search.txt"
  done
  for q in "${queries[@]}"; do
    for _ in $(seq 10); do
      took=$("$sd" --data-dir "$data" --json search "$q" --limit 50 | python3 -c 'import json,sys; print(json.load(sys.stdin)["took_us"])')
      echo "$kind warm $took" >> "$work/encryption-search.txt"
    done
  done
  "$sd" --data-dir "$data" stop >/dev/null
done
du_plain=$(du -sk "$work/data-plain/libraries" | cut -f1)
du_enc=$(du -sk "$work/data-encrypted/libraries" | cut -f1)

python3 - "$work" "$files" "$du_plain" "$du_enc" <<'PY' | tee "$work/encryption-report.txt"
import json, statistics, sys
work, files, du_plain, du_enc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
idx = {r["command"]: r for r in json.load(open(f"{work}/encryption-index.json"))["results"]}
p, e = idx["plain"]["median"], idx["encrypted"]["median"]
print(f"shallow index of {files} files (median of {len(idx['plain']['times'])}): plain {p:.2f} s, encrypted {e:.2f} s, ratio {e/p:.2f}x (target <= 1.3x)")
rows = [l.split() for l in open(f"{work}/encryption-search.txt")]
def med(kind, what):
    return statistics.median(float(v) for k, w, v in rows if k == kind and w == what)
bp, be = med("plain", "build"), med("encrypted", "build")
print(f"first search after a start (index build): plain {bp:.0f} ms, encrypted {be:.0f} ms, ratio {be/bp:.2f}x (target <= 1.3x)")
wp, we = med("plain", "warm") / 1000, med("encrypted", "warm") / 1000
print(f"warm search, engine p50: plain {wp:.2f} ms, encrypted {we:.2f} ms, ratio {we/wp:.2f}x")
print(f"library on disk: plain {du_plain/1024:.0f} MB, encrypted {du_enc/1024:.0f} MB")
PY
