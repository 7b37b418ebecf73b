"""Reduced gradient flow of merged key-query linear attention (ATTN_M), derived with SymPy.

Theory note: ``shared/theory/linear_attention.md`` §3, §5, §6. Every right-hand side here is obtained as
minus the symbolic gradient of a loss (§5.1, the "symbolic recipe"); nothing is typed in by hand.

Two routes to the same right-hand side (LA-22):

* ``full_system(D, H)``: substitute B = sum_i v_i U_i (LA-11) into the loss (LA-19) and differentiate with
  respect to all H (D^2 + 1) state symbols. Exact but slow to build beyond small sizes (the Jacobian is
  quadratic in the state size).
* ``block_system(D, moments)``: derive the loss as a function of B, its negative gradient G(B) (LA-18) and
  Hessian, and, for one generic head, the derivatives of B_head(v, U) = v U. The runtime assembles
  dtheta_i/dt = (dB_head/dtheta_i)^T G(B) (the chain rule) for every head. Its cost grows linearly with H.

* ``index_system(D, moments)``: the route the runtime uses. The same pieces derived once for a generic entry
  of B (population: (LA-19) decouples entry by entry in the eigenbasis, so its Hessian is diagonal) or as a
  matrix expression of any size (sample moments), and for one generic monomial of the head map (v u); a size
  is instantiated by integer index arrays, so the symbolic work does not grow with D (``index_pieces``).

The tests check that the routes agree (the index route against the block route to 1e-12) and that the
assembled RHS equals a finite-difference gradient of the loss.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

N_SYM, C_SYM = sp.symbols("N c", positive=True)


def eigenvalue_symbols(D: int) -> tuple[sp.Symbol, ...]:
    """lambda_1 .. lambda_D, the input-covariance eigenvalues (§1)."""
    return sp.symbols(f"lam1:{D + 1}", positive=True)


def second_moment_diagonal(lam, N=N_SYM):
    """s_d = ((N+1)/N) lambda_d^2 + (tau/N) lambda_d, the eigenvalues of S = E[Lambda_hat^2] (LA-16)."""
    tau = sum(lam)
    return [second_moment(l, tau, N) for l in lam]


def second_moment(lam_d, tau, N=N_SYM):
    """One eigenvalue s_d = ((N+1)/N) lambda_d^2 + (tau/N) lambda_d of S (LA-16)."""
    return (N + 1) / N * lam_d ** 2 + tau / N * lam_d


def b_matrix_symbols(D: int, name: str = "B") -> sp.Matrix:
    return sp.Matrix(D, D, lambda a, b: sp.Symbol(f"{name}_{a}_{b}"))


def population_loss(B: sp.Matrix, lam, N=N_SYM, c=C_SYM) -> sp.Expr:
    """Population loss as a quadratic in B, eigenbasis (LA-19):
    L(B) = tau - 2c sum_d lambda_d^2 B_dd + c^2 sum_{a,b} s_a lambda_b B_ab^2."""
    D, tau = len(lam), sum(lam)
    return tau + sum(entry_loss(B[a, b], lam[a], lam[b], int(a == b), tau, N, c) for a in range(D) for b in range(D))


def entry_loss(x, lam_a, lam_b, delta, tau, N=N_SYM, c=C_SYM) -> sp.Expr:
    """The terms of (LA-19) that involve one entry x = B_ab (delta = 1 if a = b else 0): in the eigenbasis the
    population loss decouples into tau + sum_ab entry_loss, -2c delta lambda_a^2 x + c^2 s_a lambda_b x^2."""
    return -2 * c * delta * lam_a ** 2 * x + c ** 2 * second_moment(lam_a, tau, N) * lam_b * x ** 2


def sample_moment_symbols(D: int):
    """Symbols of the sample moments of §5: A (D^2 x D^2, symmetric), g (D^2), mean y_q^2."""
    n = D * D
    A = sp.Matrix(n, n, lambda j, k: sp.Symbol(f"A_{min(j, k)}_{max(j, k)}"))
    g = sp.Matrix(n, 1, lambda j, _: sp.Symbol(f"g_{j}"))
    yy = sp.Symbol("yy")
    return A, g, yy


def sample_loss(B: sp.Matrix, A: sp.Matrix, g: sp.Matrix, yy: sp.Symbol) -> sp.Expr:
    """Finite-sample loss of §5: L_hat(B) = mean(y_q^2) - 2 <g, vec B> + vec(B)^T A vec(B), with
    A = mean(phi phi^T), g = mean(phi y_q), phi = c vec(h x_q^T) (row-major vec)."""
    b = sp.Matrix(list(B))
    return yy - 2 * (g.T * b)[0, 0] + (b.T * A * b)[0, 0]


def loss_in_b(D: int, moments: str):
    """(loss, B symbols, parameter symbols) for ``moments`` in {"population", "sample"}."""
    B = b_matrix_symbols(D)
    if moments == "population":
        lam = eigenvalue_symbols(D)
        return population_loss(B, lam), B, [*lam, N_SYM, C_SYM]
    if moments == "sample":
        A, g, yy = sample_moment_symbols(D)
        n = D * D
        params = [A[j, k] for j in range(n) for k in range(j, n)] + list(g) + [yy]  # upper triangle row-major
        return sample_loss(B, A, g, yy), B, params
    raise ValueError(f"moments: expected 'population' or 'sample', got {moments!r}")


def head_symbols(D: int, prefix: str = ""):
    """State of one head on the invariant manifold (LA-35): v (label->label value weight) and U (D x D)."""
    v = sp.Symbol(f"{prefix}v")
    U = sp.Matrix(D, D, lambda a, b: sp.Symbol(f"{prefix}U_{a}_{b}"))
    return v, U


def head_b(v: sp.Symbol, U: sp.Matrix) -> sp.Matrix:
    """One head's contribution to B = sum_i v_i U_i (LA-11)."""
    return v * U


