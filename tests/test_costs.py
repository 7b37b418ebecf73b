"""Costs before work (issue 20): every size flag is in the estimate and a refusal names the flag to change;
the time budget parses as a finite positive number or is refused; a huge grid is refused before planning;
an echoed value is cut to 200 characters."""
import pytest

from reduced_dynamics.cli import main
from reduced_dynamics.costs import time_budget

REFUSED = [
    (["simulate", "attn-m", "--heads", "1e7", "--steps", "1"], "lower --heads"),     # was a MemoryError after 46 s
    (["simulate", "attn-m", "--context", "1e8"], "--context (N = 1e+08)"),
    (["simulate", "softmax", "--eval-prompts", "1e9"], "lower --eval-prompts"),
    (["simulate", "softmax", "--batch", "1e9"], "lower --batch"),
    (["simulate", "attn-m", "--lr", "1e-300"], "raise --lr"),
    (["simulate", "attn-m", "--lr", "1e-6"], "raise --lr"),
    (["predict", "attn-m", "--heads", "1e9"], "lower --heads"),
    (["predict", "softmax", "--features", "200", "--dim", "200"], "lower --features"),
    (["simulate", "sparse", "--steps", "1e9"], "lower --steps"),
    (["simulate", "sparse", "--dim", "1e6"], "lower --dim"),
    (["predict", "sparse", "--test-prompts", "1e9"], "lower --test-prompts"),
    (["sweep", "attn-m", "--side", "reference", "--grid", "seed=" + ",".join(map(str, range(400))),
      "--measure", "drop_time"], "sweep fewer points (--grid: 400 points)"),
]


@pytest.mark.parametrize("argv, flag", REFUSED, ids=[" ".join(a)[:60] for a, _ in REFUSED])
def test_a_refusal_names_the_flag_to_change(argv, flag, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and flag in err and "reduce the sizes" not in err, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "-5", "0", "ten", ""])
def test_a_budget_that_is_not_a_finite_positive_number_is_refused(text, monkeypatch, capsys):
    monkeypatch.setenv("REDUCED_DYNAMICS_TIME_BUDGET", text)
    assert main(["simulate", "attn-m", "--lr", "1e-6"]) == 2         # nan used to switch the check off
    assert "REDUCED_DYNAMICS_TIME_BUDGET: expected a finite positive number" in capsys.readouterr().err


def test_a_budget_is_read_and_applied(monkeypatch):
    monkeypatch.setenv("REDUCED_DYNAMICS_TIME_BUDGET", "1e9")
    assert time_budget() == 1e9
    monkeypatch.delenv("REDUCED_DYNAMICS_TIME_BUDGET")
    assert time_budget() == 600.0


def test_a_grid_of_a_million_points_is_refused_before_planning(capsys, tmp_path):
    values = ",".join(str(k) for k in range(1000))
    assert main(["sweep", "attn-m", "--grid", f"seed={values}", "--grid", f"context={','.join(str(k + 1) for k in range(1000))}",
                 "--measure", "drop_time", "--out", str(tmp_path / "s")]) == 2
    assert "grid: 1e+06 points" in capsys.readouterr().err


def test_an_echoed_value_is_cut_to_200_characters(capsys):
    """(One error line had been 169 KB, echoing a 20000-item list.)"""
    assert main(["predict", "attn-m", "--eigenvalues", ",".join(["0.1"] * 20000)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) < 600 and "characters)" in err


def test_the_sgd_band_is_estimated_before_it_allocates(capsys):
    """predict attn-m --batch-size with 1e7 paths needed a 60 GB (steps x paths) array and ended in a
    MemoryError traceback; now it is refused from the estimate, naming --paths."""
    assert main(["predict", "attn-m", "--batch-size", "64", "--paths", "10000000"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "lower --paths" in err and "Traceback" not in err
