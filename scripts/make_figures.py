#!/usr/bin/python3
"""Figures of the claims ledger, regenerated from result files (never from paper numbers).

Reads HDF5 result files written by the experiments (fresh runs in a build tree's results/<exp>/
win over the committed results/<exp>/, as in rbk_validate) and writes PNG figures plus
paper/figures/README.md, which names the script and the result file (with its git commit) behind
every figure. Inputs that do not exist yet are skipped with a message.

Figures:
  bk_numerics_error_vs_n.png         claim C01: max relative error vs the fp64 path, per mode
  bk_numerics_zero_nonfinite_vs_n.png claim C01: fraction of zero / non-finite outputs, per mode
  bk_numerics_time_vs_n.png          claim C01: time per call vs N, per mode (O(N) reference slope)
  cpu_scaling_layers_vs_n.png        claim C03: ResNet-BK layer vs attention, one training step vs N
  cpu_scaling_bkcore_gradients_vs_n.png claim C02: exact backward vs autograd vs upstream hybrids
  cpu_scaling_moe_vs_n.png           claims C04, C09: sparse MoE vs dense FFN, scattering vs MLP routing

Usage: make_figures.py [--source-dir DIR] [--build-dir DIR] [--out DIR]
Needs Python 3 with matplotlib, h5py and numpy (Debian: python3-matplotlib python3-h5py).
"""
import argparse
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
PRESET_PREFERENCE = ["gpu", "cpu", "smoke"]  # same order as validation/claims_registry.json
BK_MODES = ["stable_fp64", "stable_fp32", "causal_fp64", "causal_fp32",
            "compat_poc", "compat_papertime", "compat_papertime_triton"]


def find_result(source_dir, build_dir, experiment, ext):
    """Returns (path, origin, preset) of the preferred result file, or None."""
    for origin, base in (("fresh", build_dir), ("committed", source_dir)):
        if not base:
            continue
        d = os.path.join(base, "results", experiment)
        if not os.path.isdir(d):
            continue
        found = {}
        for name in os.listdir(d):
            prefix = experiment + "."
            if name.startswith(prefix) and name.endswith(ext):
                found[name[len(prefix):-len(ext)]] = os.path.join(d, name)
        if found:
            ordered = [p for p in PRESET_PREFERENCE if p in found] + sorted(set(found) - set(PRESET_PREFERENCE))
            return found[ordered[0]], origin, ordered[0]
    return None


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


def open_result(source_dir, build_dir, experiment, made):
    """(h5 file, shown path, commit, source note) of an experiment's HDF5 result, or None."""
    hit = find_result(source_dir, build_dir, experiment, ".h5")
    if hit is None:
        print(f"make_figures.py: skipping {experiment} figures: no results/{experiment}/{experiment}.<preset>.h5 yet")
        return None
    path, origin, preset = hit
    try:
        h5 = h5py.File(path, "r")
    except OSError as e:
        print(f"make_figures.py: error: {path} is not a readable HDF5 file ({e}); {experiment} figures skipped",
              file=sys.stderr)
        made.append((f"({experiment} figures)", path, f"unreadable: {e}"))
        return None
    commit = commit_of(h5)
    shown = os.path.relpath(path, build_dir if origin == "fresh" else source_dir)
    shown = ("<build>/" if origin == "fresh" else "") + shown
    return h5, shown, commit, f"{SCRIPT} from {shown} @ {commit} ({origin}, preset {preset})"


