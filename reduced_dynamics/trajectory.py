"""The one result type: times, loss, named observables, events, metadata, its spec and its axis.

Saved as ``.npz`` with float arrays ``t`` and ``loss``, one array per observable, and a JSON string ``meta``
(model, spec, axis, versions, derivation hash, events, observable names). ``Trajectory.load`` returns an
equal object, its typed ``spec`` rebuilt through the family registry; a file that is missing or damaged is a
``ResultFileError`` naming it. Files are written atomically.

For notebooks: ``to_dataframe()`` (pandas) and ``to_xarray()`` (xarray; both optional, the ``data`` extra,
imported at first use), ``plot(ax=...)``, a one-line ``repr`` and a small HTML table. ``from_arrays`` wraps a
user's own run (a PyTorch, JAX or NumPy training loop's recorded losses) so that ``rd.compare`` takes it.

``axis`` says what ``t`` is: ``"flow_time"`` (gradient-flow time; GD after k steps at rate lr sits at
t = lr k), ``"depth"`` (continuous depth of the sparse family), ``"lr_step"`` (lr times optimiser steps,
for Adam not a flow time). Plots label their horizontal axis by it; comparisons never mix two axes.
"""
from __future__ import annotations

import html
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ReducedDynamicsError, ResultFileError, SpecError, optional_import
from .files import atomic_save_npz, to_json
from .specs import Spec
from .versions import versions

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

    def _repr_html_(self) -> str:
        """A small table for Jupyter: model, kind, axis, points, time range, final loss, events."""
        rows = [("model", self.meta.get("model", "?")), ("kind", self.meta.get("kind", "")),
                ("axis", self.axis), ("points", self.t.size),
                ("t", f"{self.t[0]:.4g} to {self.t[-1]:.4g}" if self.t.size else "-"),
                ("final loss", f"{self.loss[-1]:.6g}" if self.loss.size else "-")]
        rows += [(f"event: {k}", f"{v:.6g}" if isinstance(v, float) else v) for k, v in self.events.items()
                 if not isinstance(v, (list, dict))]
        if self.observables:
            rows.append(("observables", ", ".join(f"{k} {tuple(v.shape)}" for k, v in self.observables.items())))
        body = "".join(f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
                       f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>" for k, v in rows)
        return f"<table><caption>Trajectory</caption>{body}</table>"

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

    @classmethod
    def from_arrays(cls, t: Any, loss: Any, observables: dict[str, Any] | None = None, model: str | None = None,
                    spec: Any = None, axis: str = "flow_time", kind: str = "user",
                    events: dict[str, Any] | None = None) -> "Trajectory":
        """A Trajectory of a user's own run: ``t`` and ``loss`` (1-d, equal length; on the ``flow_time`` axis
        a GD run after k steps at rate lr sits at t = lr k), optional observables (first axis along ``t``).
        ``spec`` (a Spec, or a dict of its fields with ``model``) ties it to a model, so that
        ``rd.compare(rd.predict(spec), this)`` compares like with like; ``model`` alone is enough for a label.
        The meta records kind, spec and library versions as for the package's own runs."""
        if spec is not None and not isinstance(spec, dict):
            if not hasattr(spec, "to_dict") or not hasattr(spec, "model"):
                raise SpecError("spec", "a Spec (rd.spec(model, ...)) or a dict of its fields", spec)
            if model is not None and model != spec.model:
                raise SpecError("model", f"the spec's model {spec.model!r}", model)
            model = spec.model
        if isinstance(spec, dict):
            fields: dict[str, Any] | None = {k: v for k, v in spec.items() if k != "model"}
            model = spec.get("model", model)
        else:
            fields = spec.to_dict() if spec is not None else None
        meta = provenance(model, fields, kind) if model is not None else {"kind": kind, "versions": versions()}
        out = cls(t=t, loss=loss, observables=dict(observables or {}), events=dict(events or {}), meta=meta,
                  axis=axis)
        out.spec = spec if spec is not None and not isinstance(spec, dict) else (
            _rebuild_spec(meta) if fields is not None else None)
        return out

    def to_dataframe(self) -> Any:
        """A pandas DataFrame: index ``t`` (named after the axis in ``df.index.name``), a column ``loss``, one
        column per observable with one value per time, and for an observable with more axes (shape (T, a, b
        ...)) one flat column per component, named ``name[i]``, ``name[i,j]`` ... Observables not indexed by
        time (first axis not of length T) are left out: ``to_xarray`` keeps them. ``df.attrs`` holds model,
        kind, axis and events. Needs pandas (the ``data`` extra)."""
        pd = optional_import("pandas", "Trajectory.to_dataframe")
        columns: dict[str, np.ndarray] = {"loss": self.loss}
        for name, value in self.observables.items():
            if value.ndim == 0 or value.shape[0] != self.t.size:
                continue
            if value.ndim == 1:
                columns[name] = value
                continue
            flat = value.reshape(self.t.size, -1)
            for k, index in enumerate(np.ndindex(*value.shape[1:])):
                columns[f"{name}[{','.join(map(str, index))}]"] = flat[:, k]
        frame = pd.DataFrame(columns, index=pd.Index(self.t, name="t"))
        frame.attrs.update(model=self.meta.get("model"), kind=self.meta.get("kind"), axis=self.axis,
                           events=dict(self.events))
        return frame

    def to_xarray(self) -> Any:
        """An xarray Dataset: coordinate ``t``, variable ``loss(t)``, and each observable with dims ``t`` plus
        ``<name>_dim_1``, ``<name>_dim_2`` ... (an observable not indexed by time: ``<name>_dim_0`` ...).
        ``attrs``: model, kind, axis, and spec, versions, events as JSON strings (``json.loads`` them; strings
        keep the Dataset writable with ``to_netcdf``). Needs xarray (the ``data`` extra)."""
        xr = optional_import("xarray", "Trajectory.to_xarray")
        data: dict[str, Any] = {"loss": ("t", self.loss)}
        for name, value in self.observables.items():
            timed = value.ndim > 0 and value.shape[0] == self.t.size
            dims = (["t"] if timed else []) + [f"{name}_dim_{k}" for k in range(int(timed), value.ndim)]
            data[name] = (dims, value)
        attrs = {"model": self.meta.get("model", ""), "kind": self.meta.get("kind", ""), "axis": self.axis or "",
                 "spec": to_json(self.meta.get("spec")), "versions": to_json(self.meta.get("versions", {})),
                 "events": to_json(self.events)}
        if "derivation_hash" in self.meta:
            attrs["derivation_hash"] = str(self.meta["derivation_hash"])
        return xr.Dataset(data, coords={"t": ("t", self.t, {"axis": self.axis or ""})}, attrs=attrs)

    def plot(self, ax: Any = None, style: Any = None, **kwargs: Any) -> Any:
        """The loss against ``t`` on ``ax`` (default: a new pyplot figure, shown inline in a notebook), in the
        project's style with ``style`` (rcParams dict or matplotlib style name) on top; ``kwargs`` go to
        ``ax.plot`` (``label``, ``color``, ``marker`` ...). Returns the axes."""
        from .plotting import plot_trajectory
        return plot_trajectory(self, ax, style, **kwargs)

    def at(self, times: np.ndarray) -> np.ndarray:
        """Loss interpolated at the given times (linear in t)."""
        return np.interp(times, self.t, self.loss)


def _rebuild_spec(meta: dict) -> Any:
    """The typed spec of a loaded result, from the spec classes defined so far (``Spec.by_model``: ours, and a
    plug-in's once its family is loaded); None for a model whose spec class is not known here."""
    try:
        return Spec.by_model[meta["model"]].from_dict(meta["spec"])
    except (KeyError, TypeError, ReducedDynamicsError):
        return None


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
