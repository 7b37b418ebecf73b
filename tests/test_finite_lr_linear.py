"""Finite learning rate for attn-m and attn-s (docs/theory/finite_learning_rate.md): frozen-manifold GD of the
full model is the reduced GD map step by step (LR-1 to LR-3); the derived modified right-hand side is
-grad of L~ = L + (eta/4)|grad L|^2 (LR-4 to LR-6); the drop-time gaps have orders 1 (flow) and 2 (modified
flow) in eta (LR-7); the stable-rate bound (LR-8) brackets divergence of the map and of full GD."""
from __future__ import annotations

import numpy as np
import pytest

import reduced_dynamics as rd
from reduced_dynamics.discretisation import crossing_time, fitted_order
from reduced_dynamics.reference import linear_attention as ref
from reduced_dynamics.theory.linear_attention import discrete, merged, separate

SMALL_M = dict(dim=3, heads=2, context=7, init_scale=0.3, train_size=300, freeze_off_manifold=True)
SMALL_S = dict(dim=3, heads=2, context=7, init_scale=0.3, init_rule="normal", output_scale="paper",
               train_size=300, freeze_off_manifold=True)


def _gd_states(model, params, batch, lr, steps, project):
    _, states, _ = ref.gradient_descent(model, params, batch, lr, steps, record=project,
                                        mask=model.off_manifold_mask(params), progress=False)
    return np.array(states)


def test_frozen_gd_is_the_reduced_map_attn_m():
    spec = rd.spec("attn-m", lr=0.3, steps=60, **SMALL_M)
    cov, params, data = ref.problem(spec)
    states = _gd_states(ref.MergedAttention(spec.kappa), params, ref.Batch.from_training_set(data), spec.lr,
                        spec.gd_steps, lambda p: merged.pack(*merged.projection(p["W"], p["r"]), np.eye(spec.dim)))
    flow, y0, _ = merged.setup(spec)
    mapped = discrete.gd_map(flow, y0, spec.lr, spec.gd_steps).y
    assert np.allclose(states[0], y0, rtol=0, atol=0)
    assert np.max(np.abs(mapped - states)) <= 1e-9 * np.max(np.abs(states))
    assert np.max(np.abs(states[-1] - states[0])) > 0.1          # the run moved


def test_frozen_gd_is_the_reduced_map_attn_s():
    spec = rd.spec("attn-s", lr=0.3, steps=60, **SMALL_S)
    cov, params, data = ref.problem_separate(spec)
    states = _gd_states(ref.SeparateAttention(spec.kappa), params, ref.Batch.from_training_set(data), spec.lr,
                        spec.gd_steps,
                        lambda p: separate.pack(*separate.projection(p["K"], p["Q"], p["r"]), np.eye(spec.dim)))
    flow, y0, _ = separate.setup(spec)
    mapped = discrete.gd_map(flow, y0, spec.lr, spec.gd_steps).y
    assert np.max(np.abs(mapped - states)) <= 1e-9 * np.max(np.abs(states))
    assert np.max(np.abs(states[-1] - states[0])) > 0.1


@pytest.mark.parametrize("model, setup, kw", [("attn-m", merged.setup, SMALL_M),
                                              ("attn-s", separate.setup, {**SMALL_S, "rank": 2})])
def test_modified_rhs_is_minus_gradient_of_modified_loss(model, setup, kw):
    spec = rd.spec(model, **kw)
    flow, y0, _ = setup(spec)
    mod = discrete.ModifiedFlow(flow, 0.2, model, getattr(spec, "rank", 1))
    y = y0 + 0.3 * np.random.default_rng(1).standard_normal(y0.size)
    h = 1e-5
    fd = np.array([-(mod.modified_loss(y + h * e) - mod.modified_loss(y - h * e)) / (2 * h) for e in np.eye(y.size)])
    rhs = mod.rhs(0.0, y)
    assert np.max(np.abs(rhs - fd)) <= 1e-7 * np.max(np.abs(fd))
    assert np.max(np.abs(rhs - flow.rhs(0.0, y))) > 1e-3 * np.max(np.abs(fd))   # the correction is there


