#!/bin/sh
# A sweep sharded over 2 processes (issue 23): rank r runs the cells of shard r/2, rank 0 writes the
# summary when both are done. It must equal a single-process run of the same cells: the same
# per-seed arrays, cell statuses and metrics (each cell is the same single-process training, so
# exactly equal), every cell's outcome present.
# usage: distributed_sweep.sh RBK_SWEEP LAUNCH_LOCAL SCRATCH_DIR PORT
set -u -f   # -f: the cell globs below are rbk_sweep's, not the shell's
sweep=$1 launch=$2 dir=$3 port=$4
rm -rf "$dir"
mkdir -p "$dir"
args="--preset sweep_mamba_resnet_bk_tiny --select *.seed0,*.seed1"   # 4 cells, 2 per rank
# The launcher gives each rank OMP_NUM_THREADS = cores / 2 (OpenBLAS reads it too): the single
# process gets the same, or BLAS splits its sums differently (ulp-level differences in evaluation).
OMP_NUM_THREADS=$(( $(nproc) / 2 > 0 ? $(nproc) / 2 : 1 )) "$sweep" $args --out "$dir/one" > "$dir/one.log" 2>&1 || { tail -20 "$dir/one.log"; exit 1; }
"$launch" --nproc-per-node 2 --master-port "$port" "$sweep" $args --out "$dir/two" > "$dir/two.log" 2>&1 \
  || { tail -20 "$dir/two.log"; exit 1; }
grep -q "rbk_sweep\[rank 1\]: 2 of 6 cells (shard 1/2)" "$dir/two.log" || { tail -20 "$dir/two.log"; echo "rank 1 did not run shard 1/2"; exit 1; }
python3 - "$dir/one/summary.json" "$dir/two/summary.json" <<'PY'
import json, sys
one, two = (json.load(open(p)) for p in sys.argv[1:3])
a, b = one["summary"], two["summary"]
if a["seeds"] != b["seeds"]:
    print("per-seed arrays differ:\n  1 process ", a["seeds"], "\n  2 ranks   ", b["seeds"]); sys.exit(1)
cells = lambda s: {c["cell"]: (c["status"], c.get("metrics")) for c in s["cells"]}
if cells(a) != cells(b):
    print("cells differ:\n  1 process ", cells(a), "\n  2 ranks   ", cells(b)); sys.exit(1)
ok = [c for c in b["cells"] if c["status"] == "ok"]
if len(ok) != 4:
    print("expected the 4 selected cells ok, got", cells(b)); sys.exit(1)
print("2-rank sweep equals the single-process one:", {k: v for k, v in b["seeds"].items() if k.endswith("valid_ppl")})
PY
rc=$?
[ $rc -eq 0 ] && rm -rf "$dir"
exit $rc
