"""Exact finite-N evaluators of the softmax-feature loss (note §6, §9; checks 2, 5, 16 of §11)."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from reduced_dynamics.specs import SpecError
from reduced_dynamics.theory.softmax.exact import (CountEnumeration, count_vectors, monte_carlo_columns,
                                                   per_prompt_terms, symmetric_column, symmetric_floor)


def _symmetric_M(K, k, A):
    M = np.zeros((K, K))
    M[:, k] = -A / (K - 1)
    M[k, k] = A
    return M


@pytest.mark.parametrize("N,K", [(1, 2), (5, 3), (30, 4), (50, 4)])
def test_count_vectors(N, K):
    c = count_vectors(N, K)
    assert len(c) == math.comb(N + K - 1, K - 1)
    assert np.all(c.sum(axis=1) == N) and np.all(c >= 0)
    assert len({tuple(r) for r in c}) == len(c)


@pytest.mark.parametrize("include_query_token", [False, True])
def test_enumerated_gradient_matches_finite_differences(include_query_token):
    """Check 2: grad L_k of (SF-16)/(SF-19a) vs central differences, relative error < 1e-6."""
    p = np.array([0.4, 0.3, 0.2, 0.1])
    enum = CountEnumeration(p, 12, include_query_token)
    M = np.random.default_rng(0).normal(scale=1.5, size=(4, 4))
    _, G = enum.evaluate(M)
    h = 1e-6
    fd = np.zeros_like(G)
    for n in range(4):
        for k in range(4):
            E = np.zeros((4, 4))
            E[n, k] = h
            fd[n, k] = (enum.evaluate(M + E)[0][k] - enum.evaluate(M - E)[0][k]) / (2 * h)
    assert np.abs(fd - G).max() / np.abs(G).max() < 1e-6


@pytest.mark.parametrize("include_query_token", [False, True])
@pytest.mark.parametrize("q", [0.25, 0.6])
def test_symmetric_sum_equals_enumeration(q, include_query_token):
    """Check 5: (SF-19b) equals (SF-19a) on the symmetric subspace to 1e-12 (K = 4, N = 30)."""
    p = [q] + [(1 - q) / 3] * 3
    enum = CountEnumeration(p, 30, include_query_token)
    for A in (0.0, 0.7, 2.3, 5.0):
        L, G = enum.evaluate(_symmetric_M(4, 0, A))
        Ls, gA, gB = symmetric_column(A, -A / 3, q, 4, 30, include_query_token)
        assert abs(L[0] - Ls) < 1e-12
        assert abs(G[0, 0] - gA) < 1e-12
        np.testing.assert_allclose(G[1:, 0], gB, atol=1e-12)


def test_monte_carlo_agrees_with_enumeration():
    """(SF-19c) vs (SF-19a): |z| < 4 for every L_k and gradient entry at a random M (K = 3, N = 10)."""
    p = np.array([0.5, 0.3, 0.2])
    M = np.random.default_rng(1).normal(scale=1.5, size=(3, 3))
    L, G = CountEnumeration(p, 10).evaluate(M)
    Lm, Lse, Gm, Gse = monte_carlo_columns(M, p, 10, 5000, 50, np.random.default_rng(2))
    assert np.abs((Lm - L) / Lse).max() < 4
    assert np.abs((Gm - G) / Gse).max() < 4


def test_floor():
    """Check 16: the floor (SF-32) equals L_k at A = 60 (symmetric, balanced K = 4, N = 30) to 1e-9; note 1.21e-4."""
    floor = symmetric_floor(0.25, 4, 30)
    L, _, _ = symmetric_column(60.0, -20.0, 0.25, 4, 30)
    assert abs(L - floor) / floor < 1e-9
    assert floor == pytest.approx(1.2104e-4, rel=1e-3)


def test_wide_logit_path_reaches_the_floor():
    """A column spread beyond 600 takes the log-count path; at A = 650 L_k is the floor (SF-32) to 1e-12."""
    enum = CountEnumeration([0.25] * 4, 30)
    L = enum.losses(_symmetric_M(4, 0, 650.0))[0]
    assert abs(L - symmetric_floor(0.25, 4, 30)) < 1e-12
    L60, G60 = enum.evaluate(_symmetric_M(4, 0, 60.0))
    assert abs(L60[0] - symmetric_column(60.0, -20.0, 0.25, 4, 30)[0]) < 1e-15


def test_empty_own_feature_gives_zero_attention():
    """A prompt without a token of the query's feature has a_k = 0, so ell_k >= 1/2 (SF-7, SF-32)."""
    ell, _ = per_prompt_terms(np.array([[0, 3, 2]]), np.array([[50.0, 0, 0], [0, 0, 0], [0, 0, 0]]))
    assert ell[0, 0] >= 0.5


@settings(max_examples=15, deadline=None)
@given(K=st.integers(2, 5), N=st.integers(1, 12), seed=st.integers(0, 2 ** 16),
       include_query_token=st.booleans())
def test_enumeration_properties(K, N, seed, include_query_token):
    """Weights sum to one; gradient columns sum to zero (SF-15); dL_k/dA_k <= 0 (SF-17); 0 <= L_k <= 1 (SF-8)."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(K))
    p = p / p.sum()
    if np.any(p <= 1e-12):
        return
    enum = CountEnumeration(p, N, include_query_token)
    assert enum.weights.sum() == pytest.approx(1.0, abs=1e-10)
    M = rng.normal(scale=2.0, size=(K, K))
    L, G = enum.evaluate(M)
    np.testing.assert_allclose(G.sum(axis=0), 0.0, atol=1e-12)
    assert np.all(np.diag(G) <= 1e-15)
    assert np.all((L >= 0) & (L <= 1.0))


def test_bad_input():
    with pytest.raises(SpecError, match="probabilities"):
        CountEnumeration([0.5, 0.6], 10)
    with pytest.raises(SpecError, match="probabilities"):
        CountEnumeration([1.2, -0.2], 10)
    with pytest.raises(SpecError, match="context"):
        count_vectors(0, 3)
