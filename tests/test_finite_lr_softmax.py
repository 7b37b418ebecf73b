"""Finite learning rate for the softmax family (docs/theory/finite_learning_rate.md): full-model GD with a fixed
batch is GD on M = V Q V^T for the batch loss, step by step (LR-1); the modified exact-N right-hand side is
-grad of L~ = L + (eta/4)|grad L|^2 (LR-4, LR-5); the exact-N GD map is nearer the modified flow than the flow."""
from __future__ import annotations

import numpy as np

import reduced_dynamics as rd
from reduced_dynamics.reference import softmax_features as ref
from reduced_dynamics.tasks.softmax_features import draw, sample_prompts
from reduced_dynamics.theory.softmax import discrete
from reduced_dynamics.theory.softmax.exact import CountEnumeration


def test_fixed_batch_gd_is_the_reduced_map():
    spec = rd.spec("softmax", features=3, dim=5, context=8, dominant=0.5, lr=2.0, steps=40, batch=200,
                   fresh_batches=False, eval_prompts=50)
    run = ref.simulate(spec, progress=False)
    problem = draw(spec)                                            # the reference's draw: its features and
    V = problem.features                                            # the fixed batch from the training stream
    batch = sample_prompts(V, spec.p, spec.batch, spec.context, problem.training)
    counts = np.stack([np.bincount(ids, minlength=spec.features) for ids in batch.context_ids])
    Ms = discrete.batch_gd_map(counts, batch.task @ V.T, batch.query_ids, spec.lr, spec.gd_steps)
    gd = run.observables["M"]
    assert np.max(np.abs(Ms - gd)) <= 1e-9 * np.max(np.abs(gd))
    assert np.max(np.abs(gd[-1])) > 0.1


def test_modified_exact_rhs_is_minus_gradient_of_modified_loss():
    p = np.array([0.5, 0.3, 0.2])
    enum = CountEnumeration(p, 6)
    K, eta = 3, 1.5

    def rhs(y):
        return enum.flow_rhs(y.reshape(K, K)).ravel()

    def modified_loss(y):
        f = rhs(y)
        return float(enum.losses(y.reshape(K, K)) @ p) + 0.25 * eta * float(f @ f)

    y = 0.7 * np.random.default_rng(0).standard_normal(K * K)
    h = 1e-5
    fd = np.array([-(modified_loss(y + h * e) - modified_loss(y - h * e)) / (2 * h) for e in np.eye(K * K)])
    got = discrete.modified_rhs(rhs, eta)(y)
    assert np.max(np.abs(got - fd)) <= 1e-6 * np.max(np.abs(fd))
    assert np.max(np.abs(got - rhs(y))) > 1e-3 * np.max(np.abs(fd))


def test_exact_map_follows_the_modified_flow():
    spec = rd.spec("softmax", features=3, dim=3, context=12, dominant=0.6, lr=2.0, t_max=40.0, thresholds=(0.1, 0.05))
    times = {d: rd.predict(spec.replace(discretisation=d)).observables["M"][-1] for d in ("flow", "map", "modified")}
    flow_gap = np.max(np.abs(times["map"] - times["flow"]))
    modified_gap = np.max(np.abs(times["map"] - times["modified"]))
    assert modified_gap < 0.2 * flow_gap


def test_fitted_orders_softmax():
    """Threshold-time gaps of the exact GD map to the exact-N flow and to its modified flow: orders 1 and 2 (LR-7)."""
    from reduced_dynamics.scripts.discretisation_order import CASES, gaps
    case = CASES["softmax"]
    res = gaps("softmax", np.geomspace(*case["rates"], 5), case["t_max"], **case["spec"])
    assert abs(res["order_flow"] - 1.0) < 0.15
    assert abs(res["order_modified"] - 2.0) < 0.25
