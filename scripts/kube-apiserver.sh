#!/usr/bin/env bash
# A real kube-apiserver v1.20.2 with its own etcd on loopback, built from Debian's packages
# only, for the test tier that talks to a real API server.
#
#   scripts/kube-apiserver.sh build              install, build once, print the binary path
#   scripts/kube-apiserver.sh start DIR          start etcd + kube-apiserver, state in DIR
#   scripts/kube-apiserver.sh restart-apiserver DIR   restart the API server (etcd stays)
#   scripts/kube-apiserver.sh compact DIR        compact etcd at its current revision
#   scripts/kube-apiserver.sh stop DIR           stop what `start` started, by PID
#   scripts/kube-apiserver.sh kubectl            print the path of a kubectl of the same version
#
# build: installs what is missing with apt (golang-go, etcd-server, etcd-client, make,
# rsync, dpkg-dev, openssl, curl, python3), fetches the Debian source package `kubernetes`
# (1.20.5+really1.20.2-1.1+deb12u1 = upstream v1.20.2) from the bookworm suite of the
# machine's own Debian mirror (the one in /etc/apt/sources.list.d/debian.sources), replaces
# the vendored github.com/modern-go/reflect2 1.0.1 and github.com/json-iterator/go with
# Debian's 1.0.2 and 1.1.12 sources (1.0.1 crashes with Go >= 1.18: "unexpected fault
# address" in mapiterinit while encoding JSON), and builds cmd/kube-apiserver with the
# tree's own `make` (GOPATH mode, Go 1.19 from golang-go). The deb-src line lives in a
# private apt configuration (its own sources, lists and cache under a temporary directory),
# so the machine's sources and package lists are never touched and need no second
# `apt-get update`. Result: ${KUBE_APISERVER_CACHE:-/var/cache/envoy-xds-configmap-loader}/
# kube-apiserver-v1.20.2/kube-apiserver plus a stamp file, outside the checkout, reused by
# every later run on the machine (then `build` only prints the path, in ~10 ms). Cold: about
# 6 minutes on 2 shared cores (apt ~30 s, source ~10 s, the Go build 5-5.5 min). Progress
# goes to stderr, the binary path is the last stdout line. Uses sudo only for apt-get and
# the cache directory, and only when not root.
#
# start DIR: everything lives under DIR (a path of [A-Za-z0-9._/+-] only): DIR/etcd (data),
# DIR/pki (a CA, a serving certificate for 127.0.0.1, localhost and kubernetes.default.svc,
# the service-account key pair; made with openssl), DIR/tokens.csv (a random admin token in
# group system:masters, also in DIR/admin-token), DIR/*.log, DIR/*.pid. Ports are free
# loopback ports picked at start (bind probe), retried when a server still finds its port
# taken. Waits until /readyz answers 200 and namespace `default` exists, then writes DIR/env
# and prints the same lines: KUBE_VERSION (from /version), KUBE_URL, KUBE_CA, KUBE_TOKEN,
# KUBE_TOKEN_FILE, ETCD_URL, KUBE_APISERVER_PID, ETCD_PID. Takes ~5 s; `stop` ~1 s.
# KUBE_APISERVER_EXTRA_ARGS (split on spaces) adds flags, e.g. --watch-cache-sizes=configmaps#0
# (no watch cache: no bookmarks). A failing `start` stops whatever it had started.
#
# Bookmarks (v1.20, watch cache on): about 2 s before a watch's timeoutSeconds, and only when
# the cache has seen a change of that resource (any object, any namespace) newer than what
# the watch already delivered; a quiet watch gets none.
#
# The API server is a small, honest test server: no anonymous access (401 without a token),
# RBAC, TokenRequest works (no controller manager runs, so no token Secrets and no
# ServiceAccount "default" in namespaces), no priority and fairness, no compaction of its own
# (--etcd-compaction-interval=0: resourceVersions only become "too old" through `compact`).
set -euo pipefail

