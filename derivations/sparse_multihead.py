"""Symbolic pieces of the sparse family (theory note ``sparse_multihead.md``). SymPy only; pure functions.

1. One-step GD risk (SM-24), derived from the moments of r (SM-4) rather than typed: with w_1 = eta r,
   E||eta r - w*||^2 = eta^2 (||E r||^2 + tr Cov r) - 2 eta <w*, E r> + ||w*||^2; its optimal step and risk
   come from solving d/d eta = 0.
2. The restricted-family training flow of §8 (OUR proposal, not the paper's): loss in (a, b, c, g) with
   u = a^2 b^2 c g (SM-38), right-hand side = MINUS THE SYMBOLIC GRADIENT of that loss, its conserved
   quantities a^2 - b^2, c^2 - g^2, a^2 - 2 c^2, and the balanced reduction to one scalar ODE in p (SM-39).
"""
from __future__ import annotations

import sympy as sp

# ---------------------------------------------------------------------------------------------------------
# 1. one-step GD risk (SM-24)

eta = sp.Symbol("eta", real=True)
wsq = sp.Symbol("W", positive=True)          # ||w*||^2 (or its prior mean s)
sigma = sp.Symbol("sigma", nonnegative=True)
d_sym, n_sym = sp.symbols("d n", positive=True)


def r_trace_covariance() -> sp.Expr:
    """tr Cov[r | w*] = tr( ((||w*||^2 + sigma^2) I_d + w* w*^T) / n ) from (SM-4)."""
    return (d_sym * (wsq + sigma ** 2) + wsq) / n_sym


def one_step_risk() -> sp.Expr:
    """E||eta r - w*||^2 from E r = w*, E||r||^2 = ||w*||^2 + tr Cov r  (SM-4 -> SM-24)."""
    mean_sq_r = wsq + r_trace_covariance()
    return sp.expand(eta ** 2 * mean_sq_r - 2 * eta * wsq + wsq)


def one_step_optimum() -> tuple[sp.Expr, sp.Expr]:
    """(eta*, risk at eta*) by solving d risk / d eta = 0 (SM-24)."""
    risk = one_step_risk()
    (eta_star,) = sp.solve(sp.diff(risk, eta), eta)
    return sp.simplify(eta_star), sp.simplify(risk.subs(eta, eta_star))


# ---------------------------------------------------------------------------------------------------------
# 2. restricted-family flow (SM-38, SM-39; ours)

a, b, c, g = sp.symbols("a b c g", real=True)
STATE = (a, b, c, g)
m3, m6 = sp.symbols("m3 m6", positive=True)  # m3 = E sum_j w*_j r_j^3, m6 = E sum_j r_j^6
u_sym = sp.Symbol("u", real=True)
p = sp.Symbol("p", positive=True)


def gain(state=STATE) -> sp.Expr:
    """u = a^2 b^2 c g: the one-step PtO scale w = u r^3 realised by the gains (§8)."""
    a_, b_, c_, g_ = state
    return a_ ** 2 * b_ ** 2 * c_ * g_


def loss_in_u() -> sp.Expr:
    """L(u) = 1/2 (u^2 m6 - 2 u m3 + E||w*||^2 + sigma^2)  (SM-38)."""
    return sp.Rational(1, 2) * (u_sym ** 2 * m6 - 2 * u_sym * m3 + wsq + sigma ** 2)


def restricted_loss() -> sp.Expr:
    """SM-38 as a function of (a, b, c, g)."""
    return loss_in_u().subs(u_sym, gain())


def restricted_rhs() -> tuple[sp.Expr, ...]:
    """Gradient flow: d(a, b, c, g)/dt = -grad of the restricted loss (derived, never typed)."""
    loss = restricted_loss()
    return tuple(-sp.diff(loss, x) for x in STATE)


def conserved_quantities() -> tuple[sp.Expr, ...]:
    """a^2 - b^2, c^2 - g^2, a^2 - 2 c^2 (§8)."""
    return (a ** 2 - b ** 2, c ** 2 - g ** 2, a ** 2 - 2 * c ** 2)


def time_derivative(expr: sp.Expr) -> sp.Expr:
    """d expr / dt along the restricted flow (chain rule with the derived RHS), simplified."""
    return sp.simplify(sum(sp.diff(expr, x) * f for x, f in zip(STATE, restricted_rhs())))


def balanced_point() -> dict:
    """The balanced manifold a^2 = b^2 = 2p, c^2 = g^2 = p (positive branch), so u = 4 p^3."""
    return {a: sp.sqrt(2 * p), b: sp.sqrt(2 * p), c: sp.sqrt(p), g: sp.sqrt(p)}


def balanced_scalar_rhs() -> sp.Expr:
    """dp/dt on the balanced manifold, derived as d(c^2)/dt of the 4-parameter flow (SM-39)."""
    return sp.simplify(time_derivative(c ** 2).subs(balanced_point()))


def scalar_rhs_from_u() -> sp.Expr:
    """-2 u L'(u) at u = 4 p^3: the form in which SM-39 is stated, for comparison with balanced_scalar_rhs."""
    return sp.expand((-2 * u_sym * sp.diff(loss_in_u(), u_sym)).subs(u_sym, 4 * p ** 3))


def fixed_point_gain() -> sp.Expr:
    """u* solving L'(u) = 0: m3/m6, the best one-step PtO scale (SM-39)."""
    (u_star,) = sp.solve(sp.diff(loss_in_u(), u_sym), u_sym)
    return u_star


def plateau_length(p0: sp.Expr = sp.Symbol("p0", positive=True)) -> sp.Expr:
    """Escape time estimate from small p0: linearised dp/dt ~ 8 m3 p^3 gives t ~ 1/(16 m3 p0^2) (SM-39)."""
    leading = sp.limit(balanced_scalar_rhs() / p ** 3, p, 0)  # = 8 m3
    return sp.simplify(1 / (2 * leading * p0 ** 2))


def restricted_system() -> dict:
    """Builder for ``reduced_dynamics.compile.compile_system``: {name: (argument groups, outputs)}."""
    state = list(STATE)
    return {
        "rhs": ([state, [m3, m6]], list(restricted_rhs())),
        "loss": ([state, [m3, m6, wsq, sigma]], [restricted_loss()]),
        "gain": ([state], [gain()]),
        "scalar_rhs": ([[p], [m3, m6]], [balanced_scalar_rhs()]),
    }
