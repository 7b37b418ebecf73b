"""attn-s under the §12 mixture (linear_attention_iwl.md §12, LA-54) and the test losses of the manifold
routes (LA-55): derivation against finite differences, the mixture route at p = 1 against the invariant-manifold
route, and the flow against the attn-s gradient-descent reference at a small size (one seed; the spread over
seeds is in the report of the change, measured with a larger run)."""
import numpy as np
import pytest
import sympy as sp

from reduced_dynamics.derivations import linear_iwl_separate as derivation
from reduced_dynamics.reference import linear_attention as ref
from reduced_dynamics.specs import LinearMergedSpec, LinearSeparateSpec
from reduced_dynamics.tasks import linear_attention as task
from reduced_dynamics.theory.linear_attention import iwl, iwl_separate, merged, mixture_observables, separate


def random_state(flow, y0, scale=0.2, seed=0):
    return y0 + scale * np.random.default_rng(seed).standard_normal(y0.size)


@pytest.mark.parametrize("dim,rank", [(2, 1), (3, 2)])
def test_flow_is_minus_the_gradient_and_the_derived_pullback(dim, rank):
    spec = LinearSeparateSpec(dim=dim, context=7, heads=2, rank=rank, icl=0.4, init_scale=0.5, init_rule="normal")
    flow, y0, _ = iwl_separate.setup(spec)
    y = random_state(flow, y0)
    loss = lambda z: float(flow.train.loss(flow.theta(z)))
    eps = 1e-6
    fd = np.array([(loss(y + eps * e) - loss(y - eps * e)) / (2 * eps) for e in np.eye(y.size)])
    f = flow.rhs(0.0, y)
    np.testing.assert_allclose(f, -fd, rtol=0, atol=1e-7 * np.max(np.abs(fd)))
    np.testing.assert_allclose(flow.derived_rhs(y), f, rtol=0, atol=1e-12 * np.max(np.abs(f)))
    # the Hessian-vector product (LR-9) against the derived head_jvp and against differences of the rhs
    u = np.random.default_rng(1).standard_normal(y.size)
    hv = flow.hvp(y, u)
    np.testing.assert_allclose(hv, -(flow.rhs(0, y + eps * u) - flow.rhs(0, y - eps * u)) / (2 * eps), rtol=0,
                               atol=1e-7 * np.max(np.abs(hv)))
    system = iwl_separate.compiled_system(dim, rank)
    H, n = spec.heads, flow.n
    G = flow.drive(flow.theta(y)).reshape(-1)
    W = np.einsum("hka,hkc->hac", *flow.split(y)[1:])
    uR, uK, uQ = flow.split(u)
    r = flow.split(y)[0]
    dW = np.einsum("hka,hkc->hac", uK, flow.split(y)[2]) + np.einsum("hka,hkc->hac", flow.split(y)[1], uQ)
    dTheta = (np.einsum("ha,hbc->abc", uR, W) + np.einsum("ha,hbc->abc", r, dW)).reshape(-1)
    dG = -2.0 * flow.train.A @ dTheta
    jvp = system["head_jvp"](y.reshape(H, n).T, np.repeat(G[:, None], H, 1), u.reshape(H, n).T,
                             np.repeat(dG[:, None], H, 1)).T.reshape(-1)
    np.testing.assert_allclose(-jvp, hv, rtol=0, atol=1e-12 * np.max(np.abs(hv)))


def test_pullback_is_the_chain_rule_symbolically():
    """D = 1, R = 1, H = 2: with G = 2 b - 2 A Theta substituted, the derived pull-back is exactly minus the
    gradient of the symbolic loss yy - 2 b.Theta + Theta^T A Theta in every weight."""
    loss, states, A, b, _ = derivation.full_loss(1, 2, 1)
    args, outputs = derivation.system(1, 1)["head_rhs"]
    state_syms, G_syms = args
    n = len(state_syms)
    theta_args, theta_out = derivation.system(1, 1)["head_theta"]
    thetas = []
    for h in range(2):
        sub = dict(zip(state_syms, states[h * n:(h + 1) * n]))
        thetas.append(sp.Matrix(theta_out).xreplace(sub))
    Theta = thetas[0] + thetas[1]
    G = 2 * b - 2 * A * Theta
    for h in range(2):
        sub = {**dict(zip(state_syms, states[h * n:(h + 1) * n])), **dict(zip(G_syms, G))}
        for out, x in zip(outputs, states[h * n:(h + 1) * n]):
            assert sp.expand(out.xreplace(sub) + sp.diff(loss, x)) == 0


