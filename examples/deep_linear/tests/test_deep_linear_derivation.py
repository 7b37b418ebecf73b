"""The derivation: flows are minus gradients (finite differences), the balanced reduction and its factor 2,
the closed form against the integrator, and the full-matrix flow reducing to the mode flow."""
from __future__ import annotations

import numpy as np
import sympy as sp

from reduced_dynamics.integrate import integrate
from rd_deep_linear import task, theory
from rd_deep_linear.derivations import deep_linear as derivation
from rd_deep_linear.spec import DeepLinearSpec

EPS = 1e-6


def fd_gradient(f, y):
    return np.array([(f(y + EPS * e) - f(y - EPS * e)) / (2 * EPS) for e in np.eye(y.size)])


def test_mode_flow_is_minus_gradient_in_a_b_and_metric_gradient_in_u():
    m = derivation.mode_system()
    loss = sp.lambdify((m.a, m.b, m.s), m.loss_ab)
    flow = sp.lambdify((m.a, m.b, m.s), m.flow_ab)
    rng = np.random.default_rng(0)
    for a, b, s in rng.uniform(0.1, 2.0, (5, 3)):
        grad = fd_gradient(lambda y: loss(y[0], y[1], s), np.array([a, b]))
        np.testing.assert_allclose(flow(a, b, s), -grad, rtol=1e-7)
    rhs_u, loss_u = sp.lambdify((m.u, m.s), m.rhs_u), sp.lambdify((m.u, m.s), m.loss_u)
    for u, s in rng.uniform(0.01, 3.0, (5, 2)):
        dldu = (loss_u(u + EPS, s) - loss_u(u - EPS, s)) / (2 * EPS)
        np.testing.assert_allclose(rhs_u(u, s), -2 * u * dldu, rtol=1e-7)    # -g^{-1} dL/du, g = 1/(2u)
        np.testing.assert_allclose(rhs_u(u, s), 2 * u * (s - u), rtol=1e-12)


def test_the_factor_two_is_both_layers():
    """On a = b the (a, b) flow moves u = a b at (a^2 + b^2)(s - u) = 2u(s - u): integrate the 2-d flow of
    (DL-4) and compare a b with the closed form (DL-7)."""
    s, u0 = 1.5, 1e-3
    rhs = lambda t, y: np.array([y[1] * (s - y[0] * y[1]), y[0] * (s - y[0] * y[1])])
    t = np.linspace(0.0, 8.0, 81)
    sol = integrate(rhs, np.full(2, np.sqrt(u0)), 8.0, t_eval=t, rtol=1e-12, atol=1e-14)
    closed = s / (1 + (s / u0 - 1) * np.exp(-2 * s * t))
    np.testing.assert_allclose(sol.y[:, 0] * sol.y[:, 1], closed, atol=1e-9)


def test_closed_form_matches_the_integrated_mode_flow():
    spec = DeepLinearSpec(t_max=12.0)
    t = np.linspace(0.0, 12.0, 601)
    flow = theory.predict(spec, t_eval=t, rtol=1e-12, atol=1e-14)
    closed = theory.closed_form(spec, t)
    assert np.abs(flow.observables["u"] - closed.observables["u"]).max() <= 1e-8
    assert np.abs(flow.loss - closed.loss).max() <= 1e-8
    m = derivation.mode_system()                                          # (DL-8) is where u = s/2
    half = float(m.half_time.subs({m.s: 2.0, m.u0: 1e-4}))
    assert abs(float(m.closed_form.subs({m.s: 2.0, m.u0: 1e-4, m.t: half})) - 1.0) < 1e-12


def test_matrix_flow_is_the_matrix_formula():
    spec = DeepLinearSpec(init="random", init_scale=0.5)
    rhs, _ = theory.matrix_functions(spec)
    problem = task.draw(spec)
    C = problem.sigma_yx
    R = C - problem.W2 @ problem.W1
    got = rhs(np.concatenate([problem.W1.ravel(), problem.W2.ravel()]), C.ravel(), np.array([1.0]))
    np.testing.assert_allclose(got, np.concatenate([(problem.W2.T @ R).ravel(), (R @ problem.W1.T).ravel()]),
                               rtol=1e-12, atol=1e-14)


def test_full_matrix_flow_from_an_aligned_start_is_the_mode_flow():
    """(DL-5) keeps W1 = Q A V^T, W2 = U A Q^T: its mode strengths follow (DL-7), the rest stays zero."""
    spec = DeepLinearSpec(t_max=10.0)
    problem = task.draw(spec)
    rhs, _ = theory.matrix_functions(spec)
    C, q = problem.sigma_yx.ravel(), np.array([0.0])
    t = np.linspace(0.0, 10.0, 201)
    sol = integrate(lambda _, y: rhs(y, C, q), np.concatenate([problem.W1.ravel(), problem.W2.ravel()]), 10.0,
                    t_eval=t, rtol=1e-12, atol=1e-14)
    n1 = problem.W1.size
    W = sol.y[:, n1:].reshape(-1, 6, 3) @ sol.y[:, :n1].reshape(-1, 3, 8)
    closed = theory.closed_form(spec, t).observables["u"]
    np.testing.assert_allclose(task.mode_strengths(problem, W), closed, atol=1e-8)
    modes = np.einsum("oi,ti,ni->ton", problem.U, closed, problem.V)
    assert np.abs(W - modes).max() < 1e-8
