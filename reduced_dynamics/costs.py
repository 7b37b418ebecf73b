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

from .errors import CostError, SpecError

BUDGET_VARIABLE = "REDUCED_DYNAMICS_TIME_BUDGET"


def time_budget() -> float:
    """Seconds a run may take without --yes: 600, or ``REDUCED_DYNAMICS_TIME_BUDGET`` (a finite positive
    number of seconds; anything else, ``nan`` included, is a SpecError naming the variable rather than a
    check silently switched off)."""
    text = os.environ.get(BUDGET_VARIABLE)
    if text is None:
        return 600.0
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise SpecError(BUDGET_VARIABLE, "a finite positive number of seconds", text)
    return value


FLOAT = 8                    # bytes


@dataclass(frozen=True)
class Estimate:
    """Memory and time of a run. ``memory_terms`` and ``time_terms`` split them by what drives each part,
    keyed by the change that shrinks it ("lower --context (N = 1e+08)"): a refusal names the flag of its
    largest term, not the sizes in general."""
    bytes: float                                   # the largest arrays held at once
    seconds: float                                 # expected wall time (order of magnitude)
    parts: dict[str, str] = field(default_factory=dict)   # what dominates, in words, for the message
    memory_terms: dict[str, float] = field(default_factory=dict)
    time_terms: dict[str, float] = field(default_factory=dict)
    once: float = 0.0                              # of ``seconds``, paid once per process (a cached build)

    @classmethod
    def of(cls, memory_terms: dict[str, float], time_terms: dict[str, float],
           parts: dict[str, str] | None = None, once: float = 0.0) -> "Estimate":
        """The estimate whose memory and time are the sums of their terms."""
        return cls(sum(memory_terms.values()), sum(time_terms.values()), parts or {}, memory_terms, time_terms,
                   once)

    def combine(self, other: "Estimate") -> "Estimate":
        """Two runs one after the other (compare: predict then simulate): the larger memory, the summed time."""
        bigger = self if self.bytes >= other.bytes else other
        times = dict(self.time_terms)
        for key, value in other.time_terms.items():
            times[key] = times.get(key, 0.0) + value
        return Estimate(bigger.bytes, self.seconds + other.seconds, {**self.parts, **other.parts},
                        bigger.memory_terms, times, self.once + other.once)

    def describe(self) -> str:
        why = "; ".join(f"{k}: {v}" for k, v in self.parts.items())
        return f"about {human_bytes(self.bytes)} and {human_seconds(self.seconds)}" + (f" ({why})" if why else "")

    def advice(self, kind: str) -> str:
        """What to change: the key of the largest memory (``kind`` "memory") or time term."""
        terms = self.memory_terms if kind == "memory" else self.time_terms
        if not terms:
            return "reduce the sizes"
        return max(terms.items(), key=lambda item: item[1])[0]


def sweep_estimate(estimates: list[Estimate], workers: int) -> Estimate:
    """A sweep of runs with these estimates on ``workers`` processes at once: each worker holds the largest
    run's memory, and the time is the sum shared by the workers; too long or too large is refused naming
    the grid (its number of points) or, for memory, the flag of the largest run."""
    if not estimates:
        return Estimate(0.0, 0.0)
    largest = max(estimates, key=lambda e: e.bytes)
    grid = f"sweep fewer points (--grid: {len(estimates)} points)"
    seconds = sum(e.seconds - e.once for e in estimates) / workers + max(e.once for e in estimates)
    return Estimate(largest.bytes * workers, seconds, {"sweep": f"{len(estimates)} points on {workers} workers"},
                    {f"{largest.advice('memory')} (the largest point), or use fewer --workers":
                         largest.bytes * workers},
                    {grid: seconds})


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
    if not estimate.bytes <= 0.8 * free:          # (a NaN estimate is refused too)
        raise CostError(f"{model} {verb}: needs {estimate.describe()}, but only {human_bytes(free)} of memory is "
                        f"free; {estimate.advice('memory')}")
    if confirm_time and not yes and not estimate.seconds <= time_budget():
        raise CostError(f"{model} {verb}: expected {estimate.describe()}, over the budget of "
                        f"{human_seconds(time_budget())} ({BUDGET_VARIABLE}); {estimate.advice('time')}, or add "
                        f"--yes to run it anyway")


