#!/bin/sh
# scripts/sweep_carry_check.py against this repository's own history: cells run at HEAD may be
# carried to HEAD (exit 0); cells run at the first commit, before the experiment existed, may not
# (exit 1, its sources changed); cells run at a commit not in the history (one that never landed),
# a missing file, a tarball without sweeps_commit, or one holding no
# sweep directory are bad input (exit 2). memory_search's probe cache is counted by its probe records
# (it has no outcome.json). Skips (exit 0 with a line) where there is no git history.
set -u
tool="$1"; dir="$2"; src="$3"
cd "$src" || exit 1
if ! git rev-parse HEAD > /dev/null 2>&1; then echo "skipped: $src is not a git work tree"; exit 0; fi
rm -rf "$dir" && mkdir -p "$dir/cells/ablations_sweep/cells/full.seed0" "$dir/bare/ablations_sweep" "$dir/none" "$dir/probes/memory_search_probes" || exit 1
echo '{"status": "ok"}' > "$dir/cells/ablations_sweep/cells/full.seed0/outcome.json"
pack() {  # pack <tarball> <commit>: the cells directory with sweeps_commit = <commit>
  echo "$2" > "$dir/cells/sweeps_commit" && tar -czf "$1" -C "$dir/cells" sweeps_commit ablations_sweep
}
pack "$dir/at_head.tar.gz" "$(git rev-parse HEAD)"
pack "$dir/at_root.tar.gz" "$(git rev-list --max-parents=0 HEAD | tail -1)"
pack "$dir/at_lost.tar.gz" "0123456789abcdef0123456789abcdef01234567"
tar -czf "$dir/no_commit.tar.gz" -C "$dir/bare" ablations_sweep
echo "$(git rev-parse HEAD)" > "$dir/none/sweeps_commit" && tar -czf "$dir/no_sweeps.tar.gz" -C "$dir/none" sweeps_commit
. "$src/tests/tools/expect_exit.sh"
expect 0 "$dir/at_head.tar.gz"
expect 1 "$dir/at_root.tar.gz"
expect 2 "$dir/at_lost.tar.gz"
expect 2 "$dir/missing.tar.gz"
expect 2 "$dir/no_commit.tar.gz"
expect 2 "$dir/no_sweeps.tar.gz"
echo '{"outcome": "ok"}' > "$dir/probes/memory_search_probes/resnet_bk-training-b8000000000-d1536.json"
echo '{"outcome": "oom"}' > "$dir/probes/memory_search_probes/resnet_bk-training-b8000000000-d1600.json"
git rev-parse HEAD > "$dir/probes/sweeps_commit" && tar -czf "$dir/probes.tar.gz" -C "$dir/probes" sweeps_commit memory_search_probes
expect 0 "$dir/probes.tar.gz"
grep -q "memory_search_probes: 2 probe record(s)" "$dir/out.txt" || { echo "FAIL: the probe records were not counted: $(cat "$dir/out.txt")"; fail=1; }
exit $fail
