"""The multi-head linear-attention witness: SM-C1 (gradients), SM-C2 (PtO construction), SM-C3 (GD heads),
SM-C4 (linearity in x_q), SM-C10 (rank bound), masking/pruning bookkeeping, probe sanity."""
import numpy as np
import pytest

from reduced_dynamics.reference import sparse_multihead as ref
from reduced_dynamics.specs import SparseSpec, SpecError
from reduced_dynamics.tasks.sparse_regression import context_statistics, sample_prompts
from reduced_dynamics.theory.sparse import algorithms as alg


def test_sm_c1_gradients_match_central_differences():
    """B = 7, n = 9, d = 4, d_s = 2, L = 3, h = 2, one head masked, entries N(0, 0.1^2), seed 0, eps = 1e-6:
    max |numeric - analytic| / max |analytic| < 1e-5 over all 588 entries (measured 1.2e-9)."""
    spec = SparseSpec(dim=4, sparsity=2, context=9, noise=0.1, layers=3, heads=2, scratch=2, init_scale=0.1)
    rng = np.random.default_rng(0)
    params = ref.init_params(spec, rng)
    prompts = sample_prompts(spec, 7, rng)
    mask = np.ones((3, 2))
    mask[1, 0] = 0
    _, grad = ref.loss_and_grad(params, prompts, mask)
    flat, size = params.flat(), params.P.size

    def loss(x):
        p = ref.Params(x[:size].reshape(params.P.shape), x[size:].reshape(params.Q.shape), 4, 2)
        return ref.loss_and_grad(p, prompts, mask)[0]

    eps = 1e-6
    numeric = np.array([(loss(flat + eps * e) - loss(flat - eps * e)) / (2 * eps) for e in np.eye(flat.size)])
    analytic = grad.flat()
    assert np.max(np.abs(numeric - analytic)) / np.max(np.abs(analytic)) < 1e-5
    # masked head gets exactly zero gradient
    assert np.all(grad.P[1, 0] == 0) and np.all(grad.Q[1, 0] == 0)


def _construction(d, n, T, eta, rng):
    """SM-32 (layer 1, one head per coordinate, d_s = d) + SM-34 (T single-head GD layers on scratch rows)."""
    D = 2 * d + 1
    y, scratch = d, np.arange(d + 1, 2 * d + 1)
    P = np.zeros((T + 1, d, D, D))
    Q = np.zeros_like(P)
    for j in range(d):
        P[0, j, scratch[j], j] = 1.0
        Q[0, j, y, j] = 1.0
    for l in range(1, T + 1):
        P[l, 0, y, y] = -eta
        Q[l, 0, scratch, scratch] = 1.0
    return ref.Params(P, Q, d, d)


def test_sm_c2_construction_equals_pto():
    """d = 6, n = 15, T = 5, eta = 0.3: the network equals PtO (nu = 1) to 1e-12 relative; scratch rows after
    layer 1 equal X R; layer 1 leaves the x- and y-rows exactly unchanged."""
    d, n, T, eta = 6, 15, 5, 0.3
    spec = SparseSpec(dim=d, sparsity=2, context=n, noise=0.2, nonzero_law="rademacher")
    rng = np.random.default_rng(0)
    prompts = sample_prompts(spec, 20, rng)
    params = _construction(d, n, T, eta, rng)
    w_net = ref.task_estimate(params, prompts)
    w_pto = alg.pto_steps(prompts.X, prompts.y, eta, T, "none")
    assert np.max(np.abs(w_net - w_pto)) / np.max(np.abs(w_pto)) < 1e-12
    Z0 = ref.tokens(prompts, d)
    Z1 = ref.forward(params, Z0, n).Zs[1]
    assert np.array_equal(Z1[:, :d + 1], Z0[:, :d + 1])
    r = context_statistics(prompts)[1]
    xt = np.transpose(Z1[:, d + 1:, :n], (0, 2, 1))
    assert np.max(np.abs(xt - prompts.X * r[:, None, :])) < 1e-12 * np.max(np.abs(xt))
    # the read-out of the prompt's own query is the linear predictor (SM-11)
    np.testing.assert_allclose(ref.predict_query(params, prompts), np.einsum("bd,bd->b", w_pto, prompts.xq),
                               rtol=1e-11, atol=1e-13)


def test_sm_c3_single_heads_run_gd_on_raw_tokens():
    """Heads P = -eta e_y e_y^T, Q = sum_j e_xj e_xj^T on raw tokens (d_s = 0) = T GD steps (SM-22), T = 6."""
    d, n, T, eta = 5, 11, 6, 0.25
    spec = SparseSpec(dim=d, sparsity=2, context=n, noise=0.3)
    prompts = sample_prompts(spec, 10, np.random.default_rng(1))
    P = np.zeros((T, 1, d + 1, d + 1))
    Q = np.zeros_like(P)
    P[:, 0, d, d] = -eta
    Q[:, 0, np.arange(d), np.arange(d)] = 1.0
    params = ref.Params(P, Q, d, 0)
    S, r, _ = context_statistics(prompts)
    w_gd = alg.gd_steps(S, r, eta, T)
    assert np.max(np.abs(ref.task_estimate(params, prompts) - w_gd)) / np.max(np.abs(w_gd)) < 1e-12


