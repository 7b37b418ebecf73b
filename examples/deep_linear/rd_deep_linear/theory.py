"""Theory of the deep-linear family: population gradient flows from the spec's one draw (DL-1 to DL-8).

* balanced aligned start (``init="aligned"``): the mode flow du_i/dt = 2 u_i (s_i - u_i) (DL-6), one ODE per
  mode, from u_i(0) = U_i^T W2 W1 V_i of the draw; loss (DL-3) summed over modes;
* random start: the full-matrix flow (DL-5) with population moments, E[x x^T] = I and Sigma_yx = U S V^T
  (a reduced description still: the P samples are replaced by their law); loss (DL-2).

Both right-hand sides are compiled from the SymPy derivation (``derivations.deep_linear``) and integrated by
``reduced_dynamics.integrate.integrate``. ``closed_form`` is the sigmoid (DL-7), exact for the aligned start.
The loss is L = (1/2) E|y - W2 W1 x|^2 (with the factor 1/2), plus noise^2 out_dim / 2 when there is noise.
"""
from __future__ import annotations


import numpy as np
import sympy as sp

from reduced_dynamics import compile as compiler
from reduced_dynamics.integrate import DerivedFlow, integrate
from reduced_dynamics.trajectory import Trajectory, provenance

from . import task
from .derivations import deep_linear as derivation
from .spec import DeepLinearSpec


def noise_floor(spec: DeepLinearSpec) -> float:
    return 0.5 * spec.noise ** 2 * spec.out_dim


def mode_system(modes: int) -> compiler.CompiledSystem:
    """rhs(u, s) and loss(u, s) of (DL-6) and (DL-3), compiled through the disk cache."""
    return compiler.compile_system(derivation, "compiled_modes", {"modes": int(modes)})


def matrix_system(spec: DeepLinearSpec) -> compiler.CompiledSystem:
    """rhs(y, C, [q]) and loss(y, C, [q]) of (DL-5) and (DL-2); y = W1 and W2 row-major, C = Sigma_yx."""
    sizes = {"n_in": spec.in_dim, "hidden": spec.hidden, "n_out": spec.out_dim}
    return compiler.compile_system(derivation, "compiled_matrix", sizes)


def matrix_functions(spec: DeepLinearSpec):
    """(rhs(y, C, [q]), loss(y, C, [q])) of :func:`matrix_system` as NumPy functions."""
    system = matrix_system(spec)
    return system["rhs"], system["loss"]


def mode_decay_rate(weight_decay: float) -> float:
    """The rate r of a mode's derived decay term -r u (``derivation.mode_decay``: -2 lambda u, both factors of
    u = a b decay), read off the derivation rather than typed."""
    u = derivation.mode_system().u
    return -float(sp.diff(derivation.mode_decay(), u).subs(derivation.LAMBDA_WD, weight_decay))


def initial_modes(spec: DeepLinearSpec, problem: task.Problem) -> np.ndarray:
    """u_i(0) of the draw; modes without a hidden unit (i >= hidden) start, and stay, at exactly 0."""
    u0 = task.mode_strengths(problem, problem.W2 @ problem.W1)
    u0[spec.hidden:] = 0.0
    return u0


