"""Gradient descent at a finite learning rate for attn-m and attn-s: the reduced GD map, the modified flow and
the largest stable rate (docs/theory/finite_learning_rate.md).

* ``gd_map``: theta_{k+1} = theta_k + eta rhs(theta_k) (LR-3). On the invariant manifold, in the orthonormal
  coordinates (v_i, U_i) or (v_i, K_i^x, Q_i^x) (rotated by the orthogonal eigenbasis), this IS full-batch
  gradient descent of the full model restricted to the manifold (LR-1; metric I, LR-2), step by step.
* ``ModifiedFlow``: the gradient flow of L~ = L + (eta/4) |grad L|^2 (LR-4), right-hand side (LR-5) with the
  Hessian-vector product assembled per head from the SymPy-derived polynomials of
  ``reduced_dynamics.derivations.modified_flow`` (LR-6); O(eta^2) from GD over a fixed time (LR-7).
* ``stable_lr``: eta_max = 2 / lambda_max(Hess_theta L) at the minimum the flow converges to and along the
  way (LR-8).
"""
from __future__ import annotations

import numpy as np

from reduced_dynamics.derivations import modified_flow as derivation

from ... import compile as compiler
from ...errors import DivergenceError
from ...integrate import Solution, integrate
from ...integrate.common import output_times
from .flow import ReducedFlow


class ModifiedFlow:
    """Right-hand side (LR-5) of the modified flow for a ``ReducedFlow`` at step ``eta``."""

    def __init__(self, flow: ReducedFlow, eta: float, family: str, rank: int = 1, cache_dir=None):
        self.flow, self.eta = flow, float(eta)
        system = compiler.compile_system(derivation, "hvp_pieces", {"family": family, "D": flow.dim, "R": rank},
                                         cache_dir)
        self._jvp, self._curv_vec = system["head_jvp"], system["head_curv_vec"]
        self.derivation_hash = system.derivation_hash

    def hvp(self, y: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Hess_theta L . u (LR-6) at the state y, for a direction u of the same shape."""
        f = self.flow
        th, ut = f.theta(y), f.theta(u)
        Ju = self._jvp(th, ut).sum(axis=1)                         # sum_j J_j u_j, (D^2,)
        w = f.hess_times(Ju)                                       # Hess vec(J u): diagonal or dense
        G = np.repeat(f.G(y)[:, None], f.heads, axis=1)
        out = (f._head_rhs(th, np.repeat(w[:, None], f.heads, axis=1)) - self._curv_vec(th, G, ut)).reshape(-1)
        return out + f.decay * np.asarray(u) if f.decay else out  # Hess of L + (lambda/2)|theta|^2 (WD-3)

    def rhs(self, t: float, y: np.ndarray) -> np.ndarray:
        """-grad L - (eta/2) Hess L grad L (LR-5), with grad L = -rhs of the flow; with weight decay L is the
        regularised loss L + (lambda/2)|theta|^2 throughout (WD-3)."""
        f = self.flow.rhs(t, y)
        return f + 0.5 * self.eta * self.hvp(y, f)

    def modified_loss(self, y: np.ndarray) -> float:
        """L~ = L + (eta/4) |grad L|^2 (LR-4), L regularised with weight decay (WD-3)."""
        f = self.flow.rhs(0.0, y)
        penalty = 0.5 * self.flow.decay * float(np.dot(y, y))
        return float(self.flow.loss(y)) + penalty + 0.25 * self.eta * float(f @ f)


def gd_map(flow: ReducedFlow, y0: np.ndarray, eta: float, steps: int, blowup: float = 1e8) -> Solution:
    """The reduced GD map (LR-3) for ``steps`` steps; states at t = eta k, k = 0..steps. A state that leaves
    every sensible range (non-finite, or an entry beyond ``blowup``) is a ``DivergenceError`` naming the step."""
    ys = np.empty((steps + 1, y0.size))
    y = np.array(y0, dtype=float)
    for k in range(steps + 1):
        ys[k] = y
        if k < steps:
            with np.errstate(over="ignore", invalid="ignore"):
                y = y + eta * flow.rhs(0.0, y)
            if not (np.all(np.isfinite(y)) and np.max(np.abs(y)) < blowup):
                raise DivergenceError("reduced GD map", k + 1, float(np.max(np.abs(y))),
                                      f"the map at lr {eta:g} leaves every sensible range: lower --lr")
    return Solution(t=eta * np.arange(steps + 1), y=ys, nfev=steps)


def solve(flow: ReducedFlow, y0: np.ndarray, spec, family: str, t_eval=None, rank: int = 1) -> Solution:
    """The theory curve at the spec's ``discretisation``: ``flow`` (the flow's own solve), ``map`` (LR-3 at
    spec.lr for spec.gd_steps steps) or ``modified`` (LR-5 at spec.lr, DOP853 through ``integrate``)."""
    if spec.discretisation == "map":
        return gd_map(flow, y0, spec.lr, spec.gd_steps)
    if spec.discretisation == "modified":
        mod = ModifiedFlow(flow, spec.lr, family, rank)
        t_eval = output_times(spec.final_time) if t_eval is None else t_eval
        return integrate(mod.rhs, y0, spec.final_time, method="DOP853", t_eval=t_eval)
    return flow.solve(y0, spec.final_time, method=spec.integrator, t_eval=t_eval)


def hessian(flow: ReducedFlow, y: np.ndarray) -> np.ndarray:
    """Hess_theta L at y: minus the flow's derived Jacobian (symmetric)."""
    H = -flow.jacobian(0.0, y)
    return 0.5 * (H + H.T)


def sharpness(flow: ReducedFlow, ys: np.ndarray) -> np.ndarray:
    """lambda_max of Hess_theta L at each state (rows of ys)."""
    return np.array([np.linalg.eigvalsh(hessian(flow, y))[-1] for y in np.atleast_2d(ys)])


def stable_lr(flow: ReducedFlow, y0: np.ndarray, t_max: float, points: int = 200) -> dict:
    """eta_max = 2 / lambda_max (LR-8) at the end of the flow from y0 (the minimum the run converges to, when
    t_max is long enough) and along the way: ``at_minimum``, ``along_path`` (2 / the largest sharpness met),
    ``eta_max`` (the smaller), the time of the sharpest point and the final loss."""
    sol = flow.solve(y0, t_max, t_eval=np.linspace(0.0, t_max, points))
    lam = sharpness(flow, sol.y)
    return {"at_minimum": 2.0 / lam[-1], "along_path": 2.0 / lam.max(), "eta_max": 2.0 / lam.max(),
            "sharpest_time": float(sol.t[int(np.argmax(lam))]), "lambda_final": float(lam[-1]),
            "final_loss": float(flow.loss(sol.y[-1])), "state": sol.y[-1]}
