#!/usr/bin/env bash
# exp_train_poc split over calls (the gpu run of record spans device calls and sessions): a run
# stopped by max_cells writes a partial result whose unfinished cells are "pending"; the next run on
# the same sweep_dir trains only those, and its result equals one uninterrupted run's in every
# computed number (only the sweep's own counters differ). A sweep directory made under other
# settings is refused (exit 2, the plan named), so cells of two trainings are never merged.
# Args: EXP_TRAIN_POC SOURCE_DIR.
set -u
exe=$1 src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$src" || exit 1
fail() { echo "FAIL $*"; exit 1; }
run() { "$exe" --preset smoke "$@" > "$work/last.log" 2>&1; }

run --out "$work/whole" || { cat "$work/last.log"; fail "uninterrupted run"; }
run --out "$work/part" sweep_dir="$work/sweep" max_cells=5 || { cat "$work/last.log"; fail "first part"; }
python3 - "$work/part/train_poc.smoke.json" <<'P' || fail "the first part's result"
import json, sys
d = json.load(open(sys.argv[1]))
cells = [r for r in d["rows"] if r.get("variant") not in ("unigram_add_one", "bigram_interpolated")]
statuses = [r["status"] for r in cells]
assert d["status"] == "partial", d["status"]
assert statuses == ["ok"] * 5 + ["pending"] * 7, statuses
assert d["summary"]["sweep"]["ran"] == 5 and d["summary"]["sweep"]["interrupted"], d["summary"]["sweep"]
print("ok   first part: 5 cells ok, 7 pending, status partial")
P
run --out "$work/rest" sweep_dir="$work/sweep" || { cat "$work/last.log"; fail "second part"; }
grep -q "cell 1 of 12: upstream_layout_bug.seed4 -> ok" "$work/last.log" && fail "the second part trained a finished cell again"
python3 scripts/compare_results.py "$work/rest/train_poc.smoke.json" "$work/whole/train_poc.smoke.json" > "$work/cmp.log" 2>&1
differing=$(grep '^DIFFERS' "$work/cmp.log" | grep -v -E '^DIFFERS /summary/sweep/(already_finished|ran):' || true)
grep -q "computed numbers identical" "$work/cmp.log" || { cat "$work/cmp.log"; fail "compare_results did not compare"; }
[ -z "$differing" ] || { echo "$differing"; fail "the resumed result differs from the uninterrupted one"; }
echo "ok   resumed result equals the uninterrupted run's ($(tail -1 "$work/cmp.log"))"

run --out "$work/other" sweep_dir="$work/sweep" train.epochs=1
rc=$?
[ $rc -eq 2 ] || { cat "$work/last.log"; fail "a sweep_dir of other settings: exit $rc, expected 2"; }
grep -q "plan" "$work/last.log" || { cat "$work/last.log"; fail "the refusal does not name the plan"; }
echo "ok   refused: $(grep -m1 plan "$work/last.log")"
