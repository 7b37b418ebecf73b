"""Figure (b) of issue 14: softmax attention on in-context linear regression beside linear attention
(linear_attention_iwl.md §13, the paper's Fig. 5 runs at the note's under-a-minute sizes).

Left, attn-m (C21): D = 4, N = 15, H = 4, default Lambda (eigenvalues d/10), P = 2000, sigma = 0.02, lr 0.1,
t = 60: one abrupt drop. Right, attn-s (C22): D = 3, N = 15, H = 3, R = 1, P = 4000, aligned start (head d on
eigenvector d, v = k = q = 0.15), lr 0.2, t = 300: a staircase. Markers: GD on the full softmax model and
on the linear model (kappa = 1/N); line: the small-score expansion (LA-51) on the same training set from the
same weights, an APPROXIMATION (dashed on the right: its population form (LA-52), which stalls from this
exactly symmetric start, see the comment in the code); dotted: the sample centred ladder (the training set's
counterpart of (LA-53)). ``quick``: P = 1000.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from reduced_dynamics import figures, plotting
from reduced_dynamics.reference import linear_attention as ref
from reduced_dynamics.specs import LinearMergedSpec, LinearSeparateSpec
from reduced_dynamics.tasks import linear_attention as task
from reduced_dynamics.theory.linear_attention import softmax_expansion as sx

NAME = "softmax_linear_regression"


def merged_spec(quick: bool) -> LinearMergedSpec:
    return LinearMergedSpec(dim=4, context=15, heads=4, init_scale=0.02, lr=0.1, steps=600,
                            train_size=1000 if quick else 2000, seed=0, attention="softmax")


def separate_spec(quick: bool) -> LinearSeparateSpec:
    return LinearSeparateSpec(dim=3, context=15, heads=3, rank=1, init_rule="normal", init_scale=0.15, lr=0.2,
                              steps=1500, train_size=1000 if quick else 4000, seed=0, attention="softmax")


def aligned_weights(spec: LinearSeparateSpec, basis: np.ndarray) -> dict:
    """Head d on eigenvector d of Lambda: K_d^x = Q_d^x = 0.15 e_d^T, v_d = 0.15, every other entry 0."""
    D, H = spec.dim, spec.heads
    K, Q, r = np.zeros((H, 1, D + 1)), np.zeros((H, 1, D + 1)), np.zeros((H, D + 1))
    for d in range(H):
        K[d, 0, :D] = Q[d, 0, :D] = 0.15 * basis[:, d]
        r[d, D] = 0.15
    return {"K": K, "Q": Q, "r": r}


def make_figure(out_dir: Path, quick: bool = False) -> list[Path]:
    stem = Path(out_dir) / NAME
    fig, axes = plotting.figure(width=plotting.FULL_WIDTH, height=2.6, ncols=2)
    arrays, summary = {}, {}
    sm = merged_spec(quick)
    runs = {"softmax GD": ref.simulate_merged(sm, progress=False, test_size=0),
            "linear GD (kappa = 1/N)": ref.simulate_merged(sm.replace(attention="linear", output_scale="paper"),
                                                           progress=False, test_size=0)}
    expansion = sx.predict(sm, t_eval=np.linspace(0, sm.final_time, 601))
    ss = separate_spec(quick)
    drawn = task.draw(ss, train=True)
    weights = aligned_weights(ss, drawn.covariance.basis)
    runs_s = {"softmax GD": ref.run_separate(ss, weights, drawn.covariance, drawn.train, progress=False),
              "linear GD (kappa = 1/N)": ref.run_separate(ss.replace(attention="linear", output_scale="paper"),
                                                          weights, drawn.covariance, drawn.train, progress=False)}
    expansion_s = sx.predict(ss, t_eval=np.linspace(0, ss.final_time, 1501), weights=weights)
    # From the exactly aligned start K_i = Q_i, the POPULATION expansion cannot turn K_i^T Q_i negative once
    # the constant term has pushed v_i below zero: heads 2.. die and it stalls at M_1. The sample-moment
    # expansion (and GD) escape because the finite training set breaks K_i = Q_i.
    expansion_pop = sx.predict(ss, t_eval=np.linspace(0, ss.final_time, 1501), weights=weights,
                               moments="population")
    for ax, name, gd_runs, theory, spec in ((axes[0], "attn-m", runs, expansion, sm),
                                            (axes[1], "attn-s", runs_s, expansion_s, ss)):
        ax.plot(theory.t, theory.loss, color=plotting.COLOURS[0], label="expansion (LA-51), sample moments")
        if name == "attn-s":
            ax.plot(expansion_pop.t, expansion_pop.loss, "--", color=plotting.COLOURS[0], linewidth=1.0,
                    label="expansion, population (LA-52)")
            arrays["attn-s_loss_expansion_population"] = expansion_pop.loss
        for k, (label, gd) in enumerate(gd_runs.items()):
            stride = plotting.thin_markers(len(gd.t), 60)
            ax.plot(gd.t[::stride], gd.loss[::stride], "os"[k], color=plotting.COLOURS[1 + k], markerfacecolor="none",
                    markersize=2.5, markeredgewidth=0.6, label=label)
            arrays[f"{name}_t_{label.split()[0]}"], arrays[f"{name}_loss_{label.split()[0]}"] = gd.t, gd.loss
        for m, level in enumerate(theory.meta["sample_ladder"]):
            ax.axhline(level, color="#777777", linestyle=":", linewidth=0.8)
            ax.text(spec.final_time, level, f" M_{m}", fontsize=5, va="bottom", ha="right", color="#555555")
        arrays[f"{name}_t_expansion"], arrays[f"{name}_loss_expansion"] = theory.t, theory.loss
        ax.set_xlabel("t = lr x step")
        ax.set_ylabel("training loss (MSE)")
        ax.set_title(f"{name}: D={spec.dim}, N={spec.context}, H={spec.heads}, P={spec.sample_size}", fontsize=7)
        ax.legend(fontsize=5, loc="upper right")
        summary[name] = {"ladder (LA-53)": theory.meta["ladder"], "sample centred ladder": theory.meta["sample_ladder"],
                         "expansion drop time": float(theory.events["drop_time"]),
                         "expansion final loss": float(theory.loss[-1]),
                         **{f"{label}: final loss": float(gd.loss[-1]) for label, gd in gd_runs.items()},
                         **{f"{label}: drop time": float(gd.events.get("drop_time", np.nan))
                            for label, gd in gd_runs.items() if "drop_time" in gd.events}}
    summary["attn-s"]["population expansion final loss"] = float(expansion_pop.loss[-1])
    arrays.update(t=expansion.t, loss=expansion.loss)
    return figures.save(fig, stem, {"attn-m": sm, "attn-s": ss}, arrays, summary)
