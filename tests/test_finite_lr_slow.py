"""The issue's done-when numbers at the note's sizes (slow). attn-m and attn-s: frozen-manifold GD drop times
within 0.1 % of the modified flow (LR-5) at the run's learning rate. Measured: C6 −0.009 %; C8 −0.005 / −0.002 /
−0.0003 / −0.0000 % (against the flow: +0.80 % and +0.46 / +0.28 / +0.12 / +0.03 %). Unfrozen C6 misses the
manifold's modified flow by leakage, not by the step, and meets the all-weights one (LA-44, LR-9) to −0.009 %.
Softmax at lr 2: the mean of 16 GD runs per feature."""
import numpy as np
import pytest

import reduced_dynamics as rd
from reduced_dynamics.reference import linear_attention as ref
from reduced_dynamics.specs import LinearSeparateSpec
from reduced_dynamics.theory.linear_attention import separate as th

from test_linear_separate_compare import A0, aligned_weights


@pytest.mark.slow
def test_c6_frozen_gd_matches_the_modified_flow():
    spec = rd.spec("attn-m", train_size=20000, freeze_off_manifold=True)
    gd = rd.simulate(spec, progress=False).events["drop_time"]
    modified = rd.predict(spec.replace(discretisation="modified")).events["drop_time"]
    flow = rd.predict(spec).events["drop_time"]
    assert abs(gd / modified - 1) < 1e-3 < abs(gd / flow - 1)


@pytest.mark.slow
def test_c8_frozen_gd_matches_the_modified_flow():
    spec = LinearSeparateSpec(heads=4, rank=1, output_scale="paper", init_rule="normal", init_scale=A0,
                              train_size=5000, lr=0.1, steps=15000, freeze_off_manifold=True)
    cov, _, data = ref.problem_separate(spec)
    params = aligned_weights(spec, cov)
    gd = th.summarise(spec, ref.run_separate(spec, params, cov, data, progress=False))["drop_times"]
    flow, _, _ = th.setup(spec, moments="sample")
    y0 = th.pack(*th.projection(params["K"], params["Q"], params["r"]), flow.moments.basis)
    grid = spec.lr * np.arange(spec.gd_steps + 1)
    modified = th.summarise(spec, th.predict(spec.replace(discretisation="modified"), moments="sample", y0=y0,
                                             t_eval=grid))["drop_times"]
    assert len(gd) == len(modified) == 4
    assert np.all(np.abs(np.array(gd) / np.array(modified) - 1) < 1e-3)


SOFTMAX_LR2 = dict(features=4, dim=4, context=50, dominant=0.6, lr=2.0, steps=200)


@pytest.mark.slow
def test_softmax_lr2_gd_follows_the_modified_exact_flow_per_feature():
    """Softmax imbalanced at the note's sizes and lr 2, fresh batches of 4000 prompts every step: the mean of 16
    GD runs (seeds 0-15) against the modified exact-N flow (LR-5) within 1 % on every per-feature threshold time,
    and against the reduced GD map (LR-3) within 3 standard errors of that mean (batch noise), while the flow is
    5-7 % late for the dominant feature. Measured: vs modified -0.76 ... +0.22 %, vs map within 0.82 SE (all
    |gap| <= 0.27 %), vs flow -7.2 ... -0.2 %; one run's scatter (sd) 0.95-2.5 %."""
    theory = {d: np.array(rd.predict(rd.spec("softmax", **SOFTMAX_LR2, discretisation=d)).events["threshold_times"],
                          dtype=float) for d in ("flow", "map", "modified")}
    runs = np.array([rd.simulate(rd.spec("softmax", **SOFTMAX_LR2, seed=seed), progress=False)
                     .events["threshold_times"] for seed in range(16)], dtype=float)
    mean, se = runs.mean(axis=0), runs.std(axis=0, ddof=1) / np.sqrt(len(runs))
    assert np.all(np.isfinite(runs))
    assert np.max(np.abs(mean / theory["modified"] - 1)) < 0.01
    assert np.all(np.abs(mean - theory["map"]) < 3 * se)
    assert np.max(np.abs(mean / theory["flow"] - 1)) > 0.05          # the step's O(lr) effect is there


@pytest.mark.slow
def test_c6_unfrozen_gap_is_leakage_not_the_step():
    """Why unfrozen C6 misses the 0.1 % target against the modified flow (-0.16 %): the off-manifold blocks
    (a second in-context route, unstable off the invariant set, iwl §12.3) pick up sample noise and drift,
    and that moves the drop by the same amount at lr 0.05 and lr 0.025, so it is not the step. Measured:
    unfrozen - frozen = -0.155 % (lr 0.05) and -0.157 % (lr 0.025) at P = 20000; -0.136 % at P = 80000 (it
    fades only slowly with P)."""
    shift = {}
    for lr in (0.05, 0.025):
        drops = {frozen: rd.simulate(rd.spec("attn-m", train_size=20000, lr=lr, freeze_off_manifold=frozen),
                                     progress=False).events["drop_time"] for frozen in (False, True)}
        shift[lr] = drops[False] / drops[True] - 1
    assert shift[0.05] < -1e-3 and shift[0.025] < -1e-3
    assert abs(shift[0.05] - shift[0.025]) < 0.1 * abs(shift[0.05])


@pytest.mark.slow
def test_c6_unfrozen_gd_matches_the_all_weights_modified_flow():
    """The done-when number for the default (unfrozen) C6 run: the modified flow (LR-5, LR-9) of the
    full-parameter flow (LA-44) on the training set's moments, which includes the leakage, within 0.1 % of GD's
    drop time. Measured: GD 18.1068, all-weights modified flow 18.1084 (-0.009 %), its GD map 18.1068 (0, the
    same run), all-weights flow 17.9625, invariant-manifold modified flow 18.1365 (-0.16 %)."""
    spec = rd.spec("attn-m", train_size=20000)
    gd = rd.simulate(spec, progress=False).events["drop_time"]
    modified = rd.predict(spec.replace(all_weights=True, discretisation="modified")).events["drop_time"]
    on_manifold = rd.predict(spec.replace(discretisation="modified")).events["drop_time"]
    assert abs(gd / modified - 1) < 1e-3 < abs(gd / on_manifold - 1)
