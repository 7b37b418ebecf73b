"""Crossing times of a sampled curve: the one definition applied identically to theory and reference.

Times are interpolated linearly between samples, so a curve sampled densely enough (every GD step, or the
merged output grid of ``integrate.output_times``) gives its crossing to well below 0.1 %.
"""
from __future__ import annotations

import math

import numpy as np


def first_crossing_below(t: np.ndarray, y: np.ndarray, level: float) -> float:
    """First time the curve goes from above ``level`` to at or below it; NaN if it never does."""
    t = np.asarray(t, dtype=float)
    y = np.asarray(y, dtype=float)
    below = np.nonzero(y <= level)[0]
    if below.size == 0:
        return math.nan
    k = int(below[0])
    if k == 0:
        return float(t[0])
    t0, t1, y0, y1 = t[k - 1], t[k], y[k - 1], y[k]
    return float(t0 + (y0 - level) * (t1 - t0) / (y0 - y1))


def midpoint_drop_time(t: np.ndarray, loss: np.ndarray) -> float:
    """Time the loss first crosses the midpoint of its initial value and its lowest value (LA-28's
    definition, with the curve's own end points so that it needs nothing but the curve)."""
    loss = np.asarray(loss, dtype=float)
    return first_crossing_below(t, loss, 0.5 * (loss[0] + float(np.min(loss))))
