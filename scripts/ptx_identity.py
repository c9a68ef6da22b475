#!/usr/bin/env python3
"""Is a CUDA refactor a no-op for the device code? Compares the kernels of two PTX files.

A change that only moves, renames or deletes kernel code (issue 18's file splits and removals) can
be checked without a GPU: compile the file before and after to PTX with the build's flags, e.g.

    nvcc -ptx -arch=sm_90 -std=c++17 -O3 --expt-relaxed-constexpr -Icore/kernels/include -Icore/kernels \\
         core/kernels/selective_scan.cu -o after.ptx

and run this script on the two files. Each kernel of AFTER is matched to a kernel of BEFORE by
its mangled name (after --map substitutions, for template parameters a refactor removed); both
bodies are normalised (line info, debug sections, the per-file hash of anonymous namespaces, the
file-name prefix of internal functions they call, and the numbering of virtual registers, labels,
local depots, statics and call sequences, which depends on what else the file holds) and
compared. Exit 0 when every kernel of AFTER matches one of BEFORE exactly, 1 otherwise (each
difference is printed), 2 on bad input.
"""
import argparse
import difflib
import re
import sys

ANON = re.compile(r"\d+_GLOBAL__N__[0-9a-f]+_\d+_\w+?_cu_[0-9a-f]{8}")
# Internal-linkage functions called by a kernel carry the file's name and hash in their mangled
# names (_ZN48_INTERNAL_<hash>_17_bk_stable_scan_cu_<hash>...): a kernel moved to another file calls
# the same function under another prefix.
INTERNAL = re.compile(r"_ZN\d+_INTERNAL_[0-9a-f]+_\d+_\w+?_cu_[0-9a-f]{8}")
ENTRY = re.compile(r"\.entry (\S+)\((.*?)\n\}\n", re.S)
# File-wide counters: virtual registers, labels, local-memory depots, the $N suffix of
# function-local statics and the numbers of call sequences (`// callseq N` comments), numbered by
# what else the file holds.
NUMBERED = re.compile(r"%[a-z]+\d+|\$L__BB\d+_\d+|\$L__tmp\d+|__local_depot\d+|\$\d+|callseq \d+")


def bad_input(message):
    print(f"ptx_identity: {message}", file=sys.stderr)
    sys.exit(2)


def kernels(path):
    try:
        text = open(path).read()
    except OSError as e:
        bad_input(f"cannot read {path}: {e}")
    text = re.sub(r"^\s*\.(loc|file)\b.*\n", "", text, flags=re.M)
    found = {}
    for m in ENTRY.finditer(text):
        numbers = {}

        def renumber(t):
            kind = re.sub(r"\d+", "#", t.group(0))
            seen = numbers.setdefault(kind, {})
            return kind.replace("#", "") + "_" + str(seen.setdefault(t.group(0), len(seen)))

        name = ANON.sub("ANON", m.group(1))
        body = NUMBERED.sub(renumber, INTERNAL.sub("_ZN_INTERNAL", ANON.sub("ANON", m.group(0))))
        found[name] = body
    if not found:
        bad_input(f"{path} has no .entry (is it a PTX file?)")
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--map", action="append", default=[], metavar="REGEX=REPLACEMENT",
                    help="applied to BEFORE's kernel names (and their uses in the bodies) before matching")
    ap.add_argument("--ignore", action="append", default=[], metavar="REGEX",
                    help="lines of both bodies matching this are left out (e.g. a shared-array size)")
    args = ap.parse_args()
    maps = []
    for m in args.map:
        if "=" not in m:
            bad_input(f"--map '{m}': expected REGEX=REPLACEMENT")
        pattern, repl = m.split("=", 1)
        maps.append((re.compile(pattern), repl))
    ignore = [re.compile(r) for r in args.ignore]
    before = {}
    for name, body in kernels(args.before).items():
        for pattern, repl in maps:
            body = pattern.sub(repl, body)
            name = pattern.sub(repl, name)
        before[name] = body
    ok = True
    for name, body in kernels(args.after).items():
        if name not in before:
            print(f"NO COUNTERPART  {name}")
            ok = False
            continue
        keep = lambda b: [l for l in b.splitlines() if not any(r.search(l) for r in ignore)]
        diff = [l for l in difflib.unified_diff(keep(before[name]), keep(body), lineterm="", n=0)
                if not l.startswith(("---", "+++", "@@"))]
        print(f"{'identical' if not diff else 'DIFFERENT'}  {name}  ({len(body.splitlines())} lines)")
        for line in diff[:12]:
            print("    " + line[:160])
        ok = ok and not diff
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
