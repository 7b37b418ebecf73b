"""Figures: the registry covers every script, the quick attn-m figure is byte-stable across processes (and
every quick figure within one), and their data show the science (theory and gradient descent drop together,
the loss falls by more than half)."""
import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reduced_dynamics.cli import FIGURE_FILES, figure_registry, main, make_figures
from reduced_dynamics.events import midpoint_drop_time
from reduced_dynamics.cli import resolve
from reduced_dynamics.families import FAMILIES

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def scripts_with_make_figure():
    out = []
    for path in sorted(SCRIPTS.glob("*.py")):
        tree = ast.parse(path.read_text())
        if any(isinstance(node, ast.FunctionDef) and node.name == "make_figure" for node in tree.body):
            out.append(path.stem)
    return out


def test_every_figure_script_is_registered_by_some_family():
    scripts = scripts_with_make_figure()
    assert "attn_m_loss" in scripts
    registered = {path for fam in FAMILIES.values() for path in fam.figures}
    for stem in scripts:
        assert f"reduced_dynamics.scripts.{stem}:make_figure" in registered, f"scripts/{stem}.py is in no family's figures"
    registry = figure_registry()
    assert len(registry) == len(registered), "two registered figures share a name"
    for name, path in registry.items():      # a plug-in family (examples/deep_linear) keeps its scripts at home
        assert callable(resolve(path)) and (not path.startswith("reduced_dynamics.scripts.") or (SCRIPTS / f"{name}.py").exists())


