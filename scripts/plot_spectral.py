#!/usr/bin/python3
"""Figures for claims C07 (GUE statistics) and C08 (Schatten bounds), regenerated from result files.

Reads results/gue_statistics/gue_statistics.<preset>.{json,h5} and
results/schatten_bounds/schatten_bounds.<preset>.{json,h5} and writes into paper/figures/:
  spectral_spacing_histograms.png  C07: unfolded bulk spacing histograms at the largest N (free H0,
                                   Prime-Bump on both grids, GOE / GUE / Anderson controls) against
                                   Poisson e^{-s}, the GOE surmise (pi s/2) e^{-pi s^2/4} (the
                                   formula the papers print) and the GUE surmise (32/pi^2) s^2 e^{-4s^2/pi}
  spectral_spacing_ratio.png       C07: <r~> per case and N against the Poisson / GOE / GUE values
  schatten_ratio_vs_n.png          C08: ||K||_S2 / bound and ||K||_S1 / bound against N, per free
                                   resolvent and potential (eps = convergence_epsilon); 1 = the bound
  schatten_convergence.png         C08: S1, S2 of the scaled-grid Prime-Bump operator as h -> 0
Every figure carries, in its footer, this script's name and the result file (with git commit) it
came from. Nothing here contains a paper number except the reference laws themselves.

Usage: plot_spectral.py [--results DIR] [--preset cpu] [--out paper/figures]
"""
import argparse
import json
import math
import os
import sys

try:
    import h5py
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
except ImportError as e:
    sys.exit(f"plot_spectral.py: needs matplotlib, h5py and numpy ({e}); on Debian: apt install python3-matplotlib python3-h5py")

SCRIPT = "scripts/plot_spectral.py"


def ref_pdf(law, s):
    if law == "poisson":
        return np.exp(-s)
    if law == "goe":
        return 0.5 * math.pi * s * np.exp(-0.25 * math.pi * s * s)
    return 32.0 / math.pi ** 2 * s * s * np.exp(-4.0 * s * s / math.pi)


REF_RATIO = {"poisson": 2 * math.log(2) - 1, "goe": 0.5307, "gue": 0.5996}


def load(results, exp, preset):
    stem = os.path.join(results, exp, f"{exp}.{preset}")
    if not os.path.exists(stem + ".json"):
        print(f"plot_spectral.py: {stem}.json not found, skipping {exp}")
        return None, None, None
    with open(stem + ".json") as f:
        doc = json.load(f)
    h5 = stem + ".h5"
    if not os.path.exists(h5):
        sys.exit(f"plot_spectral.py: {stem}.json names arrays_file but {h5} is missing")
    return doc, h5py.File(h5, "r"), stem


def footer(fig, stem, doc):
    ctx = doc.get("context", {})
    commit = str(ctx.get("git_commit", "unknown"))[:12] + ("+dirty" if ctx.get("git_dirty") == "true" else "")
    fig.text(0.01, 0.005, f"made by {SCRIPT} from {os.path.relpath(stem)}.json/.h5 (commit {commit}, preset {doc.get('preset')})",
             fontsize=7, color="0.35", ha="left", va="bottom")


def plot_gue(doc, h5, stem, out):
    rows = [r for r in doc["rows"] if r.get("status") == "ok" or "pooled" in r.get("case", "")]
    n_max = max(r["n"] for r in doc["rows"])
    edges = np.asarray(h5["hist_edges"])
    centres = 0.5 * (edges[1:] + edges[:-1])
    s = np.linspace(0, edges[-1], 400)
    ids = [r["case_id"] for r in doc["rows"] if r["n"] == n_max and (
        r["case"] in ("free", "goe_pooled", "gue_pooled", "anderson_pooled")
        or (r["case"] == "prime_bump" and abs(r["epsilon"] - 1.0) < 1e-9))]
    ids = [i for i in ids if f"{i}/hist_density" in h5]
    ncol = 3
    nrow = max(1, math.ceil(len(ids) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.1 * nrow), squeeze=False)
    byid = {r["case_id"]: r for r in doc["rows"]}
    for ax, cid in zip(axes.flat, ids):
        h = np.asarray(h5[f"{cid}/hist_density"])
        ax.bar(centres, h, width=edges[1] - edges[0], color="0.75", edgecolor="0.5", label="measured")
        for law, c in (("poisson", "tab:green"), ("goe", "tab:blue"), ("gue", "tab:red")):
            ax.plot(s, ref_pdf(law, s), color=c, lw=1.4, label=law.upper() if law != "poisson" else "Poisson")
        a = byid[cid]["analysis"]
        ax.set_title(cid.replace("_", " "), fontsize=8)
        ax.text(0.97, 0.95, f"<r>={a['ratio_mean']:.3f}\nKS p P/GOE/GUE\n{a['ks_p_poisson']:.1e}/{a['ks_p_goe']:.1e}/{a['ks_p_gue']:.1e}\n"
                f"-> {a.get('consistent_with', '?')}", transform=ax.transAxes, ha="right", va="top", fontsize=7)
        ax.set_xlim(0, edges[-1])
        ax.set_ylim(0, max(1.2, min(float(h.max()) * 1.1, 6.0)))
        ax.set_xlabel("unfolded spacing s", fontsize=8)
    for ax in list(axes.flat)[len(ids):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, loc="center right")
    fig.suptitle(f"C07: nearest-neighbour spacings of the bulk (N = {n_max}) vs Poisson / GOE surmise / GUE surmise", fontsize=10)
    footer(fig, stem, doc)
    fig.tight_layout(rect=(0, 0.03, 1, 0.96))
    path = os.path.join(out, "spectral_spacing_histograms.png")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print("wrote", path)

    # <r~> by case and N.
    fig, ax = plt.subplots(figsize=(9, 4.5))
    groups = {}
    for r in doc["rows"]:
        if "analysis" not in r or "seed_index" in r:
            continue
        label = r["case"] if r["case"] != "prime_bump" else f"prime_bump {r['grid']} scale {r['scale']:g}"
        groups.setdefault(label, []).append((r["n"], r["analysis"]["ratio_mean"]))
    for i, (label, pts) in enumerate(sorted(groups.items())):
        pts = sorted(pts)
        ax.plot([p[0] * (1 + 0.03 * i) for p in pts], [p[1] for p in pts], "o", ms=4, label=label)
    for law, c in (("poisson", "tab:green"), ("goe", "tab:blue"), ("gue", "tab:red")):
        ax.axhline(REF_RATIO[law], color=c, ls="--", lw=1)
        ax.text(ax.get_xlim()[0] if False else 1.0, REF_RATIO[law], f" {law.upper() if law != 'poisson' else 'Poisson'}",
                transform=ax.get_yaxis_transform(), color=c, fontsize=8, va="bottom", ha="right")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("N")
    ax.set_ylabel("mean spacing ratio <r~> (bulk)")
    ax.set_ylim(0.3, 1.05)
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    ax.set_title("C07: spacing ratio, all Prime-Bump eps values and controls (1 = picket fence)", fontsize=10)
    footer(fig, stem, doc)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path = os.path.join(out, "spectral_spacing_ratio.png")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print("wrote", path)


