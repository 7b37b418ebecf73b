"""Atomic file output: write to a temporary file in the target folder, then rename over the target.

A reader never sees a half-written file, and an interrupted run leaves either the old file or none.
Only regular files are ever replaced: a target that is a folder, a symlink, a device or a FIFO is an
``OutputError`` naming it (``--out /dev/null`` never replaces the device), as is a folder that cannot be
made or written. Files get the permissions any tool gives (0666 masked by the umask), not mkstemp's 0600.
Inside ``all_or_nothing()`` the renames wait until the block ends: a verb that fails part way leaves none
of its outputs. ``exclusive()`` refuses a second process writing the same output set at the same time
(``filelock``), and ``check_target(..., writable=True)`` / ``check_folder`` find an output that cannot be
written before any work is done.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .errors import OutputError

_staged: list[list[tuple[str, Path]]] = []       # open all_or_nothing blocks: (temporary, target) pairs


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_target(path: str | os.PathLike, writable: bool = False) -> Path:
    """The path as a Path if it may be written: absent or a regular file, in a folder that is a folder.
    ``writable``: also check, by creating and removing a temporary file there, that its folder (or the
    nearest one that exists, where the missing ones would be made) can be written: a command checks its
    outputs this way before it computes anything."""
    path = Path(path)
    if os.path.lexists(path):
        mode = os.lstat(path).st_mode
        if not stat.S_ISREG(mode):
            kind = ("a folder" if stat.S_ISDIR(mode) else "a symlink" if stat.S_ISLNK(mode) else
                    "a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                    else "not a regular file")
            raise OutputError(f"{path}: is {kind}; give the path of a regular file (it is never replaced)")
    for parent in [path.parent, *path.parent.parents]:
        if os.path.lexists(parent):
            if not parent.is_dir():
                raise OutputError(f"{parent}: is a file, not a folder; choose another output location")
            if writable:
                check_writable_folder(parent)
            break
    return path


def check_folder(path: str | os.PathLike) -> Path:
    """The path as a Path if it is, or can be made, a folder that can be written (checked by writing)."""
    path = Path(path)
    if os.path.lexists(path) and not path.is_dir():
        raise OutputError(f"{path}: is a file, not a folder; choose another output folder")
    if path.is_dir():
        check_writable_folder(path)
        return path
    check_target(path / "probe", writable=True)
    return path


def check_writable_folder(folder: Path) -> None:
    """OutputError naming ``folder`` unless a file can be created in it (the only test that also holds for
    read-only mounts, ACLs and /proc, and for root)."""
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".write-check."):
            pass
    except OSError as exc:
        raise OutputError(f"{folder}: cannot write there ({exc.strerror or exc}); choose another output "
                          f"location") from None


@contextlib.contextmanager
def exclusive(lock: Path, refusal: str, holder: str = "") -> Iterator[None]:
    """Hold the lock file ``lock`` (``filelock``: an OS lock, released when the process ends however it
    ends) for the block; if another process holds it, an ``OutputError`` at once with the message
    ``refusal``, its ``{holder}`` replaced by what the holder wrote as its ``holder`` (e.g. ``pid 123``).
    A file system without OS locks gives a one-line warning and runs the block unlocked."""
    import warnings

    from filelock import FileLock, Timeout
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        before = lock.read_text().strip() if lock.exists() else ""
    except OSError as exc:
        raise OutputError(f"{lock.parent}: cannot write there ({exc.strerror or exc})") from None
    handle = FileLock(str(lock), timeout=0)
    try:
        handle.acquire()
    except Timeout:
        raise OutputError(refusal.format(holder=before or "holder unknown")) from None
    except NotImplementedError:
        warnings.warn(f"{lock.parent}: this file system has no file locks; nothing stops a second run writing "
                      f"the same outputs at the same time", RuntimeWarning)
        yield
        return
    except OSError as exc:
        raise OutputError(f"{lock.parent}: cannot write there ({exc.strerror or exc})") from None
    try:
        if holder:
            with open(lock, "w") as note:           # who holds it, for the message of a refused second run
                note.write(holder)
        yield
    finally:
        handle.release()


def atomic_write_bytes(path: str | os.PathLike, data: bytes, sync: bool = True) -> Path:
    """Write ``data`` to a temporary file beside ``path`` and rename it over ``path``. ``sync``: flush it to
    the disk first (durable across a system crash); without, the rename is still atomic for every reader,
    and a crash may leave an empty or stale file, which a caller that verifies its files can accept."""
    path = check_target(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise OutputError(f"{path.parent}: cannot write there ({exc.strerror or exc})") from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
        if _staged:
            _staged[-1].append((tmp, path))
        else:
            os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None
        raise
    return path


@contextlib.contextmanager
def all_or_nothing() -> Iterator[None]:
    """Writes inside the block become visible together when it ends, or not at all if it raises."""
    _staged.append([])
    try:
        yield
    except BaseException:
        for tmp, _ in _staged.pop():
            if os.path.exists(tmp):
                os.unlink(tmp)
        raise
    pending = _staged.pop()
    for tmp, path in pending:
        check_target(path)
    for tmp, path in pending:
        if _staged:
            _staged[-1].append((tmp, path))
        else:
            os.replace(tmp, path)


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
