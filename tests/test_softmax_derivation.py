"""Checks of the SymPy derivation for the softmax-feature family (note §7, §8; checks 5, 9, 13 of §11)."""
import math

import numpy as np
import pytest
import sympy as sp

from reduced_dynamics.derivations import softmax_features as der
from reduced_dynamics.theory.softmax.exact import CountEnumeration
from reduced_dynamics.theory.softmax.features import large_n_flow, large_n_functions


def _note_rhs(M, p):
    """(SF-21) as printed in the note, typed here only to check the derived right-hand side."""
    K = len(p)
    out = np.zeros((K, K))
    for k in range(K):
        w = p * np.exp(M[:, k])
        pi = w / w.sum()
        S = np.sum(pi ** 2)
        for n in range(K):
            out[n, k] = (p[k] * pi[k] * (1 - 2 * pi[k] + S) if n == k
                         else -p[k] * pi[n] * (pi[n] + pi[k] - S))
    return out


@pytest.mark.parametrize("K", [2, 3, 4])
def test_derived_rhs_matches_note_and_is_minus_gradient(K):
    system = der.large_n_system(K)
    # minus the gradient of the total loss, entry by entry (SF-13): column k only sees p_k L_k.
    for n in range(K):
        for k in range(K):
            assert sp.simplify(system.rhs[n, k] + sp.diff(system.loss, system.M[n, k])) == 0
    rhs, _ = large_n_functions(K)
    rng = np.random.default_rng(K)
    for _ in range(3):
        M = rng.normal(scale=1.5, size=(K, K))
        p = rng.dirichlet(np.ones(K))
        got = np.asarray(rhs(M.ravel(), p), float).reshape(K, K)
        np.testing.assert_allclose(got, _note_rhs(M, p), rtol=1e-12, atol=1e-14)


def test_columns_decouple_and_conserve():
    """(SF-14): column k of the rhs depends on column k only; (SF-15): each column of the rhs sums to zero."""
    K = 3
    system = der.large_n_system(K)
    for k in range(K):
        column_rhs = system.rhs[:, k]
        others = {system.M[n, j] for n in range(K) for j in range(K) if j != k}
        assert not (set().union(*[e.free_symbols for e in column_rhs]) & others)
        assert sp.simplify(sum(column_rhs)) == 0


def test_symmetric_reduction():
    """(SF-24), (SF-25): L = K/(2(K-1)) (1-pi)^2 and d pi/dt = q K^2/(K-1)^2 pi^2 (1-pi)^3, derived; (SF-15)."""
    sym = der.symmetric_system()
    K, q, x = sym.K, sym.q, sym.x
    assert sp.simplify(sym.loss_pi - K / (2 * (K - 1)) * (1 - x) ** 2) == 0
    assert sp.simplify(sym.rate - q * K ** 2 / (K - 1) ** 2) == 0
    assert sym.conservation == 0


def test_symmetric_reduction_agrees_with_full_system_numerically():
    """The symmetric line is invariant under the K^2 flow and its A-component equals the 1-D rhs (K = 4)."""
    K, q = 4, 0.6
    p = np.array([q] + [(1 - q) / 3] * 3)
    rhs, _ = large_n_functions(K)
    sym = der.symmetric_system()
    rhs_A = sp.lambdify((sym.u, sym.v), sym.rhs_A.subs({sym.K: K, sym.q: q}))
    for A in (0.0, 0.8, 3.0):
        M = np.full((K, K), 0.0)
        M[:, 0] = [A] + [-A / 3] * 3
        out = np.asarray(rhs(M.ravel(), p), float).reshape(K, K)[:, 0]
        np.testing.assert_allclose(out[1:], out[1], rtol=1e-12)
        assert out[0] == pytest.approx(rhs_A(math.exp(A), math.exp(-A / 3)), rel=1e-12)


