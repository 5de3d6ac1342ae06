#!/usr/bin/env bash
# Copy benchmark on the 100k realistic tree (~3 GB, ~105k entries): `spacedrive cp` (a job in the
# daemon, every file verified with BLAKE3) against `cp -a` and `rsync -a`, in the same run, on two
# targets: another folder on the source's filesystem, and a tmpfs this script mounts. Runs are
# interleaved (cp, rsync, ours, cp, ...) because this disk's timing varies from run to run; each
# is preceded by writing and deleting as many bytes as the tree (untimed: see warm_memory) and
# times the command only, then an untimed `sync`, removal of the copy and another `sync`. After our
# first run on each target, `rsync -anciH --delete SRC/ DEST/` must list nothing (checksums every
# file). Prints medians and ratios, and the same up to the end of the `sync` that follows (our job
# has synced its copies before it reports completion; cp -a has not).
#
#   bench/copy.sh [WORKDIR]       # default /tmp/sd-bench; the tree is generated once
#   RUNS=5 bench/copy.sh /work/corpora
#
# Needs: root (for the tmpfs mount), python3; rsync is installed when missing (bench/common.sh),
# the tree comes from sd-treegen. The same-filesystem target is WORKDIR/copy-dst (SAMEFS to
# change it).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/sd-bench}
runs=${RUNS:-3}
target_dir=${CARGO_TARGET_DIR:-$here/target}
sd=$target_dir/release/spacedrive
files=${FILES:-100000}   # FILES=2000 RUNS=1 for a quick run
tree=$work/real$((files / 1000))k
samefs=${SAMEFS:-$work/copy-dst}
tmpfs=${TMPFS:-/mnt/sd-bench-tmpfs}
mkdir -p "$work"
export SPACEDRIVE_DATA_DIR=$work/data-copy
XDG_DATA_HOME=$(mktemp -d)
export XDG_DATA_HOME

. "$here/bench/common.sh"
need rsync
(cd "$here" && cargo build --release -q --workspace)
gen_tree "$tree" -n "$files"

