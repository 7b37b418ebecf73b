"""Measuring the learning-rate error of a theory curve (docs/theory/finite_learning_rate.md, LR-7).

A GD run (or the reduced GD map) exists only at t = eta k, so its drop time is read by a crossing on that grid.
Linear interpolation would add an O(eta^2) error of its own, as large as the modified flow's; ``crossing_time``
interpolates with the cubic through the four samples around the crossing (error O(eta^4)), and every curve
of a comparison is read on the same grid with the same level. ``fitted_order`` is the least-squares slope of
log |gap| against log eta.
"""
from __future__ import annotations

import math

import numpy as np


def crossing_time(t: np.ndarray, y: np.ndarray, level: float) -> float:
    """First time y falls below ``level``, from the cubic through the four samples around the crossing
    (linear when fewer exist); NaN if it never does."""
    t, y = np.asarray(t, float), np.asarray(y, float)
    below = np.nonzero(y < level)[0]
    if below.size == 0 or below[0] == 0:
        return math.nan
    j = int(below[0])
    lo, hi = max(j - 2, 0), min(j + 2, len(t))
    ts, ys = t[lo:hi], y[lo:hi]
    coef = np.polyfit(ts - t[j - 1], ys - level, min(3, len(ts) - 1))
    roots = np.roots(coef)
    width = t[j] - t[j - 1]
    real = [r.real + t[j - 1] for r in roots
            if abs(r.imag) < 1e-9 * max(width, 1) and -1e-12 <= r.real <= width * (1 + 1e-12)]
    if not real:        # fall back on the chord
        return float(t[j - 1] + (y[j - 1] - level) / (y[j - 1] - y[j]) * width)
    return float(min(real))


def fitted_order(etas, gaps) -> float:
    """Slope of log |gap| against log eta (1 for an O(eta) error, 2 for O(eta^2))."""
    return float(np.polyfit(np.log(np.asarray(etas, float)), np.log(np.abs(np.asarray(gaps, float))), 1)[0])
