#!/usr/bin/env bash
# The main job: setup if needed, build, run every claim's experiment at the preset this hardware
# allows (gpu with a CUDA device, else cpu; RBK_PRESET overrides), then validation and the
# regenerated tables/figures — all of it is `ctest -L paper`.
#   usage: scripts/reproduce.sh [extra ctest arguments]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${RBK_BUILD_DIR:-$ROOT/build}"
"$ROOT/scripts/setup.sh"   # installs the Debian packages (OpenBLAS included) and builds
echo "[reproduce] BLAS in use: $("$ROOT/scripts/setup.sh" --print-blas) (each result records the one it loaded: context.blas, context.sgemm_gflops)"
if [ -x "$ROOT/scripts/fetch_corpus.sh" ]; then
  "$ROOT/scripts/fetch_corpus.sh" || echo "[reproduce] corpus fetch failed: language-model claims will be 'not yet measured'"
fi
echo "[reproduce] ctest -L paper (preset: ${RBK_PRESET:-auto}) in $BUILD_DIR"
start=$(date +%s)
# Experiments compete for the cores: run them one at a time so their timings mean something.
ctest --test-dir "$BUILD_DIR" -L paper --output-on-failure -j 1 "$@"
echo "[reproduce] done in $(( $(date +%s) - start )) s; the ledger is paper/CLAIMS.md"
