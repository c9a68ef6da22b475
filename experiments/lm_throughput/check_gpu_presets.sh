#!/bin/sh
# usage: check_gpu_presets.sh <exp_lm_throughput> <scratch dir> preset...
# Each GPU preset must be valid: with no device visible, exit 77 (skipped) comes after the
# configuration is validated, and a bad preset exits 2.
exe=$1 out=$2
shift 2
for p in "$@"; do
  CUDA_VISIBLE_DEVICES= "$exe" --preset "$p" --out "$out"
  rc=$?
  [ "$rc" -eq 77 ] || { echo "preset $p: exit $rc, expected 77 (valid, then skipped without a GPU)"; exit 1; }
done
