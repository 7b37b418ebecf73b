"""What a new user meets first (issue 20, point 9): the README's pointers, the help text, a closed pipe, a
progress bar in a log, the comparison JSON's resolved sizes and the integrator's advice."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

import reduced_dynamics as rd
from reduced_dynamics.cli import figure_registry
from reduced_dynamics.integrate.common import budget_message

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_points_at_pages_that_exist_and_counts_the_figures():
    readme = (ROOT / "README.md").read_text()
    assert "../shared/theory" not in readme and (ROOT / "docs" / "theory" / "index.md").exists()
    counts = [int(n) for n in re.findall(r"there are (\d+) figures", readme)]
    own = [name for name, path in figure_registry().items() if path.startswith("reduced_dynamics.")]
    assert counts == [len(own)]             # the package's own (an installed plug-in family adds its figures)


def test_help_states_each_default_once():
    out = subprocess.run([sys.executable, "-m", "reduced_dynamics", "predict", "attn-m", "--help"],
                         capture_output=True, text=True).stdout
    text = " ".join(out.split())
    steps = text[text.rindex("--steps STEPS"):text.rindex("--t-max T_MAX")]
    assert steps.count("default:") == 1 and "(default: t_max / lr)" in steps, steps


def test_a_closed_pipe_ends_quietly():
    """`figures --list | head -1` ended in a BrokenPipeError traceback."""
    run = subprocess.run(f"{sys.executable} -m reduced_dynamics figures --list | head -1", shell=True,
                         capture_output=True, text=True)
    assert run.stdout.count("\n") == 1 and run.stderr == ""


@pytest.mark.slow
def test_no_progress_bar_is_drawn_into_a_file(tmp_path):
    """A bar redrawn into a non-terminal stderr (a log) was 100 KB of noise."""
    with open(tmp_path / "log", "w") as log:
        subprocess.run([sys.executable, "-m", "reduced_dynamics", "simulate", "attn-m", "--dim", "2", "--heads", "2",
                        "--train-size", "50", "--steps", "2500", "--lr", "0.001", "--out-dir", str(tmp_path)],
                       stderr=log, stdout=subprocess.DEVNULL, check=True)
    text = (tmp_path / "log").read_text()
    assert "%|" not in text and "\r" not in text


@pytest.mark.slow
def test_the_comparison_json_records_the_sizes_it_used():
    report = rd.run_comparison(rd.spec("attn-m", dim=2, heads=2, lr=0.05, t_max=2.0))
    data = report.to_dict()
    assert data["spec"]["train_size"] is None and data["spec"]["steps"] is None
    assert data["resolved"] == {"train_size": 20000, "steps": 40, "t_max": 2.0}


def test_integrator_advice_names_real_flags():
    message = budget_message(100, 1.0, 10.0)
    assert "--integrator stiff" in message and "Radau" not in message and "max_evals" not in message
