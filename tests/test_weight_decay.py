"""Weight decay (docs/theory/weight_decay.md): the derived decay term (WD-1, WD-2) against finite differences of
the full regularised loss, the modified flow of the regularised loss (WD-3), frozen GD with decay as the reduced
GD map step by step, the reference's separate decay term against finite differences, and the closed-form
regularised end points (WD-4 to WD-8) against the integrated flow."""
from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp

import reduced_dynamics as rd
from reduced_dynamics import compile as compiler
from reduced_dynamics.derivations import weight_decay as derivation
from reduced_dynamics.errors import SpecError
from reduced_dynamics.reference import linear_attention as ref
from reduced_dynamics.specs import LinearSeparateSpec
from reduced_dynamics.theory.linear_attention import discrete, merged, separate
from reduced_dynamics.theory.linear_attention import weight_decay as wd

from finite_differences import central_gradient

SMALL_M = dict(dim=3, heads=2, context=7, init_scale=0.3, train_size=300, freeze_off_manifold=True)
SMALL_S = dict(dim=3, heads=2, context=7, init_scale=0.3, init_rule="normal", output_scale="paper",
               train_size=300, freeze_off_manifold=True)


def test_reduced_decay_is_minus_lambda_phi_for_every_multiplicity():
    """(WD-2): -(1/m) d/dphi (lambda/2) m phi^2 = -lambda phi; and the lumped scalar law (WD-7) is LA-31 minus
    lambda a."""
    assert sp.simplify(derivation.reduced_decay() + derivation.WD_SYM * derivation.PHI_SYM) == 0
    rhs, a = derivation.separate_scalar_law()
    from reduced_dynamics.derivations import linear_separate
    la31 = linear_separate.scalar_law()[0].subs(linear_separate.scalar_law()[2], a)
    assert sp.simplify(rhs - (la31 - derivation.WD_SYM * a)) == 0
    b = sp.Symbol("b", positive=True)
    assert sp.simplify(derivation.balanced_penalty(2) - 2 * b) == 0
    assert sp.simplify(derivation.balanced_penalty(3) - 3 * b ** sp.Rational(2, 3)) == 0


@pytest.mark.parametrize("family, setup, sizes", [("attn-m", merged.setup, dict(dim=2, heads=2)),
                                                  ("attn-s", separate.setup, dict(dim=2, heads=2, rank=1))])
def test_regularised_flow_is_the_derived_full_system(family, setup, sizes, tmp_path):
    """The runtime flow with decay (index route + WD-2) equals minus the symbolic gradient of the full reduced
    loss plus the penalty (population moments, eigenbasis), and minus a finite-difference gradient of it."""
    lam = 0.037
    spec = rd.spec(family, context=5, weight_decay=lam, **sizes)
    flow, y0, _ = setup(spec, moments="population")
    R = sizes.get("rank", 1)
    full = compiler.compile_system(derivation, "regularised_full_system",
                                   {"family": family, "D": sizes["dim"], "H": sizes["heads"], "R": R}, tmp_path)
    y = y0 + 0.4 * np.random.default_rng(3).standard_normal(y0.size)
    heads_first = flow.theta(y).T.reshape(-1)          # the derivation orders the state head by head
    derived = np.asarray(full["regularised_rhs"](heads_first, flow.moments.values, np.array([lam])), dtype=float)
    runtime = flow.theta(flow.rhs(0.0, y)).T.reshape(-1)
    assert np.max(np.abs(runtime - derived)) <= 1e-12 * np.max(np.abs(derived))

    def regularised(z):
        return float(flow.loss(z)) + 0.5 * lam * float(z @ z)
    h = 1e-6
    fd = np.array([-(regularised(y + h * e) - regularised(y - h * e)) / (2 * h) for e in np.eye(y.size)])
    assert np.max(np.abs(flow.rhs(0.0, y) - fd)) <= 1e-8 * np.max(np.abs(fd))
    jac_fd = np.array([(flow.rhs(0.0, y + h * e) - flow.rhs(0.0, y - h * e)) / (2 * h) for e in np.eye(y.size)]).T
    assert np.max(np.abs(flow.jacobian(0.0, y) - jac_fd)) <= 1e-7 * np.max(np.abs(jac_fd))


