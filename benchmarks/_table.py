"""Shared pieces of the benchmark scripts: best-of timing and the speed table every family prints."""
from __future__ import annotations

import time

WARM = "warm theory curve (population flow, to t_max)"
COLD = "cold derive + compile (index route, population)"


def best_of(repeat: int, action) -> float:
    """Fastest of ``repeat`` timed calls (the least disturbed by other load on a shared machine)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def print_speed_table(title: str, table: dict[str, float]) -> None:
    """Seconds per measurement, then GD / warm theory and cold build / cache hit."""
    print(title)
    print(f"{'measurement':<58} {'seconds':>10}")
    for name, seconds in table.items():
        print(f"{name:<58} {seconds:>10.4f}")
    gd = next(v for k, v in table.items() if k.startswith("reference GD"))
    print(f"{'ratio: reference GD / warm theory curve':<58} {gd / table[WARM]:>10.1f}")
    print(f"{'ratio: cold build / cache hit':<58} {table[COLD] / table['cache hit']:>10.0f}")
    print()
