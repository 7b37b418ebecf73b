"""The sparse family end to end at small sizes: predict / simulate / compare, the CLI, and the invariants that
replace the common monotone-loss test for this family (risk against depth is not monotone: early stopping)."""
import numpy as np
import pytest

import reduced_dynamics as rd
from reduced_dynamics.cli import main
from family_cases import CASES
from reduced_dynamics.specs import SparseSpec
from reduced_dynamics.tasks.sparse_regression import draw, sample_prompts
from reduced_dynamics.theory.sparse import algorithms as alg
from reduced_dynamics.theory.sparse import multihead as theory
from reduced_dynamics.theory.sparse import restricted_flow as restricted
from reduced_dynamics.theory.sparse.risk import Sample
from reduced_dynamics.trajectory import Trajectory

SMALL = dict(CASES["sparse"].small_spec)


@pytest.fixture(scope="module")
def predicted():
    return rd.predict(rd.spec("sparse", **SMALL))


def test_predict_file_holds_depth_and_one_risk_per_algorithm(predicted, tmp_path):
    obs = predicted.observables
    np.testing.assert_array_equal(predicted.t, obs["depth"])
    np.testing.assert_array_equal(predicted.loss, obs["pto_flow"])
    for name in ("gd_flow", "pto_flow", "pto_inf_flow", "ridge", "lasso", "gd_steps", "pto_steps",
                 "pto_inf_steps", "gd_flow_mp"):
        assert obs[name].shape == predicted.t.shape and np.all(np.isfinite(obs[name]))
    assert "PtO-flow" in predicted.meta["loss"] and "depth" in predicted.meta["time_axis"]
    back = Trajectory.load(predicted.save(tmp_path / "p.npz"))
    np.testing.assert_array_equal(back.observables["lasso"], obs["lasso"])


def test_every_flow_starts_at_the_null_predictor(predicted):
    """At depth 0 all flows give w = 0, so the risk is ||w*||^2 = s exactly for ±1 nonzeros (SM-5)."""
    for name in ("gd_flow", "pto_flow", "pto_inf_flow"):
        assert predicted.observables[name][0] == pytest.approx(SMALL["sparsity"], rel=1e-12)
    assert predicted.observables["gd_flow_mp"][0] == pytest.approx(SMALL["sparsity"], rel=1e-9)


def test_in_context_loss_never_increases_along_the_pto_and_gd_flows():
    """The flows (SM-23, SM-30) are (preconditioned) gradient flows of the in-context loss
    (1/2n)||y - X w||^2, which is therefore non-increasing in depth for every prompt (the excess risk is not)."""
    spec = SparseSpec(dim=12, sparsity=2, context=8, noise=0.3, nonzero_law="gaussian")
    sample = Sample.of(sample_prompts(spec, 50, np.random.default_rng(0)))
    X, y = sample.prompts.X, sample.prompts.y
    taus = np.geomspace(1e-2, 1e4, 60)
    for w in (alg.gd_flow(sample.S, sample.r, taus), alg.pto_flow(sample.S, sample.r, taus, "none"),
              alg.pto_flow(sample.S, sample.r, taus, "max")):
        loss = 0.5 * np.mean((np.einsum("bni,kbi->kbn", X, w) - y[None]) ** 2, axis=2)
        assert np.all(np.diff(loss, axis=0) <= 1e-12 * np.maximum(loss[:-1], 1e-300) + 1e-15)


def test_restricted_flow_loss_never_increases():
    spec = SparseSpec(dim=8, sparsity=2, noise=0.1, context=24)
    rhs, loss, y0 = theory.flow_probe(spec)
    m3, m6 = theory.restricted_moments(spec, draw(spec).moments, 2000)
    states = restricted.integrate_restricted(y0, m3, m6, np.linspace(0, 60, 121))
    values = np.array([loss(s) for s in states])
    assert np.all(np.diff(values) <= 1e-12)
    assert np.all(np.abs(rhs(states[-1])) < 1e-6)  # reached the fixed point u* = m3/m6


def test_simulate_reports_heads_masks_and_pruning():
    traj = rd.simulate(rd.spec("sparse", **SMALL), progress=False)
    L, h = SMALL["layers"], SMALL["heads"]
    obs = traj.observables
    assert obs["head_deltas"].shape == (L, h) and obs["head_importance"].shape == (L, h)
    np.testing.assert_allclose(obs["masked_risk"], traj.loss[-1] + obs["head_deltas"], rtol=1e-12)
    assert obs["pruned_risk"].shape == (2,) and obs["top_first_risk"].shape == (2,)
    assert traj.t[0] == 0 and traj.t[-1] == pytest.approx(SMALL["steps"] * traj.meta["spec"]["lr"])
    assert traj.loss[0] == pytest.approx(SMALL["sparsity"], rel=0.02)  # null-like predictor at init 0.05


def test_compare_runs_and_reports_the_levels(tmp_path):
    from reduced_dynamics.comparison import run
    report = run(rd.spec("sparse", **SMALL))
    assert {"ridge", "lasso", "GD, T=1", "PtO, T=1", "PtO-inf, T=1"} <= set(report.levels)
    assert "initial_risk_theory" in report.metrics
    # theory is risk against depth, the reference risk against Adam steps: no pointwise gap across the axes,
    # the trained risk is set against the levels and the flows' minima instead
    assert report.theory.axis == "depth" and report.reference.axis == "lr_step"
    assert not any("gap" in key for key in report.metrics)
    assert report.metrics["trained_risk"] == report.reference.loss[-1]
    assert report.metrics["trained / lasso"] == pytest.approx(report.reference.loss[-1] / report.levels["lasso"])
    assert "t = lr * step" not in report.text() and "no pointwise gaps" in report.text()
    assert all(p.exists() for p in report.save(tmp_path / "c", plot=True))


def test_cli_predict_and_bad_input(tmp_path, capsys):
    flags = []
    for key, value in SMALL.items():
        flags += ["--" + key.replace("_", "-"), str(value)]
    assert main(["predict", "sparse", *flags, "--out", str(tmp_path / "p.npz")]) == 0
    with np.load(tmp_path / "p.npz") as data:
        assert "depth" in data.files and "pto_inf_flow" in data.files
    capsys.readouterr()
    assert main(["predict", "sparse", "--dim", "3", "--sparsity", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "sparsity" in err
    assert main(["predict", "sparse", "--nonzero-law", "cauchy"]) == 2
