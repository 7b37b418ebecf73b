"""SM-C12 setting (a) d=32, s=2, sigma=0.5, n=64, ±1 (risk vs continuous depth) and SM-C16 (same setting, T=20)."""
import numpy as np
import pytest

from reduced_dynamics.tasks.sparse_regression import NOTE_SETTINGS
from reduced_dynamics.theory.sparse import risk as sr

TAUS = sr.depth_grid(0.25, 4096.0, 29)  # SM-C12 grid: geometric, ratio sqrt(2), so 1, 4, 16, 64 are on it


@pytest.fixture(scope="module")
def setting_a():
    test, tune = sr.sample_test_and_tune(NOTE_SETTINGS["a"], seed=0, test=2000, tune=1500)
    return dict(test=test, tune=tune, curves=sr.flow_risk_curves(test, TAUS),
                ridge=sr.ridge_risk(tune, test), lasso=sr.lasso_risk(tune, test))


def test_sm_c12a_minima_and_ordering(setting_a):
    """Minima GD 0.215, PtO 0.036, PtO-inf 0.033; ridge 0.209, Lasso 0.035 (±10%). PtO-flow min < 0.25 x GD-flow
    min and within 1.5x of Lasso; GD-flow min = tuned ridge within 5%."""
    c = setting_a["curves"]
    gd, pto, pinf = (float(c[k][0].min()) for k in ("gd_flow", "pto_flow", "pto_inf_flow"))
    ridge, lasso = setting_a["ridge"].mean, setting_a["lasso"].mean
    for value, note in ((gd, 0.215), (pto, 0.036), (pinf, 0.033), (ridge, 0.209), (lasso, 0.035)):
        assert value == pytest.approx(note, rel=0.10)
    assert pto < 0.25 * gd
    assert pto < 1.5 * lasso
    assert gd == pytest.approx(ridge, rel=0.05)
    assert TAUS[np.argmin(c["gd_flow"][0])] == pytest.approx(8.0, rel=0.5)      # tau* ~ 8
    assert TAUS[np.argmin(c["pto_flow"][0])] == pytest.approx(11.0, rel=0.5)    # tau* ~ 11


def test_sm_c12a_values_along_depth(setting_a):
    """Values at tau = 1/4/16/64: GD 0.581/0.235/0.235/0.256, PtO 0.426/0.068/0.039/0.071 (±10%)."""
    idx = [int(np.argmin(np.abs(TAUS - t))) for t in (1, 4, 16, 64)]
    c = setting_a["curves"]
    np.testing.assert_allclose(c["gd_flow"][0][idx], [0.581, 0.235, 0.235, 0.256], rtol=0.10)
    np.testing.assert_allclose(c["pto_flow"][0][idx], [0.426, 0.068, 0.039, 0.071], rtol=0.10)


def test_sm_c16_pto_steps_near_lasso(setting_a):
    """T = 20 steps, tuned eta: assert PtO <= 1.5 x Lasso and >= 4x better than ridge and GD. The note's
    individual values (PtO 0.039, GD 0.217) are recorded by the next test."""
    test, tune = setting_a["test"], setting_a["tune"]
    pto = sr.pto_steps_risk(tune, test, 20, "none").mean
    gd = sr.gd_steps_risk(tune, test, 20).mean
    lasso, ridge = setting_a["lasso"].mean, setting_a["ridge"].mean
    assert pto <= 1.5 * lasso
    assert 4 * pto <= ridge and 4 * pto <= gd
    assert gd == pytest.approx(0.217, rel=0.10)


@pytest.mark.xfail(strict=True, reason="measured 0.0477 (seed 0) vs the note's 0.039: the one global step of "
                   "unnormalised PtO is capped by rare prompts with eta*lambda_max(RSR) > 2, so it depends on "
                   "the tail of the tuning set (tuned eta 0.287; eta 0.35 already diverges on some test prompts)")
def test_sm_c16_note_value_of_pto_at_20_steps(setting_a):
    pto = sr.pto_steps_risk(setting_a["tune"], setting_a["test"], 20, "none").mean
    assert pto == pytest.approx(0.039, rel=0.10)
