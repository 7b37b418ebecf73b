"""SymPy derivation of the deep-linear reduced dynamics (docs/theory/deep_linear.md, DL-1 to DL-8).

Nothing here is typed except the losses; every flow is minus a symbolic gradient, and the checks that the
results take the textbook forms are asserted in the functions themselves.

* :func:`mode_system` -- one mode of strength u = a b, its loss (DL-3), its flow on (a, b) (DL-4), the
  balanced reduction du/dt = 2u(s - u) (DL-6) obtained twice: by the chain rule along the (a, b) flow and
  as a Riemannian gradient flow of L(u) under the metric g(u) = 1/(2u) pulled back from (a, b) = (sqrt u,
  sqrt u). The factor 2 is a^2 + b^2 = 2u: both layers grow the mode. Then dsolve gives the sigmoid (DL-7),
  checked by substitution, and solve gives the half-learning time (DL-8).
* :func:`matrix_system` -- the population loss of the full network (DL-2) for given sizes, entry by entry,
  and its gradient flow dW1/dt = W2^T (C - W2 W1), dW2/dt = (C - W2 W1) W1^T (DL-5) as -dL/dW.
* :func:`mode_decay` -- weight decay (docs/theory/weight_decay.md, WD-1, WD-2): the penalty (lambda/2)(a^2 + b^2)
  on the balanced set, pulled back with the same metric, adds -2 lambda u to (DL-6); the full-matrix flow
  (orthonormal coordinates) gains -lambda W.
* :func:`compiled_modes`, :func:`compiled_matrix` -- builders for ``reduced_dynamics.compile.compile_system``.

Pure functions returning SymPy objects; no NumPy, no I/O.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sympy as sp


@dataclass(frozen=True)
class ModeSystem:
    a: sp.Symbol
    b: sp.Symbol
    s: sp.Symbol
    u: sp.Symbol
    u0: sp.Symbol
    t: sp.Symbol
    loss_ab: sp.Expr        # (DL-3): (s - a b)^2 / 2
    flow_ab: tuple          # (DL-4): (-dL/da, -dL/db)
    loss_u: sp.Expr         # (DL-3) on u = a b
    metric: sp.Expr         # g(u) = |d(a, b)/du|^2 on the balanced set
    rhs_u: sp.Expr          # (DL-6): -g^{-1} dL/du = 2 u (s - u)
    closed_form: sp.Expr    # (DL-7): u(t) from u(0) = u0, by dsolve
    half_time: sp.Expr      # (DL-8): u(t_half) = s / 2


@lru_cache(maxsize=None)
def mode_system() -> ModeSystem:
    a, b = sp.symbols("a b", real=True)
    s, u, u0, t = sp.symbols("s u u_0 t", positive=True)
    loss_ab = (s - a * b) ** 2 / 2
    flow_ab = (-sp.diff(loss_ab, a), -sp.diff(loss_ab, b))
    # Chain rule: du/dt = b da/dt + a db/dt = (a^2 + b^2)(s - ab); on the balanced set a = b = sqrt(u):
    chain = sp.simplify((sp.diff(a * b, a) * flow_ab[0] + sp.diff(a * b, b) * flow_ab[1])
                        .subs({a: sp.sqrt(u), b: sp.sqrt(u)}))
    # Metric: the embedding u -> (sqrt u, sqrt u) has |d/du|^2 = 2 (1 / (2 sqrt u))^2 = 1 / (2u).
    embedding = sp.Matrix([sp.sqrt(u), sp.sqrt(u)])
    metric = sp.simplify((embedding.diff(u).T * embedding.diff(u))[0])
    loss_u = sp.simplify(loss_ab.subs({a: sp.sqrt(u), b: sp.sqrt(u)}))
    rhs_u = sp.factor(-sp.diff(loss_u, u) / metric)
    assert sp.simplify(rhs_u - chain) == 0, (rhs_u, chain)
    assert sp.simplify(metric - 1 / (2 * u)) == 0 and sp.expand(rhs_u - 2 * u * (s - u)) == 0
    f = sp.Function("u")
    ode = sp.Eq(f(t).diff(t), rhs_u.subs(u, f(t)))
    solution = sp.dsolve(ode, f(t), ics={f(0): u0}).rhs
    closed = s / (1 + (s / u0 - 1) * sp.exp(-2 * s * t))
    assert sp.simplify(solution - closed) == 0, solution             # dsolve's form is the sigmoid (DL-7)
    assert sp.checkodesol(ode, sp.Eq(f(t), closed)) == (True, 0)     # and it solves (DL-6) by substitution
    half = sp.solve(sp.Eq(closed, s / 2), t)
    assert len(half) == 1
    return ModeSystem(a, b, s, u, u0, t, loss_ab, flow_ab, loss_u, metric, rhs_u, closed, sp.simplify(half[0]))


LAMBDA_WD = sp.Symbol("lambda_wd", nonnegative=True)


@lru_cache(maxsize=None)
def mode_decay() -> sp.Expr:
    """-g^{-1} d/du of the penalty (lambda/2)(a^2 + b^2) on the balanced set a = b = sqrt(u): -2 lambda u (WD-2
    with the metric g = 1/(2u) of DL-6). With it (DL-6) reads du/dt = 2u(s - lambda - u): the sigmoid (DL-7) with
    s replaced by s - lambda (asserted by substitution)."""
    m = mode_system()
    penalty = (LAMBDA_WD / 2 * (m.a ** 2 + m.b ** 2)).subs({m.a: sp.sqrt(m.u), m.b: sp.sqrt(m.u)})
    term = sp.simplify(-sp.diff(penalty, m.u) / m.metric)
    assert sp.expand(m.rhs_u + term - 2 * m.u * (m.s - LAMBDA_WD - m.u)) == 0
    return term


@dataclass(frozen=True)
class MatrixSystem:
    W1: sp.Matrix       # (hidden, in)
    W2: sp.Matrix       # (out, hidden)
    C: sp.Matrix        # (out, in): Sigma_yx
    q: sp.Symbol        # tr(Sigma_yy) / 2
    loss: sp.Expr       # (DL-2)
    rhs1: sp.Matrix     # -dL/dW1
    rhs2: sp.Matrix     # -dL/dW2

    @property
    def state(self) -> list:
        return list(self.W1) + list(self.W2)

    @property
    def rhs(self) -> list:
        return list(self.rhs1) + list(self.rhs2)


@lru_cache(maxsize=None)
def matrix_system(n_in: int, hidden: int, n_out: int) -> MatrixSystem:
    """(DL-2) with E[x x^T] = I: L = tr(Sigma_yy)/2 - tr(C^T W2 W1) + |W2 W1|_F^2 / 2, and (DL-5) as -dL/dW."""
    W1 = sp.Matrix(hidden, n_in, lambda i, j: sp.Symbol(f"w1_{i}_{j}", real=True))
    W2 = sp.Matrix(n_out, hidden, lambda i, j: sp.Symbol(f"w2_{i}_{j}", real=True))
    C = sp.Matrix(n_out, n_in, lambda i, j: sp.Symbol(f"c_{i}_{j}", real=True))
    q = sp.Symbol("q", real=True)
    W = W2 * W1
    loss = q - (C.T * W).trace() + (W.T * W).trace() / 2
    rhs1 = W1.applyfunc(lambda w: -sp.diff(loss, w))
    rhs2 = W2.applyfunc(lambda w: -sp.diff(loss, w))
    return MatrixSystem(W1, W2, C, q, loss, rhs1, rhs2)


def compiled_modes(modes: int) -> dict:
    """Builder: the balanced mode flow (DL-6) and loss (DL-3) for ``modes`` modes, args (u, s)."""
    m = mode_system()
    u = [sp.Symbol(f"u_{i}", real=True) for i in range(modes)]
    s = [sp.Symbol(f"s_{i}", positive=True) for i in range(modes)]
    rhs = [m.rhs_u.subs({m.u: ui, m.s: si}, simultaneous=True) for ui, si in zip(u, s)]
    loss = sp.Add(*[m.loss_u.subs({m.u: ui, m.s: si}, simultaneous=True) for ui, si in zip(u, s)])
    return {"rhs": ([u, s], rhs), "loss": ([u, s], [loss])}


def compiled_matrix(n_in: int, hidden: int, n_out: int) -> dict:
    """Builder: the full-matrix flow (DL-5) and loss (DL-2), args (W1 and W2 row-major, C row-major, [q])."""
    m = matrix_system(n_in, hidden, n_out)
    args = [m.state, list(m.C), [m.q]]
    return {"rhs": (args, m.rhs), "loss": (args, [m.loss])}
