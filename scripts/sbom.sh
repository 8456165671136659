#!/usr/bin/env bash
# Writes the image's SBOM, a CycloneDX 1.6 JSON document, to target/image/sbom.cdx.json,
# where the Containerfile takes it: every crate of the binary's run-time dependency graph
# with its version, license and the SHA-256 of its .crate file from Cargo.lock (from
# `cargo metadata` for both targets), the crates that only run at build time, the Rust
# standard library and musl, and each architecture's binary with its SHA-256
# (scripts/lib/sbom.py says what goes where).
#
# Builds the binaries first with scripts/build-static.sh (nothing when they are up to date;
# that script installs what the build needs; this one installs nothing). The document's time
# is SOURCE_DATE_EPOCH, the commit's time unless set, so the same commit gives the same
# bytes. The last line of stdout is "PATH SHA256" of the document; progress goes to stderr.
# scripts/test-sbom.sh validates it against the CycloneDX schema.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET_DIR=${CARGO_TARGET_DIR:-target}
OUT="$TARGET_DIR/image/sbom.cdx.json"
NAME=envoy-xds-configmap-loader

scripts/build-static.sh >/dev/null
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/sbom.XXXXXX")
trap 'rm -rf "$work"' EXIT
metadata=() binaries=()
for a in amd64=x86_64-unknown-linux-musl arm64=aarch64-unknown-linux-musl; do
  oci=${a%%=*} triple=${a#*=}
  cargo metadata --format-version 1 --locked --filter-platform "$triple" >"$work/$triple.json"
  metadata+=("$triple=$work/$triple.json")
  binaries+=("$oci=$triple=$TARGET_DIR/image/$oci/$NAME")
done
rustc -vV >"$work/rustc-vv.txt"

python3 scripts/lib/sbom.py "$OUT" Cargo.lock "$work/rustc-vv.txt" "$SOURCE_DATE_EPOCH" \
  "${metadata[@]}" -- "${binaries[@]}"
echo "sbom: $(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["components"]))' "$OUT") components" >&2
echo "$OUT $(sha256sum "$OUT" | cut -d ' ' -f 1)"
