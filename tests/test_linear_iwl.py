"""In-context vs in-weight learning (linear_attention_iwl.md §12): data law, derived moments, flows, laws.

Checks C12 to C16 of §12.11 at the note's sizes where they run in seconds (population flows), smaller
sizes where gradient descent is involved. Default configuration: D = 4, N = 31, H = 8, Lambda = I/4,
kappa = 1 (c = 31), ||w_bar|| = 2.
"""
import math

import numpy as np
import pytest

from reduced_dynamics.derivations import linear_iwl as derivation
from reduced_dynamics.errors import SpecError
from reduced_dynamics.reference import linear_attention as ref
from reduced_dynamics.specs import LinearMergedSpec, LinearSeparateSpec
from reduced_dynamics.tasks import linear_attention as task
from reduced_dynamics.theory.linear_attention import iwl

D, N, LAM, C = 4, 31, 0.25, 31.0


def code_spec(p, sigma=1e-4, **kw):
    base = dict(dim=D, context=N, heads=8, eigenvalues=(LAM,) * D, output_scale="code", init_scale=sigma, icl=p,
                lr=5e-4, t_max=3.0, seed=1)
    return LinearMergedSpec(**{**base, **kw})


# ---------------------------------------------------------------------------------------------------------
# Spec and data (§12.1)

@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "half"])
def test_icl_outside_zero_one_is_a_one_line_spec_error(bad):
    with pytest.raises(SpecError, match="^icl: ") as info:
        LinearMergedSpec(icl=bad)
    assert "\n" not in str(info.value)


def test_attention_choices():
    assert LinearSeparateSpec(attention="softmax").attention == "softmax"
    with pytest.raises(SpecError, match="^attention: "):
        LinearMergedSpec(attention="relu")


def test_mixture_follows_the_authors_generator():
    spec = code_spec(0.3, train_size=1000)
    drawn = task.draw(spec, train=True)
    w_bar, data = drawn.task_vector, drawn.train
    assert np.linalg.norm(w_bar) == pytest.approx(math.sqrt(D))
    k = int(0.3 * 1000)
    assert np.all(data.w[k:] == w_bar) and not np.any(np.all(data.w[:k] == w_bar, axis=1))
    np.testing.assert_allclose(data.y, np.einsum("pnd,pd->pn", data.x, data.w), atol=1e-12)
    np.testing.assert_allclose(data.yq, np.einsum("pd,pd->p", data.xq, data.w), atol=1e-12)


def test_p_zero_is_its_own_branch_noise_context():
    drawn = task.draw(code_spec(0.0, train_size=20000), train=True)
    data = drawn.train
    np.testing.assert_allclose(data.yq, data.xq @ drawn.task_vector, atol=1e-12)
    # context labels are N(0, 1) and independent of x (here: uncorrelated with every input coordinate)
    assert abs(np.var(data.y) - 1.0) < 0.01
    corr = np.einsum("pn,pnd->d", data.y, data.x) / data.y.size / math.sqrt(LAM)
    assert np.max(np.abs(corr)) < 0.01


def test_p_one_and_every_existing_draw_unchanged():
    """icl = 1 is today's task; the new "task" stream and the test sets never change another draw."""
    spec = LinearMergedSpec(train_size=300)
    rngs = task.streams(spec.seed)
    cov = task.spec_covariance(spec, rngs)
    W, r = task.merged_initial_weights(spec.dim, spec.heads, spec.init_scale, rngs["init"])
    data = task.draw_training_set(cov, spec.context, 300, rngs["data"])
    drawn = task.draw(spec, train=True, test_size=50)
    assert np.array_equal(drawn.weights["W"], W) and np.array_equal(drawn.weights["r"], r)
    assert np.array_equal(drawn.train.x, data.x) and np.array_equal(drawn.train.y, data.y)
    assert np.array_equal(task.draw(spec.replace(icl=0.4), train=True).weights["W"], W)


