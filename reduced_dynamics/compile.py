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
the literals ``int``, ``rat`` [p, q] and ``float``, and the elementary functions of ``_FUNCTIONS`` (today
``exp``, the only one the project's derivations use). Index-form derivations whose output is a matrix
expression in argument matrices of symbolic size store a matrix program over ``marg`` (argument g),
``matadd``, ``matmul`` (numbers times matrix products), ``transpose`` and the same literals. Index-form maps
and polynomial tables are arrays of numbers.

At load time our own emitter (``emit_source``) checks every node (known kind, right number of operands,
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
import math
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

from .files import atomic_write_text

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
    atomic_write_text(path, json.dumps(entry, sort_keys=True, separators=(",", ":"), allow_nan=False) + "\n")
    return CompiledSystem(functions, dhash, path, False, sources, tables, programs)


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


def _stack(items: list, shape: tuple[int, ...]) -> np.ndarray:
    try:  # fast path: every output already has the same shape
        out = np.array(items, dtype=float)
    except ValueError:  # constants mixed with arrays: broadcast them
        out = np.stack(np.broadcast_arrays(*[np.asarray(x, dtype=float) for x in items]))
    return out.reshape(shape + out.shape[1:])


def _load_programs(programs: dict[str, dict], tables: dict[str, PolynomialTable] | None = None
                   ) -> tuple[dict[str, Callable[..., np.ndarray]], dict[str, str]]:
    """Functions from their programs (validated and turned into source by ``emit_source``, then compiled), and
    that source; an index-form map, which has no program, is evaluated from its table
    (``PolynomialTable.evaluate``)."""
    functions = {name: table.evaluate for name, table in (tables or {}).items() if name not in programs}
    sources = {}
    for name, program in programs.items():
        sources[name] = emit_source(program)
        namespace: dict[str, Any] = {"numpy": np, "_stack": _stack}
        exec(compile(sources[name], "<reduced_dynamics generated>", "exec"), namespace)
        function = namespace[_EMITTED_NAME]
        function.__name__ = function.__qualname__ = str(name)
        functions[name] = function
    return functions, sources


def generate_source(name: str, arg_groups: list, outputs: Any) -> str:
    """Python source of a function of one array per argument group evaluating ``outputs``: the program of
    ``function_program`` through ``emit_source`` (the function is called ``name``)."""
    return emit_source(function_program(arg_groups, outputs), name)


# ---------------------------------------------------------------------------------------------------------
# Programs: what a cache entry stores for a generated function. Encoded from SymPy at build time; validated
# and emitted as Python source by ``emit_source`` at load time. Every node is a JSON list whose first item
# names its kind; the emitter knows these kinds and nothing else.

_FUNCTIONS = {"exp": "numpy.exp"}        # elementary functions the derivations use: node kind -> NumPy name
_MAX_DEPTH = 100                          # deepest node accepted (CSE leaves the derivations' trees at depth 8)
_MAX_INT = 2 ** 63                        # larger integer literals are written as floats
_EMITTED_NAME = "generated"


class ProgramError(ValueError):
    """A program that is not in the accepted form (unknown node kind, bad literal, index out of range)."""


def function_program(arg_groups: list, outputs: Any) -> dict:
    """The program of a generated function, as JSON-ready data (module docstring: the format).

    Elementwise form (``outputs`` a list or a Matrix of scalar expressions): ``groups`` the argument group
    lengths, ``shape`` the output shape, ``unpack`` the argument entries [g, k] the expressions use,
    ``steps`` the common subexpressions of ``sympy.cse`` in order and ``outputs`` the flattened outputs.
    A bare integer r in a tree is variable r: unpacked entry r, then step r - len(unpack). Matrix form
    (``outputs`` a matrix expression in ``MatrixSymbol`` argument groups of symbolic size, index-form
    derivations): ``groups`` their number and ``output`` one tree over ``["marg", g]``."""
    if isinstance(outputs, sp.MatrixExpr) and not isinstance(outputs, sp.MatrixBase):
        return {"form": "matrix", "groups": len(arg_groups), "output": _encode_matrix(outputs, list(arg_groups))}
    if isinstance(outputs, sp.MatrixBase):
        shape, flat = tuple(outputs.shape), list(outputs)
    else:
        flat = list(outputs)
        shape = (len(flat),)
    rename, entries = {}, {}
    for g, group in enumerate(arg_groups):
        for k, symbol in enumerate(group):
            local = sp.Symbol(f"a{g}_{k}")
            rename[symbol] = local
            entries[local] = [g, k]
    flat = [sp.sympify(e).xreplace(rename) for e in flat]
    replacements, reduced = sp.cse(flat, symbols=sp.numbered_symbols("x"))
    used = set().union(*(e.free_symbols for _, e in replacements), *(e.free_symbols for e in reduced))
    unpack = sorted((entries[s] for s in used if s in entries))
    refs = {sp.Symbol(f"a{g}_{k}"): r for r, (g, k) in enumerate(unpack)}
    steps = []
    for symbol, expr in replacements:
        steps.append(_encode(expr, refs))
        refs[symbol] = len(refs)
    return {"form": "elementwise", "groups": [len(group) for group in arg_groups], "shape": list(shape),
            "unpack": unpack, "steps": steps, "outputs": [_encode(e, refs) for e in reduced]}


def _encode(expr, refs: dict, depth: int = 0) -> Any:
    if depth > _MAX_DEPTH:
        raise ProgramError(f"expression deeper than {_MAX_DEPTH} nodes")
    if expr.is_Symbol:
        if expr not in refs:
            raise ProgramError(f"symbol {expr} is not an argument")
        return refs[expr]
    if expr.is_Integer:
        return ["int", int(expr)]
    if expr.is_Rational:
        return ["rat", int(expr.p), int(expr.q)]
    if expr.is_Float or isinstance(expr, sp.NumberSymbol):
        value = float(expr)
        if not math.isfinite(value):
            raise ProgramError(f"non-finite constant {expr}")
        return ["float", value]
    if expr.is_Add:       # terms and factors in the order SymPy prints them (the order the old source used)
        return ["add", *(_encode(a, refs, depth + 1) for a in expr.as_ordered_terms())]
    if expr.is_Mul:
        return ["mul", *(_encode(a, refs, depth + 1) for a in expr.as_ordered_factors())]
    if expr.is_Pow:
        return ["pow", _encode(expr.base, refs, depth + 1), _encode(expr.exp, refs, depth + 1)]
    name = getattr(expr.func, "__name__", "")
    if isinstance(expr, sp.Function) and name in _FUNCTIONS and len(expr.args) == 1:
        return [name, _encode(expr.args[0], refs, depth + 1)]
    raise ProgramError(f"cannot encode {type(expr).__name__} ({expr}); the emitter knows add, mul, pow, numbers "
                       f"and {', '.join(sorted(_FUNCTIONS))} (extend compile._FUNCTIONS)")


def _encode_matrix(expr, groups: list, depth: int = 0) -> list:
    if depth > _MAX_DEPTH:
        raise ProgramError(f"expression deeper than {_MAX_DEPTH} nodes")
    if isinstance(expr, sp.MatrixSymbol):
        for g, group in enumerate(groups):
            if group == expr:
                return ["marg", g]
        raise ProgramError(f"matrix symbol {expr} is not an argument")
    if isinstance(expr, sp.MatAdd):
        return ["matadd", *(_encode_matrix(a, groups, depth + 1) for a in expr.args)]
    if isinstance(expr, sp.MatMul):
        return ["matmul", *(_encode_matrix(a, groups, depth + 1) for a in expr.args)]
    if isinstance(expr, sp.Transpose):
        return ["transpose", _encode_matrix(expr.arg, groups, depth + 1)]
    if isinstance(expr, sp.Expr) and expr.is_number:
        return _encode(expr, {}, depth)
    raise ProgramError(f"cannot encode {type(expr).__name__} ({expr}) in a matrix expression; the emitter knows "
                       "matrix arguments, matadd, matmul, transpose and numbers")


def emit_source(program: Any, name: str = _EMITTED_NAME) -> str:
    """Python source of the function a program describes, after checking every part of it: known node kinds
    with the right number of operands, numbers that are JSON integers or finite floats, argument entries and
    variable references in range. Only those numbers (written by ``int`` / ``repr(float)``), names made here
    and the NumPy functions of the whitelist reach the source; anything else raises ``ProgramError``.
    ``name`` must be an identifier (the loader keeps the default and renames the function object)."""
    if not name.isidentifier():
        raise ProgramError("function name is not an identifier")
    if not isinstance(program, dict):
        raise ProgramError("program is not an object")
    form = program.get("form")
    if form == "matrix":
        n_groups = _count(program.get("groups"), "groups")
        body = _Emitter([], n_groups).matrix(program.get("output"), 0)
        return f"def {name}({_params(n_groups)}):\n    return numpy.asarray({body})\n"
    if form != "elementwise":
        raise ProgramError("unknown program form")
    sizes, shape, unpack = program.get("groups"), program.get("shape"), program.get("unpack")
    steps, outputs = program.get("steps"), program.get("outputs")
    if not all(type(x) is list for x in (sizes, shape, unpack, steps, outputs)):
        raise ProgramError("program fields missing")
    sizes = [_count(s, "group length") for s in sizes]
    shape = tuple(_count(s, "shape") for s in shape)
    if math.prod(shape) != len(outputs):
        raise ProgramError("output count does not match the shape")
    lines = [f"def {name}({_params(len(sizes))}):"]
    names = []
    for entry in unpack:
        if type(entry) is not list or len(entry) != 2:
            raise ProgramError("unpack: expected [group, index]")
        g = _count(entry[0], "unpack group", len(sizes))
        k = _count(entry[1], "unpack index", sizes[g])
        names.append(f"a{g}_{k}")
        lines.append(f"    a{g}_{k} = arg{g}[{k}]")
    emitter = _Emitter(names)
    for i, step in enumerate(steps):
        lines.append(f"    x{i} = {emitter.scalar(step, 0)}")
        names.append(f"x{i}")
    items = ", ".join(emitter.scalar(out, 0) for out in outputs)
    lines.append(f"    return _stack([{items}], {shape!r})")
    return "\n".join(lines) + "\n"


def _params(n_groups: int) -> str:
    return ", ".join(f"arg{g}" for g in range(n_groups))


def _count(value: Any, what: str, limit: int = 10 ** 9) -> int:
    if type(value) is not int or not 0 <= value < limit:
        raise ProgramError(f"{what}: expected an integer in [0, {limit})")
    return value


# Precedence of an emitted expression, loosest first: an operand looser than its place needs is parenthesised.
_ADD, _MUL, _UNARY, _POW, _ATOM = range(5)


class _Emitter:
    """Validates program trees and writes them as Python expressions, the way SymPy prints them (a - b*c,
    a*b/c**2), with parentheses wherever an operand binds more loosely than its place needs. ``names``: the
    variables defined so far (a reference r must be below its length); the caller appends as it goes."""

    def __init__(self, names: list[str], n_groups: int = 0):
        self.names, self.n_groups = names, n_groups

    @staticmethod
    def _node(node: Any, depth: int) -> tuple[str, list]:
        if depth > _MAX_DEPTH:
            raise ProgramError("expression too deep")
        if type(node) is not list or not node or type(node[0]) is not str:
            raise ProgramError("malformed node")
        return node[0], node[1:]

    @staticmethod
    def _arity(kind: str, operands: list, n: int | None = None, least: int = 0):
        if (n is not None and len(operands) != n) or len(operands) < least:
            raise ProgramError(f"{kind}: wrong number of operands")

    @staticmethod
    def number(kind: str, operands: list) -> str | None:
        """A validated literal (``int`` / ``repr(float)`` of the JSON number), or None if the node is not one."""
        if kind == "int":
            _Emitter._arity(kind, operands, 1)
            value = operands[0]
            if type(value) is not int or abs(value) >= 10 ** 300:
                raise ProgramError("int: not an integer of at most 300 digits")
            return str(value) if abs(value) < _MAX_INT else repr(float(value))
        if kind == "rat":
            _Emitter._arity(kind, operands, 2)
            p, q = operands
            if type(p) is not int or type(q) is not int or q <= 0:
                raise ProgramError("rat: not a ratio of integers")
            return repr(p / q)
        if kind == "float":
            _Emitter._arity(kind, operands, 1)
            value = operands[0]
            if type(value) is not float or not math.isfinite(value):
                raise ProgramError("float: not a finite number")
            return repr(value)
        return None

    @staticmethod
    def _wrap(text: str, prec: int, least: int) -> str:
        return text if prec >= least else f"({text})"

    def _ref(self, r: int) -> str:
        if not 0 <= r < len(self.names):
            raise ProgramError("reference to an undefined variable")
        return self.names[r]

    def scalar(self, node: Any, depth: int) -> str:
        return self._expr(node, depth)[0]

    def _expr(self, node: Any, depth: int) -> tuple[str, int]:
        negative, text, prec = self._signed(node, depth)
        return (f"-{self._wrap(text, prec, _MUL)}", _UNARY) if negative else (text, prec)

    def _signed(self, node: Any, depth: int) -> tuple[bool, str, int]:
        """(negative, text of the magnitude, its precedence): a product's sign is left to the caller, so that
        a sum is written a - b*c."""
        if type(node) is int:
            return False, self._ref(node), _ATOM
        kind, ops = self._node(node, depth)
        if kind == "mul":
            self._arity(kind, ops, least=1)
            return self._mul(ops, depth)
        if kind == "add":
            self._arity(kind, ops, least=1)
            names, parts = self.names, []
            for op in ops:
                if type(op) is int and 0 <= op < len(names):          # the common case, without a call
                    parts.append(" + " + names[op])
                    continue
                negative, term, prec = self._signed(op, depth + 1)
                parts.append((" - " if negative else " + ") + (term if prec >= (_MUL if negative else _ADD)
                                                             else f"({term})"))
            text = "".join(parts)
            return False, text[1] + text[3:] if text[1] == "-" else text[3:], _ADD
        if kind == "pow":
            self._arity(kind, ops, 2)
            return (False, *self._pow(ops[0], ops[1], depth))
        if kind in _FUNCTIONS:
            self._arity(kind, ops, 1)
            return False, f"{_FUNCTIONS[kind]}({self.scalar(ops[0], depth + 1)})", _ATOM
        literal = self.number(kind, ops)
        if literal is not None:
            return (True, literal[1:], _ATOM) if literal.startswith("-") else (False, literal, _ATOM)
        raise ProgramError("unknown node kind")

    def _mul(self, ops: list, depth: int) -> tuple[bool, str, int]:
        """a*b/(c*d): factors with a negative integer or rational exponent go to the denominator, and the sign
        of a leading number is returned apart, as SymPy prints a product."""
        negative, numerator, denominator = False, [], []
        names = self.names
        for i, op in enumerate(ops):
            if type(op) is int and 0 <= op < len(names):              # the common case, without a call
                numerator.append(names[op])
                continue
            kind, sub = self._node(op, depth + 1)
            literal = self.number(kind, sub) if i == 0 and len(ops) > 1 else None
            if literal is not None:
                negative, literal = literal.startswith("-"), literal.lstrip("-")
                if literal not in ("1", "1.0"):
                    numerator.append(literal)
            elif kind == "pow" and len(sub) == 2 and self._negative_exponent(sub[1]) is not None:
                denominator.append(self._wrap(*self._pow(sub[0], self._negative_exponent(sub[1]), depth + 1), _POW))
            else:
                numerator.append(self._wrap(*self._expr(op, depth + 1), _POW))
        text = "*".join(numerator) or "1"
        if denominator:
            text += "/" + (denominator[0] if len(denominator) == 1 else "(" + "*".join(denominator) + ")")
        return negative, text, _MUL if len(numerator) + len(denominator) > 1 or denominator else _POW

    @staticmethod
    def _negative_exponent(exponent: Any) -> list | None:
        """The negated exponent node of an integer or rational exponent below zero, else None."""
        if type(exponent) is list and len(exponent) == 2 and exponent[0] == "int" and type(exponent[1]) is int \
                and exponent[1] < 0:
            return ["int", -exponent[1]]
        if type(exponent) is list and len(exponent) == 3 and exponent[0] == "rat" and type(exponent[1]) is int \
                and exponent[1] < 0:
            return ["rat", -exponent[1], exponent[2]]
        return None

    def _pow(self, base: Any, exponent: Any, depth: int) -> tuple[str, int]:
        b = self._wrap(*self._expr(base, depth + 1), _ATOM)
        if type(exponent) is list and len(exponent) >= 1 and exponent[0] in ("int", "rat"):
            kind, ops = self._node(exponent, depth + 1)
            self.number(kind, ops)
            if kind == "int":
                e = ops[0]
                if e == 1:
                    return b, _ATOM
                if e == -1:
                    return f"1/{b}", _MUL
                return (f"{b}**{e}", _POW) if e >= 0 else (f"{b}**({float(e)!r})", _POW)  # NumPy refuses int**-k
            if ops == [1, 2]:
                return f"numpy.sqrt({self.scalar(base, depth + 1)})", _ATOM
            if ops == [-1, 2]:
                return f"1/numpy.sqrt({self.scalar(base, depth + 1)})", _MUL
        return f"{b}**{self._wrap(*self._expr(exponent, depth + 1), _ATOM)}", _POW

    def matrix(self, node: Any, depth: int) -> str:
        """A matrix expression (every compound result parenthesised)."""
        kind, ops = self._node(node, depth)
        literal = self.number(kind, ops)
        if literal is not None:
            return f"({literal})"
        if kind == "marg":
            self._arity(kind, ops, 1)
            return f"arg{_count(ops[0], 'matrix argument', self.n_groups)}"
        if kind == "matadd":
            self._arity(kind, ops, least=1)
            return "(" + " + ".join(self.matrix(op, depth + 1) for op in ops) + ")"
        if kind == "matmul":      # scalar factors (numbers) times the matrix product of the others, in order
            self._arity(kind, ops, least=1)
            scalars, matrices = [], []
            for op in ops:
                literal = self.number(*self._node(op, depth + 1))
                if literal is not None:
                    scalars.append(f"({literal})")
                else:
                    matrices.append(self.matrix(op, depth + 1))
            return "(" + "*".join(scalars + ["@".join(matrices)] if matrices else scalars) + ")"
        if kind == "transpose":
            self._arity(kind, ops, 1)
            return f"numpy.transpose({self.matrix(ops[0], depth + 1)})"
        raise ProgramError("unknown matrix node kind")


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
