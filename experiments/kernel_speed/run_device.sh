#!/usr/bin/env bash
# One device call for issue 3 / claim C17 (GPU machine: LibTorch 2.11 + CUDA 13 from the Python
# wheel): build the kernel targets, run the gpu tests, compute-sanitizer memcheck on a small case,
# exp_kernel_speed --preset gpu, the Google Benchmark, then build everything and run the unit
# tests (checks the rest of the project against LibTorch 2.11). Logs and results go to $OUT.
# Usage: OUT=dir RBK_GIT_COMMIT=sha RBK_GIT_DIRTY=true experiments/kernel_speed/run_device.sh [stage...]
set -u -o pipefail
OUT=${OUT:-/tmp/rbk-out}
mkdir -p "$OUT/kernel_speed"
STAGES=${*:-"build gpu memcheck exp bench all unit"}
BUILD=build-gpu
# The copied tree on the GPU machine has no .git: provenance must come from the caller.
if [ -z "${RBK_GIT_COMMIT:-}" ]; then
  echo "run_device.sh: set RBK_GIT_COMMIT=<sha of the commit sent> (and RBK_GIT_DIRTY) so results record their code" >&2
  exit 2
fi
log() { echo "=== $(date +%T) $*"; }
has() { [[ " $STAGES " == *" $1 "* ]]; }
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv,noheader || true
if has build; then
  log configure
  PREFIX=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
  cmake -S . -B $BUILD -G Ninja -DCMAKE_PREFIX_PATH="$PREFIX" > "$OUT/configure.log" 2>&1 || { tail -40 "$OUT/configure.log"; exit 1; }
  grep "rbk:" "$OUT/configure.log"
  log build kernel targets
  cmake --build $BUILD -j16 --target test_bk_cuda exp_kernel_speed bench_kernel_speed > "$OUT/build.log" 2>&1 \
    || { grep -B2 -A12 "error" "$OUT/build.log" | head -60;
         log "fallback: torch-free targets only"; cmake --build $BUILD -j16 --target bench_kernel_speed > "$OUT/build_bench.log" 2>&1;
         STAGES="bench"; }
fi
if has gpu; then
  log gpu tests
  (cd $BUILD && timeout 240 ctest -R "BkCuda" --output-on-failure -j4) > "$OUT/gpu_tests.log" 2>&1
  echo "ctest rc=$?"; grep -E "tests passed|Failed|\*\*\*|rel_l2=.*e-0[1-4]" "$OUT/gpu_tests.log" | head -30
  $BUILD/tests/gpu/test_bk_cuda --gtest_filter='*B16_N4096*:*B64_N1048576*:*Compat*:*Torch*' 2>&1 | grep -E "^B=|compat|torch|autograd|OK|FAILED" | head -30
fi
if has memcheck; then
  log compute-sanitizer memcheck
  timeout 240 compute-sanitizer --tool memcheck --error-exitcode 3 $BUILD/tests/gpu/test_bk_cuda \
    --gtest_filter='*B3_N33:*B3_N1000:*B1_N65537*:*Compat*:*Launch*' > "$OUT/memcheck.log" 2>&1
  echo "memcheck rc=$?"; tail -4 "$OUT/memcheck.log"
fi
if has exp; then
  log exp_kernel_speed
  timeout 400 $BUILD/experiments/kernel_speed/exp_kernel_speed --preset gpu --out "$OUT/kernel_speed" 2>&1 | tee "$OUT/exp.log" | grep -v "^$" | tail -30
fi
if has bench; then
  log benchmark
  timeout 200 $BUILD/experiments/kernel_speed/bench_kernel_speed --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
    --benchmark_out="$OUT/kernel_speed/bench_kernel_speed.json" --benchmark_out_format=json \
    --benchmark_context=git_commit="$RBK_GIT_COMMIT" --benchmark_context=git_dirty="${RBK_GIT_DIRTY:-unknown}" 2>&1 | tail -20
fi
if has ncu; then
  log ncu: forward kernels at B=16 N=4096 and N=2^20
  for f in 'BM_StableForward/B:16/N:4096/bwd:0/fwd_threads:256' 'BM_StableForward/B:16/N:1048576/bwd:0/fwd_threads:256'; do
    timeout 120 ncu --kernel-name regex:bk_tile --launch-skip 4 --launch-count 2 --section SpeedOfLight \
      --section WarpStateStats --section Occupancy --section LaunchStats --section ComputeWorkloadAnalysis \
      $BUILD/experiments/kernel_speed/bench_kernel_speed --benchmark_filter="$f" --benchmark_min_time=0.001s >> "$OUT/ncu.log" 2>&1
  done
  grep -E "bk_tile_kernel|Duration|Throughput|Issue Slots|Stall|Achieved Occupancy|Registers|Warp Cycles" "$OUT/ncu.log" | head -60
fi
if has all; then
  log build all
  timeout $(( ${BUDGET_S:-580} - 90 - SECONDS > 10 ? ${BUDGET_S:-580} - 90 - SECONDS : 10 )) cmake --build $BUILD -j16 -- -k 0 > "$OUT/build_all.log" 2>&1; echo "build all rc=$?"
  grep -E "error|FAILED" "$OUT/build_all.log" | head -30
fi
if has unit; then
  log unit tests
  (cd $BUILD && timeout $(( ${BUDGET_S:-580} - 15 - SECONDS > 10 ? ${BUDGET_S:-580} - 15 - SECONDS : 10 )) ctest -L unit -j16 --output-on-failure) > "$OUT/unit.log" 2>&1; echo "unit rc=$?"
  grep -E "tests passed|Failed|Not Run|\*\*\*" "$OUT/unit.log" | head -30
fi
log done
tar -czf "$OUT/logs.tar.gz" -C "$OUT" $(cd "$OUT" && ls *.log 2>/dev/null) && rm -f "$OUT"/*.log
