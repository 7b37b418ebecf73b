"""attn-s speed table, measured in one run: cold derive + compile of the index route, cache hit, warm theory
curve (population flow), the integration alone, reference gradient descent on the full model to the same
final time, and their ratios. Sizes: D = 8, H = 9 (the rank sweep of §7.6), c = N = 31, the code's
initialisation with sigma = 0.01, lr 0.02, seed 0, t = 500 (the first two drops of the rank sweep).

    python -m benchmarks.attn_s [--repeat 3] [--ranks 1,2] [--train-size 2000] [--full-route]

``--full-route`` also times the all-symbolic route (B = sum v_i K_i^T Q_i substituted into the loss and
differentiated over all H (2RD + 1) symbols) at D = 4, H = 5, R = 1, which the index route replaces.
Set OMP_NUM_THREADS=1 on a shared machine: threaded BLAS spin-waits dominate the small GD products.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks._table import best_of, print_speed_table
from reduced_dynamics.derivations import linear_separate as derivation
from reduced_dynamics import compile as compiler
from reduced_dynamics.compile import compile_system
from reduced_dynamics.reference.linear_attention import simulate_separate
from reduced_dynamics.specs import LinearSeparateSpec
from reduced_dynamics.theory.linear_attention import separate as theory
from reduced_dynamics.theory.linear_attention.flow import HEAD_POLYNOMIALS


def rows(spec: LinearSeparateSpec, repeat: int, full_route: bool) -> dict[str, float]:
    out = {}
    sizes = {"D": spec.dim, "R": spec.rank, "moments": "population"}
    with tempfile.TemporaryDirectory() as folder:
        cache = Path(folder)
        start = time.perf_counter()
        compile_system(derivation, "index_system", sizes, cache, HEAD_POLYNOMIALS)
        out["cold derive + compile (index route, population)"] = time.perf_counter() - start

        def from_disk():
            compiler._LOADED.clear()          # forget this process's loaded systems: read, check, compile
            compile_system(derivation, "index_system", sizes, cache, HEAD_POLYNOMIALS)
        out["cache hit"] = best_of(repeat, from_disk)
        theory.predict(spec, cache_dir=cache)
        out["warm theory curve (population flow, to t_max)"] = best_of(
            repeat, lambda: theory.predict(spec, cache_dir=cache))
        flow, y0, _ = theory.setup(spec, cache_dir=cache)
        out["  of which: integration alone (compiled DOP853)"] = best_of(
            repeat, lambda: flow.solve(y0, spec.final_time))
        out["  the same integration through solve_ivp (DOP853)"] = best_of(
            1, lambda: flow.solve(y0, spec.final_time, method="DOP853"))
        if full_route:
            start = time.perf_counter()
            compile_system(derivation, "full_system", {"D": 4, "H": 5, "R": 1, "moments": "population"}, cache)
            out["cold derive + compile (full symbolic route, D=4 H=5 R=1)"] = time.perf_counter() - start
    out[f"reference GD, P = {spec.sample_size}, {spec.gd_steps} steps"] = best_of(
        1, lambda: simulate_separate(spec, progress=False))
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ranks", default="1,2")
    parser.add_argument("--train-size", type=int, default=2000)
    parser.add_argument("--full-route", action="store_true")
    args = parser.parse_args(argv)
    for rank in (int(r) for r in args.ranks.split(",")):
        spec = LinearSeparateSpec(dim=8, heads=9, rank=rank, seed=0, t_max=500.0, train_size=args.train_size)
        table = rows(spec, args.repeat, args.full_route)
        print_speed_table(f"attn-s D={spec.dim}, H={spec.heads}, R={rank}, N={spec.context}, "
                          f"t = {spec.final_time:g}", table)

if __name__ == "__main__":
    main()
