"""Programs: what a compile-cache entry stores for a generated function, and the trusted emitter that turns
one back into a NumPy function.

A program is data: a straight-line computation in JSON, encoded from SymPy at build time
(``function_program``): which argument entries [g, k] to read, the CSE steps in order, and the outputs, as
expression trees whose every node is a JSON list naming its kind first, over a fixed whitelist (see
``reduced_dynamics.compile`` for the list and the trust rule). At load time ``emit_source`` checks every node
and writes the Python source itself; ``load_function`` compiles that source. Nothing from the file reaches
the source except numbers rewritten by ``int`` / ``repr(float)``.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import sympy as sp


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


def _stack(items: list, shape: tuple[int, ...]) -> np.ndarray:
    try:  # fast path: every output already has the same shape
        out = np.array(items, dtype=float)
    except ValueError:  # constants mixed with arrays: broadcast them
        out = np.stack(np.broadcast_arrays(*[np.asarray(x, dtype=float) for x in items]))
    return out.reshape(shape + out.shape[1:])


def load_function(program: Any, name: str) -> tuple[Callable[..., np.ndarray], str]:
    """The NumPy function of a program (checked and emitted by ``emit_source``, then compiled), named
    ``name``, and its source."""
    source = emit_source(program)
    namespace: dict[str, Any] = {"numpy": np, "_stack": _stack}
    exec(compile(source, "<reduced_dynamics generated>", "exec"), namespace)
    function = namespace[_EMITTED_NAME]
    function.__name__ = function.__qualname__ = name
    return function, source