@pytest.mark.parametrize("scratch", [0, 3])
def test_sm_c4_linear_in_query(scratch):
    """(SM-12): y_q = <w_theta, x_q> for random theta (tolerance 1e-12 relative)."""
    spec = SparseSpec(dim=5, sparsity=2, context=7, layers=3, heads=3, scratch=scratch, init_scale=0.3)
    rng = np.random.default_rng(2)
    params = ref.init_params(spec, rng)
    prompts = sample_prompts(spec, 30, rng)
    mask = np.ones((3, 3))
    mask[0, 2] = 0
    yq = ref.predict_query(params, prompts, mask)
    w = ref.task_estimate(params, prompts, mask)
    assert np.max(np.abs(yq - np.einsum("bd,bd->b", w, prompts.xq))) < 1e-12 * np.max(np.abs(yq))


@pytest.mark.parametrize("h", [1, 2, 3, 5])
def test_sm_c10_rank_of_first_layer_reweighting(h):
    """(SM-33): the r-linear x->x part of h random dense heads has rank exactly min(2h, d), d = 10. The
    r-linear part is the heads' action with A = [[0, r], [r^T, 0]] (S and q switched off), read on x-rows."""
    d = 10
    D = d + 1
    rng = np.random.default_rng(h)
    r = rng.standard_normal(d)
    A = np.zeros((D, D))
    A[:d, d] = A[d, :d] = r
    M = np.zeros((d, d))
    for _ in range(h):
        P, Q = rng.standard_normal((D, D)), rng.standard_normal((D, D))
        M += (P @ A @ Q)[:d, :d]
    assert np.linalg.matrix_rank(M) == min(2 * h, d)


def test_masks_importance_pruning_bookkeeping():
    deltas = np.array([[0.4, -0.1, 1.0], [0.05, 0.2, 0.1], [-0.3, -0.1, -0.2]])
    iota = ref.relative_importance(deltas)
    np.testing.assert_allclose(iota[0], [0.4 / 1.4, 0, 1 / 1.4])
    assert np.all(np.isnan(iota[2]))  # no helpful head in that layer: not normalisable
    np.testing.assert_array_equal(ref.pruning_mask(deltas), [[1, 1, 1], [0, 1, 0], [0, 1, 0]])
    np.testing.assert_array_equal(ref.top_first_layer_mask(deltas), [[0, 0, 1], [1, 1, 1], [1, 1, 1]])


def test_masking_a_head_removes_exactly_its_contribution():
    spec = SparseSpec(dim=4, sparsity=2, context=6, layers=1, heads=3, init_scale=0.3)
    rng = np.random.default_rng(4)
    params = ref.init_params(spec, rng)
    prompts = sample_prompts(spec, 5, rng)
    Z0 = ref.tokens(prompts, 0)
    full = ref.forward(params, Z0, 6).Zs[1]
    masked = ref.forward(params, Z0, 6, np.array([[1, 0, 1]])).Zs[1]
    A = Z0[:, :, :6] @ np.transpose(Z0[:, :, :6], (0, 2, 1)) / 6
    head1 = params.P[0, 1] @ A @ params.Q[0, 1] @ Z0
    np.testing.assert_allclose(full - masked, head1, rtol=1e-12, atol=1e-14)
    with pytest.raises(SpecError):
        ref.forward(params, Z0, 6, np.array([[1, 0.5, 1]]))


def test_readout_probe_at_layer_zero_is_the_null_risk_and_gd_probe_runs():
    """(SM-18) sanity: R_probe(0) = s (h_0 = (x_q, 0) and E w* = 0); checked to 4 s.e."""
    spec = SparseSpec(dim=4, sparsity=2, context=12, layers=2, heads=2, init_scale=0.1)
    rng = np.random.default_rng(5)
    params = ref.init_params(spec, rng)
    fit, test = sample_prompts(spec, 400, rng), sample_prompts(spec, 4000, rng)
    probe = ref.readout_probe(params, fit, test)
    assert probe.shape == (3, 2)
    assert abs(probe[0, 0] - 2.0) < 4 * probe[0, 1]
    gain = ref.preprocessing_gain(params, sample_prompts(spec, 300, rng), sample_prompts(spec, 300, rng), 2)
    assert np.isfinite(gain["gain"]) and gain["raw"] > 0
