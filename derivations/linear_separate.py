"""Reduced gradient flow of separate key-query linear attention (ATTN_S), derived with SymPy.

Theory note: ``shared/theory/linear_attention.md`` §3, §5, §7. The loss as a function of B is the one of
ATTN_M (``reduced_dynamics.derivations.linear_merged.loss_in_b``: population (LA-19) or the §5 sample form); only the map
from the head weights to B changes: B_head = v (K^x)^T Q^x (LA-11), with K^x, Q^x of shape R x D.
Every right-hand side is minus a symbolic gradient (§5.1); nothing is typed in by hand.

Two routes to the right-hand side (LA-29):

* ``full_system(D, H, R)``: substitute B = sum_i v_i (K_i^x)^T Q_i^x into the loss and differentiate with
  respect to all H (2RD + 1) state symbols (small sizes; tests).
* ``block_system(D, R, moments)``: G(B) = -dL/dB (LA-18), its Hessian, and for one generic head the
  derivatives of B_head(v, K, Q); dtheta_i/dt = (dB_head/dtheta_i)^T G(B) (expanded for each size; tests).
* ``index_system(D, R, moments)``: the same pieces in index form (generic term v k q, instantiated per
  (a, b, r)); the route the runtime uses.

Also here: the aligned balanced scalar law (LA-31) derived from the one-component loss, its closed-form
escape time (LA-32) with the leading-order estimate (LA-33), the saddle ladder (LA-30), the fixed point of
any learned subset of eigen-directions (§7.2) and the in-context PCR coefficients (LA-34).
"""
from __future__ import annotations

import numpy as np
import sympy as sp

from .linear_merged import (C_SYM, N_SYM, block_pieces, eigenvalue_symbols, index_pieces, loss_in_b,
                                       second_moment_diagonal)

__all__ = ["C_SYM", "N_SYM", "block_system", "index_system", "full_system", "full_loss", "scalar_law", "escape_antiderivative",
           "escape_time", "leading_order_escape_time", "half_point", "ladder", "ladder_step", "subset_fixed_point",
           "pcr_coefficients"]


def head_symbols(D: int, R: int, prefix: str = ""):
    """State of one head on the invariant manifold (LA-35): v, K^x (R x D), Q^x (R x D)."""
    v = sp.Symbol(f"{prefix}v")
    K = sp.Matrix(R, D, lambda r, a: sp.Symbol(f"{prefix}K_{r}_{a}"))
    Q = sp.Matrix(R, D, lambda r, a: sp.Symbol(f"{prefix}Q_{r}_{a}"))
    return v, K, Q


def head_state(v, K, Q) -> list:
    """Ordering of one head's state: (v, K row-major, Q row-major)."""
    return [v, *list(K), *list(Q)]


def head_b(v, K: sp.Matrix, Q: sp.Matrix) -> sp.Matrix:
    """One head's contribution to B = sum_i v_i (K_i^x)^T Q_i^x (LA-11)."""
    return v * K.T * Q


def block_system(D: int, R: int, moments: str = "population") -> dict:
    """Symbolic pieces for the block route (module docstring), same names and shapes as
    ``reduced_dynamics.derivations.linear_merged.block_system`` with theta = (v, K row-major, Q row-major), 1 + 2RD numbers:
      loss (B, params), G (B, params) (LA-18), hessian (params,), head_b (theta,), head_jac (theta,),
      head_rhs (theta, G) = one head's share of (LA-29), head_curv (theta, G).
    """
    v, K, Q = head_symbols(D, R)
    return block_pieces(D, moments, head_state(v, K, Q), list(head_b(v, K, Q)))


def index_system(D: int, R: int, moments: str = "population") -> dict:
    """The attn-s system in index form (``reduced_dynamics.derivations.linear_merged.index_pieces``): generic term v k q (the
    D = R = 1 head map, LA-11), one instance per (a, b, r), B_ab += v K_ra Q_rb, with slots v -> 0,
    k -> 1 + r D + a, q -> 1 + R D + r D + b (theta = (v, K row-major, Q row-major))."""
    v, K, Q = head_symbols(1, 1)
    a, b, r = (x.ravel() for x in np.meshgrid(np.arange(D), np.arange(D), np.arange(R), indexing="ij"))
    instances = np.column_stack([np.zeros(a.size, dtype=np.int64), 1 + r * D + a, 1 + R * D + r * D + b, a * D + b])
    return index_pieces(D, moments, head_state(v, K, Q), head_b(v, K, Q)[0, 0], instances, 1 + 2 * R * D)