readonly K8S_VERSION="v1.20.2"
readonly SRC_VERSION="1.20.5+really1.20.2-1.1+deb12u1"
readonly REFLECT2_DEB="golang-github-modern-go-reflect2-dev=1.0.2-2"
readonly JSONITER_DEB="golang-github-json-iterator-go-dev=1.1.12-1"
STAMP_TEXT="kubernetes ${SRC_VERSION}; ${REFLECT2_DEB}; ${JSONITER_DEB}; $(uname -m)"
readonly STAMP_TEXT
readonly APT_PACKAGES=(golang-go etcd-server etcd-client make rsync dpkg-dev openssl curl python3)

cache_dir="${KUBE_APISERVER_CACHE:-/var/cache/envoy-xds-configmap-loader}/kube-apiserver-${K8S_VERSION}"
bin="${cache_dir}/kube-apiserver"
stamp="${cache_dir}/stamp"

log() { printf 'kube-apiserver.sh: %s\n' "$*" >&2; }
die() {
  log "$*"
  exit 1
}
as_root() {
  if [[ "$(id -u)" -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

is_built() { [[ -x "${bin}" && -f "${stamp}" && "$(<"${stamp}")" == "${STAMP_TEXT}" ]]; }

# The machine's Debian mirror and keyring: the first deb822 stanza of debian.sources that
# serves bookworm, else its first stanza, else the first `deb` line of sources.list, else
# deb.debian.org. Printed as "URI [KEYRING]".
debian_mirror() {
  local f=/etc/apt/sources.list.d/debian.sources line=""
  if [[ -r "${f}" ]]; then
    line="$(awk 'BEGIN { RS = ""; FS = "\n" } {
        u = ""; k = ""; s = 0
        for (i = 1; i <= NF; i++) {
          n = split($i, a, /[ \t]+/)
          if (a[1] == "URIs:") u = a[2]
          if (a[1] == "Signed-By:") k = a[2]
          if (a[1] == "Suites:") for (j = 2; j <= n; j++) if (a[j] == "bookworm") s = 1
        }
        if (u != "" && first == "") first = u " " k
        if (s && u != "") { print u, k; found = 1; exit }
      }
      END { if (!found && first != "") print first }' "${f}")"
  fi
  if [[ -z "${line}" && -r /etc/apt/sources.list ]]; then
    line="$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\//) {
      print $i; exit } }' /etc/apt/sources.list)"
  fi
  printf '%s\n' "${line:-http://deb.debian.org/debian}"
}

install_packages() {
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "${p}" 2>/dev/null | grep -q 'install ok installed' ||
      missing+=("${p}")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  log "apt-get install ${missing[*]}"
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Dpkg::Use-Pty=0 \
    --no-install-recommends "${missing[@]}" >&2; then
    log "install failed; apt-get update, then again"
    as_root apt-get update -qq >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Dpkg::Use-Pty=0 \
      --no-install-recommends "${missing[@]}" >&2
  fi
}

# apt-get source through a private configuration: a deb-src line for bookworm on the
# machine's mirror, with lists and cache in $1, so nothing of the machine's apt state moves.
fetch_source() {
  local work="$1" mirror keyring
  read -r mirror keyring <<<"$(debian_mirror)"
  log "fetching source package kubernetes=${SRC_VERSION} from ${mirror} (bookworm)"
  mkdir -p "${work}/apt/parts" "${work}/apt/lists/partial" "${work}/apt/cache/archives/partial"
  {
    printf 'Types: deb-src\nURIs: %s\nSuites: bookworm\nComponents: main\n' "${mirror}"
    if [[ -n "${keyring:-}" ]]; then printf 'Signed-By: %s\n' "${keyring}"; fi
  } >"${work}/apt/parts/bookworm-src.sources"
  local opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=${work}/apt/parts"
    -o "Dir::State::Lists=${work}/apt/lists" -o "Dir::Cache=${work}/apt/cache"
    -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=" -o "APT::Sandbox::User=$(id -un)")
  apt-get "${opts[@]}" -qq update >&2
  (cd "${work}" && apt-get "${opts[@]}" -qq source "kubernetes=${SRC_VERSION}" >&2)
}

