#!/usr/bin/env bash
# Tests the artifact: the static binaries and the multi-arch FROM-scratch image built from
# Containerfile, for linux/amd64 and linux/arm64. For each architecture:
#
#  1. scripts/build-static.sh: a statically linked binary of that architecture within the
#     size budget; scripts/sbom.sh: the SBOM that goes into the image.
#  2. The binary runs with an empty environment in a directory that holds nothing but
#     itself (chroot): no libc, no /etc, no CA store needed.
#  3. The image (buildah, vfs storage, chroot isolation, in a private store under target/,
#     --platform linux/ARCH, --timestamp from the commit): its config (os and architecture,
#     user 65532:65532, entrypoint, OCI labels, the SBOM's path and sha256) and its root
#     filesystem (the binary, identical to the one built, and /sbom.cdx.json, identical to
#     the one written and matching the label, and nothing else). Built a second time, the
#     same image id: the image is reproducible too.
#  4. The one-shot job inside the image's root filesystem, as uid 65532, against the
#     Kubernetes API emulator, with nothing but the pod environment: KUBERNETES_SERVICE_HOST
#     and _PORT, and the service-account files (token, ca.crt, namespace) copied to where a
#     pod has them; no -apiserver, -ca-file, -token-file, -namespace or -output-dir flag.
#     The files must appear in /srv/runtime/current, byte for byte.
#  5. The sidecar mode the same way: -watch -listen answers /readyz with 200 (the startup
#     probe of the manifests), picks up an update, and SIGTERM ends it with 0.
#
# Then both images join one manifest list, pushed to an OCI layout: it must list exactly
# linux/amd64 and linux/arm64. The arm64 binary runs under qemu-user (qemu-aarch64-static,
# copied into the chroot for steps 2, 4 and 5 and started in front of the binary, so no
# binfmt_misc registration is needed; qemu passes SIGTERM on to the loader).
#
# Needs root (chroot, buildah's vfs store); installs buildah and qemu-user-static with
# apt-get when missing. Where root, buildah or qemu cannot be had, the parts that need them
# cannot run: under CI (CI=true) or with REQUIRE_IMAGE=1 (scripts/test.sh sets it) that is
# a failure, exit 1 with the reason; otherwise a "SKIPPED" banner on stderr names what was
# not tested, and it exits 0 after the parts it could run. Cleans up what it made
# (emulator, loaders, containers, images, manifest list, store) on any exit. Prints each
# binary's size and each image's size.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd -P)
started=$(date +%s)

IMAGE=localhost/envoy-xds-configmap-loader
LIST=localhost/envoy-xds-configmap-loader:test
BIN_IN_IMAGE=/envoy-xds-configmap-loader
SBOM_IN_IMAGE=/sbom.cdx.json
SIZE_BUDGET=${SIZE_BUDGET:-1600000}
NS=canary
CM=envoy-xds
ARCHS=(amd64 arm64)

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
# apt_install PACKAGE...: quietly, true when it worked.
apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1
}

emulator_pid="" watch_pid="" store="" work="" ctrs=()
bah() { buildah --storage-driver vfs --root "$store/root" --runroot "$store/run" "$@"; }
cleanup() {
  set +e
  [ -n "$watch_pid" ] && kill "$watch_pid" 2>/dev/null && wait "$watch_pid" 2>/dev/null
  [ -n "$emulator_pid" ] && kill "$emulator_pid" 2>/dev/null && wait "$emulator_pid" 2>/dev/null
  if [ -n "$store" ] && [ -d "$store" ]; then
    for c in "${ctrs[@]}"; do
      bah umount "$c" >/dev/null 2>&1
      bah rm "$c" >/dev/null 2>&1
    done
    bah manifest rm "$LIST" >/dev/null 2>&1
    for a in "${ARCHS[@]}"; do bah rmi -f "$IMAGE:test-$a" >/dev/null 2>&1; done
    rm -rf "$store"
  fi
  [ -n "$work" ] && rm -rf "$work"
}
trap cleanup EXIT

mkdir -p target
work=$(mktemp -d "$repo/target/image-test.XXXXXX")
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
export SOURCE_DATE_EPOCH

# 1. The static binaries, and the SBOM of the image.
declare -A bin size machine
machine=([amd64]="Advanced Micro Devices X86-64" [arm64]="AArch64")
built=$(scripts/build-static.sh)
while read -r path bytes; do
  case "$path" in
    *x86_64-*) a=amd64 ;;
    *aarch64-*) a=arm64 ;;
    *) fail "scripts/build-static.sh printed an unknown binary: $path" ;;
  esac
  bin[$a]=$path size[$a]=$bytes
