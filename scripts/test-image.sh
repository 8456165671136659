#!/usr/bin/env bash
# Tests the artifact: the static binary and the FROM-scratch image built from Containerfile.
#
#  1. scripts/build-static.sh: a statically linked binary within the size budget.
#  2. The binary runs with an empty environment in a directory that holds nothing but
#     itself (chroot): no libc, no /etc, no CA store needed.
#  3. The image (buildah, vfs storage, chroot isolation, in a private store under target/):
#     its config (user 65532:65532, entrypoint, OCI labels) and its root filesystem (the
#     binary and nothing else, statically linked, within budget).
#  4. The one-shot job inside the image's root filesystem, as uid 65532, against the
#     Kubernetes API emulator, with nothing but the pod environment: KUBERNETES_SERVICE_HOST
#     and _PORT, and the service-account files (token, ca.crt, namespace) copied to where a
#     pod has them; no -apiserver, -ca-file, -token-file, -namespace or -output-dir flag.
#     The files must appear in /srv/runtime/current, byte for byte.
#  5. The sidecar mode the same way: -watch -listen answers /readyz with 200 (the startup
#     probe of the manifests), picks up an update, and SIGTERM ends it with 0.
#
# Needs root (chroot, buildah's vfs store); installs buildah with apt-get when missing. Where
# root or buildah cannot be had, the parts that need them cannot run: under CI (CI=true) or
# with REQUIRE_IMAGE=1 (scripts/test.sh sets it) that is a failure, exit 1 with the reason;
# otherwise a "SKIPPED" banner on stderr names what was not tested, and it exits 0 after
# the parts it could run. Cleans up what it made (emulator, loaders, container, image,
# store) on any exit. Prints the binary size and the image size.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd -P)
started=$(date +%s)

IMAGE=localhost/envoy-xds-configmap-loader:test
BIN_IN_IMAGE=/envoy-xds-configmap-loader
SIZE_BUDGET=${SIZE_BUDGET:-1600000}
NS=canary
CM=envoy-xds

say() { echo "test-image: $*"; }
fail() {
  echo "test-image: FAIL: $*" >&2
  exit 1
}
# on VALUE: unset, empty, 0, false and no are off.
on() { case "${1,,}" in "" | 0 | false | no) return 1 ;; *) return 0 ;; esac; }
# skip REASON UNTESTED: a run that could not test the image must not pass for one that did,
# so under CI or REQUIRE_IMAGE a skip fails; elsewhere it says so in a banner.
skip() {
  if on "${REQUIRE_IMAGE:-}" || on "${CI:-}"; then
    fail "$1, so $2 cannot be tested (a skip is a failure with REQUIRE_IMAGE=${REQUIRE_IMAGE:-} CI=${CI:-})"
  fi
  {
    echo "test-image: ##################################################################"
    echo "test-image: SKIPPED: $1"
    echo "test-image: NOT TESTED: $2"
    echo "test-image: (REQUIRE_IMAGE=1 or CI=true makes this a failure)"
    echo "test-image: ##################################################################"
  } >&2
  exit 0
}

emulator_pid="" watch_pid="" store="" ctr="" work=""
bah() { buildah --storage-driver vfs --root "$store/root" --runroot "$store/run" "$@"; }
cleanup() {
  set +e
  [ -n "$watch_pid" ] && kill "$watch_pid" 2>/dev/null && wait "$watch_pid" 2>/dev/null
  [ -n "$emulator_pid" ] && kill "$emulator_pid" 2>/dev/null && wait "$emulator_pid" 2>/dev/null
  if [ -n "$store" ] && [ -d "$store" ]; then
    if [ -n "$ctr" ]; then
      bah umount "$ctr" >/dev/null 2>&1
      bah rm "$ctr" >/dev/null 2>&1
    fi
    bah rmi -f "$IMAGE" >/dev/null 2>&1
    rm -rf "$store"
  fi
  [ -n "$work" ] && rm -rf "$work"
}
trap cleanup EXIT

mkdir -p target
work=$(mktemp -d "$repo/target/image-test.XXXXXX")

