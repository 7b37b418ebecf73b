"""Sweep scaling, measured in one run: the same attn-m drop-time sweep (theory side, C6 sizes, init_scale x
seed) on a process pool of 1 and of 2 workers and on a local Dask cluster of 2 worker processes, with the
speed-up against one worker and a check that all three give identical numbers.

    python -m benchmarks.sweep [--scales 50] [--seeds 4] [--repeat 2]      (default: 200 points, best of 2)

Each executor is started and warmed (every worker imports the package and evaluates one point) before the
clock starts; the start-up time is reported in its own column. Each sweep writes into a fresh temporary
folder, so nothing is skipped. The load average before and after is printed: the machine may be shared.
CPU time per point is given for the workers (process time of each point, summed over its threads) and for
the driving process (which receives and writes every point; for the local Dask cluster it also hosts the
scheduler): on a busy machine the wall-clock speed-up says more about the other load than about the sweep,
and the CPU columns show whether parallel running adds work. As a control, each executor also runs 100
identical pure-Python CPU tasks just before its sweep: their speed-up is what the machine could give.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from reduced_dynamics import sweep
from reduced_dynamics.specs import LinearMergedSpec
from reduced_dynamics.theory.linear_attention.merged import predict


def grid(scales: int, seeds: int) -> dict[str, list]:
    return {"init_scale": [float(x) for x in np.geomspace(1e-4, 1e-2, scales)], "seed": list(range(seeds))}


def _warm_point(model: str, fields: dict, index: int) -> int:
    time.sleep(0.5)              # long enough that every worker gets one of these tasks (index: distinct
                                 # arguments, or Dask would merge identical calls into one task)
    sweep.evaluate(model, fields, "theory")
    return os.getpid()


CONTROL_TASKS = 100


def _spin(index: int) -> int:
    """A fixed pure-Python CPU task (about 30 ms on an idle core): the control for how much parallelism the machine gives."""
    total = index
    for k in range(400_000):
        total = (total + k * k) % 1_000_003
    return total


def timed_sweep(label: str, make_executor, workers: int, the_grid: dict) -> dict:
    first = sweep.plan("attn-m", the_grid, {}, "theory")[0]
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        with make_executor() as executor:
            pids = {f.result() for f in [executor.submit(_warm_point, "attn-m", first.spec.to_dict(), k)
                                         for k in range(2 * workers)]}
            startup = time.perf_counter() - start
            start = time.perf_counter()
            list(executor.map(_spin, range(CONTROL_TASKS)))
            control = time.perf_counter() - start
            start, cpu = time.perf_counter(), time.process_time()
            # every executor here is local (workers write their points); the same tasks for all of them
            chunk = sweep.chunk_size_for(len(sweep.plan("attn-m", the_grid, {}, "theory")), 2)
            result = sweep.run_sweep("attn-m", the_grid, ["drop_time"], folder, executor=executor, progress=False,
                                     workers_write=True, chunk_size=chunk)
            seconds, driver_cpu = time.perf_counter() - start, time.process_time() - cpu
        rows = sweep.read_table(result.csv_path)
    if result.failed or len(rows) != len(result.points):
        raise RuntimeError(f"{label}: {len(result.failed)} points failed")
    return {"label": label, "workers": workers, "distinct_pids": len(pids), "startup": startup, "seconds": seconds,
            "control": control,
            "points": len(rows), "drop_times": [r["drop_time"] for r in rows],
            "worker_cpu": sum(float(r["cpu_seconds"]) for r in rows) / len(rows), "driver_cpu": driver_cpu / len(rows)}


class _Pool:
    def __init__(self, workers: int):
        self.workers = workers

    def __enter__(self):
        with sweep.blas_pinned_environment():
            self.pool = sweep.process_pool(self.workers)
        return self.pool

    def __exit__(self, *exc):
        self.pool.shutdown()


def run(scales: int, seeds: int, repeat: int) -> list[dict]:
    """Every executor ``repeat`` times, interleaved (so a change in the machine's load hits all alike);
    the fastest sweep of each is kept."""
    the_grid = grid(scales, seeds)
    predict(LinearMergedSpec())          # fill the compile cache once, so workers only load it
    executors = [("process pool, 1 worker", lambda: _Pool(1), 1), ("process pool, 2 workers", lambda: _Pool(2), 2)]
    try:
        import distributed  # noqa: F401
        executors.append(("local Dask cluster, 2 workers", lambda: sweep.dask_executor(workers=2), 2))
    except ImportError:
        print("(distributed not installed: pip install -e '.[dask]' for the Dask row)")
    best: dict[str, dict] = {}
    for _ in range(repeat):
        for label, make, workers in executors:
            row = timed_sweep(label, make, workers, the_grid)
            row["all"] = best.get(label, {}).get("all", []) + [row["seconds"]]
            if label not in best or row["seconds"] < best[label]["seconds"]:
                best[label] = row
            best[label]["all"] = row["all"]
    return [best[label] for label, _, _ in executors]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, default=50, help="init_scale values (log-spaced 1e-4 .. 1e-2)")
    parser.add_argument("--seeds", type=int, default=4, help="seeds per init_scale")
    parser.add_argument("--repeat", type=int, default=2, help="interleaved repetitions; the fastest is kept")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    rows = run(args.scales, args.seeds, args.repeat)
    load_after = os.getloadavg()
    n = rows[0]["points"]
    print(f"attn-m sweep scaling: {n} drop-time points (theory, C6 sizes: D=4, N=31, H=8), "
          f"{os.cpu_count()} CPUs; load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)")
    print(f"{'executor':<32} {'start-up s':>10} {'sweep s':>9} {'points/s':>9} {'speed-up':>9} "
          f"{'worker CPU ms/pt':>17} {'driver CPU ms/pt':>17} {'cores used':>11} {'control speed-up':>17}   all sweeps (s)")
    base, control = rows[0]["seconds"], rows[0]["control"]
    for row in rows:
        print(f"{row['label']:<32} {row['startup']:>10.2f} {row['seconds']:>9.2f} {n / row['seconds']:>9.1f} "
              f"{base / row['seconds']:>8.2f}x {1e3 * row['worker_cpu']:>17.1f} {1e3 * row['driver_cpu']:>17.1f} "
              f"{n * (row['worker_cpu'] + row['driver_cpu']) / row['seconds']:>11.2f} "
              f"{control / row['control']:>16.2f}x   " + " ".join(f"{s:.1f}" for s in row["all"]))
    print("cores used: CPU seconds of the workers and the driver during the sweep / its wall time")
    print(f"control: {CONTROL_TASKS} identical pure-Python CPU tasks on the same executor just before its sweep; "
          f"its speed-up is the parallelism the machine gave at that moment")
    for row in rows[1:]:
        ratio = (base / row["seconds"]) / (control / row["control"])
        print(f"{row['label']}: sweep speed-up / control speed-up = {ratio:.2f}")
    w, d = rows[1]["worker_cpu"], rows[1]["driver_cpu"]
    print(f"estimated ceiling for 2 workers on 2 otherwise idle cores (workers and driver share them): "
          f"2 w / (w + d) = {2 * w / (w + d):.2f}x")
    same = all(row["drop_times"] == rows[0]["drop_times"] for row in rows)
    print(f"identical drop times (every digit) across executors: {'yes' if same else 'NO'}")
    for row in rows:
        if row["distinct_pids"] != row["workers"]:
            print(f"note: {row['label']}: warm-up reached {row['distinct_pids']} of {row['workers']} workers")


if __name__ == "__main__":
    main()
