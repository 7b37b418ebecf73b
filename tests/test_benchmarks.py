"""`python -m benchmarks` finds every family benchmark by file name and runs the generic sweep scaling last."""
from pathlib import Path

import benchmarks.__main__ as runner

HERE = Path(runner.__file__).resolve().parent


def test_every_benchmark_module_is_run_once_with_the_sweep_last():
    names = runner.names()
    files = sorted(p.stem for p in HERE.glob("*.py") if not p.stem.startswith("_"))
    assert sorted(names) == files and names[-1] == "sweep" and "attn_m" in names
    for name in names:
        source = (HERE / f"{name}.py").read_text()
        assert "\ndef main(argv=None)" in source, f"benchmarks/{name}.py has no main(argv=None)"
