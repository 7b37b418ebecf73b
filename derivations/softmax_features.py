"""SymPy derivation of the reduced dynamics of softmax attention on orthonormal features.

Theory note: softmax_features.md. Every right-hand side here is obtained as MINUS THE SYMBOLIC GRADIENT of a
reduced loss; nothing is typed by hand except the losses themselves.

* :func:`large_n_system` -- the large-N reduced loss (SF-20) for K features with probability symbols p_k and
  the K x K weight matrix M, and the flow (SF-21) as ``-dL/dM[n,k]`` entry by entry; column k of M only
  enters L_k, so the flow decouples column by column (SF-13/SF-14).
* :func:`symmetric_system` -- the one-dimensional reduction on the symmetric subspace B_{k,n} = -A_k/(K-1)
  (SF-24/SF-25) for a symbolic K and q = p_k, with the flow of pi_k derived from the loss.
* :func:`time_law` -- the closed form t(pi) (SF-26): an antiderivative of 1/(pi^2 (1-pi)^3) built by partial
  fractions, plus the note's F.
* :func:`minor_feature_system` -- the two-dimensional system (SF-29) of an under-represented feature in the
  imbalanced case, derived from the loss restricted to its symmetric subspace.

Pure functions returning sympy objects; no NumPy, SciPy or I/O.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sympy as sp


@dataclass(frozen=True)
class LargeNSystem:
    """Large-N reduced system for K features (SF-20, SF-21).

    ``M[n, k]``: weight of a query of feature k on tokens of feature n (row = token, column = query);
    ``p``: probability symbols; ``column_losses[k]``: L_k^inf(M[:, k]); ``loss``: sum_k p_k L_k^inf;
    ``rhs[n, k] = -dL/dM[n, k]``; ``state``: the K^2 entries of M in row-major order, matching
    ``rhs_vector``.
    """

    n_features: int
    M: sp.Matrix
    p: tuple
    column_losses: tuple
    loss: sp.Expr
    rhs: sp.Matrix

    @property
    def state(self) -> list:
        return list(self.M)

    @property
    def rhs_vector(self) -> list:
        return list(self.rhs)


def attention_weights(column, p) -> list:
    """pi_n(m) = p_n e^{m_n} / sum_j p_j e^{m_j}: softmax of m + log p, the large-N attention mass (SF-20)."""
    weights = [pj * sp.exp(mj) for pj, mj in zip(p, column)]
    total = sp.Add(*weights)
    return [w / total for w in weights]


def column_loss(column, p, k: int) -> sp.Expr:
    """L_k^inf(m) = (1/2) [ (1 - pi_k)^2 + sum_{n != k} pi_n^2 ] (SF-20), m = column k of M."""
    pi = attention_weights(column, p)
    return sp.Rational(1, 2) * ((1 - pi[k]) ** 2 + sp.Add(*[pi[n] ** 2 for n in range(len(pi)) if n != k]))


@lru_cache(maxsize=None)
def large_n_system(n_features: int) -> LargeNSystem:
    """The large-N loss (SF-20) and its gradient flow (SF-21) for K = ``n_features`` features.

    The flow is ``dM[n,k]/dt = -dL/dM[n,k]`` with ``L = sum_k p_k L_k^inf(M[:,k])``; since column k appears
    only in L_k this is ``-p_k dL_k/dm_n`` column by column (SF-13/SF-14). Derived, never typed.
    """
    K = int(n_features)
    if K < 2:
        raise ValueError(f"n_features: expected an integer >= 2, got {n_features!r}")
    M = sp.Matrix(K, K, lambda n, k: sp.Symbol(f"m_{n}_{k}", real=True))
    p = tuple(sp.Symbol(f"p_{j}", positive=True) for j in range(K))
    losses = tuple(column_loss([M[n, k] for n in range(K)], p, k) for k in range(K))
    loss = sp.Add(*[p[k] * losses[k] for k in range(K)])
    rhs = sp.Matrix(K, K, lambda n, k: -p[k] * sp.diff(losses[k], M[n, k]))
    return LargeNSystem(K, M, p, losses, loss, rhs)


@dataclass(frozen=True)
class SymmetricSystem:
    """One-dimensional reduction of column k on the symmetric subspace (SF-24, SF-25), symbolic K and q = p_k.

    The loss is written in u = e^{A_k}, v = e^{B_k} (B_k the common cross weight, the other K-1 features
    sharing 1 - q equally): ``loss_uv`` is L_k^inf at m = (A, B, ..., B). ``rhs_A = -q dL/dA`` and
    ``rhs_B = -q/(K-1) dL/dB`` (per-entry partials; the K-1 tied entries share dL/dB). ``x`` stands for
    pi_k; ``loss_pi`` is L_k^inf in x (SF-24) and ``rhs_pi`` is d pi_k/dt in x (SF-25), and
    ``rate = rhs_pi / (x^2 (1-x)^3)``; ``conservation = rhs_A + (K-1) rhs_B`` (zero by SF-15).
    """

    K: sp.Symbol
    q: sp.Symbol
    u: sp.Symbol
    v: sp.Symbol
    x: sp.Symbol
    loss_uv: sp.Expr
    rhs_A: sp.Expr
    rhs_B: sp.Expr
    conservation: sp.Expr
    loss_pi: sp.Expr
    rhs_pi: sp.Expr
    rate: sp.Expr


@lru_cache(maxsize=None)
def symmetric_system() -> SymmetricSystem:
    """Derive (SF-24)/(SF-25): the symmetric column's loss and the flow of pi_k = attention on the own feature.

    dA/dt = -q u dL/du and dB/dt = -q/(K-1) v dL/dv (chain rule for u = e^A, v = e^B). D = A - B moves as
    dA/dt - dB/dt; pi_k depends on r = u/v = e^D only, pi_k = q r/(q r + 1 - q), so
    d pi_k/dt = r (d pi_k/dr) dD/dt. Every expression is rational in (u, v) and homogeneous of degree 0,
    so substituting u = r v and then r = x(1-q)/(q(1-x)) gives functions of x alone (rational algebra only).
    """
    K = sp.Symbol("K", positive=True)
    q = sp.Symbol("q", positive=True)
    u, v, r = sp.symbols("u v r", positive=True)
    x = sp.Symbol("x", positive=True)
    other = (1 - q) / (K - 1)
    Z = q * u + (K - 1) * other * v
    pi_k = q * u / Z
    pi_o = other * v / Z
    loss_uv = sp.Rational(1, 2) * ((1 - pi_k) ** 2 + (K - 1) * pi_o ** 2)
    rhs_A = -q * u * sp.diff(loss_uv, u)
    rhs_B = -q / (K - 1) * v * sp.diff(loss_uv, v)
    conservation = sp.factor(sp.together(rhs_A + (K - 1) * rhs_B))
    r_of_x = x * (1 - q) / (q * (1 - x))
    to_x = {u: r * v}
    dD = sp.factor(sp.together((rhs_A - rhs_B).subs(to_x)))
    pi_r = sp.factor(pi_k.subs(to_x))
    rhs_pi = sp.factor(sp.together((r * sp.diff(pi_r, r) * dD).subs(r, r_of_x)))
    loss_pi = sp.factor(sp.together(loss_uv.subs(to_x).subs(r, r_of_x)))
    rate = sp.factor(sp.together(rhs_pi / (x ** 2 * (1 - x) ** 3)))
    return SymmetricSystem(K, q, u, v, x, loss_uv, rhs_A, rhs_B, conservation, loss_pi, rhs_pi, rate)


@dataclass(frozen=True)
class TimeLaw:
    """Closed form of the 1-D flow (SF-26): t(x) = [F(x) - F(q)] / c with dF/dx = 1/(x^2 (1-x)^3)."""

    x: sp.Symbol
    integrand: sp.Expr
    F_partial_fractions: sp.Expr
    F_note: sp.Expr


@lru_cache(maxsize=None)
def time_law() -> TimeLaw:
    """Antiderivative of 1/(x^2 (1-x)^3) by partial fractions (SF-26), and the note's F for comparison.

    The note's ``F(x) = -1/x + 3 ln(x/(1-x)) + 2/(1-x) + 1/(2 (1-x)^2)`` is returned as ``F_note``; tests
    check that both differentiate to the integrand on 0 < x < 1.
    """
    x = sp.Symbol("x", positive=True)
    integrand = 1 / (x ** 2 * (1 - x) ** 3)
    parts = sp.apart(integrand, x)
    F = sp.integrate(parts, x)
    F_note = -1 / x + 3 * sp.log(x / (1 - x)) + 2 / (1 - x) + 1 / (2 * (1 - x) ** 2)
    return TimeLaw(x, integrand, F, F_note)


def symmetric_rate(n_features, q) -> sp.Expr:
    """c_k of (SF-25) for given K and q = p_k, from the derived rate of :func:`symmetric_system`."""
    sym = symmetric_system()
    return sp.factor(sym.rate.subs({sym.K: n_features, sym.q: q}))


def time_to_loss(n_features, q, eps) -> sp.Expr:
    """Flow time for the symmetric column to reach L_k^inf = eps (SF-26): t(pi_eps), pi_eps solved from (SF-24)."""
    sym = symmetric_system()
    law = time_law()
    K_val = sp.nsimplify(n_features)
    q_val = sp.nsimplify(q)
    loss = sym.loss_pi.subs({sym.K: K_val, sym.q: q_val})
    # L = K/(2(K-1)) (1-x)^2 is decreasing in x on (0, 1): take the root inside (q, 1).
    roots = [r for r in sp.solve(sp.Eq(loss, sp.nsimplify(eps)), sym.x) if r.is_real and 0 < r < 1]
    if len(roots) != 1:
        raise ValueError(f"eps: expected one root of L = eps in (0, 1), found {roots}")
    F = law.F_note.subs(law.x, sym.x)
    c = symmetric_rate(K_val, q_val)
    return (F.subs(sym.x, roots[0]) - F.subs(sym.x, q_val)) / c


@dataclass(frozen=True)
class MinorFeatureSystem:
    """Two-dimensional system (SF-29) of an under-represented feature k in the imbalanced case.

    State (A, B1, Bo): own weight, weight toward the dominant feature, common weight toward the other K-2 minor
    features; ``q`` = p_k = (1 - p1)/(K-1). ``loss`` = L_k^inf on that subspace; ``rhs`` = (dA, dB1, dBo)/dt,
    each the per-entry partial of the loss times -q (the K-2 tied entries share dL/dBo equally);
    ``conserved`` = A + B1 + (K-2) Bo, whose time derivative is zero (SF-15).
    """

    K: sp.Symbol
    p1: sp.Symbol
    A: sp.Symbol
    B1: sp.Symbol
    Bo: sp.Symbol
    q: sp.Expr
    pi: tuple
    loss: sp.Expr
    rhs: tuple
    conserved: sp.Expr


@lru_cache(maxsize=None)
def minor_feature_system() -> MinorFeatureSystem:
    """Derive (SF-29) from the loss (SF-20) restricted to {B_{k,o} equal for all minor o != k}, symbolic K >= 3."""
    K = sp.Symbol("K", positive=True)
    p1 = sp.Symbol("p1", positive=True)
    A, B1, Bo = sp.symbols("A B1 Bo", real=True)
    q = (1 - p1) / (K - 1)
    Z = q * sp.exp(A) + p1 * sp.exp(B1) + (K - 2) * q * sp.exp(Bo)
    pi_k, pi_1, pi_o = q * sp.exp(A) / Z, p1 * sp.exp(B1) / Z, q * sp.exp(Bo) / Z
    loss = sp.Rational(1, 2) * ((1 - pi_k) ** 2 + pi_1 ** 2 + (K - 2) * pi_o ** 2)
    rhs = (-q * sp.diff(loss, A), -q * sp.diff(loss, B1), -q * sp.diff(loss, Bo) / (K - 2))
    return MinorFeatureSystem(K, p1, A, B1, Bo, q, (pi_k, pi_1, pi_o), loss, rhs, A + B1 + (K - 2) * Bo)


def compiled_large_n(n_features: int) -> dict:
    """Builder for ``reduced_dynamics.compile``: the large-N flow (SF-21) and column losses (SF-20) as
    functions of (M row-major, p)."""
    system = large_n_system(n_features)
    args = [system.state, list(system.p)]
    return {"rhs": (args, system.rhs_vector), "losses": (args, list(system.column_losses))}
