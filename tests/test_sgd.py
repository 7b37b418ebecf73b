"""Minibatch SGD of attn-m (docs/theory/sgd.md): the reference's minibatches (full batch by epochs at B = P is
full-batch GD exactly; a batch seed changes the order only), the per-prompt gradient covariance Sigma
(SGD-4) against the reference's own per-prompt gradients, the minibatch covariance c Sigma / B (SGD-1)
by enumeration and by Monte Carlo, the Gaussian construction (SGD-6), and the reduced SGD model (SGD-5) at
zero noise equal to the GD map (LR-3), whose modified flow is (LR-5)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import reduced_dynamics as rd
from reduced_dynamics.errors import SpecError
from reduced_dynamics.reference import linear_attention as ref
from reduced_dynamics.tasks import linear_attention as task
from reduced_dynamics.theory.linear_attention import discrete, iwl, sgd

SMALL = dict(dim=2, heads=2, context=5, init_scale=0.3, train_size=200, lr=0.1, t_max=2.0)


def _flat(grads: dict, D: int) -> np.ndarray:
    """Reference gradients in the all-weights state order (r_i, W_i[:, :D]) per head (iwl.full_state)."""
    return iwl.full_state({"r": grads["r"], "W": grads["W"]})


def test_full_batch_by_epochs_is_gradient_descent_exactly():
    spec = rd.spec("attn-m", **SMALL)
    full = ref.simulate_merged(spec, test_size=0)
    epochs = ref.simulate_merged(spec.replace(batch_size=200, sampling="epochs"), test_size=0)
    assert np.array_equal(full.loss, epochs.loss)
    assert np.array_equal(full.observables["beta"], epochs.observables["beta"])
    assert "batch_size" not in full.meta and epochs.meta["batch_size"] == 200


def test_batch_seed_changes_the_order_not_the_weights_or_set():
    spec = rd.spec("attn-m", **SMALL, batch_size=16)
    a = ref.simulate_merged(spec, test_size=0)
    b = ref.simulate_merged(spec.replace(batch_seed=1), test_size=0)
    assert a.loss[0] == b.loss[0]                             # same weights, same training set
    assert not np.array_equal(a.loss[1:], b.loss[1:])        # another order
    again = ref.simulate_merged(spec, test_size=0)
    assert np.array_equal(a.loss, again.loss)                # the order is reproducible


def test_minibatch_orders():
    rng = task.batch_order_rng(0, 3)
    epochs = task.MinibatchOrder("epochs", 4, 12, rng)
    for _ in range(2):                                       # every prompt exactly once per epoch
        seen = np.concatenate([epochs.next() for _ in range(3)])
        assert np.array_equal(np.sort(seen), np.arange(12))
    repl = task.MinibatchOrder("replacement", 5, 12, rng).next()
    assert repl.size == 5 and np.all(np.diff(repl) >= 0) and repl.max() < 12
    assert task.MinibatchOrder("online", 5, 12, rng).next() is None


def test_sgd_step_is_the_gradient_on_the_drawn_batch():
    spec = rd.spec("attn-m", **{**SMALL, "t_max": None}, batch_size=8, steps=1)
    _, params, data = ref.problem(spec)
    model, batch = ref.MergedAttention(spec.kappa), ref.Batch.from_training_set(data)
    drawn = task.draw(spec, train=True)
    _, _, after = ref.gradient_descent(model, params, batch, spec.lr, 1, progress=False,
                                       minibatches=ref.minibatch_source(spec, batch, ref.Batch, drawn))
    idx = task.MinibatchOrder("replacement", 8, 200, task.batch_order_rng(spec.seed, spec.batch_seed)).next()
    grads = model.loss_and_grads(params, batch.rows(idx))[1]
    assert np.allclose(after["W"], params["W"] - spec.lr * grads["W"], rtol=0, atol=1e-15)
    assert np.allclose(after["r"], params["r"] - spec.lr * grads["r"], rtol=0, atol=1e-15)


def test_online_batches_are_fresh_prompts_from_the_law():
    spec = rd.spec("attn-m", **SMALL, batch_size=50, sampling="online")
    run = ref.simulate_merged(spec, test_size=0)
    assert np.all(np.isfinite(run.loss)) and run.meta["sampling"] == "online"
    with pytest.raises(SpecError, match="batch_size"):
        rd.spec("attn-m", **SMALL, batch_size=201)
    with pytest.raises(SpecError, match="sampling"):
        rd.spec("attn-m", **SMALL, batch_size=20, sampling="online", centre_inputs=True)


@pytest.fixture(scope="module")
def small():
    """All-weights flow, a state off the manifold, per-prompt gradients, and the reference model on the set."""
    spec = rd.spec("attn-m", **SMALL, batch_size=4)
    flow, y0, prompts = sgd.setup(spec)
    _, params, data = ref.problem(spec)
    y = y0 + 0.3 * np.random.default_rng(5).standard_normal(y0.size)      # every block non-zero
    H, D = spec.heads, spec.dim
    Y = y.reshape(H, -1)
    weights = {"r": Y[:, :D + 1].copy(), "W": np.zeros((H, D + 1, D + 1))}
    weights["W"][:, :, :D] = Y[:, D + 1:].reshape(H, D + 1, D)
    return spec, flow, prompts, y, weights, ref.MergedAttention(spec.kappa), ref.Batch.from_training_set(data)


def _pullback_matrix(flow, y):
    """J^T (state x Theta): the weights' gradient of a Theta-gradient g is J^T g."""
    n = flow.rows * flow.cols
    return np.stack([-sgd.pullback(flow, y.reshape(1, flow.heads, -1), -e.reshape(1, flow.rows, flow.cols)).reshape(-1)
                     for e in np.eye(n)], axis=1)


