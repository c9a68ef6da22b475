#!/usr/bin/env bash
# The tree a device call carries (README, "GPU runs"): `git archive` of one commit (the GPU machine
# gets no .git), the commit's file manifest for scripts/tree_hash.py (run_device.sh hashes the files
# there and the results record it; the ledger checks it is the commit's tree), and the corpus data
# the experiments read, when fetched here.
# usage: scripts/snapshot_for_device.sh [<commit>, default HEAD] [<dir>, default .snap]
# then:  run with carry [".snap"]: cd .snap && OUT=$OUT RBK_GIT_COMMIT=<sha> RBK_GIT_DIRTY=false scripts/run_device.sh ...
set -euo pipefail
rev=${1:-HEAD}
dir=${2:-.snap}
sha=$(git rev-parse --verify --quiet "$rev^{commit}") || { echo "snapshot_for_device.sh: '$rev' is not a commit" >&2; exit 2; }
case "$dir" in
  ""|"."|".."|"/"|*/..|../*) echo "snapshot_for_device.sh: refusing directory '$dir'" >&2; exit 2 ;;
esac
# Only a directory this script made (it holds .rbk_commit) is replaced.
if [ -e "$dir" ] && [ ! -f "$dir/.rbk_commit" ]; then
  echo "snapshot_for_device.sh: $dir exists and is not a snapshot (no .rbk_commit); not touching it" >&2
  exit 2
fi
rm -rf "$dir"
mkdir -p "$dir"
git archive "$sha" | tar -x -C "$dir"
git ls-tree -r -z --full-tree "$sha" > "$dir/.rbk_tree_manifest"
echo "$sha" > "$dir/.rbk_commit"
for d in data/sotu data/gpt2; do
  if [ -d "$d" ]; then mkdir -p "$dir/data" && cp -r "$d" "$dir/data/"; fi
done
echo "$dir: commit $sha, tree $(git rev-parse "$sha^{tree}") ($(du -sh "$dir" | cut -f1))"
