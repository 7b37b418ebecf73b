"""The one writer of a paper figure's files: ``save(fig, stem, spec, arrays, summary)``.

Writes ``stem.pdf`` and ``stem.png`` (fixed metadata, byte-stable), ``stem.npz`` (the arrays behind the
figure plus ``meta``) and ``stem.json``; ``meta`` and the JSON are the same record: the spec(s) the figure was
made from, the library versions and the numbers it shows (``summary``). Figure scripts only compute and plot.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .files import atomic_save_npz, atomic_write_json, to_json
from .plotting import figure_record, save as save_drawing


def save(fig: Any, stem: str | Path, spec: Any, arrays: dict[str, Any], summary: dict[str, Any]) -> list[Path]:
    """Write the four files of a figure; ``spec`` is a Spec or a dict label -> Spec (several runs)."""
    stem = Path(stem)
    record = figure_record(spec, summary)
    written = save_drawing(fig, stem)
    written.append(atomic_save_npz(stem.with_suffix(".npz"), meta=np.array(to_json(record)),
                                   **{name: np.asarray(value) for name, value in arrays.items()}))
    written.append(atomic_write_json(stem.with_suffix(".json"), record))
    return written
