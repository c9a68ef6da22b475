#!/usr/bin/env bash
# The tree a device call carries (README, "GPU runs"): `git archive` of one commit (the GPU machine
# gets no .git), the commit's file manifest for scripts/tree_hash.py (run_device.sh hashes the files
# there and the results record it; the ledger checks it is the commit's tree), and the corpus data
# the experiments read, when fetched here.
# usage: scripts/snapshot_for_device.sh [<commit>, default HEAD] [<dir>, default .snap] [--over <base commit>]
#                                       [--without-outputs]
# then:  run with carry [".snap"]: cd .snap && OUT=$OUT RBK_GIT_COMMIT=<sha> RBK_GIT_DIRTY=false scripts/run_device.sh ...
#
# --over <base>: an overlay instead of a whole tree, to time a second commit in the same call as the
# base's snapshot (two whole trees do not fit the 64 MiB a call carries): only the files that differ
# from <base> or are new, plus the commit's manifest and .rbk_commit (no data/). On the device lay it
# over a copy of the base's snapshot: cp -r .snap /tmp/s2 && cp -r <dir>/. /tmp/s2/. Files the commit
# deletes are refused here: an overlay cannot remove them. run_device.sh's tree hash then checks the
# laid-over tree against the commit (session 31: ff52c07 + 482855e, NOTES.md).
#
# --without-outputs: leave results/ and paper/ (what runs write, never read by a build or a run) out of
# the snapshot, because the working tree that travels with every call already holds them (session 32:
# tree 26 MB + snapshot 46 MB passed the 64 MiB limit). They are copied in on the device before
# run_device.sh, from the travelling tree: cp -r results paper .snap/ (so the working tree must be at
# the snapshot's commit). Their bytes are then hashed like every other file: a copy that differs from
# the commit's gives another tree hash, and a missing one no hash at all. Not with --over (exit 2):
# an overlay holds only changed files anyway.
set -euo pipefail
base=""
without_outputs=0
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --without-outputs) without_outputs=1; shift ;;
    --over) [ $# -ge 2 ] || { echo "snapshot_for_device.sh: --over needs a base commit" >&2; exit 2; }; base=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
rev=${args[0]:-HEAD}
dir=${args[1]:-.snap}
sha=$(git rev-parse --verify --quiet "$rev^{commit}") || { echo "snapshot_for_device.sh: '$rev' is not a commit" >&2; exit 2; }
if [ -n "$base" ] && [ "$without_outputs" = 1 ]; then
  # An overlay holds only the files that differ from the base, so there is no whole results/ or paper/
  # to leave out: saying so beats ignoring the option.
  echo "snapshot_for_device.sh: --without-outputs does not apply to --over (an overlay holds only the changed files; the base snapshot decides whether results/ and paper/ travel)" >&2
  exit 2
fi
if [ -n "$base" ]; then
  base_sha=$(git rev-parse --verify --quiet "$base^{commit}") || { echo "snapshot_for_device.sh: --over '$base' is not a commit" >&2; exit 2; }
  deleted=$(git diff --no-renames --name-only --diff-filter=D "$base_sha" "$sha")
  [ -z "$deleted" ] || { printf 'snapshot_for_device.sh: %s deletes files an overlay cannot remove:\n%s\n' "$rev" "$deleted" >&2; exit 2; }
  changed=$(git diff --no-renames --name-only --diff-filter=AMT "$base_sha" "$sha")
  [ -n "$changed" ] || { echo "snapshot_for_device.sh: $rev has the tree of $base: nothing to lay over" >&2; exit 2; }
fi
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
if [ -n "$base" ]; then
  # git archive of just those paths keeps their modes (scripts stay executable).
  git diff --no-renames --name-only -z --diff-filter=AMT "$base_sha" "$sha" | xargs -0 git archive "$sha" -- | tar -x -C "$dir"
  git ls-tree -r -z --full-tree "$sha" > "$dir/.rbk_tree_manifest"
  echo "$sha" > "$dir/.rbk_commit"
  echo "$dir: overlay of commit $sha on $base_sha, tree $(git rev-parse "$sha^{tree}"): $(printf '%s\n' "$changed" | wc -l) file(s) ($(du -sh "$dir" | cut -f1))"
  exit 0
fi
if [ "$without_outputs" = 1 ]; then
  # Top-level results/ and paper/ only (tests/validation/data holds fixtures named results/).
  git archive "$sha" -- . ":(exclude,top)results" ":(exclude,top)paper" | tar -x -C "$dir"
else
  git archive "$sha" | tar -x -C "$dir"
fi
git ls-tree -r -z --full-tree "$sha" > "$dir/.rbk_tree_manifest"
echo "$sha" > "$dir/.rbk_commit"
for d in data/sotu data/gpt2; do
  if [ -d "$d" ]; then mkdir -p "$dir/data" && cp -r "$d" "$dir/data/"; fi
done
echo "$dir: commit $sha, tree $(git rev-parse "$sha^{tree}") ($(du -sh "$dir" | cut -f1))"
if [ "$without_outputs" = 1 ]; then
  echo "$dir: results/ and paper/ left out: on the device, cp -r results paper $dir/ before run_device.sh"
fi
