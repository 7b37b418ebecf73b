"""rd.predict(spec, initial_weights=..., training_set=...): the theory of a run trained outside the package
(attn-m, attn-s; contract rule 18; theory.linear_attention.given).

(a) the spec's own draws given explicitly reproduce the default curve; (b) a user's own weights and set give
what the hand route (projection LA-35, pack, integrate on the §5 sample moments) gives; (c) gradient descent
on the user's set from the user's weights drops when this theory says; (d) bad inputs are one-line errors.
The default path is held to numbers computed before the options existed."""
import numpy as np
import pytest

import reduced_dynamics as rd
from reduced_dynamics.errors import FamilyError
from reduced_dynamics.families import contract
from reduced_dynamics.reference import linear_attention as ref
from reduced_dynamics.tasks import linear_attention as task
from reduced_dynamics.theory.linear_attention import flow as shared
from reduced_dynamics.theory.linear_attention import merged, separate

SMALL = dict(dim=3, context=16, heads=2)


def m_spec(**changes):
    return rd.spec("attn-m", **{**SMALL, "train_size": 400, "t_max": 20, **changes})


def s_spec(**changes):
    return rd.spec("attn-s", **{**SMALL, "rank": 1, "train_size": 400, "t_max": 200, **changes})


def own_training_set(spec, size, seed=7):
    """The user's data: anisotropic inputs in the standard basis, Gaussian tasks, y = w^T x."""
    rng = np.random.default_rng(seed)
    N, D = spec.context, spec.dim
    x = rng.standard_normal((size, N + 1, D)) * np.sqrt(np.linspace(1.0, 0.3, D))
    w = rng.standard_normal((size, D))
    y = np.einsum("pnd,pd->pn", x, w)
    return {"x": x[:, :N], "y": y[:, :N], "xq": x[:, N], "yq": y[:, N]}


def own_weights(spec, seed=11, scale=1e-3):
    """The user's initialisation on the invariant manifold (u_i or k_i^y, r_i^x zero)."""
    rng = np.random.default_rng(seed)
    H, D = spec.heads, spec.dim
    r = scale * rng.standard_normal((H, D + 1))
    r[:, :D] = 0.0
    if spec.model == "attn-s":
        K, Q = (scale * rng.standard_normal((H, spec.rank, D + 1)) for _ in range(2))
        K[:, :, D] = 0.0
        return {"K": K, "Q": Q, "r": r}
    W = scale * rng.standard_normal((H, D + 1, D + 1))
    W[:, D, :D] = 0.0
    return {"W": W, "r": r}


# losses at indices 0, 350, 700, 1399 of rd.predict(spec) computed at b6cffd4, before the options existed
PINNED = {
    "attn-m sample": (m_spec, {}, [1.040770999772472, 1.0407705533081975, 1.0405491768814787, 0.2985636503581862]),
    "attn-m population": (m_spec, {"train_size": None},
                          [1.0000003715731953, 1.0000000422049844, 0.9999792604199529, 0.3193066889142778]),
    "attn-s sample": (s_spec, {}, [0.913041101175618, 0.9130410010380494, 0.9130385169646847, 0.5081352842313565]),
}


@pytest.mark.parametrize("case", PINNED)
def test_default_curves_are_unchanged(case):
    make, changes, values = PINNED[case]
    trajectory = rd.predict(make(**changes))
    np.testing.assert_allclose(trajectory.loss[[0, 350, 700, 1399]], values, rtol=1e-12, atol=0)
    assert "initial_weights" not in trajectory.meta and "training_set" not in trajectory.meta


@pytest.mark.parametrize("make", [m_spec, s_spec], ids=["attn-m", "attn-s"])
def test_the_specs_own_draws_given_explicitly_give_the_default_curve(make):
    spec = make()
    drawn = rd.family(spec.model).draw(spec)
    data = task.draw(spec, train=True).train
    default = rd.predict(spec)
    given = rd.predict(spec, initial_weights=drawn.weights, training_set=data)
    assert np.array_equal(given.t, default.t)
    assert np.max(np.abs(given.loss - default.loss)) <= 1e-12
    assert given.meta["initial_weights"] == "given" and given.meta["training_set"] == "given"
    assert given.meta["given_train_size"] == 400 and given.meta["kind"] == "theory-sample"
    # one of the two given: the other is the spec's own
    weights_only = rd.predict(spec, initial_weights=drawn.weights)
    set_only = rd.predict(spec.replace(train_size=None), training_set={"x": data.x, "y": data.y, "xq": data.xq,
                                                                       "yq": data.yq})
    assert np.max(np.abs(weights_only.loss - default.loss)) <= 1e-12
    assert np.max(np.abs(set_only.loss - default.loss)) <= 1e-12
    assert set_only.meta["initial_weights"] == "drawn from the spec's seed"


