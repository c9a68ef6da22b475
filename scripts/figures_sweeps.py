"""Figures of the multi-seed claim sweeps (long context, ablations, ACT FLOPs, quantization,
memory search), drawn from the result files the ledger judged; called by make_figures.py."""
from figure_common import np, plt, open_result, finish, dataset


def long_context(source_dir, sources, out_dir, made):
    """C12 / C21: PPL and probe accuracy against N per row (exp_long_context)."""
    opened = open_result(source_dir, sources, "long_context", made)
    if opened is None:
        return
    doc, h5, shown, commit, note = opened
    h5.close()
    summ = doc.get("summary", {})
    seeds, stable = summ.get("seeds", {}), summ.get("stable", {})
    rows_info, lengths = summ.get("rows", {}), summ.get("lengths", [])
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.6))
    for row in rows_info:
        n_ok, med, lo, hi, bad = [], [], [], [], []
        for n in lengths:
            vals = [v for v in seeds.get(f"{row}_ppl_n{n}", []) if isinstance(v, (int, float))]
            if vals:
                n_ok.append(n); med.append(float(np.median(vals))); lo.append(min(vals)); hi.append(max(vals))
            if stable.get(f"{row}_n{n}") is False:
                bad.append(n)
        leak = not rows_info[row].get("held_out_meaningful", True)
        label = row + (" (leak: sees its targets)" if leak else "")
        if n_ok:
            err = [np.subtract(med, lo), np.subtract(hi, med)]
            line = ax.errorbar(n_ok, med, yerr=err, marker="o", ms=3, capsize=2, ls="--" if leak else "-", label=label)
            color = line[0].get_color()
        else:
            color = None
        if bad:
            top = max(med) if med else 1.0
            ax.scatter(bad, [top] * len(bad), marker="x", s=40, color=color or "k",
                       label=f"{row} diverged (a seed)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("training length N (batch x N constant)")
    ax.set_ylabel("valid PPL at N (median, range over seeds)")
    ax.set_title("long-context sweep")
    ax.legend(fontsize=7)
    chance = None
    for row, kinds in summ.get("probes", {}).items():
        for kind, by_n in kinds.items():
            for ntrain, entry in by_n.items():
                pts = []
                for key, vals in entry.items():
                    if key.startswith("acc_eval") and "_depth" not in key:
                        v = [x for x in vals if isinstance(x, (int, float))]
                        if v:
                            pts.append((int(key[len("acc_eval"):]), float(np.mean(v))))
                if pts:
                    pts.sort()
                    bx.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3,
                            ls="-" if kind == "passkey" else ":", label=f"{row} {kind} (trained {ntrain})")
    settings = summ.get("probe_settings", {}).get("probe", {})
    if settings.get("chance_accuracy") is not None:
        chance = settings["chance_accuracy"]
        bx.axhline(chance, color="0.5", ls="--", lw=0.8, label="chance")
    bx.set_xscale("log", base=2)
    bx.set_ylim(-0.02, 1.02)
    bx.set_xlabel("evaluation length")
    bx.set_ylabel("probe accuracy (mean over seeds)")
    bx.set_title("context probes (trained at N, evaluated at N and beyond)")
    bx.legend(fontsize=6)
    finish(fig, out_dir, "long_context_ppl_probes_vs_n.png", note, made, shown, commit)


ABLATION_ARMS = ["full", "no_prime_bump", "no_scattering_router", "no_lap", "no_semiseparable"]