def full_state(D: int, H: int, R: int):
    heads = [head_symbols(D, R, prefix=f"h{i}_") for i in range(H)]
    state = [x for v, K, Q in heads for x in head_state(v, K, Q)]
    return heads, state


def full_loss(D: int, H: int, R: int, moments: str = "population"):
    """Reduced loss of the H-head model: the loss in B with B = sum_i v_i (K_i^x)^T Q_i^x."""
    loss_b, B, params = loss_in_b(D, moments)
    heads, state = full_state(D, H, R)
    Bsum = sum((head_b(*h) for h in heads), sp.zeros(D, D))
    loss = loss_b.xreplace({B[a, b]: Bsum[a, b] for a in range(D) for b in range(D)})
    return loss, state, params


def full_system(D: int, H: int, R: int, moments: str = "population", jacobian: bool = False) -> dict:
    """The full route: (LA-29) as minus the gradient of ``full_loss`` over every state symbol."""
    loss, state, params = full_loss(D, H, R, moments)
    rhs = [-sp.diff(loss, x) for x in state]
    out = {"loss": ([state, params], [loss]), "rhs": ([state, params], rhs)}
    if jacobian:
        out["jacobian"] = ([state, params], sp.Matrix(rhs).jacobian(state))
    return out


# ---------------------------------------------------------------------------------------------------------
# Aligned balanced scalar law (LA-31) and escape times (LA-32, LA-33)

T_SYM, A0_SYM, X_SYM = sp.symbols("t a0 x", positive=True)
LAM_SYM, S_SYM = sp.symbols("lam s", positive=True)


def component_loss(beta, lam=LAM_SYM, s=S_SYM, c=C_SYM) -> sp.Expr:
    """The terms of (LA-19) that involve one aligned component B = beta e_d e_d^T (eigenvalue lam, second
    moment s = s_d of (LA-16)): -2c lam^2 beta + c^2 s lam beta^2."""
    return -2 * c * lam ** 2 * beta + c ** 2 * s * lam * beta ** 2


def scalar_law():
    """(LA-31) derived: the one-head, one-component flow dtheta/dt = -dL/dtheta for theta = (v, kappa, rho),
    B_dd = v kappa rho, evaluated on the balanced set v = kappa = rho = a (invariant because the three
    derivatives coincide there). Returns (da/dt as an expression in a, the three derivatives, a)."""
    v, k, r, a = sp.symbols("v kappa rho a", real=True)
    L = component_loss(v * k * r)
    flows = [-sp.diff(L, x) for x in (v, k, r)]
    balanced = [sp.expand(f.subs({v: a, k: a, r: a})) for f in flows]
    return balanced[0], balanced, a


def beta_star(lam=LAM_SYM, s=S_SYM, c=C_SYM) -> sp.Expr:
    """The component's optimum beta* = lam / (c s) (LA-20), from d component_loss / d beta = 0."""
    beta = sp.Symbol("beta")
    return sp.solve(sp.diff(component_loss(beta, lam, s, c), beta), beta)[0]


def escape_antiderivative(x=X_SYM) -> sp.Expr:
    """F(x) of (LA-32), an antiderivative of 1 / (x^2 (1 - x^3)) on 0 < x < 1 (tests check F' symbolically)."""
    return -1 / x + sp.Rational(1, 3) * (-sp.log(1 - x) + sp.log(x ** 2 + x + 1) / 2
                                          - sp.sqrt(3) * sp.atan((2 * x + 1) / sp.sqrt(3)))


def rate(lam=LAM_SYM, s=S_SYM, c=C_SYM) -> sp.Expr:
    """r = 2 c lam^2 (beta*)^(1/3) of (LA-32)."""
    return 2 * c * lam ** 2 * beta_star(lam, s, c) ** sp.Rational(1, 3)


