"""Phase diagram of in-context learning under weight decay (docs/theory/weight_decay.md §3, WD-9): is in-context
learning transient in the §12 mixture?

Configuration: the Fig. 14 setting of ``attn_m_icl_iwl`` (D = 4, N = 31, H = 8, Lambda = I/4, c = N,
sigma = 1e-6, seed 10). Over the fraction p of random-task prompts and a log grid of weight decay lambda, the
population flow (LA-44 with WD-2, symmetric sector LA-41) to t = 20 is classified by its in-context test loss:
ICL never emerges / emerges and persists / emerges and fades (WD-9). Left panel: the phases, colour the ICL fade
time where it fades, and the fraction of the ICL gain lost by the end, (L_IC(end) - min) / (L_IC(0) - min), as
numbers; right panel: the in-weight route's fade time (the transience this model does have). Markers: gradient
descent on the full model (P training prompts, lr, t = 6) from the same initial weights, classified by the
same events, against the flow on the same training and test sets (sample moments). ``quick``: a coarse grid,
P = 500, test sets of 500.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from reduced_dynamics import figures, plotting
from reduced_dynamics.events import transience_summary
from reduced_dynamics.reference.linear_attention import simulate_merged
from reduced_dynamics.specs import LinearMergedSpec
from reduced_dynamics.theory.linear_attention import iwl

NAME = "attn_m_transience"
PHASES = ("never emerges", "emerges, persists", "emerges, fades")
MARKERS = ((0.1, 0.0), (0.5, 0.0), (0.5, 1.0), (0.5, 3.0), (0.5, 10.0), (0.9, 1.0), (0.1, 3.0))


def base_spec(quick: bool) -> LinearMergedSpec:
    return LinearMergedSpec(dim=4, context=31, heads=8, eigenvalues=(0.25,) * 4, output_scale="code",
                            init_scale=1e-6, lr=1e-3, t_max=20.0, train_size=500 if quick else 1000, seed=10)


def grid(quick: bool):
    fractions = np.array([0.05, 0.25, 0.5, 0.75, 1.0]) if quick else np.round(np.linspace(0.05, 1.0, 20), 4)
    decays = np.logspace(-2, 1.5, 5 if quick else 15)
    return fractions, np.concatenate([[0.0], decays])


def flow_summary(spec: LinearMergedSpec, **options) -> dict:
    tr = iwl.predict(spec, **options)
    ic, iw = tr.observables["test_loss_in_context"], tr.observables["test_loss_in_weight"]
    out = transience_summary(tr.t, ic, iw)
    gain = ic[0] - out["icl_min"]           # only where ICL emerged: the share of its gain lost by the end
    out["icl_lost_fraction"] = float((out["icl_final"] - out["icl_min"]) / gain) if out["icl_phase"] else math.nan
    return out


def gd_check(base: LinearMergedSpec, p: float, lam: float, test_size: int) -> dict:
    """GD and the flow on the same training and test sets from the same initial weights, to t = 6."""
    spec = base.replace(icl=p, weight_decay=lam, t_max=6.0)
    gd = simulate_merged(spec, progress=False, test_size=test_size)
    gd_s = transience_summary(gd.t, gd.observables["test_loss_in_context"], gd.observables["test_loss_in_weight"])
    th_s = flow_summary(spec, moments="sample", tests="sample", test_size=test_size,
                        t_eval=np.linspace(0.0, spec.final_time, 3001))
    return {"p": p, "lambda": lam, "gradient descent": gd_s, "flow (same sets)": th_s}


def none_if_nan(x):
    return None if isinstance(x, float) and math.isnan(x) else x


def where_it_happens(name: str, grid_values: np.ndarray) -> dict[str, np.ndarray]:
    """An event over the (lambda, p) grid, NaN where it does not happen, as the (lambda, p) indices where it
    happens (``NAME_at``) and its values there (``NAME``): the figure's .npz holds finite numbers only, so an
    absent event is absent rather than NaN."""
    ii, jj = np.nonzero(np.isfinite(grid_values))
    return {f"{name}_at": np.column_stack([ii, jj]).astype(np.int64), name: grid_values[ii, jj]}


def make_figure(out_dir: Path, quick: bool = False) -> list[Path]:
    base = base_spec(quick)
    fractions, decays = grid(quick)
    shape = (len(decays), len(fractions))
    phase, icl_fade, iwl_fade, lost, icl_emerge = (np.full(shape, math.nan) for _ in range(5))
    for i, lam in enumerate(decays):
        for j, p in enumerate(fractions):
            s = flow_summary(base.replace(icl=float(p), weight_decay=float(lam)), moments="population",
                             level="sector")
            phase[i, j], icl_fade[i, j], iwl_fade[i, j] = s["icl_phase"], s["icl_fade"], s["iwl_fade"]
            lost[i, j], icl_emerge[i, j] = s["icl_lost_fraction"], s["icl_emergence"]
    checks = [gd_check(base, p, lam, 500 if quick else 1000) for p, lam in (MARKERS[:3] if quick else MARKERS)]

    fig, axes = plotting.figure(width=plotting.FULL_WIDTH, height=2.6, ncols=2)
    y = np.where(decays > 0, decays, decays[1] / 3)          # lambda = 0 drawn one step below the grid
    colours = np.array(plotting.COLOURS[:3])
    ax = axes[0]
    for k, label in enumerate(PHASES):
        mask = phase == k
        jj, ii = np.nonzero(mask.T)
        ax.scatter(fractions[jj], y[ii], s=14, color=colours[k], marker="s", label=label if mask.any() else None)
    faded = np.isfinite(icl_fade)
    if faded.any():
        ii, jj = np.nonzero(faded)
        sc = ax.scatter(fractions[jj], y[ii], c=icl_fade[faded], s=6, cmap="viridis")
        fig.colorbar(sc, ax=ax, label="ICL fade time")
    for c in checks:
        k = c["gradient descent"]["icl_phase"]
        ax.scatter([c["p"]], [c["lambda"] if c["lambda"] > 0 else decays[1] / 3], s=40, facecolors="none",
                   edgecolors=colours[k], linewidths=1.0, marker="o")
    ax.set_yscale("log")
    ax.set_xlabel("icl fraction p")
    ax.set_ylabel("weight decay lambda (lowest row: 0)")
    ax.set_title("in-context learning under decay (flow; circles GD)", fontsize=7)
    ax.legend(loc="upper left", fontsize=5)
    ax = axes[1]
    ii, jj = np.nonzero(np.isfinite(iwl_fade))
    if ii.size:
        sc = ax.scatter(fractions[jj], y[ii], c=iwl_fade[ii, jj], s=14, marker="s", cmap="magma")
        fig.colorbar(sc, ax=ax, label="in-weight fade time")
    ax.set_yscale("log")
    ax.set_xlabel("icl fraction p")
    ax.set_title("the in-weight route fades instead", fontsize=7)
    if not np.all(np.isfinite(phase)):
        raise RuntimeError("attn_m_transience: a grid point has no phase")
    arrays = {"fractions": fractions, "decays": decays, "icl_phase": phase.astype(np.int64),
              **where_it_happens("icl_fade", icl_fade), **where_it_happens("iwl_fade", iwl_fade),
              **where_it_happens("icl_lost_fraction", lost), **where_it_happens("icl_emergence", icl_emerge)}
    summary = {"phase_counts": {name: int(np.sum(phase == k)) for k, name in enumerate(PHASES)},
               "largest_icl_lost_fraction": float(np.nanmax(lost)),
               "iwl_fades_at": int(np.sum(np.isfinite(iwl_fade))),
               "gd_checks": [{k: ({kk: none_if_nan(vv) for kk, vv in v.items()} if isinstance(v, dict) else v)
                              for k, v in c.items()} for c in checks]}
    return figures.save(fig, Path(out_dir) / NAME, base, arrays, summary)
