"""A sweep killed part way (SIGKILL to the whole process group of a running `reduced-dynamics sweep`, its
worker included) and rerun completes with every point exactly once."""
import os
import signal
import subprocess
import sys
import time

from reduced_dynamics import sweep
from reduced_dynamics.specs import LinearMergedSpec

from test_sweep import Synchronous


def test_a_sweep_killed_part_way_is_completed_by_the_rerun_with_every_point_once(tmp_path):
    """Kill the sweep after a few points are on disk, then rerun the same sweep: only the missing points
    run, and the table has each point once."""
    grid = {"init_scale": [10.0 ** -k for k in range(1, 9)], "seed": [0, 1, 2]}         # 24 points at D = 4
    # t = 100: every point drops (at t = 40 the smallest scales have not, and have no drop time)
    argv = [sys.executable, "-m", "reduced_dynamics", "sweep", "attn-m", "--grid", "init-scale="
            + ",".join(map(repr, grid["init_scale"])), "--grid", "seed=0,1,2", "--measure", "drop_time",
            "--t-max", "100", "--workers", "1", "--no-progress", "--out", str(tmp_path)]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    points = tmp_path / "points"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(points.glob("*.json"))) < 3 and process.poll() is None:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done_before = {p.stem for p in points.glob("*.json")}
    assert 3 <= len(done_before) < 24, "the sweep was not interrupted part way"
    assert not (tmp_path / "sweep.csv").exists()

    executor = Synchronous()
    result = sweep.run_sweep("attn-m", grid, ["drop_time"], tmp_path, fixed={"t_max": 100.0}, executor=executor)
    planned = sweep.plan("attn-m", grid, {"t_max": 100.0}, "theory")
    ran = [sweep.Point(LinearMergedSpec.from_dict(fields), side).key for _, fields, side in executor.submitted]
    assert sorted(ran) == sorted({p.key for p in planned} - done_before)     # only the missing points ran
    assert sorted(result.skipped) == sorted(done_before) and not result.failed
    rows = sweep.read_table(tmp_path / "sweep.csv")
    assert [r["point"] for r in rows] == [p.key for p in planned]          # each point once, in grid order
    assert len(list(points.glob("*.json"))) == 24 and len(list(points.glob("*.npz"))) == 24
    assert not list(points.glob(".*.tmp"))
    for point in planned:
        assert sweep.read_point(tmp_path, point) is not None
    times = {(float(r["init_scale"]), r["seed"]): float(r["drop_time"]) for r in rows}
    for seed in "012":       # smaller initial weights escape the saddle later
        series = [times[(s, seed)] for s in grid["init_scale"]]
        assert all(a < b for a, b in zip(series, series[1:]))