def test_modified_block_route_equals_full_route():
    """The per-head Hessian-vector product (LR-6) against L~ written out for all heads and differentiated."""
    from reduced_dynamics.derivations import modified_flow
    from reduced_dynamics import compile as compiler
    spec = rd.spec("attn-m", dim=2, heads=2, init_scale=0.5)
    flow, y0, _ = merged.setup(spec)
    full = compiler.compile_system(modified_flow, "full_modified_system", {"family": "attn-m", "D": 2, "H": 2})
    y = y0 + 0.2 * np.random.default_rng(2).standard_normal(y0.size)
    heads_first = flow.theta(y).T.reshape(-1)                       # (v_i, U_i) head after head
    expected = full["modified_rhs"](heads_first, flow.moments.values, np.array([0.3]))
    got = flow.theta(discrete.ModifiedFlow(flow, 0.3, "attn-m").rhs(0.0, y)).T.reshape(-1)
    assert np.allclose(got, expected, rtol=1e-10, atol=1e-12)


def drop_time_gaps(model, etas, t_max, **kw):
    """(map - flow, map - modified) drop-time gaps, every curve on the map's grid t = eta k, one level."""
    rows = []
    for eta in etas:
        steps = int(round(t_max / eta))
        spec = rd.spec(model, lr=eta, steps=steps, **kw)
        grid = eta * np.arange(steps + 1)
        curves = {d: rd.predict(spec.replace(discretisation=d), t_eval=grid) for d in ("flow", "modified")}
        curves["map"] = rd.predict(spec.replace(discretisation="map"))
        level = 0.5 * (curves["flow"].loss[0] + curves["flow"].loss[-1])
        times = {d: crossing_time(c.t, c.loss, level) for d, c in curves.items()}
        rows.append((times["map"] - times["flow"], times["map"] - times["modified"]))
    return np.array(rows)


def test_fitted_orders_attn_m():
    etas = np.geomspace(0.02, 0.2, 5)
    gaps = drop_time_gaps("attn-m", etas, 12.0, dim=2, heads=2, init_scale=0.01)
    assert fitted_order(etas, gaps[:, 0]) == pytest.approx(1.0, abs=0.15)
    assert fitted_order(etas, gaps[:, 1]) == pytest.approx(2.0, abs=0.25)
    assert np.all(np.abs(gaps[:, 1]) < np.abs(gaps[:, 0]))


def _escape(step, y_star, eta, steps=3000, kick=1e-6):
    """Largest distance from the minimum y_star over ``steps`` of ``step`` started at y_star + kick."""
    y = y_star + kick * np.random.default_rng(3).standard_normal(y_star.size)
    far = 0.0
    for _ in range(steps):
        y = step(y, eta)
        far = max(far, float(np.max(np.abs(y - y_star))))
    return far


def test_max_stable_lr_brackets_instability_attn_m():
    """(LR-8): the minimum the flow reaches is linearly stable under the reduced map and under full GD (frozen
    off-manifold blocks) 2 % below eta_max and unstable 2 % above (a kick of 1e-6 grows past 1e-3; above
    eta_max GD then settles on a flatter minimum of the same loss, or oscillates, see the docs)."""
    spec = rd.spec("attn-m", dim=2, heads=2, init_scale=0.1, train_size=200, freeze_off_manifold=True, t_max=60.0)
    bound = merged.max_stable_lr(spec)
    flow, _, _ = merged.setup(spec)
    y_star = bound["state"]
    cov, params, data = ref.problem(spec)
    model, batch = ref.MergedAttention(spec.kappa), ref.Batch.from_training_set(data)
    D, H = spec.dim, spec.heads
    mask = model.off_manifold_mask(params)

    def full_step(y, eta):
        th = y.reshape(1 + D * D, H)
        p = {"W": np.zeros((H, D + 1, D + 1)), "r": np.zeros((H, D + 1))}
        p["W"][:, :D, :D] = th[1:].T.reshape(H, D, D)
        p["r"][:, D] = th[0]
        p = ref.gradient_descent(model, p, batch, eta, 1, mask=mask, progress=False)[2]
        return merged.pack(*merged.projection(p["W"], p["r"]), np.eye(D))

    def map_step(y, eta):
        return y + eta * flow.rhs(0.0, y)

    for step, steps in ((map_step, 3000), (full_step, 1500)):
        assert _escape(step, y_star, 0.98 * bound["eta_max"], steps) < 1e-5
        assert _escape(step, y_star, 1.02 * bound["eta_max"], steps) > 1e-3


