"""SM-C12 setting (c) d=8, s=2, sigma=0.1, n=24, N(0,1) (risk vs continuous depth), SM-C17, SM-C18."""
import numpy as np
import pytest

from reduced_dynamics.specs import SparseSpec
from reduced_dynamics.tasks.sparse_regression import NOTE_SETTINGS, sample_prompts
from reduced_dynamics.theory.sparse import algorithms as alg
from reduced_dynamics.theory.sparse import risk as sr

TAUS = sr.depth_grid(0.25, 4096.0, 29)


def _sets(name):
    return sr.sample_test_and_tune(NOTE_SETTINGS[name], seed=0, test=2000, tune=1500)


@pytest.fixture(scope="module")
def setting_c():
    test, tune = _sets("c")
    return dict(test=test, tune=tune, curves=sr.flow_risk_curves(test, TAUS), ridge=sr.ridge_risk(tune, test))


def _minima(curves):
    return [float(curves[k][0].min()) for k in ("gd_flow", "pto_flow", "pto_inf_flow")]


def test_sm_c12c_gd_beats_pto_when_n_is_3d(setting_c):
    """(c) d=8, s=2, sigma=0.1, n=24, N(0,1): GD-flow min < PtO-flow min; GD-flow min = ridge within 5%;
    GD 0.0053 and ridge 0.0052 within 10%. (PtO minima: see the xfail below.)"""
    gd, pto, pinf = _minima(setting_c["curves"])
    ridge = setting_c["ridge"].mean
    assert gd < pto
    assert gd == pytest.approx(ridge, rel=0.05)
    assert gd == pytest.approx(0.0053, rel=0.10)
    assert ridge == pytest.approx(0.0052, rel=0.10)


@pytest.mark.xfail(strict=True, reason="measured PtO 0.0059, PtO-inf 0.0065 (seed 0) vs the note's 0.0075 / "
                   "0.0077: the minimum sits at the grid end tau = 4096 where prompts with a tiny N(0,1) "
                   "nonzero have not converged; over seeds 0-5 PtO ranges 0.0054-0.0069, PtO-inf 0.0059-0.0078")
def test_sm_c12c_note_values_of_pto_minima(setting_c):
    gd, pto, pinf = _minima(setting_c["curves"])
    assert pto == pytest.approx(0.0075, rel=0.10)
    assert pinf == pytest.approx(0.0077, rel=0.10)


def test_sm_c17_ridge_wins_when_n_is_3d_and_noise_is_low(setting_c):
    """d=8, s=2, sigma=0.1, n=24, N(0,1): ridge 0.0052 vs PtO-inf at T = 10 0.060; assert ridge < PtO-inf / 5."""
    pinf = sr.pto_steps_risk(setting_c["tune"], setting_c["test"], 10, "max").mean
    assert setting_c["ridge"].mean < pinf / 5


def test_sm_c18_off_support_leakage_rates():
    """One-step leakage sum_{j not in S} w_j^2: n^-3 for PtO (eta r^3) and n^-1 for GD (eta r); d = 32, s = 2,
    fixed eta = 1, n = 32..512: log-log slopes -3 ± 0.3 and -1 ± 0.3."""
    ns = np.array([32, 64, 128, 256, 512])
    leak_pto, leak_gd = [], []
    for n in ns:
        spec = SparseSpec(dim=32, sparsity=2, noise=0.5, context=int(n), nonzero_law="rademacher")
        p = sample_prompts(spec, 2000, np.random.default_rng(int(n)))
        r = np.einsum("bni,bn->bi", p.X, p.y) / n
        off = p.w == 0
        leak_pto.append(np.mean(np.sum((alg.pto_steps(p.X, p.y, 1.0, 1) * off) ** 2, axis=1)))
        leak_gd.append(np.mean(np.sum((r * off) ** 2, axis=1)))
    slope_pto = np.polyfit(np.log(ns), np.log(leak_pto), 1)[0]
    slope_gd = np.polyfit(np.log(ns), np.log(leak_gd), 1)[0]
    assert slope_pto == pytest.approx(-3, abs=0.3)
    assert slope_gd == pytest.approx(-1, abs=0.3)
