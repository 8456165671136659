#!/usr/bin/env bash
# The arm64 tier: the unit tests and the integration tests against the Kubernetes API
# emulator, built for aarch64-unknown-linux-musl and run under qemu-user on this x86_64
# machine: the test programs by cargo (CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUNNER), the
# aarch64 loader they start through the same qemu (LOADER_RUNNER, see tests/support/process.rs),
# so no binfmt_misc registration is needed.
#
#   --lib, tests/emulator_selftest.rs, tests/loader.rs, tests/faults.rs, tests/promises.rs,
#   tests/selection.rs, tests/operations.rs, tests/json_differential.rs
#
# Not here, x86_64 only: tests/envoy_e2e.rs (Envoy is an x86_64 program here),
# tests/real_apiserver.rs (the kube-apiserver built for this machine), tests/layout.rs (reads
# the source tree; nothing of the architecture in it).
#
# Emulation is several times slower, so the tests' bounds on how fast the loader answers are
# multiplied by TEST_TIME_SCALE (default here 5; the bounds on how long it must wait are
# not). Installs what is missing: the Rust target aarch64-unknown-linux-musl (rustup); clang
# and binutils-aarch64-linux-gnu (ring's C and assembly, its archive) and qemu-user-static
# (qemu-aarch64-static) with apt-get. Prints cargo's test output and the time the tier took
# (build and run): about 4 min on 2 cores from clean, 50 s of it building.
# Arguments go on to cargo test (e.g. a test name filter after --).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
TARGET=aarch64-unknown-linux-musl

say() { echo "test-arm64: $*"; }

if ! rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
  say "installing the Rust target $TARGET"
  rustup target add "$TARGET"
fi
missing=()
for p in clang:clang aarch64-linux-gnu-ar:binutils-aarch64-linux-gnu qemu-aarch64-static:qemu-user-static; do
  command -v "${p%%:*}" >/dev/null 2>&1 || missing+=("${p#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]} (apt-get)"
  if [ "$(id -u)" -ne 0 ]; then
    say "FAIL: ${missing[*]} missing, and installing needs root: apt-get install ${missing[*]}"
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The same C toolchain as scripts/build-static.sh for ring; the toolchain's rust-lld links.
host=$(rustc -vV | sed -n 's/^host: //p')
rust_lld="$(rustc --print sysroot)/lib/rustlib/$host/bin/rust-lld"
if [ ! -x "$rust_lld" ]; then
  say "FAIL: no rust-lld in the toolchain ($rust_lld)"
  exit 1
fi
qemu=$(command -v qemu-aarch64-static)
export CC_aarch64_unknown_linux_musl=clang
export CFLAGS_aarch64_unknown_linux_musl=--target=aarch64-linux-musl
export AR_aarch64_unknown_linux_musl=aarch64-linux-gnu-ar
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER="$rust_lld"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUNNER="$qemu"
export LOADER_RUNNER="$qemu"
export TEST_TIME_SCALE=${TEST_TIME_SCALE:-5}

tests=(--lib --test emulator_selftest --test loader --test faults --test promises
  --test selection --test operations --test json_differential)

cargo test --locked --target "$TARGET" "${tests[@]}" --no-run
built=$(date +%s)
cargo test --locked --target "$TARGET" "${tests[@]}" "$@"
done=$(date +%s)

# The loader the tests started must really be aarch64: a host binary would prove nothing.
bin="${CARGO_TARGET_DIR:-target}/$TARGET/debug/envoy-xds-configmap-loader"
machine=$(readelf -hW "$bin" | sed -n 's/^ *Machine: *//p')
if [ "$machine" != AArch64 ]; then
  say "FAIL: $bin is for '$machine', not AArch64"
  exit 1
fi
say "PASS under $($qemu --version | head -n 1) with TEST_TIME_SCALE=$TEST_TIME_SCALE:" \
  "$((done - started))s ($((built - started))s building, $((done - built))s running)"
