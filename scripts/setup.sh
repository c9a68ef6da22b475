#!/usr/bin/env bash
# Prepares a machine for rbk and builds it. Idempotent: safe to run again; does only what is missing.
#
#   CPU machine (Debian 12): installs the Debian packages below with apt-get (as root), configures
#     and builds against Debian's LibTorch 1.13 (CPU). nvcc, if present, compiles the CUDA kernels.
#   GPU machine (Ubuntu 24.04 with the Python torch): no network there, so nothing is installed;
#     LibTorch 2.11 + CUDA is found through the Python wheel and the kernels are built for sm_90.
#
# usage: scripts/setup.sh [--no-build | --print-blas]      environment: RBK_BUILD_DIR (default build/),
#        RBK_BUILD_TYPE (Release), RBK_JOBS (cores), RBK_TORCH_PREFIX (override LibTorch's location)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${RBK_BUILD_DIR:-$ROOT/build}"
BUILD_TYPE="${RBK_BUILD_TYPE:-Release}"
JOBS="${RBK_JOBS:-$(nproc)}"
DO_BUILD=1
PRINT_BLAS_ONLY=0
case "${1:-}" in
  --no-build) DO_BUILD=0 ;;
  --print-blas) PRINT_BLAS_ONLY=1 ;;   # one line, the BLAS a LibTorch process here will load
esac

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# Debian 12 packages (CPU machine and CI). libboost1.81-dev: 1.74 lacks Boost.Math's
# Kolmogorov-Smirnov distribution, which the spectral statistics use. libopenblas0-pthread:
# Debian's LibTorch calls whatever libblas.so.3 the alternatives system points at, and without
# it that is netlib's reference BLAS (~5 GFLOP/s sgemm on the CPU machine, issue 16); OpenBLAS's
# higher alternatives priority makes it take over libblas.so.3 and liblapack.so.3 on install.
# libgloo-dev: the <gloo/...> headers c10d's ProcessGroupGloo.hpp includes (data-parallel training
# on the CPU, issue 23; without them the build leaves Gloo out and runs single-process only).
DEBIAN_PACKAGES=(build-essential cmake ninja-build git pkg-config libtorch-dev libhdf5-dev libboost1.81-dev
                 nlohmann-json3-dev libbenchmark-dev libgtest-dev libopenblas0-pthread libgloo-dev
                 python3 python3-numpy python3-matplotlib python3-h5py)
DEBIAN_BLAS=/usr/lib/x86_64-linux-gnu/libblas.so.3

# The BLAS a LibTorch process will load: Debian's libblas.so.3 alternative, or what the Python
# wheel's LibTorch was built with (MKL, linked into it). Every result also records the BLAS the
# process actually loaded and a measured sgemm rate (context.blas, context.sgemm_gflops).
blas_in_use() {
  if [ -z "$TORCH_PREFIX" ] && [ -e "$DEBIAN_BLAS" ]; then
    local target
    target="$(readlink -f "$DEBIAN_BLAS")"
    case "$target" in
      */openblas-*/*) echo "OpenBLAS ($(basename "$(dirname "$target")"): $target)" ;;
      */blas/libblas.so*) echo "netlib reference BLAS ($target) -- slow: timings of record need OpenBLAS" ;;
      *) echo "$target" ;;
    esac
  elif [ -n "$TORCH_PREFIX" ]; then
    python3 -c 'import re, torch; m = re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show()); print((m.group(1) if m else "unknown") + " (LibTorch from the Python wheel)")' 2>/dev/null || echo unknown
  else
    echo unknown
  fi
}

torch_prefix_from_python() {
  python3 -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null || true
}

TORCH_PREFIX="${RBK_TORCH_PREFIX:-}"
if [ -z "$TORCH_PREFIX" ] && [ ! -f /usr/lib/x86_64-linux-gnu/cmake/Torch/TorchConfig.cmake ]; then
  TORCH_PREFIX="$(torch_prefix_from_python)"
fi

if [ "$PRINT_BLAS_ONLY" = 1 ]; then
  blas_in_use
  exit 0
fi

if [ -f /etc/debian_version ] && grep -q '^12' /etc/debian_version && [ -z "$TORCH_PREFIX" ]; then
  missing=()
  for p in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing missing Debian packages: ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
      die "need root to apt-get install: ${missing[*]} (run as root, or install them and re-run)"
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q || die "apt-get update failed"
    apt-get install -y -q --no-install-recommends "${missing[@]}" || die "apt-get install failed for: ${missing[*]}"
  else
    say "all Debian packages present"
  fi
elif [ -n "$TORCH_PREFIX" ]; then
  say "using LibTorch from $TORCH_PREFIX (Python torch $(python3 -c 'import torch;print(torch.__version__)' 2>/dev/null || echo '?'))"
else
  die "no LibTorch found: on Debian 12 run as root so libtorch-dev can be installed; elsewhere set RBK_TORCH_PREFIX or install the Python torch"
fi

for tool in cmake ninja g++; do
  command -v "$tool" >/dev/null || die "'$tool' not found on PATH"
done
if command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="$PATH:/usr/local/cuda/bin"
  say "nvcc found ($(nvcc --version | tail -1)): CUDA kernels will be compiled"
else
  say "no nvcc: CUDA kernels are not compiled (CPU-only build)"
fi

cmake_args=(-S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="$BUILD_TYPE")
[ -n "$TORCH_PREFIX" ] && cmake_args+=(-DCMAKE_PREFIX_PATH="$TORCH_PREFIX")
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ] || [ "$ROOT/CMakeLists.txt" -nt "$BUILD_DIR/CMakeCache.txt" ]; then
  say "configuring $BUILD_DIR ($BUILD_TYPE)"
  cmake "${cmake_args[@]}" >"$BUILD_DIR.configure.log" 2>&1 || { cat "$BUILD_DIR.configure.log" >&2; die "cmake configure failed (log above)"; }
  grep -E '^-- rbk:' "$BUILD_DIR.configure.log" || true
fi
say "BLAS in use: $(blas_in_use)"
if [ "$DO_BUILD" = 1 ]; then
  say "building with $JOBS jobs (a first build takes ~10-15 minutes on 2 cores)"
  cmake --build "$BUILD_DIR" -j "$JOBS" || die "build failed"
  say "build complete: $BUILD_DIR"
fi