def hand_route_merged(spec, weights, data):
    mom = shared.sample_moments(spec, task.TrainingSet(**data, w=None))
    flow = merged.merged_flow(spec.dim, spec.heads, mom)
    y0 = merged.pack(*merged.projection(weights["W"], weights["r"]), mom.basis)
    sol = flow.solve(y0, spec.final_time)
    return sol.t, flow.loss_of_b(flow.b_vector(sol.y))


def hand_route_separate(spec, weights, data):
    mom = shared.sample_moments(spec, task.TrainingSet(**data, w=None))
    flow = separate.SeparateFlow(spec.dim, spec.heads, spec.rank, mom)
    y0 = separate.pack(*separate.projection(weights["K"], weights["Q"], weights["r"]), mom.basis)
    sol = flow.solve(y0, spec.final_time)
    return sol.t, flow.loss_of_b(flow.b_vector(sol.y))


@pytest.mark.parametrize("make, hand", [(m_spec, hand_route_merged), (s_spec, hand_route_separate)],
                         ids=["attn-m", "attn-s"])
def test_own_weights_and_set_give_the_hand_route(make, hand):
    spec = make(train_size=None, init_scale=1e-2)
    weights, data = own_weights(spec, scale=1e-2), own_training_set(spec, 600)
    theory = rd.predict(spec, initial_weights=weights, training_set=data)
    t, loss = hand(spec, weights, data)
    assert np.array_equal(theory.t, t)
    assert np.max(np.abs(theory.loss - loss)) <= 1e-12
    assert theory.loss[-1] < 0.8 * theory.loss[0]          # it learned: not a trivially flat comparison
    assert theory.meta["given_train_size"] == 600
    # the columns that multiply the query's empty label slot never matter: any value, the same curve
    key = "W" if spec.model == "attn-m" else "Q"
    shifted = {k: v.copy() for k, v in weights.items()}
    shifted[key][..., spec.dim] = 5.0
    again = rd.predict(spec, initial_weights=shifted, training_set=data)
    assert np.array_equal(again.loss, theory.loss)


def test_gradient_descent_from_own_weights_on_own_set_drops_when_predicted():
    """The user's full ATTN_M model trained by GD (the reference's loop, off-manifold blocks frozen as in
    the C6 check of test_linear_merged_compare) against the theory of its start and set: drop time within
    that check's 1.5 %."""
    spec = m_spec(train_size=None, lr=0.01, t_max=40)
    weights, data = own_weights(spec), own_training_set(spec, 2000)
    theory = rd.predict(spec, initial_weights=weights, training_set=data)
    model = ref.MergedAttention(spec.kappa)
    mask = model.off_manifold_mask(weights)
    losses, _, _ = ref.gradient_descent(model, weights, ref.Batch.from_training_set(task.TrainingSet(**data, w=None)),
                                        spec.lr, spec.gd_steps, mask=mask, progress=False)
    mine = rd.Trajectory.from_arrays(spec.lr * np.arange(spec.gd_steps + 1), losses, spec=spec, kind="own-gd")
    assert abs(losses[0] - theory.loss[0]) < 1e-12 * losses[0]          # the same start on the same set
    metrics = rd.compare(theory, mine)
    assert 1 < metrics["drop_time_theory"] < 0.5 * spec.final_time       # a drop well inside the run
    assert abs(metrics["drop_time_relative_gap"]) < 0.015, metrics["drop_time_relative_gap"]