@pytest.mark.parametrize("model, setup, kw", [("attn-m", merged.setup, SMALL_M),
                                              ("attn-s", separate.setup, {**SMALL_S, "rank": 2})])
def test_modified_flow_of_the_regularised_loss(model, setup, kw):
    """(WD-3): the modified right-hand side is minus the finite-difference gradient of
    L + (lambda/2)|theta|^2 + (eta/4)|grad (L + (lambda/2)|theta|^2)|^2."""
    spec = rd.spec(model, weight_decay=0.05, **kw)
    flow, y0, _ = setup(spec)
    mod = discrete.ModifiedFlow(flow, 0.2, model, getattr(spec, "rank", 1))
    y = y0 + 0.3 * np.random.default_rng(1).standard_normal(y0.size)
    h = 1e-5
    fd = np.array([-(mod.modified_loss(y + h * e) - mod.modified_loss(y - h * e)) / (2 * h) for e in np.eye(y.size)])
    assert np.max(np.abs(mod.rhs(0.0, y) - fd)) <= 1e-7 * np.max(np.abs(fd))


def test_reference_decay_term_is_the_penalty_gradient():
    """(WD-1) in the reference: decay_gradients is the finite-difference gradient of (lambda/2) sum |theta|^2,
    kept apart from the model's loss gradient."""
    rng = np.random.default_rng(0)
    params = {"W": rng.standard_normal((2, 3, 3)), "r": rng.standard_normal((2, 3))}
    lam = 0.3
    fd = central_gradient(lambda p: 0.5 * lam * sum(float(np.sum(v ** 2)) for v in p.values()), params)
    got = ref.decay_gradients(params, lam)
    assert all(np.max(np.abs(got[k] - fd[k])) < 1e-8 for k in params)


@pytest.mark.parametrize("family", ["attn-m", "attn-s"])
def test_frozen_gd_with_decay_is_the_reduced_map(family):
    """Frozen full GD with decay (reference, WD-1) is the reduced GD map of the regularised flow (LR-3, WD-2),
    step by step, and the decay moved it away from the run without decay."""
    kw = SMALL_M if family == "attn-m" else SMALL_S
    states = {}
    for lam in (0.0, 0.2):
        spec = rd.spec(family, lr=0.3, steps=60, weight_decay=lam, **kw)
        if family == "attn-m":
            cov, params, data = ref.problem(spec)
            model = ref.MergedAttention(spec.kappa)
            project = lambda p: merged.pack(*merged.projection(p["W"], p["r"]), np.eye(spec.dim))   # noqa: E731
            flow, y0, _ = merged.setup(spec)
        else:
            cov, params, data = ref.problem_separate(spec)
            model = ref.SeparateAttention(spec.kappa)
            project = lambda p: separate.pack(*separate.projection(p["K"], p["Q"], p["r"]), np.eye(spec.dim))  # noqa: E731
            flow, y0, _ = separate.setup(spec)
        _, gd, _ = ref.gradient_descent(model, params, ref.Batch.from_training_set(data), spec.lr, spec.gd_steps,
                                        record=project, mask=model.off_manifold_mask(params), progress=False,
                                        weight_decay=lam)
        gd = np.array(gd)
        mapped = discrete.gd_map(flow, y0, spec.lr, spec.gd_steps).y
        assert np.max(np.abs(mapped - gd)) <= 1e-9 * np.max(np.abs(gd))
        states[lam] = gd
    assert np.max(np.abs(states[0.2][-1] - states[0.0][-1])) > 0.01


def test_merged_balance_decays_at_twice_lambda():
    """With decay, d/dt (v_i^2 - |U_i|^2) = -2 lambda (v_i^2 - |U_i|^2): the conservation law (LA-36) becomes
    exponential decay (WD-2 applied to LA-36)."""
    lam = 0.05
    spec = rd.spec("attn-m", dim=2, heads=3, context=5, init_scale=0.2, weight_decay=lam, t_max=20)
    tr = rd.predict(spec)
    expected = tr.observables["balance"][0] * np.exp(-2 * lam * tr.t)[:, None]
    assert np.max(np.abs(tr.observables["balance"] - expected)) <= 1e-7 * np.max(np.abs(expected))


