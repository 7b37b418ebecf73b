"""The Laplace-quadrature evaluator of the exact finite-N expectations (LaplaceQuadrature) against the count
enumeration (SF-19a) where both run, the binomial sum (SF-19b) and Monte Carlo (SF-19c) at large N, and whole
exact-N curves against the enumerated flow (note §6, §9)."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from reduced_dynamics.specs import SoftmaxFeaturesSpec, SpecError
from reduced_dynamics.theory.softmax import features
from reduced_dynamics.theory.softmax.exact import (CountEnumeration, LaplaceQuadrature, monte_carlo_columns,
                                                   symmetric_column, symmetric_floor)

IMBALANCED = (0.6, 0.4 / 3, 0.4 / 3, 0.4 / 3)


def _symmetric_M(K, k, A):
    M = np.zeros((K, K))
    M[:, k] = -A / (K - 1)
    M[k, k] = A
    return M


def _relative(fast, exact):
    """max |fast - exact| / max |exact|, with an absolute floor for an all-zero reference (N = 1: G = 0)."""
    return np.abs(fast - exact).max() / max(np.abs(exact).max(), 1e-4)


@settings(deadline=None)
@given(K=st.integers(2, 5), N=st.integers(1, 12), scale=st.sampled_from([0.0, 0.5, 1.5, 3.0]),
       seed=st.integers(0, 2 ** 16), include_query_token=st.booleans())
def test_equals_enumeration_at_random_states(K, N, scale, seed, include_query_token):
    """L_k, grad L_k and E[a] of the quadrature equal the enumeration (SF-19a) to 1e-10 relative, for random p
    (Dirichlet) and M (Gaussian), both softmax conventions (SF-6)."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(K))
    p = (p + 1e-3) / (1 + K * 1e-3)
    M = rng.normal(scale=scale, size=(K, K))
    enum, fast = CountEnumeration(p, N, include_query_token), LaplaceQuadrature(p, N, include_query_token)
    L, G = enum.evaluate(M)
    Lf, Gf = fast.evaluate(M)
    assert _relative(Lf, L) < 1e-10
    assert _relative(Gf, G) < 1e-10
    np.testing.assert_allclose(fast.losses(M), L, rtol=1e-10)
    np.testing.assert_allclose(fast.flow_rhs(M), enum.flow_rhs(M), rtol=0, atol=1e-10 * max(np.abs(G).max(), 1e-4))
    _, a = enum.losses_and_attention(M)
    assert np.abs(fast.losses_and_attention(M)[1] - a).max() < 1e-12
    np.testing.assert_allclose(Gf.sum(axis=0), 0.0, atol=1e-15)          # (SF-15)


def _high_precision_gradient(p, N, include_query_token, M):
    """grad L_k by the enumeration (SF-19a) with the per-prompt gradient (SF-16) in 40-digit arithmetic."""
    import mpmath as mp

    K = len(p)
    G = np.zeros((K, K))
    with mp.workdps(40):
        for k in range(K):
            acc = [mp.mpf(0)] * K
            for c in CountEnumeration(p, N).counts:
                w = mp.factorial(N)
                for j in range(K):
                    w *= mp.mpf(p[j]) ** int(c[j]) / mp.factorial(int(c[j]))
                e = [int(c[j]) * mp.exp(mp.mpf(M[j, k])) for j in range(K)]
                Z = sum(e) + (mp.exp(mp.mpf(M[k, k])) if include_query_token else 0)
                a = [x / Z for x in e]
                a_q = mp.exp(mp.mpf(M[k, k])) / Z if include_query_token else 0
                g = [a[j] - (j == k) for j in range(K)]
                gbar = sum(a[j] * g[j] for j in range(K))
                for n in range(K):
                    acc[n] += w * (a[n] * (g[n] - gbar) - (a_q * gbar if n == k else 0))
            G[:, k] = [float(x) for x in acc]
    return G


@pytest.mark.parametrize("seed", range(4))
def test_gradient_keeps_precision_in_saturated_columns(seed):
    """Own weights A_k of 6-14 (column gradients down to 2e-7): every column of the quadrature's gradient equals a
    40-digit enumeration to 1e-12 relative (measured 5e-15; the float enumeration is off by up to 7e-12 here)."""
    rng = np.random.default_rng(100 + seed)
    K, N, include_query_token = 3, 6, bool(seed % 2)
    p = rng.dirichlet(np.ones(K))
    M = rng.normal(scale=2.0, size=(K, K)) + np.diag(rng.uniform(6, 14, K))
    exact = _high_precision_gradient(p, N, include_query_token, M)
    G = LaplaceQuadrature(p, N, include_query_token).evaluate(M)[1]
    assert np.all(np.abs(G - exact).max(axis=0) < 1e-12 * np.abs(exact).max(axis=0))


def test_stack_of_states_equals_one_at_a_time():
    """Every method takes a stack (..., K, K): the same numbers as state by state."""
    rng = np.random.default_rng(3)
    fast = LaplaceQuadrature(IMBALANCED, 50, include_query_token=True)
    Ms = rng.normal(scale=2.0, size=(2, 3, 4, 4))
    L, G = fast.evaluate(Ms)
    La, a = fast.losses_and_attention(Ms)
    for i in np.ndindex(2, 3):
        Li, Gi = fast.evaluate(Ms[i])
        np.testing.assert_allclose(L[i], Li, rtol=1e-13)
        np.testing.assert_allclose(G[i], Gi, rtol=1e-12, atol=1e-16)
        np.testing.assert_allclose(a[i], fast.losses_and_attention(Ms[i])[1], rtol=1e-13)
    np.testing.assert_allclose(La, L, rtol=1e-15)


