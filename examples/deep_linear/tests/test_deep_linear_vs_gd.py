"""Theory against gradient descent on the full network at a small learning rate, and divergence."""
from __future__ import annotations

import numpy as np
import pytest

from reduced_dynamics.errors import DivergenceError
from rd_deep_linear import reference, task, theory
from rd_deep_linear.spec import DeepLinearSpec

SMALL = {"in_dim": 5, "hidden": 2, "out_dim": 4, "singular_values": (2.0, 1.0, 0.5), "train_size": 32,
         "lr": 0.001, "t_max": 10.0}


@pytest.mark.parametrize("init, scale", [("aligned", 0.01), ("random", 0.05)])
def test_half_learning_times_within_one_percent(init, scale):
    spec = DeepLinearSpec(**SMALL, init=init, init_scale=scale)
    th, gd = task.summarise(spec, theory.predict(spec)), task.summarise(spec, reference.simulate(spec, False))
    learnt = np.isfinite(gd["half_times"])
    assert learnt.sum() == 2                                   # two hidden units: two modes learnt
    gaps = np.array(th["half_times"])[learnt] / np.array(gd["half_times"])[learnt] - 1
    assert np.abs(gaps).max() < 0.01, gaps
    assert abs(th["final_loss"] - gd["final_loss"]) < 1e-3 * gd["final_loss"]
    assert abs(gd["final_loss"] / (0.5 * 0.5 ** 2) - 1) < 0.02   # near the rank-2 floor (DL-2)


def test_gap_shrinks_with_the_learning_rate():
    spec = DeepLinearSpec(**{**SMALL, "t_max": 5.0})
    th = task.summarise(spec, theory.predict(spec))["half_times"][0]
    gaps = [abs(task.summarise(spec, reference.simulate(spec.replace(lr=lr), False))["half_times"][0] / th - 1)
            for lr in (0.004, 0.002)]
    assert 1.6 < gaps[0] / gaps[1] < 2.4, gaps                 # first order in lr


def test_large_learning_rate_is_a_divergence_error():
    with pytest.raises(DivergenceError, match="deep-linear: gradient descent diverged at step .*lower --lr"):
        reference.simulate(DeepLinearSpec(lr=1.0, init_scale=0.5, t_max=50.0), progress=False)
