#!/usr/bin/env bash
# Builds the loader as static Linux binaries (musl libc linked in, no dynamic loader, no file
# needed at run time) for x86_64 and aarch64 (arm64), and prints each one's path and size in
# bytes, one line per architecture, aarch64 first, x86_64 last:
#
#   target/aarch64-unknown-linux-musl/release/envoy-xds-configmap-loader 1327160
#   target/x86_64-unknown-linux-musl/release/envoy-xds-configmap-loader 1599248
#
# Usage: scripts/build-static.sh [--arch x86_64|aarch64|all] [CARGO-BUILD-ARGS...]
# --arch (also amd64, arm64) builds one architecture; the default is all. Each line is
# "PATH SIZE" and the last line is the x86_64 binary whenever it is built, so a caller that
# wants the binary that runs on this (x86_64) machine takes `tail -n 1`. Progress goes to
# stderr. Further arguments go on to cargo build (e.g. --features).
#
# Each binary is also copied to target/image/ARCH/envoy-xds-configmap-loader (ARCH as OCI
# names it: amd64, arm64), where the Containerfile takes it for that architecture's image.
#
# Installs what is missing: the Rust targets x86_64- and aarch64-unknown-linux-musl (rustup);
# musl-gcc (apt package musl-tools), which ring needs for its C and assembly parts on x86_64;
# clang (ring's C and assembly for aarch64) and binutils-aarch64-linux-gnu (ar and objcopy
# for aarch64 objects). Fails when a binary is not statically linked, is not of its
# architecture, or is larger than the budget (SIZE_BUDGET, default 1600000 bytes, for each).
# Idempotent: a second run rebuilds nothing.
#
# Reproducible: the same commit gives the same bytes, wherever the tree, the cargo home and
# the toolchain are (scripts/test-reproducible.sh checks it). The paths that reach the
# binary (panic locations) are remapped to fixed prefixes: the source directory to /src,
# the target directory to /target, the cargo home (where the crates' sources are) to /cargo
# and the toolchain to /toolchain. SOURCE_DATE_EPOCH (the commit's time, unless set) is
# exported: gcc and clang take __DATE__ and __TIME__ from it, so no C file can stamp the
# build's time (nothing in the binary carries a time today). The cc crate tracks it, so a
# new commit rebuilds ring's C code and relinks (about 1 min per architecture).
set -euo pipefail
cd "$(dirname "$0")/.."

NAME=envoy-xds-configmap-loader
SIZE_BUDGET=${SIZE_BUDGET:-1600000}
TARGET_DIR=${CARGO_TARGET_DIR:-target}

say() { echo "build-static: $*" >&2; }

arch=all
case "${1:-}" in
  --arch)
    arch=${2:?"--arch needs x86_64, aarch64 or all"}
    shift 2
    ;;
  --arch=*)
    arch=${1#--arch=}
    shift
    ;;
esac
case "$arch" in
  all) archs=(aarch64 x86_64) ;;
  x86_64 | amd64) archs=(x86_64) ;;
  aarch64 | arm64) archs=(aarch64) ;;
  *)
    say "unknown architecture '$arch': want x86_64 (amd64), aarch64 (arm64) or all"
    exit 2
    ;;
esac

# What each architecture needs: its Rust target, and the programs (with their apt packages).
targets=() programs=() packages=()
for a in "${archs[@]}"; do
  targets+=("$a-unknown-linux-musl")
  case "$a" in
    x86_64) programs+=(musl-gcc) packages+=(musl-tools) ;;
    aarch64)
      programs+=(clang aarch64-linux-gnu-ar aarch64-linux-gnu-objcopy)
      packages+=(clang binutils-aarch64-linux-gnu)
      ;;
  esac
done

installed=$(rustup target list --installed 2>/dev/null || true)
for t in "${targets[@]}"; do
  if ! grep -qx "$t" <<<"$installed"; then
    say "installing the Rust target $t"
    rustup target add "$t" >&2
  fi
done

missing=()
for p in "${programs[@]}"; do
  command -v "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${packages[*]} (for ${missing[*]})"
  if [ "$(id -u)" -ne 0 ]; then
    say "${missing[*]} missing, and installing needs root: apt-get install ${packages[*]}"
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "${packages[@]}" >/dev/null
fi

# The fixed prefixes for the paths that reach the binary. rustc applies the last prefix
# that matches, so the target directory (often inside the source directory) comes after it.
src=$(pwd -P)
mkdir -p "$TARGET_DIR"
target_abs=$(cd "$TARGET_DIR" && pwd -P)
cargo_home=${CARGO_HOME:-$HOME/.cargo}
cargo_home=$(cd "$cargo_home" 2>/dev/null && pwd -P || echo "$cargo_home")
sysroot=$(rustc --print sysroot)
remap='"--remap-path-prefix='"$src"'=/src", "--remap-path-prefix='"$target_abs"'=/target"'
remap="$remap"', "--remap-path-prefix='"$cargo_home"'=/cargo", "--remap-path-prefix='"$sysroot"'=/toolchain"'
if [ -z "${SOURCE_DATE_EPOCH:-}" ] && git rev-parse --git-dir >/dev/null 2>&1; then
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)
fi
if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then export SOURCE_DATE_EPOCH; fi

