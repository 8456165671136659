#!/usr/bin/env bash
# Builds the loader as one static x86_64 Linux binary (musl libc linked in, no dynamic
# loader, no file needed at run time) and prints its path and size in bytes:
#
#   target/x86_64-unknown-linux-musl/release/envoy-xds-configmap-loader 1441328
#
# Installs what is missing: the Rust target x86_64-unknown-linux-musl (rustup) and
# musl-gcc (apt package musl-tools), which ring needs for its C and assembly parts.
# Fails when the binary is not statically linked or is larger than the budget
# (SIZE_BUDGET, default 1600000 bytes). Idempotent: a second run rebuilds nothing.
#
# The last line of stdout is always "PATH SIZE"; progress goes to stderr. Arguments go on to
# cargo build (e.g. --features, --locked).
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=x86_64-unknown-linux-musl
NAME=envoy-xds-configmap-loader
SIZE_BUDGET=${SIZE_BUDGET:-1600000}
TARGET_DIR=${CARGO_TARGET_DIR:-target}

say() { echo "build-static: $*" >&2; }

if ! rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
  say "installing the Rust target $TARGET"
  rustup target add "$TARGET" >&2
fi

if ! command -v musl-gcc >/dev/null 2>&1; then
  say "installing musl-tools (musl-gcc)"
  if [ "$(id -u)" -ne 0 ]; then
    say "musl-gcc is missing and installing it needs root: apt-get install musl-tools"
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq musl-tools >/dev/null
fi

# ring builds its C code with the cc crate: point it at musl-gcc explicitly.
export CC_x86_64_unknown_linux_musl=musl-gcc
export AR_x86_64_unknown_linux_musl=ar

# Code generation and link flags for this target only (host build scripts keep theirs):
# - relocation-model=static: a plain static executable instead of static-pie; no
#   run-time relocations to carry or apply (-45 KB), and `file` says "statically linked".
# - link with the rust-lld shipped in the toolchain, folding identical functions
#   (--icf=all; -10 KB); Rust promises no distinct addresses for distinct functions.
#   Without that lld the system linker is used and the binary is about 10 KB larger.
# - no .eh_frame_hdr, and .eh_frame removed after the link (objcopy): the unwind tables
#   of std, musl and ring, 152 KB. With panic = "abort" nothing unwinds; they served only
#   the addresses of a RUST_BACKTRACE=1 backtrace, which without symbols (strip) names no
#   function anyway. A panic still prints its message and location, then aborts.
# The size-related profile settings (opt-level, LTO, ...) live in Cargo.toml.
flags='"-C", "relocation-model=static"'
host=$(rustc -vV | sed -n 's/^host: //p')
gcc_ld="$(rustc --print sysroot)/lib/rustlib/$host/bin/gcc-ld"
if [ -x "$gcc_ld/ld.lld" ]; then
  flags="$flags"', "-C", "link-arg=-B'"$gcc_ld"'", "-C", "link-arg=-fuse-ld=lld", "-C", "link-arg=-Wl,--icf=all", "-C", "link-arg=-Wl,--no-eh-frame-hdr"'
else
  say "no rust-lld in the toolchain ($gcc_ld): linking with the system linker"
fi

cargo build --release --locked --quiet --target "$TARGET" --bin "$NAME" \
  --config "target.$TARGET.rustflags = [$flags]" "$@" >&2

BIN="$TARGET_DIR/$TARGET/release/$NAME"
if [ ! -x "$BIN" ]; then
  say "no binary at $BIN"
  exit 1
fi

# Without a header no unwinder looks for the table (no PT_GNU_EH_FRAME), so it can go.
# Cargo rebuilds nothing when only the output changed, so this runs on every call: on a
# binary that has no .eh_frame any more, objcopy has nothing to remove and leaves it as is.
if readelf -SW "$BIN" | grep -q ' \.eh_frame '; then
  objcopy --remove-section=.eh_frame "$BIN" "$BIN.tmp"
  mv "$BIN.tmp" "$BIN"
fi

desc=$(file -b "$BIN")
case "$desc" in
  *"statically linked"*) ;;
  *)
    say "$BIN is not statically linked: $desc"
    exit 1
    ;;
esac

size=$(stat -c %s "$BIN")
if [ "$size" -gt "$SIZE_BUDGET" ]; then
  say "$BIN is $size bytes, over the budget of $SIZE_BUDGET bytes"
  exit 1
fi

echo "$BIN $size"