@pytest.mark.parametrize("moments", ["population", "sample"])
def test_merged_flow_ends_on_the_regularised_minimum(moments):
    """(WD-5): the integrated flow's end point is the closed-form minimiser of L(B) + lambda |B|_F to 1e-8, and
    it is shrunk: its data loss lies above the unregularised minimum."""
    lam = 0.02
    spec = rd.spec("attn-m", dim=3, heads=3, context=7, init_scale=0.05, weight_decay=lam, t_max=3000,
                   **({"train_size": 400} if moments == "sample" else {}))
    flow, y0, _ = merged.setup(spec, moments=moments)
    b, L = wd.merged_minimum(flow)
    sol = flow.solve(y0, spec.final_time, method="DOP853", t_eval=np.array([0.0, spec.final_time]), rtol=1e-12,
                     atol=1e-15)
    assert np.max(np.abs(flow.b_vector(sol.y[-1]) - b)) <= 1e-8 * np.max(np.abs(b))
    assert abs(float(flow.loss(sol.y[-1])) / L - 1) <= 1e-8
    G = flow._G0 - flow.hess_times(b)
    assert abs(np.linalg.norm(G) / lam - 1) < 1e-9                 # |G(B*)| = lambda on the active set
    assert L > wd.merged_minimum(flow, 0.0)[1] + 1e-6


def test_merged_isotropic_minimum_in_closed_form():
    """(WD-6): with Lambda = I every diagonal entry has the same curvature and the numerical WD-5 agrees with
    |B*| = (|G0| - lambda)/h; above lambda = |G0| the minimum is B = 0 (no escape)."""
    spec = rd.spec("attn-m", dim=3, context=9, covariance="identity", weight_decay=0.1)
    flow, _, _ = merged.setup(spec, moments="population")
    b, _ = wd.merged_minimum(flow)
    support = np.abs(flow._G0) > 0
    h = flow._hessian[support][0]
    assert np.allclose(flow._hessian[support], h)
    rho = sp.lambdify((sp.Symbol("normG0", positive=True), sp.Symbol("h", positive=True), derivation.WD_SYM),
                      derivation.merged_isotropic_norm())(np.linalg.norm(flow._G0), h, 0.1)
    assert abs(np.linalg.norm(b) / rho - 1) < 1e-12
    assert np.all(wd.merged_minimum(flow, 1.01 * np.linalg.norm(flow._G0))[0] == 0)


def _aligned_state(flow, spec, a0):
    y = np.zeros((flow.n, spec.heads))
    D = spec.dim
    for i in range(spec.heads):
        y[0, i] = a0[i]
        y[1 + i, i] = a0[i]               # K row i on eigen-direction i (eigenbasis coordinates)
        y[1 + D + i, i] = a0[i]
    return y.reshape(-1)


def test_separate_rests_and_escape_threshold():
    """(WD-7, WD-8): aligned balanced heads (population, eigenbasis) started just above the escape threshold of
    their direction end on the regularised rest (amplitude and ladder level to 1e-8); started just below, the
    direction is never learned (its head decays to zero)."""
    spec = LinearSeparateSpec(dim=3, heads=3, rank=1, context=9, output_scale="paper", weight_decay=2e-3)
    lam, s, low, rest = wd.components(spec)
    flow, _, _ = separate.setup(spec, moments="population")
    above = _aligned_state(flow, spec, 1.05 * low)
    sol = flow.solve(above, 4000.0, method="LSODA", t_eval=np.array([0.0, 4000.0]), rtol=1e-11, atol=1e-14)
    end = flow.theta(sol.y[-1])
    assert np.max(np.abs(np.diag(end[1:1 + spec.dim]) / rest - 1)) < 1e-8
    assert abs(float(flow.loss(sol.y[-1])) / wd.separate_ladder(spec)[-1] - 1) < 1e-8
    below = _aligned_state(flow, spec, 0.95 * low)
    sol = flow.solve(below, 4000.0, method="LSODA", t_eval=np.array([0.0, 4000.0]), rtol=1e-11, atol=1e-16)
    assert np.max(np.abs(sol.y[-1])) < 1e-2 * np.max(np.abs(below))     # shrinking at rate ~ lambda (1 - a0/a_-)
    assert wd.separate_ladder(spec.replace(weight_decay=0.0)) == pytest.approx(separate.ladder(spec), rel=1e-12)


