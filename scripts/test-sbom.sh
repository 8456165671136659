#!/usr/bin/env bash
# Tests the image's SBOM (scripts/sbom.sh): generated twice, the same bytes; valid against
# the CycloneDX 1.6 JSON schema (cyclonedx-python-lib's strict validator, which must also
# refuse a copy broken on purpose); every crate of the run-time graph as `cargo tree` prints
# it for each target, and nothing else, with its version, license and the SHA-256 of
# Cargo.lock; each architecture's binary with its SHA-256 (scripts/lib/sbom_check.py).
#
# Installs cyclonedx-python-lib with its json-validation extra from PyPI (pip) into
# target/python/cyclonedx, once. Prints the document's path, its component count and sha256.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
TARGET_DIR=${CARGO_TARGET_DIR:-target}
PYLIB="$TARGET_DIR/python/cyclonedx"
PKG="cyclonedx-python-lib[json-validation]==11.12.0"

say() { echo "test-sbom: $*"; }
fail() {
  echo "test-sbom: FAIL: $*" >&2
  exit 1
}

if [ "$(cat "$PYLIB/.installed" 2>/dev/null)" != "$PKG" ]; then
  say "installing $PKG into $PYLIB (pip)"
  rm -rf "$PYLIB"
  python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
    --target "$PYLIB" "$PKG" || fail "pip could not install $PKG"
  echo "$PKG" >"$PYLIB/.installed"
fi

first=$(scripts/sbom.sh | tail -n 1)
second=$(scripts/sbom.sh | tail -n 1)
doc=${first% *}
sum=${first##* }
[ "$first" = "$second" ] || fail "two runs of scripts/sbom.sh differ: $first / $second"

work=$(mktemp -d "${TMPDIR:-/tmp}/test-sbom.XXXXXX")
trap 'rm -rf "$work"' EXIT
trees=()
for triple in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
  cargo tree --locked -e normal --prefix none --format '{p}' --target "$triple" >"$work/$triple.tree"
  trees+=("$work/$triple.tree")
done
PYTHONPATH="$PYLIB" python3 scripts/lib/sbom_check.py "$doc" Cargo.lock "${trees[@]}" -- \
  "amd64=$TARGET_DIR/image/amd64/envoy-xds-configmap-loader" \
  "arm64=$TARGET_DIR/image/arm64/envoy-xds-configmap-loader" || fail "$doc"

count=$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["components"]))' "$doc")
say "PASS: $doc, CycloneDX 1.6, $count components, sha256 $sum, the same twice ($(($(date +%s) - started))s)"