# Replaces the vendored reflect2 and json-iterator with Debian's newer sources.
fix_vendor() {
  local work="$1" src="$2" deb pkg dest
  log "replacing vendored reflect2 1.0.1 / json-iterator with ${REFLECT2_DEB#*=} / ${JSONITER_DEB#*=}"
  mkdir -p "${work}/debs"
  (cd "${work}/debs" && apt-get -qq -o "APT::Sandbox::User=$(id -un)" download \
    "${REFLECT2_DEB}" "${JSONITER_DEB}" >&2)
  for deb in "${work}"/debs/*.deb; do dpkg-deb -x "${deb}" "${work}/debs/root"; done
  for pkg in github.com/modern-go/reflect2 github.com/json-iterator/go; do
    dest="${src}/vendor/${pkg}"
    [[ -d "${dest}" ]] || die "no vendored ${pkg} in the kubernetes source"
    [[ -d "${work}/debs/root/usr/share/gocode/src/${pkg}" ]] || die "no ${pkg} in the .deb"
    rm -rf "${dest}"
    mkdir -p "${dest}"
    (cd "${work}/debs/root/usr/share/gocode/src/${pkg}" &&
      find . \( -name '*.go' -o -name '*.s' \) ! -name '*_test.go' \
        -exec cp --parents -t "${dest}" {} +)
  done
}

do_build() {
  install_packages
  local work="${cache_dir}/build" src out
  rm -rf "${work}"
  mkdir -p "${work}"
  fetch_source "${work}"
  src="$(find "${work}" -mindepth 1 -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)"
  [[ -n "${src}" && -f "${src}/Makefile" ]] || die "apt-get source gave no kubernetes tree"
  fix_vendor "${work}" "${src}"
  # Without git metadata hack/lib/version.sh reads the version from this file.
  printf "KUBE_GIT_VERSION='%s'\nKUBE_GIT_MAJOR='1'\nKUBE_GIT_MINOR='20'\nKUBE_GIT_TREE_STATE='archive'\n" \
    "${K8S_VERSION}" >"${work}/version.env"
  log "make WHAT=cmd/kube-apiserver with $(go version) (about 4 minutes on 2 cores)"
  (cd "${src}" && env GOCACHE="${work}/gocache" GOFLAGS= GO111MODULE=off \
    KUBE_GIT_VERSION_FILE="${work}/version.env" make WHAT=cmd/kube-apiserver >&2)
  out="${src}/_output/local/bin/$(go env GOOS)/$(go env GOARCH)/kube-apiserver"
  [[ -x "${out}" ]] || out="$(find "${src}/_output" -type f -name kube-apiserver | head -n1)"
  [[ -n "${out}" && -x "${out}" ]] || die "make left no kube-apiserver binary"
  "${out}" --version >&2
  mv -f "${out}" "${bin}.new"
  mv -f "${bin}.new" "${bin}"
  printf '%s\n' "${STAMP_TEXT}" >"${stamp}"
  rm -rf "${work}"
  log "built ${bin}"
}

# Builds unless the cache is current; concurrent callers wait on one lock.
ensure_built() {
  is_built && return 0
  if ! mkdir -p "${cache_dir}" 2>/dev/null || [[ ! -w "${cache_dir}" ]]; then
    as_root install -d -o "$(id -u)" -g "$(id -g)" "${cache_dir}"
  fi
  (
    flock 9
    is_built || do_build
  ) 9>"${cache_dir}/.lock"
  is_built || die "build failed"
}

cmd_build() {
  ensure_built
  printf '%s\n' "${bin}"
}

# ---- start / stop ------------------------------------------------------------------------

# State directory from the command line: absolute, and free of characters that would need
# quoting in DIR/env or in the servers' flags.
state_dir() {
  [[ -n "${1:-}" ]] || usage
  [[ "$1" =~ ^[A-Za-z0-9._/+-]+$ ]] || die "DIR may hold only [A-Za-z0-9._/+-]: $1"
  if [[ "${2:-}" == create ]]; then mkdir -p "$1"; fi
  [[ -d "$1" ]] || die "no such directory: $1"
  dir="$(cd "$1" && pwd -P)"
  [[ "${dir}" =~ ^[A-Za-z0-9._/+-]+$ ]] || die "DIR resolves to ${dir}, which needs quoting"
}

# $1 free loopback TCP ports, distinct: all held at once, then released.
free_ports() {
  python3 -c 'import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

# PID from DIR/$1.pid when that process is alive and is one of ours (its command line names
# DIR); empty otherwise. A zombie has an empty command line, so it counts as gone.
live_pid() {
  local pid
  pid="$(cat "${dir}/$1.pid" 2>/dev/null)" || return 0
  [[ "${pid}" =~ ^[0-9]+$ ]] || return 0
  tr '\0' '\n' 2>/dev/null <"/proc/${pid}/cmdline" | grep -qF -- "${dir}/" && printf '%s\n' "${pid}"
  return 0
}

# Whether the process this script just spawned for $1 still runs (not a zombie). Unlike
# live_pid it does not ask the command line to name DIR: between fork and exec the child
# still has this script's command line, and a server checked in that instant looked dead.
running() {
  local pid state
  pid="$(cat "${dir}/$1.pid" 2>/dev/null)" || return 1
  [[ "${pid}" =~ ^[0-9]+$ ]] || return 1
  state="$(awk '{ print $3 }' "/proc/${pid}/stat" 2>/dev/null)" || return 1
  [[ -n "${state}" && "${state}" != Z ]]
}

# Stops the process of DIR/$1.pid: TERM, then KILL after 5 s.
stop_one() {
  local name="$1" pid i
  pid="$(live_pid "${name}")"
  if [[ -n "${pid}" ]]; then
    kill -TERM "${pid}" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      [[ -z "$(live_pid "${name}")" ]] && break
      sleep 0.1
    done
    if [[ -n "$(live_pid "${name}")" ]]; then
      log "${name} (pid ${pid}) ignored TERM for 5 s: KILL"
      kill -KILL "${pid}" 2>/dev/null || true
      for ((i = 0; i < 20; i++)); do [[ -z "$(live_pid "${name}")" ]] && break; sleep 0.1; done
    fi
  fi
  rm -f "${dir}/${name}.pid"
}

make_pki() {
  local pki="${dir}/pki"
  [[ -f "${pki}/server.pem" && -f "${pki}/sa.pub" ]] && return 0
  mkdir -p "${pki}"
  chmod 700 "${pki}"
  # Extensions as webpki (rustls) wants them: a v3 CA, and a leaf for server auth.
  cat >"${pki}/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
authorityKeyIdentifier = keyid
subjectAltName = IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.0.0.1
EOF
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 -config "${pki}/openssl.cnf" -extensions ca "${ec[@]}" -days 3650 \
    -subj "/CN=kube-apiserver.sh test CA" -keyout "${pki}/ca-key.pem" -out "${pki}/ca.pem" 2>/dev/null
  openssl req -new -config "${pki}/openssl.cnf" "${ec[@]}" -subj "/CN=kube-apiserver" \
    -keyout "${pki}/server-key.pem" -out "${pki}/server.csr" 2>/dev/null
  openssl x509 -req -in "${pki}/server.csr" -CA "${pki}/ca.pem" -CAkey "${pki}/ca-key.pem" \
    -set_serial "0x$(openssl rand -hex 16)" -days 3650 -extfile "${pki}/openssl.cnf" \
    -extensions server -out "${pki}/server.pem" 2>/dev/null
  openssl genrsa -out "${pki}/sa.key" 2048 2>/dev/null
  openssl rsa -in "${pki}/sa.key" -pubout -out "${pki}/sa.pub" 2>/dev/null
}

make_token() {
  [[ -s "${dir}/tokens.csv" && -s "${dir}/admin-token" ]] && return 0
  local token
  token="$(openssl rand -hex 32)"
  (
    umask 077
    printf '%s,admin,admin,"system:masters"\n' "${token}" >"${dir}/tokens.csv"
    printf '%s\n' "${token}" >"${dir}/admin-token"
  )
}

# Starts $1 (etcd or kube-apiserver) with the arguments in DIR/$1.args; records its PID.
spawn() {
  local name="$1" args
  mapfile -t args <"${dir}/${name}.args"
  printf '\n==== %s start %s\n' "${name}" "$(date -Is)" >>"${dir}/${name}.log"
  "${args[@]}" </dev/null >>"${dir}/${name}.log" 2>&1 &
  printf '%s\n' "$!" >"${dir}/${name}.pid"
}

# Waits up to $3 s until `curl $2...` succeeds while DIR/$1.pid lives. Returns 0 when ready,
# 2 when the server died of a taken port (pick another), 1 otherwise.
wait_ready() {
  local name="$1" timeout="$3" i
  local -a req
  read -r -a req <<<"$2"
  for ((i = 0; i < timeout * 10; i++)); do
    if ! running "${name}"; then
      # Only this run's part of the log (after spawn's "====" line).
      awk '/^==== / { t = "" } { t = t $0 "\n" } END { printf "%s", t }' "${dir}/${name}.log" |
        grep -q 'address already in use' && return 2
      log "${name} exited; last lines of ${dir}/${name}.log:"
      tail -n 15 "${dir}/${name}.log" >&2
      return 1
    fi
    curl -fsS -o /dev/null --max-time 2 "${req[@]}" 2>/dev/null && return 0
    sleep 0.1
  done
  log "${name} not ready after ${timeout} s; last lines of ${dir}/${name}.log:"
  tail -n 15 "${dir}/${name}.log" >&2
  return 1
}

etcd_args() {
  local client="$1" peer="$2"
  printf '%s\n' "$(command -v etcd)" --name=default "--data-dir=${dir}/etcd" \
    "--listen-client-urls=http://127.0.0.1:${client}" "--advertise-client-urls=http://127.0.0.1:${client}" \
    "--listen-peer-urls=http://127.0.0.1:${peer}" "--initial-advertise-peer-urls=http://127.0.0.1:${peer}" \
    "--initial-cluster=default=http://127.0.0.1:${peer}" --initial-cluster-state=new \
    --logger=zap --log-outputs=stderr --log-level=warn
}

apiserver_args() {
  local port="$1" etcd="$2" extra=()
  read -r -a extra <<<"${KUBE_APISERVER_EXTRA_ARGS:-}"
  printf '%s\n' "${bin}" "--etcd-servers=${etcd}" --bind-address=127.0.0.1 \
    --advertise-address=127.0.0.1 "--secure-port=${port}" --insecure-port=0 \
    "--cert-dir=${dir}/pki" "--tls-cert-file=${dir}/pki/server.pem" \
    "--tls-private-key-file=${dir}/pki/server-key.pem" --anonymous-auth=false \
    "--token-auth-file=${dir}/tokens.csv" --authorization-mode=Node,RBAC \
    --service-account-issuer=https://kubernetes.default.svc \
    "--service-account-key-file=${dir}/pki/sa.pub" \
    "--service-account-signing-key-file=${dir}/pki/sa.key" \
    --service-cluster-ip-range=10.0.0.0/24 --enable-priority-and-fairness=false \
    --endpoint-reconciler-type=none --etcd-compaction-interval=0 --profiling=false \
    --logtostderr=true --v=0 "${extra[@]}"
}

# Starts the API server from DIR/kube-apiserver.args and waits for /readyz and `default`.
# The token reaches curl through DIR/.curlrc, never a command line.
kube_apiserver_up() {
  local url probe
  url="$(sed -n 's/^--secure-port=/https:\/\/127.0.0.1:/p' "${dir}/kube-apiserver.args")"
  probe="-K ${dir}/.curlrc --cacert ${dir}/pki/ca.pem ${url}"
  (
    umask 077
    printf 'header = "Authorization: Bearer %s"\n' "$(<"${dir}/admin-token")" >"${dir}/.curlrc"
  )
  spawn kube-apiserver
  wait_ready kube-apiserver "${probe}/readyz" 90 || return $?
  wait_ready kube-apiserver "${probe}/api/v1/namespaces/default" 30
}

# Writes DIR/env from the running servers and prints it.
write_env() {
  local url etcd version
  url="$(sed -n 's/^--secure-port=/https:\/\/127.0.0.1:/p' "${dir}/kube-apiserver.args")"
  etcd="$(sed -n 's/^--advertise-client-urls=//p' "${dir}/etcd.args")"
  version="$(curl -fsS -K "${dir}/.curlrc" --cacert "${dir}/pki/ca.pem" "${url}/version" |
    sed -n 's/^ *"gitVersion": *"\([^"]*\)".*/\1/p')"
  [[ -n "${version}" ]] || die "no gitVersion in ${url}/version"
  {
    printf 'KUBE_VERSION=%s\nKUBE_URL=%s\n' "${version}" "${url}"
    printf 'KUBE_CA=%s\nKUBE_TOKEN=%s\n' "${dir}/pki/ca.pem" "$(<"${dir}/admin-token")"
    printf 'KUBE_TOKEN_FILE=%s\nETCD_URL=%s\n' "${dir}/admin-token" "${etcd}"
    printf 'KUBE_APISERVER_PID=%s\nETCD_PID=%s\n' "$(live_pid kube-apiserver)" "$(live_pid etcd)"
  } >"${dir}/env.new"
  mv -f "${dir}/env.new" "${dir}/env"
  cat "${dir}/env"
}