def test_test_sets_from_their_own_stream():
    spec = code_spec(0.2, train_size=200)
    a, b = task.draw(spec, train=True), task.draw(spec, train=True, test_size=100)
    assert np.array_equal(a.train.x, b.train.x) and np.array_equal(a.train.w, b.train.w)
    iw, ic = b.tests["in_weight"], b.tests["in_context"]
    np.testing.assert_allclose(iw.yq, iw.xq @ b.task_vector, atol=1e-12)            # D_noise: query by w_bar
    np.testing.assert_allclose(ic.y, np.einsum("pnd,pd->pn", ic.x, ic.w), atol=1e-12)  # D_rand
    assert not np.allclose(ic.w, b.task_vector)


# ---------------------------------------------------------------------------------------------------------
# Moments (C12, LA-45) and fixed points (§12.6)

@pytest.mark.parametrize("p", [0.2, 0.5, 1.0])
def test_sector_drive_is_la45(p):
    flow, _, _ = iwl.setup(code_spec(p), level="sector")
    W = 2.0
    expect = C * np.array([[p * LAM ** 2 * math.sqrt(D - 1), LAM ** 2 * (p + (1 - p) * W ** 2), (1 - p) * W ** 2 * LAM * LAM * W],
                           [(1 - p) * LAM ** 2 * W * math.sqrt(D - 1) / N, (1 - p) * LAM ** 2 * W * (N + 3) / N,
                            LAM ** 2 * (p + (1 - p) * W ** 2)]])
    np.testing.assert_allclose(flow.train.b.reshape(2, 3), expect, rtol=1e-12, atol=1e-12)


def test_sector_drive_at_p_zero():
    """p = 0: (LA-43) gives E[g x_q^T y_q] = 0 on D_noise, so the (w_hat, u) entry is 0; (LA-45)'s shorthand
    "(1 - p) -> 1" would give c lam^2 W^2 there (see the README claim ledger)."""
    flow, _, _ = iwl.setup(code_spec(0.0), level="sector")
    W = 2.0
    expect = C * np.array([[0, 0, LAM * W], [LAM ** 2 * W * math.sqrt(D - 1) / N, LAM ** 2 * W * (N + 3) / N, 0]])
    np.testing.assert_allclose(flow.train.b.reshape(2, 3), expect, rtol=1e-12, atol=1e-12)


