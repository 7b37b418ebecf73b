"""Figure: the learning-rate error of the theory curves (docs/theory/finite_learning_rate.md, LR-7). For attn-m,
attn-s (one drop, D = 1) and softmax (dominant feature), the gap in drop (threshold) time between gradient descent
and the gradient flow, and between gradient descent and the modified flow (LR-5), against the learning rate on
log-log axes, with fitted slopes (1 and 2 expected). GD is the full model with frozen off-manifold blocks for
attn-m and attn-s (equal to the reduced map, LR-1); for softmax it is the exact-gradient GD map on M (LR-1, LR-3),
which full GD follows up to batch noise. Every curve is read on the GD grid t = lr k with the cubic crossing of
``reduced_dynamics.discretisation``, at one level per family.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.ticker import NullFormatter

import reduced_dynamics as rd
from reduced_dynamics import figures, plotting
from reduced_dynamics.discretisation import crossing_time, fitted_order

NAME = "discretisation_order"

CASES = {
    "attn-m": dict(spec=dict(dim=2, heads=2, init_scale=0.01, train_size=500, freeze_off_manifold=True),
                   t_max=12.0, rates=(0.02, 0.2)),
    "attn-s": dict(spec=dict(dim=1, heads=1, rank=1, init_rule="normal", init_scale=0.1, output_scale="paper",
                             train_size=500, freeze_off_manifold=True),
                   t_max=30.0, rates=(0.02, 0.2)),
    "softmax": dict(spec=dict(features=3, dim=3, context=12, dominant=0.6, thresholds=(0.05,)),
                    t_max=20.0, rates=(0.1, 0.8)),
}


def _curve(trajectory, model):
    """The curve whose crossing is timed: the loss (attn-m, attn-s) or the dominant feature's loss (softmax)."""
    return trajectory.observables["loss_k"][:, 0] if model == "softmax" else trajectory.loss


def gaps(model: str, rates, t_max: float, **spec_fields) -> dict:
    """Drop (threshold) times of GD, the flow and the modified flow at each rate, and the fitted orders."""
    rows = []
    for eta in rates:
        steps = int(round(t_max / eta))
        spec = rd.spec(model, lr=float(eta), steps=steps, **spec_fields)
        grid = eta * np.arange(steps + 1)
        gd = rd.predict(spec.replace(discretisation="map")) if model == "softmax" else rd.simulate(spec, progress=False)
        flow = rd.predict(spec, t_eval=grid)
        modified = rd.predict(spec.replace(discretisation="modified"), t_eval=grid)
        if model == "softmax":
            level = spec.levels[0]
        else:
            level = 0.5 * (flow.loss[0] + flow.loss[-1])
        rows.append([crossing_time(c.t, _curve(c, model), level) for c in (gd, flow, modified)])
    times = np.array(rows)
    flow_gap, modified_gap = times[:, 0] - times[:, 1], times[:, 0] - times[:, 2]
    return {"rates": np.asarray(rates, float), "times": times, "flow_gap": flow_gap, "modified_gap": modified_gap,
            "order_flow": fitted_order(rates, flow_gap), "order_modified": fitted_order(rates, modified_gap)}


def make_figure(out_dir: Path, quick: bool = False) -> list[Path]:
    n_rates = 5 if quick else 7
    results = {}
    for model, case in CASES.items():
        rates = np.geomspace(*case["rates"], n_rates)
        results[model] = gaps(model, rates, case["t_max"], **case["spec"])
    fig, axes = plotting.figure(width=plotting.FULL_WIDTH, height=2.8, ncols=3)
    for ax, (model, res) in zip(np.atleast_1d(axes), results.items()):
        for key, label, colour in (("flow_gap", "GD - flow", plotting.COLOURS[0]),
                                   ("modified_gap", "GD - modified flow", plotting.COLOURS[1])):
            order = res["order_flow" if key == "flow_gap" else "order_modified"]
            ax.loglog(res["rates"], np.abs(res[key]), "o-", color=colour, label=f"{label} (slope {order:.2f})")
        ax.set_xlabel("learning rate")
        ax.set_title(model, fontsize=8)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.legend(fontsize=6, loc="upper left")
    np.atleast_1d(axes)[0].set_ylabel("|gap in drop / threshold time|")
    fig.suptitle("learning-rate error: flow O(lr), modified flow O(lr^2) (LR-7)")
    arrays = {f"{model}_{key}": value for model, res in results.items()
              for key, value in res.items() if isinstance(value, np.ndarray)}
    summary = {model: {"rates": res["rates"].tolist(), "flow_gap": res["flow_gap"].tolist(),
                       "modified_gap": res["modified_gap"].tolist(), "order_flow": res["order_flow"],
                       "order_modified": res["order_modified"]} for model, res in results.items()}
    specs = {model: rd.spec(model, **case["spec"]) for model, case in CASES.items()}
    return figures.save(fig, Path(out_dir) / NAME, specs, arrays, summary)
