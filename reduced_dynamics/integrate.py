"""``scipy.integrate.solve_ivp`` wrapper for reduced flows started from small initialisations.

* Tolerances follow the theory notes (DOP853, rtol 1e-8); the absolute tolerance is tied to the initial
  scale (1e-11 times the largest initial entry, i.e. 1e-14 for entries of order 1e-3, as in
  linear_attention.md §11), because the early phase is exponential growth out of tiny values.
* Output on a grid that is log-spaced in time (curves that span decades) merged with a uniform grid
  (so that crossing times are resolved equally well late in the run).
* A guard stops a blow-up (non-finite or huge state) or an exhausted budget of right-hand-side
  evaluations with a message that says what to change.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.integrate import solve_ivp

IMPLICIT = ("Radau", "BDF", "LSODA")


class IntegrationError(RuntimeError):
    """The integration blew up or stalled; the message says what to change."""


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


def integrate(rhs: Callable[[float, np.ndarray], np.ndarray], y0: np.ndarray, t_max: float, *,
              jac: Callable | None = None, method: str = "DOP853", rtol: float = 1e-8,
              atol: float | None = None, t_eval: np.ndarray | None = None, max_evals: int = 2_000_000,
              blowup: float = 1e8) -> Solution:
    """Integrate dy/dt = rhs(t, y) on [0, t_max]; raise IntegrationError on blow-up or stall."""
    y0 = np.asarray(y0, dtype=float)
    if not np.all(np.isfinite(y0)):
        raise IntegrationError("initial state contains NaN or infinity")
    if atol is None:
        atol = default_atol(y0)
    t_eval = output_times(t_max) if t_eval is None else np.asarray(t_eval, dtype=float)
    count = [0]

    def guarded(t: float, y: np.ndarray) -> np.ndarray:
        count[0] += 1
        if count[0] > max_evals:
            raise IntegrationError(
                f"step budget exhausted: {max_evals} right-hand-side evaluations reached at t = {t:.6g} of "
                f"{t_max:.6g}; the system may be stiff (try method='Radau' or 'LSODA'), or raise max_evals, "
                f"or shorten t_max")
        dy = rhs(t, y)
        if not (np.all(np.isfinite(dy)) and np.max(np.abs(y)) < blowup):
            raise IntegrationError(
                f"solution blew up at t = {t:.6g} (|y| max {np.max(np.abs(y)):.3g}); the learning problem "
                f"diverges for these parameters: lower the initial scale or the output scale, or check the "
                f"spec")
        return dy

    options = {"jac": jac} if (jac is not None and method in IMPLICIT) else {}
    result = solve_ivp(guarded, (0.0, t_max), y0, method=method, t_eval=t_eval, rtol=rtol, atol=atol,
                       **options)
    if result.status != 0:
        raise IntegrationError(f"integration stopped at t = {result.t[-1] if result.t.size else 0:.6g}: "
                               f"{result.message}; try method='Radau' or looser tolerances")
    return Solution(t=result.t, y=result.y.T, nfev=count[0])
