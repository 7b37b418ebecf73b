"""Figure ``deep_linear_modes``: the stage-like learning of a two-layer linear network (Saxe et al. 2014).

Left: the loss, theory (mode flow DL-6) as a line, the closed form (DL-7) dashed, gradient descent on the full
network as markers, the rank floor dotted. Right: each mode's strength u_i(t) / s_i, theory lines and
gradient-descent markers; the strongest mode is learnt first, at t_half = ln(s/u0 - 1) / (2s) (DL-8).
Default spec; ``quick`` stops at t = 10 with P = 64 (every mode that can be learnt is learnt by then).

    reduced-dynamics figures deep_linear_modes [--quick] [--out DIR]
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from reduced_dynamics import figures, plotting
from reduced_dynamics.comparison import run

from .spec import DeepLinearSpec

NAME = "deep_linear_modes"


def make_figure(out_dir: Path, quick: bool = False) -> list[Path]:
    spec = DeepLinearSpec(t_max=10.0, train_size=64) if quick else DeepLinearSpec()
    report = run(spec, progress=False)
    theory, reference = report.theory, report.reference
    stem = Path(out_dir) / NAME
    fig, (left, right) = plotting.figure(width=plotting.FULL_WIDTH, height=2.4, ncols=2)
    plotting.loss_axes(left, {"theory (DL-6)": theory, **report.extras}, reference, report.levels)
    stride = plotting.thin_markers(reference.t.size)
    with plt.rc_context(plotting.STYLE):
        left.set_title(f"deep-linear {spec.in_dim}-{spec.hidden}-{spec.out_dim}, P={spec.train_size}, lr={spec.lr}")
        for i, s in enumerate(spec.singular_values):
            colour = plotting.COLOURS[i % len(plotting.COLOURS)]
            right.plot(theory.t, theory.observables["u"][:, i] / s, color=colour, label=f"s{i + 1} = {s:g}")
            right.plot(reference.t[::stride], reference.observables["u"][::stride, i] / s, "o", color=colour,
                       markerfacecolor="none", markeredgewidth=0.7)
        right.set_xlabel(plotting.AXIS_LABELS["flow_time"])
        right.set_ylabel("mode strength u_i / s_i")
        right.legend(loc="center right")
    arrays = {"t": theory.t, "loss": theory.loss, "u": theory.observables["u"], "t_reference": reference.t,
              "loss_reference": reference.loss, "u_reference": reference.observables["u"]}
    numbers = {key: value for key, value in report.metrics.items() if not isinstance(value, np.ndarray)}
    return figures.save(fig, stem, spec, arrays, {"metrics": numbers, "levels": report.levels})


if __name__ == "__main__":
    import sys

    from reduced_dynamics.cli import run_figure_script
    sys.exit(run_figure_script(NAME))