def half_point() -> sp.Expr:
    """x_h = (1 - 1/sqrt 2)^(1/3): the component's loss decrement cl^2 beta*(2y - y^2), y = x^3, is half done."""
    y = sp.Symbol("y", positive=True)
    roots = sp.solve(sp.Eq(2 * y - y ** 2, sp.Rational(1, 2)), y)
    return min(roots, key=lambda e: float(e)) ** sp.Rational(1, 3)


def escape_time(x=None, a0=A0_SYM, lam=LAM_SYM, s=S_SYM, c=C_SYM) -> sp.Expr:
    """(LA-32): t(x) = [F(x) - F(x0)] / r with x0 = a0 / (beta*)^(1/3); default x = x_h (the midpoint)."""
    x = half_point() if x is None else x
    F = escape_antiderivative()
    x0 = a0 / beta_star(lam, s, c) ** sp.Rational(1, 3)
    return (F.subs(X_SYM, x) - F.subs(X_SYM, x0)) / rate(lam, s, c)


def leading_order_escape_time(a0=A0_SYM, lam=LAM_SYM, s=S_SYM, c=C_SYM) -> sp.Expr:
    """(LA-33): t_d ~ 1/(2c lam^2 a0) + (F(x_h) + sqrt3 pi / 18)/r, the first term of (LA-32) for small
    a0 (F(x0) = -1/x0 - sqrt3 pi/18 + O(x0)). The constant -(F(x_h) + sqrt3 pi/18) is the note's 1.254."""
    F = escape_antiderivative()
    return 1 / (2 * c * lam ** 2 * a0) + (F.subs(X_SYM, half_point()) + sp.sqrt(3) * sp.pi / 18) / rate(lam, s, c)


# ---------------------------------------------------------------------------------------------------------
# Fixed points of learned subsets (§7.2), the ladder (LA-30), PCR (LA-34)

def subset_fixed_point(D: int, subset) -> tuple[sp.Matrix, sp.Expr, tuple]:
    """Minimiser of the population loss (LA-19) over B supported on {e_d e_d^T : d in subset} and its loss,
    solved by SymPy. Returns (B, L, lam). At B every (LA-29) head right-hand side vanishes when each learned
    direction is carried by aligned heads (tests check this on the compiled flow)."""
    loss, B, params = loss_in_b(D, "population")
    lam = tuple(params[:D])
    free = [B[d, d] for d in subset]
    restricted = loss.xreplace({x: 0 for x in B if x not in free})
    solution = sp.solve([sp.diff(restricted, x) for x in free], free, dict=True)[0] if free else {}
    Bfix = B.xreplace({**solution, **{x: 0 for x in B if x not in free}})
    return Bfix, sp.simplify(restricted.xreplace(solution)), lam


def ladder(lam, N=N_SYM) -> list[sp.Expr]:
    """(LA-30): L(M_m) = tau - sum_{d<=m} lam_d / (1 + (1 + tau/lam_d)/N), m = 0..D, lam decreasing."""
    tau = sum(lam)
    out, acc = [tau], tau
    for l in lam:
        acc = acc - ladder_step(l, tau, N)
        out.append(acc)
    return out


LADDER_LAM, LADDER_TAU = sp.symbols("lam_d tau", positive=True)


def ladder_step(lam_d=LADDER_LAM, tau=LADDER_TAU, N=N_SYM) -> sp.Expr:
    """Delta_d = lam_d / (1 + (1 + tau/lam_d)/N) (LA-21, LA-30): the loss that learning direction d removes.
    In index form (generic lam_d, tau) it is compiled once for every D; the ladder is tau minus its partial sums."""
    return lam_d / (1 + (1 + tau / lam_d) / N)


def pcr_coefficients(lam, N=N_SYM, c=C_SYM) -> list[sp.Expr]:
    """(LA-34): c B*_dd = 1 / (((N+1)/N) lam_d + tau/N), so yhat = sum_{d<=m} (e_d^T x_q)(e_d^T h) c B*_dd."""
    s = second_moment_diagonal(lam, N)
    return [c * l / (c * sd) for l, sd in zip(lam, s)]


def population_loss_symbols(D: int):
    """(eigenvalue symbols, N, c) in the argument order of the population ``params``."""
    return eigenvalue_symbols(D), N_SYM, C_SYM
