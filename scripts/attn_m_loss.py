"""Figure: the attn-m loss curve. Theory (sample-moment reduced flow, LA-22 on §5 moments) as a line, the
population flow and the closed form (LA-27) dashed, gradient descent on the full model as markers, the
minimum L* (LA-21) dotted. Default sizes are check C6 of linear_attention.md §11; ``quick`` uses P = 4000.

    reduced-dynamics figures attn_m_loss [--quick] [--out DIR]     (or: python -m scripts.attn_m_loss ...)
"""
from __future__ import annotations

from pathlib import Path

from reduced_dynamics import plotting
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
    written = plotting.save(fig, stem)
    written.append(report.save_curves(stem.with_suffix(".npz")))
    from reduced_dynamics.files import atomic_write_json
    written.append(atomic_write_json(stem.with_suffix(".json"), report.to_dict()))
    return written


if __name__ == "__main__":
    import sys

    from reduced_dynamics.cli import run_figure_script
    sys.exit(run_figure_script(NAME))
