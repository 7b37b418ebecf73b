"""`python -m benchmarks` finds every family benchmark by file name and runs the generic sweep scaling last."""
from pathlib import Path

import pytest

import benchmarks.__main__ as runner

HERE = Path(runner.__file__).resolve().parent


def test_every_benchmark_module_is_run_once_with_the_sweep_last():
    names = runner.names()
    files = sorted(p.stem for p in HERE.glob("*.py") if not p.stem.startswith("_"))
    assert sorted(names) == files and names[-1] == "sweep" and "attn_m" in names
    for name in names:
        source = (HERE / f"{name}.py").read_text()
        assert "\ndef main(argv=None)" in source, f"benchmarks/{name}.py has no main(argv=None)"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["attn_m", "attn_s"])
def test_the_linear_attention_benchmarks_run(name, capsys):
    """They had referred to a name that moved (HEAD_POLYNOMIALS now lives in theory.linear_attention.flow) and
    failed at once; nothing ran them."""
    import importlib
    importlib.import_module(f"benchmarks.{name}").main(["--repeat", "1"])
    ratios = [float(line.split()[-1]) for line in capsys.readouterr().out.splitlines()
              if line.startswith("ratio: reference GD / warm theory curve")]
    assert ratios and all(r > 1 for r in ratios)        # the theory curve is faster than the GD it predicts
