"""The softmax family end to end: spec validation, predict / simulate / compare from Python and the CLI,
observables and events (softmax_features.md §8, SF-9, SF-28, SF-30)."""
import json

import numpy as np
import pytest

import reduced_dynamics as rd
from reduced_dynamics.cli import main
from reduced_dynamics.specs import SoftmaxFeaturesSpec, SpecError
from reduced_dynamics.trajectory import Trajectory

SMALL = ["--features", "3", "--dim", "4", "--context", "10", "--lr", "0.5", "--steps", "40", "--batch", "2000",
         "--eval-prompts", "2000", "--thresholds", "0.2,0.1"]


@pytest.mark.parametrize("values, parameter", [
    ({"probabilities": (0.5, 0.6, -0.1, 0.0)}, "probabilities"),
    ({"probabilities": (0.4, 0.3, 0.2, 0.2)}, "probabilities"),
    ({"probabilities": (0.5, 0.5)}, "probabilities"),
    ({"probabilities": "0.5,x,0.2,0.3"}, "probabilities"),
    ({"features": 1}, "features"), ({"features": 2.5}, "features"),
    ({"features": 4, "dim": 3}, "dim"), ({"context": 0}, "context"),
    ({"dominant": 1.0}, "dominant"), ({"dominant": 0.6, "probabilities": (0.25,) * 4}, "dominant"),
    ({"balanced": True, "dominant": 0.6}, "balanced"), ({"limit": "infinite"}, "limit"),
    ({"lr": float("nan")}, "lr"), ({"eval_prompts": 0}, "eval_prompts"), ({"thresholds": ()}, "thresholds"),
])
def test_bad_specs(values, parameter):
    with pytest.raises(SpecError) as info:
        SoftmaxFeaturesSpec(**values)
    assert info.value.parameter == parameter


def test_probability_shapes():
    assert SoftmaxFeaturesSpec().p == (0.25,) * 4
    assert SoftmaxFeaturesSpec(balanced=True, features=5).p == (0.2,) * 5
    assert SoftmaxFeaturesSpec(dominant=0.6).p == pytest.approx((0.6, 0.4 / 3, 0.4 / 3, 0.4 / 3))
    assert SoftmaxFeaturesSpec(features=3, probabilities="0.5,0.3,0.2").p == (0.5, 0.3, 0.2)


def test_large_n_predict_reproduces_the_note_events():
    """(SF-26)/(SF-30) and §8.2: dominant and minor threshold times, E1-E4 of the large-N flow (K = 4, p1 = 0.6)."""
    spec = SoftmaxFeaturesSpec(dominant=0.6, limit="large-n", t_max=300.0, lr=0.5)
    traj = rd.predict(spec)
    times = traj.events["threshold_times"]
    assert times[0][1] == pytest.approx(7.353, abs=0.01) and times[0][2] == pytest.approx(22.518, abs=0.01)
    assert times[1][1] == pytest.approx(96.11, abs=0.02) and times[1][2] == pytest.approx(163.04, abs=0.02)
    phases = traj.events["phases"]["feature_2"]
    for name, expected in (("E1", 10.89), ("E2", 21.68), ("E3", 31.28), ("E4", 48.83)):
        assert phases[name] == pytest.approx(expected, abs=0.02), name
    assert np.abs(traj.observables["M"].sum(axis=1)).max() < 1e-9       # (SF-15)
    np.testing.assert_allclose(traj.observables["attention"].sum(axis=1), 1.0, atol=1e-12)
    assert "1/2" in traj.meta["loss"]


def test_balanced_phase_one_end_matches_closed_form():
    """(SF-28): the own attention of a balanced feature reaches 1/2 at t_1 = 17.42 (K = 4, large N)."""
    traj = rd.predict(SoftmaxFeaturesSpec(limit="large-n", t_max=40.0, lr=0.1))
    np.testing.assert_allclose(traj.events["half_attention_times"], 17.42, atol=0.01)


