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


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Strict JSON (see ``json_ready``), indented, keys sorted."""
    return atomic_write_text(path, json.dumps(json_ready(obj), indent=2, sort_keys=True, allow_nan=False) + "\n")


def atomic_save_npz(path: str | os.PathLike, **arrays: Any) -> Path:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return atomic_write_bytes(path, buffer.getvalue())


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


def to_json(obj: Any) -> str:
    """Deterministic strict JSON (sorted keys, ``json_ready``)."""
    return json.dumps(json_ready(obj), sort_keys=True, allow_nan=False)
