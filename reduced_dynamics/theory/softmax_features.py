"""Theory side of the softmax-feature family: reduced gradient flows of the K x K weight matrix M (note §5-§9).

* :func:`large_n_flow` integrates (SF-21), compiled from the SymPy derivation (minus the gradient of SF-20).
* :func:`exact_flow` integrates the exact finite-N flow dM[:,k]/dt = -p_k grad L_k (SF-13, SF-31) with the
  count enumeration (SF-19a), which is what gradient descent on the full model follows (SF-10, SF-13).
* :func:`symmetric_exact_flow` integrates the same flow restricted to the symmetric subspace with the 1-D sum
  (SF-19b), cheap for any N.

All flows start from M(0) = 0 unless told otherwise (SF-10) and return the states on a time grid.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy as sp
from scipy.integrate import solve_ivp

from derivations import softmax_features as derivation
from ..specs import SpecError
from ..tasks.softmax_features import check_probabilities
from .softmax_exact import CountEnumeration, symmetric_column


@dataclass
class FlowResult:
    """States of a reduced flow: ``t`` (T), ``M`` (T x K x K), per-feature loss ``loss_k`` (T x K)."""

    t: np.ndarray
    M: np.ndarray
    loss_k: np.ndarray


@lru_cache(maxsize=None)
def large_n_functions(n_features: int):
    """NumPy callables (rhs, column losses) of the derived large-N system (SF-20, SF-21) for K features.

    ``rhs(M_flat, p) -> dM_flat/dt`` (row-major K x K) and ``losses(M_flat, p) -> (L_1^inf .. L_K^inf)``.
    """
    system = derivation.large_n_system(n_features)
    args = [system.state, list(system.p)]
    rhs = sp.lambdify(args, system.rhs_vector, modules="numpy", cse=True)
    losses = sp.lambdify(args, list(system.column_losses), modules="numpy", cse=True)
    return rhs, losses


def _integrate(rhs, y0: np.ndarray, t_eval: np.ndarray, rtol: float, atol: float, what: str) -> np.ndarray:
    t_eval = np.asarray(t_eval, dtype=float)
    if t_eval.ndim != 1 or t_eval.size < 1 or np.any(np.diff(t_eval) <= 0) or t_eval[0] < 0:
        raise SpecError("t_eval", "an increasing 1-d array of times >= 0", t_eval.shape)
    sol = solve_ivp(lambda t, y: rhs(y), (0.0, float(t_eval[-1])), y0, t_eval=t_eval, method="DOP853",
                    rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"{what}: integration stopped at t = {sol.t[-1] if sol.t.size else 0.0}: {sol.message}")
    if not np.all(np.isfinite(sol.y)):
        raise FloatingPointError(f"{what}: non-finite state")
    return sol.y.T


def large_n_flow(probabilities, t_eval, M0=None, rtol: float = 1e-10, atol: float = 1e-12) -> FlowResult:
    """Integrate the large-N flow (SF-21) from M0 (default 0) and evaluate L_k^inf (SF-20) on the grid."""
    p = check_probabilities(probabilities)
    K = p.size
    rhs, losses = large_n_functions(K)
    y0 = np.zeros(K * K) if M0 is None else np.asarray(M0, float).reshape(K * K)
    ys = _integrate(lambda y: np.asarray(rhs(y, p), float), y0, t_eval, rtol, atol, "large-N softmax flow")
    loss_k = np.array([np.asarray(losses(y, p), float) for y in ys])
    return FlowResult(np.asarray(t_eval, float), ys.reshape(-1, K, K), loss_k)


def exact_flow(probabilities, context: int, t_eval, M0=None, include_query_token: bool = False,
               rtol: float = 1e-8, atol: float = 1e-10) -> FlowResult:
    """Integrate the exact finite-N flow dM[:,k]/dt = -p_k grad L_k(M[:,k]) (SF-13, SF-31) by enumeration (SF-19a)."""
    p = check_probabilities(probabilities)
    K = p.size
    enum = CountEnumeration(p, context, include_query_token)
    y0 = np.zeros(K * K) if M0 is None else np.asarray(M0, float).reshape(K * K)
    ys = _integrate(lambda y: enum.flow_rhs(y.reshape(K, K)).ravel(), y0, t_eval, rtol, atol,
                    f"exact-N softmax flow (N = {context})")
    Ms = ys.reshape(-1, K, K)
    loss_k = np.array([enum.losses(M) for M in Ms])
    return FlowResult(np.asarray(t_eval, float), Ms, loss_k)


def symmetric_exact_flow(q: float, n_features: int, context: int, t_eval, include_query_token: bool = False,
                         rtol: float = 1e-10, atol: float = 1e-12) -> tuple[np.ndarray, np.ndarray]:
    """Exact finite-N flow of A_k on the symmetric subspace, B_k = -A_k/(K-1) (SF-15, SF-19b).

    dA/dt = -q dL_k/dm_k, the diagonal entry of (SF-13). Returns (A(t), L_k(t)).
    """
    K = int(n_features)

    def rhs(y):
        _, gA, _ = symmetric_column(y[0], -y[0] / (K - 1), q, K, context, include_query_token)
        return np.array([-q * gA])

    A = _integrate(rhs, np.zeros(1), t_eval, rtol, atol, f"symmetric softmax flow (N = {context})")[:, 0]
    L = symmetric_column(A, -A / (K - 1), q, K, context, include_query_token)[0]
    return A, L
