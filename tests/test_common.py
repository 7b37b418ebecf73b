"""Behaviour every registered family must show (one suite, iterated over the registry)."""
import numpy as np
import pytest

import reduced_dynamics as rd
from reduced_dynamics.families import FAMILIES
from reduced_dynamics.specs import SpecError
from reduced_dynamics.trajectory import Trajectory

NAMES = sorted(FAMILIES)


def small_spec(name):
    fam = FAMILIES[name]
    return rd.spec(name, **fam.test_spec)


@pytest.fixture(scope="module", params=NAMES)
def runs(request):
    spec = small_spec(request.param)
    return request.param, spec, rd.predict(spec), rd.simulate(spec, progress=False)


def test_theory_loss_never_increases_along_the_flow(runs):
    _, _, theory, _ = runs
    increments = np.diff(theory.loss)
    assert np.all(np.isfinite(theory.loss))
    assert increments.max() <= 1e-9 * max(1.0, abs(theory.loss[0]))


def test_theory_and_reference_start_from_the_same_point(runs):
    name, _, theory, reference = runs
    tol = FAMILIES[name].start_tolerance
    assert theory.t[0] == 0.0 and reference.t[0] == 0.0
    assert abs(theory.loss[0] - reference.loss[0]) <= tol * abs(reference.loss[0])


def test_theory_follows_the_reference(runs):
    """The family's metrics agree within 5 % at the test sizes (the family tests hold tighter checks)."""
    name, _, theory, reference = runs
    metrics = rd.compare(theory, reference)
    scalars = {k: v for k, v in metrics.items() if k.endswith("_relative_gap") and isinstance(v, float)}
    assert scalars, "the family's summary has no scalar metric to compare"
    for key, gap in scalars.items():
        assert abs(gap) < 0.05, (key, gap)


def test_rhs_is_minus_the_gradient_of_the_reduced_loss():
    for name in NAMES:
        fam = FAMILIES[name]
        if not fam.flow_probe:
            continue
        rhs, loss, y0 = fam.resolve("flow_probe")(small_spec(name))
        rng = np.random.default_rng(3)
        y = y0 + 0.3 * rng.standard_normal(y0.shape)
        eps = 1e-6
        grad = np.array([(loss(y + eps * e) - loss(y - eps * e)) / (2 * eps) for e in np.eye(y.size)])
        np.testing.assert_allclose(rhs(y), -grad, rtol=1e-6, atol=1e-8 * max(1.0, np.abs(grad).max()))


def test_save_load_round_trip(runs, tmp_path):
    _, _, theory, reference = runs
    for traj in (theory, reference):
        path = traj.save(tmp_path / "curve.npz")
        back = Trajectory.load(path)
        np.testing.assert_array_equal(back.t, traj.t)
        np.testing.assert_array_equal(back.loss, traj.loss)
        assert back.meta == traj.meta
        assert back.events == traj.events
        assert sorted(back.observables) == sorted(traj.observables)
        for key in traj.observables:
            np.testing.assert_array_equal(back.observables[key], traj.observables[key])
        with np.load(path) as data:
            assert data["t"].dtype.kind == "f" and data["loss"].dtype.kind == "f"


@pytest.mark.parametrize("name", NAMES)
def test_bad_specs_are_rejected_naming_the_parameter(name):
    fam = FAMILIES[name]
    assert fam.bad_inputs, "a family must list the bad inputs it rejects"
    for values, parameter in fam.bad_inputs:
        with pytest.raises(SpecError) as info:
            rd.spec(name, **values)
        assert info.value.parameter == parameter
        assert str(info.value).startswith(parameter + ":")
        assert "\n" not in str(info.value)


def test_unknown_model_and_unknown_field_are_rejected():
    with pytest.raises(SpecError, match="^model: expected one of"):
        rd.spec("attn-x")
    with pytest.raises(SpecError, match="^dimension:"):
        rd.spec(NAMES[0], dimension=3)
