"""One figure style for every family: paper-column sizes, no TeX, colour-blind-safe colours (Okabe-Ito),
theory as lines, gradient descent as markers, reference levels as dotted lines. Files are written
atomically, as PDF and PNG, with their variable metadata (creation date, software) removed so that two
runs give byte-identical files.

Nothing here touches matplotlib's global state: no backend is chosen (a Jupyter kernel keeps its inline
backend), file figures are plain ``matplotlib.figure.Figure`` objects that pyplot never sees, and the style
is applied inside ``style(...)`` blocks (``matplotlib.rc_context``), so a user's ``rcParams`` are the same
after a call as before it. Every drawing function takes ``style=``: a user's style (a dict of rcParams, a
matplotlib style name or file, or a list of those) applied on top of the project's ``STYLE``.
"""
from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any, Iterator

import matplotlib
import matplotlib.style
import numpy as np
from matplotlib.figure import Figure

from .files import atomic_write_bytes
from .versions import versions

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


@contextlib.contextmanager
def style(user: Any = None) -> Iterator[None]:
    """The project's ``STYLE``, then ``user`` (rcParams dict, style name or file, or a list) on top, for the
    duration of the block; every rcParam is restored on exit."""
    with matplotlib.rc_context(STYLE):
        if user is not None:
            matplotlib.style.use(user)      # inside rc_context: undone on exit
        yield


def figure(width: float = COLUMN_WIDTH, height: float = 2.4, ncols: int = 1, nrows: int = 1,
           style: Any = None) -> tuple[Figure, Any]:
    """A file figure: a ``matplotlib.figure.Figure`` (not registered with pyplot, so it never appears in a
    notebook by itself and needs no closing) and its axes, made in the project's style."""
    with _style(style):
        fig = Figure(figsize=(width, height), layout="constrained")
        axes = fig.subplots(nrows, ncols)
    return fig, axes


def save(fig: Any, stem: str | Path, style: Any = None) -> list[Path]:
    """Write ``stem.pdf`` and ``stem.png`` atomically with fixed metadata."""
    stem = Path(stem)
    written = []
    for suffix, metadata in ((".pdf", {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None}),
                             (".png", {"Software": None})):
        buffer = io.BytesIO()
        with _style(style):
            fig.savefig(buffer, format=suffix[1:], metadata=metadata)
        written.append(atomic_write_bytes(stem.with_suffix(suffix), buffer.getvalue()))
    return written


_style = style      # the functions below take a parameter called style


def thin_markers(n: int, target: int = 60) -> int:
    """Stride that leaves about ``target`` markers of an n-point curve."""
    return max(1, n // target)


AXIS_LABELS = {"flow_time": "gradient-flow time t", "depth": "continuous depth tau", "lr_step": "lr * step"}


def loss_axes(ax, theory: dict, reference=None, levels: dict | None = None, log_time: bool = False,
              ylabel: str = "loss", xlabel: str = "flow_time", style: Any = None):
    """Theory curves as lines (first one emphasised), the reference as markers, levels dotted."""
    with _style(style):
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
        if len(ax.get_legend_handles_labels()[0]) > 6:     # a report with many curves: the legend beside the axes
            ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
        else:
            ax.legend(loc="upper right")


NOTEBOOK_SIZE = (5.0, 3.2)     # inches: a new figure of Trajectory.plot / Report.plot


def notebook_axes(ax: Any = None, style: Any = None) -> Any:
    """``ax``, or the axes of a new pyplot figure (so that it shows inline in a notebook, under whatever
    backend the user has: pyplot is imported here, on first use, never at import of the package)."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt
    with _style(style):
        _, ax = plt.subplots(figsize=NOTEBOOK_SIZE, layout="constrained")
    return ax


def plot_trajectory(traj: Any, ax: Any = None, style: Any = None, **kwargs: Any) -> Any:
    """The loss of one Trajectory against its axis (a line; ``kwargs`` go to ``ax.plot``); returns ``ax``."""
    ax = notebook_axes(ax, style)
    kwargs.setdefault("label", " ".join(str(traj.meta[k]) for k in ("model", "kind") if traj.meta.get(k)) or None)
    with _style(style):
        ax.plot(traj.t, traj.loss, **kwargs)
        ax.set_xlabel(AXIS_LABELS.get(traj.axis or "", traj.axis or "t"))
        ax.set_ylabel("loss")
        if kwargs["label"]:
            ax.legend(loc="upper right")
    return ax


def report_axes(ax: Any, report: Any, style: Any = None) -> Any:
    """A comparison report on ``ax``: theory curves as lines, gradient descent as markers, levels dotted
    (on different axes: the theory against its own, the trained risk as a level)."""
    theories = {"theory": report.theory, **report.extras}
    if report.theory.axis == report.reference.axis:
        loss_axes(ax, theories, report.reference, report.levels, style=style)
    else:
        levels = {**report.levels, f"trained ({report.reference.meta.get('kind')})": float(report.reference.loss[-1])}
        # a theory on a geometric grid (sparse: depth 0.25 ... 4096) on a linear axis is a spike at 0
        t = np.asarray(report.theory.t, dtype=float)
        positive = t[t > 0]
        log_time = positive.size > 1 and positive.max() >= 1000 * positive.min()
        loss_axes(ax, theories, None, levels, log_time=log_time, xlabel=report.theory.axis, style=style)
    with _style(style):
        ax.set_title(f"{report.model}: theory vs gradient descent")
    return ax


def figure_record(spec, data: dict) -> dict:
    """The JSON written beside a figure: its spec (a Spec, or a dict label -> Spec for a figure of several
    runs), the library versions, and the numbers the figure shows."""
    specs = {k: v.to_dict() for k, v in spec.items()} if isinstance(spec, dict) else spec.to_dict()
    return {"spec": specs, "versions": versions(), **data}
