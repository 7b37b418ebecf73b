"""The weight-decay done-when numbers at the note's sizes (slow; docs/theory/weight_decay.md).

attn-m C6 (P = 20000, lr 0.05, frozen) with lambda = 1e-3 and 1e-2: GD's drop time within 1 % of the flow's (the
O(lr) gap of LR-7; within 0.1 % of the modified flow WD-3), and at t = 600 GD's end point on the closed-form
regularised minimum (WD-5). attn-s C8 (P = 5000, lr 0.1, frozen, aligned start a0 = 0.05) with lambda = 1e-3:
GD's staircase has the flow's steps, every drop within 1 %, and the population flow rests on the regularised
ladder (WD-8) within 0.1 %; the fourth direction is not learned (its escape threshold a_- = 0.0500009 lies just
above a0, WD-8)."""
import numpy as np
import pytest

import reduced_dynamics as rd
from reduced_dynamics.events import midpoint_drop_time
from reduced_dynamics.reference import linear_attention as ref
from reduced_dynamics.specs import LinearSeparateSpec
from reduced_dynamics.theory.linear_attention import merged
from reduced_dynamics.theory.linear_attention import separate as th
from reduced_dynamics.theory.linear_attention import weight_decay as wd

from test_linear_separate_compare import A0, aligned_weights


@pytest.mark.slow
@pytest.mark.parametrize("lam", [1e-3, 1e-2])
def test_c6_with_decay_drop_and_regularised_end_point(lam):
    spec = rd.spec("attn-m", train_size=20000, freeze_off_manifold=True, weight_decay=lam, t_max=600.0)
    gd = rd.simulate(spec, progress=False)
    early = gd.t <= 40.0 + 1e-9
    gd_drop = midpoint_drop_time(gd.t[early], gd.loss[early])
    flow_drop = rd.predict(spec.replace(t_max=40.0)).events["drop_time"]
    modified_drop = rd.predict(spec.replace(t_max=40.0, discretisation="modified")).events["drop_time"]
    assert abs(gd_drop / flow_drop - 1) < 0.01
    assert abs(gd_drop / modified_drop - 1) < 1e-3
    flow, y0, cov = merged.setup(spec)
    b, L = wd.merged_minimum(flow)
    end = flow.solve(y0, spec.final_time, method="DOP853", t_eval=np.array([0.0, spec.final_time]), rtol=1e-12,
                     atol=1e-15).y[-1]
    assert abs(gd.loss[-1] / float(flow.loss(end)) - 1) < 1e-3
    assert abs(gd.loss[-1] / L - 1) < 1e-6
    beta_star = (cov.basis.T @ b.reshape(spec.dim, spec.dim) @ cov.basis).diagonal()
    assert np.max(np.abs(gd.observables["beta"][-1] - beta_star)) < 1e-6 * np.max(np.abs(beta_star))


@pytest.mark.slow
def test_c8_with_decay_staircase():
    spec = LinearSeparateSpec(heads=4, rank=1, output_scale="paper", init_rule="normal", init_scale=A0,
                              train_size=5000, lr=0.1, steps=15000, freeze_off_manifold=True, weight_decay=1e-3)
    cov, _, data = ref.problem_separate(spec)
    params = aligned_weights(spec, cov)
    gd = th.summarise(spec, ref.run_separate(spec, params, cov, data, progress=False))
    grid = spec.lr * np.arange(spec.gd_steps + 1)
    runs = {}
    for moments in ("sample", "population"):
        flow, _, _ = th.setup(spec, moments=moments)
        y0 = th.pack(*th.projection(params["K"], params["Q"], params["r"]), flow.moments.basis)
        runs[moments] = th.summarise(spec, th.predict(spec, moments=moments, y0=y0, t_eval=grid))
    assert gd["plateau_steps"] == runs["sample"]["plateau_steps"] == [0, 1, 2, 3]
    assert np.all(np.abs(np.array(gd["drop_times"]) / np.array(runs["sample"]["drop_times"]) - 1) < 0.01)
    ladder = wd.separate_ladder(spec)
    rests = runs["population"]["plateaus"]
    assert runs["population"]["plateau_steps"] == [0, 1, 2, 3]
    assert np.all(np.abs(np.array(rests) / np.array(ladder[:4]) - 1) < 1e-3)
    lam, s, low, rest = wd.components(spec)
    assert low[3] > A0 > low[2]                   # the fourth direction starts below its escape threshold