# ---------------------------------------------------------------------------------------------------------
# Our families. Per-operation costs measured here (one BLAS thread): the linear-attention GD step costs about
# 5e-9 s per P (D+1)^3 (4 ms at D = 8, 44 ms at D = 16, P = 2000); the index-form symbolic build of the reduced
# flow takes 0.2-2.8 s up to D = 32 and a warm curve about a second at D = 32 (benchmarks.scaling).

def _steps_advice(spec) -> str:
    """How to take fewer gradient-descent steps with the flags the user gave."""
    if spec.steps is not None:
        return f"lower --steps ({spec.gd_steps:.3g})"
    return f"lower --t-max or raise --lr (t_max / lr = {spec.gd_steps:.3g} steps)"


def linear_attention(spec, verb: str) -> Estimate:
    D, N, H, P = spec.dim, spec.context, spec.heads, spec.sample_size
    if verb == "simulate":
        # one GD step contracts the P (D+1)^3 features with every head's weights (5e-9 s per P (D+1)^3 at
        # H = 8, one BLAS thread); the per-head predictions and gradients hold P H (D+1) numbers, the weights
        # H (D+1)^2. The §12 test sets (two of task.TEST_SIZE prompts) are evaluated at every step when used.
        from .tasks.linear_attention import TEST_SIZE
        tests = 2 * TEST_SIZE if (spec.model == "attn-m" or spec.icl < 1) else 0
        steps = spec.gd_steps
        prompts = P + tests
        per_step = prompts * (D + 1) ** 3 * 5e-9 * max(H, 8) / 8
        return Estimate.of(
            {f"lower --train-size (P = {P:.3g}) or --context (N = {N:.3g})": prompts * (N + 1) * (D + 1) * FLOAT,
             f"lower --train-size (P = {P:.3g}) or --dim (D = {D})": prompts * (D + 1) ** 3 * FLOAT,
             f"lower --heads (H = {H:.3g})": (prompts * H * (D + 1) * 4 + 4 * H * (D + 1) ** 2) * FLOAT,
             _steps_advice(spec): steps * (3 + D + 2 * H) * FLOAT},
            {f"{_steps_advice(spec)}, or lower --train-size (P = {P:.3g}) or --dim (D = {D})": steps * per_step,
             f"lower --context (N = {N:.3g})": prompts * (N + 1) * (D + 1) ** 2 * 2e-9},
            {"gradient descent": f"{steps:.3g} steps on P = {P:.3g} sequences, H = {H:.3g} heads, N = {N:.3g}"})
    rank = getattr(spec, "rank", None)
    n = 1 + (2 * rank * D if rank else D * D)
    sample = (P * D * D + D ** 4) * FLOAT if spec.train_size is not None else D ** 4 * FLOAT
    data = P * (N + 1) * (D + 1) * FLOAT if spec.train_size is not None else 0
    build = 0.5 + 0.05 * D                       # index-form build (benchmarks.scaling: 0.2-2.8 s up to D = 32)
    integration = 1.5e-4 * n * H                 # the warm curve grows like its state (D = 32, 8200 numbers: ~1 s)
    memory = {f"lower --heads (H = {H:.3g}) or --dim (D = {D})": 1400 * n * H * FLOAT,
              f"lower --dim (D = {D})": sample,
              f"lower --train-size (P = {P:.3g}) or --context (N = {N:.3g})": data}
    time = {f"lower --dim (D = {D})": build, f"lower --heads (H = {H:.3g}) or --dim (D = {D})": integration}
    if getattr(spec, "batch_size", None) is not None:
        _add_sgd_band(spec, memory, time)
    return Estimate.of(memory, time, {"reduced flow": f"D = {D}, {n * H} numbers (symbolic build cached after the "
                                                      f"first run)"}, once=build)


