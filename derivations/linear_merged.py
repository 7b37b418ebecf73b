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

The tests check that both routes agree and that the assembled RHS equals a finite-difference gradient of
the loss.
"""
from __future__ import annotations

import sympy as sp

N_SYM, C_SYM = sp.symbols("N c", positive=True)


def eigenvalue_symbols(D: int) -> tuple[sp.Symbol, ...]:
    """lambda_1 .. lambda_D, the input-covariance eigenvalues (§1)."""
    return sp.symbols(f"lam1:{D + 1}", positive=True)


def second_moment_diagonal(lam, N=N_SYM):
    """s_d = ((N+1)/N) lambda_d^2 + (tau/N) lambda_d, the eigenvalues of S = E[Lambda_hat^2] (LA-16)."""
    tau = sum(lam)
    return [(N + 1) / N * l ** 2 + tau / N * l for l in lam]


def b_matrix_symbols(D: int, name: str = "B") -> sp.Matrix:
    return sp.Matrix(D, D, lambda a, b: sp.Symbol(f"{name}_{a}_{b}"))


def population_loss(B: sp.Matrix, lam, N=N_SYM, c=C_SYM) -> sp.Expr:
    """Population loss as a quadratic in B, eigenbasis (LA-19):
    L(B) = tau - 2c sum_d lambda_d^2 B_dd + c^2 sum_{a,b} s_a lambda_b B_ab^2."""
    D = len(lam)
    s = second_moment_diagonal(lam, N)
    return (sum(lam) - 2 * c * sum(lam[d] ** 2 * B[d, d] for d in range(D))
            + c ** 2 * sum(s[a] * lam[b] * B[a, b] ** 2 for a in range(D) for b in range(D)))


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
    hessian = sp.Matrix([[sp.diff(loss, x, y) for y in b] for x in b])
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