def test_sigma_is_the_covariance_of_the_reference_per_prompt_gradients(small):
    spec, flow, prompts, y, weights, model, batch = small
    per = np.array([_flat(model.loss_and_grads(weights, batch.rows(np.array([p])))[1], spec.dim)
                    for p in range(prompts.size)])
    mean_ref = _flat(model.loss_and_grads(weights, batch)[1], spec.dim)
    assert np.allclose(per.mean(axis=0), mean_ref, rtol=0, atol=1e-12 * np.abs(mean_ref).max())
    cov_ref = np.cov(per.T, bias=True)
    Jt = _pullback_matrix(flow, y)
    cov_theory = Jt @ prompts.covariance(flow.theta(y)) @ Jt.T
    assert np.max(np.abs(cov_theory - cov_ref)) <= 1e-10 * np.max(np.abs(cov_ref))


def test_gaussian_construction_has_covariance_sigma_exactly(small):
    _, flow, prompts, y, *_ = small
    theta = flow.theta(y)
    P = prompts.size
    L = prompts.gaussian(np.tile(theta, (P, 1)), np.eye(P))          # column p of the linear map z -> xi
    assert np.allclose(L.T @ L, prompts.covariance(theta), rtol=0, atol=1e-12 * np.abs(L.T @ L).max())


def test_minibatch_covariance_without_replacement_by_enumeration(small):
    """Every B-subset is equally likely as one batch of an epoch: the batch-mean gradient has covariance
    (P - B)/(P - 1) Sigma / B (SGD-1) exactly; enumerated on 8 prompts."""
    _, flow, prompts, y, *_ = small
    sub = sgd.PerPromptGradients(prompts.phi[:8], prompts.y[:8])
    theta = flow.theta(y)
    g = sub.gradients(theta)
    B = 3
    means = np.array([g[list(c)].mean(axis=0) for c in itertools.combinations(range(8), B)])
    cov = np.cov(means.T, bias=True)
    expected = sgd.noise_factor("epochs", B, 8) * sub.covariance(theta) / B
    assert np.max(np.abs(cov - expected)) <= 1e-12 * np.max(np.abs(expected))


