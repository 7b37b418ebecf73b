"""The NumPy full-model reference of the softmax-feature family (note §2-§5; checks 1, 3, 4, 6, 8 of §11)."""
import numpy as np
import pytest

from reduced_dynamics.reference.softmax_features import loss_and_grad, per_feature_losses, predict, train
from reduced_dynamics.specs import SpecError
from reduced_dynamics.tasks.softmax_features import random_features, sample_prompts
from reduced_dynamics.theory.softmax.exact import CountEnumeration


def _fd_gradient(Q, prompts, include_query_token, h=1e-5):
    fd = np.zeros_like(Q)
    for i in range(Q.shape[0]):
        for j in range(Q.shape[1]):
            E = np.zeros_like(Q)
            E[i, j] = h
            fd[i, j] = (loss_and_grad(Q + E, prompts, include_query_token)[0]
                        - loss_and_grad(Q - E, prompts, include_query_token)[0]) / (2 * h)
    return fd


@pytest.mark.parametrize("include_query_token", [False, True])
def test_gradient_matches_finite_differences(include_query_token):
    """Check 1: (SF-11) vs central differences, K = 4, d = 6, N = 20, 200 fixed prompts, Q ~ 0.5 N(0,1): < 1e-6."""
    rng = np.random.default_rng(0)
    V = random_features(4, 6, rng)
    prompts = sample_prompts(V, [0.25] * 4, 200, 20, rng)
    Q = 0.5 * rng.standard_normal((6, 6))
    _, G = loss_and_grad(Q, prompts, include_query_token)
    fd = _fd_gradient(Q, prompts, include_query_token)
    assert np.abs(fd - G).max() / np.abs(G).max() < 1e-6


def test_features_are_orthonormal_and_random():
    rng = np.random.default_rng(1)
    V = random_features(3, 7, rng)
    np.testing.assert_allclose(V @ V.T, np.eye(3), atol=1e-12)
    assert not np.allclose(V, random_features(3, 7, rng))


def _full_model_mc(Q, V, p, N, batches, size, rng, include_query_token=False):
    """Per-batch full-model loss and projected gradient V grad_Q V^T, with w sampled (SF-2, SF-9, SF-11)."""
    losses, grads = [], []
    for _ in range(batches):
        prompts = sample_prompts(V, p, size, N, rng)
        loss, grad = loss_and_grad(Q, prompts, include_query_token)
        losses.append(loss)
        grads.append(V @ grad @ V.T)
    return np.array(losses), np.array(grads)


CASES = [(3, 10, (0.5, 0.3, 0.2), 5), (4, 12, (0.25, 0.25, 0.25, 0.25), 6)]
SLOW_CASES = [(K, N, p, K + 2) for K in (3, 4) for N in (10, 20, 30)
              for p in ((1 / K,) * K, (0.6,) + ((0.4 / (K - 1)),) * (K - 1))]


def _check_reduction(K, N, p, d, batches, seed, include_query_token=False):
    """Checks 3 and 4: exact L (SF-19a) and G diag(p) (SF-12/13) vs the full-model Monte Carlo, z-scores."""
    rng = np.random.default_rng(seed)
    V = random_features(K, d, rng)
    Q = 1.5 * rng.standard_normal((d, d))
    M = V @ Q @ V.T
    L_k, G = CountEnumeration(p, N, include_query_token).evaluate(M)
    losses, grads = _full_model_mc(Q, V, p, N, batches, 20000, rng, include_query_token)
    z_loss = (losses.mean() - np.dot(p, L_k)) / (losses.std(ddof=1) / np.sqrt(batches))
    z_grad = (grads.mean(0) - G * np.asarray(p)[None, :]) / (grads.std(0, ddof=1) / np.sqrt(batches))
    return z_loss, np.abs(z_grad).max()


@pytest.mark.parametrize("K,N,p,d", CASES)
def test_reduced_loss_and_gradient_equal_full_model_monte_carlo(K, N, p, d):
    z_loss, z_grad = _check_reduction(K, N, p, d, batches=50, seed=K * 100 + N)
    assert abs(z_loss) < 4
    assert z_grad < 4.5


