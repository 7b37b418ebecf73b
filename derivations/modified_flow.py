"""The first-order modified flow of gradient descent for the linear-attention block route, derived with SymPy.

Docs: ``docs/theory/finite_learning_rate.md``. Gradient descent theta <- theta - eta grad L follows, to
O(eta^2) over a fixed time, the gradient flow of L~ = L + (eta/4) |grad L|^2 (LR-4), whose right-hand side is

    -grad L~ = -grad L - (eta/2) Hess_theta L . grad L                                          (LR-5)

For the linear-attention families L(theta) = L_B(B(theta)), B = sum_i B_head(theta_i), with L_B quadratic in B
(LA-19 or the §5 sample form, Hessian ``hessian``) and B_head polynomial (LA-11). With G = -dL_B/dB and
g = grad_theta L = -J^T G, the Hessian-vector product splits by the chain rule into per-head polynomials:

    (Hess_theta L . u)_i = J_i^T hessian (sum_j J_j u_j) - sum_ab G_ab (d^2 B_ab / dtheta_i^2) u_i       (LR-6)

This module derives, for one generic head, the two polynomial pieces that (LR-6) needs beyond the flow's
own ``block_system``: the directional derivative ``head_jvp(theta, u) = J u`` and the curvature contraction
``head_curv_vec(theta, G, u) = d/dtheta [(dB_head/dtheta)^T G] . u``. Everything is obtained by
differentiating the head map; nothing is typed in by hand. ``full_modified_system`` is the check route:
L~ written out for all heads at tiny sizes and differentiated directly.
"""
from __future__ import annotations

import sympy as sp

from . import linear_merged, linear_separate

ETA_SYM = sp.Symbol("eta", positive=True)


def head_map(family: str, D: int, R: int = 1):
    """(theta symbols, vec B_head expressions) of one head: attn-m B = v U, attn-s B = v (K^x)^T Q^x (LA-11)."""
    if family == "attn-m":
        v, U = linear_merged.head_symbols(D)
        return [v, *list(U)], list(linear_merged.head_b(v, U))
    if family == "attn-s":
        v, K, Q = linear_separate.head_symbols(D, R)
        return linear_separate.head_state(v, K, Q), list(linear_separate.head_b(v, K, Q))
    raise ValueError(f"family: expected 'attn-m' or 'attn-s', got {family!r}")


def hvp_pieces(family: str, D: int, R: int = 1) -> dict:
    """Per-head polynomials of (LR-6), in the argument groups ``reduced_dynamics.compile`` takes:
      head_jvp      (theta, u)     -> sum_j dB_head/dtheta_j u_j          (D^2)
      head_curv_vec (theta, G, u)  -> sum_ab G_ab (d^2 B_ab/dtheta^2) u     (n)
    """
    theta, Bh = head_map(family, D, R)
    n = len(theta)
    u = list(sp.symbols(f"u0:{n}"))
    Gs = list(sp.symbols(f"G0:{D * D}"))
    jvp = [sum(sp.diff(e, th) * uj for th, uj in zip(theta, u)) for e in Bh]
    contracted = sum(G * e for G, e in zip(Gs, Bh))
    pull = [sp.diff(contracted, th) for th in theta]
    curv_vec = [sp.expand(sum(sp.diff(p, th) * uj for th, uj in zip(theta, u))) for p in pull]
    return {"head_jvp": ([theta, u], jvp), "head_curv_vec": ([theta, Gs, u], curv_vec)}


def full_modified_system(family: str, D: int, H: int, R: int = 1, moments: str = "population") -> dict:
    """The check route at tiny sizes: L~ = L + (eta/4) |grad L|^2 (LR-4) of the whole H-head reduced loss,
    and its negative gradient (LR-5), by direct differentiation (state: heads one after another)."""
    if family == "attn-m":
        loss, state, params = linear_merged.full_loss(D, H, moments)
    else:
        loss, state, params = linear_separate.full_loss(D, H, R, moments)
    grad = [sp.diff(loss, x) for x in state]
    modified = loss + ETA_SYM / 4 * sum(g ** 2 for g in grad)
    rhs = [-sp.diff(modified, x) for x in state]
    return {"modified_loss": ([state, params, [ETA_SYM]], [modified]),
            "modified_rhs": ([state, params, [ETA_SYM]], rhs)}
