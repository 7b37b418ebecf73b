"""Cost of the lr atlas (docs/theory/lr_atlas.md, LRA-6): the atlas over 200 rates (one batched all-weights map,
with the tangent map for the Lyapunov exponent, and the final Lanczos sharpness of each rate) against three full
GD runs of the reference at rates of the same range (the run at the smallest, the middle and the largest rate:
each run is t_max / lr steps). Defaults: attn-m C6 (unfrozen), rates 0.05 to 1.

    python -m benchmarks.lr_atlas [--points 200] [--lo 0.05] [--hi 1.0] [--small]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import reduced_dynamics as rd
from reduced_dynamics.errors import DivergenceError
from reduced_dynamics.reference import linear_attention as ref
from reduced_dynamics.theory import lr_atlas


def gd_seconds(spec) -> float:
    cov, params, data = ref.problem(spec)
    model, batch = ref.MergedAttention(spec.kappa), ref.Batch.from_training_set(data)
    start = time.perf_counter()
    try:
        ref.gradient_descent(model, params, batch, spec.lr, spec.gd_steps, progress=False)
    except DivergenceError:
        pass
    return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=200)
    parser.add_argument("--lo", type=float, default=0.05)
    parser.add_argument("--hi", type=float, default=1.0)
    parser.add_argument("--small", action="store_true", help="D = 2, H = 2, P = 200, t = 60 instead of C6")
    args = parser.parse_args(argv)
    spec = rd.spec("attn-m", **(dict(dim=2, heads=2, init_scale=0.1, train_size=200, t_max=60.0) if args.small else {}))
    rates = np.geomspace(args.lo, args.hi, args.points)
    start = time.perf_counter()
    at = lr_atlas.atlas(spec, rates)
    atlas_s = time.perf_counter() - start
    picks = (rates[0], rates[len(rates) // 2], rates[-1])
    gd = [gd_seconds(spec.replace(lr=float(r))) for r in picks]
    print(f"attn-m {'small' if args.small else 'C6'} unfrozen, rates {args.lo:g} to {args.hi:g}:")
    print(f"  atlas over {args.points} rates (max {at.steps.max()} steps, Lyapunov + final sharpness): {atlas_s:.2f} s")
    for r, s in zip(picks, gd):
        print(f"  reference GD at lr {r:.4g} ({spec.replace(lr=float(r)).gd_steps} steps): {s:.2f} s")
    print(f"ratio: atlas / three GD runs (these) {atlas_s / sum(gd):.3f}")
    print(f"ratio: atlas / three GD runs at the smallest rate {atlas_s / (3 * gd[0]):.3f}")


if __name__ == "__main__":
    main()
