"""The SciPy backend of ``integrate``: ``scipy.integrate.solve_ivp`` with the project's guards.

* Tolerances follow the theory notes (DOP853, rtol 1e-8); the absolute tolerance is tied to the initial
  scale (1e-11 times the largest initial entry, i.e. 1e-14 for entries of order 1e-3, as in
  linear_attention.md §11), because the early phase is exponential growth out of tiny values.
* Output on a grid that is log-spaced in time (curves that span decades) merged with a uniform grid
  (so that crossing times are resolved equally well late in the run).
* A guard stops a blow-up (non-finite or huge state) or an exhausted budget of right-hand-side
  evaluations with a message that says what to change.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.integrate import solve_ivp

from ..errors import IntegrationError
from .common import Solution, blowup_message, budget_message, check_start, default_atol, output_times

IMPLICIT = ("Radau", "BDF", "LSODA")


def solve(rhs: Callable[[float, np.ndarray], np.ndarray], y0: np.ndarray, t_max: float, *,
          jac: Callable | None = None, method: str = "DOP853", rtol: float = 1e-8, atol: float | None = None,
          t_eval: np.ndarray | None = None, max_evals: int = 2_000_000, blowup: float = 1e8) -> Solution:
    """Integrate dy/dt = rhs(t, y) on [0, t_max]; raise IntegrationError on blow-up or stall."""
    y0 = np.asarray(y0, dtype=float)
    t_eval = output_times(t_max) if t_eval is None else np.asarray(t_eval, dtype=float)
    check_start(y0, t_eval, t_max)
    if atol is None:
        atol = default_atol(y0)
    count = [0]

    def guarded(t: float, y: np.ndarray) -> np.ndarray:
        count[0] += 1
        if count[0] > max_evals:
            raise IntegrationError(budget_message(max_evals, t, t_max))
        dy = rhs(t, y)
        if not (np.all(np.isfinite(dy)) and np.max(np.abs(y)) < blowup):
            raise IntegrationError(blowup_message(t, float(np.max(np.abs(y)))))
        return dy

    options = {"jac": jac} if (jac is not None and method in IMPLICIT) else {}
    with np.errstate(over="ignore", invalid="ignore"):
        result = solve_ivp(guarded, (0.0, t_max), y0, method=method, t_eval=t_eval, rtol=rtol, atol=atol,
                           **options)
    if result.status != 0:
        raise IntegrationError(f"integration stopped at t = {result.t[-1] if result.t.size else 0:.6g}: "
                               f"{result.message}; try --integrator stiff (attn-m, attn-s) or a shorter --t-max")
    return Solution(t=result.t, y=result.y.T, nfev=count[0])
