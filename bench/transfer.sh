#!/usr/bin/env bash
# Transfer between two paired daemons on loopback, same run:
#  1. one 2 GiB file: `spacedrive cp DEVICE:/file DIR` (a pull: every byte BLAKE3-hashed on both
#     ends, synced before it gets its name, indexed) against the transport's ceiling, the same
#     bytes over a plain iroh bidirectional stream written to a file (examples/stream_ceiling);
#  2. the 100k realistic tree (sd-treegen): `spacedrive cp` against `rsync -a` to an rsync daemon
#     on 127.0.0.1 (no checksums, no sync).
# Sources are read warm (page cache) by every tool; each copy is synced before the next tool
# runs, and all are removed at the end, not between tools: on ext4 without a journal (this
# project's build machine) creating a file right after many were deleted costs far more (the
# inode allocator skips each inode freed in the last minutes — longer while its table block is
# dirty — scanning past them one by one), so the tool running after a deletion paid for the one
# before it (`cp -a` of a 20k tree: 4.1 s, 7.1 s right after another copy was deleted).
#
#   bench/transfer.sh [WORKDIR]            # default /tmp/sd-bench
#   FILES=20000 SIZE_MB=512 bench/transfer.sh
#   PARTS=file bench/transfer.sh           # only the big file (PARTS="file tree" by default)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/sd-bench}
files=${FILES:-100000}
size_mb=${SIZE_MB:-2048}
parts=${PARTS:-"file tree"}
tree=$work/real$((files / 1000))k
big=$work/big-${size_mb}m.bin
run=$(mktemp -d /tmp/sd-bench-transfer.XXXXXX)
target=${CARGO_TARGET_DIR:-$here/target}
sd=$target/release/spacedrive
ceiling=$target/release/examples/stream_ceiling
mkdir -p "$work"
export SPACEDRIVE_NET_HOST=127.0.0.1 SPACEDRIVE_MDNS=0 XDG_DATA_HOME=$run/xdg
. "$here/bench/common.sh"
need rsync
(cd "$here" && cargo build --release -q -p spacedrive --bin spacedrive && cargo build --release -q -p sd-net --example stream_ceiling)
gen_tree "$tree" -n "$files"
[ -f "$big" ] || head -c "$((size_mb << 20))" /dev/urandom >"$big"

rsyncd=
cleanup() {
  for d in a b; do "$sd" --data-dir "$run/$d" stop >/dev/null 2>&1 || true; done
  [ -n "$rsyncd" ] && kill "$rsyncd" 2>/dev/null || true
  rm -rf "$run"
}
trap cleanup EXIT
a=(--data-dir "$run/a")
b=(--data-dir "$run/b")
mkdir -p "$run/inbox" "$run/rsync-dst"
"$sd" "${a[@]}" location add "$work" >/dev/null
"$sd" "${b[@]}" location add "$run/inbox" >/dev/null

# Pair b with a by code.
"$sd" "${a[@]}" --json network pair generate >"$run/gen.out" &
gen=$!
for _ in $(seq 100); do [ -s "$run/gen.out" ] && break; sleep 0.1; done
code=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["code"])' "$run/gen.out")
addr=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["addrs"][0])' "$run/gen.out")
"$sd" "${b[@]}" network pair join "$code" --addr "$addr" >/dev/null
wait $gen
ida=$("$sd" "${a[@]}" --json network status | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')

secs() { python3 -c 'import sys,time; t=time.monotonic(); import subprocess; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); print(f"{time.monotonic()-t:.3f}")' "$@"; }
warm() { cat "$1" >/dev/null 2>&1 || tar -cf /dev/null "$1" 2>/dev/null || true; }

if [[ " $parts " == *" file "* ]]; then
echo "== one ${size_mb} MiB file"
warm "$big"
c=$("$ceiling" "$big" "$run/ceiling.bin" | awk '{print $1}')
sync
o=$(secs "$sd" "${b[@]}" cp "$ida:$big" "$run/inbox/")
cmp -s "$big" "$run/inbox/$(basename "$big")" || { echo "the copy differs" >&2; exit 1; }
mv "$run/inbox/$(basename "$big")" "$run/big.copy"; sync
python3 - "$size_mb" "$c" "$o" <<'PY'
import sys
mb, c, o = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
print(f"plain iroh stream {c:.2f} s ({mb*1.048576/c:.0f} MB/s)   spacedrive cp {o:.2f} s ({mb*1.048576/o:.0f} MB/s)")
print(f"spacedrive reaches {100*c/o:.0f}% of the plain stream (target >= 80%)")
PY
fi

[[ " $parts " == *" tree "* ]] || exit 0

echo "== the $(basename "$tree") tree"
cat >"$run/rsyncd.conf" <<CONF
use chroot = no
uid = $(id -u)
gid = $(id -g)
[dst]
path = $run/rsync-dst
read only = no
CONF
port=$((20000 + RANDOM % 20000))
rsync --daemon --no-detach --config="$run/rsyncd.conf" --port="$port" --address=127.0.0.1 &
rsyncd=$!
sleep 0.5
warm "$tree"
r=$(secs rsync -a "$tree" "rsync://127.0.0.1:$port/dst/")
sync
o=$(secs "$sd" "${b[@]}" cp "$ida:$tree" "$run/inbox/")
n=$(find "$run/inbox/$(basename "$tree")" | wc -l)
python3 - "$r" "$o" "$n" <<'PY'
import sys
r, o, n = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
print(f"rsync -a to an rsync daemon {r:.2f} s   spacedrive cp {o:.2f} s ({n} entries)")
print(f"spacedrive / rsync = {o/r:.2f}x (target < 1)")
PY
