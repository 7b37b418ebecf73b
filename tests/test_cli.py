"""The command line: generated flags, outputs in open formats, and one-line errors with exit code 2."""
import json
import subprocess
import sys

import numpy as np
import pytest

from reduced_dynamics.cli import main

SMALL = ["--dim", "2", "--context", "5", "--heads", "2", "--init-scale", "0.1", "--t-max", "10"]


@pytest.mark.parametrize("argv, parameter", [
    (["predict", "attn-m", "--dim", "0"], "dim"),
    (["predict", "attn-m", "--dim", "2.5"], "dim"),
    (["predict", "attn-m", "--dim", "four"], "dim"),
    (["predict", "attn-m", "--context", "-3"], "context"),
    (["predict", "attn-m", "--heads", "0"], "heads"),
    (["simulate", "attn-m", "--train-size", "0"], "train_size"),
    (["simulate", "attn-m", "--steps", "1.5"], "steps"),
    (["predict", "attn-m", "--init-scale", "nan"], "init_scale"),
    (["predict", "attn-m", "--lr", "0"], "lr"),
    (["predict", "attn-m", "--t-max", "-1"], "t_max"),
    (["predict", "attn-m", "--eigenvalues", "1,2"], "eigenvalues"),
    (["predict", "attn-m", "--eigenvalues", "1,2,-3,4"], "eigenvalues"),
    (["predict", "attn-m", "--covariance", "diagonal"], "covariance"),
    (["predict", "attn-m", "--output-scale", "half"], "output_scale"),
    (["predict", "attn-q"], "model"),
])
def test_bad_input_is_one_line_naming_the_parameter(argv, parameter, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"error: {parameter}: expected" in err


@pytest.mark.parametrize("argv", [["predict", "attn-m", "--dimension", "3"], ["fly"], ["predict"]])
def test_unknown_flags_and_commands_exit_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("reduced-dynamics: error:")


def test_predict_writes_t_and_loss(tmp_path, capsys):
    out = tmp_path / "p.npz"
    assert main(["predict", "attn-m", *SMALL, "--out", str(out), "--json", str(tmp_path / "p.json"),
                 "--plot", str(tmp_path / "p.png")]) == 0
    with np.load(out) as data:
        assert data["t"].dtype == float and data["loss"].dtype == float
        assert json.loads(str(data["meta"]))["kind"] == "theory-population"
    assert (tmp_path / "p.pdf").exists() and (tmp_path / "p.png").exists()
    assert "drop_time" in json.loads((tmp_path / "p.json").read_text())


def test_compare_json_has_the_documented_keys(tmp_path, capsys):
    report = tmp_path / "r.json"
    assert main(["compare", "attn-m", *SMALL, "--train-size", "300", "--lr", "0.05",
                 "--out-dir", str(tmp_path), "--json", str(report)]) == 0
    keys = json.loads(report.read_text())
    for key in ("drop_time_theory", "drop_time_reference", "final_loss_theory", "final_loss_reference",
                "max_abs_gap"):
        assert isinstance(keys[key], float)
    for suffix in (".json", ".txt", ".npz", ".pdf", ".png"):
        assert (tmp_path / f"attn-m-compare{suffix}").exists()
    printed = capsys.readouterr().out
    assert "drop_time" in printed and str(tmp_path) in printed


def test_boolean_flags_and_python_module_entry(tmp_path):
    result = subprocess.run([sys.executable, "-m", "reduced_dynamics", "simulate", "attn-m", *SMALL,
                             "--train-size", "100", "--freeze-off-manifold", "--out", str(tmp_path / "s.npz")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    with np.load(tmp_path / "s.npz") as data:
        meta = json.loads(str(data["meta"]))
    assert meta["spec"]["freeze_off_manifold"] is True and meta["kind"] == "reference-gd"


def test_max_lr_prints_the_bound_of_the_run(capsys):
    """predict --max-lr prints 2 / lambda_max of the Hessian of the system the run follows (LR-8, LRA-2), the
    number the theory module computes, names that system (all weights unfrozen, the manifold frozen), and a family
    without a reduced GD map is refused by name."""
    import reduced_dynamics as rd
    from reduced_dynamics.theory import lr_atlas
    flags = ["--dim", "2", "--heads", "2", "--context", "5", "--t-max", "20", "--init-scale", "0.1",
             "--train-size", "200"]
    for extra, system in (([], "all weights"), (["--freeze-off-manifold"], "invariant manifold")):
        assert main(["predict", "attn-m", *flags, *extra, "--max-lr"]) == 0
        printed = capsys.readouterr().out
        expected = lr_atlas.run_bound(rd.spec("attn-m", dim=2, heads=2, context=5, t_max=20.0, init_scale=0.1,
                                              train_size=200, freeze_off_manifold=bool(extra)))
        assert f"eta_max = {expected['eta_max']:.6g}" in printed and expected["eta_max"] > 0
        assert f"(the system: {system}" in printed
    assert main(["predict", "sparse", "--max-lr"]) == 2
    assert capsys.readouterr().err.startswith("reduced-dynamics: error: max_lr:")


def test_a_run_of_a_few_steps_is_warned_about():
    """attn-s at --lr 100 (default t = 200) made 2 steps and exited 0 without a word: now a one-line warning."""
    import reduced_dynamics as rd
    spec = rd.spec("attn-m", dim=2, heads=2, train_size=100, lr=1.0, t_max=5.0)
    with pytest.warns(RuntimeWarning, match="5 gradient-descent step.*lower --lr"):
        rd.simulate(spec, progress=False)
