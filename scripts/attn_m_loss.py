"""Figure: the attn-m loss curve. Theory (sample-moment reduced flow, LA-22 on §5 moments) as a line, the
population flow and the closed form (LA-27) dashed, gradient descent on the full model as markers, the
minimum L* (LA-21) dotted. Default sizes are check C6 of linear_attention.md §11; ``quick`` uses P = 4000.

    reduced-dynamics figures attn_m_loss [--quick] [--out DIR]     (or: python -m reduced_dynamics.scripts.attn_m_loss ...)
"""
from __future__ import annotations

from pathlib import Path

from reduced_dynamics import figures, plotting
from reduced_dynamics.comparison import run
from reduced_dynamics.specs import LinearMergedSpec

NAME = "attn_m_loss"


def make_figure(out_dir: Path, quick: bool = False) -> list[Path]:
    spec = LinearMergedSpec(train_size=4000 if quick else 20000)
    report = run(spec, progress=False)
    stem = Path(out_dir) / NAME
    fig, ax = plotting.figure()
    plotting.loss_axes(ax, {"theory (sample moments)": report.theory,
                            "population flow": report.extras["population flow"],
                            "closed form (LA-27)": report.extras["closed form"]},
                       report.reference, {"L*": report.levels["L* (LA-21)"]})
    ax.set_title(f"attn-m: D={spec.dim}, N={spec.context}, H={spec.heads}, P={spec.sample_size}")
    arrays = {"t": report.theory.t, "loss": report.theory.loss, "t_reference": report.reference.t,
              "loss_reference": report.reference.loss}
    for label, traj in report.extras.items():
        key = label.replace(" ", "_")
        arrays.update({f"t_{key}": traj.t, f"loss_{key}": traj.loss})
    return figures.save(fig, stem, spec, arrays, report.to_dict())


if __name__ == "__main__":
    import sys

    from reduced_dynamics.cli import run_figure_script
    sys.exit(run_figure_script(NAME))
