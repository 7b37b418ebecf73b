"""How the linear-attention theory scales with the token dimension D (issue 16): for attn-m and attn-s
(R = 1, 2) at D in {2, 4, 8, 16, 32}, one table per family with fitted growth exponents, measured in one run.

    python -m benchmarks.scaling [--dims 2,4,8,16,32] [--repeat 3] [--gd-steps 5] [--staircase 8,12,16]

Columns (seconds unless stated):
  cold       derive + compile the index-form system (population and sample moments, a fresh cache folder)
  hit        the same from the disk cache in a fresh process (this process's loaded systems forgotten)
  RHS us     one compiled right-hand-side evaluation (timed in a compiled loop; population moments)
  warm       the whole ``predict(spec)`` (population flow, default output grid of 1400 times, observables);
             attn-m to twice the drop time of (LA-28), attn-s to t = 200 (the default spec with D varied)
  nfev       right-hand-side evaluations of that warm curve
  GD step    one step of the reference gradient descent on the full model, P = 2000 sequences
Exponents: least-squares slope of log(time) against log(D) over D >= 8 (the asymptotic regime).

``--staircase`` adds the attn-s full staircase (H = D + 1, R = 1, seed 0, population, to the time by which all D
components are learned or t = 4e5), integrated by compiled DOP853 (the reference) and by the "stiff" route
(LSODA with the compiled Jacobian), with the drop times of both.
Set OMP_NUM_THREADS=1 on a shared machine.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from numba import njit

from benchmarks._table import best_of
from reduced_dynamics.derivations import linear_merged, linear_separate
from reduced_dynamics import compile as compiler
from reduced_dynamics.events import staircase
from reduced_dynamics.integrate import compiled
from reduced_dynamics.reference.linear_attention import simulate_merged, simulate_separate
from reduced_dynamics.specs import LinearMergedSpec, LinearSeparateSpec
from reduced_dynamics.theory.linear_attention import merged, separate
from reduced_dynamics.theory.linear_attention.flow import HEAD_POLYNOMIALS

COLUMNS = ("cold", "hit", "RHS us", "warm", "nfev", "GD step")
STAIRCASE_T = {4: 3000.0, 6: 20000.0, 8: 60000.0, 12: 150000.0, 16: 400000.0}


def family_spec(family: str, D: int):
    if family == "attn-m":
        spec = LinearMergedSpec(dim=D, heads=8)
        return spec.replace(t_max=round(2 * merged.logistic_course(spec).drop_time, 3))
    rank = 1 if family == "attn-s R=1" else 2
    return LinearSeparateSpec(dim=D, rank=min(rank, D), t_max=200.0)


def build(family: str, D: int, cache: Path, kind: str):
    if family == "attn-m":
        return compiler.compile_system(linear_merged, "index_system", {"D": D, "moments": kind}, cache, HEAD_POLYNOMIALS)
    rank = 1 if family == "attn-s R=1" else 2
    return compiler.compile_system(linear_separate, "index_system", {"D": D, "R": min(rank, D), "moments": kind},
                                   cache, HEAD_POLYNOMIALS)


@njit(cache=True)
def _repeat_rhs(y, packed, dy, Z, Bh, calls):
    for _ in range(calls):
        compiled.flow_rhs(y, packed, dy, Z, Bh)


def rhs_microseconds(flow, y0, repeat: int) -> float:
    """One compiled right-hand-side evaluation, timed inside machine code (no Python call overhead)."""
    hf = flow.head_flow
    D2 = hf.G0.size
    work = (np.empty(y0.size), np.empty((hf.n + D2 + 1, hf.heads)), np.empty((D2, hf.heads)))
    _repeat_rhs(y0, hf.packed, *work, 1)
    calls = max(20, int(2e6 / y0.size))
    return 1e6 * best_of(repeat, lambda: _repeat_rhs(y0, hf.packed, *work, calls)) / calls


def row(family: str, D: int, repeat: int, gd_steps: int) -> dict[str, float]:
    theory = merged if family == "attn-m" else separate
    spec = family_spec(family, D)
    out = {}
    with tempfile.TemporaryDirectory() as folder:
        cache = Path(folder)
        start = time.perf_counter()
        build(family, D, cache, "population")
        build(family, D, cache, "sample")
        out["cold"] = time.perf_counter() - start

        def from_disk():
            compiler._LOADED.clear()
            build(family, D, cache, "population")
        out["hit"] = best_of(repeat, from_disk)
        flow, y0, _ = theory.setup(spec, moments="population", cache_dir=cache)
        out["RHS us"] = rhs_microseconds(flow, y0, repeat)
        curve = theory.predict(spec, moments="population", cache_dir=cache)
        out["warm"] = best_of(repeat, lambda: theory.predict(spec, moments="population", cache_dir=cache))
        out["nfev"] = float(curve.meta["rhs_evaluations"])
    gd_spec = spec.replace(train_size=2000, steps=gd_steps, t_max=None)
    simulate = simulate_merged if family == "attn-m" else simulate_separate
    out["GD step"] = best_of(1, lambda: simulate(gd_spec, progress=False)) / gd_steps
    return out


def exponent(dims, values) -> float:
    dims, values = np.asarray(dims, float), np.asarray(values, float)
    keep = (dims >= 8) & (values > 0)
    if keep.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(dims[keep]), np.log(values[keep]), 1)[0])


def print_table(family: str, dims, rows) -> None:
    print(f"{family}: " + ("H = 8, t = 2 x (LA-28) drop time" if family == "attn-m" else "H = 5, t = 200, c = N = 31"))
    print(f"{'D':>4} " + " ".join(f"{c:>10}" for c in COLUMNS))
    for D, r in zip(dims, rows):
        print(f"{D:>4} " + " ".join(f"{r[c]:>10.4g}" for c in COLUMNS))
    print(f"{'exp':>4} " + " ".join(f"{exponent(dims, [r[c] for r in rows]):>10.2f}" for c in COLUMNS))
    print(flush=True)


def full_staircase(D: int) -> None:
    spec = LinearSeparateSpec(dim=D, heads=D + 1, rank=1, seed=0, t_max=STAIRCASE_T.get(D, 400000.0))
    flow, y0, _ = separate.setup(spec, moments="population")
    ladder = separate.ladder(spec)
    for method in ("compiled", "stiff"):
        flow.solve(y0, min(spec.final_time, 10.0), method=method)        # kernels loaded
        start = time.perf_counter()
        sol = flow.solve(y0, spec.final_time, method=method, max_evals=50_000_000)
        seconds = time.perf_counter() - start
        drops = staircase(sol.t, flow.loss(sol.y), ladder, **separate.STAIRCASE)["drop_times"]
        label = "DOP853 (compiled)" if method == "compiled" else "stiff (LSODA + compiled Jacobian)"
        print(f"  D = {D:>2}, t = {spec.final_time:g}: {label:<36} {seconds:8.2f} s  nfev {sol.nfev:>9}  "
              f"{len(drops)} drops, last at t = {drops[-1] if drops else float('nan'):.6g}", flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", default="2,4,8,16,32")
    parser.add_argument("--families", default="attn-m,attn-s R=1,attn-s R=2")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--gd-steps", type=int, default=5)
    parser.add_argument("--staircase", default="8,12,16")
    args = parser.parse_args(argv)
    dims = [int(d) for d in args.dims.split(",")]
    for family in args.families.split(","):
        rows = []
        for D in dims:
            rows.append(row(family, D, args.repeat, args.gd_steps))
            print(f"  ({family}, D = {D} done)", flush=True)
        print_table(family, dims, rows)
    if args.staircase:
        print("attn-s full staircase (H = D + 1, R = 1, seed 0, population moments)")
        for D in (int(d) for d in args.staircase.split(",")):
            full_staircase(D)


if __name__ == "__main__":
    main()
