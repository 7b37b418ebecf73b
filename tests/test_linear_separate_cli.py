"""attn-s on the command line: the generated flags --rank, --init-rule, --freeze-off-manifold, bad input
(one line naming the parameter, exit code 2) and the staircase keys of ``compare --json``."""
import json

import numpy as np
import pytest

from reduced_dynamics.cli import main

SMALL = ["--dim", "2", "--context", "5", "--heads", "2", "--init-scale", "0.1", "--init-rule", "normal",
         "--output-scale", "paper", "--t-max", "60"]


@pytest.mark.parametrize("argv, parameter", [
    (["predict", "attn-s", "--rank", "0"], "rank"),
    (["predict", "attn-s", "--rank", "-2"], "rank"),
    (["predict", "attn-s", "--rank", "5"], "rank"),            # rank > dim = 4
    (["predict", "attn-s", "--dim", "2", "--rank", "3"], "rank"),
    (["predict", "attn-s", "--rank", "1.5"], "rank"),
    (["predict", "attn-s", "--init-rule", "xavier"], "init_rule"),
    (["predict", "attn-s", "--heads", "0"], "heads"),
    (["simulate", "attn-s", "--train-size", "0"], "train_size"),
])
def test_bad_input_is_one_line_naming_the_parameter(argv, parameter, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"error: {parameter}: expected" in err


def test_compare_json_has_the_staircase_keys(tmp_path, capsys):
    report = tmp_path / "r.json"
    assert main(["compare", "attn-s", *SMALL, "--rank", "1", "--train-size", "200", "--lr", "0.05",
                 "--freeze-off-manifold", "--out-dir", str(tmp_path), "--json", str(report)]) == 0
    keys = json.loads(report.read_text())
    for key in ("plateaus_theory", "plateaus_reference", "ladder", "drop_times_theory", "drop_times_reference"):
        assert isinstance(keys[key], list) and all(isinstance(x, float) for x in keys[key]), key
    assert len(keys["ladder"]) == 3 and keys["ladder"][0] > keys["ladder"][-1]
    assert keys["spec"]["freeze_off_manifold"] is True and keys["spec"]["rank"] == 1
    assert len(keys["drop_times_theory"]) >= 1
    printed = capsys.readouterr().out
    assert "step m" in printed and "ladder" in printed


def test_predict_writes_principal_component_observables(tmp_path, capsys):
    out = tmp_path / "p.npz"
    assert main(["predict", "attn-s", *SMALL, "--rank", "2", "--out", str(out), "--json", str(tmp_path / "p.json")]) == 0
    with np.load(out) as data:
        meta = json.loads(str(data["meta"]))
        assert data["learned"].shape == (data["t"].size, 2) and data["components"].shape == data["t"].shape
        assert data["pcr_test_loss"].shape == data["t"].shape
    assert meta["kind"] == "theory-population" and meta["spec"]["rank"] == 2
    summary = json.loads((tmp_path / "p.json").read_text())
    assert "plateaus" in summary and "drop_times" in summary