def test_time_law_is_an_antiderivative():
    """(SF-26): both the partial-fraction F and the note's F differentiate to 1/(x^2 (1-x)^3), differ by a constant."""
    law = der.time_law()
    x = law.x
    assert sp.simplify(sp.diff(law.F_note, x) - law.integrand) == 0
    assert sp.simplify(sp.diff(law.F_partial_fractions, x) - law.integrand) == 0
    diffs = [complex(sp.N((law.F_note - law.F_partial_fractions).subs(x, v))) for v in (0.1, 0.5, 0.9)]
    assert max(abs(d - diffs[0]) for d in diffs) < 1e-12


@pytest.mark.parametrize("K,q,eps,expected", [
    (4, sp.Rational(1, 4), 0.1, 26.958), (4, sp.Rational(1, 4), 0.01, 130.886),
    (4, sp.Rational(3, 5), 0.05, 7.353), (4, sp.Rational(3, 5), 0.01, 43.834)])
def test_time_to_loss_reproduces_the_note_examples(K, q, eps, expected):
    assert float(der.time_to_loss(K, q, eps)) == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize("K", [4, 8])
def test_closed_form_against_integrator(K):
    """Check 9: integrating the derived (SF-21) to t_eps from (SF-26) gives L = eps to 1e-7 (balanced)."""
    eps_list = (0.1, 0.05, 0.02)
    times = [float(der.time_to_loss(K, sp.Rational(1, K), e)) for e in eps_list]
    flow = large_n_flow([1.0 / K] * K, np.array(times))
    for row, eps in zip(flow.loss_k, eps_list):
        np.testing.assert_allclose(row, eps, atol=1e-7)


def test_phase_one_length_matches_the_note():
    """(SF-28): t_1 = [F(1/2) - F(1/K)]/c_k; note values 17.42 (K = 4), 91.26 (K = 8)."""
    law = der.time_law()
    for K, expected in ((4, 17.42), (8, 91.26)):
        c = der.symmetric_rate(K, sp.Rational(1, K))
        t1 = (law.F_note.subs(law.x, sp.Rational(1, 2)) - law.F_note.subs(law.x, sp.Rational(1, K))) / c
        assert float(t1) == pytest.approx(expected, abs=0.01)


def test_minor_feature_system():
    """(SF-29): conserved A + B1 + (K-2) Bo; rhs equals the K^2 system on the subspace; initial sign pattern (SF-18)."""
    m = der.minor_feature_system()
    assert sp.simplify(sum(sp.diff(m.conserved, s) * r for s, r in zip((m.A, m.B1, m.Bo), m.rhs))) == 0
    K, p1 = 4, 0.6
    p = np.array([p1] + [(1 - p1) / 3] * 3)
    rhs, _ = large_n_functions(K)
    f = sp.lambdify((m.A, m.B1, m.Bo), [r.subs({m.K: K, m.p1: p1}) for r in m.rhs])
    for A, B1, Bo in ((0.0, 0.0, 0.0), (0.7, -0.5, -0.1), (2.0, -1.0, -0.5)):
        M = np.zeros((K, K))
        M[:, 1] = [B1, A, Bo, Bo]          # column of minor feature 1: rows are token features
        full = np.asarray(rhs(M.ravel(), p), float).reshape(K, K)[:, 1]
        np.testing.assert_allclose(f(A, B1, Bo), [full[1], full[0], full[2]], rtol=1e-12, atol=1e-15)
        assert full[3] == pytest.approx(full[2], rel=1e-12)
    dA, dB1, dBo = f(0.0, 0.0, 0.0)
    assert dB1 < 0 < dBo and dA > 0


def test_large_n_loss_is_the_limit_of_the_exact_loss():
    """(SF-20)/(SF-23): N (L_k(N) - L_k^inf) stays bounded, i.e. the exact loss tends to (SF-20) like 1/N."""
    K = 3
    p = np.array([0.5, 0.3, 0.2])
    rng = np.random.default_rng(3)
    M = rng.normal(size=(K, K))
    _, losses = large_n_functions(K)
    L_inf = np.asarray(losses(M.ravel(), p), float)
    scaled = [N * np.abs(CountEnumeration(p, N).evaluate(M)[0] - L_inf).max() for N in (50, 100, 200)]
    assert max(scaled) < 2 * min(scaled)
    assert scaled[-1] / 200 < 0.01
