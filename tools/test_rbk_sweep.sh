#!/bin/sh
# Tool-level test of rbk_sweep (issue 17 "done when"): the tiny Mamba + ResNet-BK preset over three
# seeds, stopped after a cell and inside a cell, restarted, gives the same per-seed arrays and cell
# rows as an uninterrupted run; two shards merged give them too; a bad preset exits 2 writing nothing.
#   test_rbk_sweep.sh RBK_SWEEP SCRATCH_DIR
set -eu
sweep=$1
work=$2
rm -rf "$work"
mkdir -p "$work"
preset="--preset sweep_mamba_resnet_bk_tiny"

"$sweep" $preset --out "$work/whole"
"$sweep" $preset --out "$work/parts" --max-cells 1                # stop after a cell
"$sweep" $preset --out "$work/parts" --stop-after-steps 10        # stop inside the next cell
test ! -e "$work/parts/cells/resnet_bk.seed0/outcome.json"
test -e "$work/parts/cells/resnet_bk.seed0/model.pt"
"$sweep" $preset --out "$work/parts"                              # restart: resumes, finishes
"$sweep" $preset --out "$work/shard0" --shard 0/2
"$sweep" $preset --out "$work/shard1" --shard 1/2
"$sweep" --merge --out "$work/merged" "$work/shard0" "$work/shard1"

/usr/bin/python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
def load(name):
    return json.load(open(f"{work}/{name}/summary.json"))["summary"]
def rows(s):  # details hold timings and paths, which differ between runs
    return [{k: v for k, v in r.items() if k != "details"} for r in s["cells"]]
whole = load("whole")
assert whole["counts"] == {"ok": 6}, whole["counts"]
assert len(whole["seeds"]["mamba_valid_ppl"]) == 3 and len(whole["seeds"]["resnet_bk_valid_ppl"]) == 3
for other in ("parts", "merged"):
    s = load(other)
    assert s["seeds"] == whole["seeds"], f"{other}: per-seed arrays differ from the uninterrupted run"
    assert rows(s) == rows(whole), f"{other}: cell rows differ from the uninterrupted run"
print("rbk_sweep: resumed and merged summaries equal the uninterrupted run:",
      {k: v for k, v in whole["seeds"].items() if k.endswith("valid_ppl")})
PY

printf '{"arms": [{"name": "a", "overrides": {"model.arch": "mambo"}}], "seeds": [0]}' > "$work/bad.json"
set +e
"$sweep" --preset-file "$work/bad.json" --out "$work/bad_out"
rc=$?
set -e
test "$rc" -eq 2
test ! -e "$work/bad_out"
echo "rbk_sweep tool test passed"
