# Sourced by bench/*.sh: trees from the project's generator, and the peer tools, installed here
# when missing (nothing outside this repository is needed).
#
#   gen_tree ROOT [sd-treegen options]   make ROOT once (kept while ROOT.stats.json is there)
#   need TOOL                            install TOOL if missing, or stop the bench
#   want TOOL                            install TOOL if missing, or say it is skipped (status 1)
# TOOL: hyperfine, updatedb, plocate, jdupes, rdfind, fclones, rsync, czkawka_cli, vipsthumbnail,
# convert (ImageMagick).

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

gen_tree() {
  local root=$1
  shift
  # A tree is reused only if sd-treegen made it (an older generator's tree has other stats).
  if [ -f "$root.stats.json" ] && grep -q '"sampled_near_dup_groups"' "$root.stats.json"; then
    return 0
  fi
  (cd "$repo" && cargo build --release -q --workspace)
  rm -rf "$root" "$root.stats.json"
  "${CARGO_TARGET_DIR:-$repo/target}/release/sd-treegen" "$root" "$@" >/dev/null
}

# Where each tool comes from: a Debian package, else a crate.
_apt_of() {
  case $1 in
    updatedb | plocate) echo plocate ;;
    vipsthumbnail) echo libvips-tools ;;
    convert) echo imagemagick ;;
    czkawka_cli | fclones) ;;
    *) echo "$1" ;;
  esac
}
_crate_of() {
  case $1 in
    fclones | hyperfine) echo "$1" ;;
    czkawka_cli) if [ "${WITH_CZKAWKA:-0}" = 1 ]; then echo czkawka_cli; fi ;; # ~15 min to build
  esac
}

_apt_updated=
want() {
  local tool=$1 pkg crate tried=()
  command -v "$tool" >/dev/null && return 0
  pkg=$(_apt_of "$tool")
  crate=$(_crate_of "$tool")
  if [ -n "$pkg" ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    tried+=("apt-get install $pkg")
    if [ -z "$_apt_updated" ]; then
      apt-get update -qq >/dev/null 2>&1 || true
      _apt_updated=1
    fi
    apt-get install -y -qq "$pkg" >/dev/null 2>&1 || true
  fi
  if ! command -v "$tool" >/dev/null && [ -n "$crate" ] && command -v cargo >/dev/null; then
    tried+=("cargo install $crate")
    cargo install -q --locked "$crate" >/dev/null 2>&1 || true
  fi
  command -v "$tool" >/dev/null && return 0
  local how
  how=$(IFS=,; echo "${tried[*]:-no installer for it here}")
  if [ "$tool" = czkawka_cli ] && [ "${WITH_CZKAWKA:-0}" != 1 ]; then
    how="set WITH_CZKAWKA=1 to build it"
  fi
  echo "bench: $tool is not available ($how); skipping it" >&2
  return 1
}

need() {
  want "$1" || { echo "bench: $1 is required" >&2; exit 1; }
}
