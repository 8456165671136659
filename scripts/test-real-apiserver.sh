#!/usr/bin/env bash
# The test tier against a REAL kube-apiserver: builds it once from Debian's source package
# (scripts/kube-apiserver.sh; reused from its cache on later runs), starts it with etcd on
# free loopback ports, runs tests/real_apiserver.rs against it (one test thread: some tests
# restart the server or compact etcd), checks the Kubernetes manifests of tests/k8s with
# `kubectl apply --dry-run=server` (kubectl 1.20 from Debian's kubernetes-client package,
# unpacked into the same cache), and stops what it started. The manifests go into namespace
# default, as the loader's; rbac-selector.yaml also into a second namespace, created for it
# (the binding's namespace must exist, even for a dry run), as `kubectl apply -n TEAM_NS`
# puts it into each namespace of -selector-namespaces; it counts as accepted only when both
# are. The subjects' placeholder namespace loader-namespace is not created: the server does
# not resolve a binding's subjects, so the files are judged exactly as written. Prints:
#   real kube-apiserver v1.20.2: N passed, 0 failed; manifests: 5 accepted, 0 refused, 1 not judged (T s)
# and fails when any test or manifest fails.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
say() { echo "test-real-apiserver: $*" >&2; }

state=$PWD/target/real-apiserver
scripts/kube-apiserver.sh stop "$state" >/dev/null 2>&1 || true
rm -rf "$state"
mkdir -p "$state"
env_lines=$(scripts/kube-apiserver.sh start "$state")
trap 'scripts/kube-apiserver.sh stop "$state" >/dev/null 2>&1 || true' EXIT
eval "$env_lines"
export KUBE_URL KUBE_CA KUBE_TOKEN_FILE KUBE_VERSION KUBE_STATE=$state
say "server $KUBE_VERSION at $KUBE_URL (ready after $(( $(date +%s) - started )) s)"

log=$state/tests.log
set +e
cargo test --test real_apiserver -- --ignored --test-threads=1 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
result=$(grep -E '^test result:' "$log" | tail -n 1)
passed=$(sed -E 's/.* ([0-9]+) passed.*/\1/' <<<"$result")
failed=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$result")

# The manifests, judged by the server (what 1.20 cannot judge is said, not counted).
kubectl=$(scripts/kube-apiserver.sh kubectl)
kc=("$kubectl" --server "$KUBE_URL" --certificate-authority "$KUBE_CA"
  --token "$(cat "$KUBE_TOKEN_FILE")")
team_ns=selector-team
"${kc[@]}" create namespace "$team_ns" >/dev/null || say "FAIL: cannot create namespace $team_ns"
manifests_ok=0 manifests_failed=0
for f in rbac rbac-selector rbac-selector-cluster configmaps deployment; do
  namespaces=(default)
  if [ "$f" = rbac-selector ]; then namespaces+=("$team_ns"); fi
  out="" ok=1
  for ns in "${namespaces[@]}"; do
    if o=$("${kc[@]}" -n "$ns" apply --dry-run=server -f "tests/k8s/$f.yaml" 2>&1); then
      out+="[$ns] $(tr '\n' ';' <<<"$o")"
    else
      ok=0 out+="[$ns] $o"
    fi
  done
  if [ "$ok" = 1 ]; then
    manifests_ok=$((manifests_ok + 1))
    say "tests/k8s/$f.yaml: accepted by the server (dry run): $out"
  else
    manifests_failed=$((manifests_failed + 1))
    say "FAIL: tests/k8s/$f.yaml: $out"
  fi
done
say "tests/k8s/deployment-native-sidecar.yaml: not judged: native sidecars (restartPolicy: Always on an init container) need Kubernetes 1.29, this server is $KUBE_VERSION"

echo "real kube-apiserver $KUBE_VERSION: ${passed:-0} passed, ${failed:-?} failed; manifests: $manifests_ok accepted, $manifests_failed refused, 1 not judged ($(( $(date +%s) - started )) s)"
[ "$rc" = 0 ] && [ "${failed:-1}" = 0 ] && [ "$manifests_failed" = 0 ]
