"""The predict side of the sparse family: risk against depth for GD, PtO and PtO-inf, plus baselines.

``predict(spec)`` returns a :class:`Trajectory` whose time axis is the CONTINUOUS DEPTH tau (t = tau, with
tau = 0 prepended, where every flow is the null predictor) and whose ``loss`` is the PtO-flow risk (SM-30,
nu = 1). This is not a training curve: the paper has no training-dynamics theory and the continuous-depth
flows are our construction (note §0, §7). The observables hold ``depth`` and one risk array per algorithm
(each with its standard error): ``gd_flow`` (SM-23), ``pto_flow`` and ``pto_inf_flow`` (SM-30), the
Marchenko-Pastur GD curve ``gd_flow_mp`` (SM-37), and the tuned levels ``ridge`` (SM-20), ``lasso``
(SM-21), ``gd_steps``, ``pto_steps`` and ``pto_inf_steps`` at T = L - 1 steps (SM-22, SM-26; the depth of a
network with L layers, SM-35), stored as constant arrays over depth. Every risk is a Monte-Carlo mean over
``spec.test_prompts`` prompts with hyper-parameters tuned on ``spec.tune_prompts`` separate prompts (§4).

Also here: the family's summary metrics, its comparison curves and levels, and the flow probe of the
restricted-family flow (§8, SM-38), the one gradient flow of this family.
"""
from __future__ import annotations

import numpy as np

from ...specs import SparseSpec
from ...tasks.sparse_regression import context_statistics, draw, sample_prompts
from ...trajectory import Trajectory, provenance
from . import formulas
from . import risk
from . import restricted_flow as restricted

STEP_ALGORITHMS = ("gd_steps", "pto_steps", "pto_inf_steps")


def depths(spec: SparseSpec) -> np.ndarray:
    """tau = 0 followed by the geometric grid depth_min .. depth_max (SM-C12 grid by default)."""
    return np.concatenate([[0.0], risk.depth_grid(spec.depth_min, spec.depth_max, spec.depth_points)])


def baselines(spec: SparseSpec, test: risk.Sample, tune: risk.Sample) -> dict[str, risk.Risk]:
    """Tuned ridge and Lasso, and GD / PtO / PtO-inf with T = L - 1 steps (one global step size each)."""
    steps = spec.layers - 1
    out = {"ridge": risk.ridge_risk(tune, test), "lasso": risk.lasso_risk(tune, test)}
    if steps >= 1:
        out["gd_steps"] = risk.gd_steps_risk(tune, test, steps)
        out["pto_steps"] = risk.pto_steps_risk(tune, test, steps, "none")
        out["pto_inf_steps"] = risk.pto_steps_risk(tune, test, steps, "max")
    return out


def predict(spec: SparseSpec) -> Trajectory:
    """Risk against continuous depth for the three flows, with the baseline levels (see module docstring)."""
    taus = depths(spec)
    test, tune = risk.samples(draw(spec))
    curves = risk.flow_risk_curves(test, taus)
    observables = {"depth": taus}
    for name, (mean, se) in curves.items():
        observables[name] = mean
        observables[name + "_stderr"] = se
    observables["gd_flow_mp"] = formulas.gd_flow_risk_mp(spec, taus)
    levels = baselines(spec, test, tune)
    for name, value in levels.items():
        observables[name] = np.full_like(taus, value.mean)
        observables[name + "_stderr"] = np.full_like(taus, value.stderr)
    meta = provenance(
        "sparse", spec, "theory-depth",
        time_axis="t = continuous depth tau (not training time); tau = eta (L - 1) for an L-layer network",
        loss="loss = PtO-flow excess risk (SM-30, nu = 1), Monte-Carlo mean over test prompts",
        tuned_hyper_parameters={name: value.hyper for name, value in levels.items()},
        steps_for_levels=spec.layers - 1,
        minima={name: {"risk": float(mean.min()), "depth": float(taus[int(np.argmin(mean))])}
                for name, (mean, _) in curves.items()},
        status="continuous-depth flows are our construction (note §0, §7), not the paper's")
    return Trajectory(t=taus, loss=curves["pto_flow"][0], observables=observables, meta=meta)