def test_fitted_orders_attn_s_full_gd():
    """The same orders against full frozen GD of attn-s (one drop, D = 1), the figure's case."""
    from reduced_dynamics.scripts.discretisation_order import CASES, gaps
    case = CASES["attn-s"]
    res = gaps("attn-s", np.geomspace(*case["rates"], 5), case["t_max"], **case["spec"])
    assert res["order_flow"] == pytest.approx(1.0, abs=0.15)
    assert res["order_modified"] == pytest.approx(2.0, abs=0.25)


def test_unfrozen_gd_is_the_all_weights_map_attn_m():
    """Every weight free: full-batch GD of the model is the GD map of the full-parameter flow (LA-44) on the
    sample moments of its training set, step by step (the model is linear in Theta = sum_i r_i (x) W_i)."""
    from reduced_dynamics.theory.linear_attention import iwl
    spec = rd.spec("attn-m", lr=0.3, steps=60, **{**SMALL_M, "freeze_off_manifold": False})
    cov, params, data = ref.problem(spec)
    model = ref.MergedAttention(spec.kappa)
    _, states, _ = ref.gradient_descent(model, params, ref.Batch.from_training_set(data), spec.lr, spec.gd_steps,
                                        record=lambda p: iwl.full_state(p), progress=False)
    states = np.array(states)
    flow, y0, _ = iwl.setup(spec, moments="sample", level="full")
    mapped = discrete.gd_map(flow, y0, spec.lr, spec.gd_steps).y
    assert np.max(np.abs(mapped - states)) <= 1e-9 * np.max(np.abs(states))
    off = np.abs(states[-1].reshape(spec.heads, -1)[:, :spec.dim]).max()     # r_i^x left zero: it moved
    assert off > 1e-4


def test_all_weights_hvp_is_minus_the_derivative_of_the_flow():
    """(LR-9): Hess L . u of the full-parameter flow against central differences of its right-hand side, and
    symmetric (u . H v = v . H u); the modified right-hand side is -grad of L~ = L + (eta/4)|grad L|^2."""
    from reduced_dynamics.theory.linear_attention import iwl
    spec = rd.spec("attn-m", **{**SMALL_M, "freeze_off_manifold": False})
    flow, y0, _ = iwl.setup(spec, moments="sample", level="full")
    rng = np.random.default_rng(3)
    y = y0 + 0.3 * rng.standard_normal(y0.shape)
    u, v = rng.standard_normal(y.shape), rng.standard_normal(y.shape)
    eps = 1e-6
    fd = -(flow.rhs(0.0, y + eps * u) - flow.rhs(0.0, y - eps * u)) / (2 * eps)
    hu = flow.hvp(y, u)
    assert np.max(np.abs(hu - fd)) <= 1e-6 * np.max(np.abs(fd))
    assert abs(v @ hu - u @ flow.hvp(y, v)) <= 1e-10 * abs(v @ hu)

    def modified_loss(z):
        theta = flow.thetas(z[None])
        f = flow.rhs(0.0, z)
        return float(flow.train.loss(theta)[0]) + 0.25 * spec.lr * float(f @ f)
    grad = np.array([(modified_loss(y + eps * e) - modified_loss(y - eps * e)) / (2 * eps) for e in np.eye(y.size)])
    got = flow.modified_rhs(spec.lr)(0.0, y)
    assert np.max(np.abs(got + grad)) <= 1e-6 * np.max(np.abs(grad))
