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


def midpoint_drop_time(t: np.ndarray, loss: np.ndarray, min_fall: float = 0.01) -> float:
    """Time the loss first crosses the midpoint of its initial value and its lowest value (LA-28's
    definition, with the curve's own end points so that it needs nothing but the curve).

    NaN when the curve has not dropped: its whole fall, L(0) - min L, is below ``min_fall`` times |L(0)|.
    Before the escape from a small initialisation the loss creeps down by O(sigma^2) only (at D = 60 and
    t = 40, 8e-8), and the midpoint of such a creep is not a drop time."""
    loss = np.asarray(loss, dtype=float)
    lowest = float(np.min(loss))
    if not loss[0] - lowest >= min_fall * abs(loss[0]):
        return float("nan")
    return first_crossing_below(t, loss, 0.5 * (loss[0] + lowest))


EMERGENCE_FALL = 0.1      # a test loss "emerges" only if it falls by at least this fraction of its start (WD-9)


def emergence_and_fade(t: np.ndarray, loss: np.ndarray, min_fall: float = EMERGENCE_FALL) -> tuple[float, float]:
    """(emergence, fade) of a test-loss curve (WD-9): emergence is the midpoint drop time (the curve crosses the
    midpoint of its start and its minimum going down), counted only when the curve falls by at least ``min_fall``
    of its start (a 1 % dip while the other route is learned is not a learned solution); fade is the first time
    after the minimum that it crosses back up through the same level. NaN for what does not happen."""
    loss = np.asarray(loss, dtype=float)
    emergence = midpoint_drop_time(t, loss, min_fall)
    if math.isnan(emergence):
        return emergence, math.nan
    k = int(np.argmin(loss))
    level = 0.5 * (loss[0] + loss[k])
    return emergence, first_crossing_below(np.asarray(t, dtype=float)[k:], -loss[k:], -level)


def transience_events(t: np.ndarray, L_ic: np.ndarray, L_iw: np.ndarray) -> dict:
    """``icl_emergence``, ``icl_fade`` on the in-context test loss and ``iwl_emergence``, ``iwl_fade`` on the
    in-weight one (WD-9), NaN where they do not happen: one definition for theory and reference."""
    icl, iwl = emergence_and_fade(t, L_ic), emergence_and_fade(t, L_iw)
    return {"icl_emergence": icl[0], "icl_fade": icl[1], "iwl_emergence": iwl[0], "iwl_fade": iwl[1]}


def transience_summary(t: np.ndarray, L_ic: np.ndarray, L_iw: np.ndarray) -> dict:
    """Sweep measures of the mixture's two test losses (WD-9): the four events, ``icl_phase`` (0 never emerges,
    1 emerges and persists, 2 emerges and fades), the lowest and final values of both curves."""
    events = transience_events(t, L_ic, L_iw)
    phase = 0 if math.isnan(events["icl_emergence"]) else 1 if math.isnan(events["icl_fade"]) else 2
    return {**events, "icl_phase": phase, "icl_min": float(np.min(L_ic)), "icl_final": float(L_ic[-1]),
            "iwl_min": float(np.min(L_iw)), "iwl_final": float(L_iw[-1])}


# ---------------------------------------------------------------------------------------------------------
# Staircases: plateaus and the drops between them (saddle-to-saddle dynamics, linear_attention.md §7.2)

def plateaus(t: np.ndarray, loss: np.ndarray, window: float = 0.02, flat: float = 0.01,
             grid: int = 4000, log_time: bool = False, decades: float = 3.0) -> list[dict]:
    """Plateaus of a loss curve, found from the curve alone (so theory and reference are treated alike).

    The curve is resampled on ``grid`` times, uniform in t or, with ``log_time``, uniform in log t over the
    last ``decades`` decades of the run (saddle-to-saddle plateaus grow in length roughly geometrically,
    so a window of fixed relative length resolves short early and long late plateaus alike). A time is
    *flat* when the loss falls by at most
    ``flat`` times the curve's total fall (L(0) - min L) across a centred window of ``window`` times the
    duration; a plateau is a maximal run of flat times lasting at least half a window (so a rest of 1.5
    windows, like the short m = 1 rest of the default attn-s run, counts). Its level is the loss at
    its slowest point (smallest fall across the window). Returns [{"start", "end", "level", "time"}], in
    time order (``time`` is where the level was read)."""
    t = np.asarray(t, dtype=float)
    loss = np.asarray(loss, dtype=float)
    if t.size < 2 or not np.all(np.isfinite(loss)):
        return []
    if log_time:
        tg = np.geomspace(t[-1] * 10.0 ** (-decades), t[-1], grid)
    else:
        tg = np.linspace(t[0], t[-1], grid)
    lg = np.interp(tg, t, loss)
    total = lg[0] - lg.min()
    if total <= 0:
        return [{"start": float(tg[0]), "end": float(tg[-1]), "level": float(lg[0]), "time": float(tg[0])}]
    half = max(1, int(round(0.5 * window * (grid - 1))))
    idx = np.arange(grid)
    fall = lg[np.maximum(idx - half, 0)] - lg[np.minimum(idx + half, grid - 1)]
    is_flat = fall <= flat * total
    out = []
    k = 0
    while k < grid:
        if not is_flat[k]:
            k += 1
            continue
        j = k
        while j + 1 < grid and is_flat[j + 1]:
            j += 1
        if j - k + 1 >= half:
            slowest = k + int(np.argmin(fall[k:j + 1]))
            out.append({"start": float(tg[k]), "end": float(tg[j]), "level": float(lg[slowest]),
                        "time": float(tg[slowest])})
        k = j + 1
    return out


def drop_times(t: np.ndarray, loss: np.ndarray, found: list[dict]) -> list[float]:
    """For consecutive plateaus j, j+1: the first time after plateau j starts that the loss crosses the
    midpoint of their levels (LA-28's midpoint definition, per step)."""
    t = np.asarray(t, dtype=float)
    loss = np.asarray(loss, dtype=float)
    out = []
    for here, there in zip(found, found[1:]):
        start = int(np.searchsorted(t, here["time"]))
        out.append(first_crossing_below(t[start:], loss[start:], 0.5 * (here["level"] + there["level"])))
    return out


def staircase(t: np.ndarray, loss: np.ndarray, ladder=None, **options) -> dict:
    """Plateau levels, their times, the drop times between them and, given the ladder of saddle levels
    (e.g. LA-30), the index m of the ladder level nearest to each plateau (``steps``)."""
    found = plateaus(t, loss, **options)
    out = {"plateaus": [p["level"] for p in found], "plateau_times": [p["time"] for p in found],
           "drop_times": drop_times(t, loss, found)}
    if ladder is not None:
        ladder = np.asarray(ladder, dtype=float)
        out["steps"] = [int(np.argmin(np.abs(ladder - p["level"]))) for p in found]
    return out
