#!/usr/bin/env bash
# Measures the loader against its performance budgets and prints one Markdown table:
# propagation of an update next to a bare watch client, the one-shot cold start, memory,
# JSON extraction against serde_json, the static binary's size, CPU and memory per update
# when updates come seconds apart (paired A/B: the shipped binary twice, or against the build
# named by BENCH_SPACED_B), a fleet of loaders on one API emulator, and a label selection of
# 1,000 ConfigMaps among 5,000 (one-shot, first snapshot, memory, one update among them, with
# the same keys from one named ConfigMap beside it), and the writer's critical path against
# the naive floor (open, write, close, rename), paired, with its syscalls counted by strace
# (README, section "Performance"). Everything runs against the
# Kubernetes API emulator over TLS on loopback.
#
# It builds what it needs: the static x86_64 musl binary through scripts/build-static.sh when that
# works (else the release glibc binary, as the table then says), and the benchmark programs (Cargo examples under tests/bench/). A full run takes a few minutes and writes the table,
# with the date, the machine and the binary, to tests/bench/RESULTS.md and into README.md
# between the bench markers. BENCH_QUICK=1 is a short smoke run with small counts; its table
# goes to target/bench/RESULTS-quick.md only. Not part of CI.
#
# A missed budget shows in the table as **MISSED**; the script fails only when a
# measurement cannot be made.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR=${CARGO_TARGET_DIR:-target}
QUICK=${BENCH_QUICK:-0}
[ "$QUICK" = "0" ] && QUICK=""
export BENCH_QUICK=${QUICK:-0}

say() { echo "bench.sh: $*" >&2; }
# 1582760 -> 1,582,760
group() { echo "$1" | sed -e ':a' -e 's/\([0-9]\)\([0-9]\{3\}\)\($\|,\)/\1,\2\3/' -e 'ta'; }
started=$(date +%s)
load_before=$(cut -d ' ' -f 1-3 /proc/loadavg)

# The loader under test.
static_line=""
mkdir -p "$TARGET_DIR/bench"
if [ -x scripts/build-static.sh ]; then
  say "building the static binary (scripts/build-static.sh --arch x86_64)"
  # No size gate here: the size is one of the budgets measured below. Only the binary this
  # machine runs natively; its line is the last.
  if out=$(SIZE_BUDGET=999999999999 scripts/build-static.sh --arch x86_64); then
    static_line=$(printf '%s\n' "$out" | tail -n 1)
  else
    say "scripts/build-static.sh failed; measuring the glibc build instead"
  fi
fi
if [ -n "$static_line" ]; then
  LOADER_BIN=${static_line% *}
  binary="static (musl)"
else
  say "building the release binary"
  cargo build --release --locked --quiet --bin envoy-xds-configmap-loader
  LOADER_BIN=$TARGET_DIR/release/envoy-xds-configmap-loader
  binary="glibc (dynamically linked; no static build)"
fi
LOADER_BIN=$(realpath "$LOADER_BIN")
LOADER_B=$(realpath "${BENCH_SPACED_B:-$LOADER_BIN}")
export LOADER_BIN LOADER_B
size=$(stat -c %s "$LOADER_BIN")

benches=(json coldstart propagation critical memory spaced fleet selection)
# bench-critical counts the syscalls of an update with strace.
if ! command -v strace >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  say "installing strace (Debian's package) for bench-critical"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get install -y -qq strace >/dev/null 2>&1 || say "strace could not be installed; syscalls not counted"
fi
say "building the benchmark programs"
examples=()
for b in "${benches[@]}"; do examples+=(--example "bench-$b"); done
cargo build --release --locked --quiet "${examples[@]}"
# The builds leave hundreds of MB of dirty pages that the kernel writes back about 30 s
# later, in the middle of the disk measurements: write them now.
say "flushing the builds' writes to disk (sync)"
sync

rows=$(mktemp)
trap 'rm -f "$rows"' EXIT
for b in "${benches[@]}"; do
  say "running bench-$b"
  "$TARGET_DIR/release/examples/bench-$b" | tee -a "$rows"
  if [ "$b" = json ]; then
    # The binary's size goes right after the CPU-only measurement.
    if [ -n "$static_line" ]; then
      verdict=$([ "$size" -le 1600000 ] && echo met || echo "**MISSED**")
      echo "| Static binary | size of the stripped static musl binary | $(group "$size") bytes | ≤ 1,600,000 bytes | $verdict |" | tee -a "$rows"
    else
      echo "| Static binary | not built (scripts/build-static.sh failed); the glibc binary, for reference | $(group "$size") bytes | ≤ 1,600,000 bytes (static) | not measured |" | tee -a "$rows"
    fi
  fi
done

load_after=$(cut -d ' ' -f 1-3 /proc/loadavg)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
mem=$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
took=$(( $(date +%s) - started ))
shown=${LOADER_BIN#"$(realpath "$TARGET_DIR")/"}
# The columns B of bench-spaced: the loader itself unless BENCH_SPACED_B named another build.
spaced_b=""
if [ "$LOADER_B" != "$LOADER_BIN" ]; then
  spaced_b=" bench-spaced's B: \`${BENCH_SPACED_B}\`, $(group "$(stat -c %s "$LOADER_B")") bytes."
fi
header="Measured $(date -u '+%Y-%m-%d %H:%M UTC') by \`scripts/bench.sh\`$([ -n "$QUICK" ] && echo ' (BENCH_QUICK=1: small counts)') in ${took} s on $(nproc) CPUs ($cpu), $mem, Linux $(uname -r), $(rustc --version | cut -d ' ' -f 1-2); load average ${load_before} before, ${load_after} after. Loader: $binary, \`target/${shown}\`, $(group "$size") bytes.$spaced_b"
table=$(printf '%s\n\n| Section | Measure | Value | Budget | Result |\n|---|---|---|---|---|\n%s\n' "$header" "$(cat "$rows")")

echo
printf '%s\n' "$table"

if [ -n "$QUICK" ]; then
  mkdir -p "$TARGET_DIR/bench"
  printf '# Benchmark results (quick run)\n\n%s\n' "$table" >"$TARGET_DIR/bench/RESULTS-quick.md"
  say "wrote $TARGET_DIR/bench/RESULTS-quick.md"
  exit 0
fi

{
  echo "# Benchmark results"
  echo
  echo "The latest full run of scripts/bench.sh; the README's Performance section shows the same table."
  echo
  printf '%s\n' "$table"
} >tests/bench/RESULTS.md
say "wrote tests/bench/RESULTS.md"

# README.md: replace what is between the markers, leave everything else as it is.
begin='<!-- bench:begin (scripts/bench.sh writes this table) -->'
end='<!-- bench:end -->'
if grep -qF "$begin" README.md && grep -qF "$end" README.md; then
  tmp=$(mktemp)
  TABLE="$table" awk -v b="$begin" -v e="$end" '
    $0 == b { print; print ""; print ENVIRON["TABLE"]; print ""; skip = 1; next }
    $0 == e { skip = 0 }
    !skip { print }
  ' README.md >"$tmp"
  cat "$tmp" >README.md
  rm -f "$tmp"
  say "updated the table in README.md"
else
  say "README.md has no bench markers; the table is in tests/bench/RESULTS.md"
fi
