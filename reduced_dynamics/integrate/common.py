"""Output grids, default tolerances, start checks, messages and the solution record shared by the
integrator backends."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Solution:
    t: np.ndarray          # output times
    y: np.ndarray          # states, shape (len(t), dim)
    nfev: int


def output_times(t_max: float, n_log: int = 400, n_lin: int = 1000, t_first: float | None = None) -> np.ndarray:
    """0, a log-spaced grid from ``t_first`` (default t_max * 1e-4) to t_max, and a uniform grid, merged."""
    t_first = t_max * 1e-4 if t_first is None else t_first
    grid = np.concatenate([[0.0], np.geomspace(t_first, t_max, n_log), np.linspace(0.0, t_max, n_lin + 1)])
    return np.unique(grid)


def default_atol(y0: np.ndarray) -> float:
    """1e-11 times the largest initial entry (at least 1e-3): 1e-14 for entries of order 1e-3 (§11)."""
    return 1e-11 * max(float(np.max(np.abs(y0), initial=0.0)), 1e-3)


def blowup_message(t: float, y_max: float) -> str:
    return (f"solution blew up at t = {t:.6g} (|y| max {y_max:.3g}); the learning problem diverges for these "
            f"parameters: lower the initial scale or the output scale, or check the spec")


def budget_message(max_evals: int, t: float, t_max: float) -> str:
    return (f"step budget exhausted: {max_evals} right-hand-side evaluations reached at t = {t:.6g} of "
            f"{t_max:.6g}; the flow may be stiff: try --integrator stiff (attn-m, attn-s; "
            f"integrator='stiff' in the spec) or a shorter --t-max")


def check_start(y0: np.ndarray, t_eval: np.ndarray, t_max: float) -> None:
    """The guards every backend applies before it starts."""
    from ..errors import IntegrationError
    if not np.all(np.isfinite(y0)):
        raise IntegrationError("initial state contains NaN or infinity")
    if not (np.isfinite(t_max) and t_max > 0):
        raise IntegrationError(f"t_max: expected a positive finite time, got {t_max!r}")
    if t_eval.size and (t_eval[0] < 0 or t_eval[-1] > t_max or np.any(np.diff(t_eval) < 0)):
        raise IntegrationError(f"t_eval: expected increasing times in [0, {t_max}]")
