#!/usr/bin/env bash
# Tests the Kubernetes manifests: tests/k8s/{rbac,configmaps,deployment,
# deployment-native-sidecar}.yaml and the README section "## Kubernetes" that shows them.
#
#  1. The README section's ```yaml blocks are, in order, byte for byte those four files.
#  2. Every object validates against the Kubernetes OpenAPI schemas of 1.29 up to the newest
#     the validator carries, in strict mode (unknown fields rejected), offline, with the
#     PyPI package kubernetes-validate (installed into target/k8s-validate, a venv).
#  3. What the schemas cannot see, checked as the API server and the kubelet would: names,
#     quantities, no namespace anywhere, selector vs. template labels, volumes and mounts,
#     probes (startup probes only where allowed; every -watch loader has a readiness probe
#     on /readyz and a liveness probe on /healthz, over HTTP, on the port it listens on for
#     the pod's address), the restricted security context, the RBAC objects against the
#     ConfigMap names the loader is given.
#  4. Every loader command line, exactly as written, passes the real loader's flag parser,
#     and behaves (run with the output dir and -listen moved to a temporary place): -onetime
#     fails fast on a refused API connection; -watch keeps running, its probe endpoints
#     answer (/readyz 503 with no snapshot yet, /healthz 200), and SIGTERM ends it with 0.
#  5. The Envoy configuration (bootstrap + the xDS ConfigMap) and the Envoy container's
#     command line load into a real Envoy 1.40 (scripts/install-envoy.sh): the listener,
#     both clusters and the route are accepted, once for each Deployment (each has one
#     Envoy container), or the run fails.
#
# README_FILE=path checks another Markdown file instead of README.md; K8S_DIR=dir checks
# the manifests in another directory instead of tests/k8s (a changed copy, with a README
# that shows it).
set -euo pipefail
cd "$(dirname "$0")/.."

README_FILE=${README_FILE:-README.md}
K8S_DIR=${K8S_DIR:-tests/k8s}
KV_VERSION=1.37.0
venv=target/k8s-validate

if ! "$venv/bin/python" -c 'import kubernetes_validate, yaml' >/dev/null 2>&1; then
  echo "test-manifests: installing kubernetes-validate $KV_VERSION into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$KV_VERSION"
fi

cargo build --quiet --bin envoy-xds-configmap-loader
loader=target/debug/envoy-xds-configmap-loader
envoy=${ENVOY_BIN:-}
if [ -z "$envoy" ]; then
  envoy=$(scripts/install-envoy.sh | tail -n 1)
fi

exec "$venv/bin/python" tests/k8s/check.py "$README_FILE" "$K8S_DIR" "$loader" "$envoy"
