"""The default metrics of a comparison of training curves (family contract, rule 10): the family's own summary
applied to theory and reference alike, relative gaps, pointwise gaps on the shared axis, and which theory
curve a run matches. Used by the family registry (the default ``compare``) and by the comparison report."""
from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from .trajectory import Trajectory


def _slug(label: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "_", label).strip("_").lower()


def relative_gap(theory: Any, reference: Any) -> Any:
    """(theory - reference) / |reference| for numbers, elementwise for equal-length lists."""
    if isinstance(theory, (list, tuple)) and isinstance(reference, (list, tuple)) and len(theory) == len(reference):
        return [relative_gap(a, b) for a, b in zip(theory, reference)]
    if isinstance(theory, (int, float)) and isinstance(reference, (int, float)) and reference != 0:
        return float((theory - reference) / abs(reference))
    return math.nan


def curve_gaps(theory: Trajectory, reference: Trajectory) -> dict[str, float]:
    """Largest and mean |L_theory - L_reference| at the reference times inside the theory's time range."""
    inside = reference.t <= theory.t[-1] + 1e-12
    gaps = np.abs(theory.at(reference.t[inside]) - reference.loss[inside])
    return {"max_abs_gap": float(gaps.max()), "mean_abs_gap": float(gaps.mean()), "gap_points": int(inside.sum())}


def compare(theory: Trajectory, reference: Trajectory, summarise) -> dict[str, Any]:
    """Metrics of both curves side by side, their relative gaps, and the pointwise gaps."""
    th, ref = summarise(theory), summarise(reference)
    out: dict[str, Any] = {}
    for name in th:
        out[f"{name}_theory"], out[f"{name}_reference"] = th[name], ref[name]
        out[f"{name}_relative_gap"] = relative_gap(th[name], ref[name])
    out.update(curve_gaps(theory, reference))
    return out


def compare_training_curves(theories: dict[str, Trajectory], reference: Trajectory, summarise) -> dict[str, Any]:
    """The default comparison (family contract, rule 10): ``compare`` of the main curve ``theories["theory"]``
    and, for every other theory curve, its metrics and their relative gaps to the reference's."""
    metrics = compare(theories["theory"], reference, summarise)
    ref_summary = summarise(reference)
    for label, traj in theories.items():
        if label == "theory":
            continue
        for name, value in summarise(traj).items():
            metrics[f"{_slug(label)}_{name}"] = value
            metrics[f"{_slug(label)}_{name}_relative_gap_to_reference"] = relative_gap(value, ref_summary[name])
    metrics["run_matches"] = closest_theory(metrics, list(theories))
    return metrics


def _size(gap: Any) -> float:
    """Largest |relative gap| over a scalar or a (nested) list of them; NaN if none is finite."""
    values = [abs(x) for x in np.ravel(np.asarray(gap, dtype=float)) if math.isfinite(x)] if gap is not None else []
    return max(values) if values else math.nan


def closest_theory(metrics: dict[str, Any], labels: list[str]) -> dict[str, str]:
    """For every compared metric, the theory curve nearest the reference (largest |relative gap| smallest):
    which curve the run matches, e.g. the flow, the modified flow or the reduced GD map (finite_learning_rate.md)."""
    out = {}
    for key in [k for k in metrics if k.endswith("_relative_gap")]:
        name = key[: -len("_relative_gap")]
        sizes = {label: _size(metrics.get(key if label == "theory" else
                                          f"{_slug(label)}_{name}_relative_gap_to_reference")) for label in labels}
        sizes = {label: size for label, size in sizes.items() if math.isfinite(size)}
        if len(sizes) > 1:
            out[name] = min(sizes, key=sizes.get)
    return out
