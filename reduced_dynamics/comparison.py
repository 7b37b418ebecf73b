"""Theory against reference: the comparison report.

``run(spec)`` asks the family for its theory curves, its reference run and its metrics (``compare`` of the
family contract, rule 10). The default, for training curves on the shared axis t = lr * step
(``compare_training_curves``): the family's own metric function (drop times, plateaus, threshold times ...)
applied identically to the theory curve and the gradient-descent curve; for every metric the report holds
``<metric>_theory``, ``<metric>_reference`` and, for scalars, the relative gap. Pointwise gaps are taken at
the reference's times, the theory curve being interpolated from its dense output. Extra theory curves (e.g.
population moments, closed forms) are summarised the same way under their own names. A family whose theory
is on another axis (sparse: depth) supplies its own metrics, and the report then shows no pointwise gap.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import plotting
from .families import family_of
from .files import atomic_save_npz, atomic_write_json, atomic_write_text, to_json
from .specs import Spec
from .metrics import _slug
from .trajectory import Trajectory, versions


@dataclass
class Report:
    model: str
    spec: Spec
    metrics: dict[str, Any]
    theory: Trajectory
    reference: Trajectory
    extras: dict[str, Trajectory] = field(default_factory=dict)
    levels: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        # the sizes the run used where the spec leaves them to a default (train_size None: P = 20000 ...)
        resolved = {name: getattr(self.spec, prop) for name, prop in
                    (("train_size", "sample_size"), ("steps", "gd_steps"), ("t_max", "final_time"))
                    if hasattr(self.spec, prop)}
        return {"model": self.model, "spec": self.spec.to_dict(), "resolved": resolved, **self.metrics,
                "levels": self.levels, "theory_kind": self.theory.meta.get("kind"),
                "versions": versions()}

    def text(self) -> str:
        lines = [f"{self.model}: theory ({self.theory.meta.get('kind')}) against reference "
                 f"({self.reference.meta.get('kind')}), {axes_text(self.theory, self.reference)}"]
        names = sorted({k[: -len("_theory")] for k in self.metrics if k.endswith("_theory")})
        for name in names:
            th, ref = self.metrics[f"{name}_theory"], self.metrics[f"{name}_reference"]
            gap = self.metrics.get(f"{name}_relative_gap")
            gap_text = f"   gap {100 * gap:+.2f} %" if isinstance(gap, float) and math.isfinite(gap) else ""
            lines.append(f"  {name:<24} theory {_fmt(th)}   reference {_fmt(ref)}{gap_text}")
        if "max_abs_gap" in self.metrics:
            lines.append(f"  {'max |loss gap|':<24} {self.metrics['max_abs_gap']:.4g}   mean "
                         f"{self.metrics['mean_abs_gap']:.4g}   over {self.metrics['gap_points']} reference times")
        else:
            lines += [f"  {key:<32} {_fmt(value)}" for key, value in self.metrics.items()
                      if not key.endswith(("_theory", "_reference")) and not isinstance(value, (list, dict))]
        for label in self.extras:
            key = _slug(label)
            parts = [f"{k[len(key) + 1:]} {_fmt(v)}" for k, v in self.metrics.items()
                     if k.startswith(key + "_") and not k.endswith("_relative_gap_to_reference")]
            if parts:                       # an extra curve with no metric of its own gets no empty row
                lines.append(f"  {label:<24} " + "   ".join(parts))
        for name, label in self.metrics.get("run_matches", {}).items():
            lines.append(f"  {'closest to reference':<24} {name}: {label}")
        for label, value in self.levels.items():
            lines.append(f"  level {label:<18} {value:.6g}")
        lines += staircase_table(self.metrics)
        return "\n".join(lines)

    def rows(self) -> list[tuple[str, Any, Any, float | None]]:
        """The measures side by side: (name, theory, reference, relative gap or None), names sorted; then the
        same measures of every extra theory curve, as ``"name (curve)"``, against the same reference."""
        def finite(gap: Any) -> float | None:
            return gap if isinstance(gap, float) and math.isfinite(gap) else None
        names = sorted({k[: -len("_theory")] for k in self.metrics if k.endswith("_theory")})
        out = [(name, self.metrics[f"{name}_theory"], self.metrics.get(f"{name}_reference"),
                finite(self.metrics.get(f"{name}_relative_gap"))) for name in names]
        for label in self.extras:
            for name in names:
                key = f"{_slug(label)}_{name}"
                if key in self.metrics:
                    out.append((f"{name} ({label})", self.metrics[key], self.metrics.get(f"{name}_reference"),
                                finite(self.metrics.get(f"{key}_relative_gap_to_reference"))))
        return out

    def __repr__(self) -> str:
        """At most 1 KB: the model, the two kinds, one line per measure of the theory (a long list shows its
        ends) and the names of the extra curves; ``text()`` and the Jupyter table have everything."""
        head = f"Report({self.model}: {self.theory.meta.get('kind')} against {self.reference.meta.get('kind')}"
        lines = []
        for name, th, ref, gap in self.rows()[:len({k for k in self.metrics if k.endswith("_theory")})]:
            lines.append(f"  {name}: theory {_short(th)}, reference {_short(ref)}"
                         + (f", gap {100 * gap:+.2f} %" if gap is not None else ""))
        if "max_abs_gap" in self.metrics:
            lines.append(f"  max |loss gap| {self.metrics['max_abs_gap']:.4g}")
        if self.extras:
            lines.append("  also: " + ", ".join(self.extras))
        text, kept = head, 0
        for line in lines:
            if len(text) + len(line) > 900:
                break
            text, kept = text + "\n" + line, kept + 1
        if kept < len(lines):
            text += f"\n  ... {len(lines) - kept} more (report.text() or the table in Jupyter)"
        return text + ")"

    def _repr_html_(self) -> str:
        """A table for Jupyter: measure, theory, reference, relative gap; then the levels."""
        def cell(value: Any) -> str:
            return f"<td style='text-align:right'>{html.escape(_fmt(value))}</td>"
        body = "".join(f"<tr><th style='text-align:left'>{html.escape(name)}</th>{cell(th)}{cell(ref)}"
                       f"<td style='text-align:right'>{'' if gap is None else f'{100 * gap:+.2f} %'}</td></tr>"
                       for name, th, ref, gap in self.rows())
        if "max_abs_gap" in self.metrics:
            body += (f"<tr><th style='text-align:left'>max |loss gap|</th>"
                     f"<td colspan='3' style='text-align:right'>{self.metrics['max_abs_gap']:.4g}</td></tr>")
        body += "".join(f"<tr><th style='text-align:left'>level {html.escape(label)}</th>"
                        f"<td colspan='3' style='text-align:right'>{value:.6g}</td></tr>"
                        for label, value in self.levels.items())
        caption = html.escape(f"{self.model}: {self.theory.meta.get('kind')} against "
                              f"{self.reference.meta.get('kind')} ({axes_text(self.theory, self.reference)})")
        return (f"<table><caption>{caption}</caption><tr><th>measure</th><th>theory</th><th>reference</th>"
                f"<th>gap</th></tr>{body}</table>")

    def save_curves(self, path: str | Path) -> Path:
        """The curves behind the report: t and loss of the theory, t_reference and loss_reference, and
        t_<name>, loss_<name> of every extra curve, with the report as the JSON string ``meta``."""
        arrays = {"t": self.theory.t, "loss": self.theory.loss, "t_reference": self.reference.t,
                  "loss_reference": self.reference.loss}
        for label, traj in self.extras.items():
            arrays[f"t_{_slug(label)}"] = traj.t
            arrays[f"loss_{_slug(label)}"] = traj.loss
        return atomic_save_npz(path, meta=np.array(to_json(self.to_dict())), **arrays)

    def save(self, stem: str | Path, plot: bool = True) -> list[Path]:
        """Write stem.json (report), stem.txt, stem.npz (curves) and, with ``plot``, stem.pdf/png."""
        stem = Path(stem)
        written = [atomic_write_json(stem.with_suffix(".json"), self.to_dict()),
                   atomic_write_text(stem.with_suffix(".txt"), self.text() + "\n"),
                   self.save_curves(stem.with_suffix(".npz"))]
        if plot:
            written += plot_report(self, stem)
        return written

    def plot(self, ax: Any = None, style: Any = None) -> Any:
        """Draw the report on ``ax`` (default: a new pyplot figure, shown inline in a notebook) in the
        project's style with ``style`` (rcParams dict or style name) on top; returns the axes."""
        return plotting.report_axes(plotting.notebook_axes(ax, style), self, style)


