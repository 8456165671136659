#!/usr/bin/env bash
# Proves the suite bites: applies hand-made mutations of the loader, one at a time, to a
# scratch copy of the committed tree, runs the tests on each, and reports which were
# caught (the tests failed) and which were missed. Not part of CI: a caught mutation costs
# the time to its first failing test binary, a missed one the whole suite.
#
#   scripts/mutations.sh                 # every mutation, with `cargo test --all-targets`
#   scripts/mutations.sh bookmarks-off   # only the named ones (see the table below)
#   MUTATIONS_FULL=1 scripts/mutations.sh   # run scripts/test.sh itself on each
#   scripts/mutations.sh --cargo-mutants     # cargo-mutants on a sample instead (below)
#
# `cargo test --all-targets` is the first step of scripts/test.sh (under `set -e`), so a
# mutation it catches also fails scripts/test.sh; MUTATIONS_FULL=1 runs test.sh to show it.
# Each mutation replaces one exact piece of source text; when the text is not found exactly
# once (the code moved on), the mutation is reported NOT APPLIED and the script fails, so
# the table cannot go stale silently. Exit code: 0 when every mutation was applied and
# caught, 1 otherwise.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
scratch=${MUTATIONS_DIR:-${TMPDIR:-/tmp}/envoy-xds-loader-mutations}