@pytest.mark.parametrize("include_query_token", [False, True])
@pytest.mark.parametrize("N", [30, 640, 5000])
@pytest.mark.parametrize("q", [0.25, 0.6])
def test_equals_binomial_sum_at_large_n(q, N, include_query_token):
    """On the symmetric subspace the quadrature equals the 1-D sum (SF-19b) at any N (no enumeration): the loss to
    1e-12, the gradient to 1e-10 relative (SF-19b's own gradient loses digits as the column saturates: at A = 5
    it differs from the enumeration by up to 8e-12 relative, the quadrature by 1e-13)."""
    p = [q] + [(1 - q) / 3] * 3
    fast = LaplaceQuadrature(p, N, include_query_token)
    for A in (0.0, 0.7, 2.3, 5.0):
        L, G = fast.evaluate(_symmetric_M(4, 0, A))
        Ls, gA, gB = symmetric_column(A, -A / 3, q, 4, N, include_query_token)
        assert abs(L[0] - Ls) < 1e-12 * Ls
        assert abs(G[0, 0] - gA) < 1e-10 * abs(gA)
        np.testing.assert_allclose(G[1:, 0], gB, rtol=1e-10)


def test_wide_logit_spread_reaches_the_floor():
    """Logit spreads beyond the exp range (A = 650) are handled in logs: L_k is the floor (SF-32) to 1e-12."""
    fast = LaplaceQuadrature([0.25] * 4, 30)
    floor = symmetric_floor(0.25, 4, 30)
    assert abs(fast.losses(_symmetric_M(4, 0, 650.0))[0] - floor) < 1e-12 * floor
    assert abs(fast.losses(_symmetric_M(4, 0, 60.0))[0] - floor) < 1e-12 * floor


def test_large_n_asymmetric_state_matches_monte_carlo_and_differences():
    """N = 640, a random (asymmetric) M, imbalanced p, both conventions: L_k and grad L_k agree with count-only
    Monte Carlo (SF-19c, |z| < 4.5), and the gradient with central differences of the loss (relative 1e-6)."""
    rng = np.random.default_rng(5)
    M = rng.normal(scale=1.5, size=(4, 4))
    for include_query_token in (False, True):
        fast = LaplaceQuadrature(IMBALANCED, 640, include_query_token)
        L, G = fast.evaluate(M)
        Lm, Lse, Gm, Gse = monte_carlo_columns(M, IMBALANCED, 640, 2000, 40, np.random.default_rng(6),
                                               include_query_token)
        assert np.abs((Lm - L) / Lse).max() < 4.5
        assert np.abs((Gm - G) / Gse).max() < 4.5
        h = 1e-5
        fd = np.zeros((4, 4))
        for n in range(4):
            for k in range(4):
                E = np.zeros((4, 4))
                E[n, k] = h
                fd[n, k] = (fast.losses(M + E)[k] - fast.losses(M - E)[k]) / (2 * h)
        assert np.abs(fd - G).max() / np.abs(G).max() < 1e-6


@pytest.mark.parametrize("p, N, include_query_token", [
    ((0.25,) * 4, 12, False), (IMBALANCED, 20, False), ((0.5, 0.3, 0.2), 10, True),
    ((0.35, 0.25, 0.2, 0.12, 0.08), 8, True)])
def test_whole_curve_equals_enumerated_flow(p, N, include_query_token):
    """The exact-N flow to t = 300 with either evaluator: states and losses agree to 1e-10 (measured 3e-13 at
    the default K = 4, N = 30)."""
    t = np.linspace(0.0, 300.0, 61)
    enum = features.exact_flow(p, N, t, include_query_token=include_query_token, method="enumeration")
    fast = features.exact_flow(p, N, t, include_query_token=include_query_token)
    assert np.abs(fast.M - enum.M).max() < 1e-10
    np.testing.assert_allclose(fast.loss_k, enum.loss_k, rtol=1e-10)


def test_predict_observables_equal_the_enumeration():
    """predict's attention and per-feature losses equal the enumeration's at its states (K = 3, N = 15)."""
    spec = SoftmaxFeaturesSpec(features=3, dim=3, context=15, dominant=0.5, t_max=100.0, lr=2.0)
    traj = features.predict(spec)
    enum = CountEnumeration(spec.p, spec.context)
    for i in range(0, len(traj.t), 10):
        L, a = enum.losses_and_attention(traj.observables["M"][i])
        np.testing.assert_allclose(traj.observables["loss_k"][i], L, rtol=1e-10)
        np.testing.assert_allclose(traj.observables["attention"][i], a, rtol=0, atol=1e-12)


def test_bad_method():
    with pytest.raises(SpecError, match="method"):
        features.exact_evaluator((0.5, 0.5), 10, method="fft")
    with pytest.raises(SpecError, match="context"):
        LaplaceQuadrature((0.5, 0.5), 0)