def staircase_table(metrics: dict[str, Any]) -> list[str]:
    """Per-step lines of a staircase comparison (any family whose summary has ``plateaus``, ``plateau_steps``
    and ``drop_times`` and whose report has a ``ladder``): ladder level, theory plateau, reference plateau,
    theory drop time, reference drop time. A drop is listed on the step it lands on."""
    needed = ("ladder", "plateaus_theory", "plateaus_reference", "plateau_steps_theory",
              "plateau_steps_reference", "drop_times_theory", "drop_times_reference")
    if not all(k in metrics for k in needed):
        return []
    rows: dict[int, dict[str, float]] = {}
    for side in ("theory", "reference"):
        steps = metrics[f"plateau_steps_{side}"]
        for j, (m, level) in enumerate(zip(steps, metrics[f"plateaus_{side}"])):
            rows.setdefault(int(m), {})[f"plateau_{side}"] = level
            if j > 0 and j - 1 < len(metrics[f"drop_times_{side}"]):
                rows[int(m)][f"drop_{side}"] = metrics[f"drop_times_{side}"][j - 1]
    ladder = metrics["ladder"]
    lines = [f"  {'step m':<7}{'ladder L(M_m)':>14}{'theory plateau':>16}{'GD plateau':>12}"
             f"{'theory drop t':>15}{'GD drop t':>11}"]
    for m in sorted(rows):
        r = rows[m]
        cells = [ladder[m] if m < len(ladder) else math.nan] + [
            r.get(k, math.nan) for k in ("plateau_theory", "plateau_reference", "drop_theory", "drop_reference")]
        lines.append(f"  {m:<7}{cells[0]:>14.6g}{cells[1]:>16.6g}{cells[2]:>12.6g}{cells[3]:>15.6g}{cells[4]:>11.6g}")
    return lines


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.5g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def _short(value: Any) -> str:
    """A scalar as _fmt writes it; a list as its length and ends, so that one line stays short."""
    if isinstance(value, (list, tuple)) and len(value) > 3:
        return f"[{_fmt(value[0])}, ... {_fmt(value[-1])}] ({len(value)})"
    return _fmt(value)


def axes_text(theory: Trajectory, reference: Trajectory) -> str:
    if theory.axis == reference.axis == "flow_time":
        return "t = lr * step"
    return (f"theory against {theory.axis or 'its own axis'}, reference against {reference.axis or 'its own axis'}: "
            f"levels side by side, no pointwise gaps")


def run(spec: Spec, progress: bool | None = None) -> Report:
    """Run the family's theory curves and its reference for ``spec`` and compare them."""
    fam = family_of(spec)
    curves = fam.comparison_theories(spec)
    reference = fam.simulate(spec, progress=progress)
    metrics = fam.compare(spec, curves, reference)
    metrics.update(fam.report_extras(spec))
    theory = curves.pop("theory")
    return Report(fam.name, spec, metrics, theory, reference, curves, fam.levels(spec, theory))


def plot_report(report: Report, stem: str | Path, style: Any = None) -> list[Path]:
    fig, ax = plotting.figure(style=style)
    plotting.report_axes(ax, report, style)
    return plotting.save(fig, stem, style)
