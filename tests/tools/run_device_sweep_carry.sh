#!/bin/sh
# scripts/run_device.sh's loop across device calls, on the CPU: a call's stage trains some cells of a
# sweep and packs them into $OUT/sweeps.tar.gz; the next call, on a fresh build directory (a new
# machine), unpacks them with SWEEPS_IN, finds them finished and trains only the rest. Run with the
# train_poc stage on the sample corpus (one optimizer step per cell) and an absolute build directory
# (the case that once wrote the sweep under the tree's own path).
# usage: run_device_sweep_carry.sh SOURCE_DIR BINARY_DIR SCRATCH
set -u
src=$1 bin=$2 dir=$3
rm -rf "$dir" && mkdir -p "$dir/build1" "$dir/build2" || exit 1
ln -s "$bin/experiments" "$dir/build1/experiments" && ln -s "$bin/experiments" "$dir/build2/experiments" || exit 1
cd "$src" || exit 1
args='device=cpu data.data_dir=tests/data/sotu_sample model.d_model=16 model.n_layers=1 model.n_seq=16 train.seq_len=16 train.batch_size=4 train.max_steps=1 n_seeds=1 variants=["correct_causal","transformer"]'
call() {  # call <n> <build dir> [VAR=value ...]: one device call of the train_poc stage
  n=$1 b=$2; shift 2
  env "$@" OUT="$dir/out$n" RBK_BUILD_DIR="$b" RBK_GIT_COMMIT=0000000000000000000000000000000000000000 RBK_GIT_DIRTY=false \
    BUDGET_S=300 bash scripts/run_device.sh train_poc > "$dir/call$n.log" 2>&1 || { cat "$dir/call$n.log"; echo "FAIL call $n exited non-zero"; exit 1; }
}
call 1 "$dir/build1" TRAIN_POC_ARGS="$args max_cells=1"
[ -f "$dir/out1/sweeps.tar.gz" ] || { cat "$dir/call1.log"; echo "FAIL call 1 packed no sweeps.tar.gz"; exit 1; }
tar -tzf "$dir/out1/sweeps.tar.gz" | grep -q '^train_poc_sweep/cells/correct_causal.seed4/outcome.json$' ||
  { tar -tzf "$dir/out1/sweeps.tar.gz"; echo "FAIL call 1's tarball lacks its finished cell"; exit 1; }
call 2 "$dir/build2" SWEEPS_IN="$dir/out1/sweeps.tar.gz" TRAIN_POC_ARGS="$args"
python3 - "$dir/out2/train_poc/train_poc.gpu.json" <<'P' || exit 1
import json, sys
d = json.load(open(sys.argv[1]))
sweep = d["summary"]["sweep"]
cells = [r["status"] for r in d["rows"] if r.get("variant") in ("correct_causal", "transformer")]
if sweep.get("already_finished") != 1 or sweep.get("ran") != 1 or cells != ["ok", "ok"] or d["status"] != "ok":
    print("FAIL call 2: expected 1 carried cell, 1 trained, both ok; got", sweep, cells, d["status"])
    sys.exit(1)
print("ok   call 1 trained 1 cell and packed it; call 2 on a fresh build dir carried it in and trained the other")
P
