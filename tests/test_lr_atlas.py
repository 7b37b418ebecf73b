"""The lr atlas (docs/theory/lr_atlas.md): the batched map over rates is full GD of the model (unfrozen: every
weight; frozen: the masked map) step by step (LRA-1, LRA-3); its Lanczos sharpness is the largest eigenvalue of
the reference's own Hessian by finite differences; the frozen bound is the manifold's (LR-8); the run's bound is
safe for GD (LRA-2); and the atlas's regime equals full GD's at every rate of a coarse scan (LRA-4)."""
from __future__ import annotations

import json

import numpy as np
import pytest

import reduced_dynamics as rd
from reduced_dynamics.cli import main
from reduced_dynamics.reference import linear_attention as ref
from reduced_dynamics.scripts.lr_atlas import gd_outcome
from reduced_dynamics.theory import lr_atlas
from reduced_dynamics.theory.linear_attention import merged

SMALL = dict(dim=2, heads=2, init_scale=0.1, train_size=200, t_max=30.0)


def _state(p, D):
    return np.concatenate([p["r"], p["W"][:, :, :D].reshape(len(p["r"]), -1)], axis=1).reshape(-1)


@pytest.mark.parametrize("frozen", [False, True])
def test_batched_map_is_full_gd_at_every_rate(frozen):
    spec = rd.spec("attn-m", dim=3, heads=2, context=7, init_scale=0.3, train_size=300, steps=40, lr=0.1,
                   freeze_off_manifold=frozen)
    rates = np.array([0.1, 0.2, 0.3])
    bm, y0, _ = lr_atlas.system(spec)
    losses, tails, _, _, diverged = lr_atlas.iterate(bm, y0, rates, np.full(3, 40))
    cov, params, data = ref.problem(spec)
    model = ref.MergedAttention(spec.kappa)
    mask = model.off_manifold_mask(params) if frozen else None
    for j, eta in enumerate(rates):
        gd_losses, states, _ = ref.gradient_descent(model, params, ref.Batch.from_training_set(data), eta, 40,
                                                    mask=mask, record=lambda p: _state(p, spec.dim), progress=False)
        assert diverged[j] < 0
        assert np.max(np.abs(tails[j] - np.array(states[-9:]))) <= 1e-9 * np.max(np.abs(states))
        assert np.max(np.abs(losses[:, j] - gd_losses)) <= 1e-9 * gd_losses[0]


@pytest.mark.parametrize("frozen", [False, True])
def test_lanczos_sharpness_is_the_reference_hessians_top_eigenvalue(frozen):
    """lambda_max of (m H m) by eigsh on the HVP (LR-9) against central differences of the reference gradient."""
    spec = rd.spec("attn-m", dim=2, heads=2, context=5, init_scale=0.3, train_size=100, freeze_off_manifold=frozen)
    bm, y0, _ = lr_atlas.system(spec)
    y = y0 + 0.3 * np.random.default_rng(1).standard_normal(y0.size)
    cov, params, data = ref.problem(spec)
    model, batch = ref.MergedAttention(spec.kappa), ref.Batch.from_training_set(data)
    D, H = spec.dim, spec.heads

    def grad(z):
        Z = z.reshape(H, -1)
        p = {"r": Z[:, :D + 1].copy(), "W": np.zeros((H, D + 1, D + 1))}
        p["W"][:, :, :D] = Z[:, D + 1:].reshape(H, D + 1, D)
        g = model.loss_and_grads(p, batch)[1]
        return _state(g, D)
    eps = 1e-5
    hess = np.array([(grad(y + eps * e) - grad(y - eps * e)) / (2 * eps) for e in np.eye(y.size)])
    free = bm.mask > 0
    sub = 0.5 * (hess + hess.T)[np.ix_(free, free)]
    expected = np.linalg.eigvalsh(sub)[-1]
    assert bm.sharpness(y) == pytest.approx(expected, rel=1e-6)


def test_frozen_bound_is_the_manifold_bound():
    """The masked all-weights system (LRA-1) and the SymPy-derived reduced Hessian (LR-8) give one number."""
    spec = rd.spec("attn-m", **SMALL, freeze_off_manifold=True)
    ours = lr_atlas.run_bound(spec)
    manifold = merged.max_stable_lr(spec)
    assert ours["eta_max"] == pytest.approx(manifold["eta_max"], rel=1e-5)
    assert ours["at_minimum"] == pytest.approx(manifold["at_minimum"], rel=1e-5)
    assert "manifold" in ours["system"]


def test_default_gd_at_0p9_of_the_printed_bound_converges():
    """(LRA-2): unfrozen GD at 0.9 eta_max settles (no rise over its last quarter) at the flow's loss, while the
    manifold's bound is far above it (it does not protect the default run)."""
    spec = rd.spec("attn-m", **SMALL)
    bound = lr_atlas.run_bound(spec)
    assert "all weights" in bound["system"]
    out = gd_outcome(spec.replace(lr=0.9 * bound["eta_max"]))
    assert out["label"] in ("monotone", "catapult")
    assert out["final"] == pytest.approx(bound["final_loss"], rel=0.01)
    assert merged.max_stable_lr(spec.replace(freeze_off_manifold=True))["eta_max"] > 3 * bound["eta_max"]


