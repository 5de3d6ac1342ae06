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
big=$work/big/big-${size_mb}m.bin
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
mkdir -p "$work/big"
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
# The sending device shares only what is sent: a location over the whole work folder would
# index every other tree there (a 1M-file one takes the sender's CPU for the whole transfer).
"$sd" "${a[@]}" location add "$work/big" >/dev/null
[[ " $parts " == *" tree "* ]] && "$sd" "${a[@]}" location add "$tree" >/dev/null
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
# Alternated, RUNS times each, medians; each copy is synced and deleted before the next run,
# and before each run as much memory as the copy needs is written and freed. On this VM
# memory never touched since boot (or given back to the host by the balloon) costs ~2 s per
# GiB on its first write, 12x a write into memory freed a moment ago (`dd` of 2 GiB: 4.4 s,
# then 0.36 s), so whichever tool got the fresh memory lost by seconds: seen here, 4 s of
# the receiver's 6 s went to copying into new page-cache pages, 0.06 s of the stream's.
warm_memory() { dd if=/dev/zero of="$run/scratch" bs=1M count="$size_mb" status=none; rm -f "$run/scratch"; }
warm "$big"
cs=() os=()
for _ in $(seq "${RUNS:-3}"); do
  warm_memory
  cs+=("$("$ceiling" "$big" "$run/ceiling.bin" | awk '{print $1}')")
  sync; rm -f "$run/ceiling.bin"
  warm_memory
  os+=("$(secs "$sd" "${b[@]}" cp "$ida:$big" "$run/inbox/")")
  cmp -s "$big" "$run/inbox/$(basename "$big")" || { echo "the copy differs" >&2; exit 1; }
  rm -f "$run/inbox/$(basename "$big")"
  sync
done
python3 - "$size_mb" "${cs[*]}" "${os[*]}" <<'PY'
import statistics, sys
mb = int(sys.argv[1])
cs = [float(x) for x in sys.argv[2].split()]
os_ = [float(x) for x in sys.argv[3].split()]
c, o = statistics.median(cs), statistics.median(os_)
print(f"runs: plain stream {' '.join(f'{x:.2f}' for x in cs)} s; spacedrive cp {' '.join(f'{x:.2f}' for x in os_)} s")
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