host=$(rustc -vV | sed -n 's/^host: //p')
gcc_ld="$sysroot/lib/rustlib/$host/bin/gcc-ld"
rust_lld="$sysroot/lib/rustlib/$host/bin/rust-lld"

# Code generation and link flags, for these targets only (host build scripts keep theirs):
# - relocation-model=static: a plain static executable instead of static-pie; no
#   run-time relocations to carry or apply (-45 KB), and `file` says "statically linked".
# - link with the rust-lld shipped in the toolchain, folding identical functions
#   (--icf=all; -10 KB); Rust promises no distinct addresses for distinct functions.
#   x86_64 links through musl-gcc with rust-lld as its linker; without that lld the system
#   linker is used and the binary is about 10 KB larger. aarch64 links with rust-lld itself
#   (and rustc's own musl start files and libc), since no aarch64 musl-gcc is at hand.
# - no .eh_frame_hdr, and .eh_frame removed after the link (objcopy): the unwind tables
#   of std, musl and ring (x86_64 152 KB, aarch64 131 KB). With panic = "abort" nothing
#   unwinds; they served only the addresses of a RUST_BACKTRACE=1 backtrace, which without
#   symbols (strip) names no function anyway. A panic still prints its message and
#   location, then aborts.
# The size-related profile settings (opt-level, LTO, ...) live in Cargo.toml.
build_one() { # ARCH [CARGO-BUILD-ARGS...]: builds, checks and prints "PATH SIZE"
  local a=$1 target="$1-unknown-linux-musl" flags objcopy machine oci linker=()
  shift
  local tv=${target//-/_}
  flags='"-C", "relocation-model=static", '"$remap"
  case "$a" in
    x86_64)
      # ring builds its C code with the cc crate: point it at musl-gcc explicitly.
      export "CC_$tv=musl-gcc" "AR_$tv=ar"
      if [ -x "$gcc_ld/ld.lld" ]; then
        flags="$flags"', "-C", "link-arg=-B'"$gcc_ld"'", "-C", "link-arg=-fuse-ld=lld", "-C", "link-arg=-Wl,--icf=all", "-C", "link-arg=-Wl,--no-eh-frame-hdr"'
      else
        say "no rust-lld in the toolchain ($gcc_ld): linking x86_64 with the system linker"
      fi
      objcopy=objcopy machine="Advanced Micro Devices X86-64" oci=amd64
      ;;
    aarch64)
      export "CC_$tv=clang" "CFLAGS_$tv=--target=aarch64-linux-musl" "AR_$tv=aarch64-linux-gnu-ar"
      if [ ! -x "$rust_lld" ]; then
        say "no rust-lld in the toolchain ($rust_lld): aarch64 cannot be linked"
        exit 1
      fi
      linker=(--config "target.$target.linker = \"$rust_lld\"")
      flags="$flags"', "-C", "link-arg=--icf=all", "-C", "link-arg=--no-eh-frame-hdr"'
      objcopy=aarch64-linux-gnu-objcopy machine="AArch64" oci=arm64
      ;;
  esac

  say "building $target"
  cargo build --release --locked --quiet --target "$target" --bin "$NAME" \
    --config "target.$target.rustflags = [$flags]" "${linker[@]}" "$@" >&2

  local bin="$TARGET_DIR/$target/release/$NAME"
  if [ ! -x "$bin" ]; then
    say "no binary at $bin"
    exit 1
  fi

  # Without a header no unwinder looks for the table (no PT_GNU_EH_FRAME), so it can go.
  # Cargo rebuilds nothing when only the output changed, so this runs on every call: on a
  # binary that has no .eh_frame any more, objcopy has nothing to remove and leaves it as is.
  if readelf -SW "$bin" | grep -q ' \.eh_frame '; then
    "$objcopy" --remove-section=.eh_frame "$bin" "$bin.tmp"
    mv "$bin.tmp" "$bin"
  fi

  local desc got size
  desc=$(file -b "$bin")
  case "$desc" in
    *"statically linked"*) ;;
    *)
      say "$bin is not statically linked: $desc"
      exit 1
      ;;
  esac
  if readelf -lW "$bin" | grep -qE '^ *(INTERP|DYNAMIC) '; then
    say "$bin has a program interpreter or a dynamic section"
    exit 1
  fi
  got=$(readelf -hW "$bin" | sed -n 's/^ *Machine: *//p')
  if [ "$got" != "$machine" ]; then
    say "$bin is for '$got', not $machine"
    exit 1
  fi

  size=$(stat -c %s "$bin")
  if [ "$size" -gt "$SIZE_BUDGET" ]; then
    say "$bin is $size bytes, over the budget of $SIZE_BUDGET bytes"
    exit 1
  fi

  mkdir -p "$TARGET_DIR/image/$oci"
  cp -p "$bin" "$TARGET_DIR/image/$oci/$NAME"
  echo "$bin $size"
}

for a in "${archs[@]}"; do
  build_one "$a" "$@"
done
