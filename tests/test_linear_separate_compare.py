"""Theory against gradient descent for attn-s (checks C8 and C9 of linear_attention.md §11), always against
the sample-moment flow started from the very same projected initial weights (LA-35), never against fixed
drop times. The default runs use P = 2000 and frozen off-manifold blocks (§10.2 (b)); the note's sizes
run under the ``slow`` marker."""
import numpy as np
import pytest

from reduced_dynamics import comparison
from reduced_dynamics.reference import linear_attention as ref
from reduced_dynamics.specs import LinearSeparateSpec
from reduced_dynamics.tasks import linear_attention as task
from reduced_dynamics.theory.linear_attention import separate as th

A0 = 0.05


def aligned_weights(spec, cov):
    """C7/C8 initialisation: head i on eigenvector i, v = kappa = rho = a0, off-manifold blocks zero."""
    D, H = spec.dim, spec.heads
    K, Q, r = np.zeros((H, 1, D + 1)), np.zeros((H, 1, D + 1)), np.zeros((H, D + 1))
    for i in range(H):
        K[i, 0, :D] = Q[i, 0, :D] = A0 * cov.basis[:, i]
        r[i, D] = A0
    return {"K": K, "Q": Q, "r": r}


def c8_runs(train_size, steps, freeze):
    spec = LinearSeparateSpec(heads=4, rank=1, output_scale="paper", init_rule="normal", init_scale=A0,
                              train_size=train_size, lr=0.1, steps=steps, freeze_off_manifold=freeze)
    cov, _, data = ref.problem_separate(spec)
    params = aligned_weights(spec, cov)
    gd = ref.run_separate(spec, params, cov, data, progress=False)
    flow, _, _ = th.setup(spec, moments="sample")
    y0 = th.pack(*th.projection(params["K"], params["Q"], params["r"]), flow.moments.basis)
    emp = th.predict(spec, moments="sample", y0=y0, t_eval=np.linspace(0.0, spec.final_time, 20 * steps + 1))
    return spec, th.summarise(spec, gd), th.summarise(spec, emp), gd


def check_same_staircase(gd, emp, drop_tol):
    assert gd["plateau_steps"] == emp["plateau_steps"]
    gaps = np.abs(np.array(gd["drop_times"]) / np.array(emp["drop_times"]) - 1)
    print("drop times GD", np.round(gd["drop_times"], 3), "flow", np.round(emp["drop_times"], 3),
          "gaps", np.round(gaps, 5))
    assert np.all(gaps < drop_tol)
    levels = np.abs(np.array(gd["plateaus"]) / np.array(emp["plateaus"]) - 1)
    assert np.all(levels < 0.01)


def test_c8_frozen_small_sample():
    """C8 at P = 2000, first three drops (t = 400): frozen GD drop times within 0.5 % of the flow."""
    _, gd, emp, traj = c8_runs(2000, 4000, freeze=True)
    assert gd["plateau_steps"][:4] == [0, 1, 2, 3]
    check_same_staircase(gd, emp, 0.005)
    assert np.all(traj.observables["leak"] == 0)


@pytest.mark.slow
def test_c8_note_sizes():
    """C8 at the note's sizes (P = 5000, lr 0.1, 15000 steps): frozen GD within 0.5 % of the flow on all
    four drops; without freezing, the leakage makes the last drop earlier than the frozen one (§10.2 (b))."""
    _, gd, emp, _ = c8_runs(5000, 15000, freeze=True)
    assert gd["plateau_steps"] == [0, 1, 2, 3, 4]
    check_same_staircase(gd, emp, 0.005)
    _, free, _, traj = c8_runs(5000, 15000, freeze=False)
    print("unfrozen drop times", np.round(free["drop_times"], 3), "leak", traj.observables["leak"][-1])
    assert free["drop_times"][-1] < gd["drop_times"][-1]
    assert free["final_loss"] < gd["final_loss"]          # fits sample noise below the manifold minimum


