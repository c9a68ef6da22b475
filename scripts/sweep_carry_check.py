#!/usr/bin/env python3
"""May the finished sweep cells in a device call's sweeps.tar.gz be carried into a later call?

Only when no declared source of their experiment (validation/claims_registry.json,
experiments.<name>.sources) changed between the commit that ran the cells and the commit the next
call sends: otherwise one result would merge cells of two different codes. "Changed" is the
ledger's rule (validation's GitRepo::changed_sources_since): the content differs, where a file moved
without a byte changed (git's exact rename) is the same code. Exit 0 and one line per
experiment when they may; exit 1 naming the changed files when they may not; exit 2 on bad input.

usage: scripts/sweep_carry_check.py <sweeps.tar.gz> [<target rev, default HEAD>]
"""
import json
import subprocess
import sys
import tarfile

# The sweep directories run_device.sh packs, and the experiment each belongs to.
SWEEP_DIR_EXPERIMENT = {
    "long_context_sweep": "long_context",
    "ablations_sweep": "ablations",
    "act_flops_sweep": "act_flops",
    "quantization_sweep": "quantization",
    "memory_search_probes": "memory_search",
    "train_poc_sweep": "train_poc",
}


def fail(message, code=2):
    print(f"sweep_carry_check: {message}", file=sys.stderr)
    sys.exit(code)


def git(*args):
    done = subprocess.run(["git", *args], capture_output=True, text=True)
    if done.returncode != 0:
        fail(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def under_any(path, roots):
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def changed_sources(ran_at, target_sha, sources, sources_then):
    # No pathspec: exact-rename detection needs both sides of a move in the diff. A move counts as
    # the same code only from a path that was a source at ran_at to one that is a source now.
    changed = []
    for line in git("diff", "--name-status", "--no-ext-diff", "-M100%", ran_at, target_sha).splitlines():
        parts = line.split("\t")
        if len(parts) < 2:
            continue
        status, first, second = parts[0], parts[1], (parts[2] if len(parts) > 2 else "")
        if status == "R100":
            if under_any(second, sources):
                if not under_any(first, sources_then):
                    changed.append(f"{second} (moved in from {first}, not a source then)")
                continue
            if under_any(first, sources):
                changed.append(f"{first} (moved out)")
            continue
        if under_any(second or first, sources) or (second and under_any(first, sources)):
            changed.append(second or first)
    return changed


def main():
    if len(sys.argv) not in (2, 3):
        fail("usage: sweep_carry_check.py <sweeps.tar.gz> [<target rev>]")
    tarball, target = sys.argv[1], (sys.argv[2] if len(sys.argv) == 3 else "HEAD")
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            names = tar.getnames()
            member = tar.extractfile("sweeps_commit") if "sweeps_commit" in names else None
            if member is None:
                fail(f"'{tarball}': no sweeps_commit member (not a run_device.sh sweeps tarball)")
            ran_at = member.read().decode().strip()
    except (OSError, tarfile.TarError) as e:
        fail(f"'{tarball}': not a readable .tar.gz ({e})")
    known = subprocess.run(["git", "cat-file", "-e", f"{ran_at}^{{commit}}"], capture_output=True)
    if known.returncode != 0:
        # A commit that never landed cannot be compared with anything: its cells are not carried.
        fail(f"'{tarball}': its cells ran at {ran_at}, which is not a commit in this repository's history;"
             " nothing can be carried")
    # The registry as the target commit has it: its source lists are the paths that exist there.
    registry = json.loads(git("show", f"{target}:validation/claims_registry.json"))["experiments"]
    # ...and as the commit that ran the cells had it (moves count only between declared paths).
    then = subprocess.run(["git", "show", f"{ran_at}:validation/claims_registry.json"], capture_output=True, text=True)
    try:
        registry_then = json.loads(then.stdout).get("experiments", {}) if then.returncode == 0 else {}
    except json.JSONDecodeError:
        registry_then = {}
    present = sorted({n.split("/")[0] for n in names} & set(SWEEP_DIR_EXPERIMENT))
    if not present:
        fail(f"'{tarball}': holds none of the sweep directories {sorted(SWEEP_DIR_EXPERIMENT)}")
    target_sha = git("rev-parse", target).strip()
    refused = False
    for d in present:
        experiment = SWEEP_DIR_EXPERIMENT[d]
        sources = registry[experiment]["sources"]
        sources_then = registry_then.get(experiment, {}).get("sources", [])
        changed = changed_sources(ran_at, target_sha, sources, sources_then)
        # A sweep's finished cell is its outcome.json; memory_search's probe cache holds one record
        # per finished probe, directly in its directory.
        if d == "memory_search_probes":
            cells = sum(1 for n in names if n.startswith(d + "/") and n.count("/") == 1 and n.endswith(".json"))
            what = "probe record(s)"
        else:
            cells = sum(1 for n in names if n.startswith(d + "/") and n.endswith("outcome.json"))
            what = "cell outcome(s)"
        if changed:
            refused = True
            print(f"{d}: NOT carried: {len(changed)} source(s) of {experiment} changed since {ran_at[:7]}: "
                  + ", ".join(changed[:8]))
        else:
            print(f"{d}: {cells} {what} of {experiment} may be carried from {ran_at[:7]} to {target_sha[:7]}")
    sys.exit(1 if refused else 0)


if __name__ == "__main__":
    main()
