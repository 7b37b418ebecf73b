"""Science of the attn-s theory side: aligned scalar exactness and closed-form escape times (C7),
conservation (C10), scale law (C11), fixed points of learned subsets (§7.2), plateaus on the ladder (C9,
population), the PCR predictor (LA-34) against least squares on m components, the Jacobian, and flow
invariants over random sizes (hypothesis)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reduced_dynamics.events import first_crossing_below
from reduced_dynamics.specs import LinearSeparateSpec
from reduced_dynamics.tasks import linear_attention as task
from reduced_dynamics.theory.linear_attention import separate as th

A0 = 0.05


def c7_spec(**changes):
    values = dict(dim=4, context=31, heads=4, rank=1, output_scale="paper", init_rule="normal", init_scale=A0,
                  t_max=1500.0)
    return LinearSeparateSpec(**{**values, **changes})


def aligned_state(flow, a0=A0):
    """Head i on eigenvector i with v = kappa = rho = a0 (C7), in the flow's (eigen)basis."""
    D, H = flow.dim, flow.heads
    K = np.zeros((H, 1, D))
    for i in range(H):
        K[i, 0, i] = a0
    return th.pack(np.full(H, a0), K, K.copy(), np.eye(D))


@pytest.fixture(scope="module")
def c7_run():
    spec = c7_spec()
    flow, _, cov = th.setup(spec, moments="population")
    t = np.linspace(0.0, 1500.0, 60001)
    sol = flow.solve(aligned_state(flow), 1500.0, t_eval=t, rtol=1e-10, atol=1e-14)
    return spec, flow, cov, sol


def test_c7_flow_equals_the_sum_of_scalar_laws(c7_run):
    """C7: heads aligned on distinct eigenvectors, v = kappa = rho = 0.05, c = 1: the population flow (LA-29)
    and the sum of the four scalar ODEs (LA-31) give the same loss, max |dL| < 1e-6 (note: 1.1e-7)."""
    spec, flow, cov, sol = c7_run
    beta = th.scalar_laws(cov.eigenvalues, spec.context, spec.c, A0, sol.t)
    gap = np.max(np.abs(flow.loss(sol.y) - th.scalar_loss(cov.eigenvalues, spec.context, spec.c, beta)))
    print(f"C7 largest gap {gap:.3g}")
    assert gap < 1e-6
    assert flow.loss(sol.y)[-1] < 0.14          # all four drops happen by t = 1500


def test_c7_midpoint_times_equal_the_closed_form(c7_run):
    """C7: each component's half-point (beta_d / B*_dd = 1 - 1/sqrt 2, where its loss decrement is half
    done) in the flow equals (LA-32) to 0.01 %, and (LA-33) is within 0.1 % of it."""
    spec, flow, cov, sol = c7_run
    B = flow.b_vector(sol.y)
    beta = B.reshape(spec.dim, spec.dim, -1)[np.arange(spec.dim), np.arange(spec.dim)].T
    y = beta / th.population_b_star(spec, cov)
    measured = np.array([first_crossing_below(sol.t, -y[:, d], -(1 - 1 / np.sqrt(2))) for d in range(spec.dim)])
    closed, leading = th.escape_times(cov.eigenvalues, spec.context, spec.c, A0)
    print("C7 midpoints flow", measured, "closed form", closed, "leading order", leading)
    np.testing.assert_allclose(measured, closed, rtol=1e-4)
    np.testing.assert_allclose(leading, closed, rtol=1e-3)


def test_c10_conserved_quantities_along_the_population_flow():
    """(LA-37): v_i^2 - ||K_i^x||_F^2 and K_i^x K_i^x^T - Q_i^x Q_i^x^T constant to 1e-8 (H = 3, R = 2, init
    0.3-0.5 drawn by the normal rule at scale 0.4, t in [0, 200], atol 1e-12, rtol 1e-10)."""
    spec = LinearSeparateSpec(heads=3, rank=2, init_rule="normal", init_scale=0.4, output_scale="paper",
                              t_max=200.0)
    flow, y0, _ = th.setup(spec)
    sol = flow.solve(y0, 200.0, atol=1e-12, rtol=1e-10)
    v, K, Q = flow.unpack(sol.y)
    balance = v ** 2 - np.sum(K ** 2, axis=(2, 3))
    gram = np.einsum("thra,thsa->thrs", K, K) - np.einsum("thra,thsa->thrs", Q, Q)
    drift = max(np.max(np.abs(balance - balance[0])), np.max(np.abs(gram - gram[0])))
    print(f"C10 drift {drift:.3g}")
    assert drift < 1e-8
    assert np.all(np.diff(flow.loss(sol.y)) <= 1e-12)
    assert flow.loss(sol.y)[-1] < 0.5 * flow.loss(sol.y)[0]