# 1. The static binary.
built=$(scripts/build-static.sh | tail -n 1)
bin=${built% *}
size=${built##* }
desc=$(file -b "$bin")
[[ "$desc" == *"statically linked"* ]] || fail "$bin is not statically linked: $desc"
[ "$size" -le "$SIZE_BUDGET" ] || fail "$bin is $size bytes, over $SIZE_BUDGET"
say "static binary: $bin, $size bytes (budget $SIZE_BUDGET)"

if [ "$(id -u)" -ne 0 ]; then
  skip "the chroot and image tests need root (running as uid $(id -u))" \
    "the binary alone in a chroot, the image (build, config, root filesystem), -onetime and -watch in it"
fi

# `env -i` empties PATH too, so chroot is named by its full path.
CHROOT=$(command -v chroot) || fail "no chroot command"

# 2. Nothing around it: an empty environment, a root directory with only the binary.
bare="$work/bare"
mkdir -p "$bare"
cp "$bin" "$bare/bin"
out=$(env -i "$CHROOT" "$bare" /bin -version) || fail "the binary does not run alone in a chroot"
[[ "$out" == "envoy-xds-configmap-loader "* ]] || fail "unexpected -version output: $out"
set +e
env -i "$CHROOT" "$bare" /bin -no-such-flag >/dev/null 2>&1
rc=$?
set -e
[ "$rc" -eq 2 ] || fail "a usage error in the bare chroot exits $rc, not 2"
say "runs alone: empty environment, no files but itself ($out)"

# 3. The image.
if ! command -v buildah >/dev/null 2>&1; then
  say "installing buildah (apt-get)"
  if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah >/dev/null 2>&1; }; then
    skip "buildah is missing and cannot be installed here (apt-get)" \
      "the image (build, config, root filesystem), -onetime and -watch in it"
  fi
fi

store=$(mktemp -d "$repo/target/image-store.XXXXXX")
# A context with just what the Containerfile copies, so no build tool has to walk target/.
ctx="$work/context"
mkdir -p "$ctx/target/x86_64-unknown-linux-musl/release"
cp Containerfile "$ctx/"
cp -p "$bin" "$ctx/target/x86_64-unknown-linux-musl/release/envoy-xds-configmap-loader"
bah bud --quiet --isolation chroot --layers=false -t "$IMAGE" -f "$ctx/Containerfile" "$ctx" >/dev/null ||
  fail "buildah bud failed"

bah inspect --type image "$IMAGE" >"$work/inspect.json"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
python3 scripts/lib/oci_image.py config "$work/inspect.json" "$BIN_IN_IMAGE" "$version" || fail "image config"

# The image as a registry holds it: gzip-compressed layer, config, manifest.
bah push --quiet "$IMAGE" "oci:$work/oci:test" >/dev/null || fail "buildah push to an OCI layout failed"
read -r image_bytes layer_bytes < <(python3 scripts/lib/oci_image.py sizes "$work/oci")
[ -n "$image_bytes" ] || fail "cannot read the image size from the OCI layout"

ctr=$(bah from --pull-never --quiet "$IMAGE")
root=$(bah mount "$ctr")
entries=$(cd "$root" && find . -mindepth 1 -not -name . | LC_ALL=C sort | tr '\n' ' ')
# Run-time mount points that buildah may create in a working container are allowed.
for e in $entries; do
  case "$e" in
    ./envoy-xds-configmap-loader | ./dev | ./proc | ./sys | ./etc | ./run | ./etc/hosts | ./etc/resolv.conf | ./run/.containerenv) ;;
    *) fail "unexpected entry in the image's root filesystem: $e" ;;
  esac
done
ibin="$root$BIN_IN_IMAGE"
desc=$(file -b "$ibin")
[[ "$desc" == *"statically linked"* ]] || fail "the binary in the image is not statically linked: $desc"
isize=$(stat -c %s "$ibin")
[ "$isize" -le "$SIZE_BUDGET" ] || fail "the binary in the image is $isize bytes, over $SIZE_BUDGET"
cmp -s "$ibin" "$bin" || fail "the binary in the image differs from $bin"
say "image $IMAGE: user 65532:65532, entrypoint $BIN_IN_IMAGE, OCI labels"
say "image size: $image_bytes bytes compressed (manifest + config + layer), layer $layer_bytes bytes uncompressed"