stop_all() {
  stop_one kube-apiserver
  stop_one etcd
}

# Starts $1 (etcd or kube-apiserver) on fresh free ports until it does not die of a taken
# port (5 tries: a port found free can be taken before the server binds it).
start_on_free_ports() {
  local name="$1" try rc ports
  for ((try = 1; try <= 5; try++)); do
    rc=0
    case "${name}" in
      etcd)
        read -r -a ports <<<"$(free_ports 2)"
        etcd_args "${ports[@]}" >"${dir}/etcd.args"
        etcd_up || rc=$?
        ;;
      kube-apiserver)
        read -r -a ports <<<"$(free_ports 1)"
        apiserver_args "${ports[0]}" "$(sed -n 's/^--advertise-client-urls=//p' "${dir}/etcd.args")" \
          >"${dir}/kube-apiserver.args"
        kube_apiserver_up || rc=$?
        ;;
    esac
    [[ ${rc} -eq 0 ]] && return 0
    stop_one "${name}"
    [[ ${rc} -eq 2 ]] || die "${name} did not start"
    log "${name}: port ${ports[*]} was taken meanwhile; again with other ports"
  done
  die "${name}: no free port in 5 tries"
}

etcd_up() {
  spawn etcd
  wait_ready etcd "$(sed -n 's/^--advertise-client-urls=//p' "${dir}/etcd.args")/health" 30
}

