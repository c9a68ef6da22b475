#!/bin/sh
# scripts/compare_results.py on small result files: the same computed numbers with other timings
# and memory are identical (exit 0); one changed PPL is a difference (exit 1); a file that is not a
# result, or no old file, is bad input (exit 2).
set -u
tool="$1"; dir="$2"
rm -rf "$dir" && mkdir -p "$dir" || exit 1
cat > "$dir/old.json" <<'J'
{"rows": [{"arm": "bk", "valid_ppl": 116.8, "params": 1234, "step_time_s": 0.5, "peak_rss_bytes": 100}],
 "summary": {"ppl_ratio_ci": [1.0, 1.2], "tokens_per_s": 900.0, "nan_stays": NaN}}
J
sed 's/"step_time_s": 0.5/"step_time_s": 0.7/; s/"peak_rss_bytes": 100/"peak_rss_bytes": 140/; s/"tokens_per_s": 900.0/"tokens_per_s": 950.0/' \
  "$dir/old.json" > "$dir/retimed.json"
sed 's/"valid_ppl": 116.8/"valid_ppl": 116.9/' "$dir/old.json" > "$dir/changed.json"
echo '{"not": "a result"}' > "$dir/other.json"
. "$(dirname "$0")/expect_exit.sh"
expect 0 "$dir/retimed.json" "$dir/old.json"
expect 1 "$dir/changed.json" "$dir/old.json"
expect 2 "$dir/other.json" "$dir/old.json"
expect 2 "$dir/old.json"
exit $fail
