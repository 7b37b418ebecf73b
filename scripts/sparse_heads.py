"""Figure: how a trained multi-head linear-attention model uses its heads (note §3, SM-C19..C21).

Left: raw head importance Delta_{l,k} (SM-15) per layer, by masking one head at a time on 4000 fixed prompts.
Right: risk of the full h = 4 model, of its pruned version (SM-17: all layer-1 heads, the top head of each
later layer), of the model with only its top layer-1 head (all later heads kept), and of a separately trained
h = 1 model, with the tuned ridge, Lasso and 2-step PtO-inf / GD levels (dotted). Setting of SM-C19: d = 8,
s = 2, sigma = 0.1, n = 24, N(0,1), L = 3, d_s = 0, the §2.5 recipe (Adam, 10k steps; ~20 min per model on a
shared core). ``quick``: 300 steps, batch 128 (NOT converged: the bars then only show the pipeline works).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from reduced_dynamics import figures, plotting
from reduced_dynamics.reference.sparse_multihead import pruning_mask, run_experiment
from reduced_dynamics.tasks.sparse_regression import NOTE_SETTINGS
from reduced_dynamics.theory.sparse import risk as risk

NAME = "sparse_heads"


def setting(quick: bool):
    base = NOTE_SETTINGS["c"].replace(layers=3, heads=4, scratch=0, seed=0)
    return base.replace(steps=300, batch=128) if quick else base.replace(steps=10_000)


def make_figure(out_dir: Path, quick: bool = False, progress: bool = False) -> list[Path]:
    spec = setting(quick)
    full = run_experiment(spec, progress=progress)
    single = run_experiment(spec, heads=1, progress=progress)
    test, tune = risk.sample_test_and_tune(spec, spec.seed, 2000, 1500)
    levels = {"ridge": risk.ridge_risk(tune, test), "Lasso": risk.lasso_risk(tune, test),
              "PtO-inf, T=2": risk.pto_steps_risk(tune, test, 2, "max"), "GD, T=2": risk.gd_steps_risk(tune, test, 2)}

    fig, (left, right) = plotting.figure(width=plotting.FULL_WIDTH, height=2.5, ncols=2)
    L, h = full.deltas.shape
    width = 0.8 / h
    for k in range(h):
        left.bar(np.arange(1, L + 1) + (k - (h - 1) / 2) * width, full.deltas[:, k], width,
                 color=plotting.COLOURS[k], label=f"head {k + 1}")
    left.axhline(0, color="#000000", linewidth=0.6)
    left.set_xticks(np.arange(1, L + 1))
    left.set_xlabel("layer")
    left.set_ylabel("risk increase when masked (Delta)")
    left.set_yscale("symlog", linthresh=1e-3)
    left.legend(loc="upper right", fontsize=6)
    left.set_title("masking one head (SM-15)")

    bars = {"full h=4": full.risk, "pruned (SM-17)": full.pruned_risk,
            "top layer-1 head only": full.top_first_risk, "trained h=1": single.risk}
    names = list(bars)
    right.bar(range(len(names)), [bars[n][0] for n in names], yerr=[bars[n][1] for n in names],
              color=plotting.COLOURS[:len(names)])
    for k, (label, value) in enumerate(levels.items()):
        right.axhline(value.mean, color=("#555555", "#999999", "#333333", "#bbbbbb")[k], linestyle=":",
                      linewidth=1.0, label=label)
    right.set_xticks(range(len(names)))
    right.set_xticklabels(names, rotation=15, fontsize=6)
    right.set_yscale("log")
    right.set_ylabel("excess risk")
    right.legend(loc="lower left", bbox_to_anchor=(1.0, 0.0), fontsize=6)
    right.set_title("quick: NOT converged" if quick else f"{spec.steps} Adam steps")

    summary = {"quick": quick, "spec": spec.to_dict(),
               "risk_full": list(full.risk), "risk_pruned": list(full.pruned_risk),
               "risk_top_first_layer_head": list(full.top_first_risk), "risk_h1": list(single.risk),
               "deltas": full.deltas.tolist(), "importance": full.importance.tolist(),
               "pruning_mask": pruning_mask(full.deltas).tolist(),
               "levels": {k: [v.mean, v.stderr, v.hyper] for k, v in levels.items()},
               "ratio_h4_over_h1": full.risk[0] / single.risk[0],
               "ratio_top_first_over_full": full.top_first_risk[0] / full.risk[0],
               "ratio_pruned_over_full": full.pruned_risk[0] / full.risk[0]}
    stem = Path(out_dir) / NAME
    arrays = {"deltas": full.deltas, "importance": full.importance, "train_steps": full.training.steps.astype(float),
              "train_risk_h4": full.training.risk, "train_steps_h1": single.training.steps.astype(float),
              "train_risk_h1": single.training.risk, "bars": np.array([bars[n] for n in names])}
    return figures.save(fig, stem, spec, arrays, summary)
