"""The common suite of reduced_dynamics.testing on the plug-in family, and how it is plugged in."""
from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from reduced_dynamics import families
from reduced_dynamics.testing import CHECKS, FamilyCase, Runs

PACKAGE = Path(__file__).resolve().parents[1] / "rd_deep_linear"
SMALL = {"in_dim": 5, "hidden": 2, "out_dim": 4, "singular_values": (2.0, 1.0, 0.5), "init_scale": 0.03,
         "train_size": 32, "lr": 0.005, "t_max": 8.0}
BAD = (({"in_dim": 0}, "in_dim"), ({"hidden": 2.5}, "hidden"), ({"out_dim": "six"}, "out_dim"),
       ({"singular_values": (1.0, 2.0)}, "singular_values"), ({"singular_values": "1,x"}, "singular_values"),
       ({"singular_values": (3, 2, 1, 1, 1, 1, 1)}, "singular_values"), ({"singular_values": ()}, "singular_values"),
       ({"init_scale": -1.0}, "init_scale"), ({"init": "orthogonal"}, "init"), ({"noise": -0.1}, "noise"),
       ({"train_size": 4}, "train_size"), ({"lr": 0}, "lr"), ({"steps": 0}, "steps"),
       ({"t_max": float("inf")}, "t_max"), ({"seed": -1}, "seed"), ({"widht": 3}, "widht"),
       ({"steps": 5, "t_max": 8.0}, "t_max"), ({"lr": 100.0}, "lr"))
CASES = {"aligned": FamilyCase("deep-linear", SMALL, BAD),
         "random": FamilyCase("deep-linear", {**SMALL, "init": "random", "init_scale": 0.1}, BAD)}


@pytest.fixture(scope="module", params=sorted(CASES))
def case_and_runs(request):
    case = CASES[request.param]
    return case, Runs.of(case)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_common_check(check, case_and_runs):
    check(*case_and_runs)


def test_registered_by_entry_point_only():
    points = {ep.name: ep.value for ep in metadata.entry_points(group=families.ENTRY_POINT_GROUP)}
    assert points["deep-linear"] == "rd_deep_linear.face"
    assert "deep-linear" not in families.BUILT_IN and families.paths()["deep-linear"] == "rd_deep_linear.face"


def test_face_is_at_most_60_lines():
    lines = (PACKAGE / "face.py").read_text().splitlines()
    assert len(lines) <= 60, len(lines)


def test_the_walk_through_states_the_line_counts():
    page = PACKAGE.parents[2] / "docs" / "adding-a-family.md"
    if not page.exists():
        pytest.skip("the example is not inside the project's checkout")
    rows = re.findall(r"^\| \w+ \| `rd_deep_linear/([\w/]+\.py)` \| (\d+) \|", page.read_text(), re.M)
    assert len(rows) == 7, rows
    for name, count in rows:
        assert len((PACKAGE / name).read_text().splitlines()) == int(count), (name, count)


def test_reference_does_not_load_the_theory():
    code = ("import sys, rd_deep_linear.reference as r; r.simulate(r.DeepLinearSpec(t_max=0.05), progress=False); "
            "print(sorted(m for m in sys.modules if m.startswith(('rd_deep_linear.theory', "
            "'rd_deep_linear.derivations', 'sympy', 'reduced_dynamics.compile'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_cli_knows_the_plug_in(tmp_path, capsys):
    from reduced_dynamics.cli import main
    assert main(["models"]) == 0 and "rd_deep_linear.face" in capsys.readouterr().out
    assert main(["predict", "deep-linear", "--t-max", "2", "--out-dir", str(tmp_path)]) == 0
    assert (tmp_path / "deep-linear-predict.npz").exists()
    assert main(["simulate", "deep-linear", "--hidden", "0"]) == 2
    assert capsys.readouterr().err.strip().endswith("hidden: expected a positive integer, got 0")
