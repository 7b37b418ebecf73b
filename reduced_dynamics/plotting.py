"""One figure style for every family: paper-column sizes, no TeX, colour-blind-safe colours (Okabe-Ito),
theory as lines, gradient descent as markers, reference levels as dotted lines. Files are written
atomically, as PDF and PNG, with their variable metadata (creation date, software) removed so that two
runs give byte-identical files.
"""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .files import atomic_write_bytes  # noqa: E402
from .trajectory import versions  # noqa: E402

COLUMN_WIDTH = 3.4      # inches: one column of a two-column paper
FULL_WIDTH = 7.0
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")

STYLE = {
    "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7, "xtick.labelsize": 7,
    "ytick.labelsize": 7, "lines.linewidth": 1.4, "lines.markersize": 3, "axes.spines.top": False,
    "axes.spines.right": False, "savefig.dpi": 200, "figure.dpi": 100, "text.usetex": False,
    "axes.prop_cycle": matplotlib.cycler(color=COLOURS), "legend.frameon": False,
    "svg.hashsalt": "reduced_dynamics", "pdf.compression": 6,
}


def figure(width: float = COLUMN_WIDTH, height: float = 2.4, ncols: int = 1, nrows: int = 1):
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), constrained_layout=True)
    return fig, axes


def save(fig, stem: str | Path) -> list[Path]:
    """Write ``stem.pdf`` and ``stem.png`` atomically with fixed metadata; close the figure."""
    stem = Path(stem)
    written = []
    for suffix, metadata in ((".pdf", {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None}),
                             (".png", {"Software": None})):
        buffer = io.BytesIO()
        with plt.rc_context(STYLE):
            fig.savefig(buffer, format=suffix[1:], metadata=metadata)
        written.append(atomic_write_bytes(stem.with_suffix(suffix), buffer.getvalue()))
    plt.close(fig)
    return written


def thin_markers(n: int, target: int = 60) -> int:
    """Stride that leaves about ``target`` markers of an n-point curve."""
    return max(1, n // target)


AXIS_LABELS = {"flow_time": "gradient-flow time t", "depth": "continuous depth tau", "lr_step": "lr * step"}


def loss_axes(ax, theory: dict, reference=None, levels: dict | None = None, log_time: bool = False,
              ylabel: str = "loss", xlabel: str = "flow_time"):
    """Theory curves as lines (first one emphasised), the reference as markers, levels dotted."""
    with plt.rc_context(STYLE):
        for k, (label, traj) in enumerate(theory.items()):
            style = {"color": COLOURS[k % len(COLOURS)], "zorder": 3 if k == 0 else 2}
            if k > 0:
                style.update(linestyle="--", linewidth=1.0)
            t = traj.t
            keep = t > 0 if log_time else slice(None)
            ax.plot(t[keep], traj.loss[keep], label=label, **style)
        if reference is not None:
            stride = thin_markers(len(reference.t))
            t, loss = reference.t[::stride], reference.loss[::stride]
            keep = t > 0 if log_time else slice(None)
            ax.plot(t[keep], loss[keep], "o", markerfacecolor="none", color="#000000", markeredgewidth=0.7,
                    label="gradient descent", zorder=4)
        greys = ("#555555", "#999999", "#333333", "#bbbbbb")
        for k, (label, value) in enumerate((levels or {}).items()):
            ax.axhline(value, color=greys[k % len(greys)], linestyle=":", linewidth=1.0, label=label)
        if log_time:
            ax.set_xscale("log")
        ax.set_xlabel(AXIS_LABELS.get(xlabel, xlabel))
        ax.set_ylabel(ylabel)
        ax.legend(loc="upper right")


def figure_record(spec, data: dict) -> dict:
    """The JSON written beside a figure: its spec (a Spec, or a dict label -> Spec for a figure of several
    runs), the library versions, and the numbers the figure shows."""
    specs = {k: v.to_dict() for k, v in spec.items()} if isinstance(spec, dict) else spec.to_dict()
    return {"spec": specs, "versions": versions(), **data}
