"""The one integrator: every theory module calls ``integrate``, never ``scipy.integrate.solve_ivp``.

    integrate(flow, y0, t_max, method="DOP853", t_eval=None, rtol=1e-8, atol=None, max_evals=2_000_000)

``flow`` is either a right-hand side ``rhs(t, y)`` (optionally with ``jac=``) or a *compiled system*, an
object with a ``packed`` tuple for the compiled kernels, a state ``size`` and an optional ``python_rhs``: an
``integrate.compiled.HeadFlow`` (the linear-attention flows: per-head polynomial tables) or an
``integrate.derived.DerivedFlow`` (any other derived right-hand side: a compile-cache program run by the
register-machine kernel). Methods:

* ``"compiled"``: Dormand-Prince 8(5,3) in machine code (``integrate.compiled``), for a compiled system; same
  steps as SciPy's DOP853 at equal tolerances. Falls back to SciPy (with a warning) when the system also
  carries a Python right-hand side and SciPy's private tableau module is missing.
* ``"stiff"``: for a ``HeadFlow``, SciPy's LSODA on the compiled right-hand side and Jacobian.
* any ``solve_ivp`` method (``"DOP853"``, ``"Radau"``, ``"LSODA"``, ``"BDF"``, ``"RK45"``): SciPy, through
  ``integrate.scipy_backend``.

Both backends share the defaults (rtol 1e-8, atol tied to the initial scale: 1e-11 times the largest initial
entry, i.e. 1e-14 for entries of order 1e-3, as linear_attention.md §11 asks), the output grid (log-spaced
merged with uniform) and the guards: a blow-up, a stall or an exhausted evaluation budget raises
``IntegrationError`` with what to change; every solve's status is checked.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np

from ..errors import IntegrationError
from .common import Solution, default_atol, output_times
from .derived import DerivedFlow

__all__ = ["DerivedFlow", "IntegrationError", "Solution", "default_atol", "integrate", "output_times"]

SCIPY_METHODS = ("DOP853", "RK45", "RK23", "Radau", "BDF", "LSODA")


def integrate(flow: Any, y0: np.ndarray, t_max: float, *, method: str = "DOP853", jac: Callable | None = None,
              **options: Any) -> Solution:
    """Integrate the flow from ``y0`` on [0, t_max] (options: ``t_eval``, ``rtol``, ``atol``, ``max_evals``,
    ``blowup``); raise ``IntegrationError`` on blow-up, stall or an exhausted budget.

    For a ``HeadFlow``: ``"compiled"`` (DOP853 in machine code), ``"stiff"`` (SciPy's LSODA on the compiled
    right-hand side and compiled Jacobian: Adams while the flow is not stiff, BDF on long plateaus), or a SciPy
    method on the flow's NumPy right-hand side and Jacobian. For a callable ``rhs(t, y)``: a SciPy method."""
    from . import scipy_backend
    compiled_system = hasattr(flow, "packed")
    if compiled_system:
        from . import compiled
        if method == "compiled":
            if compiled.tableau is None and flow.python_rhs is not None:
                warnings.warn(compiled.TABLEAU_MISSING + "; using SciPy's DOP853", RuntimeWarning, stacklevel=2)
                return scipy_backend.solve(flow.python_rhs, y0, t_max, method="DOP853", **options)
            return compiled.solve(flow, y0, t_max, **options)
        stiff = hasattr(flow, "packed_jacobian")          # the head flows carry a compiled Jacobian
        if method == "stiff" and stiff:
            return scipy_backend.solve(compiled.rhs_function(flow), y0, t_max, method="LSODA",
                                       jac=compiled.jacobian_function(flow), **options)
        if method in SCIPY_METHODS and flow.python_rhs is not None:
            return scipy_backend.solve(flow.python_rhs, y0, t_max, method=method,
                                       jac=getattr(flow, "python_jac", None), **options)
    elif method in SCIPY_METHODS:
        return scipy_backend.solve(flow, y0, t_max, method=method, jac=jac, **options)
    allowed = ("compiled, " + ("stiff or " if hasattr(flow, "packed_jacobian") else "or ")
               if compiled_system else "")
    raise IntegrationError(f"method: expected {allowed}one of {', '.join(SCIPY_METHODS)} for a "
                           f"{type(flow).__name__}, got {method!r}")
