#!/bin/sh
# scripts/snapshot_for_device.sh + scripts/tree_hash.py, the provenance of GPU results (the device
# copy has no .git): the hash computed from a snapshot's files must be git's tree of the commit, an
# edited file must change it, a missing one must fail, and the snapshot script must refuse to
# replace a directory it did not make. usage: device_snapshot_tree_hash.sh <repo root> <scratch dir>
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
echo "device_snapshot_tree_hash: ok (tree $want)"