def test_list_and_unknown_figures(capsys):
    assert main(["figures", "--list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == list(figure_registry())
    assert main(["figures", "attn_m_nothing", "--quick"]) == 2
    assert "error: figures: expected one of" in capsys.readouterr().err


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """The quick attn-m figure made twice: here, then by the CLI in a fresh process with another hash seed
    and two BLAS threads (one after the other, so the second reuses the compile cache the first filled)."""
    first, second = tmp_path_factory.mktemp("first"), tmp_path_factory.mktemp("second")
    done = make_figures(["attn_m_loss"], first, quick=True)
    env = dict(os.environ, PYTHONHASHSEED="12345", OPENBLAS_NUM_THREADS="2", OMP_NUM_THREADS="2")
    result = subprocess.run([sys.executable, "-m", "reduced_dynamics", "figures", "attn_m_loss", "--quick",
                             "--out", str(second)], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "attn_m_loss" in result.stdout and str(second) in result.stdout
    return first, second, done


def test_quick_figure_files_are_byte_identical_across_runs(two_runs):
    first, second, done = two_runs
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir()) == sorted("attn_m_loss" + s for s in FIGURE_FILES)
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_quick_figure_data_show_theory_and_descent_dropping_together(two_runs):
    _, folder, _ = two_runs
    with np.load(folder / "attn_m_loss.npz") as data:
        curves = {key: data[key] for key in data.files}
        meta = json.loads(str(data["meta"]))
    report = json.loads((folder / "attn_m_loss.json").read_text())
    assert meta == report                                            # the .npz carries its own report
    assert report["spec"]["train_size"] == 4000 and set(report["versions"]) >= {"numpy", "scipy", "sympy"}
    theory = midpoint_drop_time(curves["t"], curves["loss"])
    descent = midpoint_drop_time(curves["t_reference"], curves["loss_reference"])
    assert theory == report["drop_time_theory"] and descent == report["drop_time_reference"]
    assert abs(theory - descent) < 0.02 * descent                   # sample-moment flow vs GD (quick: P = 4000)
    for t, loss in ((curves["t"], curves["loss"]), (curves["t_reference"], curves["loss_reference"])):
        assert t[0] == 0.0 and t[-1] == pytest.approx(40.0)
        assert loss[-1] < 0.5 * loss[0]                              # the loss falls by more than half
    assert abs(curves["loss"][0] - curves["loss_reference"][0]) < 1e-9 * curves["loss_reference"][0]
    # GD ends within 1 % of the theory's final loss (measured: 0.27 %)
    assert abs(curves["loss"][-1] - curves["loss_reference"][-1]) < 0.01 * curves["loss_reference"][-1]


@pytest.fixture(scope="module")
def quick_figures(tmp_path_factory):
    """Every registered figure at --quick sizes (about two minutes)."""
    folder = tmp_path_factory.mktemp("quick")
    return folder, make_figures(list(figure_registry()), folder, quick=True)


@pytest.mark.slow
def test_every_quick_figure_writes_its_contract_files(quick_figures):
    """Each figure writes PDF, PNG, .npz and a JSON holding its spec and the versions (make_figures raises
    otherwise); the main figures' data show their science: attn-m theory and GD drop together, the attn-s
    staircase visits the ladder, the dominant softmax feature crosses every threshold first (SF-30), and the
    SM-C12 orderings hold at the quick sizes."""
    tmp_path, done = quick_figures
    assert set(done) == set(figure_registry())
    attn_m = json.loads((tmp_path / "attn_m_loss.json").read_text())
    assert abs(attn_m["drop_time_relative_gap"]) < 0.02
    staircase = json.loads((tmp_path / "attn_s_staircase.json").read_text())
    for seed, sides in staircase["seeds"].items():
        # theory and GD visit the same ladder steps in the same order (GD with free off-manifold blocks at
        # P = 1000 may be one step ahead by t_max, §10.2 (b)); each theory plateau within 2 % of its level
        th, gd = sides["theory"]["plateau_steps"], sides["gradient descent"]["plateau_steps"]
        shorter, longer = sorted((th, gd), key=len)
        assert len(shorter) >= 3 and longer[:len(shorter)] == shorter, (seed, th, gd)
        for step, level in zip(sides["theory"]["plateau_steps"][1:], sides["theory"]["plateaus"][1:]):
            assert abs(level - staircase["ladder"][step]) / staircase["ladder"][step] < 0.02, (seed, step)
    imbalanced = json.loads((tmp_path / "softmax_imbalanced.json").read_text())
    for side in ("theory", "reference"):
        # feature 0 is the dominant one (SF-30); a threshold never reached is null in the JSON (NaN here)
        times = np.array(imbalanced[f"threshold_times_{side}"], dtype=float)
        for j, first in enumerate(times[0]):
            assert np.isfinite(first), (side, j)
            assert all(not np.isfinite(minor[j]) or first < minor[j] for minor in times[1:]), (side, j)
    depth = json.loads((tmp_path / "sparse_depth.json").read_text())["settings"]
    minima = {key: {name: v["risk"] for name, v in setting["minima"].items()} for key, setting in depth.items()}
    assert minima["a"]["pto_flow"] < 0.25 * minima["a"]["gd_flow"]               # SM-C12 (a)
    assert minima["a"]["pto_flow"] < 1.5 * depth["a"]["lasso"]
    assert minima["b"]["pto_flow"] < 0.3 * minima["b"]["gd_flow"]                # SM-C12 (b)
    assert minima["b"]["pto_flow"] > 5 * depth["b"]["lasso"]
    assert minima["c"]["gd_flow"] < minima["c"]["pto_flow"]                      # SM-C12 (c)
    for path in tmp_path.glob("*.npz"):
        with np.load(path) as data:
            assert all(np.all(np.isfinite(data[k])) for k in data.files if data[k].dtype.kind == "f"), path.name


@pytest.mark.slow
def test_every_quick_figure_is_byte_identical_when_made_again(quick_figures, tmp_path):
    """Made a second time, every figure file (PDF, PNG, .npz, JSON) has the same bytes: no dates, no
    dictionary or set order, no unseeded randomness anywhere (the cross-process check is the attn-m one)."""
    first, _ = quick_figures
    make_figures(list(figure_registry()), tmp_path, quick=True)
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in tmp_path.iterdir())
    differing = [name for name in names if (first / name).read_bytes() != (tmp_path / name).read_bytes()]
    assert differing == []