def block_system(D: int, moments: str = "population") -> dict:
    """Symbolic pieces for the block route (see module docstring).

    Returned functions (name -> (argument groups, outputs)), ready for ``reduced_dynamics.compile``:
      loss      (B, params)      -> [L(B)]                     (LA-19) or the §5 sample form
      G         (B, params)      -> -dL/dB, row-major (D^2)    (LA-18)
      hessian   (params,)        -> d^2 L / dB dB  (D^2 x D^2)  (constant: L is quadratic in B)
      head_b    (theta,)         -> vec B_head(theta)          (LA-11), theta = (v, U row-major)
      head_jac  (theta,)         -> d vec B_head / d theta     (D^2 x (1 + D^2))
      head_rhs  (theta, G)       -> (d vec B_head / d theta)^T G: one head's share of (LA-22)
      head_curv (theta, G)       -> sum_ab G_ab d^2 B_ab / dtheta dtheta  ((1+D^2) x (1+D^2))
    so that the RHS (LA-22) is head_jac^T G and its Jacobian is
    -J^T hessian J + blockdiag(head_curv), with J the stacked head_jac of all heads.
    """
    v, U = head_symbols(D)
    return block_pieces(D, moments, [v, *list(U)], list(head_b(v, U)))


def block_pieces(D: int, moments: str, theta: list, Bh: list) -> dict:
    """The block-route functions of ``block_system`` for any per-head parametrisation: ``theta`` one head's
    state symbols and ``Bh`` its contribution to vec B as expressions in them (shared with attn-s)."""
    loss, B, params = loss_in_b(D, moments)
    b = list(B)
    G = [-sp.diff(loss, x) for x in b]
    hessian = -sp.Matrix([[sp.diff(g, y) for y in b] for g in G])     # from the derived G, not the loss again
    jac = sp.Matrix([[sp.diff(e, th) for th in theta] for e in Bh])
    Gs = sp.symbols(f"G0:{D * D}")
    contracted = sum(Gs[k] * Bh[k] for k in range(D * D))
    curv = sp.hessian(contracted, theta)
    pullback = [sp.diff(contracted, th) for th in theta]
    return {
        "loss": ([b, params], [loss]),
        "G": ([b, params], G),
        "hessian": ([params], hessian),
        "head_b": ([theta], Bh),
        "head_jac": ([theta], jac),
        "head_rhs": ([theta, list(Gs)], pullback),
        "head_curv": ([theta, list(Gs)], curv),
    }


# ---------------------------------------------------------------------------------------------------------
# Index form: the route the runtime uses. Every formula is derived once for a generic entry / generic term
# (no D in it) and instantiated for a size by integer index arrays, so the symbolic work does not grow with D.

X_SYM, LAM_A, LAM_B, DELTA_SYM, TAU_SYM_E = sp.symbols("x lam_a lam_b delta_ab tau_e", real=True)
G_SYM = sp.Symbol("G_ab")


@dataclass(frozen=True)
class Indexed:
    """A polynomial map given by generic outputs and their instances: instance i adds ``outputs[k]``, with
    generic argument j read from slot ``arg_index[i, j]`` of the concatenated argument groups (lengths
    ``sizes``), to output ``out_index[i, k]`` of the flattened result of shape ``shape``.
    ``reduced_dynamics.compile`` tabulates it (generic monomial table, then the instances numerically)."""
    args: list
    outputs: list
    arg_index: np.ndarray
    out_index: np.ndarray
    sizes: tuple
    shape: tuple