done <<<"$built"
for a in "${ARCHS[@]}"; do
  [ -n "${bin[$a]:-}" ] || fail "scripts/build-static.sh built no $a binary"
  desc=$(file -b "${bin[$a]}")
  [[ "$desc" == *"statically linked"* ]] || fail "${bin[$a]} is not statically linked: $desc"
  got=$(readelf -hW "${bin[$a]}" | sed -n 's/^ *Machine: *//p')
  [ "$got" = "${machine[$a]}" ] || fail "${bin[$a]} is for '$got', not ${machine[$a]}"
  [ "${size[$a]}" -le "$SIZE_BUDGET" ] || fail "${bin[$a]} is ${size[$a]} bytes, over $SIZE_BUDGET"
  cmp -s "${bin[$a]}" "target/image/$a/envoy-xds-configmap-loader" ||
    fail "target/image/$a/envoy-xds-configmap-loader is not ${bin[$a]}"
  say "static binary linux/$a: ${bin[$a]}, ${size[$a]} bytes (budget $SIZE_BUDGET)"
done
read -r sbom sbom_sha256 < <(scripts/sbom.sh | tail -n 1)
say "SBOM: $sbom, sha256 $sbom_sha256"

if [ "$(id -u)" -ne 0 ]; then
  skip "the chroot and image tests need root (running as uid $(id -u))" \
    "the binaries alone in a chroot, the images (build, config, root filesystem), -onetime and -watch in them"
fi

# `env -i` empties PATH too, so chroot is named by its full path.
CHROOT=$(command -v chroot) || fail "no chroot command"
if ! command -v qemu-aarch64-static >/dev/null 2>&1; then
  say "installing qemu-user-static (apt-get)"
  apt_install qemu-user-static ||
    skip "qemu-aarch64-static is missing and cannot be installed here (apt-get)" \
      "the arm64 binary and image run (chroot, -onetime, -watch)"
fi
QEMU=$(command -v qemu-aarch64-static)

# runner ROOT ARCH: what starts the binary inside ROOT: nothing for amd64; for arm64 qemu,
# copied into ROOT (the image itself never holds it).
runner() {
  if [ "$2" = arm64 ]; then
    cp "$QEMU" "$1/qemu-aarch64-static"
    chmod 0755 "$1/qemu-aarch64-static"
    echo /qemu-aarch64-static
  fi
}

# 2. Nothing around it: an empty environment, a root directory with only the binary (and
#    qemu for arm64).
for a in "${ARCHS[@]}"; do
  bare="$work/bare-$a"
  mkdir -p "$bare"
  cp "${bin[$a]}" "$bare/bin"
  run=$(runner "$bare" "$a")
  out=$(env -i "$CHROOT" "$bare" $run /bin -version) || fail "the $a binary does not run alone in a chroot"
  [[ "$out" == "envoy-xds-configmap-loader "* ]] || fail "unexpected -version output of the $a binary: $out"
  set +e
  env -i "$CHROOT" "$bare" $run /bin -no-such-flag >/dev/null 2>&1
  rc=$?
  set -e
  [ "$rc" -eq 2 ] || fail "a usage error of the $a binary in the bare chroot exits $rc, not 2"
  say "linux/$a runs alone: empty environment, no files but itself${run:+ and qemu} ($out)"
done

# 3. The images, one per architecture, and the manifest list that joins them.
if ! command -v buildah >/dev/null 2>&1; then
  say "installing buildah (apt-get)"
  apt_install buildah ||
    skip "buildah is missing and cannot be installed here (apt-get)" \
      "the images (build, config, root filesystem), -onetime and -watch in them"
fi

store=$(mktemp -d "$repo/target/image-store.XXXXXX")
# A context with just what the Containerfile copies, so no build tool has to walk target/.
ctx="$work/context"
mkdir -p "$ctx/target/image"
cp Containerfile "$ctx/"
cp -p "$sbom" "$ctx/target/image/sbom.cdx.json"
for a in "${ARCHS[@]}"; do
  mkdir -p "$ctx/target/image/$a"
  cp -p "${bin[$a]}" "$ctx/target/image/$a/envoy-xds-configmap-loader"
done
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
bud() { # ARCH TAG
  bah bud --quiet --isolation chroot --layers=false --platform "linux/$1" \
    --timestamp "$SOURCE_DATE_EPOCH" --build-arg "SBOM_SHA256=$sbom_sha256" \
    -t "$2" -f "$ctx/Containerfile" "$ctx" >/dev/null || fail "buildah bud for linux/$1 failed"
  bah inspect --type image --format '{{.FromImageID}}' "$2"
}

