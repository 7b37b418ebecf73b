"""Moments of in-context vs in-weight learning (linear_attention_iwl.md §12.4, §12.5), derived with SymPy.

The reduced loss (LA-44) of merged linear attention off the invariant manifold is a quadratic in
Theta = sum_i r_i (x) W_i[:, :D], with the moments A = E[Phi Phi^T], b = E[Phi y_q], E y_q^2 of the feature
Phi[a, b, c] = M_ab x_q[c], M = sum_m z_m z_m^T over the N context tokens and the query (LA-39).

Nothing here is typed in by hand: the moments are *derived* from two rules applied by SymPy,
* Isserlis' theorem for a zero-mean Gaussian vector (one token z ~ N(0, S), the query z_q ~ N(0, S_q)), and
* the token-sum rule: for N i.i.d. tokens, E[prod_k sum_n f_k(z_n)] = sum over set partitions pi of the
  factors of N (N-1) ... (N-|pi|+1) prod_{blocks} E[prod_{k in block} f_k(z)],
with symbolic N and symbolic indices, so the result is exact for every N and every D: a list of terms
``coefficient(N) x product of S[i, j], Sq[i, j], w[d]`` that the runtime contracts with ``numpy.einsum``.
For a fixed task w the context token is z = (x, w^T x) (S = [[Lambda, Lambda w], [w^T Lambda, w^T Lambda w]]),
for the noise context of p = 0 it is z = (x, xi) (S = diag(Lambda, 1)); the query is z_q = (x_q, 0) with
S_q = diag(Lambda, 0) and y_q = w'^T z_q, w' = (w, 0). Substituting these S reproduces (LA-42) and (LA-43)
(checked in the tests, and against Monte Carlo: check C12).

``head_pullback`` derives one head's share of the flow (LA-44) as minus the gradient of -<G, r (x) w>.
"""
from __future__ import annotations

import functools

import sympy as sp

N_SYM = sp.Symbol("N", positive=True)
S = sp.IndexedBase("S")      # covariance of one context token z_n (D+1 x D+1)
SQ = sp.IndexedBase("Sq")    # covariance of the query token z_q = (x_q, 0)
W = sp.IndexedBase("w")      # the query's label vector: y_q = sum_d w[d] z_q[d]

# Free indices: the feature Phi[a, b, c] and its partner Phi[a2, b2, c2]; d is summed against w.
A_IDX = sp.symbols("a b c a2 b2 c2")
D_IDX = sp.Symbol("d")
E_IDX = sp.Symbol("e")


def pairings(items: list) -> list[list[tuple]]:
    """All perfect matchings of ``items`` (empty for an odd number)."""
    if not items:
        return [[]]
    if len(items) % 2:
        return []
    first, rest = items[0], items[1:]
    out = []
    for k, partner in enumerate(rest):
        for tail in pairings(rest[:k] + rest[k + 1:]):
            out.append([(first, partner)] + tail)
    return out


def isserlis(indices: list, cov: sp.IndexedBase) -> sp.Expr:
    """E[prod_k z[i_k]] for z ~ N(0, cov): sum over pairings of prod cov[i, j]."""
    return sp.Add(*[sp.Mul(*[cov[i, j] for i, j in p]) for p in pairings(list(indices))])


def set_partitions(items: list) -> list[list[list]]:
    if not items:
        return [[]]
    first, rest = items[0], items[1:]
    out = []
    for part in set_partitions(rest):
        out.append([[first]] + part)
        for k in range(len(part)):
            out.append(part[:k] + [[first] + part[k]] + part[k + 1:])
    return out


def falling(n: sp.Expr, m: int) -> sp.Expr:
    return sp.Mul(*[n - k for k in range(m)])


def context_moment(factors: list[tuple]) -> sp.Expr:
    """E[prod_k C[a_k, b_k]] with C = sum_{n <= N} z_n z_n^T, z_n i.i.d. N(0, S) (the token-sum rule)."""
    total = sp.Integer(0)
    for part in set_partitions(list(range(len(factors)))):
        term = falling(N_SYM, len(part))
        for block in part:
            term *= isserlis([i for k in block for i in factors[k]], S)
        total += term
    return total