def test_c11_code_scale_equals_paper_scale_with_rescaled_init_and_time():
    """(LA-15): the c = N flow from weights theta equals the c = 1 flow from N^(1/3) theta at time N^(2/3) t."""
    N = 31
    spec = LinearSeparateSpec(output_scale="code", init_rule="normal", init_scale=0.05, heads=3, t_max=30.0)
    t = np.linspace(0.0, 30.0, 301)
    code = th.predict(spec, t_eval=t)
    flow, y0, _ = th.setup(spec)
    paper = th.predict(spec.replace(output_scale="paper", t_max=N ** (2 / 3) * 30.0), t_eval=N ** (2 / 3) * t,
                       y0=N ** (1 / 3) * y0)
    assert code.meta["c"] == N and paper.meta["c"] == 1
    gap = np.max(np.abs(code.loss - paper.loss))
    print(f"C11 gap {gap:.3g}")
    assert gap < 1e-7
    assert code.loss[-1] < 0.7 * code.loss[0]          # the comparison spans at least one drop


@pytest.mark.parametrize("subset", [(0,), (0, 1), (1, 3), (0, 1, 2, 3)])
def test_learned_subsets_are_fixed_points_on_the_ladder(subset):
    """§7.2: heads aligned on the directions of S with v = kappa = rho = (B*_dd)^(1/3), the others zero, are
    a fixed point of (LA-29) with loss tau - sum_{d in S} Delta_d (the ladder value for S = {1..m})."""
    spec = c7_spec()
    flow, _, cov = th.setup(spec, moments="population")
    bstar = th.population_b_star(spec, cov)
    D = spec.dim
    a = np.zeros(D)
    a[list(subset)] = bstar[list(subset)] ** (1 / 3)
    K = np.zeros((D, 1, D))
    K[np.arange(D), 0, np.arange(D)] = a
    y = th.pack(a, K, K.copy(), np.eye(D))
    assert np.max(np.abs(flow.rhs(0.0, y))) < 1e-12
    lam, N = cov.eigenvalues, spec.context
    delta = lam / (1 + (1 + lam.sum() / lam) / N)
    assert float(flow.loss(y)) == pytest.approx(lam.sum() - delta[list(subset)].sum(), rel=1e-12)
    if subset == tuple(range(len(subset))):
        assert float(flow.loss(y)) == pytest.approx(th.ladder(spec)[len(subset)], rel=1e-12)


def test_c9_population_plateaus_sit_on_the_ladder():
    """C9 sizes (c = N = 31, H = 5, R = 1, code init 0.01): the population flow's plateaus, detected from the
    curve, are matched to consecutive ladder steps and lie within 1.5 % of (LA-30) (measured: 0.01 %)."""
    spec = LinearSeparateSpec()
    traj = th.predict(spec)
    summary = th.summarise(spec, traj)
    ladder = th.ladder(spec)
    steps = summary["plateau_steps"]
    print("C9 population plateaus", summary["plateaus"], steps, summary["drop_times"])
    assert steps[:4] == [0, 1, 2, 3]
    for m, level in zip(steps, summary["plateaus"]):
        assert abs(level - ladder[m]) / ladder[m] < 0.015
    assert len(summary["drop_times"]) >= 3 and summary["drop_times"][2] < 200


def test_components_learned_and_pcr_along_the_trajectory():
    """On each plateau the model's held-out error equals that of PCR (LA-34) with the learned number of
    components; the count of learned components never decreases and ends at the ladder's last step."""
    spec = LinearSeparateSpec(t_max=200.0)
    traj = th.predict(spec)
    comp = traj.observables["components"]
    assert np.all(np.diff(comp) >= 0) and comp[0] == 0 and comp[-1] == 3
    summary = th.summarise(spec, traj)
    for m, level in zip(summary["plateau_steps"], summary["plateaus"]):
        k = int(np.argmin(np.abs(traj.loss - level)))
        assert comp[k] == m
        assert traj.observables["test_loss"][k] == pytest.approx(traj.observables["pcr_test_loss"][k], rel=0.02)