@pytest.mark.parametrize("frozen, rates", [(False, np.linspace(0.1, 0.7, 7)), (True, np.linspace(0.4, 2.2, 7))])
def test_atlas_regime_equals_full_gd_on_a_coarse_scan(frozen, rates):
    spec = rd.spec("attn-m", **SMALL, freeze_off_manifold=frozen)
    at = lr_atlas.atlas(spec, rates)
    gd = [gd_outcome(spec.replace(lr=float(r))) for r in rates]
    assert at.coarse_labels == [o["label"] for o in gd]
    assert len(set(at.coarse_labels)) >= 3            # the scan crosses regimes: not a trivial agreement
    for j, o in enumerate(gd):
        if o["label"] != "divergent":
            assert at.peak[j] == pytest.approx(o["peak"], rel=1e-6)
            assert at.final[j] == pytest.approx(o["final"], rel=1e-6)


def test_classify_names_the_regimes():
    tail = np.zeros((lr_atlas.PERIODS + 1, 2))
    assert lr_atlas.classify(np.array([1.0, 0.5, 0.4, 0.4]), tail, True) == "divergent"
    assert lr_atlas.classify(np.array([1.0, 0.5, 0.3, 0.2, 0.1, 0.1]), tail, False) == "monotone"
    assert lr_atlas.classify(np.array([1.0, 3.0, 0.3, 0.2, 0.1, 0.1]), tail, False) == "catapult"
    assert lr_atlas.classify(np.array([1.0, 0.3, 0.5, 0.2, 0.1, 0.1]), tail, False) == "damped"
    orbit = np.array([[1.0, 0.0], [0.0, 1.0]] * 5)[:lr_atlas.PERIODS + 1]
    loss = np.array([1.0, 0.5, 0.7] * 4)
    assert lr_atlas.classify(loss, orbit, False) == "period-2"
    rng = np.random.default_rng(0)
    noisy = rng.standard_normal((lr_atlas.PERIODS + 1, 2))
    assert lr_atlas.classify(loss, noisy, False, lyapunov=0.2) == "chaotic"
    assert lr_atlas.classify(loss, noisy, False, lyapunov=-0.1) == "oscillating"
    assert lr_atlas.coarse("period-3") == "oscillating"


