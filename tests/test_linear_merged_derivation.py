"""The SymPy derivation of ATTN_M (linear_attention.md §5, §6): loss, right-hand side, fixed points and the
closed form, checked against finite differences, an independent route and the note's stated formulas."""
import math

import numpy as np
import pytest
import sympy as sp

from reduced_dynamics.derivations import linear_merged as lm
from reduced_dynamics.compile import compile_system


def _numeric(expr, subs):
    return float(expr.xreplace(subs).evalf())


@pytest.mark.parametrize("moments", ["population", "sample"])
def test_block_route_equals_full_symbolic_route(moments, tmp_path):
    """head pull-back of G (block route) == minus the symbolic gradient of the whole H-head loss (LA-22)."""
    D, H = 2, 3
    full = compile_system(lm, "full_system", {"D": D, "H": H, "moments": moments}, tmp_path)
    block = compile_system(lm, "block_system", {"D": D, "moments": moments}, tmp_path)
    rng = np.random.default_rng(0)
    n = D * D
    if moments == "population":
        params = np.array([0.7, 0.3, 5.0, 1.0])
    else:
        X = rng.standard_normal((50, n))
        A = X.T @ X / 50
        params = np.concatenate([A[np.triu_indices(n)], rng.standard_normal(n), [1.3]])
    theta = rng.standard_normal((1 + n, H))
    state = theta.T.reshape(-1)                     # full route orders head by head
    G = block["G"](block["head_b"](theta).sum(axis=1), params)
    rhs_block = block["head_rhs"](theta, G[:, None]).T.reshape(-1)
    np.testing.assert_allclose(rhs_block, full["rhs"](state, params), rtol=1e-12, atol=1e-12)
    loss_block = block["loss"](block["head_b"](theta).sum(axis=1), params)[0]
    assert loss_block == pytest.approx(full["loss"](state, params)[0], rel=1e-12)


def test_derived_g_is_minus_gradient_of_loss_by_finite_differences(tmp_path):
    D = 3
    sysm = compile_system(lm, "block_system", {"D": D, "moments": "population"}, tmp_path)
    params = np.array([0.5, 0.3, 0.2, 7.0, 2.0])
    b = np.random.default_rng(1).standard_normal(D * D)
    eps = 1e-6
    fd = np.array([(sysm["loss"](b + eps * e, params)[0] - sysm["loss"](b - eps * e, params)[0]) / (2 * eps)
                   for e in np.eye(D * D)])
    np.testing.assert_allclose(sysm["G"](b, params), -fd, rtol=1e-7, atol=1e-9)


def test_minimiser_and_minimum_match_la20_la21():
    """SymPy's solution of G(B) = 0 equals (LA-20), and its loss equals (LA-21), symbolically."""
    D = 3
    Bstar, Lstar, lam = lm.population_minimiser(D)
    N, c = lm.N_SYM, lm.C_SYM
    tau = sum(lam)
    for d in range(D):
        expected = lam[d] / (c * ((N + 1) / N * lam[d] ** 2 + tau / N * lam[d]))
        assert sp.simplify(Bstar[d, d] - expected) == 0
        for e in range(D):
            if e != d:
                assert Bstar[d, e] == 0
    assert sp.simplify(Lstar - lm.minimum_loss_formula(lam)) == 0
    delta = sum(l / (1 + (1 + tau / l) / N) for l in lam)
    assert sp.simplify(Lstar - (tau - delta)) == 0
    assert sp.simplify(lm.saddle_loss(D) - tau) == 0          # (LA-23): the saddle M_0 sits at tau


@pytest.mark.parametrize("eigenvalues, N, expected", [
    ((0.4, 0.3, 0.2, 0.1), 31, 0.135995),
    (tuple(d / 36 for d in range(8, 0, -1)), 31, 0.21335),
    ((1.0, 1.0, 1.0, 1.0), 31, 0.555556),
])
def test_minimum_loss_matches_check_c3(eigenvalues, N, expected):
    """C3: the last entry of each ladder is L* (LA-21)."""
    lam = lm.eigenvalue_symbols(len(eigenvalues))
    value = _numeric(lm.minimum_loss_formula(lam), {**dict(zip(lam, eigenvalues)), lm.N_SYM: N})
    assert value == pytest.approx(expected, abs=6e-6)


def test_logistic_solution_solves_la26_and_drop_time_is_la28():
    ode, U = lm.logistic_ode()
    solution = lm.logistic_solution()
    residual = solution.diff(lm.T_SYM) - ode.rhs.subs(U(lm.T_SYM), solution)
    assert sp.simplify(residual) == 0
    assert sp.simplify(solution.subs(lm.T_SYM, 0) - lm.U0_SYM) == 0
    t_drop = lm.drop_time()
    for normb, a, U0 in [(2.0, 1.2, 1e-6), (0.19, 0.05, 4e-6), (1.0, 3.0, 0.01)]:
        ustar = normb / a
        formula = math.log((ustar / U0 - 1) * (math.sqrt(2) - 1)) / (4 * normb)     # (LA-28) as printed
        got = _numeric(t_drop, {lm.NB_SYM: normb, lm.A_SYM: a, lm.U0_SYM: U0})
        assert got == pytest.approx(formula, rel=1e-12)


def test_white_data_constants_match_the_paper():
    """c = 1, Lambda = I: ||b|| = sqrt(D) and a = 1 + (1 + D)/N (§6.4)."""
    D = 4
    normb, a, lam = lm.aligned_constants(D)
    subs = {**{l: 1 for l in lam}, lm.C_SYM: 1, lm.N_SYM: 31}
    assert _numeric(normb, subs) == pytest.approx(2.0)
    assert _numeric(a, subs) == pytest.approx(1 + 5 / 31)
