"""Exact identities of the sparse-family estimators: SM-C5, SM-C6, SM-C7, GD forms (SM-22/23), ridge (SM-20),
Lasso optimality (SM-21)."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from reduced_dynamics.specs import SparseSpec, SpecError
from reduced_dynamics.tasks.sparse_regression import context_statistics, sample_prompts
from reduced_dynamics.theory.sparse import algorithms as alg


def _data(d, n, count=5, seed=0, noise=0.3, s=2):
    spec = SparseSpec(dim=d, sparsity=min(s, d), context=n, noise=noise, nonzero_law="rademacher")
    p = sample_prompts(spec, count, np.random.default_rng(seed))
    S, r, _ = context_statistics(p)
    return p, S, r


def _rel(a, b):
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


@pytest.mark.parametrize("normalisation", ["none", "max"])
def test_sm_c5_pto_step_forms_agree(normalisation):
    """(SM-26) = (SM-27) = (SM-29 spectral) = (SM-29 matrix power form), d = 12, n = 40. Tolerance 1e-10."""
    p, S, r = _data(12, 40)
    eta, T = 0.3 if normalisation == "max" else 2.0, 7
    steps = alg.pto_steps(p.X, p.y, eta, T, normalisation)
    pre = alg.pto_preconditioned_steps(S, r, eta, T, normalisation)
    spec = alg.pto_spectral(S, r, eta, T, normalisation)
    assert _rel(pre, steps) < 1e-10
    assert _rel(spec, steps) < 1e-10
    R2 = alg.pto_scale(r, normalisation) ** 2
    for b in range(r.shape[0]):
        M = np.eye(12) - eta * R2[b][:, None] * S[b]
        power = (np.eye(12) - np.linalg.matrix_power(M, T)) @ np.linalg.solve(S[b], r[b])
        assert _rel(spec[b], power) < 1e-10


def test_sm_c5_pto_flow_closed_forms_and_integrator():
    """(SM-30): eigh form = expm form for invertible S (d = 12, n = 40), tolerance 1e-10; for n < d
    (d = 20, n = 8) solve_ivp (rtol 1e-11) agrees with the eigh form to 1e-8."""
    p, S, r = _data(12, 40)
    for tau in (0.5, 7.0, 60.0):
        assert _rel(alg.pto_flow(S, r, [tau])[0], alg.pto_flow_expm(S, r, tau)) < 1e-10
    p, S, r = _data(20, 8, count=3)
    taus = np.array([0.25, 2.0, 16.0, 128.0])
    closed = alg.pto_flow(S, r, taus)
    ivp = alg.pto_flow_ivp(S, r, taus, rtol=1e-11)
    assert _rel(ivp, closed) < 1e-8


def test_sm_c6_pto_inf_is_a_time_change():
    """(SM-31): PtO-inf at tau equals PtO at tau / max r_j^2, in depth and in steps. Tolerance 1e-12."""
    p, S, r = _data(10, 30)
    nu2 = np.max(np.abs(r), axis=1) ** 2
    for tau in (0.3, 5.0, 200.0):
        inf = alg.pto_flow(S, r, [tau], "max")[0]
        plain = np.stack([alg.pto_flow(S[b:b + 1], r[b:b + 1], [tau / nu2[b]])[0, 0] for b in range(r.shape[0])])
        assert _rel(inf, plain) < 1e-12
    inf = alg.pto_spectral(S, r, 0.4, 6, "max")
    plain = np.stack([alg.pto_spectral(S[b:b + 1], r[b:b + 1], 0.4 / nu2[b], 6)[0] for b in range(r.shape[0])])
    assert _rel(inf, plain) < 1e-12


def test_sm_c7_one_step_is_cube_of_r():
    """(SM-28): one PtO step (nu = 1) from 0 gives eta r ⊙ r ⊙ r exactly."""
    p, S, r = _data(9, 20)
    np.testing.assert_allclose(alg.pto_steps(p.X, p.y, 0.7, 1), 0.7 * r ** 3, rtol=1e-13, atol=0)
    np.testing.assert_allclose(alg.pto_spectral(S, r, 0.7, 1), 0.7 * r ** 3, rtol=1e-10, atol=1e-15)


@settings(max_examples=12, deadline=None)
@given(d=st.integers(1, 10), n=st.integers(1, 14), T=st.integers(0, 9), eta=st.floats(0.01, 0.5),
       seed=st.integers(0, 1000))
def test_gd_spectral_equals_steps_any_shape(d, n, T, eta, seed):
    """(SM-23) spectral form = (SM-22) explicit steps for every shape, including n < d and T = 0."""
    p, S, r = _data(d, n, count=3, seed=seed)
    steps = alg.gd_steps(S, r, eta, T)
    spec = alg.gd_spectral(S, r, eta, T)
    assert np.max(np.abs(spec - steps)) <= 1e-10 * max(1.0, np.max(np.abs(steps)))


def test_gd_flow_solves_its_ode_and_has_the_zero_eigenvalue_limit():
    """(SM-23) flow: dw/dtau = r - S w checked by a central difference in tau; for n < d the component in
    the null space of S stays 0 (limit tau at lam = 0 times a zero coefficient)."""
    p, S, r = _data(16, 6)
    tau, h = 3.0, 1e-5
    w = alg.gd_flow(S, r, [tau - h, tau, tau + h])
    deriv = (w[2] - w[0]) / (2 * h)
    assert _rel(deriv, r - np.einsum("bij,bj->bi", S, w[1])) < 1e-7
    assert np.all(np.isfinite(alg.gd_flow(S, r, [1e4])))
    # many small GD steps approach the flow (first-order in the step)
    assert _rel(alg.gd_spectral(S, r, 1e-3, 3000), w[1]) < 2e-3


def test_flow_and_step_factors_at_zero_and_small_eigenvalues():
    lam = np.array([0.0, 1e-300, 1e-12, 0.5, 3.0])
    np.testing.assert_allclose(alg.flow_factor(lam, 2.0)[:3], 2.0, rtol=1e-11)
    np.testing.assert_allclose(alg.step_factor(lam, 0.1, 7)[:3], 0.7, rtol=1e-10)
    np.testing.assert_allclose(alg.step_factor(np.array([3.0]), 0.1, 7), (1 - 0.7 ** 7) / 3.0, rtol=1e-14)


def test_ridge_matches_direct_solve_and_lasso_satisfies_kkt():
    p, S, r = _data(8, 12, count=4)
    lam = 0.3
    w = alg.ridge(S, r, [lam])[0]
    for b in range(4):
        np.testing.assert_allclose(w[b], np.linalg.solve(S[b] + lam * np.eye(8), r[b]), rtol=1e-12)
    # Lasso (SM-21) optimality: S w - r + alpha * subgradient = 0
    alpha = 0.05
    wl = alg.lasso(p.X, p.y, [alpha])[0]
    grad = np.einsum("bij,bj->bi", S, wl) - r
    on = wl != 0
    assert np.max(np.abs(grad[on] + alpha * np.sign(wl[on]))) < 1e-4
    assert np.max(np.abs(grad[~on])) <= alpha * (1 + 1e-4)


def test_bad_hyper_parameters_raise():
    p, S, r = _data(4, 6, count=2)
    with pytest.raises(SpecError):
        alg.ridge(S, r, [0.0])
    with pytest.raises(SpecError):
        alg.lasso(p.X, p.y, [-1.0])
    with pytest.raises(SpecError):
        alg.pto_scale(r, "l2")