def test_minibatch_covariance_with_replacement_by_monte_carlo(small):
    """The reference's SGD gradients with replacement (B = 4) scatter with covariance J^T Sigma J / B."""
    spec, flow, prompts, y, weights, model, batch = small
    order = task.MinibatchOrder("replacement", 4, prompts.size, np.random.default_rng(0))
    draws = np.array([_flat(model.loss_and_grads(weights, batch.rows(order.next()))[1], spec.dim)
                      for _ in range(6000)])
    Jt = _pullback_matrix(flow, y)
    expected = Jt @ prompts.covariance(flow.theta(y)) @ Jt.T / 4
    err = np.linalg.norm(np.cov(draws.T) - expected) / np.linalg.norm(expected)
    assert err < 0.06          # sampling error of 6000 draws: about sqrt(2/6000) ~ 0.02 per direction


def test_zero_noise_paths_are_the_gd_map(small):
    """At B = P by epochs c = 0 (SGD-1): every path is the GD map (LR-3), i.e. full-batch GD of every weight."""
    spec, flow, prompts, y, *_ = small
    steps = 20
    band = sgd.monte_carlo(flow, prompts, y, spec.lr, steps, 200, sgd.noise_factor("epochs", 200, 200), 3,
                           np.random.default_rng(0))
    mapped = flow.train.loss(flow.thetas(discrete.gd_map(flow, y, spec.lr, steps).y))
    assert np.max(np.abs(band.losses[:, 1] - mapped)) <= 1e-13 * np.max(mapped)
    assert np.max(np.abs(band.losses[:, 0] - band.losses[:, 2])) <= 1e-13 * np.max(mapped)     # no noise at all


def test_full_batch_drift_is_the_modified_flow(small):
    """The SDE's drift at B = P (c = 0) is the modified flow (LR-5, SGD-2): the GD map's distance from it over
    a fixed time falls fourfold when eta halves (order 2), from the plain flow only twofold (order 1)."""
    from reduced_dynamics.integrate import integrate
    _, flow, prompts, y, *_ = small
    T, gaps = 1.0, {"modified": [], "flow": []}
    for eta in (0.1, 0.05):
        steps = int(round(T / eta))
        end = discrete.gd_map(flow, y, eta, steps).y[-1]
        for name, rhs in (("modified", flow.modified_rhs(eta)), ("flow", flow.rhs)):
            sol = integrate(rhs, y, T, method="DOP853", rtol=1e-11, t_eval=np.array([0.0, T]))
            gaps[name].append(np.linalg.norm(sol.y[-1] - end))
    assert 3.5 < gaps["modified"][0] / gaps["modified"][1] < 4.5
    assert 1.8 < gaps["flow"][0] / gaps["flow"][1] < 2.2


@pytest.mark.parametrize("noise", ["exact", "table"])
def test_band_scales_like_one_over_root_b(small, noise):
    """The loss spread at a fixed time halves when B grows fourfold (SGD-2: diffusion eta c Sigma / B), while
    the mean stays at the GD map to O(1/B)."""
    spec, flow, prompts, y, *_ = small
    sds = []
    for B in (16, 64):
        band = sgd.monte_carlo(flow, prompts, y, spec.lr, 10, B, 1.0, 400, np.random.default_rng(1), noise)
        sds.append(band.losses[-1].std())
    assert 1.6 < sds[0] / sds[1] < 2.5


def test_linear_noise_matches_the_monte_carlo_at_small_noise(small):
    """(SGD-7) is the first order in the noise of (SGD-5): at a small noise (c / B = 1e-3) the loss's sd
    along the way agrees with 2000 Monte-Carlo paths within their sampling error (about 3 %)."""
    spec, flow, prompts, y, *_ = small
    t, loss, sd = sgd.linear_noise(flow, prompts, y, spec.lr, 20, 16, 0.016, stride=1)
    band = sgd.monte_carlo(flow, prompts, y, spec.lr, 20, 16, 0.016, 2000, np.random.default_rng(3), "exact")
    mc = band.losses.std(axis=1)
    assert np.max(np.abs(mc[5:] / sd[5:] - 1)) < 0.1
    assert np.max(np.abs(band.losses.mean(axis=1) - loss)) < 0.1 * sd.max()     # mean: the GD map


