#!/bin/sh
# scripts/snapshot_for_device.sh + scripts/tree_hash.py, the provenance of GPU results (the device
# copy has no .git): the hash computed from a snapshot's files must be git's tree of the commit, an
# edited file must change it, a missing one must fail, the snapshot script must refuse to replace a
# directory it did not make, an overlay (--over) laid on its base must hash to its own commit, and a
# snapshot --without-outputs must hash to it once results/ and paper/ are laid in.
# usage: device_snapshot_tree_hash.sh <repo root> <scratch dir>
set -u
root=$1 scratch=$2
fail() { echo "device_snapshot_tree_hash: $*"; exit 1; }
cd "$root" || fail "no repo root $root"
git rev-parse --verify -q HEAD > /dev/null || { echo "not a git checkout: skipped"; exit 77; }
rm -rf "$scratch" && mkdir -p "$scratch" || fail "cannot make $scratch"
snap=$scratch/snap
scripts/snapshot_for_device.sh HEAD "$snap" > "$scratch/snapshot.log" 2>&1 || fail "snapshot failed: $(cat "$scratch/snapshot.log")"
want=$(git rev-parse 'HEAD^{tree}')
got=$(python3 scripts/tree_hash.py "$snap" "$snap/.rbk_tree_manifest") || fail "tree_hash.py failed on an intact snapshot"
[ "$got" = "$want" ] || fail "intact snapshot hashes to $got, git's tree of HEAD is $want"
[ "$(cat "$snap/.rbk_commit")" = "$(git rev-parse HEAD)" ] || fail ".rbk_commit is not HEAD"
# A manifest in another format (newline-separated ls-tree) is refused, not misread.
git ls-tree -r --full-tree HEAD > "$scratch/newline.manifest"
if python3 scripts/tree_hash.py "$snap" "$scratch/newline.manifest" > /dev/null 2>&1; then fail "a newline manifest gave a hash"; fi
# One byte more in one file: another hash (a result built from it would show a MISMATCH).
printf ' ' >> "$snap/README.md"
edited=$(python3 scripts/tree_hash.py "$snap" "$snap/.rbk_tree_manifest") || fail "tree_hash.py failed on an edited snapshot"
[ "$edited" != "$want" ] || fail "an edited file left the hash unchanged"
# A file of the commit missing from the copy: an error, not a hash.
rm "$snap/NOTES.md"
if python3 scripts/tree_hash.py "$snap" "$snap/.rbk_tree_manifest" > /dev/null 2>&1; then fail "a missing file gave a hash"; fi
# Re-snapshotting over its own directory is fine; over anything else it refuses (exit 2).
scripts/snapshot_for_device.sh HEAD "$snap" > /dev/null 2>&1 || fail "could not replace its own snapshot"
mkdir -p "$scratch/precious" && echo keep > "$scratch/precious/file"
scripts/snapshot_for_device.sh HEAD "$scratch/precious" > /dev/null 2>&1
[ $? -eq 2 ] || fail "replacing a directory that is not a snapshot: expected exit 2"
[ -f "$scratch/precious/file" ] || fail "a directory that is not a snapshot was touched"
# --without-outputs: no top-level results/ or paper/ (fixtures named results/ deeper down stay); without
# them the manifest gives no hash; with the commit's copies laid in (what the device command copies
# from the travelling tree) the commit's tree again.
lean=$scratch/lean
scripts/snapshot_for_device.sh HEAD "$lean" --without-outputs > "$scratch/lean.log" 2>&1 || fail "--without-outputs failed: $(cat "$scratch/lean.log")"
[ ! -e "$lean/results" ] && [ ! -e "$lean/paper" ] || fail "--without-outputs kept results/ or paper/"
[ "$(git ls-tree -r --name-only HEAD tests | grep -c '/results/')" = "$(cd "$lean" && find tests -path '*/results/*' -type f | wc -l)" ] \
  || fail "--without-outputs dropped files named results/ below the top level"
if python3 scripts/tree_hash.py "$lean" "$lean/.rbk_tree_manifest" > /dev/null 2>&1; then fail "a snapshot without its outputs gave a hash"; fi
git archive HEAD results paper | tar -x -C "$lean" || fail "cannot lay the commit's results/ and paper/ in"
got=$(python3 scripts/tree_hash.py "$lean" "$lean/.rbk_tree_manifest") || fail "tree_hash.py failed with the outputs laid in"
[ "$got" = "$want" ] || fail "the snapshot with its outputs laid in hashes to $got, not $want"
# --over: an overlay of a second commit, laid over the first's snapshot, hashes to the second's tree;
# it holds only the changed and new files, keeps an executable's mode, and a commit that deletes a
# file, or one with the base's tree, is refused (exit 2). In a scratch repository of three commits.
repo=$scratch/overlay_repo
mkdir -p "$repo/scripts" && cp scripts/snapshot_for_device.sh scripts/tree_hash.py "$repo/scripts/" || fail "cannot make $repo"
cd "$repo" || fail "no $repo"
git init -q . && git config user.email t@example.invalid && git config user.name t || fail "git init failed"
echo a > same.txt && echo b > changed.txt && git add -A && git commit -qm base || fail "base commit failed"
base_rev=$(git rev-parse HEAD)
echo c > changed.txt && printf '#!/bin/sh\n' > new.sh && chmod +x new.sh && git add -A && git commit -qm second || fail "second commit failed"
scripts/snapshot_for_device.sh "$base_rev" "$scratch/base" > /dev/null 2>&1 || fail "base snapshot failed"
scripts/snapshot_for_device.sh HEAD "$scratch/over" --over "$base_rev" > "$scratch/over.log" 2>&1 || fail "overlay failed: $(cat "$scratch/over.log")"
[ ! -e "$scratch/over/same.txt" ] || fail "the overlay holds an unchanged file"
[ -f "$scratch/over/changed.txt" ] && [ -x "$scratch/over/new.sh" ] || fail "the overlay lacks a changed or new file, or new.sh lost its mode"
mkdir -p "$scratch/laid" && cp -r "$scratch/base/." "$scratch/laid/" || fail "cannot copy the base snapshot"
cp -r "$scratch/over/." "$scratch/laid/"
laid=$(python3 scripts/tree_hash.py "$scratch/laid" "$scratch/laid/.rbk_tree_manifest") || fail "tree_hash.py failed on the laid-over tree"
[ "$laid" = "$(git rev-parse 'HEAD^{tree}')" ] || fail "the laid-over tree hashes to $laid, not the second commit's tree"
scripts/snapshot_for_device.sh HEAD "$scratch/same" --over HEAD > /dev/null 2>&1
[ $? -eq 2 ] || fail "an overlay on the same tree: expected exit 2"
scripts/snapshot_for_device.sh HEAD "$scratch/lean_over" --over "$base_rev" --without-outputs > /dev/null 2>&1
[ $? -eq 2 ] || fail "--over with --without-outputs: expected exit 2"
[ ! -e "$scratch/lean_over" ] || fail "a refused overlay left $scratch/lean_over behind"
git rm -q same.txt && git commit -qm third || fail "third commit failed"
scripts/snapshot_for_device.sh HEAD "$scratch/del" --over "$base_rev" > /dev/null 2>&1
[ $? -eq 2 ] || fail "an overlay of a commit that deletes a file: expected exit 2"
echo "device_snapshot_tree_hash: ok (tree $want)"
