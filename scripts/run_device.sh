#!/usr/bin/env bash
# One device call on the GPU machine (LibTorch 2.11 + CUDA 13 from the Python wheel, H100): build,
# the gpu and unit tests, and the GPU experiments of record, in stages, inside one command's
# 10-minute limit. Logs and result files go to $OUT (at most 8 files come back: logs are tarred).
#
# usage: OUT=dir RBK_GIT_COMMIT=<sha> RBK_GIT_DIRTY=false scripts/run_device.sh stage...
#        (in the tree scripts/snapshot_for_device.sh made; RBK_GIT_TREE_HASH is then computed here)
# stages (in this order, whichever are named):
#   build          configure (Ninja, Release) and build everything with -j16, -k 0 (BUILD_TARGETS: only those)
#   gpu            ctest -L gpu (every CUDA kernel against its CPU/fp64 reference)
#   memcheck       compute-sanitizer memcheck on small cases of every gpu test binary
#   unit           ctest -L unit (the rest of the project against LibTorch 2.11)
#   kernel_speed   exp_kernel_speed --preset gpu            (claim C17; KERNEL_SPEED_ARGS adds overrides,
#                  e.g. KERNEL_SPEED_ARGS=parts=same_work,paper_point,compat for the parts C17 reads)
#   kernel_speed_sweep  exp_kernel_speed parts=sweep into kernel_speed/sweep (context, not read by the ledger)
#   bench          bench_kernel_speed (Google Benchmark JSON with the commit in its context)
#   bench_moe_dispatch  bench_moe_dispatch: one MoE layer's training step by the dense, gather and grouped
#                  dispatches side by side, each checked against fp64 first (issue 25), into
#                  lm_throughput/bench_moe_dispatch.json (Google Benchmark JSON with the commit)
#   bench_softmax_xent  bench_softmax_xent: the fused loss kernel with each row kept in shared memory
#                  against two reads of each row (bf16, V 50,000, T 16,384 / 32,768), both checked against
#                  fp64 first (issue 25), into lm_throughput/bench_softmax_xent.json
#   bench_semiseparable_solve  bench_semiseparable_solve: the semiseparable term's solve on the host
#                  against its torch-op reference (the ablations' gpu preset shape), both checked against
#                  fp64 first, into ablations/bench_semiseparable_solve.json
#   scan_speed     exp_scan_kernel_speed --preset gpu      (baseline kernels, issue 7; with upstream
#                  Mamba's own kernels side by side when data/upstream/mamba, a checkout of
#                  state-spaces/mamba, is carried: `git clone https://github.com/state-spaces/mamba
#                  data/upstream/mamba` on a machine with network, then carry data/upstream)
#   lm_throughput  exp_lm_throughput --preset gpu          (baseline LMs, issue 7; LM_THROUGHPUT_ARGS adds
#                  overrides to this and every lm_throughput_* stage, e.g. 'step_modes=cuda_graph')
#   lm_throughput_fp32  the same in fp32 (no autocast) into lm_throughput/fp32
#   lm_throughput_chunked_loss  the same with the loss in chunks of 8,192 tokens (the gpu preset uses
#                  the plain full-logits loss) into lm_throughput/chunked_loss: the chunked head's share
#                  of the 2k ratio (the length curve chunks its loss to reach 128k)
#   lm_throughput_fused_loss  the gpu preset with the fused softmax cross-entropy kernel
#                  (loss_kernel=fused) into lm_throughput/fused_loss (issue 25)
#   lm_throughput_lengths_fused  the gpu_lengths preset with the fused loss over the full logits
#                  (loss_kernel=fused, train.loss_chunk_tokens=0) into lm_throughput/lengths_fused
#   lm_throughput_lengths  its gpu_lengths preset into lm_throughput/lengths: tokens/s against N from 2k
#                  to 128k for ResNet-BK causal (gather and dense MoE), Transformer, Mamba and RWKV (issue 25)
#   train_poc      exp_train_poc --preset gpu               (claim C05; needs data/sotu carried). Its
#                  (variant, seed) cells go to $BUILD/train_poc_sweep, packed into sweeps.tar.gz like the
#                  other sweeps: a run cut by the time limit continues in a later call (SWEEPS_IN) and
#                  a cut cell resumes from its checkpoint on the same warm machine; TRAIN_POC_ARGS adds
#                  overrides.
#   distributed    data-parallel scaling (issue 23; needs data/sotu carried and a multi-GPU kind):
#                  rbk_train presets dp_scaling_resnet_bk and dp_scaling_transformer (N = 2048, bf16,
#                  8 sequences per GPU) on 1 GPU, then on 2 through torchrun (scripts/launch_local.sh
#                  without it); tokens/s per GPU and the scaling efficiency (2-GPU per-GPU rate / 1-GPU
#                  rate; target >= 0.9) in $OUT/distributed/scaling.json
#   long_context   exp_long_context --preset gpu            (claims C12, C19, C21; needs data/sotu and
#                  data/gpt2 carried). Split over calls: LONG_CONTEXT_ARGS picks the cells, e.g.
#                  LONG_CONTEXT_ARGS='parts=sweep select=bk_n2048.*,bk_n8192.*' (the command list is in
#                  experiments/long_context/presets/gpu.json); every call adds its cells to one sweep
#                  directory that outlives the call (LONG_CONTEXT_SWEEP_DIR, default in the build dir),
#                  and the last call, LONG_CONTEXT_ARGS=summarize_only=true, writes the full result.
#   ablations      exp_ablations --preset gpu               (claims C14, C06, C09's PPL part; needs data/sotu
#                  carried). 25 cells do not fit one call: every call adds cells to one sweep directory
#                  that outlives the call (ABLATIONS_SWEEP_DIR, default in the build dir; a cell cut by the
#                  time limit resumes from its checkpoint), and writes the result of the cells finished so
#                  far; repeat the call until its log says every cell is finished.
#   act_flops      exp_act_flops --preset gpu               (claims C11, C21's efficiency part; needs data/sotu
#                  carried); resumable over calls like ablations (ACT_FLOPS_SWEEP_DIR, ACT_FLOPS_ARGS).
#   memory_search  exp_memory_search --preset gpu           (claims C10, C15, C16, C20, C22): the search at
#                  8 / 15 / 24 GB (CUDA allocator memory fraction), one fresh process per probe. 24 searches
#                  do not fit one call: every finished probe is kept in $BUILD/memory_search_probes
#                  (probe_cache_dir), so repeat the call until it writes memory_search.gpu.json; each call
#                  resumes where the last was killed. MEMORY_SEARCH_ARGS adds overrides, e.g.
#                  'search.hints_from=results/memory_search/memory_search.gpu.json' (every search starts
#                  where the committed result's ended: ~4 probes a search instead of ~11); a partial run
#                  can go to memory_search/<name> by MEMORY_SEARCH_SUBDIR (the ledger reads memory_search/).
#   phase1         exp_phase1 --preset gpu                  (claim C18)
#   quantization   exp_quantization --preset gpu            (claims C13, C21's quantisation part; needs
#                  data/sotu and data/gpt2 carried): 20 cells (4 models x 5 seeds, each trained then
#                  quantized in every row) over several calls, resumable like ablations
#                  (QUANTIZATION_SWEEP_DIR; QUANTIZATION_ARGS, e.g. max_cells=2 per call); repeat the
#                  call until its log says every cell is finished.
# Sweeps across sessions: a machine's build dir (and the sweep directories in it) is lost when the
# machine goes back, and one session's device time does not finish the long sweeps. So every call
# ends by packing the finished cells of every sweep directory in $BUILD (outcomes, plans, per-cell
# arrays; no *.pt: checkpoints and paired-init files are large, and the init files are rebuilt from
# the seed when missing) into $OUT/sweeps.tar.gz, labelled with this call's commit (cells carried
# in were checked to have run the same code). SWEEPS_IN=<path of such a tarball in the tree sent>
# unpacks it into $BUILD first. Carry cells only to a commit whose experiment sources are the same
# as the one that ran them (scripts/sweep_carry_check.py checks it against the registry before the
# call); the plan check of the sweep runner refuses a changed preset.
# BUDGET_S (default 570) bounds the whole call: each stage gets what is left. GPU_TESTS_REGEX
# restricts the gpu stage to matching tests (ctest -R on the GoogleTest names, e.g. 'BkCuda',
# 'SelectiveScan|Mamba', 'Wkv': a binary's name such as test_bk_cuda matches nothing).
# GPU_TESTS_GATE=1: when the gpu stage fails, the stages after it are skipped (nothing is timed on
# a kernel that failed its fp64 check); the sweeps are still packed.
# Tests run several processes at once, each with one CPU thread: their CPU fp64 references are long
# chains of small ops, and 4 processes x 16 OpenMP threads spinning at barriers made them 10x slower
# (a 2048-step selective-scan reference took 266 s in run 424727d).
set -u -o pipefail
OUT=${OUT:-/tmp/rbk-out}
mkdir -p "$OUT"
BUILD=${RBK_BUILD_DIR:-build-gpu}
# Absolute, so that the paths handed to the programs (sweep directories) hold from any directory.
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
UPSTREAM_MAMBA=data/upstream/mamba
BUDGET_S=${BUDGET_S:-570}
# The copied tree on the GPU machine has no .git: provenance must come from the caller.
if [ -z "${RBK_GIT_COMMIT:-}" ]; then
  echo "run_device.sh: set RBK_GIT_COMMIT=<sha of the commit sent> (and RBK_GIT_DIRTY) so results record their code" >&2
  exit 2