def ablations(source_dir, sources, out_dir, made):
    """C14 / C06 / C09: valid-loss curves per arm with the convergence target, and valid PPL per arm and seed."""
    opened = open_result(source_dir, sources, "ablations", made)
    if opened is None:
        return
    doc, h5, shown, commit, note = opened
    summ = doc.get("summary", {})
    seeds = summ.get("seeds", {})
    arms = [a for a in ABLATION_ARMS if f"val_ppl_{a}" in seeds]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.6))
    for a in arms:
        color = None
        for k, seed in enumerate(seeds.get("seed", [])):
            base = f"valid_curve/{a}/seed{seed}"
            if base + "/step" not in h5:
                continue
            line, = ax.plot(dataset(h5, base + "/step"), dataset(h5, base + "/valid_loss"), lw=0.8, alpha=0.8,
                            color=color, label=a if color is None else None)
            color = line.get_color()
    target = summ.get("target", {}).get("valid_loss")
    if target is not None:
        ax.axhline(target, color="0.3", ls="--", lw=0.8, label="convergence target (unigram loss - margin)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("valid loss (nats)")
    ax.set_title("validation curves, every seed")
    ax.legend(fontsize=7)
    for i, a in enumerate(arms):
        vals = seeds.get(f"val_ppl_{a}", [])
        xs = [i + (k - (len(vals) - 1) / 2) * 0.05 for k in range(len(vals))]
        pts = [(x, v) for x, v in zip(xs, vals) if isinstance(v, (int, float))]
        if pts:
            bx.scatter([p[0] for p in pts], [p[1] for p in pts], s=14)
    bx.set_xticks(range(len(arms)))
    bx.set_xticklabels(arms, rotation=20, fontsize=8)
    bx.set_ylabel("valid PPL (one point per seed)")
    mem = summ.get("semiseparable_memory", {})
    bx.set_title(f"paper: 28.3 / 29.8 / 28.9 / 31.2 / OOM; dense resolvent at N={mem.get('n')}: "
                 f"{(mem.get('dense_peak_bytes') or 0) / 2**30:.1f} GiB projected", fontsize=8)
    h5.close()
    finish(fig, out_dir, "ablations_curves_and_ppl.png", note, made, shown, commit)


def scatter_arm_points(ax, h5, labels, x_key, y_key, **style):
    """One scatter series per (arm, label) whose points/<arm>/<x_key> the result holds (a point per seed)."""
    for arm, label in labels:
        base = f"points/{arm}"
        if f"{base}/{x_key}" in h5:
            ax.scatter(dataset(h5, f"{base}/{x_key}"), dataset(h5, f"{base}/{y_key}"), label=label, **style)


def act_flops(source_dir, sources, out_dir, made):
    """C11 / C21: valid PPL against GFLOPs per token, one point per seed and model."""
    opened = open_result(source_dir, sources, "act_flops", made)
    if opened is None:
        return
    doc, h5, shown, commit, note = opened
    summ = doc.get("summary", {})
    fig, ax = plt.subplots(figsize=(7, 4.6))
    halting = summ.get("halting_threshold")
    labels = (("bk", "ResNet-BK"), ("bk_act", "ResNet-BK + ACT (skips halted tokens)"),
              ("bk_act_halting", f"ResNet-BK + ACT at threshold {halting}"), ("mamba", "Mamba"),
              ("transformer", "Transformer"))
    scatter_arm_points(ax, h5, labels, "gflops_per_token", "valid_ppl", s=18)
    h5.close()
    ax.set_xlabel("GFLOPs per token (counted matrix products + analytic element-wise)")
    ax.set_ylabel("valid PPL")
    def rounded(v):
        return v if v is None else round(v, 3)
    red, hred = summ.get("act_flops_reduction"), summ.get("halting_flops_reduction")
    comp = summ.get("compat", {}).get("executed_fraction")
    ax.set_title(f"paper: Mamba 2.8, BK 2.1, BK+ACT 1.4 GFLOPs at PPL~30; here ACT reduction "
                 f"{rounded(red)} (at threshold {halting}: {rounded(hred)}), upstream ACT executes {comp}", fontsize=8)
    ax.legend(fontsize=7)
    finish(fig, out_dir, "act_flops_ppl_vs_gflops.png", note, made, shown, commit)


def quantization(source_dir, sources, out_dir, made):
    """C13 / C21: test PPL against storage bits per quantized weight, per model, seeds as points."""
    opened = open_result(source_dir, sources, "quantization", made)
    if opened is None:
        return
    doc, h5, shown, commit, note = opened
    summ = doc.get("summary", {})
    fig, ax = plt.subplots(figsize=(7, 4.6))
    labels = (("bk", "ResNet-BK (corrected, causal)"), ("bk_compat", "ResNet-BK (authors' build, bidirectional)"),
              ("mamba", "Mamba"), ("transformer", "Transformer"))
    scatter_arm_points(ax, h5, labels, "bits_per_weight", "test_ppl", s=16, alpha=0.7)
    h5.close()
    ax.set_xscale("log", base=2)
    ax.set_xlabel("storage bits per quantized weight (scales included; Linear layers, fp16/bf16: every weight)")
    ax.set_ylabel("test PPL")
    ratio = summ.get("seeds", {}).get("mamba_over_bk_ppl_int4")
    shown_ratio = [round(r, 2) if isinstance(r, (int, float)) else r for r in (ratio or [])]
    ax.set_title(f"paper: BK 45.2 vs Mamba 182.5 at INT4 (4.04x); here Mamba/BK at INT4 per seed {shown_ratio}",
                 fontsize=8)
    ax.legend(fontsize=7)
    finish(fig, out_dir, "quantization_ppl_vs_bits.png", note, made, shown, commit)


def memory_search(source_dir, sources, out_dir, made):
    """C15 / C22: the analytic memory model's prediction against the measured peak of every probe."""
    opened = open_result(source_dir, sources, "memory_search", made)
    if opened is None:
        return
    doc, h5, shown, commit, note = opened
    measured = dataset(h5, "probes/measured_bytes")
    predicted = dataset(h5, "probes/predicted_bytes")
    family = dataset(h5, "probes/family")
    training = dataset(h5, "probes/training")
    if measured is None or predicted is None or not len(measured):
        h5.close()
        print("make_figures.py: skipping memory_search figure: no probe arrays")
        return
    names = ["transformer", "resnet_bk", "phase1", "phase2_compat"]
    fig, ax = plt.subplots(figsize=(6.5, 5))
    for f, name in enumerate(names):
        for t, marker, mode in ((0, "o", "inference"), (1, "^", "training")):
            sel = (family == f) & (training == t)
            if sel.any():
                ax.loglog(measured[sel] / 2**20, predicted[sel] / 2**20, marker, ms=5, alpha=0.8,
                          label=f"{name}, {mode}")
    lo = min(measured.min(), predicted.min()) / 2**20 * 0.8
    hi = max(measured.max(), predicted.max()) / 2**20 * 1.25
    ax.loglog([lo, hi], [lo, hi], color="0.4", ls="--", lw=0.8, label="predicted = measured")
    ax.set_xlabel("measured peak per probe (MiB)")
    ax.set_ylabel("analytic prediction (MiB)")
    mm = doc.get("summary", {}).get("memory_model", {})
    ax.set_title(f"memory search probes: median |error| {100 * mm.get('median_abs_rel_error', float('nan')):.0f}%", fontsize=9)
    ax.legend(fontsize=7)
    h5.close()
    finish(fig, out_dir, "memory_search_measured_vs_predicted.png", note, made, shown, commit)