def separate_spec(**kw):
    base = dict(dim=3, context=15, heads=2, init_scale=0.1, lr=0.002, seed=0)
    return LinearSeparateSpec(**{**base, **kw})


def test_mixture_route_at_p_one_is_the_manifold_route_attn_s():
    """Population moments at p = 1: the off-manifold blocks k_i^y, r_i^x get no drive and stay zero, so the
    all-weights flow (LA-54) is the manifold flow (LA-29); the curves agree to the integrators' tolerance."""
    spec = separate_spec(t_max=40.0)
    t = np.linspace(0, 40, 401)
    mixture = iwl_separate.predict(spec, t_eval=t)
    plain = separate.predict(spec, t_eval=t)
    assert plain.loss[0] - plain.loss[-1] > 0.3            # the curve drops within the window
    np.testing.assert_allclose(mixture.loss, plain.loss, rtol=0, atol=1e-7)
    assert set(mixture.observables) == set(plain.observables)
    for key, values in plain.observables.items():     # to 1e-5 of each observable's scale (measured <= 1.1e-5
        scale = np.max(np.abs(values))                # for ``learned``: the manifold route's default tolerance)
        np.testing.assert_allclose(mixture.observables[key], values, rtol=0, atol=2e-5 * scale)


def test_mixture_route_at_p_one_is_the_manifold_route_attn_m():
    spec = LinearMergedSpec(dim=3, context=15, heads=2, t_max=20.0)
    t = np.linspace(0, 20, 401)
    mixture, plain = iwl.predict(spec, t_eval=t), merged.predict(spec, t_eval=t)
    assert plain.loss[0] - plain.loss[-1] > 0.3
    np.testing.assert_allclose(mixture.loss, plain.loss, rtol=0, atol=1e-7)
    assert set(mixture.observables) == set(plain.observables)
    for key, values in plain.observables.items():   # balance: a difference of O(v^2) squares, conserved
        scale = np.max(plain.observables["v"] ** 2) if key == "balance" else np.max(np.abs(values))
        np.testing.assert_allclose(mixture.observables[key], values, rtol=0, atol=2e-5 * scale)
    # at p = 1 the in-context test law is the training law: L_IC is the training loss
    np.testing.assert_allclose(plain.observables["test_loss_in_context"], plain.loss, rtol=1e-10)


@pytest.mark.parametrize("model", ["attn-m", "attn-s"])
def test_manifold_test_losses_are_the_derived_moments_on_the_embedded_theta(model):
    """(LA-38) on the invariant manifold: L_IC (the LA-19 loss of B) and the closed form (LA-55) of L_IW equal
    the derived population moments of D_rand and D_noise (``iwl.law_moments``) on Theta with label row B."""
    cls = LinearMergedSpec if model == "attn-m" else LinearSeparateSpec
    spec = cls(dim=3, context=7, heads=2, eigenvalues=(0.5, 0.3, 0.2), seed=3)
    drawn = task.draw(spec)
    B = 0.3 * np.random.default_rng(0).standard_normal((4, 3, 3))
    theta = np.zeros((4, 4, 4, 3))
    theta[:, 3, :3, :] = B
    cov = drawn.covariance
    got = mixture_observables.manifold_test_losses(B, spec, cov, drawn.task_vector)
    for name, law in (("test_loss_in_context", "rand"), ("test_loss_in_weight", "noise")):
        expect = iwl.law_moments(law, cov.matrix, drawn.task_vector, spec.context, spec.kappa).loss(theta.reshape(4, -1))
        np.testing.assert_allclose(got[name], expect, rtol=1e-12)
    np.testing.assert_allclose(mixture_observables.regression_matrix(theta.reshape(4, -1), 3), B)