cmd_start() {
  state_dir "$1" create
  [[ -z "$(live_pid etcd)$(live_pid kube-apiserver)" ]] ||
    die "${dir} already has servers running; stop them first"
  ensure_built
  make_pki
  make_token
  trap stop_all EXIT
  log "starting etcd"
  start_on_free_ports etcd
  log "starting kube-apiserver (logs: ${dir}/kube-apiserver.log)"
  start_on_free_ports kube-apiserver
  write_env
  trap - EXIT
}

# The same flags and port again; etcd keeps running. Measured: on TERM the API server stops
# listening at once (new connections are refused) but, with a watch open, does not exit
# within 5 s (v1.20 waits up to 60 s for open requests), so it gets KILL: an open watch
# stays silent for those 5 s and then its connection breaks mid-body, without the final
# chunk. With no watch open it exits in about a second. Then ready again ~5 s later.
cmd_restart_apiserver() {
  state_dir "$1"
  [[ -f "${dir}/kube-apiserver.args" && -n "$(live_pid etcd)" ]] ||
    die "nothing started in ${dir} (no etcd running)"
  stop_one kube-apiserver
  trap 'stop_one kube-apiserver' EXIT
  kube_apiserver_up || die "kube-apiserver did not come back on its port"
  write_env
  trap - EXIT
}

