#!/usr/bin/env bash
# Proves the static build reproducible: two clean builds of this tree, in two directories of
# different paths, each with its own target directory and the second with a cargo home of
# its own too (a copy of this one's registry, used offline), must give byte-identical
# binaries. Builds them with scripts/build-static.sh, both at once, and compares sha256.
#
# Usage: scripts/test-reproducible.sh [--arch x86_64|aarch64]   (default x86_64)
#
# The tree built is what git knows of this checkout: its tracked files and untracked ones
# not ignored, as they are on disk, so a change not yet committed is built too. Both builds
# get the same SOURCE_DATE_EPOCH, the commit's time. Installs nothing itself
# (scripts/build-static.sh installs what the build needs). Prints both sums; exit 1 if they
# differ, with the first differing bytes. Removes the copies on exit (REPRO_KEEP=1 keeps
# them). About 46 s on 2 cores, the two builds at once.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd -P)
started=$(date +%s)

arch=x86_64
case "${1:-}" in
  --arch) arch=${2:?"--arch needs x86_64 or aarch64"} ;;
  --arch=*) arch=${1#--arch=} ;;
  "") ;;
  *)
    echo "usage: scripts/test-reproducible.sh [--arch x86_64|aarch64]" >&2
    exit 2
    ;;
esac
case "$arch" in
  x86_64 | amd64) triple=x86_64-unknown-linux-musl ;;
  aarch64 | arm64) triple=aarch64-unknown-linux-musl ;;
  *)
    echo "test-reproducible: unknown architecture '$arch'" >&2
    exit 2
    ;;
esac
NAME=envoy-xds-configmap-loader

say() { echo "test-reproducible: $*"; }
fail() {
  echo "test-reproducible: FAIL: $*" >&2
  exit 1
}

work=""
cleanup() { [ -n "$work" ] && [ "${REPRO_KEEP:-}" != 1 ] && rm -rf "$work"; }
trap cleanup EXIT
mkdir -p target
work=$(mktemp -d "$repo/target/repro.XXXXXX")

SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)
export SOURCE_DATE_EPOCH

# The two places: different depths and names, so no path can come out the same by chance.
one="$work/one/src"
two="$work/second-build/in/a/deeper/place/envoy-xds-configmap-loader.copy"
home_two="$work/second-build/cargo-home"
cargo_home=${CARGO_HOME:-$HOME/.cargo}
for d in "$one" "$two"; do
  mkdir -p "$d"
  git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
    tar --null -T - -cf - | tar -xf - -C "$d"
done
mkdir -p "$home_two"
# Both builds are offline: the crates come from this cargo home's registry, and a copy of it.
cargo fetch --locked --quiet >&2
cp -a "$cargo_home/registry" "$home_two/"
if [ -f "$cargo_home/config.toml" ]; then cp "$cargo_home/config.toml" "$home_two/"; fi

say "building $triple twice: $one and $two (cargo home $home_two)"
(cd "$one" && scripts/build-static.sh --arch "$arch" --offline >"$work/one.out" 2>"$work/one.err") &
pid_one=$!
(cd "$two" && CARGO_HOME="$home_two" scripts/build-static.sh --arch "$arch" --offline \
  >"$work/two.out" 2>"$work/two.err") &
pid_two=$!
wait "$pid_one" || fail "the build in $one failed: $(tail -n 20 "$work/one.err")"
wait "$pid_two" || fail "the build in $two failed: $(tail -n 20 "$work/two.err")"

bin_one="$one/target/$triple/release/$NAME"
bin_two="$two/target/$triple/release/$NAME"
sum_one=$(sha256sum "$bin_one" | cut -d ' ' -f 1)
sum_two=$(sha256sum "$bin_two" | cut -d ' ' -f 1)
say "sha256 $sum_one  $(stat -c %s "$bin_one") bytes  ${bin_one#"$repo/"}"
say "sha256 $sum_two  $(stat -c %s "$bin_two") bytes  ${bin_two#"$repo/"}"
if [ "$sum_one" != "$sum_two" ]; then
  cmp -l "$bin_one" "$bin_two" | head -n 5 >&2 || true
  fail "two builds of the same tree differ"
fi
say "PASS: $triple reproducible, two clean builds byte-identical ($(($(date +%s) - started))s)"