# 4. The one-shot job in the image's root filesystem, against the emulator.
cargo build --quiet --example kube-emulator
mkfifo "$work/emulator.out"
target/debug/examples/kube-emulator --listen 127.0.0.1:0 --quiet >"$work/emulator.out" 2>"$work/emulator.err" &
emulator_pid=$!
url=""
exec 3<"$work/emulator.out"
if read -r -t 30 line <&3; then url=${line#kube-emulator listening on }; fi
[[ "$url" == https://127.0.0.1:* ]] || fail "the emulator did not start: ${line:-no output} $(cat "$work/emulator.err")"
port=${url##*:}
port=${port%%/*}

api() { # METHOD PATH [JSON-FILE]
  curl -sS --fail-with-body --max-time 10 --cacert tests/tls/ca.pem \
    -H 'Authorization: Bearer test-token' -H 'Content-Type: application/json' \
    -X "$1" "$url$2" ${3:+--data-binary @"$3"} >"$work/api.out" ||
    fail "$1 $2: $(cat "$work/api.out")"
}

# The ConfigMap's files, then its JSON (python3 does the escaping).
files="$work/files"
mkdir -p "$files"
cat >"$files/lds.yaml" <<'EOF'
version_info: "1"
resources:
- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: ingress
  address: {socket_address: {address: 0.0.0.0, port_value: 8080}}
EOF
cat >"$files/cds.yaml" <<'EOF'
version_info: "1"
resources:
- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: blue
  type: STRICT_DNS
EOF
printf 'version_info: "1"\nresources: []\n' >"$files/rds.yaml"
configmap_json() { # VERSION-LABEL > JSON
  python3 - "$files" "$NS" "$CM" "$1" <<'EOF'
import json, os, sys
d, ns, name, label = sys.argv[1:5]
data = {k: open(os.path.join(d, k), encoding="utf-8").read() for k in sorted(os.listdir(d))}
print(json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": name, "namespace": ns, "labels": {"rev": label}},
                  "data": data}))
EOF
}
configmap_json 1 >"$work/cm1.json"
api POST "/api/v1/namespaces/$NS/configmaps" "$work/cm1.json"

# What a pod has: the service-account files, and an emptyDir at /srv/runtime.
sa="$root/var/run/secrets/kubernetes.io/serviceaccount"
mkdir -p "$sa" "$root/srv/runtime"
cp tests/tls/ca.pem "$sa/ca.crt"
printf 'test-token' >"$sa/token"
printf '%s' "$NS" >"$sa/namespace"
chmod 0644 "$sa/ca.crt" "$sa/token" "$sa/namespace"
chown 65532:65532 "$root/srv/runtime"

# As the image's user, with nothing of this shell's environment but what a pod has.
in_pod=(env -i KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT="$port"
  "$CHROOT" --userspec=65532:65532 "$root" "$BIN_IN_IMAGE")

check_files() { # LABEL
  local out="$root/srv/runtime/current" k
  [ -L "$out/..data" ] || fail "$1: no $out/..data link"
  for k in lds.yaml cds.yaml rds.yaml; do
    [ -L "$out/$k" ] || fail "$1: $out/$k is not a link"
    cmp -s "$out/$k" "$files/$k" || fail "$1: $out/$k differs from the ConfigMap"
  done
  [ "$(stat -c %u:%g "$out/..data/lds.yaml")" = 65532:65532 ] || fail "$1: files not owned by 65532"
}

timeout 30 "${in_pod[@]}" -configmap "$CM" -onetime 2>"$work/onetime.err" || fail "-onetime in the image failed: $(cat "$work/onetime.err")"
check_files "-onetime"
say "-onetime in the image as 65532:65532 with in-cluster defaults: lds/cds/rds.yaml written"

# 5. The sidecar: -watch serves /readyz once the snapshot is on disk, follows an update, and
#    SIGTERM ends it with status 0.
health_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${in_pod[@]}" -configmap "$CM" -watch -listen "127.0.0.1:$health_port" 2>"$work/watch.err" &
watch_pid=$!
ready=""
for _ in $(seq 1 100); do
  ready=$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$health_port/readyz" || true)
  [ "$ready" = 200 ] && break
  kill -0 "$watch_pid" 2>/dev/null || fail "-watch exited early: $(cat "$work/watch.err")"
  sleep 0.1
done
[ "$ready" = 200 ] || fail "-watch: /readyz answers ${ready:-nothing}, not 200, with the snapshot on disk"
printf 'version_info: "2"\nresources: []\n' >"$files/rds.yaml"
configmap_json 2 >"$work/cm2.json"
api PUT "/api/v1/namespaces/$NS/configmaps/$CM" "$work/cm2.json"
for _ in $(seq 1 100); do
  cmp -s "$root/srv/runtime/current/rds.yaml" "$files/rds.yaml" && break
  kill -0 "$watch_pid" 2>/dev/null || fail "-watch exited early: $(cat "$work/watch.err")"
  sleep 0.1
done
check_files "-watch"
kill -TERM "$watch_pid"
set +e
wait "$watch_pid"
rc=$?
set -e
watch_pid=""
[ "$rc" -eq 0 ] || fail "-watch ended with status $rc on SIGTERM: $(cat "$work/watch.err")"
say "-watch in the image: /readyz 200, update applied, SIGTERM -> exit 0"

say "PASS: binary $size bytes, image $image_bytes bytes compressed / $layer_bytes uncompressed ($(($(date +%s) - started))s)"
