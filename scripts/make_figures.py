#!/usr/bin/python3
"""Figures of the claims ledger, regenerated from result files (never from paper numbers).

Reads exactly the result files the ledger judged: rbk_validate writes, per experiment, the chosen
JSON result and its HDF5 arrays into verdicts.json ("sources"/<experiment>/{path, h5_path, origin,
preset, stale}); this script draws from those files and from no other, so a figure can never show
a different run than the table next to it. Writes PNG figures plus paper/figures/README.md, which
names the result file (with its git commit, and whether it is stale) behind every figure.
Experiments without a chosen result are skipped with a message.

Figures:
  bk_numerics_error_vs_n.png         claim C01: max relative error vs the fp64 path, per mode
  bk_numerics_zero_nonfinite_vs_n.png claim C01: fraction of zero / non-finite outputs, per mode
  bk_numerics_time_vs_n.png          claim C01: time per call vs N, per mode (O(N) reference slope)
  cpu_scaling_layers_vs_n.png        claim C03: ResNet-BK layer vs attention, one training step vs N
  cpu_scaling_bkcore_gradients_vs_n.png claim C02: exact backward vs autograd vs upstream hybrids
  cpu_scaling_moe_vs_n.png           claims C04, C09: sparse MoE vs dense FFN, scattering vs MLP routing
  spectral_spacing_histograms.png    claim C07: unfolded bulk spacing histograms at the largest N
                                     against Poisson e^{-s}, the GOE surmise (pi s/2) e^{-pi s^2/4}
                                     (the law the papers print) and the GUE surmise
                                     (32/pi^2) s^2 e^{-4 s^2/pi}
  spectral_spacing_ratio.png         claim C07: <r~> per case and N against Poisson / GOE / GUE
  schatten_ratio_vs_n.png            claim C08: ||K||_S2 / bound and ||K||_S1 / bound vs N (1 = bound)
  schatten_convergence.png           claim C08: S1, S2 of the scaled-grid Prime-Bump operator as h -> 0
  long_context_ppl_probes_vs_n.png   claims C12, C21: valid PPL vs training length N per row (median and
                                     range over seeds, diverged lengths marked) and probe accuracy
                                     (passkey, associative recall) vs evaluation length, log N axis

Usage: make_figures.py [--source-dir DIR] [--verdicts FILE] [--out DIR]
  --verdicts defaults to <source>/paper/verdicts.json (what rbk_validate writes there).
Exit codes: 0 written; 1 a chosen result file is unreadable; 2 no or malformed verdicts.json.
Needs Python 3 with matplotlib, h5py and numpy (Debian: python3-matplotlib python3-h5py).
"""
import argparse
import math
import os
import sys

from figure_common import SCRIPT, np, plt, load_verdicts, dataset, finish, time_vs_n_figure, open_result
from figures_sweeps import long_context, ablations, act_flops, quantization, memory_search

BK_MODES = ["stable_fp64", "stable_fp32", "causal_fp64", "causal_fp32",
            "compat_poc", "compat_papertime", "compat_papertime_triton"]


def bk_numerics(source_dir, sources, out_dir, made):
    opened = open_result(source_dir, sources, "bk_numerics", made)
    if opened is None:
        return
    _, h5, shown, commit, source_note = opened
    with h5:
        modes = [m for m in BK_MODES if f"{m}/n" in h5]
        if not modes:
            print(f"make_figures.py: skipping bk_numerics figures: {shown} has no '<mode>/n' datasets")
            return

        # Error vs N. Non-finite errors (overflow) are drawn as crosses at the top of the axis so an
        # overflowing mode is visible instead of silently missing from a log plot.
        fig, ax = plt.subplots(figsize=(7, 4.5))
        ceiling = 10.0
        for m in modes:
            n = dataset(h5, f"{m}/n")
            err = dataset(h5, f"{m}/max_rel_error_vs_fp64")
            if err is None:
                print(f"make_figures.py: {shown}: {m}/max_rel_error_vs_fp64 missing; mode left out of the error plot")
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
        finish(fig, out_dir, "bk_numerics_error_vs_n.png", source_note, made, shown, commit)

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
        finish(fig, out_dir, "bk_numerics_zero_nonfinite_vs_n.png", source_note, made, shown, commit)

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


