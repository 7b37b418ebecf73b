"""The compiled path for derived flows against the SciPy path on the same flows, measured side by side in one
run: each flow integrated by ``integrate(DerivedFlow, method="compiled")`` (the register-machine kernel in the
DOP853 kernel) and by SciPy's DOP853 on the emitted NumPy right-hand side (``DerivedFlow.python_rhs``), same
tolerances, same output grid; the ratio SciPy / compiled and the largest difference of the two solutions.

    python -m benchmarks.derived [--repeat 5]
"""
from __future__ import annotations

import argparse

import numpy as np

from benchmarks._table import best_of
from reduced_dynamics.integrate import DerivedFlow, integrate
from reduced_dynamics.theory.softmax.features import large_n_system
from reduced_dynamics.theory.sparse.restricted_flow import system as restricted_system


def flows() -> list[tuple[str, DerivedFlow, np.ndarray, float]]:
    """(label, flow, y0, t_max) for each derived flow that runs on the compiled path."""
    out = []
    for K in (4, 8):
        p = np.linspace(2.0, 1.0, K) / np.linspace(2.0, 1.0, K).sum()
        out.append((f"softmax large-N flow (SF-21), K = {K} ({K * K} ODEs), t = 300",
                    DerivedFlow.of(large_n_system(K), "rhs", p), np.zeros(K * K), 300.0))
    out.append(("sparse restricted flow (SM-38), 4 ODEs, t = 50",
                DerivedFlow.of(restricted_system(), "rhs", (3.0, 15.0)), np.array([0.1, 0.1, 0.1, 0.1]), 50.0))
    try:
        from rd_deep_linear import theory as deep, task
        from rd_deep_linear.spec import DeepLinearSpec
    except ImportError:       # the example package is not installed: pip install -e examples/deep_linear
        return out
    spec = DeepLinearSpec()
    problem = task.draw(spec)
    C, q = problem.sigma_yx.ravel(), np.array([0.5 * np.sum(problem.s ** 2)])
    flow = DerivedFlow.of(deep.matrix_system(spec), "rhs", C, q)
    out.append((f"deep-linear full-matrix flow (DL-5), {flow.size} ODEs, t = {spec.final_time:g}", flow,
                np.concatenate([problem.W1.ravel(), problem.W2.ravel()]), float(spec.final_time)))
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"{'derived flow':<62} {'compiled s':>11} {'SciPy s':>9} {'ratio':>7} {'max |diff|':>11}")
    for label, flow, y0, t_max in flows():
        options = dict(t_eval=np.linspace(0.0, t_max, 301), rtol=1e-10, atol=1e-12)
        fast = integrate(flow, y0, t_max, method="compiled", **options)          # warm (Numba cache, emitter)
        slow = integrate(flow.python_rhs, y0, t_max, **options)
        compiled = best_of(args.repeat, lambda: integrate(flow, y0, t_max, method="compiled", **options))
        scipy = best_of(args.repeat, lambda: integrate(flow.python_rhs, y0, t_max, **options))
        print(f"{label:<62} {compiled:>11.5f} {scipy:>9.4f} {scipy / compiled:>7.1f} "
              f"{np.max(np.abs(fast.y - slow.y)):>11.1e}")


if __name__ == "__main__":
    main()