# Compacts etcd at its current revision: every older resourceVersion is "too old" for etcd.
# The watch cache does NOT follow. Measured on v1.20.2 (list a ConfigMap at N, update it 3
# times, compact at N+3, watch from N):
# - watch cache on (default): the watch from N still gets the three MODIFIED events, from the
#   cache; a list with resourceVersion=N&resourceVersionMatch=Exact gets HTTP 410. After
#   `restart-apiserver` the new cache starts at N+3 and the same watch gets 200 with one
#   ERROR event {code: 410, reason: Expired, "too old resource version: N (N+3)"}.
# - KUBE_APISERVER_EXTRA_ARGS=--watch-cache-sizes=configmaps#0: the watch from N gets the
#   ERROR 410 Expired event at once ("The resourceVersion for the provided watch is too old").
# So "too old" on a watch needs compact + restart-apiserver, or compact with the cache off.
cmd_compact() {
  state_dir "$1"
  local url rev
  url="$(sed -n 's/^--advertise-client-urls=//p' "${dir}/etcd.args" 2>/dev/null)"
  [[ -n "${url}" && -n "$(live_pid etcd)" ]] || die "no etcd running in ${dir}"
  rev="$(ETCDCTL_API=3 etcdctl --endpoints="${url}" endpoint status -w json |
    grep -o '"revision":[0-9]*' | head -n1 | cut -d: -f2)"
  [[ -n "${rev}" ]] || die "etcd at ${url} reported no revision"
  ETCDCTL_API=3 etcdctl --endpoints="${url}" compact --physical "${rev}" >&2
  printf '%s\n' "${rev}"
}