def population_pieces() -> dict:
    """Population loss in the eigenbasis, one generic entry (LA-19): the entry's value at B = 0, its share of
    G(0) = -dL/dB (LA-18) and its Hessian entry. (LA-19) has no cross terms between entries, so the Hessian is
    diagonal; it is quadratic, so L(B) = L(0) - <G(0), B> + 1/2 <B, Hess B> and G(B) = G(0) - Hess B exactly.
    Argument order (lam_a, lam_b, delta_ab, tau, N, c); L(0) = tau + sum of the entries' values."""
    ell = entry_loss(X_SYM, LAM_A, LAM_B, DELTA_SYM, TAU_SYM_E)
    G = -sp.diff(ell, X_SYM)
    hess = -sp.diff(G, X_SYM)
    assert X_SYM not in hess.free_symbols           # quadratic: the expansion above is exact
    args = [[LAM_A, LAM_B, DELTA_SYM, TAU_SYM_E, N_SYM, C_SYM]]
    at0 = {X_SYM: 0}
    return {"entry_moments": (args, [ell.xreplace(at0), G.xreplace(at0), hess])}


def sample_pieces() -> dict:
    """The §5 sample loss as a matrix expression in vec B of any length n: L = yy - 2 g^T b + b^T A b; SymPy's
    matrix calculus gives G(0) = 2g, Hess = A + A^T and L(0) = yy (A symmetric: Hess = 2A)."""
    n = sp.Symbol("n", integer=True, positive=True)
    A, g, b = sp.MatrixSymbol("A", n, n), sp.MatrixSymbol("g", n, 1), sp.MatrixSymbol("b", n, 1)
    yy = sp.Symbol("yy")
    L = sp.Identity(1) * yy - 2 * g.T * b + b.T * A * b
    G = -L.diff(b)
    hess = -G.diff(b)
    assert b not in hess.free_symbols
    zero = {b: sp.ZeroMatrix(n, 1)}
    return {"L0": ([[yy]], [L.xreplace(zero).doit()[0, 0]]), "G0": ([g], G.xreplace(zero).doit()),
            "hessian": ([A], hess)}


def index_pieces(D: int, moments: str, theta: list, term: sp.Expr, instances: np.ndarray, n: int) -> dict:
    """Loss pieces for ``moments`` and the head pieces of ``block_pieces`` in index form.

    ``term`` is one generic monomial of a head's map (attn-m: v u, attn-s: v k q), ``theta`` its generic
    symbols; row i of ``instances`` gives the state slots of ``theta`` and, last, the entry ab = a D + b of
    vec B that the instance adds to. head_rhs is the pull-back (dB/dtheta)^T G of the contracted term
    G_ab * term (chain rule, LA-22 / LA-29), head_curv its second derivatives, head_jac dB/dtheta."""
    loss = population_pieces() if moments == "population" else sample_pieces() if moments == "sample" else None
    if loss is None:
        raise ValueError(f"moments: expected 'population' or 'sample', got {moments!r}")
    k, D2 = len(theta), D * D
    slots, entry = instances[:, :k], instances[:, k]
    contracted = G_SYM * term
    with_G = np.column_stack([slots, n + entry])
    pairs = (slots[:, :, None] * n + slots[:, None, :]).reshape(len(slots), k * k)
    return {**loss,
            "head_b": Indexed(theta, [term], slots, entry[:, None], (n,), (D2,)),
            "head_jac": Indexed(theta, [sp.diff(term, s) for s in theta], slots, entry[:, None] * n + slots,
                                (n,), (D2, n)),
            "head_rhs": Indexed([*theta, G_SYM], [sp.diff(contracted, s) for s in theta], with_G, slots,
                                (n, D2), (n,)),
            "head_curv": Indexed([*theta, G_SYM], [sp.diff(contracted, s, t) for s in theta for t in theta],
                                 with_G, pairs, (n, D2), (n, n))}


def index_system(D: int, moments: str = "population") -> dict:
    """The attn-m system in index form (``index_pieces``): generic term v u (the D = 1 head map, LA-11), one
    instance per entry (a, b) with slots v -> 0 and u -> 1 + a D + b (theta = (v, U row-major))."""
    v, U = head_symbols(1)
    a, b = np.divmod(np.arange(D * D), D)
    instances = np.column_stack([np.zeros(D * D, dtype=np.int64), 1 + a * D + b, a * D + b])
    return index_pieces(D, moments, [v, U[0, 0]], head_b(v, U)[0, 0], instances, 1 + D * D)


def full_state(D: int, H: int):
    """All H (D^2 + 1) state symbols, head by head: (v_i, U_i row-major)."""
    heads = [head_symbols(D, prefix=f"h{i}_") for i in range(H)]
    state = [x for v, U in heads for x in (v, *list(U))]
    return heads, state


