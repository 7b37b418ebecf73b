"""Numerical integration of the restricted-family training flow of §8 (SM-38, SM-39; OUR proposal).

The right-hand sides come from ``reduced_dynamics.derivations.sparse_multihead`` (minus the symbolic gradient of the loss),
compiled to NumPy callables by ``reduced_dynamics.compile`` (disk-cached); nothing here is typed by hand. Untested against the
full model (note §6, §8).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from reduced_dynamics.derivations import sparse_multihead as der

from ...compile import compile_system
from ...integrate import DerivedFlow, integrate


@lru_cache(maxsize=None)
def system():
    """The compiled restricted system: rhs(state, (m3, m6)), loss(state, (m3, m6, W, sigma)), gain(state),
    scalar_rhs((p,), (m3, m6))."""
    return compile_system(der, "restricted_system", {})


def _callables():
    compiled = system()
    return (lambda x, m3, m6: compiled["rhs"](x, (m3, m6)),
            lambda p, m3, m6: compiled["scalar_rhs"]((p,), (m3, m6))[0],
            lambda x: compiled["gain"](x)[0])


def integrate_restricted(state0, m3: float, m6: float, times: np.ndarray, rtol: float = 1e-10,
                         atol: float = 1e-14) -> np.ndarray:
    """Integrate d(a, b, c, g)/dt = -grad L (SM-38) and return the states at ``times``, shape (K, 4)."""
    flow = DerivedFlow.of(system(), "rhs", (m3, m6))        # compiled (the SciPy path: flow.python_rhs)
    return integrate(flow, np.asarray(state0, dtype=float), float(times[-1]), method="compiled", t_eval=times,
                     rtol=rtol, atol=atol).y


def integrate_balanced(p0: float, m3: float, m6: float, times: np.ndarray, rtol: float = 1e-10,
                       atol: float = 1e-14) -> np.ndarray:
    """Integrate the balanced scalar ODE dp/dt (SM-39) and return p at ``times``."""
    _, rhs1, _ = _callables()
    return _solve(lambda t, x: np.array([float(rhs1(x[0], m3, m6))]), np.array([float(p0)]), times, rtol,
                  atol)[:, 0]


def _solve(rhs, y0: np.ndarray, times: np.ndarray, rtol: float, atol: float) -> np.ndarray:
    """DOP853 through the project's integrator, states at ``times`` (K, len(y0))."""
    return integrate(rhs, y0, float(times[-1]), method="DOP853", t_eval=times, rtol=rtol, atol=atol).y


def gain_of(states: np.ndarray) -> np.ndarray:
    """u = a^2 b^2 c g for states (K, 4)."""
    _, _, gain = _callables()
    return np.array([gain(s) for s in states], dtype=float)
