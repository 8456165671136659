#!/usr/bin/env bash
# Tests the Kubernetes manifests: tests/k8s/{rbac,rbac-selector,rbac-selector-cluster,
# configmaps,deployment,deployment-native-sidecar}.yaml and the README section
# "## Kubernetes" that links them.
# The checks are tests/k8s/check.py's (its docstring says each one in full):
#
#  1. The README section links each of the six files (a link target that exists) and
#     pastes none of them (no ```yaml block), so no copy in the README can drift.
#  2. Every object validates against the Kubernetes OpenAPI schemas of 1.29 up to the newest
#     the validator carries, in strict mode, offline, with the PyPI package
#     kubernetes-validate (installed here into target/k8s-validate, a venv).
#  3. What the schemas cannot see (names, quantities, namespaces, selectors, volumes,
#     probes, security contexts, RBAC against the ConfigMaps the loader is given; the
#     selection RBAC: verbs exactly list and watch, no resourceNames, core configmaps and
#     secrets only, each binding on its own role and rbac.yaml's ServiceAccount, whose
#     namespace is the one written: the placeholder loader-namespace).
#  4. Every loader command line passes the real loader's flag parser (built here) and
#     behaves: -onetime fails fast on a refused API connection, -watch answers its probes
#     and ends with 0 on SIGTERM.
#  5. The Envoy configuration and command line of each Deployment load into a real Envoy
#     1.40 (ENVOY_BIN, or scripts/install-envoy.sh).
#
# README_FILE=path checks another Markdown file instead of README.md (its links are taken
# relative to its own directory); K8S_DIR=dir checks the manifests in another directory
# instead of tests/k8s (a changed copy, with a README that links it).
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
