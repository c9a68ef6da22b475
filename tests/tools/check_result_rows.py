#!/usr/bin/env python3
"""Checks how many rows of an experiment's result have each (part, status), and how many cells the
summary lists under not_selected: the end-to-end check that every part's rows reach the result and
that pending cells outside a command's selection are named, not rows.
usage: check_result_rows.py RESULT.json PART:STATUS=COUNT ... [not_selected=COUNT]"""
import collections
import json
import sys


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    path = sys.argv[1]
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        print(f"check_result_rows: cannot read {path} as a result document: {e}")
        return 2
    counts = collections.Counter((r.get("part"), r.get("status")) for r in doc.get("rows", []))
    bad = []
    for spec in sys.argv[2:]:
        key, _, want = spec.partition("=")
        if not want.isdigit():
            print(f"check_result_rows: '{spec}' is not PART:STATUS=COUNT or not_selected=COUNT")
            return 2
        if key == "not_selected":
            got = len(doc.get("summary", {}).get("not_selected", []))
        else:
            part, _, status = key.partition(":")
            got = counts.get((part, status), 0)
        if got != int(want):
            bad.append(f"{key}: {got} rows, expected {want}")
    if bad:
        print(f"check_result_rows: {path}: " + "; ".join(bad) + f" (rows by part and status: {dict(counts)})")
        return 1
    print(f"check_result_rows: {path}: ok ({dict(counts)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
