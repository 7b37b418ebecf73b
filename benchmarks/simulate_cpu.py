"""CPU seconds of gradient-descent references, each run in a fresh process (issue 20):

* the Python API against the CLI for one attn-m run (D = 4, H = 8, P = 20000, 800 steps): the API pins BLAS
  to one thread as the CLI does (target: API within 1.2x of the CLI), and, for the record, the API with BLAS
  left on every thread (``blas_threads=None``, what the API did before);
* the default ``simulate attn-s`` (target: within 1.1x of turn 2's, before the §12 test losses were
  evaluated at every step), and the same run with the test losses asked for (``test_size=5000``, what the
  default did before; the curve is identical).

    python -m benchmarks.simulate_cpu [--repeat 1] [--only api|attn-s]

CPU time (user + system, of the child process and its threads) is what a BLAS thread that spin-waits costs,
and it moves less with the machine's load than the wall time; both are printed.
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

API = ("import reduced_dynamics as rd; "
       "rd.simulate(rd.spec('attn-m', dim=4, heads=8, train_size=20000){extra})")
CASES = {
    "api": [
        ("CLI  simulate attn-m --dim 4 --heads 8 --train-size 20000",
         ["-m", "reduced_dynamics", "simulate", "attn-m", "--dim", "4", "--heads", "8", "--train-size", "20000",
          "--out", "{tmp}/m.npz"]),
        ("API  rd.simulate(same spec)", ["-c", API.format(extra="")]),
        ("API  rd.simulate(same spec, blas_threads=None)", ["-c", API.format(extra=", blas_threads=None")]),
    ],
    "attn-s": [
        ("CLI  simulate attn-s (defaults)", ["-m", "reduced_dynamics", "simulate", "attn-s", "--out", "{tmp}/s.npz"]),
        ("API  simulate_separate(default spec, test_size=5000)",
         ["-c", "from reduced_dynamics.reference.linear_attention import simulate_separate as s; "
                "from reduced_dynamics.specs import LinearSeparateSpec as S; "
                "from threadpoolctl import threadpool_limits as t; t(1); s(S(), progress=False, test_size=5000)"]),
    ],
}


def cpu_and_wall(args: list[str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


def main(argv=None) -> None:
    import tempfile
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs of each command (the least CPU is shown)")
    parser.add_argument("--only", choices=sorted(CASES), action="append")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        for group in args.only or sorted(CASES):
            first = None
            for label, command in CASES[group]:
                runs = [cpu_and_wall([part.format(tmp=tmp) for part in command]) for _ in range(args.repeat)]
                cpu, wall = min(runs)
                first = first or cpu
                print(f"{label:60} CPU {cpu:7.2f} s  wall {wall:7.2f} s  CPU / first row {cpu / first:5.2f}",
                      flush=True)


if __name__ == "__main__":
    main()