def test_zero_decay_is_neutral_and_softmax_expansion_refuses_decay():
    spec = rd.spec("attn-m", dim=2, heads=2, context=5, init_scale=0.2, t_max=5)
    assert np.array_equal(rd.predict(spec).loss, rd.predict(spec.replace(weight_decay=0.0)).loss)
    with pytest.raises(SpecError, match="weight_decay"):
        rd.predict(spec.replace(attention="softmax", weight_decay=0.01))
    with pytest.raises(SpecError, match="weight_decay"):
        rd.spec("attn-m", weight_decay=-1.0)
    assert math.isnan(wd.rest_roots(0.1, 0.01, 1.0, 1.0)[0])         # decay too strong: no rest at all


@pytest.mark.parametrize("limit", ["large-n", "exact"])
def test_softmax_flow_with_decay_is_minus_the_regularised_gradient(limit):
    """Softmax: M = V Q V^T are orthonormal coordinates of Q (LR-1), so decay adds -lambda M (WD-2): the flow
    probe's right-hand side is minus the finite-difference gradient of L + (lambda/2)|M|^2."""
    spec = rd.spec("softmax", features=3, dim=4, context=6, limit=limit, weight_decay=0.05)
    from reduced_dynamics.theory.softmax import features
    rhs, loss, y0 = features.flow_probe(spec)
    y = y0 + 0.5 * np.random.default_rng(2).standard_normal(y0.size)
    h = 1e-5
    fd = np.array([-(loss(y + h * e) - loss(y - h * e)) / (2 * h) for e in np.eye(y.size)])
    assert np.max(np.abs(rhs(y) - fd)) <= 1e-6 * np.max(np.abs(fd))


def test_softmax_reference_decay_term_and_gd_map():
    """The reference's separate decay term is the gradient of (lambda/2)|Q|^2 (finite differences), and the
    exact-gradient GD map with decay stays within 0.1 % of the flow with decay at lr 0.1 (LR-7)."""
    from reduced_dynamics.reference import softmax_features as sref
    Q = np.random.default_rng(4).standard_normal((3, 3))
    fd = central_gradient(lambda p: 0.25 * float(np.sum(p["Q"] ** 2)), {"Q": Q})["Q"]
    assert np.max(np.abs(sref.decay_gradient(Q, 0.5) - fd)) < 1e-8
    spec = rd.spec("softmax", features=3, dim=4, context=6, lr=0.1, steps=200, weight_decay=0.05)
    flow, gd_map = rd.predict(spec), rd.predict(spec.replace(discretisation="map"))
    assert abs(gd_map.loss[-1] / flow.loss[-1] - 1) < 1e-3
    no_decay = rd.predict(spec.replace(weight_decay=0.0))
    assert flow.loss[-1] > 1.05 * no_decay.loss[-1]          # decay holds the attention back: a higher loss


def test_comparison_levels_and_refusals_with_decay():
    """With decay the comparison shows the regularised levels (WD-5, WD-8) and leaves out the logistic course
    (LA-27), which has no decay; asking for it is a SpecError naming the field."""
    spec = rd.spec("attn-m", dim=2, heads=2, context=5, weight_decay=0.05)
    levels = merged.levels(spec, rd.predict(spec))
    flow, _, _ = merged.setup(spec)
    assert levels["regularised minimum (WD-5)"] == wd.merged_minimum(flow)[1] > levels["L* (LA-21)"]
    with pytest.raises(SpecError, match="weight_decay"):
        merged.closed_form(spec)
    s_spec = LinearSeparateSpec(dim=2, heads=2, context=5, weight_decay=0.01)
    assert list(separate.levels(s_spec, None).values()) == wd.separate_ladder(s_spec)
