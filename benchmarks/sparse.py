"""sparse speed and accuracy table, measured in one run: the risk-against-depth curve of the PtO flow (SM-30)
on a depth grid, computed three ways for the same prompts:

* closed form (eigh of B = R S R, all depths at once; what `predict sparse` uses),
* the integrator (solve_ivp, Radau with the exact Jacobian, rtol 1e-11; a cross-check only),
* explicit PtO steps (SM-27) with a small step eta, at tau = eta * T (first-order discretisation error).

    python -m benchmarks.sparse [--prompts 200] [--repeat 3]

Default setting (a) of SM-C12 (d = 32, n = 64), 9 depths 0.25 .. 64. Then the reference's two inner
operations at the `compare sparse` defaults: one training step's loss and hand-written gradient (batch 512;
`compare sparse` takes 10,000 of them) and one exact risk evaluation on the 4000 evaluation prompts (51 of them).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from reduced_dynamics.reference import sparse_multihead as ref
from reduced_dynamics.specs import SparseSpec
from reduced_dynamics.tasks.sparse_regression import NOTE_SETTINGS, draw, excess_risk, sample_prompts
from reduced_dynamics.theory.sparse import algorithms as alg
from reduced_dynamics.theory.sparse.risk import Sample


def best_of(repeat: int, action):
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - start)
    return min(times), result


def explicit_steps(sample: Sample, taus: np.ndarray, eta: float) -> np.ndarray:
    """PtO steps (SM-27) with step eta, recording w at the step counts closest to tau / eta."""
    R2 = alg.pto_scale(sample.r, "none") ** 2
    targets = np.rint(taus / eta).astype(int)
    w = np.zeros_like(sample.r)
    out = []
    for t in range(targets.max() + 1):
        if t in targets:
            out.append(w.copy())
        w = w + eta * R2 * (sample.r - np.einsum("bij,bj->bi", sample.S, w))
    return np.stack(out)


def rows(prompts: int, repeat: int) -> list[tuple[str, float, float]]:
    spec = NOTE_SETTINGS["a"]
    sample = Sample.of(sample_prompts(spec, prompts, np.random.default_rng(0)))
    taus = np.geomspace(0.25, 64.0, 9)
    w = sample.prompts.w[None]
    t_closed, closed = best_of(repeat, lambda: alg.pto_flow(sample.S, sample.r, taus))
    t_ivp, ivp = best_of(1, lambda: alg.pto_flow_ivp(sample.S, sample.r, taus))
    out = [("closed form (eigh), all depths", t_closed, 0.0),
           ("solve_ivp (Radau, rtol 1e-11)", t_ivp,
            float(np.max(np.abs(excess_risk(ivp, w) - excess_risk(closed, w)).mean(axis=1))))]
    for eta in (0.05, 0.01):
        t_steps, steps = best_of(1, lambda: explicit_steps(sample, taus, eta))
        out.append((f"explicit steps, eta = {eta}", t_steps,
                    float(np.max(np.abs(excess_risk(steps, w).mean(axis=1) - excess_risk(closed, w).mean(axis=1))))))
    return out


def reference_rows(repeat: int) -> list[tuple[str, float]]:
    """Best-of-``repeat`` means over 20 calls of loss_and_grad and 3 of risk at the defaults (initial weights)."""
    spec = SparseSpec()
    problem = draw(spec)
    params = ref.Params(*problem.init, spec.dim, spec.scratch)
    batch = sample_prompts(spec, spec.batch, np.random.default_rng(0))
    evaluation = sample_prompts(spec, ref.EVAL_PROMPTS, problem.evaluation)
    t_step, _ = best_of(repeat, lambda: [ref.loss_and_grad(params, batch) for _ in range(20)])
    t_risk, _ = best_of(repeat, lambda: [ref.risk(params, evaluation) for _ in range(3)])
    return [(f"loss_and_grad, batch {spec.batch}", t_step / 20), (f"risk, {ref.EVAL_PROMPTS} prompts", t_risk / 3)]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with threadpool_limits(limits=1, user_api="blas"):
        table = rows(args.prompts, args.repeat)
    base = table[0][1]
    print(f"PtO-flow risk curve, setting (a), {args.prompts} prompts, 9 depths")
    print(f"{'route':<34} {'seconds':>9} {'x closed form':>14} {'max |risk gap|':>15}")
    for name, seconds, gap in table:
        print(f"{name:<34} {seconds:>9.4f} {seconds / base:>14.1f} {gap:>15.2e}")
    with threadpool_limits(limits=1, user_api="blas"):
        reference = reference_rows(args.repeat)
    print("reference (compare sparse defaults: d = 8, n = 24, L = 3, h = 4, D = 9)")
    for name, seconds in reference:
        print(f"{name:<34} {1e3 * seconds:>9.2f} ms")


if __name__ == "__main__":
    main()