def cpu_scaling(source_dir, sources, out_dir, made):
    opened = open_result(source_dir, sources, "cpu_scaling", made)
    if opened is None:
        return
    _, h5, shown, commit, source_note = opened
    with h5:
        for name, title, rows in CPU_SCALING_FIGURES:
            target = os.path.join(out_dir, name)
            if time_vs_n_figure(h5, rows, "time_min_s", title, target, source_note):
                made.append((name, shown, commit))
            else:
                print(f"make_figures.py: {shown}: none of {rows} has times; {name} skipped")


def ref_pdf(law, s):
    if law == "poisson":
        return np.exp(-s)
    if law == "goe":
        return 0.5 * math.pi * s * np.exp(-0.25 * math.pi * s * s)
    return 32.0 / math.pi ** 2 * s * s * np.exp(-4.0 * s * s / math.pi)


REF_RATIO = {"poisson": 2 * math.log(2) - 1, "goe": 0.5307, "gue": 0.5996}


def plot_gue(doc, h5, out, made, shown, commit, note):
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
    finish(fig, out, "spectral_spacing_histograms.png", note, made, shown, commit, top=0.96)

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
    finish(fig, out, "spectral_spacing_ratio.png", note, made, shown, commit)


def plot_schatten(doc, h5, out, made, shown, commit, note):
    keys = sorted(k for k in h5["ratio_vs_n"].keys()) if "ratio_vs_n" in h5 else []
    if not keys:
        print(f"make_figures.py: {shown}: no ratio_vs_n arrays; Schatten figures skipped")
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
    finish(fig, out, "schatten_ratio_vs_n.png", note, made, shown, commit, top=0.96)

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
        finish(fig, out, "schatten_convergence.png", note, made, shown, commit, top=0.95)

def spectral(source_dir, sources, out_dir, made):
    """C07 and C08 figures (formerly scripts/plot_spectral.py)."""
    for experiment, plot in (("gue_statistics", plot_gue), ("schatten_bounds", plot_schatten)):
        opened = open_result(source_dir, sources, experiment, made)
        if opened is None:
            continue
        doc, h5, shown, commit, note = opened
        with h5:
            plot(doc, h5, out_dir, made, shown, commit, note)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source-dir", default=os.path.dirname(here))
    ap.add_argument("--verdicts", default="", help="rbk_validate's verdicts.json (default <source>/paper/verdicts.json)")
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    source_dir = os.path.abspath(a.source_dir)
    sources = load_verdicts(os.path.abspath(a.verdicts or os.path.join(source_dir, "paper", "verdicts.json")))
    out_dir = os.path.abspath(a.out or os.path.join(source_dir, "paper", "figures"))
    os.makedirs(out_dir, exist_ok=True)

    made = []
    bk_numerics(source_dir, sources, out_dir, made)
    cpu_scaling(source_dir, sources, out_dir, made)
    spectral(source_dir, sources, out_dir, made)
    long_context(source_dir, sources, out_dir, made)
    ablations(source_dir, sources, out_dir, made)
    act_flops(source_dir, sources, out_dir, made)
    quantization(source_dir, sources, out_dir, made)
    memory_search(source_dir, sources, out_dir, made)

    lines = ["# Figures", "",
             f"<!-- Generated by {SCRIPT}. Do not edit by hand: run it (or ctest -L paper). -->", "",
             f"_Generated by `{SCRIPT}` from result files; each figure also carries its source in a footer "
             "and in the PNG 'Source' metadata._", "",
             "| figure | result file (the one the ledger judged) | commit |", "|---|---|---|"]
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
