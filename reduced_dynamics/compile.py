"""Derived SymPy systems -> fast NumPy callables, cached on disk.

A derivation builder (a function in ``derivations/``) returns ``{name: (argument_groups, outputs)}``:
each argument group is a list of SymPy symbols, the outputs a list or Matrix of expressions. Every
function is compiled with common subexpressions eliminated (``sympy.cse``), so a generated function takes one
array per argument group (symbol index on the first axis, any trailing batch axes) and returns an array with
the output shape followed by the batch axes.

Functions named in ``polynomials`` (polynomials in their arguments with numeric coefficients, such as
a head's contribution to B and its pull-back) are also tabulated monomial by monomial
(``PolynomialTable``), the form the compiled integrator of ``reduced_dynamics.integrate.compiled`` evaluates.

What the cache stores is data, never code. Each function is a *program* (``function_program``), a
straight-line computation in JSON: which argument entries [g, k] to read, the CSE steps in order, and the
outputs. Steps and outputs are expression trees: a bare integer r names variable r (the unpacked entries,
then the steps before it), a list names its node kind first. The kinds are a fixed whitelist:
``add``, ``mul``, ``pow`` (any exponent; integer and rational ones are written as SymPy prints them),
the literals ``int``, ``rat`` [p, q] and ``float``, and the elementary functions of
``programs._FUNCTIONS`` (today ``exp``, the only one the project's derivations use). Index-form derivations whose output is a matrix
expression in argument matrices of symbolic size store a matrix program over ``marg`` (argument g),
``matadd``, ``matmul`` (numbers times matrix products), ``transpose`` and the same literals. Index-form maps
and polynomial tables are arrays of numbers.

At load time our own emitter (``programs.emit_source``) checks every node (known kind, right number of operands,
numbers that are JSON integers or finite floats, references and argument entries in range) and writes the
Python source from it; that source is compiled. Nothing from the file reaches the source except numbers
rewritten by ``int`` / ``repr(float)``; names (arguments, variables, NumPy functions) are made by the
emitter. A program that fails any check makes the entry unusable: it is rebuilt, with a warning.

An entry is looked up and checked under a key made of the derivation's source (its module and the other
modules of its package, which it may build on), the builder's name and sizes, this module's code-generation
version and the library versions, never the parameter values (those are runtime arguments). Its SHA-256 over
its own content only catches a damaged file: anyone who can write the folder can recompute it, so it trusts
nothing; the emitter's checks are what keep a written entry from running code. Cache files are written
atomically; an entry that cannot be read, has another key, fails its checksum or a check of the emitter is
rebuilt and overwritten.
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import platform
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import numpy as np
import sympy as sp

from .errors import OutputError
from .files import atomic_write_text
from .programs import emit_source, function_program, load_function

CODEGEN_VERSION = "4"      # 4: entries hold programs (data), not source


def cache_dir() -> Path:
    """``$REDUCED_DYNAMICS_CACHE`` if set, else ``~/.cache/reduced_dynamics``."""
    env = os.environ.get("REDUCED_DYNAMICS_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "reduced_dynamics"


def derivation_source(module: ModuleType) -> str:
    """The source a derivation depends on: its own module and the modules of its package that it imports,
    directly or through one another (attn-s builds on attn-m's loss in B, so its key covers both; a change to
    the softmax derivation leaves the attn-m key alone), in a fixed order. Read again whenever one of those
    files changes (size or modification time)."""
    own = inspect.getfile(module)
    files = sorted(_package_imports(own, module.__name__.rpartition(".")[0]))
    stamped = tuple((name, os.stat(name).st_mtime_ns, os.stat(name).st_size) for name in [own, *files])
    return _read_sources(stamped)


def _package_imports(path: str, package: str, seen: set[str] | None = None) -> set[str]:
    """Files of ``package`` (beside ``path``) that the module at ``path`` imports, transitively."""
    seen = set() if seen is None else seen
    folder = os.path.dirname(path)
    stat = os.stat(path)
    for name in _imported_names(path, stat.st_mtime_ns, stat.st_size):
        stem = name[len(package) + 1:] if package and name.startswith(package + ".") else name
        candidate = os.path.join(folder, stem.split(".")[0] + ".py")
        if os.path.isfile(candidate) and candidate != path and candidate not in seen:
            seen.add(candidate)
            _package_imports(candidate, package, seen)
    return seen


@functools.lru_cache(maxsize=256)
def _imported_names(path: str, mtime_ns: int, size: int) -> frozenset[str]:
    """Module names the file imports (relative ones without their dots), parsed once per version of the
    file (its size and modification time): parsing on every call cost 5-45 ms, more than a warm attn-m curve."""
    import ast
    text = Path(path).read_text(encoding="utf-8")
    with _PARSE_LOCK:
        tree = ast.parse(text)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:                                   # from . import x / from .x import y
                names |= {base} if base else {a.name for a in node.names}
                continue
            names |= {base} | {f"{base}.{a.name}" for a in node.names}
    return frozenset(names)


# ast.parse is not thread-safe on CPython 3.11: two threads converting trees at once can fail with
# "SystemError: AST constructor recursion depth mismatch" (seen with a thread-pool sweep under load).
_PARSE_LOCK = threading.Lock()


@functools.lru_cache(maxsize=64)
def _read_sources(files: tuple[tuple[str, int, int], ...]) -> str:
    return "".join(Path(name).read_text(encoding="utf-8") for name, _, _ in files)


def derivation_hash(module: ModuleType) -> str:
    """Short SHA-256 of a derivation's source (``derivation_source``): recorded in every result's metadata."""
    return _short_hash(derivation_source(module))


@functools.lru_cache(maxsize=64)
def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PolynomialTable:
    """Output k of a polynomial function is sum over monomials m with out[m] == k of
    coef[m] * prod_j z[slots[m, j]], where z is the concatenation of the argument groups followed by one
    extra entry equal to 1 (the slot that pads monomials of lower degree: index ``size``)."""
    coef: np.ndarray        # (M,) float
    out: np.ndarray         # (M,) int
    slots: np.ndarray       # (M, degree) int
    size: int               # length of the concatenated arguments
    shape: tuple = ()       # output shape (index-form tables; the flattened output index is ``out``)

    def __call__(self, *groups: np.ndarray, n_out: int) -> np.ndarray:
        """Evaluate with NumPy (for checks; the integrator evaluates the table in compiled code)."""
        z = np.concatenate([*(np.asarray(g, dtype=float) for g in groups), [1.0]])
        return np.bincount(self.out, weights=self.coef * np.prod(z[self.slots], axis=1), minlength=n_out)

    @functools.cached_property
    def _scatter(self):
        from scipy.sparse import csr_matrix
        n_out = int(np.prod(self.shape))
        return csr_matrix((self.coef, (self.out, np.arange(self.coef.size))), shape=(n_out, self.coef.size))

    def evaluate(self, *groups: np.ndarray) -> np.ndarray:
        """Evaluate with NumPy over trailing batch axes, the calling convention of the generated functions:
        groups of shape (size_g, *batch) -> (*shape, *batch)."""
        groups = [np.asarray(g, dtype=float) for g in groups]
        batch = groups[0].shape[1:]
        z = np.concatenate([*(g.reshape(g.shape[0], -1) for g in groups), np.ones((1, int(np.prod(batch))))])
        terms = np.prod(z[self.slots], axis=1)                       # (M, batch)
        return (self._scatter @ terms).reshape(tuple(self.shape) + batch)

    def to_json(self) -> dict:
        return {"coef": self.coef.tolist(), "out": self.out.tolist(), "slots": self.slots.tolist(),
                "size": self.size, "shape": list(self.shape)}

    @classmethod
    def from_json(cls, data: dict) -> "PolynomialTable":
        table = cls(np.asarray(data["coef"], dtype=float), np.asarray(data["out"], dtype=np.int64),
                    np.asarray(data["slots"], dtype=np.int64).reshape(len(data["coef"]), -1), int(data["size"]),
                    tuple(data.get("shape", ())))
        if not (table.out.shape == table.coef.shape and table.slots.min(initial=0) >= 0
                and table.slots.max(initial=0) <= table.size
                and (not table.shape or table.out.max(initial=0) < np.prod(table.shape))):
            raise ValueError("malformed polynomial table")
        return table


def indexed_table(item) -> PolynomialTable:
    """Tabulate an index-form map (``reduced_dynamics.derivations.linear_merged.Indexed``): the generic outputs once with
    ``polynomial_table``, then every instance by integer indexing (no symbolic work per instance)."""
    generic = polynomial_table([list(item.args)], list(item.outputs))
    size = int(sum(item.sizes))
    arg_index = np.asarray(item.arg_index, dtype=np.int64)
    lookup = np.column_stack([arg_index, np.full(len(arg_index), size)])    # generic pad slot -> real pad
    slots = lookup[:, generic.slots]                                         # (I, M, degree)
    out = np.asarray(item.out_index, dtype=np.int64)[:, generic.out]        # (I, M)
    coef = np.broadcast_to(generic.coef, out.shape)
    return PolynomialTable(np.ascontiguousarray(coef.ravel()), out.ravel(),
                           np.ascontiguousarray(slots.reshape(-1, generic.slots.shape[1])), size, tuple(item.shape))


@dataclass
class CompiledSystem:
    functions: dict[str, Callable[..., np.ndarray]]
    derivation_hash: str
    cache_path: Path
    from_cache: bool
    sources: dict[str, str] = field(repr=False, default_factory=dict)         # emitted from the programs
    polynomials: dict[str, PolynomialTable] = field(repr=False, default_factory=dict)
    programs: dict[str, dict] = field(repr=False, default_factory=dict)       # what the entry stores

    def __getitem__(self, name: str) -> Callable[..., np.ndarray]:
        return self.functions[name]


def compile_system(module: ModuleType, builder: str, sizes: dict[str, Any],
                   directory: Path | None = None, polynomials: tuple[str, ...] = ()) -> CompiledSystem:
    """Compile ``getattr(module, builder)(**sizes)``, using the disk cache when a valid entry exists;
    tabulate the functions named in ``polynomials`` as well."""
    directory = Path(directory) if directory is not None else cache_dir()
    source = derivation_source(module)
    dhash = _short_hash(source)
    key = _entry_key(module.__name__, source, builder,
                     json.dumps(sizes, sort_keys=True, default=str), tuple(sorted(polynomials)))
    size_tag = "-".join(f"{k}{v}" for k, v in sorted(sizes.items()))
    path = directory / f"{module.__name__.split('.')[-1]}-{builder}-{size_tag}-{key[:16]}.json"

    if path.exists():
        try:
            raw = path.read_bytes()
            loaded = (str(path), key, hashlib.sha256(raw).hexdigest())
            if loaded not in _LOADED:     # these very bytes were not checked and loaded yet in this process
                programs, tables = _read_entry(raw, key, polynomials)
                functions, sources = _load_programs(programs, tables)
                _LOADED[loaded] = CompiledSystem(functions, dhash, path, True, sources, tables, programs)
            return _LOADED[loaded]
        except Exception as exc:  # any defect: rebuild, never trust
            warnings.warn(f"cache entry {path} is unusable ({exc}); rebuilding it", RuntimeWarning)

    derived = getattr(module, builder)(**sizes)
    indexed = {name for name, item in derived.items() if hasattr(item, "arg_index")}
    programs = {name: function_program(*item) for name, item in derived.items() if name not in indexed}
    tables = {name: indexed_table(derived[name]) if name in indexed else polynomial_table(*derived[name])
              for name in sorted(set(polynomials) | indexed)}
    functions, sources = _load_programs(programs, tables)
    raw_tables = {name: table.to_json() for name, table in tables.items()}
    entry = {"key": key, "sha256": _digest(programs, raw_tables), "programs": programs, "polynomials": raw_tables}
    try:
        atomic_write_text(path, json.dumps(entry, sort_keys=True, separators=(",", ":"), allow_nan=False) + "\n")
    except OutputError as exc:      # HOME a file, a read-only cache folder ...: the run goes on uncached
        if str(directory) not in _UNUSABLE:
            _UNUSABLE.add(str(directory))
            warnings.warn(f"the cache location {directory} cannot be used ({exc}); running without the disk cache "
                          f"(set REDUCED_DYNAMICS_CACHE to a writable folder to keep derivations between runs)",
                          RuntimeWarning, stacklevel=2)
    return CompiledSystem(functions, dhash, path, False, sources, tables, programs)


_UNUSABLE: set[str] = set()       # cache folders already found unwritable in this process (one warning each)


@functools.lru_cache(maxsize=256)
def _entry_key(module: str, source: str, builder: str, sizes: str, polynomials: tuple[str, ...]) -> str:
    material = json.dumps({
        "module": module, "source": source, "builder": builder, "sizes": json.loads(sizes),
        "codegen": CODEGEN_VERSION, "sympy": sp.__version__, "numpy": np.__version__,
        "python": platform.python_version(), "polynomials": list(polynomials),
    }, sort_keys=True, default=str)
    return hashlib.sha256(material.encode()).hexdigest()


# Systems loaded from the disk cache in this process, by (path, key, SHA-256 of the file's bytes): a warm
# call re-reads and hashes the file but skips parsing and compiling it again.
_LOADED: dict[tuple[str, str, str], CompiledSystem] = {}


def _digest(programs: dict[str, dict], tables: dict[str, dict]) -> str:
    """SHA-256 of an entry's content: catches a damaged file; it is no reason to trust one (anyone can
    recompute it), which is why programs are data checked by ``emit_source``."""
    return hashlib.sha256(json.dumps([programs, tables], sort_keys=True).encode()).hexdigest()


def _read_entry(raw: bytes, key: str, polynomials: tuple[str, ...]):
    payload = json.loads(raw.decode("utf-8"))
    if payload.get("key") != key:
        raise ValueError("key mismatch")
    programs, raw_tables = payload["programs"], payload["polynomials"]
    if not (isinstance(programs, dict) and isinstance(raw_tables, dict)):
        raise ValueError("malformed entry")
    if payload.get("sha256") != _digest(programs, raw_tables):
        raise ValueError("checksum mismatch")
    if not set(polynomials) <= set(raw_tables):
        raise ValueError("polynomial tables missing")
    return programs, {name: PolynomialTable.from_json(raw) for name, raw in raw_tables.items()}


def _load_programs(programs: dict[str, dict], tables: dict[str, PolynomialTable] | None = None
                   ) -> tuple[dict[str, Callable[..., np.ndarray]], dict[str, str]]:
    """Functions from their programs (checked and written as source by ``programs.emit_source``, then
    compiled), and that source; an index-form map, which has no program, is evaluated from its table
    (``PolynomialTable.evaluate``)."""
    functions = {name: table.evaluate for name, table in (tables or {}).items() if name not in programs}
    sources = {}
    for name, program in programs.items():
        functions[name], sources[name] = load_function(program, str(name))
    return functions, sources


def generate_source(name: str, arg_groups: list, outputs: Any) -> str:
    """Python source of a function of one array per argument group evaluating ``outputs``: the program of
    ``function_program`` through ``emit_source`` (the function is called ``name``)."""
    return emit_source(function_program(arg_groups, outputs), name)


def polynomial_table(arg_groups: list[list[sp.Symbol]], outputs: Any) -> PolynomialTable:
    """Monomial table of outputs that are polynomials in the argument symbols with numeric coefficients."""
    symbols = [s for group in arg_groups for s in group]
    rows = []
    for k, expr in enumerate(list(outputs)):
        try:
            poly = sp.Poly(sp.expand(expr), *symbols)
        except sp.PolynomialError as exc:
            raise ValueError(f"output {k} is not a polynomial in the arguments: {exc}") from exc
        if not poly.domain.is_Numerical:
            raise ValueError(f"output {k} has non-numeric coefficients ({poly.domain}); not tabulated")
        for powers, coef in poly.terms():
            if coef != 0:
                rows.append((float(coef), k, [j for j, p in enumerate(powers) for _ in range(p)]))
    degree = max((len(slots) for _, _, slots in rows), default=0)
    pad = len(symbols)
    return PolynomialTable(np.array([r[0] for r in rows], dtype=float), np.array([r[1] for r in rows], dtype=np.int64),
                           np.array([r[2] + [pad] * (degree - len(r[2])) for r in rows], dtype=np.int64)
                           .reshape(len(rows), degree), pad)
