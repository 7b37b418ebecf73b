"""The registry of model families: one lazy import path per family.

Our four faces are listed in ``BUILT_IN``; families of other installed packages come from the entry-point
group ``reduced_dynamics.families`` (``name = "package.module"``); ``register`` adds one at run time. A face
is imported and checked against the contract (``families.contract``) the first time it is used, so an
incomplete family fails at once with every broken rule named, not at its first missing hook.

``family(name)`` returns a ``RegisteredFamily``: the face with the contract's defaults filled in and the
spec and axis attached to every result. Workers of a sweep (process pool or Dask) receive the face's import
path, not a pickled registry, so plug-ins and run-time registrations work there too.
"""
from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from importlib import metadata
from types import ModuleType
from typing import Any, Iterator

from ..errors import FamilyError, SpecError
from ..specs import Spec
from .contract import Family, check
from .registered import RegisteredFamily

__all__ = ["BUILT_IN", "ENTRY_POINT_GROUP", "FAMILIES", "Family", "RegisteredFamily", "family", "family_of",
           "load_path", "names", "register", "spec"]

BUILT_IN = {
    "attn-m": "reduced_dynamics.families.attn_m",
    "softmax": "reduced_dynamics.families.softmax",
    "attn-s": "reduced_dynamics.families.attn_s",
    "sparse": "reduced_dynamics.families.sparse",
}
ENTRY_POINT_GROUP = "reduced_dynamics.families"
_at_run_time: dict[str, str] = {}


@functools.lru_cache(maxsize=1)
def _plugins() -> tuple[tuple[str, str], ...]:
    return tuple((ep.name, ep.value) for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)
                 if ep.name not in BUILT_IN)


def paths() -> dict[str, str]:
    """Model name -> import path of its face: built-in, then plug-ins, then run-time registrations."""
    return {**BUILT_IN, **dict(_plugins()), **_at_run_time}


def names() -> list[str]:
    return list(paths())


@functools.lru_cache(maxsize=None)
def load_path(path: str, expected_name: str | None = None) -> RegisteredFamily:
    """Import the face at ``path`` ("package.module" or "package.module:object"), check it, wrap it."""
    module_name, _, attribute = path.partition(":")
    try:
        face: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise FamilyError(f"family face {path!r} cannot be imported: {exc}") from None
    if attribute:
        face = getattr(face, attribute)
    check(face, expected_name)
    return RegisteredFamily(face, path)


def family(name: str) -> RegisteredFamily:
    """The family called ``name``; an unknown name is a SpecError naming ``model``."""
    if not isinstance(name, str):
        raise SpecError("model", "a model name (" + ", ".join(names()) + ")", name)
    where = paths()
    if name not in where:
        raise SpecError("model", "one of " + ", ".join(where), name)
    return load_path(where[name], name)


def register(face: str | ModuleType) -> RegisteredFamily:
    """Add a family at run time from its face's import path (or the imported module itself); checked now.
    Registering a name again replaces the earlier entry."""
    path = face if isinstance(face, str) else face.__name__
    registered = load_path(path)
    _at_run_time[registered.name] = path
    return registered


def family_of(spec_obj: Spec) -> RegisteredFamily:
    if not isinstance(spec_obj, Spec):
        raise SpecError("spec", "a spec object (build one with reduced_dynamics.spec(model, ...))", spec_obj)
    return family(spec_obj.model)


def spec(model: str, **fields: Any) -> Spec:
    """Build a model's spec from the same field names as the CLI flags (underscores for hyphens)."""
    return family(model).spec_class.from_dict(fields)


class _Registry(Mapping):
    """``FAMILIES``: name -> RegisteredFamily, loading each face on first access."""

    def __getitem__(self, name: str) -> RegisteredFamily:
        if name not in paths():
            raise KeyError(name)
        return family(name)

    def __iter__(self) -> Iterator[str]:
        return iter(names())

    def __len__(self) -> int:
        return len(paths())


FAMILIES: Mapping[str, RegisteredFamily] = _Registry()