def summarise(trajectory: Trajectory) -> dict[str, float]:
    """Risk at t = 0 (the null predictor for theory; the initialised network for the reference), the final
    and the minimum risk along the curve. Applied identically to both sides."""
    return {"initial_risk": float(trajectory.loss[0]), "final_risk": float(trajectory.loss[-1]),
            "min_risk": float(np.min(trajectory.loss))}


def comparison_theories(spec: SparseSpec) -> dict[str, Trajectory]:
    """The PtO-flow curve (``theory``) and the GD- and PtO-inf-flow curves, all against depth."""
    theory = predict(spec)
    out = {"theory": theory}
    for name in ("gd_flow", "pto_inf_flow"):
        out[name.replace("_", " ")] = Trajectory(t=theory.t, loss=theory.observables[name],
                                                 meta=dict(theory.meta, loss=f"{name} risk"))
    return out


def compare_trained(spec: SparseSpec, theory: Trajectory, trained: Trajectory) -> dict:
    """What a trained L-layer network can be held against (the two curves share no axis: depth tau against
    optimiser steps, so no pointwise gap is taken): its final excess risk beside each level of ``levels``
    (tuned ridge and Lasso, GD / PtO / PtO-inf with T = L - 1 steps, SM-35) and beside each flow's minimum
    over depth, with the ratio trained / level. Both sides start at the null predictor (risk at t = 0)."""
    final = float(trained.loss[-1])
    stderr = trained.observables.get("risk_stderr")
    out = {"initial_risk_theory": float(theory.loss[0]), "initial_risk_reference": float(trained.loss[0]),
           "trained_risk": final,
           "trained_risk_stderr": float(stderr[-1]) if stderr is not None and len(stderr) else float("nan")}
    for label, value in levels(spec, theory).items():
        out[f"level {label}"] = value
        out[f"trained / {label}"] = final / value if value > 0 else float("nan")
    for name in ("gd_flow", "pto_flow", "pto_inf_flow"):
        curve = theory.observables[name]
        i = int(np.argmin(curve))
        out[f"{name} minimum"] = float(curve[i])
        out[f"{name} minimum depth"] = float(theory.t[i])
        out[f"trained / {name} minimum"] = final / float(curve[i]) if curve[i] > 0 else float("nan")
    return out


def levels(spec: SparseSpec, theory: Trajectory) -> dict[str, float]:
    """Dotted reference levels: tuned ridge and Lasso, and the T = L - 1 step algorithms."""
    names = ("ridge", "lasso") + tuple(n for n in STEP_ALGORITHMS if n in theory.observables)
    label = {"gd_steps": "GD", "pto_steps": "PtO", "pto_inf_steps": "PtO-inf"}
    out = {}
    for name in names:
        key = name if name in ("ridge", "lasso") else f"{label[name]}, T={spec.layers - 1}"
        out[key] = float(theory.observables[name][0])
    return out


# ---------------------------------------------------------------------------------------------------------
# the restricted-family flow (§8, ours)

def restricted_moments(spec: SparseSpec, rng: np.random.Generator, prompts: int) -> tuple[float, float]:
    """Monte-Carlo prior averages of SM-38: m3 = E sum_j w*_j r_j^3 and m6 = E sum_j r_j^6 (the note asks for
    >= 1e5 prompts for quantitative use)."""
    p = sample_prompts(spec, prompts, rng)
    r = context_statistics(p)[1]
    return float(np.mean(np.sum(p.w * r ** 3, axis=1))), float(np.mean(np.sum(r ** 6, axis=1)))


def flow_probe(spec: SparseSpec):
    """(rhs(y), loss(y), y0) of the restricted flow (SM-38) on (a, b, c, g) with the spec's moments, for the
    common test rhs = -grad loss. y0 is a balanced start with p0 = 0.05."""
    m3, m6 = restricted_moments(spec, draw(spec).moments, 2000)
    compiled = restricted.system()
    w2, sigma = float(spec.sparsity), spec.noise

    def rhs(y):
        return compiled["rhs"](y, (m3, m6))

    def loss(y):
        return float(compiled["loss"](y, (m3, m6, w2, sigma))[0])

    p0 = 0.05
    return rhs, loss, np.array([np.sqrt(2 * p0), np.sqrt(2 * p0), np.sqrt(p0), np.sqrt(p0)])
