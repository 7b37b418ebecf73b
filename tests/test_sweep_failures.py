"""A diverging point never sinks a sweep: it is recorded with its swept values and one-line reason, the other
points finish and are tabulated, on the process pool, a local Dask cluster and a given Dask client; the CLI
ends with exit code 2 and one error line naming the point."""
import concurrent.futures as cf

import pytest

from reduced_dynamics import sweep
from reduced_dynamics.cli import main

# lr = 100 diverges at step 3 (DivergenceError); the other rates train normally. 20 steps: a second a point.
FIXED = {"dim": 2, "heads": 2, "train_size": 200, "steps": 20}
GRID = {"lr": [100.0, 0.05, 0.02, 0.01]}
ARGV = ["sweep", "attn-m", "--side", "reference", "--grid", "lr=100,0.05,0.02,0.01", "--dim", "2", "--heads", "2",
        "--train-size", "200", "--steps", "20", "--measure", "final_loss"]


def check(result):
    assert len(result.computed) == 3 and len(result.failed) == 1
    [line] = result.failures()
    assert line.startswith("lr=100.0 (point ") and "DivergenceError" in line and "lower --lr" in line
    rows = sweep.read_table(result.csv_path)
    assert sorted(float(r["lr"]) for r in rows) == [0.01, 0.02, 0.05]


def check_cli(out, code, capsys):
    assert code == 2
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "1 of 4 points failed: lr=100.0" in errors[0], captured.err
    assert "Traceback" not in captured.err
    assert len(sweep.read_table(out / "sweep.csv")) == 3


def test_the_process_pool_finishes_the_others(tmp_path):
    """(Before: the DivergenceError could not be unpickled, the pool broke and all 4 points failed.)"""
    check(sweep.run_sweep("attn-m", GRID, ["final_loss"], tmp_path, fixed=FIXED, side="reference", workers=2))


def test_a_rerun_retries_only_the_failed_point(tmp_path):
    with cf.ThreadPoolExecutor(2) as pool:
        first = sweep.run_sweep("attn-m", GRID, ["final_loss"], tmp_path, fixed=FIXED, side="reference",
                                executor=pool)
        check(first)
        again = sweep.run_sweep("attn-m", GRID, ["final_loss"], tmp_path, fixed=FIXED, side="reference",
                                executor=pool)
    assert sorted(again.skipped) == sorted(first.computed) and list(again.failed) == list(first.failed)


@pytest.mark.slow
def test_the_cli_on_the_pool_exits_2_with_one_line(tmp_path, capsys):
    check_cli(tmp_path, main([*ARGV, "--out", str(tmp_path)]), capsys)


@pytest.mark.slow
def test_a_local_dask_cluster_and_a_given_client_finish_the_others(tmp_path, capsys):
    pytest.importorskip("distributed")
    check_cli(tmp_path / "cli", main([*ARGV, "--dask", "local", "--out", str(tmp_path / "cli")]), capsys)
    with sweep.dask_client(workers=2) as client:
        check(sweep.run_sweep("attn-m", GRID, ["final_loss"], tmp_path / "client", fixed=FIXED, side="reference",
                              executor=client))