def feature_moment(m_factors: list[tuple], query: list) -> sp.Expr:
    """E[prod_k M[a_k, b_k] prod_j z_q[c_j]] with M = C + z_q z_q^T (query independent of the context)."""
    total = sp.Integer(0)
    for choice in range(2 ** len(m_factors)):
        ctx, q = [], list(query)
        for k, pair in enumerate(m_factors):
            if choice >> k & 1:
                q.extend(pair)
            else:
                ctx.append(pair)
        total += context_moment(ctx) * isserlis(q, SQ)
    return sp.expand(total)


@functools.lru_cache(maxsize=None)
def moment_expressions() -> dict:
    """(LA-42, LA-43) in token form: A[a,b,c,a2,b2,c2] = E[M_ab M_a2b2 z_q,c z_q,c2],
    b[a,b,c] = E[M_ab z_q,c y_q] (y_q = w . z_q, index d summed), yy = E y_q^2 (indices d, e summed)."""
    a, b, c, a2, b2, c2 = A_IDX
    return {
        "A": feature_moment([(a, b), (a2, b2)], [c, c2]),
        "b": feature_moment([(a, b)], [c, D_IDX]) * W[D_IDX],
        "yy": sp.expand(isserlis([D_IDX, E_IDX], SQ) * W[D_IDX] * W[E_IDX]),
    }


def einsum_terms(expr: sp.Expr, free: tuple) -> list[tuple]:
    """Split a sum of products into (coefficient polynomial in N, einsum subscripts, operand names), the
    output indices in the order ``free``. Summed indices (d, e) are those not in ``free``."""
    letters = {}

    def letter(i):
        return letters.setdefault(i, "abcdefghijklmnop"[len(letters)])

    for i in free:
        letter(i)
    terms: dict[tuple, sp.Expr] = {}
    for term in sp.Add.make_args(sp.expand(expr)):
        coef, ops = sp.Integer(1), []
        for factor in sp.Mul.make_args(term):
            base, power = factor.as_base_exp()
            if isinstance(base, sp.Indexed):
                ops.extend([base] * int(power))
            else:
                coef *= factor
        key = tuple(sorted(((str(o.base), tuple(letter(i) for i in o.indices)) for o in ops)))
        terms[key] = terms.get(key, sp.Integer(0)) + coef
    out = []
    for key, coef in terms.items():
        subscripts = ",".join("".join(idx) for _, idx in key) + "->" + "".join(letter(i) for i in free)
        out.append((sp.factor(coef), subscripts, tuple(name for name, _ in key)))
    return out


@functools.lru_cache(maxsize=None)
def moment_terms() -> dict:
    """The einsum form of ``moment_expressions`` ("A", "b", "yy")."""
    e = moment_expressions()
    return {"A": einsum_terms(e["A"], A_IDX), "b": einsum_terms(e["b"], A_IDX[:3]), "yy": einsum_terms(e["yy"], ())}


# ---------------------------------------------------------------------------------------------------------
# One head's share of the flow (LA-44)

def head_pullback(rows: int, cols: int) -> dict:
    """For Theta = sum_i r_i w_i^T (rows x cols) and G = -dL/dTheta: d r_i/dt = G w_i, d w_i/dt = G^T r_i,
    obtained as the gradient of <G, r w^T> with respect to (r, w). Returns {name: (args, outputs)}."""
    r = sp.symbols(f"r0:{rows}")
    w = sp.symbols(f"w0:{cols}")
    G = sp.Matrix(rows, cols, lambda j, k: sp.Symbol(f"G_{j}_{k}"))
    contracted = sum(G[j, k] * r[j] * w[k] for j in range(rows) for k in range(cols))
    theta = [*r, *w]
    return {"head_rhs": ([theta, list(G)], [sp.diff(contracted, x) for x in theta])}


# ---------------------------------------------------------------------------------------------------------
# The in-weight drop law (LA-48) and the in-context delay estimate (LA-49)

T_SYM, U0_SYM, S1_SYM, A1_SYM = sp.symbols("t U0 s1 a1", positive=True)


def in_weight_drop_time() -> sp.Expr:
    """(LA-48): along Theta = u l1 rho1^T the loss is E y^2 - 2 s1 u + a1 u^2 and u follows the logistic
    law du/dt = 4 u (s1 - a1 u) of (LA-26) with u(0) = U0; the time its loss crosses the midpoint of E y^2
    and E y^2 - s1^2/a1 is obtained from linear_merged.drop_time with ||b|| -> s1, a -> a1."""
    from . import linear_merged as lm
    return lm.drop_time().xreplace({lm.NB_SYM: S1_SYM, lm.A_SYM: A1_SYM})