def test_derived_moments_reproduce_la42():
    """Token-form moments with S of a fixed task reproduce the closed forms of (LA-42) for E[g g^T] and
    E[q^2] (read off A at the (y, x_d) and (y, y) slots of M, contracted against E[x_q x_q^T] = Lambda)."""
    rng = np.random.default_rng(3)
    Dd, Nn = 3, 5
    Q = np.linalg.qr(rng.standard_normal((Dd, Dd)))[0]
    Lam = Q @ np.diag([0.5, 0.3, 0.2]) @ Q.T
    w = rng.standard_normal(Dd)
    m = iwl.moments_given(*iwl.token_covariances(Lam, w), Nn, 1.0)
    A = m.A.reshape(Dd + 1, Dd + 1, Dd, Dd + 1, Dd + 1, Dd)
    om, s2 = Lam @ w, w @ Lam @ w
    gg = A[Dd, :Dd, :, Dd, :Dd, :]                       # E[g_j x_l g_m x_o] = E[g g^T]_jm Lam_lo
    np.testing.assert_allclose(gg, np.einsum("jm,lo->jlmo", Nn * (Nn + 1) * np.outer(om, om) + Nn * s2 * Lam, Lam),
                               rtol=1e-12)
    np.testing.assert_allclose(A[Dd, Dd, :, Dd, Dd, :], Nn * (Nn + 2) * s2 ** 2 * Lam, rtol=1e-12)
    np.testing.assert_allclose(A[Dd, :Dd, :, Dd, Dd, :], np.einsum("j,lo->jlo", Nn * (Nn + 2) * s2 * om, Lam),
                               rtol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("law", ["rand", "noise", "fix"])
def test_c12_moments_against_monte_carlo(law):
    """C12: D = 3, N = 5, anisotropic Lambda, 3.2e6 sequences: relative Frobenius error of A <= 1 %."""
    rng = np.random.default_rng(12)
    Dd, Nn, total, chunk = 3, 5, 3_200_000, 100_000
    Q = np.linalg.qr(rng.standard_normal((Dd, Dd)))[0]
    Lam = Q @ np.diag([0.5, 0.3, 0.2]) @ Q.T
    root = Q @ np.diag(np.sqrt([0.5, 0.3, 0.2]))
    w_bar = rng.standard_normal(Dd)
    exact = iwl.law_moments(law, Lam, w_bar, Nn, 1.0)
    A, b = 0.0, 0.0
    for _ in range(total // chunk):
        x = rng.standard_normal((chunk, Nn + 1, Dd)) @ root.T
        w = rng.standard_normal((chunk, Dd)) if law == "rand" else np.broadcast_to(w_bar, (chunk, Dd))
        y = rng.standard_normal((chunk, Nn)) if law == "noise" else np.einsum("pnd,pd->pn", x[:, :Nn], w)
        data = task.TrainingSet(x=x[:, :Nn], y=y, xq=x[:, Nn], yq=np.einsum("pd,pd->p", x[:, Nn], w), w=w)
        m = iwl.sample_moments(data, 1.0)
        A, b = A + m.A / (total // chunk), b + m.b / (total // chunk)
    assert np.linalg.norm(A - exact.A) / np.linalg.norm(exact.A) <= 0.01
    assert np.linalg.norm(b - exact.b) / np.linalg.norm(exact.b) <= 0.01


# §12.6 table: (end of phase 2 = optimum over the label-value row, global minimum), each train / L_IW / L_IC
TABLE = {0.0: ((0.0606, 0.0606, 2.409), (0.0123, 0.0123, 2.012)),
         0.2: ((0.1163, 1.039, 0.201), (0.0624, 1.023, 0.208)),
         0.5: ((0.1327, 1.066, 0.146), (0.1075, 1.041, 0.167)),
         0.8: ((0.1378, 1.081, 0.140), (0.1335, 1.062, 0.144)),
         1.0: ((0.1389, 1.096, 0.139), (0.1389, 1.096, 0.139))}


@pytest.mark.parametrize("p", sorted(TABLE))
def test_reference_losses_of_section_12_6(p):
    flow, _, _ = iwl.setup(code_spec(p), level="full")
    A, b = flow.train.A, flow.train.b
    row = np.arange(b.size).reshape(D + 1, -1)[D]           # label-value row: a_i = 0
    theta_row = np.zeros(b.size)
    theta_row[row] = np.linalg.solve(A[np.ix_(row, row)], b[row])
    theta_min = np.linalg.lstsq(A, b, rcond=None)[0]
    for theta, expect in ((theta_row, TABLE[p][0]), (theta_min, TABLE[p][1])):
        got = (flow.train.loss(theta), flow.tests["in_weight"].loss(theta), flow.tests["in_context"].loss(theta))
        np.testing.assert_allclose(got, expect, rtol=2e-3, atol=6e-4)     # the table's 3-4 digits


def test_p_zero_closed_forms_la47():
    tau, tr2, sb2 = 1.0, D * LAM ** 2, 1.0
    th = iwl.predict(code_spec(0.0), level="sector", t_eval=np.linspace(0, 3, 301))
    assert th.observables["test_loss_in_weight"][-1] == pytest.approx(2 * sb2 / (N + 2), rel=1e-3)
    assert th.observables["test_loss_in_context"][-1] == pytest.approx(tau + N * sb2 * (tau ** 2 + 2 * tr2) / (N + 2),
                                                                        rel=1e-3)


# ---------------------------------------------------------------------------------------------------------
# The flow (LA-44): gradient, levels (C13, C15), laws (C16)

def test_flow_is_minus_the_gradient_and_the_derived_pullback():
    flow, y0, _ = iwl.setup(code_spec(0.2, heads=2, sigma=0.3), level="full")
    y = y0 + 0.1 * np.random.default_rng(0).standard_normal(y0.size)
    loss = lambda z: float(flow.train.loss(flow.theta(z)))
    eps = 1e-6
    fd = np.array([(loss(y + eps * e) - loss(y - eps * e)) / (2 * eps) for e in np.eye(y.size)])
    np.testing.assert_allclose(flow.rhs(0.0, y), -fd, rtol=1e-6, atol=1e-6 * np.max(np.abs(fd)))
    import sympy as sp
    args, outs = derivation.head_pullback(2, 3)["head_rhs"]
    f = sp.lambdify(args, outs)
    small = iwl.IWLFlow(iwl.Moments(np.eye(6), np.arange(6.0), 1.0), {}, 2, 3, 1)
    z = np.random.default_rng(1).standard_normal(5)
    G = 2 * small.train.b - 2 * small.train.A @ small.theta(z)
    np.testing.assert_allclose(small.rhs(0, z), np.array(f(list(z), list(G)), dtype=float), rtol=1e-12)


@pytest.mark.parametrize("p", [0.0, 0.5])
def test_c13_sector_reproduces_the_full_population_flow(p):
    t = np.linspace(0, 3, 601)
    full, sector = (iwl.predict(code_spec(p), level=lv, t_eval=t) for lv in ("full", "sector"))
    for key in ("test_loss_in_weight", "test_loss_in_context"):
        assert np.max(np.abs(full.observables[key] - sector.observables[key])) <= 1e-4
    assert np.max(np.abs(full.loss - sector.loss)) <= 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("p", [0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9, 1.0])
@pytest.mark.parametrize("sigma", [1e-4, 1e-6])
def test_c13_all_p(p, sigma):
    t = np.linspace(0, 3, 601)
    full, sector = (iwl.predict(code_spec(p, sigma), level=lv, t_eval=t) for lv in ("full", "sector"))
    assert np.max(np.abs(full.loss - sector.loss)) <= 1e-4
    for key in ("test_loss_in_weight", "test_loss_in_context"):
        assert np.max(np.abs(full.observables[key] - sector.observables[key])) <= 1e-4


@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_c15_single_head(p):
    t = np.linspace(0, 3, 1201)
    sector, head1 = (iwl.predict(code_spec(p), level=lv, t_eval=t) for lv in ("sector", "head1"))
    for key, tol in (("in_weight_drop_time", 1e-3), ("in_context_drop_time", 5e-3)):
        assert head1.events[key] == pytest.approx(sector.events[key], rel=tol)
    assert np.max(np.abs(head1.loss - sector.loss)) <= 0.015


def test_in_weight_law_la48_derivation():
    """The derived (LA-48) is ln[(u*/U0 - 1)(sqrt 2 - 1)] / (4 s1)."""
    U0, s1, a1 = 1e-7, 15.0, 3.0
    f = float(derivation.in_weight_drop_time().subs({derivation.U0_SYM: U0, derivation.S1_SYM: s1,
                                                     derivation.A1_SYM: a1}))
    assert f == pytest.approx(math.log((s1 / a1 / U0 - 1) * (math.sqrt(2) - 1)) / (4 * s1), rel=1e-12)


S1_OVER_C = {0.0: 0.500, 0.1: 0.570, 0.2: 0.513, 0.3: 0.456, 0.5: 0.343, 0.7: 0.236, 0.8: 0.186, 0.9: 0.144, 1.0: 0.125}


@pytest.mark.parametrize("p", sorted(S1_OVER_C))
def test_c16_top_singular_value_of_the_drive(p):
    flow, _, _ = iwl.setup(code_spec(p), level="sector")
    assert iwl.top_mode(flow.train, 2)[1] / C == pytest.approx(S1_OVER_C[p], abs=6e-4)


@pytest.mark.parametrize("p", [0.0, 0.2, 0.5, 0.9, 1.0])
def test_c16_in_weight_law_against_the_flow(p):
    """(LA-48) vs the population flow's t_IW within 5 % (p = 1: against the training-loss midpoint)."""
    th = iwl.predict(code_spec(p), level="sector", t_eval=np.linspace(0, 3, 3001))
    measured = th.events["in_weight_drop_time"] if p < 1 else th.events["drop_time"]
    assert (p < 1) == ("in_weight_drop_time" in th.events)
    assert th.meta["t_in_weight_formula"] == pytest.approx(measured, rel=0.05)


@pytest.mark.slow
def test_c16_delay_is_sigma_independent_and_about_one_over_p():
    t = np.linspace(0, 6, 6001)
    for p in (0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9):
        delays = []
        for sigma in (1e-4, 1e-6):
            th = iwl.predict(code_spec(p, sigma, t_max=6.0), level="sector", t_eval=t)
            delays.append(th.events["in_context_drop_time"] - th.events["in_weight_drop_time"])
        assert delays[0] == pytest.approx(delays[1], rel=0.02)
        assert 0.15 <= p * delays[1] <= 0.22


# ---------------------------------------------------------------------------------------------------------
# Gradient descent against the flows (C14 at a small size: D = 3, N = 15, H = 4, P = 2000, sigma = 1e-3)

def small_spec(p):
    return LinearMergedSpec(dim=3, context=15, heads=4, eigenvalues=(1 / 3,) * 3, output_scale="code",
                            init_scale=1e-3, icl=p, lr=5e-4, steps=3000, train_size=2000, seed=1)


@pytest.mark.parametrize("p", [0.0, 0.5])
def test_c14_gd_against_the_sample_moment_flow(p):
    """The sample-moment flow with the reference's own test sets is GD's small-learning-rate limit:
    drop times within 1 %, test losses within 0.5 % (C14, GD vs emp)."""
    spec = small_spec(p)
    gd = ref.simulate_merged(spec, progress=False, test_size=1000)
    emp = iwl.predict(spec, moments="sample", tests="sample", test_size=1000, t_eval=gd.t)
    assert "in_weight_drop_time" in gd.events and "in_weight_drop_time" in emp.events
    assert p == 0.0 or "in_context_drop_time" in gd.events
    for key in ("in_weight_drop_time", "in_context_drop_time"):
        if key in gd.events:
            assert emp.events[key] == pytest.approx(gd.events[key], rel=0.01)
    for key in ("test_loss_in_weight", "test_loss_in_context"):
        assert emp.observables[key][-1] == pytest.approx(gd.observables[key][-1], rel=0.005)
        assert emp.observables[key].min() == pytest.approx(gd.observables[key].min(), rel=0.005)


@pytest.mark.parametrize("attention", ["linear", "softmax"])
def test_attn_s_reference_trains_on_the_mixture_and_records_both_test_losses(attention):
    spec = LinearSeparateSpec(dim=3, context=5, heads=2, train_size=100, icl=0.5, steps=20, attention=attention)
    gd = ref.simulate_separate(spec, progress=False, test_size=50)
    assert gd.observables["test_loss_in_weight"].shape == gd.loss.shape
    assert gd.observables["test_loss_in_context"].shape == gd.loss.shape
    assert set(gd.events) <= {"in_weight_drop_time", "in_context_drop_time"}
    assert gd.meta["icl"] == 0.5 and gd.meta["attention"] == attention
    from reduced_dynamics.theory.linear_attention import separate
    if attention == "softmax":                    # the expansion (LA-51) treats the random-task law only
        with pytest.raises(SpecError, match="^icl: "):
            separate.predict(spec)
    else:                                         # the attn-s mixture flow (LA-54): tests/test_linear_iwl_separate.py
        th = separate.predict(spec.replace(train_size=None, steps=None, t_max=1.0))
        assert {"test_loss_in_context", "test_loss_in_weight"} <= set(th.observables)


def aniso_spec(p, seed):
    return LinearMergedSpec(dim=D, context=N, heads=8, eigenvalues=(0.4, 0.3, 0.2, 0.1), output_scale="code",
                            init_scale=1e-4, icl=p, t_max=3.0, seed=seed)


@pytest.mark.slow
@pytest.mark.parametrize("p", [0.0, 0.2, 0.5, 0.8])
def test_c19_in_weight_law_with_the_full_svd_anisotropic(p):
    """C19: the code's default Lambda (0.4, 0.3, 0.2, 0.1, rotated), sigma = 1e-4: (LA-48) from the SVD of b
    as a (D+1) x (D+1)D matrix within 6 % of the full population flow's t_IW (seed 2)."""
    th = iwl.predict(aniso_spec(p, 2), level="full", t_eval=np.linspace(0, 3, 3001))
    assert th.meta["t_in_weight_formula"] == pytest.approx(th.events["in_weight_drop_time"], rel=0.06)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="seed 1 draws a w_bar for which (LA-48) is 8.7 % (p = 0.2: 0.6716 vs flow "
                                       "0.7358) and 8.6 % (p = 0.5: 0.6642 vs 0.7265) early: a single-mode estimate; "
                                       "seeds 2, 3 give -3.9 ... -4.9 %")
@pytest.mark.parametrize("p", [0.2, 0.5])
def test_c19_seed_1_outside_the_note_tolerance(p):
    th = iwl.predict(aniso_spec(p, 1), level="full", t_eval=np.linspace(0, 3, 3001))
    assert th.meta["t_in_weight_formula"] == pytest.approx(th.events["in_weight_drop_time"], rel=0.06)


@pytest.mark.slow
def test_quick_figure_shows_the_science(tmp_path):
    """The quick ICL/IWL figure's record: GD drop times within 7 % of the flow's (C18's tolerance), t_IC
    U-shaped in p, p Delta in [0.15, 0.22] for 0.1 <= p <= 0.9 (C16)."""
    import json
    from reduced_dynamics.scripts.attn_m_icl_iwl import make_figure
    make_figure(tmp_path, quick=True)
    record = json.loads((tmp_path / "attn_m_icl_iwl.json").read_text())
    for p, run in record["runs"].items():
        for key in ("in_weight_drop_time", "in_context_drop_time"):
            gd, th = run["gradient descent"][key], run["theory"][key]
            assert (gd is None) == (th is None)
            if gd is not None:
                assert gd == pytest.approx(th, rel=0.07), (p, key)
    laws = {k: np.array([np.nan if x is None else x for x in v]) for k, v in record["laws"].items()}
    p, t_ic = laws["p"], laws["t_ic_flow"]
    inner = (p >= 0.1) & (p <= 0.9)
    assert 0.15 <= np.min(p[inner] * (t_ic - laws["t_iw_flow"])[inner]) and np.max(p[inner] * (t_ic - laws["t_iw_flow"])[inner]) <= 0.22
    k = int(np.nanargmin(t_ic))
    assert 0.1 < p[k] < 1.0 and t_ic[k] < t_ic[p == 0.1][0] and t_ic[k] < t_ic[p == 1.0][0]


def phase3_final_loss(p):
    spec = code_spec(p, t_max=40.0)
    th = iwl.predict(spec, level="full", t_eval=np.linspace(0, 40, 2001), rtol=1e-8)
    return float(th.loss[-1]), th.meta["L_min"]


@pytest.mark.slow
@pytest.mark.parametrize("p", [0.0, 0.2, 0.5])
def test_c17_phase_three_reaches_the_global_minimum(p):
    """C17 (pop part): the x-value blocks escape late (phase 3, §12.9) and L(40) is within 0.3 % of the
    global minimum of §12.6 (measured 0.01227, 0.06242, 0.10764 vs 0.01227, 0.06235, 0.10753)."""
    final, minimum = phase3_final_loss(p)
    assert final == pytest.approx(minimum, rel=3e-3)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="p = 0.8: L(40) = 0.13403 is 0.42 % above the global minimum 0.13347 (phase 3 "
                                       "is slowest at p = 0.8: t_3 = 32.7 for this draw, note 31.0)")
def test_c17_phase_three_at_p_08():
    final, minimum = phase3_final_loss(0.8)
    assert final == pytest.approx(minimum, rel=3e-3)


@pytest.mark.slow
@pytest.mark.parametrize("p", [0.0, 0.2, 0.5, 0.8, 1.0])
def test_c14_note_size(p):
    """C14 at the note's size: P = 20000, sigma = 1e-4, lr 5e-4, 3000 steps. GD vs emp (with GD's own test
    sets): drop times within 1 %, min and final test losses within 0.5 %; GD vs pop: times within 3 %."""
    spec = code_spec(p, lr=5e-4, t_max=None, steps=3000, train_size=20000)
    gd = ref.simulate_merged(spec, progress=False)
    emp = iwl.predict(spec, moments="sample", tests="sample", level="full", t_eval=gd.t)
    pop = iwl.predict(spec, moments="population", level="sector", t_eval=gd.t)
    assert set(gd.events) == set(emp.events) == set(pop.events)
    for key in ("in_weight_drop_time", "in_context_drop_time"):
        if key in gd.events:
            assert emp.events[key] == pytest.approx(gd.events[key], rel=0.01)
            assert pop.events[key] == pytest.approx(gd.events[key], rel=0.03)
    for key in ("test_loss_in_weight", "test_loss_in_context"):
        assert emp.observables[key][-1] == pytest.approx(gd.observables[key][-1], rel=0.005)
        assert emp.observables[key].min() == pytest.approx(gd.observables[key].min(), rel=0.005)
