#!/usr/bin/env bash
# Runs every test of the project, on a fresh machine too: installs what the tests need
# (a real Envoy 1.40 into .envoy/; the musl targets, clang and binutils-aarch64-linux-gnu for
# the static builds; qemu-user-static for arm64; buildah; cyclonedx-python-lib into
# target/python/), then runs the unit tests, the integration tests against the Kubernetes
# API emulator, the end-to-end tests with Envoy, the same unit and emulator tests built for
# arm64 under qemu, the artifact checks (both static binaries, the SBOM against its schema,
# the multi-arch image, reproducibility), the demo, and the tier against a real
# kube-apiserver (built once per machine from Debian's source package, then reused).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
# A test that cannot run here fails instead of skipping (no Envoy for tests/envoy_e2e.rs; no
# root or buildah for scripts/test-image.sh), so "all tests passed" means they all ran.
export REQUIRE_ENVOY=1 REQUIRE_IMAGE=1

if [ -x scripts/install-envoy.sh ]; then
  ENVOY_BIN=$(scripts/install-envoy.sh | tail -n 1)
  export ENVOY_BIN
fi

if command -v rustfmt >/dev/null 2>&1; then
  cargo fmt --all -- --check
fi

# Every test; REQUIRE_ENVOY turns a missing Envoy into a failure instead of a skip.
REQUIRE_ENVOY=1 cargo test --all-targets

echo "== what Envoy did (tests/envoy_e2e.rs)"
cat target/envoy-e2e-report.txt

echo "== arm64 (scripts/test-arm64.sh): the unit and emulator tests built for aarch64, under qemu"
scripts/test-arm64.sh

echo "== the artifact: static binaries (x86_64, aarch64), SBOM, multi-arch FROM-scratch image, Kubernetes manifests, reproducibility"
scripts/build-static.sh
scripts/test-sbom.sh
scripts/test-image.sh
scripts/test-manifests.sh
scripts/test-reproducible.sh

echo "== the demo (scripts/demo.sh): a canary adding a cluster and its route in one update, no request failed"
scripts/demo.sh

echo "== against a real kube-apiserver (tests/real_apiserver.rs, built once from Debian's source package)"
scripts/test-real-apiserver.sh
echo "scripts/test.sh: all tests passed in $(( $(date +%s) - started ))s"
