"""Weight decay in the reduced flows, derived with SymPy (docs/theory/weight_decay.md, WD-1 to WD-9).

Gradient descent with weight decay lambda steps theta <- theta - eta (grad L + lambda theta): plain GD on the
regularised loss L + (lambda/2) |theta|^2 (WD-1). A reduction that keeps a linear subspace phi of the full
parameters, each reduced coordinate standing for ``m`` equal full parameters (its multiplicity, the metric of
LR-2), sees the penalty (lambda/2) sum_k m_k phi_k^2 and, in the metric m, the decay term -lambda phi_k whatever
m_k is (WD-2): ``reduced_decay`` derives it. The modified flow and the GD map follow from the regularised loss
(WD-3). ``regularised_full_system`` is the check route: the full reduced loss of tiny attn-m / attn-s models
plus the penalty, differentiated directly.

The regularised end points (WD-4 to WD-8): the penalty of one head at fixed B_head is smallest on the balanced
factorisation (``balanced_penalty``): 2 |B|_F for v U (attn-m), 3 |B|^(2/3) for v k q^T (attn-s, rank one).
So attn-m's regularised minimum minimises the convex L(B) + lambda |B|_F (``merged_stationarity``), and the
aligned scalar law of attn-s gains -lambda a (``separate_scalar_law``); its rests solve a quartic
(``separate_rest_quartic``), whose smaller root is an escape threshold for the initial scale.
"""
from __future__ import annotations

import sympy as sp

from . import linear_merged, linear_separate

WD_SYM = sp.Symbol("lambda_wd", nonnegative=True)
PHI_SYM, M_SYM = sp.symbols("phi m", positive=True)


def penalty(state, multiplicities=None, decay=WD_SYM) -> sp.Expr:
    """(lambda/2) sum_k m_k phi_k^2: the full parameters' |theta|^2 / 2 written in reduced coordinates (WD-1)."""
    m = [1] * len(state) if multiplicities is None else multiplicities
    return decay / 2 * sum(mk * x ** 2 for mk, x in zip(m, state))


def reduced_decay(phi=PHI_SYM, m=M_SYM) -> sp.Expr:
    """The decay term of one reduced coordinate of multiplicity m in the metric m (LR-2): -(1/m) d/dphi of the
    penalty. Equals -lambda phi for every m (WD-2)."""
    return sp.simplify(-sp.diff(penalty([phi], [m]), phi) / m)


def regularised_full_system(family: str, D: int, H: int, R: int = 1, moments: str = "population") -> dict:
    """Check route at tiny sizes: the reduced loss of the whole model plus the penalty (metric I: the
    manifold coordinates are entries of the full weights, rotated by an orthogonal basis) and minus its
    gradient, the regularised flow (WD-2)."""
    if family == "attn-m":
        loss, state, params = linear_merged.full_loss(D, H, moments)
    elif family == "attn-s":
        loss, state, params = linear_separate.full_loss(D, H, R, moments)
    else:
        raise ValueError(f"family: expected 'attn-m' or 'attn-s', got {family!r}")
    regularised = loss + penalty(state)
    return {"regularised_loss": ([state, params, [WD_SYM]], [regularised]),
            "regularised_rhs": ([state, params, [WD_SYM]], [-sp.diff(regularised, x) for x in state])}


def balanced_penalty(factors: int) -> sp.Expr:
    """min of sum_j y_j^2 over positive y_1 .. y_k with fixed product b: k b^(2/k), on the balanced set
    (WD-4). Derived by eliminating the last factor (y_k = b / prod of the others) and solving the stationarity
    equations, for k = 2 (attn-m: v, |U|) and k = 3 (attn-s rank one: v, |k|, |q|)."""
    b = sp.Symbol("b", positive=True)
    free = sp.symbols(f"y1:{factors}", positive=True)
    total = sum(y ** 2 for y in free) + (b / sp.Mul(*free)) ** 2
    solutions = sp.solve([sp.diff(total, y) for y in free], free, dict=True)
    return sp.simplify(total.subs(solutions[0]))


def merged_stationarity():
    """(WD-5): the regularised minimum of attn-m in B. With the effective penalty lambda |B|_F (WD-4 with k = 2,
    halved), stationarity of L(B) + lambda |B| reads Hess b - G0 + lambda b / |b| = 0, so b = (Hess + mu)^-1 G0
    with mu = lambda / |b|. Returns (equation for one eigen-entry b_k given mu, its solution, mu)."""
    bk, g0, h, mu = sp.symbols("b_k g0_k h_k mu", positive=True)
    equation = sp.Eq(h * bk - g0 + mu * bk, 0)
    return equation, sp.solve(equation, bk)[0], mu


def merged_isotropic_norm():
    """(WD-6): |B*| when every entry of G0 on the support has the same curvature h (Lambda = lambda I in the
    eigenbasis): rho = (|G0| - lambda) / h, solved from rho = |G0| / (h + lambda / rho)."""
    rho, g, h = sp.symbols("rho normG0 h", positive=True)
    return sp.solve(sp.Eq(rho * (h + WD_SYM / rho), g), rho)[0]


def separate_scalar_law():
    """(WD-7): the aligned balanced law of one attn-s component (LA-31) with decay, derived from the
    component loss plus the penalty of (v, kappa, rho) = (a, a, a) in the metric 3 (LR-2): da/dt =
    2 a^2 (c lam^2 - c^2 s lam a^3) - lambda a."""
    a = sp.Symbol("a", positive=True)
    lam, s, c = linear_separate.LAM_SYM, linear_separate.S_SYM, linear_separate.C_SYM
    lumped = linear_separate.component_loss(a ** 3, lam, s, c) + penalty([a], [3])
    return sp.expand(-sp.diff(lumped, a) / 3), a


def separate_rest_quartic():
    """(WD-8): the rests of the law (WD-7) with a > 0: 2 c^2 s lam a^4 - 2 c lam^2 a + lambda = 0 (the law
    divided by -a). The larger positive root is the learned component's rest, the smaller one the escape
    threshold: a component that starts below it is never learned. Returns (polynomial in a, a)."""
    rhs, a = separate_scalar_law()
    return sp.expand(-rhs / a), a