def _add_sgd_band(spec, memory: dict, time: dict) -> None:
    """The SGD band's terms (``theory.linear_attention.sgd``): the losses of every path at every step, the
    paths' states, the P per-prompt gradients in Theta ((D+1)^2 D numbers, LA-44) and Sigma's root tabulated at
    every 5th step of the GD map; per path and step a product with that root (about 2e-9 s per entry)."""
    D, H, P, paths, steps = spec.dim, spec.heads, spec.sample_size, spec.paths, spec.gd_steps
    features = (D + 1) ** 2 * D
    table = (steps // 5 + 1) * features ** 2
    band = f"lower --paths ({paths:.3g}) or take fewer steps ({steps:.3g}: lower --t-max or raise --lr)"
    prompts = f"lower --dim (D = {D}) or --train-size (P = {P:.3g})"
    memory[band] = ((steps + 1) * paths + 4 * paths * (H * (D + 1) ** 2 + features)) * FLOAT
    memory[prompts] = memory.get(prompts, 0.0) + (table + P * features) * FLOAT
    time[band] = steps * paths * features ** 2 * 2e-9
    time[prompts] = time.get(prompts, 0.0) + (steps // 5 + 1) * (P * features ** 2 * 1e-9 + features ** 3 * 1e-8)


def softmax(spec, verb: str) -> Estimate:
    K, N, d = spec.features, spec.context, spec.dim
    if verb == "simulate":
        steps = spec.gd_steps
        records = steps // spec.record_every + 1
        return Estimate.of(
            {f"lower --batch ({spec.batch:.3g}) or --context (N = {N:.3g})": spec.batch * (N + 1) * d * FLOAT * 4,
             f"lower --eval-prompts ({spec.eval_prompts:.3g}) or --context (N = {N:.3g})":
                 spec.eval_prompts * K * (N + 1) * d * FLOAT},
            {_steps_advice(spec): steps * spec.batch * (N + 1) * d * 2e-8,
             f"lower --eval-prompts ({spec.eval_prompts:.3g}) or raise --record-every":
                 records * spec.eval_prompts * K * (N + 1) * d * 2e-9},
            {"gradient descent": f"{steps:.3g} steps of {spec.batch:.3g} prompts, {spec.eval_prompts:.3g} "
                                 f"evaluation prompts"})
    if spec.limit == "large-n":
        return Estimate.of({f"lower --features (K = {K})": 1e6}, {f"lower --features (K = {K})": 1.0 + 0.05 * K ** 2})
    # exact finite-N by the Laplace quadrature (SF-19d): ~200 nodes, O(K^3) per node and column, N-free cost
    # (K = 4: 0.3 s, K = 8: 0.7 s, K = 32: 6 s at N = 640, measured)
    nodes = 200
    return Estimate.of({f"lower --features (K = {K})": nodes * K ** 3 * FLOAT * 64},
                       {f"lower --features (K = {K})": 0.3 + 2e-7 * nodes * K ** 4 * 300},
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
        return Estimate.of(
            {f"lower --batch ({B:.3g}), --layers (L = {L:.3g}), --dim (d = {d:.3g}) or --context (n = {n:.3g})":
                 B * (n + 1) * width * FLOAT * (L + 2) * 4,
             f"lower --dim (d = {d:.3g}), --layers (L = {L}) or --heads (h = {spec.heads:.3g})":
                 L * spec.heads * width ** 2 * FLOAT * 4},
            {f"lower --steps ({spec.steps:.3g}) or --dim (d = {d:.3g})": spec.steps * per_step,
             f"lower --dim (d = {d:.3g}), --layers (L = {L}) or --heads (h = {spec.heads:.3g})":
                 (54 + L * spec.heads) * per_risk + 5.0},
            {"training": f"{spec.steps:.3g} steps of {spec.batch:.3g} prompts"})
    prompts = spec.test_prompts + spec.tune_prompts
    which = f"lower --test-prompts ({spec.test_prompts:.3g}) or --tune-prompts ({spec.tune_prompts:.3g})"
    return Estimate.of({which: prompts * (n * d + d * d) * FLOAT * 4},
                       {f"{which} or --depth-points ({spec.depth_points})":
                            prompts * d ** 3 * spec.depth_points * 2e-8 + 17.0},
                       {"risks": f"{prompts:.3g} prompts, {spec.depth_points} depths, Lasso tuning"})
