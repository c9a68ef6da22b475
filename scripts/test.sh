#!/usr/bin/env bash
# The test command: setup if needed, build, then the unit tests and every experiment's smoke preset.
#   usage: scripts/test.sh [extra ctest arguments]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${RBK_BUILD_DIR:-$ROOT/build}"
"$ROOT/scripts/setup.sh"   # installs the Debian packages (OpenBLAS included) and builds
echo "[test] BLAS in use: $("$ROOT/scripts/setup.sh" --print-blas) (each result records the one it loaded: context.blas, context.sgemm_gflops)"
echo "[test] ctest -L 'unit|smoke' in $BUILD_DIR"
ctest --test-dir "$BUILD_DIR" -L 'unit|smoke' --output-on-failure -j "${RBK_JOBS:-$(nproc)}" "$@"
