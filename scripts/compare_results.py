#!/usr/bin/env python3
"""Did a change that should not change what an experiment computes leave its result alone?

Compares two result files (JSON) number by number: every numeric leaf of `rows` and `summary`
whose key path names no clock, rate, memory or machine quantity (those move from run to run) must
be equal, and NaN equals NaN. Used after refactors (NOTES.md, session 13): re-run the experiment,
then

    scripts/compare_results.py results/<e>/<e>.cpu.json --git-rev <old commit>

(the old file is read from git at that commit), or give two paths. Prints each differing number,
then a summary line. Exit 0 when no deterministic number differs, 1 when some do, 2 on bad input.
A key path is left out when it matches --measured (default below); extend it when an experiment
adds a measured quantity under a new name. Names with "ratio" count as measured (in these results
they are nearly all ratios of times), so a computed ratio needs its own --measured to be compared.
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys

MEASURED = (r"time|seconds|_s$|_s\[|_s/|_us|_ms|ns_per|per_s|tokens_s|throughput|wall|gflops|speed|ratio"
            r"|rate|peak|rss|bytes|memory|_mb|_gb|gib|mib|timestamp|elapsed|sgemm|projected|overhead|efficiency"
            r"|launch|r2_|slope|exponent|_fit|crossover|reduction|prediction_rel_error|activation")


def bad_input(message):
    print(f"compare_results: {message}", file=sys.stderr)
    sys.exit(2)


def load(path, rev):
    try:
        if rev:
            root = subprocess.check_output(["git", "rev-parse", "--show-toplevel"], text=True,
                                           cwd=os.path.dirname(os.path.abspath(path)) or ".").strip()
            rel = os.path.relpath(os.path.abspath(path), root)
            text = subprocess.check_output(["git", "show", f"{rev}:{rel}"], text=True, cwd=root,
                                           stderr=subprocess.PIPE)
        else:
            text = open(path).read()
        doc = json.loads(text)
    except (OSError, subprocess.CalledProcessError, json.JSONDecodeError) as e:
        bad_input(f"cannot read {path}{' at ' + rev if rev else ''}: {getattr(e, 'stderr', None) or e}")
    if not isinstance(doc, dict) or "rows" not in doc or "summary" not in doc:
        bad_input(f"{path}{' at ' + rev if rev else ''}: not a result file (no rows / summary)")
    return doc


def leaves(x, path=""):
    if isinstance(x, dict):
        for k, v in x.items():
            yield from leaves(v, f"{path}/{k}")
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from leaves(v, f"{path}[{i}]")
    elif isinstance(x, (int, float)) and not isinstance(x, bool):
        yield path, x


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("new")
    ap.add_argument("old", nargs="?", help="the old result file (default: NEW as committed at --git-rev)")
    ap.add_argument("--git-rev", help="read OLD (or NEW's path) from git at this revision")
    ap.add_argument("--measured", default=MEASURED, help="regex of key paths that are measured, not computed")
    args = ap.parse_args()
    if not args.old and not args.git_rev:
        bad_input("give OLD or --git-rev")
    try:
        measured = re.compile(args.measured, re.I)
    except re.error as e:
        bad_input(f"--measured: {e}")
    new = load(args.new, None)
    old = load(args.old or args.new, args.git_rev)
    pick = lambda d: dict(leaves({"rows": d["rows"], "summary": d["summary"]}))
    o, n = pick(old), pick(new)
    same = differ = 0
    for key, v in o.items():
        if measured.search(key) or key not in n:
            continue
        w = n[key]
        if v == w or (isinstance(v, float) and isinstance(w, float) and math.isnan(v) and math.isnan(w)):
            same += 1
        else:
            differ += 1
            print(f"DIFFERS {key}: {v} -> {w}")
    print(f"{args.new}: {same} computed numbers identical, {differ} differ; "
          f"{len(set(o) - set(n))} only in the old file, {len(set(n) - set(o))} only in the new")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
