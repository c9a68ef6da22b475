#!/usr/bin/env python3
"""The git tree hash of a copied source tree, for provenance where git is absent.

usage: scripts/tree_hash.py <root> <manifest>

The GPU machine gets `git archive <commit>` without .git, so a run there cannot ask git whether it
built the commit it names. This computes, from the files themselves, the hash git would give the
tree: each path of the manifest (`git ls-tree -r -z --full-tree <commit>`, written next to the copy by
scripts/snapshot_for_device.sh) is read from <root> and hashed as a blob, and the trees are built
as git builds them. Only the manifest's paths and modes are taken from it, never its blob hashes,
so an edited, truncated or missing file gives another hash (or an error). run_device.sh passes the
result to the experiments as RBK_GIT_TREE_HASH; the ledger compares it with the commit's tree.
Files not in the manifest (data/, build directories) do not count, as untracked files do not for git.
"""
import hashlib
import os
import sys


def git_object(kind, body):
    return hashlib.sha1(b"%s %d\0" % (kind, len(body)) + body).digest()


def blob(root, path, mode):
    full = os.path.join(root, path)
    if mode == "120000":  # a symbolic link: git stores its target
        return git_object(b"blob", os.readlink(full).encode())
    with open(full, "rb") as f:
        return git_object(b"blob", f.read())


def tree_hash(root, entries):
    """entries: (mode, path) of every blob. Returns the root tree's hash (hex)."""
    tree = {}  # nested dicts: name -> dict (subtree) or (mode, digest)
    for mode, path in entries:
        node = tree
        parts = path.split("/")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = (mode, blob(root, path, mode))

    def encode(node):
        # git sorts a tree's entries by name, a subtree's name compared as if it ended in '/'.
        items = sorted(node.items(), key=lambda kv: kv[0] + ("/" if isinstance(kv[1], dict) else ""))
        body = b""
        for name, value in items:
            mode, digest = ("40000", encode(value)) if isinstance(value, dict) else value
            body += b"%s %s\0" % (mode.encode(), name.encode()) + digest
        return git_object(b"tree", body)

    return encode(tree).hex()


def read_manifest(path):
    """`git ls-tree -r -z`: NUL-terminated records, paths unquoted."""
    with open(path, "rb") as f:
        raw = f.read().decode("utf-8")
    if "\0" not in raw:
        sys.exit(f"tree_hash.py: {path}: not NUL-terminated; write it with `git ls-tree -r -z --full-tree <commit>`")
    records = raw.split("\0")
    entries = []
    for n, line in enumerate(records, 1):
        if not line:
            continue
        try:
            meta, name = line.split("\t", 1)
            mode, kind, _ = meta.split(" ")
        except ValueError:
            sys.exit(f"tree_hash.py: {path}:{n}: expected '<mode> <type> <sha>\\t<path>' (git ls-tree -r -z), got {line!r}")
        if kind != "blob":
            sys.exit(f"tree_hash.py: {path}:{n}: a {kind} entry ({name}); only blobs are supported (no submodules)")
        entries.append((mode, name))
    if not entries:
        sys.exit(f"tree_hash.py: {path}: no entries")
    return entries


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: scripts/tree_hash.py <root> <manifest>")
    root, manifest = sys.argv[1], sys.argv[2]
    entries = read_manifest(manifest)
    missing = [p for _, p in entries if not os.path.lexists(os.path.join(root, p))]
    if missing:
        sys.exit(f"tree_hash.py: {len(missing)} file(s) of the manifest missing under {root}, e.g. {missing[0]}")
    print(tree_hash(root, entries))


if __name__ == "__main__":
    main()
