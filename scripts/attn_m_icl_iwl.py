"""Figure (a) of issue 14: in-context vs in-weight learning (linear_attention_iwl.md §12, the paper's
Fig. 14 configuration: D = 4, N = 31, H = 8, Lambda = I/4, c = N, sigma = 1e-6, lr 5e-4, t = 2).

Six panels, icl = p in {0, 0.2, ..., 1}: training loss and both test losses (LA-38) against time; lines the
population flow (LA-44) from the projection of the very initial weights GD starts from, markers GD on the
full model (P = 5000, test sets of 5000). Last two panels: the drop times t_IW and t_IC against p (GD
markers, flow line, law (LA-48) dashed and t_IW + Delta_lin of (LA-49) dotted) and p Delta = p (t_IC - t_IW),
the 1/p law of §12.8. ``quick``: P = 1000, test sets of 1000, lr 1e-3.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from reduced_dynamics import figures, plotting
from reduced_dynamics.reference.linear_attention import simulate_merged
from reduced_dynamics.specs import LinearMergedSpec
from reduced_dynamics.theory.linear_attention import iwl

NAME = "attn_m_icl_iwl"
FRACTIONS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
LAW_FRACTIONS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def base_spec(quick: bool) -> LinearMergedSpec:
    return LinearMergedSpec(dim=4, context=31, heads=8, eigenvalues=(0.25,) * 4, output_scale="code",
                            init_scale=1e-6, lr=1e-3 if quick else 5e-4, t_max=2.0,
                            train_size=1000 if quick else 5000, seed=10)


def nan_to_none(x: float):
    return None if math.isnan(x) else float(x)


def make_figure(out_dir: Path, quick: bool = False) -> list[Path]:
    base = base_spec(quick)
    test_size = 1000 if quick else 5000
    stem = Path(out_dir) / NAME
    fig, axes = plotting.figure(width=plotting.FULL_WIDTH, height=3.6, ncols=4, nrows=2)
    axes = axes.ravel()
    arrays, runs = {}, {}
    curves = (("loss", "train", plotting.COLOURS[0]), ("test_loss_in_weight", "in-weight test", plotting.COLOURS[1]),
              ("test_loss_in_context", "in-context test", plotting.COLOURS[2]))
    for k, p in enumerate(FRACTIONS):
        spec = base.replace(icl=p)
        gd = simulate_merged(spec, progress=False, test_size=test_size)
        theory = iwl.predict(spec, moments="population", level="sector", t_eval=np.linspace(0, spec.final_time, 801))
        ax = axes[k]
        stride = plotting.thin_markers(len(gd.t), 40)
        for key, label, colour in curves:
            th_y = theory.loss if key == "loss" else theory.observables[key]
            gd_y = gd.loss if key == "loss" else gd.observables[key]
            ax.plot(theory.t, th_y, color=colour, label=label if k == 0 else None)
            ax.plot(gd.t[::stride], gd_y[::stride], "o", color=colour, markerfacecolor="none", markersize=2.2,
                    markeredgewidth=0.5)
            arrays[f"{key}_theory_p{p:g}"] = th_y
            arrays[f"{key}_gd_p{p:g}"] = gd_y
        arrays[f"t_theory_p{p:g}"], arrays[f"t_gd_p{p:g}"] = theory.t, gd.t
        if k == 0:
            arrays.update(t=theory.t, loss=theory.loss)
        ax.set_yscale("log")
        ax.set_title(f"icl = {p:g}", fontsize=7)
        ax.set_xlabel("t", labelpad=1)
        runs[f"{p:g}"] = {side: {key: nan_to_none(tr.events.get(key, math.nan)) for key in ("in_weight_drop_time", "in_context_drop_time")}
                          | {"final_loss": float(tr.loss[-1]),
                             "final_test_loss_in_weight": float(tr.observables["test_loss_in_weight"][-1]),
                             "final_test_loss_in_context": float(tr.observables["test_loss_in_context"][-1])}
                          for side, tr in (("theory", theory), ("gradient descent", gd))}
    axes[0].set_ylabel("loss (MSE)")
    axes[4].set_ylabel("loss (MSE)")
    axes[0].legend(loc="lower left", fontsize=5)

    # Drop times against p: flow on a finer grid, the laws (LA-48) and (LA-49)
    law = {"p": [], "t_iw_flow": [], "t_ic_flow": [], "t_iw_formula": [], "delay_linear": []}
    for p in LAW_FRACTIONS:
        t_max = 4.0 if p > 0 else 2.0            # p = 0 has no in-context drop, and phase 3 starts later
        theory = iwl.predict(base.replace(icl=p, t_max=t_max), moments="population", level="sector",
                             t_eval=np.linspace(0, t_max, 2001))
        law["p"].append(p)
        law["t_iw_flow"].append(theory.events.get("in_weight_drop_time", math.nan))
        law["t_ic_flow"].append(theory.events.get("in_context_drop_time", math.nan))
        law["t_iw_formula"].append(theory.meta["t_in_weight_formula"])
        law["delay_linear"].append(theory.meta["delay_linear_formula"])
    law = {k: np.array(v, dtype=float) for k, v in law.items()}
    ax = axes[6]
    ax.plot(law["p"], law["t_iw_flow"], color=plotting.COLOURS[1], label="t_IW flow")
    ax.plot(law["p"], law["t_ic_flow"], color=plotting.COLOURS[2], label="t_IC flow")
    ax.plot(law["p"], law["t_iw_formula"], "--", color=plotting.COLOURS[1], linewidth=1.0, label="(LA-48)")
    ax.plot(law["p"], law["t_iw_formula"] + law["delay_linear"], ":", color=plotting.COLOURS[2], linewidth=1.0,
            label="(LA-48) + Delta_lin")
    gd_p = np.array(FRACTIONS)
    for key, colour in (("in_weight_drop_time", plotting.COLOURS[1]), ("in_context_drop_time", plotting.COLOURS[2])):
        values = [runs[f"{p:g}"]["gradient descent"][key] for p in FRACTIONS]
        ax.plot(gd_p, [np.nan if v is None else v for v in values], "o", color=colour, markerfacecolor="none",
                markersize=3)
    ax.set_ylim(0, 3.0)
    ax.set_xlabel("icl = p", labelpad=1)
    ax.set_ylabel("drop time")
    ax.legend(fontsize=5, loc="upper right")
    ax = axes[7]
    delay = law["t_ic_flow"] - law["t_iw_flow"]
    keep = (law["p"] > 0) & (law["p"] < 1)
    ax.plot(law["p"][keep], law["p"][keep] * delay[keep], "o-", color=plotting.COLOURS[3], markersize=2.5,
            label="p (t_IC - t_IW), flow")
    ax.plot(law["p"][keep], law["p"][keep] * law["delay_linear"][keep], ":", color=plotting.COLOURS[3],
            label="p Delta_lin (LA-49)")
    ax.set_xlabel("icl = p", labelpad=1)
    ax.set_ylabel("p x delay")
    ax.set_ylim(0, 0.4)
    ax.legend(fontsize=5, loc="upper right")
    fig.suptitle(f"in-context vs in-weight learning, attn-m: D=4, N=31, H=8, Lambda=I/4, P={base.sample_size}, "
                 f"sigma={base.init_scale:g}; lines: population flow (LA-44), markers: GD", fontsize=7)
    summary = {"runs": runs, "laws": {k: [nan_to_none(x) for x in v] for k, v in law.items()}}
    # .npz arrays hold numbers only (the figure contract): each law keeps the fractions where it is defined
    law_arrays = {}
    for key, values in law.items():
        if key != "p":
            defined = np.isfinite(values)
            law_arrays[f"law_{key}"], law_arrays[f"law_{key}_p"] = values[defined], law["p"][defined]
    return figures.save(fig, stem, base, {**law_arrays, **arrays}, {**summary, "fractions": list(FRACTIONS)})
