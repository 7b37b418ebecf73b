"""softmax exact finite-N scaling, measured in one run: the whole exact-N ``predict`` (flow to t = 300 on the
default output grid of 301 times, losses and attention at every one, events) for K in {4, 8} and
N in {30, 100, 300, 640}, balanced p and a random p (Dirichlet(1), seed 0); one right-hand side; and the count
enumeration (SF-19a, the former evaluator, now the test oracle) where it fits, with the ratio and the agreement
of the two curves.

    python -m benchmarks.softmax_scaling [--repeat 3] [--oracle-sizes 4:30,4:50,8:10]
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np

from benchmarks._table import best_of
from reduced_dynamics.specs import SoftmaxFeaturesSpec
from reduced_dynamics.theory.softmax import features as theory
from reduced_dynamics.theory.softmax.exact import CountEnumeration, LaplaceQuadrature

SIZES = [(K, N) for K in (4, 8) for N in (30, 100, 300, 640)]


def random_p(K: int) -> tuple[float, ...]:
    p = np.random.default_rng(0).dirichlet(np.ones(K))
    return tuple(p / p.sum())


def count_rhs(spec: SoftmaxFeaturesSpec) -> int:
    """Right-hand-side evaluations of the guarded DOP853 for the exact-N flow to t_max (rtol 1e-8, atol 1e-10)."""
    K = spec.features
    fast = LaplaceQuadrature(spec.p, spec.context, spec.include_query_token)
    calls = [0]

    def rhs(y):
        calls[0] += 1
        return fast.flow_rhs(y.reshape(K, K)).ravel()

    theory._integrate(rhs, np.zeros(K * K), theory.output_grid(spec), 1e-8, 1e-10, "count")
    return calls[0]


def enumerated_curve(spec: SoftmaxFeaturesSpec):
    """What ``predict`` computed before the quadrature: the flow and the observation by enumeration (SF-19a)."""
    t = theory.output_grid(spec)
    flow = theory.exact_flow(spec.p, spec.context, t, include_query_token=spec.include_query_token, observe=False,
                             method="enumeration")
    loss_k, attention = theory.observe_states(CountEnumeration(spec.p, spec.context, spec.include_query_token),
                                              flow.M)
    return flow.M, loss_k @ np.asarray(spec.p), attention


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--oracle-sizes", default="4:30,4:50,8:10",
                        help="K:N pairs for which the enumeration curve is also timed (seconds to minutes each)")
    args = parser.parse_args(argv)

    print("exact finite-N predict to t = 300 (301 output times), Laplace quadrature")
    print(f"{'K':>3} {'N':>5} {'count vectors':>14} {'balanced s':>11} {'random p s':>11} {'RHS calls':>10} "
          f"{'ms / RHS':>9} {'final loss (bal.)':>18}")
    seconds = {}
    for K, N in SIZES:
        row = {}
        for name, p in (("balanced", (1.0 / K,) * K), ("random", random_p(K))):
            spec = SoftmaxFeaturesSpec(features=K, dim=K, context=N, probabilities=p)
            theory.predict(spec)                                   # first call pays imports / allocations
            row[name] = best_of(args.repeat, lambda: theory.predict(spec))
        spec = SoftmaxFeaturesSpec(features=K, dim=K, context=N)
        fast = LaplaceQuadrature(spec.p, N)
        M = np.random.default_rng(1).normal(size=(K, K))
        per_rhs = best_of(args.repeat * 20, lambda: fast.flow_rhs(M))
        seconds[(K, N)] = row["balanced"]
        print(f"{K:>3} {N:>5} {math.comb(N + K - 1, K - 1):>14,} {row['balanced']:>11.3f} {row['random']:>11.3f} "
              f"{count_rhs(spec):>10} {1e3 * per_rhs:>9.3f} {float(theory.predict(spec).loss[-1]):>18.10f}")

    print("\ncount enumeration (SF-19a) on the same spec, balanced: the curve, ratio, agreement")
    print(f"{'K':>3} {'N':>5} {'enumeration s':>14} {'quadrature s':>13} {'ratio':>8} {'max |dM|':>10} "
          f"{'max rel d loss':>15} {'max |d attention|':>18}")
    for pair in filter(None, args.oracle_sizes.split(",")):
        K, N = (int(x) for x in pair.split(":"))
        spec = SoftmaxFeaturesSpec(features=K, dim=K, context=N)
        quad = seconds.get((K, N)) or best_of(args.repeat, lambda: theory.predict(spec))
        start = time.perf_counter()
        M, loss, attention = enumerated_curve(spec)
        enum = time.perf_counter() - start
        traj = theory.predict(spec)
        print(f"{K:>3} {N:>5} {enum:>14.2f} {quad:>13.3f} {enum / quad:>8.0f} "
              f"{np.abs(traj.observables['M'] - M).max():>10.1e} {np.max(np.abs(traj.loss - loss) / loss):>15.1e} "
              f"{np.abs(traj.observables['attention'] - attention).max():>18.1e}")


if __name__ == "__main__":
    main()