P_SYM, LAM_SYM, TAU_SYM, C_SYM, USTAR_SYM = sp.symbols("p lam tau c ustar", positive=True)


def in_context_delay() -> sp.Expr:
    """(LA-49), the linear estimate: after phase 1, Theta_(y,perp) grows at rate 2 u* f_perp with
    f_perp = c p lam^2 sqrt(D-1); it must reach (1 - 1/sqrt 2) of its value at the optimum
    sqrt(D-1) beta_perp*, beta_perp* = (p/c) N / ((N+1) p lam + tau_eff) with tau_eff -> tau (LA-20 form).
    Gives Delta_lin = (1 - 1/sqrt 2) N / (2 u* c^2 p lam^2 ((N+1) lam + tau))."""
    target = (1 - 1 / sp.sqrt(2)) * N_SYM / (C_SYM * ((N_SYM + 1) * LAM_SYM + TAU_SYM))
    rate = 2 * USTAR_SYM * C_SYM * P_SYM * LAM_SYM ** 2
    return sp.simplify(target / rate)


# ---------------------------------------------------------------------------------------------------------
# Softmax attention: the small-score expansion (linear_attention_iwl.md §13, LA-51 to LA-53)

def centring_traces(N=N_SYM):
    """tr J and tr J^2 for the centring J = I_N - 1 1^T/(N+1) of the N context labels (§13.2), computed
    from J's eigenvalues: 1 (N-1 times) and 1 - N/(N+1) (once)."""
    low = 1 - N / (N + 1)
    return sp.simplify((N - 1) + low), sp.simplify((N - 1) + low ** 2)


def expansion_loss(D: int):
    """(LA-52) in the covariance eigenbasis (Lambda = diag(lam)): the population loss of the expansion
    (LA-51) on the invariant manifold, as a function of B (D x D) and V = sum_i v_i. Returns
    (loss, B symbols row-major, V, parameter symbols (lam_1..lam_D, N))."""
    lam = sp.symbols(f"lam1:{D + 1}", positive=True)
    B = sp.Matrix(D, D, lambda a, b: sp.Symbol(f"B_{a}_{b}"))
    V = sp.Symbol("V")
    N = N_SYM
    L = sp.diag(*lam)
    tau = sum(lam)
    trJ, trJ2 = centring_traces(N)
    cp = N / (N + 1)
    rho = N / (N + 1)
    Sc = ((trJ ** 2 + trJ2) * L ** 2 + trJ2 * tau * L) / N ** 2
    gamma = N * tau / (N + 1) ** 2
    BL = B * L
    loss = (tau - 2 * cp * rho * sum(B[d, d] * lam[d] ** 2 for d in range(D))
            + cp ** 2 * (B.T * Sc * B * L).trace()
            + gamma * ((V - cp / N * BL.trace()) ** 2 + (cp / N) ** 2 * ((BL * BL).trace() + (BL * B.T * L).trace())))
    return loss, list(B), V, [*lam, N]


def expansion_system(D: int) -> dict:
    """(loss, G_B = -dL/dB, G_V = -dL/dV) of (LA-52), for ``reduced_dynamics.compile``-style lambdify."""
    loss, b, V, params = expansion_loss(D)
    return {"loss": ([b, [V], params], [loss]),
            "G": ([b, [V], params], [-sp.diff(loss, x) for x in b] + [-sp.diff(loss, V)])}


def centred_ladder(lam, N=N_SYM):
    """(LA-53): the ladder (LA-30) with 1/N replaced by 1/N_eff, N_eff = (tr J)^2 / tr J^2; levels
    L(M_m) = tau - sum_{d <= m} lam_d / (1 + (1 + tau/lam_d)/N_eff), m = 0..D (lam decreasing)."""
    trJ, trJ2 = centring_traces(N)
    n_eff = sp.simplify(trJ ** 2 / trJ2)
    tau = sum(lam)
    levels = [tau]
    for l in lam:
        levels.append(levels[-1] - l / (1 + (1 + tau / l) / n_eff))
    return levels, n_eff
