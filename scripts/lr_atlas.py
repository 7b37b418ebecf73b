"""Figure ``lr_atlas``: what gradient descent does at each learning rate (docs/theory/lr_atlas.md, LRA-1 to LRA-7).

For unfrozen attn-m at a small size, the atlas of ``reduced_dynamics.theory.lr_atlas`` over a grid of rates (one
batched map over all of them): the regime of each rate as coloured bands, with the final loss, the peak and the
minimum reached; below, the final sharpness lambda_max against 2 / eta (edge of stability: GD settles where they
meet). Full GD of the model (the NumPy reference) at 8 rates is overlaid as markers, its label classified by the
same rule (``gd_outcome``). The printed bound eta_max of the run (LRA-2) is the dashed line.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

import reduced_dynamics as rd
from reduced_dynamics import figures, plotting
from reduced_dynamics.errors import DivergenceError
from reduced_dynamics.reference import linear_attention as ref
from reduced_dynamics.theory import lr_atlas

NAME = "lr_atlas"
SMALL = dict(dim=2, heads=2, init_scale=0.1, train_size=200, t_max=60.0)
COLOURS = {"monotone": "#4c72b0", "damped": "#8172b2", "catapult": "#55a868", "oscillating": "#dd8452", "divergent": "#c44e52"}


def gd_outcome(spec) -> dict:
    """Full-batch GD of the full attn-m model (the reference) at spec.lr, classified by ``lr_atlas.classify``
    (coarse labels; no Lyapunov exponent from GD): label, loss start, peak, minimum, final loss."""
    cov, params, data = ref.problem(spec)
    model = ref.MergedAttention(spec.kappa)
    D = spec.dim

    def state(p):
        return np.concatenate([p["r"], p["W"][:, :, :D].reshape(len(p["r"]), -1)], axis=1).reshape(-1)
    return _outcome(spec, model, params, data, state)


def _outcome(spec, model, params, data, state) -> dict:
    """Full-batch GD of the reference model from its own start, labelled by the atlas's classifier."""
    mask = model.off_manifold_mask(params) if spec.freeze_off_manifold else None
    try:
        losses, states, _ = ref.gradient_descent(model, params, ref.Batch.from_training_set(data), spec.lr,
                                                 spec.gd_steps, mask=mask, record=state, progress=False)
    except DivergenceError:
        return {"label": "divergent", "peak": math.nan, "minimum": math.nan, "final": math.nan}
    tail = np.array(states[-(lr_atlas.PERIODS + 1):])
    label = lr_atlas.coarse(lr_atlas.classify(losses, tail, False))
    return {"label": label, "loss0": float(losses[0]), "peak": float(losses.max()), "minimum": float(losses.min()),
            "final": float(losses[-1])}


def gd_outcome_separate(spec) -> dict:
    """As ``gd_outcome`` for attn-s: full-batch GD of the full model (the reference), state (r_i, K_i, Q_i^x)."""
    cov, params, data = ref.problem_separate(spec)
    model = ref.SeparateAttention(spec.kappa)
    D, H = spec.dim, spec.heads

    def state(p):
        return np.concatenate([p["r"], p["K"].reshape(H, -1), p["Q"][:, :, :D].reshape(H, -1)], axis=1).reshape(-1)
    return _outcome(spec, model, params, data, state)


def make_figure(out_dir: Path, quick: bool = False) -> list[Path]:
    spec = rd.spec("attn-m", **SMALL)
    bound = lr_atlas.run_bound(spec)
    rates = np.linspace(0.05, 0.6, 56 if quick else 200)
    at = lr_atlas.atlas(spec, rates)
    gd_rates = np.linspace(0.1, 0.6, 8)
    gd = [gd_outcome(spec.replace(lr=float(r))) for r in gd_rates]
    labels = at.coarse_labels
    fig, (top, bottom) = plotting.figure(width=plotting.FULL_WIDTH, height=4.2, nrows=2)
    width = rates[1] - rates[0]
    for r, label in zip(rates, labels):
        for ax in (top, bottom):
            ax.axvspan(r - width / 2, r + width / 2, color=COLOURS[label], alpha=0.25, lw=0)
    ok = np.array([x != "divergent" for x in labels])
    top.semilogy(rates[ok], at.final[ok], "k.", ms=3, label="atlas: final loss")
    top.semilogy(rates, at.peak, "^", color="0.4", ms=2, label="atlas: peak loss")
    for r, out in zip(gd_rates, gd):
        y = out["final"] if out["label"] != "divergent" else at.peak.max()
        top.semilogy(r, y, "o" if out["label"] != "divergent" else "x", mfc="none", mec=COLOURS[out["label"]],
                     color=COLOURS[out["label"]], ms=7)
    top.plot([], [], "o", mfc="none", mec="k", label="full GD (reference) final loss; x: diverged; colour: regime")
    for label, colour in COLOURS.items():
        top.fill_between([], [], color=colour, alpha=0.25, label=label)
    for ax in (top, bottom):
        ax.axvline(bound["eta_max"], ls="--", color="k", lw=0.8)
    top.set_ylabel("training loss")
    top.legend(fontsize=5, loc="upper left", ncol=2)
    bottom.semilogy(rates[ok], at.sharpness[ok], "k.", ms=3, label="atlas: lambda_max at the end")
    bottom.semilogy(rates, 2.0 / rates, "-", color="0.3", lw=0.8, label="2 / lr (edge of stability)")
    bottom.sharex(top)
    bottom.set_xlabel("learning rate (dashed: the run's bound eta_max, LRA-2)")
    bottom.set_ylabel("sharpness")
    bottom.legend(fontsize=6, loc="upper right")
    fig.suptitle(f"attn-m (unfrozen), D = 2, H = 2, P = 200, t = 60: regimes by rate; eta_max = {bound['eta_max']:.3f}",
                 fontsize=8)
    gd_ok = [o["label"] != "divergent" for o in gd]
    summary = {"eta_max": bound["eta_max"], "system": bound["system"], "first_divergent": at.first_divergent(),
               "gd_rates": gd_rates.tolist(), "gd_labels": [o["label"] for o in gd],
               "atlas_labels_at_gd_rates": lr_atlas.atlas(spec, gd_rates, lyapunov=False).coarse_labels,
               "atlas_labels": labels}
    arrays = {"rates": rates, "peak": at.peak, "minimum": at.minimum, "settled_rates": rates[ok],
              "settled_final": at.final[ok], "settled_sharpness": at.sharpness[ok],
              "settled_lyapunov": at.lyapunov[ok], "divergent_rates": rates[~ok], "gd_rates": gd_rates,
              "gd_settled_rates": gd_rates[gd_ok], "gd_settled_final": np.array([o["final"] for o in gd])[gd_ok]}
    return figures.save(fig, Path(out_dir) / NAME, spec, arrays, summary)
