"""softmax speed table, measured in one run: the K = 8 large-N curve (cold derive + compile, cache hit, warm
curve), the K = 4, N = 50 exact finite-N curve (Laplace quadrature), one evaluation of the exact loss and gradient
by the quadrature and by the enumeration over 23,426 count vectors (SF-19a), full-model gradient descent, and
their ratios. The scaling in K and N is ``benchmarks/softmax_scaling.py``.

    python -m benchmarks.softmax [--repeat 3] [--gd-steps 50]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from reduced_dynamics.derivations import softmax_features as derivation
from reduced_dynamics.compile import compile_system
from reduced_dynamics.reference.softmax_features import simulate
from reduced_dynamics.specs import SoftmaxFeaturesSpec
from benchmarks._table import best_of
from reduced_dynamics.theory.softmax import features as theory
from reduced_dynamics.theory.softmax.exact import CountEnumeration, LaplaceQuadrature


def rows(repeat: int, gd_steps: int) -> list[tuple[str, float]]:
    out = []
    large = SoftmaxFeaturesSpec(features=8, dim=8, limit="large-n", t_max=300.0)
    exact = SoftmaxFeaturesSpec(features=4, dim=4, context=50, dominant=0.6, lr=2.0, steps=200)
    with tempfile.TemporaryDirectory() as folder:
        cache = Path(folder)
        start = time.perf_counter()
        compile_system(derivation, "compiled_large_n", {"n_features": 8}, cache)
        out.append(("cold derive + compile, large-N K = 8 (64 ODEs)", time.perf_counter() - start))
        out.append(("cache hit, large-N K = 8", best_of(repeat, lambda: compile_system(
            derivation, "compiled_large_n", {"n_features": 8}, cache))))
        theory.predict(large, cache_dir=cache)
        out.append(("warm large-N curve K = 8 to t = 300", best_of(repeat, lambda: theory.predict(large, cache_dir=cache))))
    out.append(("exact-N curve K = 4, N = 50 to t = 400 (with attention)",
                best_of(repeat, lambda: theory.predict(exact))))
    enum = CountEnumeration(exact.p, exact.context)
    M = np.random.default_rng(0).normal(size=(4, 4))
    out.append(("one exact loss + gradient, K = 4, N = 50, enumeration", best_of(repeat * 5, lambda: enum.evaluate(M))))
    fast = LaplaceQuadrature(exact.p, exact.context)
    out.append(("one exact loss + gradient, K = 4, N = 50, quadrature", best_of(repeat * 20, lambda: fast.evaluate(M))))
    gd = exact.replace(steps=gd_steps, t_max=None)
    seconds = best_of(1, lambda: simulate(gd, progress=False))
    out.append((f"reference GD, K = 4, N = 50, B = 4000: {gd_steps} steps", seconds))
    out.append(("reference GD per step (incl. 10,000 x 4 evaluation prompts)", seconds / gd_steps))
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--gd-steps", type=int, default=50)
    args = parser.parse_args(argv)
    table = dict(rows(args.repeat, args.gd_steps))
    print(f"{'softmax measurement':<64} {'seconds':>10}")
    for name, seconds in table.items():
        print(f"{name:<64} {seconds:>10.4f}")
    per_step = table["reference GD per step (incl. 10,000 x 4 evaluation prompts)"]
    exact = table["exact-N curve K = 4, N = 50 to t = 400 (with attention)"]
    print(f"{'ratio: GD to t = 400 (200 steps, estimated) / exact-N curve':<64} {200 * per_step / exact:>10.1f}")
    print(f"{'ratio: exact-N curve / warm large-N K = 8 curve':<64} "
          f"{exact / table['warm large-N curve K = 8 to t = 300']:>10.1f}")
    print(f"{'ratio: cold build / cache hit (K = 8)':<64} "
          f"{table['cold derive + compile, large-N K = 8 (64 ODEs)'] / table['cache hit, large-N K = 8']:>10.0f}")


if __name__ == "__main__":
    main()
