"""The one result type: times, loss, named observables, events and metadata.

Saved as ``.npz`` with float arrays ``t`` and ``loss``, one array per observable, and a JSON string ``meta``
(model, spec, versions, derivation hash, events, observable names). ``Trajectory.load`` returns an equal
object. Files are written atomically.
"""
from __future__ import annotations

import functools
import json
import platform
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np

from .files import atomic_save_npz, to_json

RESERVED = ("t", "loss", "meta")


@dataclass
class Trajectory:
    t: np.ndarray
    loss: np.ndarray
    observables: dict[str, np.ndarray] = field(default_factory=dict)
    events: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

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
        meta = dict(self.meta, events=self.events, observables=sorted(self.observables))
        return atomic_save_npz(path, sync, t=self.t, loss=self.loss, meta=np.array(to_json(meta)),
                               **self.observables)

    @classmethod
    def load(cls, path: str | Path) -> "Trajectory":
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            names = meta.pop("observables", [])
            events = meta.pop("events", {})
            return cls(t=data["t"], loss=data["loss"], observables={n: data[n] for n in names},
                       events=events, meta=meta)

    def at(self, times: np.ndarray) -> np.ndarray:
        """Loss interpolated at the given times (linear in t)."""
        return np.interp(times, self.t, self.loss)


@functools.lru_cache(maxsize=1)
def _versions() -> tuple[tuple[str, str], ...]:
    out = {"python": platform.python_version()}
    for name in ("reduced_dynamics", "numpy", "scipy", "sympy"):
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