# name ;; file ;; exact text ;; replacement ("\n" stands for a newline)
read -r -d '' TABLE <<'EOF' || true
field-selector-dropped ;; src/kube/mod.rs ;; "{}/api/v1/namespaces/{}/{}?fieldSelector=metadata.name%3D{}" ;; "{}/api/v1/namespaces/{}/{}?_name={}"
watch-without-version ;; src/kube/mod.rs ;; query_escape(resource_version), ;; query_escape(""),
retry-after-ignored ;; src/sync/reflector.rs ;; .max(retry_after.unwrap_or_default()) ;; .max(Duration::ZERO)
bookmarks-off ;; src/kube/mod.rs ;; &allowWatchBookmarks=true& ;; &allowWatchBookmarks=false&
error-410-as-normal-end ;; src/sync/mod.rs ;; => return gone(obj, r, None, Some(&status)), ;; => return ended(obj, idx, r, events, started.elapsed()),
http-410-as-normal-end ;; src/sync/mod.rs ;; Err(e) if e.is_gone() => gone(&obj, &mut r, Some(&e), None), ;; Err(e) if e.is_gone() => ended(&obj, idx, &mut r, 1, Duration::ZERO),
repeated-410-not-backed-off ;; src/sync/reflector.rs ;; if self.gone == 1 { ;; if self.gone >= 1 {
silence-bound-off ;; src/sync/mod.rs ;; let read_timeout = due.min(SILENCE); ;; let read_timeout = due;
second-writer-allowed ;; src/sync/mod.rs ;; w.lock().map_err(|e| format!("write: {e}"))?; ;; let _ = w.lock();
per-key-rename-skipped ;; src/snapshot/plan.rs ;; steps.rename = xds::rename_order(want.files, &steps.rename); ;; steps.rename = Vec::new();
writes-when-unchanged ;; src/snapshot/plan.rs ;;     if disk.old.is_some()\n        && steps.link.is_empty() ;;     if false && disk.old.is_some()\n        && steps.link.is_empty()
EOF

say() { printf 'mutations: %s\n' "$*" >&2; }

# cargo-mutants over the modules that decide what is asked and what is written, on a
# sample (shard 0 of N): kube and sync with the fast integration targets, snapshot with the
# unit tests. Prints the counts of each run.
if [ "${1:-}" = "--cargo-mutants" ]; then
  command -v cargo-mutants >/dev/null || cargo install --locked cargo-mutants
  read -r kube_shards snap_shards <<<"${MUTANTS_SHARDS:-4 8}"
  rm -rf "$scratch" && git clone -q "$repo" "$scratch/tree" && cd "$scratch/tree"
  run() { # name shards files... -- test args...
    local name=$1 shards=$2; shift 2
    local files=(); while [ "$1" != "--" ]; do files+=(-f "$1"); shift; done; shift
    local t0=$(date +%s)
    cargo mutants "${files[@]}" --shard "0/$shards" --test-tool nextest --timeout 120 \
      --output "$scratch/$name" -- "$@" >"$scratch/$name.log" 2>&1 || true
    local out="$scratch/$name/mutants.out" counts=""
    for k in caught missed unviable timeout; do
      counts+="$k $(wc -l <"$out/$k.txt" 2>/dev/null || echo 0), "
    done
    printf '%s (shard 0/%s): %s%ss\n' "$name" "$shards" "$counts" "$(( $(date +%s) - t0 ))"
  }
  # (without the one test that takes 91 s by design: the silent connection with default flags)
  run kube+sync "$kube_shards" src/kube/mod.rs src/kube/decode.rs src/sync/mod.rs src/sync/reflector.rs src/sync/state.rs \
    -- --lib --test loader --test faults --test promises \
    -E 'not test(=a_silent_connection_with_default_flags_is_replaced_within_150_s)' 
  run snapshot "$snap_shards" src/snapshot/mod.rs src/snapshot/plan.rs src/snapshot/fs.rs src/snapshot/next.rs src/bytes.rs \
    -- --lib
  exit 0
fi

rm -rf "$scratch"
git clone -q "$repo" "$scratch/tree"
say "scratch copy of $(git -C "$repo" rev-parse --short HEAD) in $scratch/tree"
if [ -x "$repo/scripts/install-envoy.sh" ]; then
  ENVOY_BIN=$("$repo/scripts/install-envoy.sh" | tail -n 1)
  export ENVOY_BIN
fi
export CARGO_TARGET_DIR="$scratch/target" REQUIRE_ENVOY=1

run_tests() {
  if [ -n "${MUTATIONS_FULL:-}" ]; then
    scripts/test.sh
  else
    cargo test --all-targets
  fi
}

cd "$scratch/tree"
say "building and testing the unmutated tree first"
if ! run_tests >"$scratch/baseline.log" 2>&1; then
  say "the unmutated tree fails its tests: see $scratch/baseline.log"
  exit 1
fi

results=()
failed=0
started=$(date +%s)
export TABLE
while read -r name <&3; do
  [ -n "$name" ] || continue
  if [ $# -gt 0 ] && ! printf '%s\n' "$@" | grep -qx "$name"; then
    continue
  fi
  git checkout -q -- .
  if ! python3 - "$name" <<'PY'
import os, sys
rows = [line.split(" ;; ") for line in os.environ["TABLE"].splitlines() if line]
path, old, new = next(r[1:] for r in rows if r[0] == sys.argv[1])
old, new = old.replace("\\n", "\n"), new.replace("\\n", "\n")
text = open(path).read()
if text.count(old) != 1:
    sys.exit(f"{path}: the text to mutate occurs {text.count(old)} times, not once")
open(path, "w").write(text.replace(old, new))
PY
  then
    results+=("$name|NOT APPLIED|0|")
    failed=1
    continue
  fi
  t0=$(date +%s)
  log="$scratch/$name.log"
  if run_tests >"$log" 2>&1; then
    results+=("$name|MISSED|$(( $(date +%s) - t0 ))|")
    failed=1
  else
    first=$(grep -m1 -E '^test .* FAILED$|^---- .* ----$|error\[' "$log" | sed 's/^---- //; s/ stdout ----$//; s/^test //; s/ \.\.\. FAILED$//' || true)
    results+=("$name|caught|$(( $(date +%s) - t0 ))|${first:-see $log}")
  fi
done 3< <(printf '%s\n' "$TABLE" | sed 's/ ;; .*//')
git checkout -q -- .

printf '\n| mutation | result | seconds | first failure |\n|---|---|---|---|\n'
for r in "${results[@]}"; do
  IFS='|' read -r name result secs first <<<"$r"
  printf '| %s | %s | %s | %s |\n' "$name" "$result" "$secs" "$first"
done
printf '\n%s mutations in %ss (logs in %s)\n' "${#results[@]}" "$(( $(date +%s) - started ))" "$scratch"
exit "$failed"