def test_pcr_predictor_equals_least_squares_on_m_components():
    """(LA-34) against a direct computation: least squares of y_q on the features (e_a^T h)(e_b^T x_q),
    a, b <= m (all m^2 products, not only the diagonal), fitted on 4e5 fresh prompts. The fitted
    coefficient matrix is diagonal with entries 1/(((N+1)/N) lambda_d + tau/N), and the mean squared
    errors of both predictors equal L(M_m) of (LA-30) on held-out prompts."""
    D, N, m = 4, 7, 2
    spec = LinearSeparateSpec(dim=D, context=N)
    rng = np.random.default_rng(21)
    cov = task.draw_covariance("linear", D, None, rng)
    fit = task.draw_training_set(cov, N, 400_000, rng)
    test = task.draw_training_set(cov, N, 200_000, rng)

    def features(data):
        h = np.einsum("pn,pnd->pd", data.y, data.x) / N
        hE, xE = h @ cov.basis[:, :m], data.xq @ cov.basis[:, :m]
        return h, (hE[:, :, None] * xE[:, None, :]).reshape(len(h), m * m)

    _, phi = features(fit)
    coef, *_ = np.linalg.lstsq(phi, fit.yq, rcond=None)
    expected = np.diag(th.pcr_coefficients(cov.eigenvalues, N)[:m])
    assert np.max(np.abs(coef.reshape(m, m) - expected)) < 0.03 * np.max(expected)
    h_test, phi_test = features(test)
    pcr = th.pcr_predict(h_test, test.xq, cov, N, m)
    lsq = phi_test @ coef
    mse_pcr, mse_lsq = np.mean((pcr - test.yq) ** 2), np.mean((lsq - test.yq) ** 2)
    se = np.std((pcr - test.yq) ** 2) / np.sqrt(test.yq.size)
    ladder_m = th.ladder(spec.replace(eigenvalues=tuple(cov.eigenvalues)))[m]
    assert abs(mse_pcr - ladder_m) < 4 * se
    assert mse_pcr <= mse_lsq + 4 * se and abs(mse_pcr - mse_lsq) < 0.01 * ladder_m


@pytest.mark.parametrize("moments", ["population", "sample"])
def test_jacobian_matches_finite_differences(moments):
    spec = LinearSeparateSpec(dim=3, heads=2, rank=2, init_rule="normal", init_scale=0.5, train_size=300)
    flow, y0, _ = th.setup(spec, moments=moments)
    J = flow.jacobian(0.0, y0)
    eps = 1e-6
    fd = np.array([(flow.rhs(0, y0 + eps * e) - flow.rhs(0, y0 - eps * e)) / (2 * eps) for e in np.eye(y0.size)]).T
    np.testing.assert_allclose(J, fd, rtol=1e-6, atol=1e-8)


@settings(max_examples=8)
@given(dim=st.integers(1, 3), heads=st.integers(1, 3), rank=st.integers(1, 3), context=st.integers(1, 40),
       scale=st.floats(0.1, 0.6), seed=st.integers(0, 10_000))
def test_population_flow_invariants_over_random_problems(dim, heads, rank, context, scale, seed):
    """Loss non-increasing, bounded below by L(M_min(D, HR)) (LA-30), balance (LA-37) conserved up to the
    integrator's relative tolerance, for random sizes and ranks."""
    rank = min(rank, dim)
    spec = LinearSeparateSpec(dim=dim, heads=heads, rank=rank, context=context, init_scale=scale, seed=seed,
                              init_rule="normal", output_scale="paper", t_max=30.0)
    traj = th.predict(spec, test_size=50)
    assert np.all(np.diff(traj.loss) <= 1e-10)
    assert traj.loss.min() >= th.ladder(spec)[-1] - 1e-10
    balance = traj.observables["balance"]
    assert np.max(np.abs(balance - balance[0])) < 1e-6 * max(1.0, np.max(np.abs(balance[0])))


def test_the_stiff_integrator_gives_the_same_staircase():
    """predict with integrator='stiff' (LSODA on the compiled right-hand side and Jacobian) lands every drop of a
    D = 4 staircase where the reference DOP853 does (relative 1e-4), with fewer right-hand-side evaluations."""
    spec = LinearSeparateSpec(dim=4, heads=5, rank=1, seed=0, t_max=3000.0)
    dop, stiff = th.predict(spec, test_size=50), th.predict(spec.replace(integrator="stiff"), test_size=50)
    a, b = th.summarise(spec, dop)["drop_times"], th.summarise(spec, stiff)["drop_times"]
    assert len(a) == len(b) >= 3
    np.testing.assert_allclose(b, a, rtol=1e-4)
    assert stiff.meta["rhs_evaluations"] < dop.meta["rhs_evaluations"]
