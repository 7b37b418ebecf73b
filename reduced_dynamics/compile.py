"""Derived SymPy systems -> fast NumPy callables, cached on disk.

A derivation builder (a function in ``derivations/``) returns ``{name: (argument_groups, outputs)}``:
each argument group is a list of SymPy symbols, the outputs a list or Matrix of expressions. Every
function is turned into plain Python/NumPy source with common subexpressions eliminated (``sympy.cse``),
so a generated function takes one array per argument group (symbol index on the first axis, any trailing
batch axes) and returns an array with the output shape followed by the batch axes.

The generated source is cached as JSON under a key made of the derivation's source (its module and the other
modules of its package, which it may build on), the builder's
name and sizes, this module's code-generation version and the library versions, never the parameter values
(those are runtime arguments). Cache files are written atomically; an entry that cannot be read, fails its
checksum or does not compile is rebuilt and overwritten, never trusted.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import platform
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import numpy as np
import sympy as sp
from sympy.printing.numpy import NumPyPrinter

from .files import atomic_write_json

CODEGEN_VERSION = "1"


def cache_dir() -> Path:
    """``$REDUCED_DYNAMICS_CACHE`` if set, else ``~/.cache/reduced_dynamics``."""
    env = os.environ.get("REDUCED_DYNAMICS_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "reduced_dynamics"


def derivation_source(module: ModuleType) -> str:
    """The source a derivation depends on: its own module and every other module of its package (a
    derivation may build on another's pieces, e.g. attn-s on attn-m's loss in B), in a fixed order."""
    own = inspect.getsource(module)
    folder = Path(inspect.getfile(module)).parent
    others = [p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.py"))]
    return own + "".join(others)


def derivation_hash(module: ModuleType) -> str:
    """Short SHA-256 of a derivation's source (``derivation_source``): recorded in every result's metadata."""
    return hashlib.sha256(derivation_source(module).encode()).hexdigest()[:16]


@dataclass
class CompiledSystem:
    functions: dict[str, Callable[..., np.ndarray]]
    derivation_hash: str
    cache_path: Path
    from_cache: bool
    sources: dict[str, str] = field(repr=False, default_factory=dict)

    def __getitem__(self, name: str) -> Callable[..., np.ndarray]:
        return self.functions[name]


def compile_system(module: ModuleType, builder: str, sizes: dict[str, Any],
                   directory: Path | None = None) -> CompiledSystem:
    """Compile ``getattr(module, builder)(**sizes)``, using the disk cache when a valid entry exists."""
    directory = Path(directory) if directory is not None else cache_dir()
    dhash = derivation_hash(module)
    key_material = json.dumps({
        "module": module.__name__, "source": derivation_source(module), "builder": builder,
        "sizes": sizes, "codegen": CODEGEN_VERSION, "sympy": sp.__version__, "numpy": np.__version__,
        "python": platform.python_version(),
    }, sort_keys=True, default=str)
    key = hashlib.sha256(key_material.encode()).hexdigest()
    size_tag = "-".join(f"{k}{v}" for k, v in sorted(sizes.items()))
    path = directory / f"{module.__name__.split('.')[-1]}-{builder}-{size_tag}-{key[:16]}.json"

    if path.exists():
        try:
            sources = _read_entry(path, key)
            return CompiledSystem(_load_sources(sources), dhash, path, True, sources)
        except Exception as exc:  # any defect: rebuild, never trust
            warnings.warn(f"cache entry {path} is unusable ({exc}); rebuilding it", RuntimeWarning)

    derived = getattr(module, builder)(**sizes)
    sources = {name: generate_source(name, args, outputs) for name, (args, outputs) in derived.items()}
    functions = _load_sources(sources)
    atomic_write_json(path, {"key": key, "sha256": _digest(sources), "sources": sources})
    return CompiledSystem(functions, dhash, path, False, sources)


def _digest(sources: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(sources, sort_keys=True).encode()).hexdigest()


def _read_entry(path: Path, key: str) -> dict[str, str]:
    payload = json.loads(path.read_text(encoding="utf-8"))
    if payload.get("key") != key:
        raise ValueError("key mismatch")
    sources = payload["sources"]
    if payload.get("sha256") != _digest(sources):
        raise ValueError("checksum mismatch")
    return sources


def _stack(items: list, shape: tuple[int, ...]) -> np.ndarray:
    try:  # fast path: every output already has the same shape
        out = np.array(items, dtype=float)
    except ValueError:  # constants mixed with arrays: broadcast them
        out = np.stack(np.broadcast_arrays(*[np.asarray(x, dtype=float) for x in items]))
    return out.reshape(shape + out.shape[1:])


def _load_sources(sources: dict[str, str]) -> dict[str, Callable[..., np.ndarray]]:
    functions = {}
    for name, source in sources.items():
        namespace: dict[str, Any] = {"numpy": np, "_stack": _stack}
        exec(compile(source, f"<reduced_dynamics generated {name}>", "exec"), namespace)
        functions[name] = namespace[name]
    return functions


def generate_source(name: str, arg_groups: list[list[sp.Symbol]], outputs: Any) -> str:
    """Python source of ``def name(arg0, arg1, ...)`` evaluating ``outputs`` with CSE."""
    if isinstance(outputs, sp.MatrixBase):
        shape, flat = tuple(outputs.shape), list(outputs)
    else:
        flat = list(outputs)
        shape = (len(flat),)
    rename = {}
    lines = [f"def {name}({', '.join(f'arg{g}' for g in range(len(arg_groups)))}):"]
    for g, group in enumerate(arg_groups):
        for k, symbol in enumerate(group):
            local = sp.Symbol(f"a{g}_{k}")
            rename[symbol] = local
            lines.append(f"    {local} = arg{g}[{k}]")
    flat = [sp.sympify(e).xreplace(rename) for e in flat]
    replacements, reduced = sp.cse(flat, symbols=sp.numbered_symbols("x"))
    printer = NumPyPrinter({"fully_qualified_modules": True, "allow_unknown_functions": False})
    for symbol, expr in replacements:
        lines.append(f"    {symbol} = {printer.doprint(expr)}")
    items = ", ".join(printer.doprint(e) for e in reduced)
    lines.append(f"    return _stack([{items}], {shape!r})")
    return "\n".join(lines) + "\n"