declare -A root
for a in "${ARCHS[@]}"; do
  id=$(bud "$a" "$IMAGE:test-$a")
  again=$(bud "$a" "$IMAGE:again-$a")
  bah rmi "$IMAGE:again-$a" >/dev/null 2>&1 || true
  [ "$id" = "$again" ] || fail "linux/$a built twice from the same inputs: image ids $id and $again"
  bah inspect --type image "$IMAGE:test-$a" >"$work/inspect-$a.json"
  python3 scripts/lib/oci_image.py config "$work/inspect-$a.json" "$BIN_IN_IMAGE" "$version" "$a" "$sbom_sha256" ||
    fail "image config of linux/$a"

  ctr=$(bah from --pull-never --quiet --arch "$a" "$IMAGE:test-$a")
  ctrs+=("$ctr")
  r=$(bah mount "$ctr")
  root[$a]=$r
  entries=$(cd "$r" && find . -mindepth 1 -not -name . | LC_ALL=C sort | tr '\n' ' ')
  # Run-time mount points that buildah may create in a working container are allowed.
  for e in $entries; do
    case "$e" in
      ./envoy-xds-configmap-loader | ./sbom.cdx.json | ./dev | ./proc | ./sys | ./etc | ./run | ./etc/hosts | ./etc/resolv.conf | ./run/.containerenv) ;;
      *) fail "unexpected entry in the linux/$a image's root filesystem: $e" ;;
    esac
  done
  ibin="$r$BIN_IN_IMAGE"
  desc=$(file -b "$ibin")
  [[ "$desc" == *"statically linked"* ]] || fail "the binary in the linux/$a image is not statically linked: $desc"
  isize=$(stat -c %s "$ibin")
  [ "$isize" -le "$SIZE_BUDGET" ] || fail "the binary in the linux/$a image is $isize bytes, over $SIZE_BUDGET"
  cmp -s "$ibin" "${bin[$a]}" || fail "the binary in the linux/$a image differs from ${bin[$a]}"
  cmp -s "$r$SBOM_IN_IMAGE" "$sbom" || fail "$SBOM_IN_IMAGE in the linux/$a image differs from $sbom"
  [ "$(sha256sum "$r$SBOM_IN_IMAGE" | cut -d ' ' -f 1)" = "$sbom_sha256" ] ||
    fail "$SBOM_IN_IMAGE in the linux/$a image does not match its label"
  [ "$(stat -c %u:%g:%a "$r$SBOM_IN_IMAGE")" = 0:0:644 ] || fail "$SBOM_IN_IMAGE: not root's, mode 0644"
  say "image linux/$a ($id): user 65532:65532, entrypoint $BIN_IN_IMAGE, OCI labels, $SBOM_IN_IMAGE as labelled; the same id when built again"
done

bah manifest create "$LIST" >/dev/null || fail "buildah manifest create failed"
for a in "${ARCHS[@]}"; do
  bah manifest add "$LIST" "$IMAGE:test-$a" >/dev/null || fail "buildah manifest add linux/$a failed"
done
# The manifest list as a registry holds it: an index, and per image its gzip-compressed
# layer, config and manifest.
bah manifest push --all --quiet "$LIST" "oci:$work/oci:test" >/dev/null || fail "buildah manifest push to an OCI layout failed"
python3 scripts/lib/oci_image.py platforms "$work/oci" >"$work/platforms"
[ "$(cut -d ' ' -f 1 "$work/platforms" | LC_ALL=C sort | tr '\n' ' ')" = "linux/amd64 linux/arm64 " ] ||
  fail "the manifest list holds $(cut -d ' ' -f 1 "$work/platforms" | tr '\n' ' '), want linux/amd64 and linux/arm64"
declare -A image_bytes layer_bytes
while read -r platform total raw; do
  image_bytes[${platform#linux/}]=$total layer_bytes[${platform#linux/}]=$raw
  say "image size $platform: $total bytes compressed (manifest + config + layer), layer $raw bytes uncompressed"
done <"$work/platforms"
say "manifest list $LIST: linux/amd64 and linux/arm64"

# 4. and 5. in each image's root filesystem, against one emulator.
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
cat >"$files/lds.yaml" <<'YAML'
version_info: "1"
resources:
- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: ingress
  address: {socket_address: {address: 0.0.0.0, port_value: 8080}}
YAML
cat >"$files/cds.yaml" <<'YAML'
version_info: "1"
resources:
- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: blue
  type: STRICT_DNS
YAML
rds1='version_info: "1"\nresources: []\n'
configmap_json() { # VERSION-LABEL > JSON
  python3 - "$files" "$NS" "$CM" "$1" <<'PY'
import json, os, sys
d, ns, name, label = sys.argv[1:5]
data = {k: open(os.path.join(d, k), encoding="utf-8").read() for k in sorted(os.listdir(d))}
print(json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": name, "namespace": ns, "labels": {"rev": label}},
                  "data": data}))
PY
}
printf "$rds1" >"$files/rds.yaml"
configmap_json 1 >"$work/cm1.json"
api POST "/api/v1/namespaces/$NS/configmaps" "$work/cm1.json"

