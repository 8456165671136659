#!/usr/bin/env bash
# Fuzzes the parsers (HTTP framing, JSON, watch events, base64) with cargo-fuzz: every
# target in tests/fuzz for FUZZ_SECONDS seconds (default 60), one after the other, one job
# each, then prints one summary line per target. Exits 1 when a target found a crash, an
# out-of-memory input or a hang; the input is left in tests/fuzz/artifacts/<target>/.
#
# Environment:
#   FUZZ_SECONDS    seconds per target (default 60)
#   FUZZ_TARGETS    targets to run (default: all of them)
#   FUZZ_SANITIZER  address (default) or none
#
# cargo-fuzz needs nightly compiler flags (-Z sanitizer, sancov passes): RUSTC_BOOTSTRAP=1
# lets the stable toolchain accept them. The working corpus lives in tests/fuzz/corpus/
# (not committed) and starts from the committed seeds in tests/fuzz/seeds/.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-"http_response json watch_stream"}
sanitizer=${FUZZ_SANITIZER:-address}
fuzz_dir=tests/fuzz
export RUSTC_BOOTSTRAP=1
# A smaller quarantine for freed memory keeps ASan's own use well below the RSS limit, so
# that the limit measures the code under test.
export ASAN_OPTIONS=${ASAN_OPTIONS:-quarantine_size_mb=16:malloc_context_size=8}

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

# Release build with debug assertions and overflow checks: an overflow is a finding.
build_flags=(--fuzz-dir "$fuzz_dir" -O -a -s "$sanitizer")
cargo fuzz build "${build_flags[@]}"

# Longest input per target: above MAX_HEAD_BYTES (64 KiB) for HTTP, so that the head and
# trailer limits can be reached; smaller for the others, where length buys little.
max_len() {
  case "$1" in
    http_response) echo 70000 ;;
    *) echo 16384 ;;
  esac
}

# The last value of a libFuzzer "stat::NAME: VALUE" line, or of "NAME: VALUE" in the last
# status line, from a log file.
final_stat() { sed -n "s/^stat::$2: *//p" "$1" | tail -n 1; }
status_field() { grep -E '^#[0-9]+' "$1" | tail -n 1 | sed -n "s/.* $2: \([0-9]*\).*/\1/p"; }
findings() { find "$1" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) | wc -l; }

summary=()
failed=0
for target in $targets; do
  corpus=$fuzz_dir/corpus/$target
  artifacts=$fuzz_dir/artifacts/$target
  log=$fuzz_dir/artifacts/$target.log
  mkdir -p "$corpus" "$artifacts"
  cp -n "$fuzz_dir/seeds/$target"/* "$corpus"/ 2>/dev/null || true
  before=$(findings "$artifacts")
  echo "fuzz.sh: $target for ${seconds}s (sanitizer $sanitizer, log $log)"
  started=$(date +%s%N)
  set +e
  cargo fuzz run "${build_flags[@]}" "$target" "$corpus" -- \
    -max_total_time="$seconds" -rss_limit_mb=512 -timeout=10 -max_len="$(max_len "$target")" \
    -report_slow_units=1 -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  took=$(( ($(date +%s%N) - started) / 1000000000 ))
  found=$(( $(findings "$artifacts") - before ))
  execs=$(final_stat "$log" number_of_executed_units)
  rate=$(final_stat "$log" average_exec_per_sec)
  rss=$(final_stat "$log" peak_rss_mb)
  slowest=$(final_stat "$log" slowest_unit_time_sec)
  cov=$(status_field "$log" cov)
  ft=$(status_field "$log" ft)
  files=$(find "$corpus" -type f | wc -l)
  bytes=$(du -sb "$corpus" | cut -f1)
  line=$(printf '%-14s execs %s in %ss (%s/s), corpus %s files %s bytes, cov %s ft %s, peak rss %s MB, slowest %ss, crashes %s' \
    "$target" "${execs:-?}" "$took" "${rate:-?}" "$files" "$bytes" "${cov:-?}" "${ft:-?}" \
    "${rss:-?}" "${slowest:-?}" "$found")
  summary+=("$line")
  echo "fuzz.sh: $line"
  if [ "$rc" -ne 0 ] || [ "$found" -gt 0 ]; then
    failed=1
    echo "fuzz.sh: $target failed (exit $rc); the end of its log:"
    tail -n 40 "$log"
  fi
done

echo
echo "fuzz.sh: summary (${seconds}s per target, sanitizer $sanitizer)"
for line in "${summary[@]}"; do
  echo "  $line"
done
exit "$failed"