def test_predict_band_and_its_full_batch_limit():
    """predict with batch_size: quantiles ordered around the mean, one drop time per path; at B = P by epochs
    (c = 0) the mean curve and every quantile are the full-batch GD map of every weight (LR-3) and the drop
    time is its drop time with sd 0."""
    spec = rd.spec("attn-m", **SMALL, batch_size=20, paths=40)
    band = rd.predict(spec)
    q = np.array([band.observables[k] for k in ("loss_q05", "loss_q25", "loss_q50", "loss_q75", "loss_q95")])
    assert np.all(np.diff(q, axis=0) >= 0) and np.all(q[0] <= band.loss + 1e-12) and np.all(band.loss <= q[-1] + 1e-12)
    assert len(band.meta["drop_times"]) == 40 and band.events["drop_time_sd"] > 0
    full = rd.predict(spec.replace(batch_size=200, sampling="epochs"))
    gd_map = rd.predict(spec.replace(batch_size=None, all_weights=True, discretisation="map"))
    assert np.allclose(full.loss, gd_map.loss, rtol=1e-12, atol=0)
    assert np.allclose(full.observables["loss_q95"], gd_map.loss, rtol=1e-12, atol=0)
    assert full.events["drop_time"] == pytest.approx(gd_map.events["drop_time"], rel=1e-12)
    assert full.events["drop_time_sd"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(SpecError, match="batch_size"):
        rd.predict(rd.spec("attn-s", batch_size=8))


@pytest.mark.parametrize("P, B", [(12, 4), (14, 4)])
def test_epoch_noise_has_the_second_moments_of_sampling_without_replacement(P, B):
    """(SGD-8): over the m = floor(P/B) steps of an epoch, Var omega = (P - B)/(B (P - 1)) and Cov = -1/(P - 1),
    the moments of batch means of a random permutation (SGD-1); 40000 epochs, one coordinate."""
    noise = sgd.EpochNoise(P, B, 40000, 1, np.random.default_rng(2))
    omega = np.array([noise.next()[:, 0] for _ in range(noise.m)])          # (m, epochs)
    cov = np.cov(omega)
    assert np.allclose(np.diag(cov), (P - B) / (B * (P - 1)), rtol=0.03)
    off = cov[~np.eye(noise.m, dtype=bool)]
    assert np.allclose(off, -1.0 / (P - 1), atol=0.03 * (P - B) / (B * (P - 1)))
    if P % B == 0:                                                          # a whole epoch sums to zero
        assert np.max(np.abs(omega.sum(axis=0))) < 1e-12


def test_reference_epochs_have_those_moments():
    """The reference's epochs order (MinibatchOrder) gives batch means with Var sigma^2 (P - B)/(B (P - 1)) and
    Cov -sigma^2/(P - 1) between two steps of an epoch (SGD-1, SGD-8); P = 14, B = 4, 30000 epochs."""
    P, B = 14, 4
    a = np.random.default_rng(0).standard_normal(P)
    a -= a.mean()
    sigma2 = np.mean(a ** 2)
    order = task.MinibatchOrder("epochs", B, P, np.random.default_rng(1))
    means = np.array([[a[order.next()].mean() for _ in range(P // B)] for _ in range(30000)])
    cov = np.cov(means.T)
    assert np.allclose(np.diag(cov), sigma2 * (P - B) / (B * (P - 1)), rtol=0.04)
    off = cov[~np.eye(P // B, dtype=bool)]
    assert np.allclose(off, -sigma2 / (P - 1), atol=0.04 * sigma2 * (P - B) / (B * (P - 1)))


def test_the_band_refuses_what_its_model_does_not_carry():
    """Weight decay is not in the SGD model's steps (SGD-5): one SpecError naming the field, not a band that
    silently leaves it out."""
    small = rd.spec("attn-m", dim=2, heads=2, train_size=100, batch_size=10, steps=5)
    with pytest.raises(SpecError, match="^weight_decay: "):
        sgd.predict(small.replace(weight_decay=0.1))
