#!/usr/bin/env bash
# The probe cache (probe_cache_dir) lets a search split over time-limited calls end in one result:
# a second run over the same cache must re-probe nothing (every search probe read from the cache,
# the order check's re-probes excepted) and find the same largest widths as the first.
# usage: test_probe_cache.sh <exp_memory_search> <scratch dir>
set -euo pipefail
exe=$1
dir=$2
rm -rf "$dir" && mkdir -p "$dir"
args=(--preset smoke parts=search probe_cache_dir="$dir/cache")
"$exe" "${args[@]}" --out "$dir/first" > "$dir/first.log" 2>&1
"$exe" "${args[@]}" --out "$dir/second" > "$dir/second.log" 2>&1
python3 - "$dir/first/memory_search.smoke.json" "$dir/second/memory_search.smoke.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
probes = lambda d: [r for r in d["rows"] if r.get("part") == "search_probe"]
pa, pb = probes(a), probes(b)
assert pa and len(pa) == len(pb), f"probe counts differ: {len(pa)} vs {len(pb)}"
assert not any(r.get("from_probe_cache") for r in pa), "the first run read a cache it had not written"
fresh = [r["d_model"] for r in pb if not r.get("from_probe_cache")]
assert not fresh, f"the second run re-probed d_model {fresh}"
def widths(d):
    return {(b, m, a): v.get("max_d_model") for b, bv in d["summary"].items() if b.startswith("budget_")
            for m, mv in bv.items() for a, v in mv.items() if isinstance(v, dict)}
assert widths(a) == widths(b) and widths(a), f"largest widths differ: {widths(a)} vs {widths(b)}"
print(f"probe cache: {len(pb)} probes reused, largest widths {widths(b)}")
PY
# search.skip leaves a search out and declares it not measured (read from the same cache: no probe);
# a cell the preset does not run is a configuration error (exit 2), never a silent no-op.
"$exe" "${args[@]}" search.skip=budget_0p06gb/training/phase1 --out "$dir/skip" > "$dir/skip.log" 2>&1
python3 - "$dir/skip/memory_search.smoke.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
searched = set(d["summary"]["budget_0p06gb"]["training"])
assert "phase1" not in searched and "transformer" in searched, f"searched: {searched}"
patterns = [n["pattern"] for n in d["summary"]["not_measured"]]
assert "/summary/budget_0p06gb/training/phase1/*" in patterns, patterns
print("search.skip: phase1 left out and declared not measured")
PY
set +e
"$exe" "${args[@]}" search.skip=budget_8gb/training/phase1 --out "$dir/badskip" > "$dir/badskip.log" 2>&1
rc=$?
set -e
[ "$rc" -eq 2 ] && grep -q "search.skip: 'budget_8gb/training/phase1' is not a search of this preset" "$dir/badskip.log" \
  || { echo "bad search.skip: expected exit 2 and a message, got rc=$rc:"; cat "$dir/badskip.log"; exit 1; }
echo "search.skip: an unknown search is refused (exit 2)"

# search.hints_from: searches started where the first run's ended find the same largest widths with
# fewer probes (no cache: every probe runs); a file that is not a memory_search result is refused.
"$exe" --preset smoke parts=search search.hints_from="$dir/first/memory_search.smoke.json" --out "$dir/hinted" \
  > "$dir/hinted.log" 2>&1
python3 - "$dir/first/memory_search.smoke.json" "$dir/hinted/memory_search.smoke.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
def searches(d):
    return {(b, m, a): v for b, bv in d["summary"].items() if b.startswith("budget_")
            for m, mv in bv.items() for a, v in mv.items() if isinstance(v, dict)}
sa, sb = searches(a), searches(b)
assert sa and sa.keys() == sb.keys(), f"searches differ: {sorted(sa)} vs {sorted(sb)}"
assert b["summary"]["search_settings"]["hints_from"]["path"].endswith("first/memory_search.smoke.json")
for k in sa:
    assert sb[k].get("max_d_model") == sa[k].get("max_d_model"), f"{k}: {sb[k].get('max_d_model')} vs {sa[k].get('max_d_model')}"
    if sa[k].get("max_d_model"):
        assert sb[k]["hint_d_model"] == sa[k]["max_d_model"], f"{k}: hint {sb[k]['hint_d_model']}"
        assert sb[k]["n_probes"] <= sa[k]["n_probes"], f"{k}: {sb[k]['n_probes']} probes vs {sa[k]['n_probes']}"
    assert not any(r.get("from_probe_cache") for r in b["rows"] if r.get("part") == "search_probe")
na = sum(v["n_probes"] for v in sa.values()); nb = sum(v["n_probes"] for v in sb.values())
assert nb < na, f"hinted searches took {nb} probes, the first run {na}"
print(f"search.hints_from: the same largest widths with {nb} probes instead of {na}")
PY
set +e
"$exe" --preset smoke parts=search search.hints_from="$dir/first.log" --out "$dir/badhints" > "$dir/badhints.log" 2>&1
rc=$?
set -e
[ "$rc" -eq 2 ] && grep -q "search.hints_from: cannot read '$dir/first.log'" "$dir/badhints.log" \
  || { echo "bad search.hints_from: expected exit 2 and a message, got rc=$rc:"; cat "$dir/badhints.log"; exit 1; }
echo "search.hints_from: a file that is not a result is refused (exit 2)"
