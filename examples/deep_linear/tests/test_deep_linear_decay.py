"""Weight decay in the deep-linear example (docs/theory/weight_decay.md WD-1, WD-2): the derived mode term, the
shifted sigmoid against the integrated flow, the rests s - lambda, and gradient descent with the separate decay
term against the flow."""
from __future__ import annotations

import numpy as np
import sympy as sp

from rd_deep_linear import reference, theory
from rd_deep_linear.derivations import deep_linear as derivation
from rd_deep_linear.spec import DeepLinearSpec

SMALL = {"in_dim": 5, "hidden": 2, "out_dim": 4, "singular_values": (2.0, 1.0, 0.5), "train_size": 32,
         "lr": 0.001, "t_max": 10.0, "init_scale": 0.01, "weight_decay": 0.3}


def test_mode_decay_is_derived_from_the_metric():
    u = derivation.mode_system().u
    assert sp.simplify(derivation.mode_decay() + 2 * derivation.LAMBDA_WD * u) == 0


def test_flow_follows_the_shifted_sigmoid_and_rests_at_s_minus_lambda():
    spec = DeepLinearSpec(**{**SMALL, "t_max": 40.0})
    flow = theory.predict(spec)
    closed = theory.closed_form(spec, flow.t)
    assert np.max(np.abs(closed.loss - flow.loss)) < 1e-8
    assert np.allclose(flow.observables["u"][-1], [1.7, 0.7, 0.0], atol=1e-8)
    assert abs(flow.loss[-1] - theory.levels(spec, flow)["floor"]) < 1e-8


def test_gd_with_decay_follows_the_flow():
    spec = DeepLinearSpec(**SMALL)
    th, gd = theory.predict(spec, t_eval=np.linspace(0, spec.final_time, 11)), reference.simulate(spec, False)
    assert abs(gd.loss[-1] / th.loss[-1] - 1) < 1e-3
    assert np.max(np.abs(gd.observables["u"][-1] - th.observables["u"][-1])) < 2e-3


def test_reference_decay_term_is_the_penalty_gradient():
    rng = np.random.default_rng(0)
    W1, W2, lam, h = rng.standard_normal((2, 3)), rng.standard_normal((4, 2)), 0.7, 1e-6
    D1, D2 = reference.decay_gradients(W1, W2, lam)
    penalty = lambda A, B: 0.5 * lam * (np.sum(A ** 2) + np.sum(B ** 2))     # noqa: E731
    fd1 = np.array([(penalty(W1 + h * e.reshape(W1.shape), W2) - penalty(W1 - h * e.reshape(W1.shape), W2)) / (2 * h)
                    for e in np.eye(W1.size)]).reshape(W1.shape)
    assert np.max(np.abs(D1 - fd1)) < 1e-8 and np.allclose(D2, lam * W2)