cmd_stop() {
  state_dir "$1"
  stop_all
  rm -f "${dir}/env" "${dir}/.curlrc"
}

# kubectl 1.20 from Debian's kubernetes-client package, unpacked next to the server (never
# installed: the machine's own kubectl, if any, stays). The path is the last stdout line.
cmd_kubectl() {
  local kubectl="${cache_dir}/kubectl" work deb
  if [[ ! -x "${kubectl}" ]]; then
    install_packages
    as_root mkdir -p "${cache_dir}"
    work="$(mktemp -d)"
    log "apt-get download kubernetes-client (kubectl ${K8S_VERSION})"
    (cd "${work}" && apt-get -qq -o "APT::Sandbox::User=$(id -un)" download \
      "kubernetes-client=${SRC_VERSION}" >&2) || {
      as_root apt-get update -qq >&2
      (cd "${work}" && apt-get -qq -o "APT::Sandbox::User=$(id -un)" download \
        "kubernetes-client=${SRC_VERSION}" >&2)
    }
    for deb in "${work}"/*.deb; do dpkg-deb -x "${deb}" "${work}/root"; done
    [[ -x "${work}/root/usr/bin/kubectl" ]] || die "no kubectl in kubernetes-client"
    as_root cp "${work}/root/usr/bin/kubectl" "${kubectl}.tmp"
    as_root mv "${kubectl}.tmp" "${kubectl}"
    rm -rf "${work}"
  fi
  printf '%s\n' "${kubectl}"
}

usage() {
  sed -n '5,10p' "$0" >&2
  exit 2
}

main() {
  [[ $# -ge 1 ]] || usage
  case "$1" in
    build) [[ $# -eq 1 ]] || usage && cmd_build ;;
    kubectl) [[ $# -eq 1 ]] || usage && cmd_kubectl ;;
    start) [[ $# -eq 2 ]] || usage && cmd_start "$2" ;;
    restart-apiserver) [[ $# -eq 2 ]] || usage && cmd_restart_apiserver "$2" ;;
    compact) [[ $# -eq 2 ]] || usage && cmd_compact "$2" ;;
    stop) [[ $# -eq 2 ]] || usage && cmd_stop "$2" ;;
    *) usage ;;
  esac
}

# One line: bash has read it whole before running it, so an edit of this file meanwhile
# (a checkout while a server starts) cannot feed the running shell the new text.
main "$@"; exit
