"""The NumPy reference of the full linear-attention model: gradients (C2), the reduced loss against a
Monte-Carlo estimate of the full model's loss, conservation under GD, the normalisations of §2, and its
independence from the theory side."""
import ast
from pathlib import Path

import numpy as np
import pytest
from finite_differences import central_gradient

from reduced_dynamics.errors import DivergenceError
from reduced_dynamics.reference import linear_attention as ref
from reduced_dynamics.specs import LinearMergedSpec
from reduced_dynamics.tasks import linear_attention as task
from reduced_dynamics.theory.linear_attention import merged as th


def random_full_weights(rng, D, H, scale=1.0):
    return {"W": scale * rng.standard_normal((H, D + 1, D + 1)), "r": scale * rng.standard_normal((H, D + 1))}


@pytest.mark.parametrize("output_scale", ["paper", "code"])
def test_c2_gradients_match_central_differences(output_scale):
    """(LA-7) against central differences, all blocks non-zero, D = 3, N = 5, P = 50: relative error < 1e-7."""
    spec = LinearMergedSpec(dim=3, context=5, heads=2, train_size=50, output_scale=output_scale)
    _, _, data = ref.problem(spec)
    rng = np.random.default_rng(5)
    params = random_full_weights(rng, 3, 2)
    model = ref.MergedAttention(spec.kappa)
    batch = ref.Batch.from_training_set(data)
    _, grads = model.loss_and_grads(params, batch)
    fd = central_gradient(lambda p: model.loss_and_grads(p, batch)[0], params)
    for name in params:
        assert np.max(np.abs(fd[name] - grads[name])) / np.max(np.abs(grads[name])) < 1e-7


def test_tensor_prediction_equals_the_token_matrix_formula():
    """yhat computed through the feature tensor equals kappa sum_i r_i^T (Z Z^T) W_i z_q (LA-5) directly."""
    spec = LinearMergedSpec(dim=3, context=4, heads=2, train_size=7)
    _, _, data = ref.problem(spec)
    params = random_full_weights(np.random.default_rng(2), 3, 2)
    Z = task.token_matrices(data)
    zq = Z[:, :, -1]
    direct = spec.kappa * np.array([sum(params["r"][i] @ Zp @ Zp.T @ params["W"][i] @ zqp for i in range(2))
                                    for Zp, zqp in zip(Z, zq)])
    got = ref.MergedAttention(spec.kappa).predict(params, ref.Batch.from_training_set(data))
    np.testing.assert_allclose(got, direct, rtol=1e-12)
    assert np.all(zq[:, -1] == 0)                      # the query's label slot is zeroed (LA-3)


def test_reduced_population_loss_equals_monte_carlo_loss_of_the_full_model():
    """At random parameters on the invariant manifold, (LA-19) equals the full model's mean squared error
    over fresh sequences, within 4 standard errors."""
    spec = LinearMergedSpec(dim=3, context=6, heads=2, init_scale=0.3)
    flow, _, cov = th.setup(spec, moments="population")
    rng = np.random.default_rng(8)
    params = random_full_weights(rng, 3, 2, scale=0.6)
    params["W"][:, 3, :3] = 0.0                         # u_i = 0
    params["r"][:, :3] = 0.0                            # r_i^x = 0
    v, U = th.projection(params["W"], params["r"])
    reduced = float(flow.loss(th.pack(v, U, flow.moments.basis)))
    data = task.draw_training_set(cov, spec.context, 400_000, np.random.default_rng(9))
    err2 = (ref.MergedAttention(spec.kappa).predict(params, ref.Batch.from_training_set(data)) - data.yq) ** 2
    z = (err2.mean() - reduced) / (err2.std() / np.sqrt(err2.size))
    assert abs(z) < 4, (err2.mean(), reduced, z)


def test_gd_drift_of_the_balance_is_second_order_in_the_learning_rate():
    """(LA-36) drifts by O(lr^2) per step under GD, so the total drift at fixed t halves with lr."""
    drifts = []
    for lr in (0.02, 0.01):
        spec = LinearMergedSpec(dim=3, heads=2, init_scale=0.3, train_size=300, lr=lr, t_max=4.0)
        traj = ref.simulate_merged(spec, progress=False)
        drifts.append(np.max(np.abs(traj.observables["balance"][-1] - traj.observables["balance"][0])))
    assert drifts[0] / drifts[1] == pytest.approx(2.0, rel=0.1)


def test_freezing_keeps_the_off_manifold_blocks_at_zero():
    spec = LinearMergedSpec(dim=3, heads=2, init_scale=0.3, train_size=200, lr=0.05, steps=50)
    cov, params, data = ref.problem(spec)
    model = ref.MergedAttention(spec.kappa)
    batch = ref.Batch.from_training_set(data)
    _, _, frozen = ref.gradient_descent(model, params, batch, spec.lr, 50, mask=model.off_manifold_mask(params))
    _, _, free = ref.gradient_descent(model, params, batch, spec.lr, 50)
    assert np.all(frozen["W"][:, 3, :3] == 0) and np.all(frozen["r"][:, :3] == 0)
    assert np.max(np.abs(free["W"][:, 3, :3])) > 0          # without the mask they leak (§10.2 (b))


def test_normalisations_of_section_2():
    cov = task.draw_covariance("linear", 3, None, np.random.default_rng(0))
    data = task.draw_training_set(cov, 4, 500, np.random.default_rng(1), centre_inputs=True, whiten_tasks=True)
    np.testing.assert_allclose(data.w.T @ data.w / 499, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(data.w.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(data.x.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(data.y, np.einsum("pnd,pd->pn", data.x, data.w), atol=1e-12)


def test_divergence_stops_with_a_message():
    spec = LinearMergedSpec(dim=3, heads=2, init_scale=0.5, train_size=100, lr=50.0, steps=200)
    with pytest.raises(DivergenceError, match="lower --lr"):
        ref.simulate_merged(spec, progress=False)


def test_reference_never_imports_the_theory_side():
    """The separation that makes the reference a witness: no import of derivations or theory."""
    folder = Path(ref.__file__).parent
    for path in folder.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [(node.module or "")] + [a.name for a in node.names]
            for name in names:
                assert "derivations" not in name and "theory" not in name, (path.name, name)