def test_query_token_variant_equals_its_reduction():
    """The SF-6 variant (query token in the softmax, value 0): full-model Monte Carlo vs the enumeration with
    e^{A_k} added to the denominator, same z-score protocol as checks 3 and 4."""
    z_loss, z_grad = _check_reduction(3, 10, (0.5, 0.3, 0.2), 5, batches=50, seed=11, include_query_token=True)
    assert abs(z_loss) < 4
    assert z_grad < 4.5


@pytest.mark.slow
@pytest.mark.parametrize("K,N,p,d", SLOW_CASES)
def test_reduced_loss_and_gradient_equal_full_model_monte_carlo_all_cases(K, N, p, d):
    z_loss, z_grad = _check_reduction(K, N, p, d, batches=50, seed=K * 1000 + N)
    assert abs(z_loss) < 4
    assert z_grad < 4.5


def test_per_feature_losses_equal_sampled_full_model_losses():
    """The task-averaged, query-stratified estimate of L_k equals the plain sampled-w loss of the full model on
    prompts whose query has feature k (z < 4 over 40 batches), and the reduced exact L_k (SF-19a) to its error."""
    rng = np.random.default_rng(5)
    V = random_features(3, 5, rng)
    p = [0.5, 0.3, 0.2]
    Q = rng.standard_normal((5, 5))
    estimate = per_feature_losses(Q, sample_prompts(V, p, 30000, 8, rng), V)
    exact = CountEnumeration(p, 8).losses(V @ Q @ V.T)
    sampled = np.zeros((40, 3))
    for b in range(40):
        prompts = sample_prompts(V, p, 15000, 8, rng)
        sq = 0.5 * (predict(Q, prompts) - prompts.target) ** 2
        sampled[b] = np.bincount(prompts.query_ids, weights=sq, minlength=3) / np.bincount(prompts.query_ids)
    z = (sampled.mean(0) - estimate) / (sampled.std(0, ddof=1) / np.sqrt(40))
    assert np.abs(z).max() < 4
    assert np.abs(estimate - exact).max() < 0.01


def test_gd_conserves_column_sums_and_keeps_balanced_symmetry():
    """Check 6 (SF-15): column sums of M stay 0 to 1e-10 along GD with fresh mini-batches; check 8: in the
    balanced case the A_k agree and the off-diagonal entries agree to the sampling level (< 0.05 at B = 4000)."""
    rng = np.random.default_rng(7)
    V = random_features(4, 6, rng)
    run = train(V, [0.25] * 4, 30, 1.0, 40, 4000, rng, eval_prompts=2000, progress=False)
    assert np.abs(run.M.sum(axis=1)).max() < 1e-10
    A = np.einsum("tkk->tk", run.M)
    assert np.ptp(A[-1]) < 0.05
    off = run.M[-1][~np.eye(4, dtype=bool)]
    assert np.ptp(off) < 0.05
    assert np.all(np.diff(A.mean(axis=1)) > 0)


def test_fixed_batch_option_and_bad_input():
    rng = np.random.default_rng(8)
    V = random_features(3, 3, rng)
    run = train(V, [0.5, 0.3, 0.2], 10, 0.5, 5, 100, rng, fresh_batches=False, eval_prompts=500, progress=False)
    assert run.M.shape == (6, 3, 3) and run.t[-1] == 2.5
    with pytest.raises(SpecError, match="lr"):
        train(V, [0.5, 0.3, 0.2], 10, -1.0, 5, 100, rng)
    with pytest.raises(SpecError, match="probabilities"):
        train(V, [0.5, 0.3, 0.3], 10, 1.0, 5, 100, rng)
    with pytest.raises(SpecError, match="dim"):
        random_features(4, 3, rng)
    with pytest.raises(SpecError, match="features"):
        random_features(1, 3, rng)
