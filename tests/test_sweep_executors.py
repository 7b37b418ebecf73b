"""Sweeps on real worker processes: the default process pool (BLAS pinned to one thread) and a real local
Dask cluster of two worker processes giving the same numbers."""
import numpy as np
import pytest

from reduced_dynamics import sweep
from reduced_dynamics.cli import main

SMALL = {"dim": 2, "context": 5, "heads": 2, "t_max": 20.0}
GRID = {"init_scale": [0.2, 0.1, 0.05, 0.02], "seed": [0, 1, 2]}


def numbers(result):
    """The table without the per-point wall times."""
    return exact(sweep.read_table(result.csv_path))


def exact(rows):
    return [{k: v for k, v in row.items() if k not in sweep.TIMING_COLUMNS} for row in rows]


@pytest.fixture(scope="module")
def pool_run(tmp_path_factory):
    """The grid on the default executor: a process pool of 2 spawned workers made by run_sweep itself."""
    out = tmp_path_factory.mktemp("pool")
    return out, sweep.run_sweep("attn-m", GRID, ["drop_time", "final_loss"], out, fixed=SMALL, workers=2)


def records(out, result):
    return [sweep.read_point(out, point) for point in result.points]


def test_process_pool_workers_run_blas_on_one_thread(pool_run):
    out, result = pool_run
    assert not result.failed and len(result.computed) == 12
    assert [r["blas_threads"] for r in records(out, result)] == [1] * 12     # threadpoolctl, in each worker


def test_local_dask_cluster_gives_the_same_numbers_as_the_process_pool(pool_run, tmp_path, capsys):
    """A real local Dask cluster (2 worker processes, one thread each), reached through the CLI's
    --scheduler ADDRESS, gives every digit of the process pool's table and the same curves."""
    distributed = pytest.importorskip("distributed")
    pool_out, pool_result = pool_run
    argv = ["sweep", "attn-m", "--grid", "init-scale=" + ",".join(map(str, GRID["init_scale"])),
            "--grid", "seed=" + ",".join(map(str, GRID["seed"])), "--measure", "drop_time,final_loss",
            "--no-progress", "--out", str(tmp_path)]
    argv += [f"--{k.replace('_', '-')}={v}" for k, v in SMALL.items()]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        assert main(argv + ["--scheduler", cluster.scheduler_address]) == 0
    assert "12 computed" in capsys.readouterr().out
    rows = sweep.read_table(tmp_path / "sweep.csv")
    assert exact(rows) == numbers(pool_result)
    for point in pool_result.points:
        a, b = sweep.load_trajectory(pool_out, point), sweep.load_trajectory(tmp_path, point)
        np.testing.assert_array_equal(a.t, b.t)
        np.testing.assert_array_equal(a.loss, b.loss)
    assert [r["blas_threads"] for r in records(tmp_path, pool_result)] == [1] * 12    # Dask's nanny pins them


def test_cli_local_dask_cluster_writes_in_its_workers_and_matches_the_pool(pool_run, tmp_path, capsys):
    """--dask local: the workers see the output folder, write their points in chunks, same numbers."""
    pytest.importorskip("distributed")
    _, pool_result = pool_run
    argv = ["sweep", "attn-m", "--grid", "init-scale=" + ",".join(map(str, GRID["init_scale"])),
            "--grid", "seed=" + ",".join(map(str, GRID["seed"])), "--measure", "drop_time,final_loss",
            "--no-progress", "--dask", "local", "--workers", "2", "--out", str(tmp_path)]
    argv += [f"--{k.replace('_', '-')}={v}" for k, v in SMALL.items()]
    assert main(argv) == 0
    assert "12 computed" in capsys.readouterr().out
    assert exact(sweep.read_table(tmp_path / "sweep.csv")) == numbers(pool_result)