def plot_schatten(doc, h5, stem, out):
    keys = sorted(k for k in h5["ratio_vs_n"].keys()) if "ratio_vs_n" in h5 else []
    if not keys:
        print("plot_spectral.py: no ratio_vs_n arrays in", stem + ".h5")
        return
    kernels = ["paper", "paper_abs", "laplacian"]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7), squeeze=False)
    for pot in h5["ratio_vs_n"].keys():
        for j, kern in enumerate(kernels):
            if kern not in h5["ratio_vs_n"][pot]:
                continue
            for imz in sorted(h5["ratio_vs_n"][pot][kern].keys()):
                g = h5["ratio_vs_n"][pot][kern][imz]
                n = np.asarray(g["n"])
                order = np.argsort(n)
                lab = f"{pot}, Im z={imz.replace('im_z_', '')}"
                ls = {"prime_bump_integer": "-o", "prime_bump_scaled": "-s", "random": "-^"}.get(pot, "-")
                axes[0][j].plot(n[order], np.asarray(g["ratio_s2"])[order], ls, ms=3, lw=1, label=lab)
                axes[1][j].plot(n[order], np.asarray(g["ratio_s1"])[order], ls, ms=3, lw=1, label=lab)
    for i, name in enumerate(["S2", "S1"]):
        for j, kern in enumerate(kernels):
            ax = axes[i][j]
            ax.axhline(1.0, color="k", lw=1.2)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("N")
            ax.set_ylabel(f"||K||_{name} / bound")
            ax.set_title(f"{name}, kernel {kern}", fontsize=9)
    axes[0][2].legend(fontsize=5.5, ncol=1, loc="best")
    eps = doc["config"].get("convergence_epsilon")
    fig.suptitle(f"C08: Schatten norm / papers' bound (above 1 = violated); Prime-Bump eps = {eps}, random seed 0", fontsize=10)
    footer(fig, stem, doc)
    fig.tight_layout(rect=(0, 0.03, 1, 0.96))
    path = os.path.join(out, "schatten_ratio_vs_n.png")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print("wrote", path)

    if "convergence" in h5:
        fig, ax = plt.subplots(1, 2, figsize=(10, 4))
        for kern in h5["convergence"].keys():
            g = h5["convergence"][kern]
            h = np.asarray(g["h"])
            ax[0].plot(h, np.asarray(g["s2"]), "-o", ms=3, label=kern)
            ax[1].plot(h, np.asarray(g["s1"]), "-o", ms=3, label=kern)
        for a, name in zip(ax, ["S2", "S1"]):
            a.set_xscale("log")
            a.set_yscale("log")
            a.set_xlabel("grid spacing h")
            a.set_ylabel(f"||K||_{name}")
            a.legend(fontsize=8)
        fig.suptitle(f"C08: scaled-grid Prime-Bump, eps = {doc['config'].get('convergence_epsilon')}, "
                     f"Im z = {doc['config'].get('convergence_im_z')}: norms as h -> 0", fontsize=10)
        footer(fig, stem, doc)
        fig.tight_layout(rect=(0, 0.04, 1, 0.95))
        path = os.path.join(out, "schatten_convergence.png")
        fig.savefig(path, dpi=120)
        plt.close(fig)
        print("wrote", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", default="results", help="folder holding gue_statistics/ and schatten_bounds/")
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--out", default=os.path.join("paper", "figures"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    doc, h5, stem = load(a.results, "gue_statistics", a.preset)
    if doc:
        plot_gue(doc, h5, stem, a.out)
    doc, h5, stem = load(a.results, "schatten_bounds", a.preset)
    if doc:
        plot_schatten(doc, h5, stem, a.out)


if __name__ == "__main__":
    main()