def c9_report(train_size, freeze, **changes):
    spec = LinearSeparateSpec(train_size=train_size, steps=10001, freeze_off_manifold=freeze, **changes)
    return spec, comparison.run(spec, progress=False)


def test_c9_frozen_small_sample():
    """C9 sizes (c = N = 31, H = 5, R = 1, code init 0.01, lr 0.02, 10001 steps) at P = 2000, frozen: the GD
    staircase has the flow's steps, drop times within 1 %, plateau levels within 1 %."""
    spec, report = c9_report(2000, True)
    m = report.metrics
    gd = {k: m[f"{k}_reference"] for k in ("plateaus", "plateau_steps", "drop_times")}
    emp = {k: m[f"{k}_theory"] for k in ("plateaus", "plateau_steps", "drop_times")}
    assert len(gd["drop_times"]) >= 2          # at this P the draw's second and third drops merge
    check_same_staircase(gd, emp, 0.01)
    assert m["ladder"] == th.ladder(spec)
    assert "step m" in report.text()


@pytest.mark.slow
@pytest.mark.parametrize("train_size", [5000, 20000])
def test_c9_note_sizes(train_size):
    """C9 at the note's sizes, frozen: GD against the sample flow within 1 % (drop times and plateaus); each
    flow plateau within 1 % of the sample-moment fixed point of its learned subset (§7.2 on the §5 moments);
    the comparison with the ladder (LA-30) is the separate test below. The m = 0 plateau is the training
    set's own mean of y_q^2 (1.028 at P = 5000 for this draw).

    Measured (seed 4): the plateaus sit within 0.7 % of the sample fixed points, while those are up to 2.1 %
    from the ladder: the finite training set's moments, not the dynamics, move the levels (note §10.2 (a))."""
    spec, report = c9_report(train_size, True)
    m = report.metrics
    gd = {k: m[f"{k}_reference"] for k in ("plateaus", "plateau_steps", "drop_times")}
    emp = {k: m[f"{k}_theory"] for k in ("plateaus", "plateau_steps", "drop_times")}
    print(report.text())
    check_same_staircase(gd, emp, 0.01)
    # The finite-sample reference point of each plateau: the least-squares fit of y_q on the learned
    # eigen-directions' features c (e_d^T h)(e_d^T x_q), d <= m, over this very training set (§5, §7.2).
    rngs = task.streams(spec.seed)
    cov = task.spec_covariance(spec, rngs)
    data = task.draw_training_set(cov, spec.context, spec.sample_size, rngs["data"])
    h = np.einsum("pn,pnd->pd", data.y, data.x) / spec.context
    features = spec.c * (h @ cov.basis) * (data.xq @ cov.basis)
    for step, level in zip(emp["plateau_steps"][1:], emp["plateaus"][1:]):
        coef, *_ = np.linalg.lstsq(features[:, :step], data.yq, rcond=None)
        sample_level = np.mean((features[:, :step] @ coef - data.yq) ** 2)
        print(f"m = {step}: flow plateau {level:.5f}, sample fixed point {sample_level:.5f}, "
              f"ladder {m['ladder'][step]:.5f}")
        assert abs(level - sample_level) / sample_level < 0.01


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="not reproduced for seed 4: plateaus -2.0 % (m = 2, P = 5000) and +1.9 % "
                   "(m = 3, P = 20000) from the ladder, because the finite training set's own fixed points are up "
                   "to 2.1 % away from it (note §10.2 (a)); the note's 1.5 % was measured on other draws")
@pytest.mark.parametrize("train_size", [5000, 20000])
def test_c9_plateaus_against_the_ladder(train_size):
    """C9's last clause: the plateaus reached by drops (m >= 1) within 1.5 % of the ladder (LA-30)."""
    _, report = c9_report(train_size, True)
    m = report.metrics
    for step, level in zip(m["plateau_steps_theory"][1:], m["plateaus_theory"][1:]):
        assert abs(level - m["ladder"][step]) / m["ladder"][step] < 0.015, (step, level, m["ladder"][step])
