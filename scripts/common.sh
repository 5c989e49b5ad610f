# Shared by scripts/main.sh and scripts/test.sh: install what is missing, configure and
# build out of source. Safe to run twice: nothing is installed when everything is there,
# and apt-get is never called on a machine that already has the dependencies.
set -euo pipefail

DSV4LAB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${DSV4LAB_BUILD_DIR:-$DSV4LAB_ROOT/build}

log() { printf '[dsv4lab] %s\n' "$*" >&2; }

# A python3 with numpy, h5py and matplotlib (Debian: /usr/bin/python3).
find_python() {
  for py in /usr/bin/python3 python3; do
    if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import numpy, h5py, matplotlib' >/dev/null 2>&1; then
      command -v "$py"; return 0
    fi
  done
  return 1
}

have_header() {  # have_header <path relative to an include dir>
  for d in /usr/include /usr/local/include /usr/include/hdf5/serial /usr/local/cuda/include; do
    [ -e "$d/$1" ] && return 0
  done
  return 1
}

is_debian() {
  [ -r /etc/os-release ] && (. /etc/os-release && [ "${ID:-}" = debian ])
}

ensure_deps() {
  local missing=()
  command -v cmake >/dev/null 2>&1 || missing+=(cmake)
  command -v g++ >/dev/null 2>&1 || missing+=(g++)
  command -v ninja >/dev/null 2>&1 || missing+=(ninja-build)
  command -v git >/dev/null 2>&1 || missing+=(git)
  have_header boost/test/unit_test.hpp || missing+=(libboost-test-dev)
  have_header CLI/CLI.hpp || missing+=(libcli11-dev)
  have_header hdf5.h || missing+=(libhdf5-dev)
  have_header nlohmann/json.hpp || missing+=(nlohmann-json3-dev)
  have_header eigen3/Eigen/Core || missing+=(libeigen3-dev)
  find_python >/dev/null || missing+=(python3-numpy python3-h5py python3-matplotlib)
  # hipcc (optional) gives the HIP compile check of the kernels. Debian packages it; other
  # systems (e.g. an Ubuntu GPU machine without network) are not asked for it.
  if ! command -v hipcc >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && is_debian \
     && [ "${DSV4LAB_NO_HIP:-0}" != 1 ]; then
    missing+=(hipcc)
  fi
  if [ ${#missing[@]} -eq 0 ]; then
    log "dependencies present"
    return 0
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    log "missing: ${missing[*]} (and no apt-get to install them)"; return 1
  fi
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  log "installing: ${missing[*]}"
  $sudo apt-get update -qq
  # hipcc is optional: install the rest even when it cannot be had.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    $(printf '%s\n' "${missing[@]}" | grep -v '^hipcc$') >/dev/null
  if printf '%s\n' "${missing[@]}" | grep -q '^hipcc$'; then
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends hipcc >/dev/null \
      || log "hipcc not installable here: the HIP compile check is skipped"
  fi
}

# nvcc is not a Debian package here: use the CUDA toolkit where one is installed.
find_cuda() {
  if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
    export PATH=/usr/local/cuda/bin:$PATH
  fi
}

configure_and_build() {
  find_cuda
  local jobs
  jobs=$(nproc 2>/dev/null || echo 2)
  local py
  py=$(find_python || true)
  cmake -S "$DSV4LAB_ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
        ${py:+-DDSV4LAB_PYTHON=$py} ${DSV4LAB_CMAKE_ARGS:-} >/dev/null
  cmake --build "$BUILD_DIR" -j "$jobs"
}

have_gpu() {
  command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1
}
