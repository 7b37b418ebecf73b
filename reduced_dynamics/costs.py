"""Costs before work: what a run will allocate and roughly how long it will take, from the validated spec.

A family's ``estimate(spec, verb)`` hook (contract rule 16) returns an ``Estimate``; ``enforce`` refuses a
run whose memory exceeds what the machine has free (``CostError`` with the estimate, before anything is
allocated) and, where asked (the CLI), one whose expected time exceeds the budget unless the user confirms
(``--yes``). The figures are order-of-magnitude: the memory of the largest arrays, and the time from the
operation counts times a per-operation cost measured on this project's 2-core machine (stated below).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from .errors import CostError

def time_budget() -> float:
    """Seconds a run may take without --yes: 600, or REDUCED_DYNAMICS_TIME_BUDGET."""
    try:
        return float(os.environ.get("REDUCED_DYNAMICS_TIME_BUDGET", "600"))
    except ValueError:
        return 600.0
FLOAT = 8                    # bytes


@dataclass(frozen=True)
class Estimate:
    bytes: float                                   # the largest arrays held at once
    seconds: float                                 # expected wall time (order of magnitude)
    parts: dict[str, str] = field(default_factory=dict)   # what dominates, in words, for the message

    def describe(self) -> str:
        why = "; ".join(f"{k}: {v}" for k, v in self.parts.items())
        return f"about {human_bytes(self.bytes)} and {human_seconds(self.seconds)}" + (f" ({why})" if why else "")


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} PB"     # pragma: no cover


def human_seconds(s: float) -> str:
    if not math.isfinite(s):
        return "forever"
    for unit, size in (("years", 3.15e7), ("days", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if s >= size:
            return f"{s / size:.3g} {unit}"
    return f"{s:.2g} s"


def available_memory() -> float:
    """Bytes the machine can give now (MemAvailable of /proc/meminfo; else the physical memory)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return math.inf


def enforce(model: str, verb: str, estimate: Estimate | None, confirm_time: bool = False, yes: bool = False) -> None:
    """Refuse what cannot fit; with ``confirm_time``, refuse what exceeds ``time_budget()`` unless ``yes``."""
    if estimate is None:
        return
    free = available_memory()
    if estimate.bytes > 0.8 * free:
        raise CostError(f"{model} {verb}: needs {estimate.describe()}, but only {human_bytes(free)} of memory is "
                        f"free; reduce the sizes")
    if confirm_time and not yes and estimate.seconds > time_budget():
        raise CostError(f"{model} {verb}: expected {estimate.describe()}; add --yes to run it anyway, or reduce "
                        f"the sizes")


# ---------------------------------------------------------------------------------------------------------
# Our families. Per-operation costs measured here (one BLAS thread): the linear-attention GD step costs about
# 5e-9 s per P (D+1)^3 (4 ms at D = 8, 44 ms at D = 16, P = 2000); the index-form symbolic build of the reduced
# flow takes 0.2-2.8 s up to D = 32 and a warm curve about a second at D = 32 (benchmarks.scaling).

def linear_attention(spec, verb: str) -> Estimate:
    D, N, H, P = spec.dim, spec.context, spec.heads, spec.sample_size
    data = P * (N + 1) * (D + 1) * FLOAT
    if verb == "simulate":
        features = P * (D + 1) ** 3 * FLOAT
        steps = spec.gd_steps
        return Estimate(data + features + steps * FLOAT,
                        steps * P * (D + 1) ** 3 * 5e-9,
                        {"gradient descent": f"{steps:.3g} steps on P = {P:.3g} sequences"})
    rank = getattr(spec, "rank", None)
    n = 1 + (2 * rank * D if rank else D * D)
    states = 1400 * n * H * FLOAT
    sample = (P * D * D + D ** 4) * FLOAT if spec.train_size is not None else D ** 4 * FLOAT
    build = 0.5 + 0.05 * D                       # index-form build (benchmarks.scaling: 0.2-2.8 s up to D = 32)
    integration = 1.5e-4 * n * H                 # the warm curve grows like its state (D = 32, 8200 numbers: ~1 s)
    return Estimate(states + sample + (data if spec.train_size is not None else 0), build + integration,
                    {"reduced flow": f"D = {D}, {n * H} numbers (symbolic build cached after the first run)"})


def softmax(spec, verb: str) -> Estimate:
    K, N, d = spec.features, spec.context, spec.dim
    if verb == "simulate":
        batch = spec.batch * (N + 1) * d * FLOAT * 4
        evaluation = spec.eval_prompts * K * (N + 1) * d * FLOAT
        steps = spec.gd_steps
        return Estimate(batch + evaluation, steps * spec.batch * (N + 1) * d * 2e-8,
                        {"gradient descent": f"{steps:.3g} steps of {spec.batch:.3g} prompts"})
    if spec.limit == "large-n":
        return Estimate(1e6, 1.0 + 0.05 * K ** 2)
    # exact finite-N by the Laplace quadrature (SF-19d): ~200 nodes, O(K^3) per node and column, N-free cost
    # (K = 4: 0.3 s, K = 8: 0.7 s, K = 32: 6 s at N = 640, measured)
    nodes = 200
    return Estimate(nodes * K ** 3 * FLOAT * 64, 0.3 + 2e-7 * nodes * K ** 4 * 300,
                    {"exact finite-N flow": f"K = {K} features, Laplace quadrature (cost independent of N = {N})"})


def sparse(spec, verb: str) -> Estimate:
    d, n = spec.dim, spec.context
    width = d + 1 + spec.scratch
    if verb == "simulate":
        # one Adam step (reference.sparse_multihead, one BLAS thread): the head-tensor GEMMs ~ B L D^4, the
        # per-prompt D x N products ~ B L D^2 N, sampling and call overhead; measured 4.5-7 ms at the defaults
        # (D = 9), 35 ms at D = 17, 0.26 s at D = 33, n = 64. Plus 51 risk evaluations during training and
        # L h + 3 after it, each a forward pass on 4000 prompts with n + d columns (30 ms at the defaults).
        B, L = spec.batch, spec.layers
        per_step = 1.8e-10 * B * L * width ** 4 + 4e-10 * B * L * width ** 2 * (n + 1) + 1e-8 * B * n * d + 2e-3
        per_risk = 4000 * L * (1.8e-10 * width ** 4 + 4e-10 * width ** 2 * (n + d))
        return Estimate(spec.batch * (n + 1) * width * FLOAT * (spec.layers + 2) * 4,
                        spec.steps * per_step + (54 + L * spec.heads) * per_risk + 5.0,
                        {"training": f"{spec.steps:.3g} steps of {spec.batch:.3g} prompts"})
    prompts = spec.test_prompts + spec.tune_prompts
    return Estimate(prompts * (n * d + d * d) * FLOAT * 4, prompts * d ** 3 * spec.depth_points * 2e-8 + 17.0,
                    {"risks": f"{prompts:.3g} prompts, {spec.depth_points} depths, Lasso tuning"})