def predict(spec: DeepLinearSpec, t_eval: np.ndarray | None = None, rtol: float = 1e-10,
            atol: float | None = None) -> Trajectory:
    """The loss curve and the mode strengths ``u`` (T x r) of the population flow (module docstring)."""
    problem = task.draw(spec)
    s, T = problem.s, spec.final_time
    if spec.init == "aligned":
        system = mode_system(spec.modes)           # both flows run in compiled code (integrate.DerivedFlow)
        loss_of = system["loss"]
        sol = integrate(DerivedFlow.of(system, "rhs", s, decay=mode_decay_rate(spec.weight_decay)),
                        initial_modes(spec, problem), T, method="compiled",
                        t_eval=t_eval, rtol=rtol, atol=atol)
        u, loss = sol.y, loss_of(sol.y.T, s)[0]
        kind, system = "theory-modes", "mode flow (DL-6)"
    else:
        system = matrix_system(spec)
        loss_of = system["loss"]
        C, q = problem.sigma_yx.ravel(), np.array([0.5 * np.sum(s ** 2)])
        y0 = np.concatenate([problem.W1.ravel(), problem.W2.ravel()])
        sol = integrate(DerivedFlow.of(system, "rhs", C, q, decay=spec.weight_decay), y0, T, method="compiled",
                        t_eval=t_eval, rtol=rtol, atol=atol)          # weight decay: -lambda W (WD-2)
        h, n_in = problem.W1.shape
        W1 = sol.y[:, :h * n_in].reshape(-1, h, n_in)
        W2 = sol.y[:, h * n_in:].reshape(-1, spec.out_dim, h)
        u, loss = task.mode_strengths(problem, W2 @ W1), loss_of(sol.y.T, C, q)[0]
        kind, system = "theory-population", "full-matrix population flow (DL-5)"
    meta = provenance("deep-linear", spec, kind, compiler.derivation_hash(derivation), system=system,
                      rhs_evaluations=sol.nfev, loss="(1/2) E|y - W2 W1 x|^2 (DL-2)", time="gradient-flow time t")
    return Trajectory(t=sol.t, loss=loss + noise_floor(spec), observables={"u": u}, meta=meta)


def closed_form(spec: DeepLinearSpec, t: np.ndarray | None = None) -> Trajectory:
    """The sigmoid (DL-7) per mode from the draw's u_i(0), and the loss (DL-3) on it; half-learning times
    (DL-8) in the events. Exact for the balanced aligned start; a mode with u_i(0) = 0 stays at 0."""
    problem = task.draw(spec)
    s, u0 = problem.s - spec.weight_decay, initial_modes(spec, problem)     # decay: s -> s - lambda (WD-2)
    t = np.linspace(0.0, spec.final_time, 2001) if t is None else np.asarray(t, dtype=float)
    learnt = (u0 > 0) & (s > 0)
    u = np.zeros((t.size, s.size))
    ratio = s[learnt] / u0[learnt] - 1.0
    u[:, learnt] = s[learnt] / (1.0 + ratio * np.exp(-2.0 * s[learnt] * t[:, None]))
    halves = np.full(s.size, np.nan)
    halves[learnt] = np.log(ratio) / (2.0 * s[learnt])
    meta = provenance("deep-linear", spec, "closed-form", compiler.derivation_hash(derivation),
                      u0=u0.tolist(), half_times_formula=halves.tolist())
    return Trajectory(t=t, loss=0.5 * np.sum((problem.s - u) ** 2, axis=1) + noise_floor(spec), observables={"u": u},
                      events={f"half_time_{i + 1}": float(x) for i, x in enumerate(halves)}, meta=meta)


def comparison_theories(spec: DeepLinearSpec) -> dict[str, Trajectory]:
    """The main curve, and for the aligned start the closed form (DL-7) beside it."""
    curves = {"theory": predict(spec)}
    if spec.init == "aligned":
        curves["closed form (DL-7)"] = closed_form(spec)
    return curves


def levels(spec: DeepLinearSpec, theory: Trajectory) -> dict[str, float]:
    """The floor (DL-2) a network with ``hidden`` units reaches: the modes it has no unit for, and noise."""
    s = np.asarray(spec.singular_values)        # largest first (the spec checks it)
    kept = np.minimum(s[:spec.hidden], spec.weight_decay)      # a learnt mode rests at s - lambda (WD-2), else 0
    return {"floor": float(0.5 * np.sum(kept ** 2) + 0.5 * np.sum(s[spec.hidden:] ** 2) + noise_floor(spec))}


def flow_probe(spec: DeepLinearSpec):
    """(rhs(y), loss(y), y0) of the full-matrix flow (DL-5), a Euclidean gradient flow, for the common check
    rhs = -grad loss (the mode flow (DL-6) is a gradient flow only in the metric 1/(2u))."""
    problem = task.draw(spec)
    rhs, loss_of = matrix_functions(spec)
    C, q = problem.sigma_yx.ravel(), np.array([0.5 * np.sum(problem.s ** 2)])
    y0 = np.concatenate([problem.W1.ravel(), problem.W2.ravel()])
    lam = spec.weight_decay
    return (lambda y: rhs(y, C, q) - lam * y), (lambda y: float(loss_of(y, C, q)[0]) + 0.5 * lam * float(y @ y)), y0