def full_loss(D: int, H: int, moments: str = "population"):
    """Reduced loss L(theta) of the whole multi-head model: (LA-19) with B = sum_i v_i U_i."""
    loss_b, B, params = loss_in_b(D, moments)
    heads, state = full_state(D, H)
    Bsum = sum((head_b(v, U) for v, U in heads), sp.zeros(D, D))
    loss = loss_b.xreplace({B[a, b]: Bsum[a, b] for a in range(D) for b in range(D)})
    return loss, state, params


def full_system(D: int, H: int, moments: str = "population", jacobian: bool = True) -> dict:
    """The full route: RHS (LA-22) as minus the gradient of ``full_loss`` over every state symbol."""
    loss, state, params = full_loss(D, H, moments)
    rhs = [-sp.diff(loss, x) for x in state]
    out = {"loss": ([state, params], [loss]), "rhs": ([state, params], rhs)}
    if jacobian:
        out["jacobian"] = ([state, params], sp.Matrix(rhs).jacobian(state))
    return out


# ---------------------------------------------------------------------------------------------------------
# Fixed points and the minimum (LA-20, LA-21, LA-23)

def population_minimiser(D: int):
    """B* solving G(B) = 0 (LA-20), found by SymPy's linear solver; returns (B*, L*, lam)."""
    loss, B, params = loss_in_b(D, "population")
    lam = params[:D]
    b = list(B)
    solution = sp.solve([sp.diff(loss, x) for x in b], b, dict=True)[0]
    Bstar = B.xreplace(solution)
    Lstar = sp.simplify(loss.xreplace(solution))
    return Bstar, Lstar, lam


def minimum_loss_formula(lam, N=N_SYM) -> sp.Expr:
    """L* as stated in (LA-21): sum_d lambda_d (lambda_d + tau) / ((N+1) lambda_d + tau)."""
    tau = sum(lam)
    return sum(l * (l + tau) / ((N + 1) * l + tau) for l in lam)


def saddle_loss(D: int) -> sp.Expr:
    """Loss on the saddle set M_0 (LA-23), where B = 0: equals tau."""
    loss, B, params = loss_in_b(D, "population")
    return loss.xreplace({x: 0 for x in B})


# ---------------------------------------------------------------------------------------------------------
# Closed-form logistic course (LA-26 to LA-28)

T_SYM, U0_SYM, NB_SYM, A_SYM, TAU_SYM = sp.symbols("t U0 normb a tau", positive=True)


def logistic_ode():
    """The aligned balanced law (LA-26): dU/dt = 4 U (||b|| - a U)."""
    U = sp.Function("U")
    return sp.Eq(U(T_SYM).diff(T_SYM), 4 * U(T_SYM) * (NB_SYM - A_SYM * U(T_SYM))), U


def logistic_solution() -> sp.Expr:
    """U(t) of (LA-27), obtained by solving (LA-26) with U(0) = U0."""
    ode, U = logistic_ode()
    sol = sp.dsolve(ode, U(T_SYM), ics={U(0): U0_SYM})
    return sp.simplify(sol.rhs)


def loss_along_course(U: sp.Expr) -> sp.Expr:
    """L = tau - 2 ||b|| U + a U^2 (LA-27)."""
    return TAU_SYM - 2 * NB_SYM * U + A_SYM * U ** 2


def drop_time() -> sp.Expr:
    """Time at which (LA-27) crosses the midpoint of tau and L* = tau - ||b||^2/a (LA-28).

    The midpoint is reached at the smaller root U_h of L(U) = (tau + L*)/2; (LA-27) is then solved for
    E = exp(-4 ||b|| t), in which it is linear."""
    ustar = NB_SYM / A_SYM
    half = TAU_SYM - NB_SYM ** 2 / (2 * A_SYM)
    Ux, E = sp.symbols("Ux E", positive=True)
    roots = sp.solve(sp.Eq(loss_along_course(Ux), half), Ux)
    U_half = min(roots, key=lambda r: float(r.subs({NB_SYM: 1, A_SYM: 1})))  # the root reached first
    E_half = sp.solve(sp.Eq(ustar / (1 + (ustar / U0_SYM - 1) * E), U_half), E)[0]
    return sp.simplify(-sp.log(E_half) / (4 * NB_SYM))


def aligned_constants(D: int):
    """||b|| and a of (LA-26) in the eigenbasis with b = c Lambda^2: (normb, a, lam)."""
    lam = eigenvalue_symbols(D)
    s = second_moment_diagonal(lam)
    norm_l2 = sp.sqrt(sum(l ** 4 for l in lam))
    bhat = [l ** 2 / norm_l2 for l in lam]
    normb = C_SYM * norm_l2
    a = C_SYM ** 2 * sum(bhat[d] ** 2 * s[d] * lam[d] for d in range(D))
    return normb, a, lam
