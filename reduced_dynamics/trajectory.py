"""The one result type: times, loss, named observables, events, metadata, its spec and its axis.

Saved as ``.npz`` with float arrays ``t`` and ``loss``, one array per observable, and a JSON string ``meta``
(model, spec, axis, versions, derivation hash, events, observable names). ``Trajectory.load`` returns an
equal object, its typed ``spec`` rebuilt through the family registry; a file that is missing or damaged is a
``ResultFileError`` naming it. Files are written atomically.

``axis`` says what ``t`` is: ``"flow_time"`` (gradient-flow time; GD after k steps at rate lr sits at
t = lr k), ``"depth"`` (continuous depth of the sparse family), ``"lr_step"`` (lr times optimiser steps,
for Adam not a flow time). Plots label their horizontal axis by it; comparisons never mix two axes.
"""
from __future__ import annotations

import functools
import json
import platform
import zipfile
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ResultFileError
from .files import atomic_save_npz, to_json

RESERVED = ("t", "loss", "meta")


@dataclass
class Trajectory:
    t: np.ndarray
    loss: np.ndarray
    observables: dict[str, np.ndarray] = field(default_factory=dict)
    events: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    spec: Any = field(default=None, compare=False)    # the validated Spec that produced it (None: not known)
    axis: str | None = None                           # flow_time, depth, lr_step ... (see module docstring)

    def __repr__(self) -> str:
        final = f"{self.loss[-1]:.6g}" if self.loss.size else "-"
        events = ", ".join(f"{k} {v:.4g}" for k, v in self.events.items() if isinstance(v, float))
        return (f"Trajectory({self.meta.get('model', '?')} {self.meta.get('kind', '')}, axis {self.axis}, "
                f"{self.t.size} points to t = {self.t[-1] if self.t.size else 0:.4g}, final loss {final}"
                + (f", {events}" if events else "") + ")")

    def __post_init__(self) -> None:
        self.t = np.asarray(self.t, dtype=float)
        self.loss = np.asarray(self.loss, dtype=float)
        if self.t.ndim != 1 or self.loss.shape != self.t.shape:
            raise ValueError(f"t and loss must be 1-d of equal length, got {self.t.shape} and {self.loss.shape}")
        self.observables = {k: np.asarray(v) for k, v in self.observables.items()}
        for name in self.observables:
            if name in RESERVED:
                raise ValueError(f"observable name {name!r} is reserved")

    def save(self, path: str | Path, sync: bool = True) -> Path:
        """Atomically, as ``.npz``; ``sync=False`` skips flushing to disk (see ``files.atomic_write_bytes``)."""
        meta = dict(self.meta, events=self.events, observables=sorted(self.observables), axis=self.axis)
        return atomic_save_npz(path, sync, t=self.t, loss=self.loss, meta=np.array(to_json(meta)),
                               **self.observables)

    @classmethod
    def load(cls, path: str | Path) -> "Trajectory":
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                names = meta.pop("observables", [])
                events = meta.pop("events", {})
                axis = meta.pop("axis", None)
                out = cls(t=data["t"], loss=data["loss"], observables={n: data[n] for n in names},
                          events=events, meta=meta, axis=axis)
        except FileNotFoundError:
            raise ResultFileError(path, "no such file") from None
        except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile, AttributeError) as exc:
            raise ResultFileError(path, f"not a readable result file ({type(exc).__name__}: {exc})") from None
        out.spec = _rebuild_spec(meta)
        return out

    def at(self, times: np.ndarray) -> np.ndarray:
        """Loss interpolated at the given times (linear in t)."""
        return np.interp(times, self.t, self.loss)


def _rebuild_spec(meta: dict) -> Any:
    """The typed spec of a loaded result, from the spec classes defined so far (``Spec.by_model``: ours, and a
    plug-in's once its family is loaded); None for a model whose spec class is not known here."""
    from .errors import ReducedDynamicsError
    from .specs import Spec
    try:
        return Spec.by_model[meta["model"]].from_dict(meta["spec"])
    except (KeyError, TypeError, ReducedDynamicsError):
        return None


@functools.lru_cache(maxsize=1)
def _versions() -> tuple[tuple[str, str], ...]:
    out = {"python": platform.python_version()}
    for name in ("reduced_dynamics", "numpy", "scipy", "sympy", "numba", "scikit-learn", "matplotlib"):
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = "not installed"
    return tuple(out.items())


def versions() -> dict[str, str]:
    """Versions of Python, this package and the libraries a result depends on (looked up once per process:
    the package-metadata look-up cost 12-15 ms a call)."""
    return dict(_versions())


def provenance(model: str, spec: Any, kind: str, derivation_hash: str | None = None, **extra: Any) -> dict:
    """Metadata block for a Trajectory: what was run, from which spec, with which code.

    ``kind`` says which side produced it: e.g. "theory-population", "theory-sample", "closed-form",
    "reference-gd".
    """
    meta = {"model": model, "kind": kind, "spec": spec.to_dict() if hasattr(spec, "to_dict") else spec,
            "versions": versions()}
    if derivation_hash is not None:
        meta["derivation_hash"] = derivation_hash
    meta.update(extra)
    return meta
