"""Atomic file output: write to a temporary file in the target folder, then rename over the target.

A reader never sees a half-written file, and an interrupted run leaves either the old file or none.
"""
from __future__ import annotations

import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def atomic_write_bytes(path: str | os.PathLike, data: bytes, sync: bool = True) -> Path:
    """Write ``data`` to a temporary file beside ``path`` and rename it over ``path``. ``sync``: flush it to
    the disk first (durable across a system crash); without, the rename is still atomic for every reader,
    and a crash may leave an empty or stale file, which a caller that verifies its files can accept."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str, sync: bool = True) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), sync)


def atomic_write_json(path: str | os.PathLike, obj: Any, sync: bool = True) -> Path:
    """Strict JSON (see ``json_ready``), indented, keys sorted."""
    return atomic_write_text(path, to_json(obj, indent=2) + "\n", sync)


def atomic_save_npz(path: str | os.PathLike, sync: bool = True, **arrays: Any) -> Path:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return atomic_write_bytes(path, buffer.getvalue(), sync)


def json_ready(obj: Any) -> Any:
    """``obj`` with NumPy arrays and scalars turned into lists and numbers, paths into strings, and every
    non-finite float (a time never reached, an undefined ratio) into ``None``: strict JSON has no NaN or
    Infinity, and other languages' parsers reject them."""
    if isinstance(obj, dict):
        return {key: json_ready(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(value) for value in obj]
    if isinstance(obj, np.ndarray):
        return json_ready(obj.tolist())
    if isinstance(obj, np.generic):
        return json_ready(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def to_json(obj: Any, indent: int | None = None) -> str:
    """Deterministic strict JSON (sorted keys, ``json_ready``). The common case, nothing non-finite,
    is encoded directly; only a value the strict encoder refuses sends the whole object through
    ``json_ready``."""
    try:
        return json.dumps(obj, sort_keys=True, allow_nan=False, indent=indent, default=_plain)
    except ValueError:
        return json.dumps(json_ready(obj), sort_keys=True, allow_nan=False, indent=indent)


def _plain(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