def test_exact_predict_and_reference_share_observables(tmp_path):
    spec = rd.spec("softmax", features=3, dim=4, context=10, lr=0.5, steps=40, batch=2000, eval_prompts=2000,
                   dominant=0.5)
    theory, reference = rd.predict(spec), rd.simulate(spec, progress=False)
    assert set(theory.observables) == set(reference.observables) == {"loss_k", "A", "M", "attention",
                                                                      "own_attention"}
    np.testing.assert_array_equal(reference.t, 0.5 * np.arange(41))
    assert reference.meta["column_sum_max"] < 1e-10                                  # (SF-15) along GD
    assert np.all(np.diff(theory.observables["A"], axis=0) >= 0)                     # (SF-17)
    back = Trajectory.load(theory.save(tmp_path / "t.npz"))
    np.testing.assert_array_equal(back.observables["loss_k"], theory.observables["loss_k"])
    metrics = rd.compare(theory, reference)
    assert len(metrics["threshold_times_theory"]) == 3 == len(metrics["threshold_times_reference"])


def test_cli_predict_simulate_compare(tmp_path, capsys):
    assert main(["predict", "softmax", *SMALL, "--dominant", "0.5", "--limit", "large-n",
                 "--out", str(tmp_path / "p.npz")]) == 0
    with np.load(tmp_path / "p.npz") as data:
        assert data["t"].dtype == float and data["loss"].dtype == float and data["loss_k"].shape[1] == 3
        assert "factor 1/2" in json.loads(str(data["meta"]))["loss"]
    assert main(["simulate", "softmax", *SMALL, "--probabilities", "0.5,0.3,0.2",
                 "--out", str(tmp_path / "s.npz")]) == 0
    assert main(["compare", "softmax", *SMALL, "--balanced", "--out-dir", str(tmp_path),
                 "--json", str(tmp_path / "c.json")]) == 0
    report = json.loads((tmp_path / "c.json").read_text())
    assert len(report["threshold_times_theory"]) == 3 and len(report["threshold_times_reference"]) == 3
    assert main(["predict", "softmax", "--probabilities", "0.5,0.6,-0.1,0"]) == 2
    assert "probabilities: expected" in capsys.readouterr().err


@pytest.mark.parametrize("limit", ["exact", "large-n"])
def test_flow_probe_rhs_is_minus_gradient(limit):
    """(SF-13)/(SF-21): the registered flow's rhs equals minus the finite-difference gradient of its loss."""
    spec = SoftmaxFeaturesSpec(features=3, dim=3, context=8, probabilities=(0.5, 0.3, 0.2), limit=limit)
    rhs, loss, y0 = rd.family("softmax").flow_probe(spec)
    y = y0 + 0.7 * np.random.default_rng(4).standard_normal(y0.shape)
    h = 1e-6
    grad = np.array([(loss(y + h * e) - loss(y - h * e)) / (2 * h) for e in np.eye(y.size)])
    np.testing.assert_allclose(rhs(y), -grad, rtol=1e-6, atol=1e-10)


def test_exact_gd_map_is_first_order_close_to_the_flow():
    """The exact-gradient GD map on M (SF-13 step by step) approaches the exact flow as lr -> 0 like O(lr)
    (SF-10): halving lr roughly halves the largest gap in A."""
    from reduced_dynamics.theory.softmax.features import exact_gd_map
    gaps = []
    for lr in (1.0, 0.5):
        spec = SoftmaxFeaturesSpec(features=3, dim=3, context=8, dominant=0.5, lr=lr, t_max=20.0)
        gd = exact_gd_map(spec)
        flow = rd.predict(spec, t_eval=gd.t)
        gaps.append(np.abs(gd.observables["A"] - flow.observables["A"]).max())
    assert 1.6 < gaps[0] / gaps[1] < 2.4