fi
export RBK_GIT_COMMIT RBK_GIT_DIRTY=${RBK_GIT_DIRTY:-unknown}
# The content hash of the files sent (scripts/snapshot_for_device.sh wrote the commit's manifest
# beside them): the results record it as git_tree_hash, and the ledger checks that it is the tree
# of RBK_GIT_COMMIT, so an edited or wrong copy shows up as a provenance MISMATCH.
if [ -z "${RBK_GIT_TREE_HASH:-}" ] && [ -f .rbk_tree_manifest ]; then
  RBK_GIT_TREE_HASH=$(python3 scripts/tree_hash.py . .rbk_tree_manifest) || RBK_GIT_TREE_HASH=
  [ -f .rbk_commit ] && [ "$(cat .rbk_commit)" != "$RBK_GIT_COMMIT" ] &&
    echo "run_device.sh: warning: RBK_GIT_COMMIT=$RBK_GIT_COMMIT but the snapshot is of $(cat .rbk_commit)" >&2
fi
[ -n "${RBK_GIT_TREE_HASH:-}" ] || echo "run_device.sh: no tree hash of the files sent (no .rbk_tree_manifest): provenance will be unverifiable" >&2
export RBK_GIT_TREE_HASH=${RBK_GIT_TREE_HASH:-}
# The device copy may carry a .git that is not the commit sent (2026-12-05: its HEAD was 5840b57 while
# 9384163 was sent), and the programs trust git over the environment where git answers. Hide it, so
# provenance comes from RBK_GIT_COMMIT / RBK_GIT_DIRTY (recorded as git_source "env").
export GIT_DIR=/nonexistent-rbk-device-copy
log() { echo "=== $(date +%T) (+${SECONDS}s) $*"; }
left() { local l=$(( BUDGET_S - SECONDS - ${1:-10} )); echo $(( l > 10 ? l : 10 )); }
run_exp() {  # run_exp name dir extra-args...: exp_<name> --preset gpu [key=value...] into $OUT/<dir>
  local name=$1 dir=$2; shift 2
  local logf="$OUT/exp_${dir//\//_}.log"
  log "exp_$name -> $dir $*"
  mkdir -p "$OUT/$dir"
  timeout "$(left 20)" "$BUILD/experiments/$name/exp_$name" --preset gpu --out "$OUT/$dir" "$@" > "$logf" 2>&1
  echo "exp_$name rc=$?"
  grep -v "^$" "$logf" | tail -15
}
run_bench() {  # run_bench <binary under $BUILD> <dir> <lines to show>: Google Benchmark JSON with the commit into $OUT/<dir>
  local bin=$1 dir=$2 show=$3 name; name=$(basename "$1")
  log "$name"
  mkdir -p "$OUT/$dir"
  timeout "$(left 20)" "$BUILD/$bin" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
    --benchmark_out="$OUT/$dir/$name.json" --benchmark_out_format=json --benchmark_context=git_commit="$RBK_GIT_COMMIT" \
    --benchmark_context=git_dirty="$RBK_GIT_DIRTY" > "$OUT/$name.log" 2>&1
  echo "$name rc=$?"; grep -E "$show" "$OUT/$name.log" | head -20
}
# gdb backtraces of the tests the last ctest run failed (at most 8), into $OUT/backtraces_<stage>.log:
# a test that crashes on this machine only (session 18: five segfaults on LibTorch 2.11 that pass
# under valgrind on the CPU machine) is diagnosed in the call that finds it.
backtraces_of_failed() {
  local failed="$BUILD/Testing/Temporary/LastTestsFailed.log" name cmd
  [ -s "$failed" ] || return 0
  command -v gdb > /dev/null || { echo "no gdb here: no backtraces of the failed tests"; return 0; }
  head -8 "$failed" | while IFS=: read -r _ name; do
    cmd=$(cd "$BUILD" && ctest -N -V -R "^${name}\$" | sed -n 's/^.*Test command: //p' | head -1)
    [ -n "$cmd" ] || continue
    echo "=== $name: $cmd"
    (cd "$BUILD" && eval "env -u GIT_DIR timeout 60 gdb -q -batch -ex run -ex bt --args $cmd" 2>&1 | grep -vE '^\[(New|Thread)' | tail -40)
  done > "$OUT/backtraces_$1.log"
  echo "backtraces of failed tests: $OUT/backtraces_$1.log"
}
SWEEP_DIRS="long_context_sweep ablations_sweep act_flops_sweep quantization_sweep memory_search_probes train_poc_sweep"
if [ -n "${SWEEPS_IN:-}" ]; then
  [ -f "$SWEEPS_IN" ] || { echo "run_device.sh: SWEEPS_IN='$SWEEPS_IN' is not a file" >&2; exit 2; }
  mkdir -p "$BUILD" && tar -xzf "$SWEEPS_IN" -C "$BUILD" || { echo "run_device.sh: cannot unpack SWEEPS_IN='$SWEEPS_IN'" >&2; exit 2; }
  log "unpacked $SWEEPS_IN (cells run at $(cat "$BUILD/sweeps_commit" 2>/dev/null || echo unknown)): $(find "$BUILD" -name outcome.json | wc -l) cell outcomes, $(find "$BUILD" -path "*/memory_search_probes/*.json" | wc -l) memory_search probe records"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader || true
for stage in "$@"; do
  case $stage in
    build)
      log configure
      PREFIX=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
      # Upstream Mamba's kernels next to ours in scan_speed, when a checkout was carried (see header).
      UPSTREAM=()
      [ -d "$UPSTREAM_MAMBA/csrc/selective_scan" ] && UPSTREAM=(-DRBK_UPSTREAM_MAMBA_SRC="$PWD/$UPSTREAM_MAMBA")
      cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$PREFIX" "${UPSTREAM[@]}" > "$OUT/configure.log" 2>&1 \
        || { tail -40 "$OUT/configure.log"; exit 1; }
      grep "rbk:" "$OUT/configure.log"
      log build
      # BUILD_TARGETS (space-separated) builds only those, e.g. a second snapshot's bench and its test
      # in the same call as a full build of the first (issue 25's side-by-side kernel checks).
      timeout "$(left 120)" cmake --build "$BUILD" -j16 ${BUILD_TARGETS:+--target $BUILD_TARGETS} -- -k 0 \
        > "$OUT/build.log" 2>&1; echo "build rc=$?"
      grep -E "error|FAILED" "$OUT/build.log" | head -40 ;;
    gpu)
      log "ctest -L gpu"
      (cd "$BUILD" && OMP_NUM_THREADS=1 RBK_THREADS=1 timeout "$(left 30)" ctest -L gpu -LE bench ${GPU_TESTS_REGEX:+-R "$GPU_TESTS_REGEX"} \
         --output-on-failure -j8) > "$OUT/gpu_tests.log" 2>&1
      rc=$?; echo "gpu tests rc=$rc"; [ $rc -eq 0 ] || backtraces_of_failed gpu
      grep -E "tests passed|Failed|Not Run|\*\*\*" "$OUT/gpu_tests.log" | head -30
      if [ $rc -ne 0 ] && [ "${GPU_TESTS_GATE:-0}" = 1 ]; then
        log "gpu tests failed: the later stages are skipped (GPU_TESTS_GATE=1)"
        break
      fi ;;
    memcheck)
      log "compute-sanitizer memcheck"
      for t in "$BUILD"/tests/gpu/test_*; do
        [ -x "$t" ] || continue
        # Small cases only: memcheck slows kernels down by orders of magnitude.
        timeout 120 compute-sanitizer --tool memcheck --error-exitcode 3 "$t" --gtest_filter='*Small*:*B3_N33:*B1_N65537*:*Launch*:*Compat*' \
          > "$OUT/memcheck_$(basename "$t").log" 2>&1
        echo "memcheck $(basename "$t") rc=$?"; tail -2 "$OUT/memcheck_$(basename "$t").log"
      done ;;
    unit)
      log "ctest -L unit"
      # Tests build their own git fixtures: the GIT_DIR that hides the copy's .git above would point them at nothing.
      (cd "$BUILD" && env -u GIT_DIR OMP_NUM_THREADS=1 RBK_THREADS=1 timeout "$(left 15)" ctest -L unit -j16 --output-on-failure) > "$OUT/unit.log" 2>&1
      rc=$?; echo "unit rc=$rc"; [ $rc -eq 0 ] || backtraces_of_failed unit
      grep -E "tests passed|Failed|Not Run|\*\*\*" "$OUT/unit.log" | head -30 ;;
    kernel_speed) run_exp kernel_speed kernel_speed ${KERNEL_SPEED_ARGS:-} ;;
    kernel_speed_sweep) run_exp kernel_speed kernel_speed/sweep parts=sweep ;;
    bench) run_bench experiments/kernel_speed/bench_kernel_speed kernel_speed median ;;
    bench_moe_dispatch) run_bench experiments/lm_throughput/bench_moe_dispatch lm_throughput "median|ERROR" ;;
    bench_softmax_xent) run_bench experiments/lm_throughput/bench_softmax_xent lm_throughput "median|ERROR" ;;
    bench_semiseparable_solve) run_bench experiments/ablations/bench_semiseparable_solve ablations "median|ERROR" ;;
    scan_speed) run_exp scan_kernel_speed scan_kernel_speed ;;
    lm_throughput) run_exp lm_throughput lm_throughput ${LM_THROUGHPUT_ARGS:-} ;;
    lm_throughput_fp32) run_exp lm_throughput lm_throughput/fp32 train.precision=fp32 ${LM_THROUGHPUT_ARGS:-} ;;
    lm_throughput_chunked_loss) run_exp lm_throughput lm_throughput/chunked_loss train.loss_chunk_tokens=8192 ${LM_THROUGHPUT_ARGS:-} ;;
    lm_throughput_lengths) run_exp lm_throughput lm_throughput/lengths --preset gpu_lengths ${LM_THROUGHPUT_ARGS:-} ;;
    lm_throughput_fused_loss) run_exp lm_throughput lm_throughput/fused_loss loss_kernel=fused ${LM_THROUGHPUT_ARGS:-} ;;
    lm_throughput_lengths_fused)
      run_exp lm_throughput lm_throughput/lengths_fused --preset gpu_lengths loss_kernel=fused train.loss_chunk_tokens=0 ${LM_THROUGHPUT_ARGS:-} ;;
    train_poc) run_exp train_poc train_poc sweep_dir="${TRAIN_POC_SWEEP_DIR:-$BUILD/train_poc_sweep}" ${TRAIN_POC_ARGS:-} ;;
    distributed)
      ngpu=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
      for model in resnet_bk transformer; do
        for n in 1 2; do
          if [ "$n" -gt "$ngpu" ]; then echo "distributed: $model on $n GPUs: only $ngpu visible, skipped"; continue; fi
          # Checkpoints (~400 MB) stay in scratch; only the result document comes back.
          d="/tmp/rbk-distributed/$model-gpus$n"; logf="$OUT/distributed_${model}_gpus$n.log"
          rm -rf "$d"; mkdir -p "$d" "$OUT/distributed"
          launcher=()
          if [ "$n" -gt 1 ]; then
            if command -v torchrun > /dev/null; then launcher=(torchrun --standalone --nproc-per-node="$n" --no-python)
            else launcher=(scripts/launch_local.sh --nproc-per-node "$n"); fi
          fi
          log "distributed: $model on $n GPU(s): ${launcher[*]:-(single process)}"
          timeout "$(left 30)" "${launcher[@]}" "$BUILD/tools/rbk_train" --preset "dp_scaling_$model" --out "$d" \
            train.batch_size=$((8 * n)) > "$logf" 2>&1
          echo "distributed $model gpus=$n rc=$?"; grep -E "step 40/|failed|error" "$logf" | tail -3
          cp "$d/rbk_train.dp_scaling_$model.json" "$OUT/distributed/$model-gpus$n.json" 2> /dev/null
        done
      done
      python3 - "$OUT/distributed" <<'PY'
import json, os, sys
root = sys.argv[1]
out = {}
for model in ("resnet_bk", "transformer"):
    per_gpu = {}
    for n in (1, 2):
        path = os.path.join(root, f"{model}-gpus{n}.json")
        if os.path.exists(path):
            doc = json.load(open(path))
            row = doc["rows"][0]
            per_gpu[n] = row["tokens_per_second"] / n
            out.setdefault("context", doc["context"])
    entry = {"tokens_per_second_per_gpu": {str(k): v for k, v in per_gpu.items()}}
    if 1 in per_gpu and 2 in per_gpu:
        entry["scaling_efficiency_2gpu"] = per_gpu[2] / per_gpu[1]
    out[model] = entry
    print(f"distributed {model}: tokens/s per GPU {entry['tokens_per_second_per_gpu']}, "
          f"efficiency {entry.get('scaling_efficiency_2gpu', 'n/a')}")
json.dump(out, open(os.path.join(root, "scaling.json"), "w"), indent=1)
PY
      ;;
    long_context)
      run_exp long_context long_context sweep_dir="${LONG_CONTEXT_SWEEP_DIR:-$BUILD/long_context_sweep}" \
        ${LONG_CONTEXT_ARGS:-} ;;
    ablations)
      run_exp ablations ablations sweep_dir="${ABLATIONS_SWEEP_DIR:-$BUILD/ablations_sweep}" ${ABLATIONS_ARGS:-} ;;
    act_flops)
      run_exp act_flops act_flops sweep_dir="${ACT_FLOPS_SWEEP_DIR:-$BUILD/act_flops_sweep}" ${ACT_FLOPS_ARGS:-} ;;
    memory_search)
      run_exp memory_search "memory_search${MEMORY_SEARCH_SUBDIR:+/$MEMORY_SEARCH_SUBDIR}" \
        probe_cache_dir="$BUILD/memory_search_probes" ${MEMORY_SEARCH_ARGS:-} ;;
    phase1) run_exp phase1 phase1 ;;
    quantization)
      run_exp quantization quantization sweep_dir="${QUANTIZATION_SWEEP_DIR:-$BUILD/quantization_sweep}" ${QUANTIZATION_ARGS:-} ;;
    *) echo "run_device.sh: unknown stage '$stage'" >&2; exit 2 ;;
  esac
done
log done
(
  cd "$BUILD" 2>/dev/null || exit 0
  present=$(for d in $SWEEP_DIRS; do [ -d "$d" ] && echo "$d"; done)
  [ -n "$present" ] || exit 0
  echo "$RBK_GIT_COMMIT" > sweeps_commit
  tar -czf "$OUT/sweeps.tar.gz" --exclude='*.pt' sweeps_commit $present
  echo "sweeps.tar.gz: $(tar -tzf "$OUT/sweeps.tar.gz" | grep -c 'outcome.json$') cell outcomes, $(tar -tzf "$OUT/sweeps.tar.gz" | grep -c '^memory_search_probes/.*\.json$') memory_search probe records, $(du -h "$OUT/sweeps.tar.gz" | cut -f1)"
)
cd "$OUT" && ls *.log > /dev/null 2>&1 && tar -czf logs.tar.gz *.log && rm -f *.log
