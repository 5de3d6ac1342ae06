#!/usr/bin/env bash
# Thumbnails of photo-sized JPEGs (4000×3000, made once by crates/sd-core/examples/photos.rs) to
# 256 px WebP, in the same run and with the same parallelism:
#   - ours: crates/sd-core/examples/thumbs.rs, the sidecar job's own path (reduced-size JPEG
#     decode, SIMD resize, lossy WebP, each file written whole with fsync), JOBS threads;
#   - vipsthumbnail (libvips: shrink-on-load, the fastest common tool), JOBS processes through
#     xargs, VIPS_CONCURRENCY=1 each;
#   - ImageMagick `convert -thumbnail`, JOBS processes through xargs.
# Each is run RUNS times, alternating; medians of thumbnails/s and of peak RSS (of the largest
# process: ours is one process with JOBS threads, the peers run JOBS processes at a time).
# A peer that cannot be installed (apt-get: libvips-tools, imagemagick) is skipped with a message.
#
#   bench/thumbs.sh [WORKDIR]        # default /tmp/sd-bench
#   PHOTOS=40 RUNS=1 bench/thumbs.sh /tmp/sd-smoke   # a quick run
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/sd-bench}
n=${PHOTOS:-300}
runs=${RUNS:-3}
jobs=${JOBS:-$(nproc)}
size=256
photos=$work/photos$n
out=$work/thumbs-out
mkdir -p "$work"
. "$here/bench/common.sh"
command -v /usr/bin/time >/dev/null || { echo "bench: /usr/bin/time is required (apt-get install time)" >&2; exit 1; }
(cd "$here" && cargo build --release -q -p sd-core --example thumbs --example photos)
ex=$here/target/release/examples

if [ ! -f "$photos/.complete" ]; then
  echo "making $n photo-sized JPEGs in $photos (once)…" >&2
  rm -rf "$photos"
  "$ex/photos" "$photos" "$n" 4000 3000
  touch "$photos/.complete"
fi
ls "$photos"/*.jpg > "$work/photos.list"
cat "$photos"/*.jpg > /dev/null   # warm the page cache

# The peers: name and command (reading file names on stdin, writing into $out/NAME).
peers=()
if want vipsthumbnail; then
  peers+=(vips "xargs -P $jobs -n 10 env VIPS_CONCURRENCY=1 vipsthumbnail -s $size -o '$out/vips/%s.webp[Q=80]'")
fi
# The real ImageMagick, from Debian's package: another program called `convert` may come first on
# PATH (a wrapper), so `want convert` would find that one and not install the package.
im=/usr/bin/convert
if [ ! -x "$im" ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get install -y -qq imagemagick >/dev/null 2>&1 || true
fi
if [ -x "$im" ]; then
  peers+=(imagemagick "xargs -P $jobs -I{} sh -c '$im \"\$1\" -thumbnail ${size}x${size} $out/imagemagick/\$(basename \"\$1\" .jpg).webp' _ {}")
else
  echo "bench: ImageMagick (/usr/bin/convert) is not available (apt-get install imagemagick); skipping it" >&2
fi

results=$work/thumbs-results.txt
: > "$results"
measure() { # NAME COMMAND (stdin: the photo list)
  local name=$1 cmd=$2
  rm -rf "${out:?}/$name"
  mkdir -p "$out/$name"
  local t
  # A tool that fails on some files still gets its time; the count of thumbnails made says it.
  t=$( { /usr/bin/time -f "TIME %e %M" sh -c "$cmd" < "$work/photos.list" > /dev/null; } 2>&1 | grep '^TIME' | tail -1 || true)
  local made
  made=$(find "$out/$name" -name '*.webp' | wc -l)
  echo "$name $t $made" >> "$results"
}
for r in $(seq "$runs"); do
  measure ours "xargs $ex/thumbs --size $size --threads $jobs --out $out/ours"
  for ((i = 0; i < ${#peers[@]}; i += 2)); do
    measure "${peers[i]}" "${peers[i + 1]}"
  done
done

python3 - "$results" "$n" "$jobs" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
n, jobs = int(sys.argv[2]), int(sys.argv[3])
by = {}
for name, _, secs, rss_kb, made in rows:
    by.setdefault(name, []).append((float(secs), int(rss_kb), int(made)))
print(f"{n} JPEGs of 4000x3000 -> {256} px WebP, {jobs} at a time, medians of {len(by['ours'])} runs")
ours = statistics.median(s for s, _, _ in by["ours"])
for name, rs in by.items():
    secs = statistics.median(s for s, _, _ in rs)
    rss = statistics.median(r for _, r, _ in rs) / 1024
    made = min(m for _, _, m in rs)
    ratio = "" if name == "ours" else f"   ours is {secs / ours:5.2f}x faster"
    print(f"  {name:12s} {secs:7.2f} s  {made / secs:7.1f} thumbnails/s  peak RSS {rss:6.1f} MB  ({made} made){ratio}")
PY
echo "results: $results"
