"""SymPy derivations of the sparse family: SM-24 (symbolic one-step risk), §8 restricted flow (SM-38, SM-39)
and SM-C23."""
import numpy as np
import pytest
import sympy as sp
from scipy.integrate import quad

from reduced_dynamics.derivations import sparse_multihead as der
from reduced_dynamics.specs import SparseSpec
from reduced_dynamics.theory.sparse import formulas as sf
from reduced_dynamics.theory.sparse import restricted_flow as rf


def test_one_step_risk_is_the_note_formula_and_matches_the_numeric_module():
    risk = der.one_step_risk()
    V = (der.d_sym * (der.wsq + der.sigma ** 2) + der.wsq) / der.n_sym
    assert sp.simplify(risk - ((1 - der.eta) ** 2 * der.wsq + der.eta ** 2 * V)) == 0
    eta_star, best = der.one_step_optimum()
    assert sp.simplify(eta_star - der.wsq / (der.wsq + V)) == 0
    assert sp.simplify(best - der.wsq * V / (der.wsq + V)) == 0
    spec = SparseSpec(dim=16, sparsity=4, noise=0.5, context=32)
    subs = {der.wsq: 4, der.d_sym: 16, der.n_sym: 32, der.sigma: sp.Rational(1, 2)}
    assert float(eta_star.subs(subs)) == pytest.approx(sf.one_step_gd_optimum(spec)[0], rel=1e-14)
    assert float(best.subs(subs)) == pytest.approx(sf.one_step_gd_optimum(spec)[1], rel=1e-14)


def test_restricted_rhs_is_minus_gradient_against_finite_differences():
    loss = sp.lambdify((der.STATE, der.m3, der.m6, der.wsq, der.sigma), der.restricted_loss())
    rhs = sp.lambdify((der.STATE, der.m3, der.m6), sp.Matrix(der.restricted_rhs()))
    x = np.array([0.7, -0.4, 0.9, 0.3])
    h = 1e-6
    fd = np.array([(loss(x + h * e, 2.3, 5.1, 2.0, 0.1) - loss(x - h * e, 2.3, 5.1, 2.0, 0.1)) / (2 * h)
                   for e in np.eye(4)])
    np.testing.assert_allclose(-fd, np.asarray(rhs(x, 2.3, 5.1), dtype=float).ravel(), rtol=1e-7)


def test_conserved_quantities_and_balanced_reduction_are_exact():
    for q in der.conserved_quantities():
        assert der.time_derivative(q) == 0
    assert sp.simplify(der.balanced_scalar_rhs() - der.scalar_rhs_from_u()) == 0
    assert sp.simplify(der.balanced_scalar_rhs() - (-8 * der.p ** 3 * (4 * der.p ** 3 * der.m6 - der.m3))) == 0
    assert der.fixed_point_gain() == der.m3 / der.m6
    assert sp.simplify(der.plateau_length() - 1 / (16 * der.m3 * sp.Symbol("p0", positive=True) ** 2)) == 0
    assert sp.simplify(der.gain().subs(der.balanced_point()) - 4 * der.p ** 3) == 0


P0, M3, M6 = 0.05, 2.3, 5.1


def _balanced_state(p0):
    return [np.sqrt(2 * p0), np.sqrt(2 * p0), np.sqrt(p0), np.sqrt(p0)]


def test_sm_c23_four_parameter_flow_matches_scalar_ode():
    """p0 = 0.05, m3 = 2.3, m6 = 5.1, rtol 1e-10: u(t) of the 4-parameter flow equals 4 p(t)^3 of the scalar
    ODE at 7 time points to 5 digits, and u -> u* = m3/m6 = 0.451."""
    times = np.array([0.0, 2.0, 5.0, 10.0, 12.0, 16.0, 40.0])
    u4 = rf.gain_of(rf.integrate_restricted(_balanced_state(P0), M3, M6, times))
    u1 = 4 * rf.integrate_balanced(P0, M3, M6, times) ** 3
    assert np.max(np.abs(u4 - u1) / np.abs(u1)) < 1e-5
    assert u4[-1] == pytest.approx(M3 / M6, rel=1e-8)
    assert M3 / M6 == pytest.approx(0.451, abs=5e-4)


def _c23_quantities():
    times = np.linspace(0.0, 40.0, 9)
    a, b, c, g = rf.integrate_restricted(_balanced_state(P0), M3, M6, times).T
    return a, b, c, g, [np.max(np.abs(q - q[0])) for q in (a ** 2 - b ** 2, c ** 2 - g ** 2, a ** 2 - 2 * c ** 2)]


def test_sm_c23_conserved_quantities_drift_at_rounding_level():
    """Exactness is proven symbolically above; along the integrated flow (DOP853, rtol 1e-10) the three
    quantities stay put to rounding level (measured 0, 3e-15, 1.3e-14; asserted < 1e-12) while the weights
    themselves move by orders of magnitude more, so the check would catch a non-conserved quantity."""
    a, b, c, g, drifts = _c23_quantities()
    assert max(drifts) < 1e-12
    assert np.max(np.abs(a ** 2 - a[0] ** 2)) > 1e-3 and np.max(np.abs(c ** 2 - c[0] ** 2)) > 1e-3


@pytest.mark.xfail(strict=True, reason="the note's drift <= 1e-15 is not reached with our integrator: measured "
                   "0, 3e-15 and 1.3e-14 (rounding of the Runge-Kutta combination at rtol 1e-10)")
def test_sm_c23_drift_at_the_note_figure():
    assert max(_c23_quantities()[-1]) <= 1e-15


def test_sm_c23_escape_time_equals_quadrature():
    """First time u > u*/2: the integrator agrees with the exact quadrature t = int dp / (dp/dt) to 1e-4
    relative. Both give 10.879, close to the plateau estimate 1/(16 m3 p0^2) = 10.87. The note's 13.6 is NOT
    reproduced (see the next test)."""
    times = np.linspace(0.0, 20.0, 200_001)
    u = 4 * rf.integrate_balanced(P0, M3, M6, times) ** 3
    t_cross = times[np.argmax(u > M3 / M6 / 2)]
    p_half = (M3 / M6 / 8) ** (1 / 3)
    t_quad, _ = quad(lambda p: 1 / (8 * p ** 3 * (M3 - 4 * M6 * p ** 3)), P0, p_half, epsrel=1e-12)
    assert t_cross == pytest.approx(t_quad, rel=1e-4)
    assert t_quad == pytest.approx(1 / (16 * M3 * P0 ** 2), rel=0.01)


@pytest.mark.xfail(strict=True, reason="note SM-C23 says u first exceeds u*/2 at t ~ 13.6; the scalar ODE "
                                       "(SM-39) and its exact quadrature give 10.88")
def test_sm_c23_note_escape_time_value():
    times = np.linspace(0.0, 20.0, 20_001)
    u = 4 * rf.integrate_balanced(P0, M3, M6, times) ** 3
    assert times[np.argmax(u > M3 / M6 / 2)] == pytest.approx(13.6, rel=0.05)