def bk_numerics(source_dir, build_dir, out_dir, made):
    opened = open_result(source_dir, build_dir, "bk_numerics", made)
    if opened is None:
        return
    h5, shown, commit, source_note = opened
    with h5:
        modes = [m for m in BK_MODES if f"{m}/n" in h5]
        if not modes:
            print(f"make_figures.py: skipping bk_numerics figures: {path} has no '<mode>/n' datasets")
            return

        # Error vs N. Non-finite errors (overflow) are drawn as crosses at the top of the axis so an
        # overflowing mode is visible instead of silently missing from a log plot.
        fig, ax = plt.subplots(figsize=(7, 4.5))
        ceiling = 10.0
        for m in modes:
            n = dataset(h5, f"{m}/n")
            err = dataset(h5, f"{m}/max_rel_error_vs_fp64")
            if err is None:
                print(f"make_figures.py: {path}: {m}/max_rel_error_vs_fp64 missing; mode left out of the error plot")
                continue
            finite = np.isfinite(err)
            line, = ax.loglog(n[finite], np.maximum(err[finite], 1e-18), marker="o", ms=3, label=m)
            if (~finite).any():
                ax.scatter(n[~finite], np.full((~finite).sum(), ceiling), marker="x", color=line.get_color())
        ax.axhline(1e-3, color="0.5", ls="--", lw=0.8, label="1e-3 (accuracy threshold)")
        ax.set_xlabel("N (sequence length)")
        ax.set_ylabel("max relative error vs fp64 stable path")
        ax.set_title("C01: BK-Core accuracy vs N (x = non-finite)")
        ax.legend(fontsize=7)
        stamp(fig, source_note)
        fig.tight_layout(rect=(0, 0.03, 1, 1))
        target = os.path.join(out_dir, "bk_numerics_error_vs_n.png")
        save(fig, target, source_note)
        plt.close(fig)
        made.append((os.path.basename(target), shown, commit))

        fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
        for m in modes:
            n = dataset(h5, f"{m}/n")
            for ax, key in zip(axes, ("zero_fraction", "nonfinite_fraction")):
                y = dataset(h5, f"{m}/{key}")
                if y is not None:
                    ax.semilogx(n, y, marker="o", ms=3, label=m)
        for ax, key in zip(axes, ("fraction of outputs exactly zero", "fraction of outputs non-finite")):
            ax.set_xlabel("N (sequence length)")
            ax.set_ylabel(key)
            ax.set_ylim(-0.05, 1.05)
        axes[0].set_title("C01: sanitized overflow shows as zeros")
        axes[1].set_title("C01: unsanitized overflow shows as NaN/inf")
        axes[1].legend(fontsize=7)
        stamp(fig, source_note)
        fig.tight_layout(rect=(0, 0.03, 1, 1))
        target = os.path.join(out_dir, "bk_numerics_zero_nonfinite_vs_n.png")
        save(fig, target, source_note)
        plt.close(fig)
        made.append((os.path.basename(target), shown, commit))

        target = os.path.join(out_dir, "bk_numerics_time_vs_n.png")
        if time_vs_n_figure(h5, modes, "time_s", "C01: BK-Core time vs N", target, source_note):
            made.append((os.path.basename(target), shown, commit))
        else:
            print(f"make_figures.py: {shown}: no '<mode>/time_s' datasets; time figure skipped")


# Rows of exp_cpu_scaling drawn per figure (claims C02, C03, C04; seed 004's CPU benchmarks).
CPU_SCALING_FIGURES = [
    ("cpu_scaling_layers_vs_n.png", "C03: one training step of one layer vs N (CPU, 1 thread)",
     ["bk_layer_exact", "bk_layer_autograd", "bk_layer_compat_poc", "attention_mha_h4", "attention_mha_h1",
      "attention_causal"]),
    ("cpu_scaling_bkcore_gradients_vs_n.png", "C02: BK-Core forward + backward by gradient mode vs N",
     ["bkcore_exact", "bkcore_autograd", "bkcore_papertime_hybrid", "bkcore_head_hybrid"]),
    ("cpu_scaling_moe_vs_n.png", "C04 / C09: MoE, dense FFN and routers vs N",
     ["moe_sparse_top1", "ffn_dense_equal_active", "ffn_dense_equal_total", "moe_mlp_gating", "moe_scattering_phase"]),
]


def cpu_scaling(source_dir, build_dir, out_dir, made):
    opened = open_result(source_dir, build_dir, "cpu_scaling", made)
    if opened is None:
        return
    h5, shown, commit, source_note = opened
    with h5:
        for name, title, rows in CPU_SCALING_FIGURES:
            target = os.path.join(out_dir, name)
            if time_vs_n_figure(h5, rows, "time_min_s", title, target, source_note):
                made.append((name, shown, commit))
            else:
                print(f"make_figures.py: {shown}: none of {rows} has times; {name} skipped")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source-dir", default=os.path.dirname(here))
    ap.add_argument("--build-dir", default="")
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    source_dir = os.path.abspath(a.source_dir)
    build_dir = os.path.abspath(a.build_dir) if a.build_dir else ""
    out_dir = os.path.abspath(a.out or os.path.join(source_dir, "paper", "figures"))
    os.makedirs(out_dir, exist_ok=True)

    made = []
    bk_numerics(source_dir, build_dir, out_dir, made)
    cpu_scaling(source_dir, build_dir, out_dir, made)

    lines = ["# Figures", "",
             f"<!-- Generated by {SCRIPT}. Do not edit by hand: run it (or ctest -L paper). -->", "",
             f"_Generated by `{SCRIPT}` from result files; each figure also carries its source in a footer "
             "and in the PNG 'Source' metadata._", "",
             "| figure | result file | commit |", "|---|---|---|"]
    lines += [f"| {f} | `{src}` | {c} |" for f, src, c in made]
    if not made:
        lines.append("| (none yet) | no result file with figure data exists | |")
    tmp = os.path.join(out_dir, "README.md.tmp")
    with open(tmp, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    os.replace(tmp, os.path.join(out_dir, "README.md"))
    print(f"make_figures.py: wrote {len(made)} figure(s) into {out_dir}")
    return 1 if any(c.startswith("unreadable") for _, _, c in made) else 0


if __name__ == "__main__":
    sys.exit(main())
