"""The staircase analysis (``events.plateaus``, ``events.drop_times``, ``events.staircase``) on synthetic
curves with known plateaus and drops, sampled like a theory curve (merged log/uniform grid) and like a GD
curve (every step): both samplings give the same answer."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reduced_dynamics.events import midpoint_drop_time, plateaus, staircase
from reduced_dynamics.integrate import output_times


def synthetic(t, levels, times, width):
    """Loss stepping from levels[j] to levels[j+1] at times[j] (logistic steps of the given width)."""
    loss = np.full_like(t, levels[0], dtype=float)
    for j, t_drop in enumerate(times):
        loss -= (levels[j] - levels[j + 1]) * 0.5 * (1 + np.tanh((t - t_drop) / (2 * width)))
    return loss


LEVELS = [1.0, 0.64, 0.38, 0.21]
TIMES = [60.0, 100.0, 240.0]


@pytest.mark.parametrize("grid", ["theory", "gd"])
def test_known_staircase_is_recovered(grid):
    t = output_times(1000.0) if grid == "theory" else 0.1 * np.arange(10001)
    loss = synthetic(t, LEVELS, TIMES, width=1.0)
    st_ = staircase(t, loss, ladder=LEVELS + [0.13], log_time=True)
    assert st_["steps"] == [0, 1, 2, 3]
    np.testing.assert_allclose(st_["plateaus"], LEVELS, atol=2e-3)
    np.testing.assert_allclose(st_["drop_times"], TIMES, rtol=2e-3)


def test_a_smooth_decay_has_no_intermediate_plateau():
    t = np.linspace(0, 100, 5001)
    loss = 0.2 + 0.8 * np.exp(-t / 10)
    found = plateaus(t, loss)
    assert len(found) <= 2                                     # at most the start and the converged end
    assert all(p["level"] > 0.95 or p["level"] < 0.25 for p in found)


@settings(max_examples=15)
@given(first=st.floats(20, 80), gap=st.floats(2.0, 4.0), width=st.floats(0.1, 1.0))
def test_drop_times_do_not_depend_on_the_sampling(first, gap, width):
    """Resolvable staircases (plateaus longer than the detection window, 0.06 decades at 3 decades x 0.02)."""
    times = [first, first * gap]
    t_end = times[-1] * 3
    dense = np.linspace(0, t_end, 40001)
    coarse = output_times(t_end)
    a = staircase(dense, synthetic(dense, LEVELS[:3], times, width), log_time=True)
    b = staircase(coarse, synthetic(coarse, LEVELS[:3], times, width), log_time=True)
    assert len(a["drop_times"]) == len(b["drop_times"]) == 2
    np.testing.assert_allclose(a["drop_times"], times, rtol=5e-3)
    np.testing.assert_allclose(b["drop_times"], a["drop_times"], rtol=5e-3)


def test_the_default_attn_s_comparison_reports_every_rest():
    """The curve `reduced-dynamics compare attn-s` reports (sample-moment flow, seed 4, P = 20000) rests at
    0.636 from t ~ 66 to 83 (the m = 1 step of the ladder, LA-30): the report lists all four rests, m = 0..3,
    in order, each within 2 % of its ladder level (finite-sample moments move the levels, §10.2 (a))."""
    from reduced_dynamics.theory.linear_attention import separate as th
    import reduced_dynamics as rd
    spec = rd.spec("attn-s")
    curve = th.predict(spec.replace(train_size=spec.sample_size), test_size=50)
    summary = th.summarise(spec, curve)
    ladder = th.ladder(spec)
    assert summary["plateau_steps"] == [0, 1, 2, 3]
    for m, level in zip(summary["plateau_steps"], summary["plateaus"]):
        assert abs(level - ladder[m]) / ladder[m] < 0.02
    first, second, third = summary["drop_times"]
    assert 60 < first < 66 < 80 < second < 90 < 120 < third < 135


def test_a_curve_that_has_not_dropped_has_no_drop_time():
    """The creep before an escape (here 8e-8 of the loss, as at attn-m D = 60, t = 40) is not a drop; a logistic
    drop of the same curve family is found at its midpoint."""
    t = np.linspace(0.0, 40.0, 801)
    creep = 1.0 - 8e-8 * t / 40.0
    assert np.isnan(midpoint_drop_time(t, creep))
    drop = 1.0 - 0.8 / (1.0 + np.exp(-(t - 21.8)))
    assert midpoint_drop_time(t, drop) == pytest.approx(21.8, abs=1e-2)