name=$(basename "$tree")
mounted=
cleanup() {
  "$sd" stop >/dev/null 2>&1 || true
  rm -rf "${samefs:?}"/*-cp "${samefs:?}"/*-rsync "${samefs:?}"/*-spacedrive "$XDG_DATA_HOME"
  rmdir "$samefs" 2>/dev/null || true
  if [ -n "$mounted" ]; then umount "$tmpfs" && rmdir "$tmpfs"; fi
}
trap cleanup EXIT
mkdir -p "$tmpfs"
if ! mountpoint -q "$tmpfs"; then mount -t tmpfs -o size=6g tmpfs "$tmpfs"; mounted=1; fi

# A fresh daemon of this build with its library made, so neither start-up is timed.
"$sd" stop >/dev/null 2>&1 || true
rm -rf "$SPACEDRIVE_DATA_DIR"
"$sd" library create bench >/dev/null
"$sd" status | sed -n 1p
find "$tree" -type f -print0 | xargs -0 cat >/dev/null   # warm the source's page cache once

results=$work/copy-times.txt
checks=$work/copy-checks.txt
ours_out=$work/copy-ours.txt
report=$work/copy-report.txt
: > "$results"
: > "$checks"

# This machine is a VM: memory it has never written costs the host a fault per page the first
# time (about 2 s per GiB here), and a copy fills the page cache with new pages. So before each
# timed run, as many bytes as the tree are written beside the target and deleted (untimed): every
# tool then writes into memory already touched, not whichever ran first into fresh memory.
tree_mb=$(( $(du -sb "$tree" | cut -f1) / 1048576 + 1 ))
warm_memory() { # PARENT
  dd if=/dev/zero of="$1/.sd-bench-scratch" bs=1M count="$tree_mb" status=none
  rm -f "$1/.sd-bench-scratch"
  sync
}

# run TARGET TOOL PARENT: one timed copy of the tree into PARENT/$name, then untimed clean-up.
# On the disk, each run writes into a fresh folder and the copies are removed only after the last
# run: removing 3 GB on this `discard`-mounted ext4 slows the next writes, whoever runs next.
run() {
  local target=$1 tool=$2 parent=$3 dst=$3/$name t0 t1
  mkdir -p "$parent"
  warm_memory "$parent"
  t0=$EPOCHREALTIME
  case $tool in
    cp) cp -a "$tree" "$dst" ;;
    rsync) rsync -a "$tree/" "$dst/" ;;
    spacedrive)
      if ! "$sd" cp "$tree" "$parent" --on-conflict skip > "$ours_out.run" 2>&1; then
        t1=$EPOCHREALTIME
        echo "spacedrive cp failed on $target after $(awk "BEGIN {print $t1 - $t0}") s:" >&2
        cat "$ours_out.run" >&2
        exit 1
      fi ;;
  esac
  t1=$EPOCHREALTIME
  echo "$target $tool $(awk "BEGIN {print $t1 - $t0}")" >> "$results"
  sync
  t1=$EPOCHREALTIME   # until the data is on disk: what our job guarantees when it reports done
  echo "$target $tool+sync $(awk "BEGIN {print $t1 - $t0}")" >> "$results"
  if [ "$tool" = spacedrive ] && [ ! -f "$ours_out.$target" ]; then
    cp "$ours_out.run" "$ours_out.$target"
    { echo "target $target: our job (first run):"; sed 's/^/  /' "$ours_out.run"; } | tee -a "$checks"
    verify "$target" "$dst"
  fi
  if [ "$target" = tmpfs ]; then rm -rf "$dst"; sync; fi
}

# verify TARGET DEST: the copy must equal the source (names, types, contents, links, metadata).
verify() {
  local out=$work/copy-verify-$1.txt
  rsync -anciH --delete "$tree/" "$2/" > "$out"
  awk -v t="$1" -v f="$out" '
    /^\*deleting/ { extra++; next }
    substr($0, 3, 1) == "+" { missing++; next }
    substr($0, 3, 1) == "c" { content++; next }
    { meta++ }
    END {
      n = extra + missing + content + meta
      if (n == 0) print "target " t ": verify (rsync -anciH --delete SRC/ DEST/): SAME as the source"
      else printf "target %s: verify: %d DIFFERENCES: %d content, %d missing, %d extra, %d metadata only (list: %s)\n", t, n, content, missing, extra, meta, f
    }' "$out" | tee -a "$checks"
}

rm -f "$ours_out".*
rm -rf "${samefs:?}/$name" "${tmpfs:?}/$name"
for target in same-fs tmpfs; do
  parent=$samefs
  [ "$target" = tmpfs ] && parent=$tmpfs
  for i in $(seq "$runs"); do
    for tool in cp rsync spacedrive; do
      if [ "$target" = tmpfs ]; then run "$target" "$tool" "$parent"; else run "$target" "$tool" "$parent/$i-$tool"; fi
    done
  done
  rm -rf "${samefs:?}"/*-cp "${samefs:?}"/*-rsync "${samefs:?}"/*-spacedrive
  sync
done
rm -f "$ours_out.run"

{
python3 - "$results" "$runs" <<'PY'
import collections, statistics, sys
times = collections.defaultdict(list)
for line in open(sys.argv[1]):
    target, tool, secs = line.split()
    times[(target, tool)].append(float(secs))
for target in ("same-fs", "tmpfs"):
    cp, rs, us = (statistics.median(times[(target, t)]) for t in ("cp", "rsync", "spacedrive"))
    print(f"target {target}: cp -a {cp:.1f} s, rsync -a {rs:.1f} s, spacedrive cp {us:.1f} s"
          f" = {us/cp:.2f}x cp -a, {us/rs:.2f}x rsync -a (target <= 1.2x cp -a)")
    cps, uss = (statistics.median(times[(target, t + "+sync")]) for t in ("cp", "spacedrive"))
    print(f"  until on disk (command + sync): cp -a {cps:.1f} s, spacedrive cp {uss:.1f} s = {uss/cps:.2f}x")
    runs = "; ".join(f"{t} " + " ".join(f"{s:.1f}" for s in times[(target, t)]) for t in ("cp", "rsync", "spacedrive"))
    print(f"  runs ({sys.argv[2]} each, s): {runs}")
PY
cat "$checks"
} | tee "$report"
echo "report: $report"
