"""The NumPy reference of ATTN_S (separate key and query, LA-6): gradients (C2, LA-8), the tensor
prediction against the token formula, the reduced loss against a Monte-Carlo estimate of the full model's
loss, the freeze switch (§10.2 (b)), the §8 initialisation rules and conservation (LA-37) under GD."""
import numpy as np
import pytest
from finite_differences import central_gradient

from reduced_dynamics.reference import linear_attention as ref
from reduced_dynamics.specs import LinearSeparateSpec
from reduced_dynamics.tasks import linear_attention as task
from reduced_dynamics.theory.linear_attention import separate as th


def random_weights(rng, D, H, R, scale=1.0):
    return {"K": scale * rng.standard_normal((H, R, D + 1)), "Q": scale * rng.standard_normal((H, R, D + 1)),
            "r": scale * rng.standard_normal((H, D + 1))}


@pytest.mark.parametrize("output_scale, rank", [("paper", 1), ("code", 2)])
def test_c2_gradients_match_central_differences(output_scale, rank):
    """(LA-8) against central differences, all blocks non-zero, D = 3, N = 5, P = 50: relative error < 1e-7."""
    spec = LinearSeparateSpec(dim=3, context=5, heads=2, rank=rank, train_size=50, output_scale=output_scale)
    _, _, data = ref.problem_separate(spec)
    params = random_weights(np.random.default_rng(5), 3, 2, rank)
    model = ref.SeparateAttention(spec.kappa)
    batch = ref.Batch.from_training_set(data)
    _, grads = model.loss_and_grads(params, batch)
    fd = central_gradient(lambda p: model.loss_and_grads(p, batch)[0], params)
    for name in params:
        assert np.max(np.abs(fd[name] - grads[name])) / np.max(np.abs(grads[name])) < 1e-7


def test_tensor_prediction_equals_the_token_matrix_formula():
    """yhat through the feature tensor equals kappa sum_i (K_i M r_i)^T (Q_i z_q) (LA-6) directly."""
    spec = LinearSeparateSpec(dim=3, context=4, heads=2, rank=2, train_size=7)
    _, _, data = ref.problem_separate(spec)
    p = random_weights(np.random.default_rng(2), 3, 2, 2)
    Z = task.token_matrices(data)
    direct = spec.kappa * np.array([sum((p["K"][i] @ Zs @ Zs.T @ p["r"][i]) @ (p["Q"][i] @ Zs[:, -1])
                                        for i in range(2)) for Zs in Z])
    got = ref.SeparateAttention(spec.kappa).predict(p, ref.Batch.from_training_set(data))
    np.testing.assert_allclose(got, direct, rtol=1e-12)


def test_reduced_population_loss_equals_monte_carlo_loss_of_the_full_model():
    """On the invariant manifold (k_i^y = 0, r_i^x = 0) the reduced loss (LA-19 with LA-10) equals the
    full model's mean squared error over fresh sequences, within 4 standard errors."""
    spec = LinearSeparateSpec(dim=3, context=6, heads=2, rank=2, output_scale="paper")
    flow, _, cov = th.setup(spec, moments="population")
    params = random_weights(np.random.default_rng(8), 3, 2, 2, scale=0.7)
    params["K"][:, :, 3] = 0.0
    params["r"][:, :3] = 0.0
    reduced = float(flow.loss(th.pack(*th.projection(params["K"], params["Q"], params["r"]), flow.moments.basis)))
    data = task.draw_training_set(cov, spec.context, 300_000, np.random.default_rng(9))
    err2 = (ref.SeparateAttention(spec.kappa).predict(params, ref.Batch.from_training_set(data)) - data.yq) ** 2
    z = (err2.mean() - reduced) / (err2.std() / np.sqrt(err2.size))
    assert abs(z) < 4, (err2.mean(), reduced, z)


def test_initialisation_rules_of_section_8():
    """normal: entries N(0, sigma^2); code: key/query std sigma/sqrt(H R (D+1)), value std
    sigma/sqrt(H (D+1)^2); both with k_i^y = 0 and r_i^x = 0."""
    D, H, R, sigma = 4, 40, 3, 0.5
    for rule, std_kq, std_v in (("normal", sigma, sigma),
                                ("code", sigma / np.sqrt(H * R * (D + 1)), sigma / np.sqrt(H * (D + 1) ** 2))):
        K, Q, r = task.separate_initial_weights(D, H, R, sigma, rule, np.random.default_rng(0))
        assert np.all(K[:, :, D] == 0) and np.all(r[:, :D] == 0)
        assert np.std(K[:, :, :D]) == pytest.approx(std_kq, rel=0.1)
        assert np.std(Q) == pytest.approx(std_kq, rel=0.1)
        assert np.std(r[:, D]) == pytest.approx(std_v, rel=0.3)


def test_freezing_keeps_the_off_manifold_blocks_at_zero():
    spec = LinearSeparateSpec(dim=3, heads=2, rank=2, init_rule="normal", init_scale=0.3, train_size=200,
                              output_scale="paper", lr=0.05, steps=50)
    _, params, data = ref.problem_separate(spec)
    model = ref.SeparateAttention(spec.kappa)
    batch = ref.Batch.from_training_set(data)
    _, _, frozen = ref.gradient_descent(model, params, batch, spec.lr, 50, mask=model.off_manifold_mask(params))
    _, _, free = ref.gradient_descent(model, params, batch, spec.lr, 50)
    assert np.all(frozen["K"][:, :, 3] == 0) and np.all(frozen["r"][:, :3] == 0)
    assert np.max(np.abs(free["K"][:, :, 3])) > 0 and np.max(np.abs(free["r"][:, :3])) > 0   # leakage


def test_gd_drift_of_conserved_quantities_is_second_order_in_the_learning_rate():
    """(LA-37) drifts by O(lr^2) per step under GD, so at fixed t the total drift halves with lr."""
    drifts = []
    for lr in (0.02, 0.01):
        spec = LinearSeparateSpec(dim=3, heads=2, rank=2, init_rule="normal", init_scale=0.4,
                                  output_scale="paper", train_size=300, lr=lr, t_max=6.0)
        traj = ref.simulate_separate(spec, progress=False)
        gram = traj.observables["gram"]
        drifts.append(max(np.max(np.abs(traj.observables["balance"][-1] - traj.observables["balance"][0])),
                          np.max(np.abs(gram[-1] - gram[0]))))
    assert drifts[0] / drifts[1] == pytest.approx(2.0, rel=0.1)