def test_atlas_command_writes_its_table_and_refuses_bad_input(tmp_path, capsys):
    flags = ["--dim", "2", "--heads", "2", "--train-size", "100", "--init-scale", "0.1", "--t-max", "10"]
    assert main(["atlas", "attn-m", *flags, "--lr-range", "0.1", "0.8", "--points", "5",
                 "--out-dir", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "attn-m-atlas.json").read_text())
    assert len(record["rows"]["rate"]) == 5 and "all weights" in record["system"]
    assert (tmp_path / "attn-m-atlas.csv").read_text().count("\n") == 6
    capsys.readouterr()
    for bad in (["--lr-range", "0.5", "0.1"], ["--lr-range", "0.1", "0.5", "--points", "1"]):
        assert main(["atlas", "attn-m", *flags, *bad, "--out-dir", str(tmp_path / "x")]) == 2
        assert capsys.readouterr().err.startswith("reduced-dynamics: error: ")
    assert main(["atlas", "sparse", "--lr-range", "0.1", "0.5", "--out-dir", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()


def test_atlas_cost_and_outputs_are_checked_before_any_work(tmp_path, capsys):
    """A rate range whose smallest rate needs 1e9 steps is refused from the estimate (the (steps, rates) arrays
    would need terabytes) naming --lr-range and --points; an output folder under a file is refused too."""
    flags = ["--dim", "2", "--heads", "2", "--train-size", "100", "--t-max", "10"]
    assert main(["atlas", "attn-m", *flags, "--lr-range", "1e-8", "1", "--points", "100",
                 "--out-dir", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert "raise the smallest rate A of --lr-range" in err and "--points" in err and "\n" not in err
    (tmp_path / "file").write_text("")
    assert main(["atlas", "attn-m", *flags, "--lr-range", "0.1", "0.5", "--points", "3",
                 "--out-dir", str(tmp_path / "file" / "sub")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_softmax_atlas_is_the_exact_gd_map_and_stays_monotone_above_its_bound():
    """(LRA-7): the batched map on M equals the one-rate exact GD map (``features.exact_gd_map``) step by step, and
    at these sizes the exact map descends monotonically even at 4 times eta_max (measured, docs §5): the bounded
    softmax loss has no divergent regime and a large first step lands in the saturated, flat region."""
    from reduced_dynamics.theory.softmax import features
    spec = rd.spec("softmax", features=3, dim=3, context=12, dominant=0.6, steps=40, lr=1.0)
    eta = features.max_stable_lr(spec, points=20)["eta_max"]
    rates = np.array([0.5, 1.0, 2.0, 4.0]) * eta
    at = lr_atlas.atlas(spec, rates)
    one = features.exact_gd_map(spec.replace(lr=float(rates[2]), discretisation="map"))
    assert np.max(np.abs(at.losses[:, 2] - one.loss)) <= 1e-12 * one.loss[0]
    assert at.labels == ["monotone"] * 4
    assert np.all(at.final < 0.2 * at.loss0)


def test_lyapunov_exponent_is_the_growth_of_a_small_separation_between_two_gd_orbits():
    """(LRA-5) from the tangent map I - eta m H (the exact HVP, LR-9) against the Benettin estimate: two orbits of
    the map 1e-7 apart along the same start vector at the window's start, renormalised every step, over the
    same second half of the run."""
    spec = rd.spec("attn-m", dim=2, heads=2, init_scale=0.1, train_size=200, t_max=60.0)
    bm, y0, _ = lr_atlas.system(spec)
    rates = np.array([0.1, 0.5718])            # settling and chaotic at this size
    steps = lr_atlas.run_steps(spec, rates)
    # one rate at a time: above eta_max the orbit leaves an unstable minimum from rounding noise, which a batch
    # of another shape rounds differently (the regime is the same; the digits of the exponent are not)
    lyap = np.array([lr_atlas.iterate(bm, y0, rates[j:j + 1], steps[j:j + 1])[3][0] for j in range(2)])
    v0 = np.random.default_rng(0).standard_normal(bm.n) * bm.mask
    for j, eta in enumerate(rates):
        Y = y0[None].copy()
        for _ in range(steps[j] // 2):
            Y = Y - eta * bm.gradient(Y)
        eps = 1e-7
        Z = Y + eps * v0 / np.linalg.norm(v0)
        growth = []
        for _ in range(steps[j] // 2, steps[j]):
            Y, Z = Y - eta * bm.gradient(Y), Z - eta * bm.gradient(Z)
            sep = np.linalg.norm(Z - Y)
            growth.append(np.log(sep / eps))
            Z = Y + (Z - Y) * (eps / sep)
        assert lyap[j] == pytest.approx(np.mean(growth), abs=1e-4)
    assert lyap[1] > lr_atlas.CHAOS > abs(lyap[0])


SMALL_S = dict(dim=3, heads=2, rank=2, context=7, init_scale=0.3, init_rule="normal", output_scale="paper",
               train_size=300)


@pytest.mark.parametrize("frozen", [False, True])
def test_attn_s_all_weights_map_is_full_gd(frozen):
    """(LRA-8): the three-factor map on the quadratic in Theta is attn-s GD of every weight (or the frozen GD),
    step by step, and its Hessian-vector product is the central difference of its gradient."""
    spec = rd.spec("attn-s", **SMALL_S, steps=40, lr=0.1, freeze_off_manifold=frozen)
    bm, y0, _ = lr_atlas.system(spec)
    cov, params, data = ref.problem_separate(spec)
    model = ref.SeparateAttention(spec.kappa)
    D, H = spec.dim, spec.heads

    def state(p):
        return np.concatenate([p["r"], p["K"].reshape(H, -1), p["Q"][:, :, :D].reshape(H, -1)], axis=1).reshape(-1)
    mask = model.off_manifold_mask(params) if frozen else None
    losses, states, _ = ref.gradient_descent(model, params, ref.Batch.from_training_set(data), 0.1, 40, mask=mask,
                                             record=state, progress=False)
    mapped, tails, _, _, _ = lr_atlas.iterate(bm, y0, np.array([0.1]), np.array([40]))
    assert np.max(np.abs(tails[0] - np.array(states[-9:]))) <= 1e-9 * np.max(np.abs(states))
    assert np.max(np.abs(mapped[:, 0] - losses)) <= 1e-9 * losses[0]
    rng = np.random.default_rng(1)
    Y = y0[None] + 0.3 * rng.standard_normal((2, y0.size))
    U = rng.standard_normal((2, y0.size)) * bm.mask
    eps = 1e-6
    fd = (bm.gradient(Y + eps * U) - bm.gradient(Y - eps * U)) / (2 * eps)
    assert np.max(np.abs(bm.hvp(Y, U) - fd)) <= 1e-8 * np.max(np.abs(fd))


def test_attn_s_bounds_frozen_is_the_manifolds_and_unfrozen_is_safe():
    from reduced_dynamics.theory.linear_attention import separate
    from reduced_dynamics.scripts.lr_atlas import gd_outcome_separate
    spec = rd.spec("attn-s", **SMALL_S, t_max=30.0)
    frozen = lr_atlas.run_bound(spec.replace(freeze_off_manifold=True))
    assert frozen["eta_max"] == pytest.approx(separate.max_stable_lr(spec.replace(freeze_off_manifold=True))["eta_max"],
                                              rel=1e-5)
    free = lr_atlas.run_bound(spec)
    assert "all weights" in free["system"] and free["eta_max"] < 0.5 * frozen["eta_max"]
    out = gd_outcome_separate(spec.replace(lr=0.9 * free["eta_max"]))
    assert out["label"] in ("monotone", "damped", "catapult")
    assert out["final"] == pytest.approx(free["final_loss"], rel=0.01)
