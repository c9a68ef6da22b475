#!/bin/sh
# scripts/lm_throughput_table.py: the ratio to the Transformer is taken within a step mode (a
# synthetic result with two modes), the committed gpu result's 2k ratio comes out as its summary
# has it, and a file that is not an lm_throughput result exits 2 naming it.
# usage: lm_throughput_table_cases.sh <lm_throughput_table.py> <committed lm_throughput.gpu.json> <scratch dir>
set -u
script=$1 committed=$2 dir=$3
rm -rf "$dir" && mkdir -p "$dir" || exit 1
fail() { echo "FAIL: $*"; exit 1; }

cat > "$dir/two_modes.json" <<'JSON'
{"experiment": "lm_throughput", "rows": [
 {"variant": "transformer", "status": "ok", "seq_len": 2048, "tokens_per_second": 100.0, "step_seconds_median": 0.01},
 {"variant": "bk", "status": "ok", "seq_len": 2048, "tokens_per_second": 50.0, "step_seconds_median": 0.02},
 {"variant": "transformer", "step_mode": "cuda_graph", "status": "ok", "seq_len": 2048, "tokens_per_second": 200.0, "step_seconds_median": 0.005},
 {"variant": "bk", "step_mode": "cuda_graph", "status": "ok", "seq_len": 2048, "tokens_per_second": 200.0, "step_seconds_median": 0.005},
 {"variant": "bk", "step_mode": "cuda_graph", "status": "not_capturable", "seq_len": 4096}]}
JSON
out=$(python3 "$script" "$dir/two_modes.json") || fail "exit $? on a valid file"
echo "$out" | grep -q '^| bk | aten | 2048 | 0k | 20.0 | - | - | - | 0.500 |$' || fail "eager ratio: $out"
echo "$out" | grep -q '^| bk+cuda_graph | aten | 2048 | 0k | 5.0 | - | - | - | 1.000 |$' || fail "cuda_graph ratio: $out"
[ "$(echo "$out" | grep -c 'not_capturable\|4096')" -eq 0 ] || fail "a row that did not run is listed: $out"

want=$(python3 -c "import json,sys; print('%.3f' % json.load(open(sys.argv[1]))['summary']['variants']['resnet_bk_causal_dense_moe']['tokens_per_second_over_transformer'])" "$committed")
python3 "$script" "$committed" | grep -q "^| resnet_bk_causal_dense_moe | aten | 2048 | .* | $want |\$" || fail "committed 2k ratio $want not in the table"

echo '{"experiment": "quantization", "rows": []}' > "$dir/other.json"
python3 "$script" "$dir/other.json" 2> "$dir/err"; rc=$?
[ "$rc" -eq 2 ] || fail "exit $rc on another experiment's result, expected 2"
grep -q "other.json: not an exp_lm_throughput result" "$dir/err" || fail "the error does not name the file: $(cat "$dir/err")"
python3 "$script" "$dir/missing.json" 2> /dev/null; [ $? -eq 2 ] || fail "a missing file must exit 2"
echo "ok"
