"""Shared helpers of the figure scripts (make_figures.py, figures_sweeps.py): the result files the
ledger chose (verdicts.json), their HDF5 arrays, and saving a figure with its source stamped on it."""
import json
import os
import sys

try:
    import h5py
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
except ImportError as e:  # a clear message instead of a traceback
    sys.exit(f"make_figures.py: needs matplotlib, h5py and numpy ({e}); on Debian: apt install python3-matplotlib python3-h5py")

SCRIPT = "scripts/make_figures.py"


def load_verdicts(path):
    """The ledger's machine-readable output; its "sources" name the result file of every experiment."""
    try:
        with open(path) as fh:
            doc = json.load(fh)
    except (OSError, ValueError) as e:
        sys.exit(f"make_figures.py: error: cannot read the ledger's choices from {path} ({e}); "
                 "run rbk_validate first (ctest -L paper does), or pass --verdicts FILE")
    sources = doc.get("sources")
    if not isinstance(sources, dict):
        sys.exit(f"make_figures.py: error: {path} has no object \"sources\" (expected rbk_validate's verdicts.json)")
    return sources


def chosen_result(source_dir, sources, experiment):
    """(json path, h5 path, entry) of the result file the ledger judged for an experiment, or None."""
    entry = sources.get(experiment)
    if not entry or not entry.get("ok") or not entry.get("path"):
        why = (entry or {}).get("error") or "the ledger chose no result file"
        print(f"make_figures.py: skipping {experiment} figures: {why}")
        return None
    def absolute(p):
        return p if os.path.isabs(p) else os.path.join(source_dir, p)
    h5 = entry.get("h5_path") or ""
    if not h5:
        print(f"make_figures.py: skipping {experiment} figures: {entry['path']} has no HDF5 arrays file")
        return None
    return absolute(entry["path"]), absolute(h5), entry


def commit_of(h5):
    """git commit from the file's JSON-encoded root attribute "context"."""
    raw = h5.attrs.get("context")
    if raw is None:
        return "unknown"
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    try:
        ctx = json.loads(raw)
    except ValueError:
        return "unknown"
    c = str(ctx.get("git_commit", "unknown"))[:10]
    return c + ("-dirty" if str(ctx.get("git_dirty")) == "true" else "")


def dataset(h5, name):
    return np.asarray(h5[name][()], dtype=float) if name in h5 else None


def save(fig, target, note):
    """Writes the PNG beside its target, then renames it into place (never a half-written figure)."""
    tmp = target + ".tmp.png"
    fig.savefig(tmp, dpi=130, metadata={"Source": note})
    os.replace(tmp, target)


def stamp(fig, text):
    fig.text(0.01, 0.005, text, fontsize=6, color="0.4", ha="left", va="bottom")


def finish(fig, out_dir, name, note, made, shown, commit, top=1.0):
    """Stamps the source, lays out, writes <out_dir>/<name> atomically, closes and records it."""
    stamp(fig, note)
    fig.tight_layout(rect=(0, 0.03, 1, top))
    save(fig, os.path.join(out_dir, name), note)
    plt.close(fig)
    made.append((name, shown, commit))


def time_vs_n_figure(h5, series, time_key, title, target, source_note):
    """Log-log time vs N of each series (datasets <series>/n and <series>/<time_key>) with an
    O(N) reference slope; returns False (nothing written) when no series has a finite time."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = []
    for name in series:
        n = dataset(h5, f"{name}/n")
        t = dataset(h5, f"{name}/{time_key}")
        if n is None or t is None:
            continue
        ok = np.isfinite(t) & (t > 0)
        if ok.any():
            drawn.append((n[ok], t[ok]))
            ax.loglog(n[ok], t[ok], marker="o", ms=3, label=name)
    if drawn:
        lo = min(n.min() for n, _ in drawn)
        hi = max(n.max() for n, _ in drawn)
        anchor = drawn[0][1].max()  # the first series' largest time, at its largest N
        ax.loglog([lo, hi], [anchor * lo / hi, anchor], color="0.5", ls="--", lw=0.8, label="slope 1 (O(N))")
        ax.set_xlabel("N (sequence length)")
        ax.set_ylabel(f"time per call (s, {time_key})")
        ax.set_title(title)
        ax.legend(fontsize=7)
        stamp(fig, source_note)
        fig.tight_layout(rect=(0, 0.03, 1, 1))
        save(fig, target, source_note)
    plt.close(fig)
    return bool(drawn)


def open_result(source_dir, sources, experiment, made):
    """(json doc, h5 file, shown path, commit, source note) of the judged result, or None."""
    hit = chosen_result(source_dir, sources, experiment)
    if hit is None:
        return None
    json_path, h5_path, entry = hit
    try:
        with open(json_path) as fh:
            doc = json.load(fh)
        h5 = h5py.File(h5_path, "r")
    except (OSError, ValueError) as e:
        print(f"make_figures.py: error: {json_path} / {h5_path} unreadable ({e}); {experiment} figures skipped",
              file=sys.stderr)
        made.append((f"({experiment} figures)", entry["path"], f"unreadable: {e}"))
        return None
    commit = commit_of(h5)
    shown = entry["path"] if entry.get("origin") != "fresh" else "<build>/results/" + experiment + "/" + os.path.basename(json_path)
    stale = " STALE" if entry.get("stale") else ""
    note = f"{SCRIPT} from {shown} (+ .h5) @ {commit} ({entry.get('origin')}, preset {entry.get('preset')}{stale})"
    return doc, h5, shown + stale, commit, note