def one_line_error(call, parameter):
    with pytest.raises(rd.SpecError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and info.value.parameter == parameter, message
    return message


def test_bad_inputs_are_one_line_errors():
    spec, sspec = m_spec(), s_spec()
    w, data = own_weights(spec), own_training_set(spec, 50)
    predict = rd.predict
    one_line_error(lambda: predict(spec, initial_weights={"W": w["W"][:, :, :3], "r": w["r"]}), "initial_weights['W']")
    one_line_error(lambda: predict(spec, initial_weights={"W": w["W"]}), "initial_weights")
    one_line_error(lambda: predict(spec, initial_weights=w["W"]), "initial_weights")
    one_line_error(lambda: predict(sspec, initial_weights=w), "initial_weights")          # attn-m weights for attn-s
    one_line_error(lambda: predict(spec, initial_weights={**w, "r": w["r"] * np.nan}), "initial_weights['r']")
    one_line_error(lambda: predict(spec, training_set={**data, "x": data["x"][:, :5]}), "training_set['x']")
    one_line_error(lambda: predict(spec, training_set={"x": data["x"]}), "training_set")
    one_line_error(lambda: predict(spec, training_set=data, moments="population"), "moments")
    one_line_error(lambda: predict(sspec, initial_weights=own_weights(sspec), y0=np.zeros(14)), "y0")
    # where the projection does not apply
    for model in ("softmax", "sparse"):
        message = one_line_error(lambda: predict(rd.spec(model), initial_weights=w), "initial_weights")
        assert "attn-m, attn-s" in message and "rule 18" in message
        one_line_error(lambda: predict(rd.spec(model), training_set=data), "training_set")
    one_line_error(lambda: predict(m_spec(attention="softmax"), initial_weights=w), "initial_weights")
    one_line_error(lambda: predict(m_spec(icl=0.5), training_set=data), "training_set")


@pytest.mark.parametrize("make, key, index", [(m_spec, "W", (0, 3, 1)), (m_spec, "r", (1, 0)),
                                              (s_spec, "K", (0, 0, 3)), (s_spec, "r", (0, 2))],
                         ids=["attn-m u", "attn-m r^x", "attn-s k^y", "attn-s r^x"])
def test_weights_off_the_invariant_manifold_are_refused(make, key, index):
    """LA-35 drops u_i (k_i^y) and r_i^x; off the manifold they are a second route the reduced flow does not
    have (§3, iwl §12.3), so the projection would be the theory of another start: an error, not a warning."""
    spec = make()
    weights = own_weights(spec)
    weights[key][index] = 1e-9
    message = one_line_error(lambda: rd.predict(spec, initial_weights=weights), message_parameter(key, spec))
    assert "invariant manifold" in message and "1e-09" in message


def message_parameter(key, spec):
    if key == "r":
        return "initial_weights['r'][:, :D] (r_i^x)"
    return "initial_weights['W'][:, D, :D] (u_i)" if spec.model == "attn-m" else "initial_weights['K'][:, :, D] (k_i^y)"


def test_rule_18_declarations():
    assert rd.family("attn-m").given_inputs == contract.GIVEN_OPTIONS == rd.family("attn-s").given_inputs
    assert rd.family("softmax").given_inputs == ()
    assert rd.family("softmax")._given_options({"initial_weights": None, "t_eval": 1}) == {"t_eval": 1}

    class Face:
        NAME, TITLE, AXIS, SPEC, MEASURES = "attn-m", "t", "flow_time", type(m_spec()), ()
        GIVEN_INPUTS = ("initial_weights", "checkpoint")
        draw = predict = simulate = staticmethod(lambda spec, *a, **k: None)
        summarise = staticmethod(lambda spec, trajectory: {})

    with pytest.raises(FamilyError, match="rule 18"):
        contract.check(Face)


@pytest.mark.parametrize("make", [m_spec, s_spec], ids=["attn-m", "attn-s"])
def test_beta_is_the_diagonal_of_b_in_the_eigenbasis(make):
    """``beta`` = diag(E^T B E) as the reference records it (E: eigenvectors of the covariance), on sample
    moments too (it was diag(E B E^T) there before): the spec's draw with its covariance, and a given set
    with the eigenbasis of its own inputs' second moment."""
    spec = make()

    def b_of(w):
        D = spec.dim
        if "W" in w:
            return np.einsum("h,hab->ab", w["r"][:, D], w["W"][:, :D, :D])
        return np.einsum("h,hra,hrb->ab", w["r"][:, D], w["K"][:, :, :D], w["Q"][:, :, :D])

    drawn = task.draw(spec)
    E = drawn.covariance.basis
    default = rd.predict(spec, t_eval=np.array([0.0, 1.0]))
    np.testing.assert_allclose(default.observables["beta"][0], np.diag(E.T @ b_of(drawn.weights) @ E), rtol=1e-10)
    weights, data = own_weights(spec, scale=0.3), own_training_set(spec, 300)
    inputs = np.concatenate([data["x"].reshape(-1, spec.dim), data["xq"]])
    E = np.linalg.eigh(inputs.T @ inputs / len(inputs))[1]
    theory = rd.predict(spec, initial_weights=weights, training_set=data, t_eval=np.array([0.0, 1.0]))
    np.testing.assert_allclose(np.sort(theory.observables["beta"][0]), np.sort(np.diag(E.T @ b_of(weights) @ E)),
                               rtol=1e-10)