def test_gd_reference_follows_the_mixture_flow():
    """GD (lr 0.002, P = 2000, p = 0.5, D = 3, N = 15, H = 2, seed 0) against the sample-moment flow with GD's
    own test sets: in-weight drop time within 1 %, the training loss and both test losses within 1 % at every
    recorded step (measured 0.08 %, 0.4 %, 0.2 %, 0.5 %); the population flow's drop within 5 % (3.5 %)."""
    spec = separate_spec(icl=0.5, t_max=8.0, train_size=2000)
    gd = ref.simulate_separate(spec, progress=False, test_size=1000)
    emp = iwl_separate.predict(spec, moments="sample", tests="sample", test_size=1000, t_eval=gd.t)
    pop = iwl_separate.predict(spec, moments="population", t_eval=gd.t)
    assert "in_weight_drop_time" in gd.events
    assert emp.events["in_weight_drop_time"] == pytest.approx(gd.events["in_weight_drop_time"], rel=0.01)
    assert pop.events["in_weight_drop_time"] == pytest.approx(gd.events["in_weight_drop_time"], rel=0.05)
    assert np.max(np.abs(emp.loss / gd.loss - 1)) < 0.01
    for key in ("test_loss_in_context", "test_loss_in_weight"):
        assert np.max(np.abs(emp.observables[key] / gd.observables[key] - 1)) < 0.01


def test_predict_attn_s_with_icl_below_one_runs_and_records_both_test_losses(tmp_path):
    """Before LA-54, ``predict attn-s --icl 0.5`` exited 2 ("icl: expected 1 for the attn-s theory")."""
    from reduced_dynamics.cli import main
    out = tmp_path / "s.npz"
    code = main(["predict", "attn-s", "--icl", "0.5", "--dim", "2", "--context", "7", "--heads", "2",
                 "--t-max", "5", "--out", str(out)])
    assert code in (0, None)
    data = np.load(out, allow_pickle=True)
    assert {"test_loss_in_context", "test_loss_in_weight", "beta", "v"} <= set(data.files)


def test_reduced_gd_map_on_sample_moments_is_the_reference_step_by_step():
    """On the training set's own moments, the map theta + lr * rhs (LR-3) of (LA-54) is full-batch GD of every
    weight that reaches the prediction (Q_i[:, D] gets no gradient): the reference's curves to roundoff
    (measured 2e-15); the modified flow (LR-5) is far closer to GD than the flow at lr 0.01 (3e-4 vs 2e-2)."""
    spec = separate_spec(icl=0.5, lr=0.01, steps=600, train_size=1000, seed=1)
    gd = ref.simulate_separate(spec, progress=False, test_size=500)
    gd_map = iwl_separate.predict(spec.replace(discretisation="map"), moments="sample", tests="sample", test_size=500)
    np.testing.assert_allclose(gd_map.loss, gd.loss, rtol=0, atol=1e-12)
    for key in ("test_loss_in_context", "test_loss_in_weight"):
        np.testing.assert_allclose(gd_map.observables[key], gd.observables[key], rtol=0, atol=1e-12)
    assert gd.loss[0] - gd.loss[-1] > 0.3
    flow, modified = (iwl_separate.predict(spec.replace(discretisation=d), moments="sample", tests="sample",
                                           test_size=500, t_eval=gd.t) for d in ("flow", "modified"))
    assert np.max(np.abs(modified.loss - gd.loss)) < 0.05 * np.max(np.abs(flow.loss - gd.loss))


def test_weight_decay_is_minus_lambda_times_the_weights_and_gd_follows_it():
    """(WD-2, WD-3) on the attn-s mixture flow: the flow with decay is the flow minus lambda y, the Hessian-vector
    product gains lambda u, and the reference's GD with decay (a separate term) follows the GD map of this
    flow on its own training set step by step."""
    spec = LinearSeparateSpec(dim=2, heads=2, icl=0.5, train_size=300, lr=0.01, steps=40, weight_decay=0.3)
    plain, y0, _ = iwl_separate.setup(spec.replace(weight_decay=0.0))
    decayed, _, _ = iwl_separate.setup(spec)
    u = np.random.default_rng(1).standard_normal(y0.size)
    np.testing.assert_allclose(decayed.rhs(0.0, y0), plain.rhs(0.0, y0) - 0.3 * y0, rtol=0, atol=1e-14)
    np.testing.assert_allclose(decayed.hvp(y0, u), plain.hvp(y0, u) + 0.3 * u, rtol=0, atol=1e-12)
    gd = ref.simulate_separate(spec, progress=False)
    theory = iwl_separate.predict(spec.replace(discretisation="map"), moments="sample")
    assert np.max(np.abs(theory.loss[:len(gd.loss)] - gd.loss) / gd.loss) < 1e-9