for a in "${ARCHS[@]}"; do
  r=${root[$a]}
  # Each architecture starts from the first version of the ConfigMap.
  printf "$rds1" >"$files/rds.yaml"
  api PUT "/api/v1/namespaces/$NS/configmaps/$CM" "$work/cm1.json"

  # What a pod has: the service-account files, and an emptyDir at /srv/runtime.
  sa="$r/var/run/secrets/kubernetes.io/serviceaccount"
  mkdir -p "$sa" "$r/srv/runtime"
  cp tests/tls/ca.pem "$sa/ca.crt"
  printf 'test-token' >"$sa/token"
  printf '%s' "$NS" >"$sa/namespace"
  chmod 0644 "$sa/ca.crt" "$sa/token" "$sa/namespace"
  chown 65532:65532 "$r/srv/runtime"
  run=$(runner "$r" "$a")

  # As the image's user, with nothing of this shell's environment but what a pod has.
  in_pod=(env -i KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT="$port"
    "$CHROOT" --userspec=65532:65532 "$r" $run "$BIN_IN_IMAGE")

  check_files() { # LABEL
    local out="$r/srv/runtime/current" k
    [ -L "$out/..data" ] || fail "$1: no $out/..data link"
    for k in lds.yaml cds.yaml rds.yaml; do
      [ -L "$out/$k" ] || fail "$1: $out/$k is not a link"
      cmp -s "$out/$k" "$files/$k" || fail "$1: $out/$k differs from the ConfigMap"
    done
    [ "$(stat -c %u:%g "$out/..data/lds.yaml")" = 65532:65532 ] || fail "$1: files not owned by 65532"
  }

  timeout 60 "${in_pod[@]}" -configmap "$CM" -onetime 2>"$work/onetime-$a.err" ||
    fail "-onetime in the linux/$a image failed: $(cat "$work/onetime-$a.err")"
  check_files "linux/$a -onetime"
  say "-onetime in the linux/$a image as 65532:65532 with in-cluster defaults: lds/cds/rds.yaml written"

  # The sidecar: -watch serves /readyz once the snapshot is on disk, follows an update, and
  # SIGTERM ends it with status 0.
  health_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "${in_pod[@]}" -configmap "$CM" -watch -listen "127.0.0.1:$health_port" 2>"$work/watch-$a.err" &
  watch_pid=$!
  ready=""
  for _ in $(seq 1 300); do
    ready=$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$health_port/readyz" || true)
    [ "$ready" = 200 ] && break
    kill -0 "$watch_pid" 2>/dev/null || fail "-watch in linux/$a exited early: $(cat "$work/watch-$a.err")"
    sleep 0.1
  done
  [ "$ready" = 200 ] || fail "-watch in linux/$a: /readyz answers ${ready:-nothing}, not 200, with the snapshot on disk"
  printf 'version_info: "2"\nresources: []\n' >"$files/rds.yaml"
  configmap_json 2 >"$work/cm2.json"
  api PUT "/api/v1/namespaces/$NS/configmaps/$CM" "$work/cm2.json"
  for _ in $(seq 1 300); do
    cmp -s "$r/srv/runtime/current/rds.yaml" "$files/rds.yaml" && break
    kill -0 "$watch_pid" 2>/dev/null || fail "-watch in linux/$a exited early: $(cat "$work/watch-$a.err")"
    sleep 0.1
  done
  check_files "linux/$a -watch"
  kill -TERM "$watch_pid"
  set +e
  wait "$watch_pid"
  rc=$?
  set -e
  watch_pid=""
  [ "$rc" -eq 0 ] || fail "-watch in linux/$a ended with status $rc on SIGTERM: $(cat "$work/watch-$a.err")"
  say "-watch in the linux/$a image: /readyz 200, update applied, SIGTERM -> exit 0"
done

summary=""
for a in "${ARCHS[@]}"; do
  summary+="linux/$a binary ${size[$a]} bytes, image ${image_bytes[$a]} bytes compressed / ${layer_bytes[$a]} uncompressed; "
done
say "PASS: ${summary}($(($(date +%s) - started))s)"
