"""Any derived right-hand side in compiled code: a compile-cache program run by one register-machine kernel.

Why: only the linear-attention flows had a compiled stepper (``HeadFlow``, per-head polynomial tables); every
other derived flow (softmax large-N, the sparse restricted flow, the deep-linear example) went through SciPy,
whose per-step and per-call Python overhead is most of the cost of such small systems (``benchmarks.derived``
measures the two side by side on the same flows).

How: a program of the compile cache (``reduced_dynamics.programs``, elementwise form: unpacked argument
entries, CSE steps, outputs; node kinds add, mul, pow, numbers, exp) is *lowered* to flat integer and float
arrays, one instruction per tree node, each writing one register; ``program_rhs`` interprets them in
machine code. The lowering accepts exactly the node kinds the emitter accepts and refuses anything else with
``ProgramError``, so a cache entry stays data: nothing from it is compiled or run as code, and one kernel
(compiled once, cached by Numba) serves every derived system. ``integrate(DerivedFlow(...), y0, t,
method="compiled")`` steps it with the same DOP853 kernel as ``HeadFlow``.

Register layout: the unpacked argument entries first, then the CSE steps (so the program's variable reference r
is register r), then one register per other node, constants included (written once, by ``DerivedFlow.packed``).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
from numba import njit

from ..programs import _MAX_DEPTH, ProgramError, _Emitter

__all__ = ["DerivedFlow", "lower", "program_rhs"]

ADD, MUL, POW_INT, POW, EXP, SQRT, INV_SQRT = range(7)    # opcodes
_ARITY_FREE = {"add": ADD, "mul": MUL}


@dataclass(frozen=True)
class Bytecode:
    """A lowered program. ``unpack[r]``: the input index (argument groups concatenated) of register r;
    instruction i computes register ``dst[i]`` by ``op[i]`` over ``operands[start[i]:start[i] + count[i]]``
    (``power[i]`` the integer exponent of POW_INT); ``outputs``: the register of each output (flattened)."""
    unpack: np.ndarray
    constants: np.ndarray           # (register, value) pairs: registers written once
    constant_registers: np.ndarray
    op: np.ndarray
    dst: np.ndarray
    start: np.ndarray
    count: np.ndarray
    power: np.ndarray
    operands: np.ndarray
    outputs: np.ndarray
    registers: int
    shape: tuple[int, ...]
    groups: tuple[int, ...]


class _Lowering:
    """Walks the program's trees (validating as the emitter does) and appends instructions."""

    def __init__(self, n_vars: int):
        self.n_defined = n_vars       # registers a reference may name so far
        self.next = n_vars            # registers below are taken (references r < next are allocated)
        self.op: list[int] = []
        self.dst: list[int] = []
        self.start: list[int] = []
        self.count: list[int] = []
        self.power: list[int] = []
        self.operands: list[int] = []
        self.constants: dict[float, int] = {}

    def new_register(self) -> int:
        self.next += 1
        return self.next - 1

    def emit(self, op: int, operands: Sequence[int], power: int = 0, dst: int | None = None) -> int:
        dst = self.new_register() if dst is None else dst
        self.op.append(op)
        self.dst.append(dst)
        self.start.append(len(self.operands))
        self.count.append(len(operands))
        self.power.append(power)
        self.operands.extend(operands)
        return dst

    def constant(self, value: float) -> int:
        if value not in self.constants:
            self.constants[value] = self.new_register()
        return self.constants[value]

    def node(self, node: Any, depth: int, dst: int | None = None) -> int:
        """Register holding the node's value (a new instruction writes ``dst`` when given)."""
        if depth > _MAX_DEPTH:
            raise ProgramError("expression too deep")
        if type(node) is int:
            if not 0 <= node < self.n_defined:
                raise ProgramError("reference to an undefined variable")
            return node if dst is None else self.emit(ADD, [node], dst=dst)
        if type(node) is not list or not node or type(node[0]) is not str:
            raise ProgramError("malformed node")
        kind, ops = node[0], node[1:]
        value = _number(kind, ops)
        if value is not None:
            register = self.constant(value)
            return register if dst is None else self.emit(ADD, [register], dst=dst)
        if kind in _ARITY_FREE:
            if not ops:
                raise ProgramError(f"{kind}: wrong number of operands")
            return self.emit(_ARITY_FREE[kind], [self.node(o, depth + 1) for o in ops], dst=dst)
        if kind == "exp":
            if len(ops) != 1:
                raise ProgramError("exp: wrong number of operands")
            return self.emit(EXP, [self.node(ops[0], depth + 1)], dst=dst)
        if kind == "pow":
            if len(ops) != 2:
                raise ProgramError("pow: wrong number of operands")
            base, exponent = ops
            if type(exponent) is list and exponent[:1] == ["int"] and _number("int", exponent[1:]) is not None \
                    and abs(exponent[1]) <= 64:
                return self.emit(POW_INT, [self.node(base, depth + 1)], power=int(exponent[1]), dst=dst)
            if type(exponent) is list and exponent[:1] == ["rat"] and exponent[1:] in ([1, 2], [-1, 2]):
                return self.emit(SQRT if exponent[1] == 1 else INV_SQRT, [self.node(base, depth + 1)], dst=dst)
            return self.emit(POW, [self.node(base, depth + 1), self.node(exponent, depth + 1)], dst=dst)
        raise ProgramError("unknown node kind")


def _number(kind: str, ops: list) -> float | None:
    """The value of a literal node, checked as the emitter checks it, or None if the node is not a literal."""
    if kind not in ("int", "rat", "float"):
        return None
    text = _Emitter.number(kind, ops)        # validates (arity, types, size, finiteness) or raises
    return float(text)


def lower(program: Any) -> Bytecode:
    """Lower an elementwise program to bytecode (module docstring); ``ProgramError`` for anything outside the
    emitter's form (matrix-form programs are refused: they name whole matrices, not entries)."""
    if not isinstance(program, dict) or program.get("form") != "elementwise":
        raise ProgramError("only elementwise programs can be lowered to the compiled kernel")
    sizes, shape, unpack = program.get("groups"), program.get("shape"), program.get("unpack")
    steps, outputs = program.get("steps"), program.get("outputs")
    if not all(type(x) is list for x in (sizes, shape, unpack, steps, outputs)):
        raise ProgramError("program fields missing")
    if not all(type(s) is int and s >= 0 for s in sizes + shape) or math.prod(shape) != len(outputs):
        raise ProgramError("output count does not match the shape")
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    inputs = []
    for entry in unpack:
        if type(entry) is not list or len(entry) != 2 or not all(type(e) is int for e in entry) \
                or not 0 <= entry[0] < len(sizes) or not 0 <= entry[1] < sizes[entry[0]]:
            raise ProgramError("unpack: expected [group, index] in range")
        inputs.append(int(offsets[entry[0]] + entry[1]))
    low = _Lowering(len(unpack) + len(steps))
    low.n_defined = len(unpack)
    for i, step in enumerate(steps):
        low.node(step, 0, dst=len(unpack) + i)
        low.n_defined += 1
    out = [low.node(o, 0) for o in outputs]
    constants = np.array(list(low.constants), dtype=float)
    as_int = functools.partial(np.asarray, dtype=np.int64)
    return Bytecode(as_int(inputs), constants, as_int(list(low.constants.values())), as_int(low.op),
                    as_int(low.dst), as_int(low.start), as_int(low.count), as_int(low.power),
                    as_int(low.operands), as_int(out), low.next, tuple(shape), tuple(sizes))


@njit(cache=True)
def program_rhs(y, system, dy, regs):
    """dy = the program's outputs at inputs (y, then the fixed parameter groups). ``system`` is
    ``DerivedFlow.packed``; ``regs`` a register file with the constants written in (a copy of its first
    entry)."""
    _, params, decay, unpack, op, dst, start, count, power, operands, outputs = system
    n_state = y.size
    for r in range(unpack.size):
        k = unpack[r]
        regs[r] = y[k] if k < n_state else params[k - n_state]
    for i in range(op.size):
        s, c, o = start[i], count[i], op[i]
        if o == ADD:
            v = regs[operands[s]]
            for j in range(s + 1, s + c):
                v += regs[operands[j]]
        elif o == MUL:
            v = regs[operands[s]]
            for j in range(s + 1, s + c):
                v *= regs[operands[j]]
        elif o == POW_INT:
            v = regs[operands[s]] ** power[i]
        elif o == EXP:
            v = np.exp(regs[operands[s]])
        elif o == SQRT:
            v = np.sqrt(regs[operands[s]])
        elif o == INV_SQRT:
            v = 1.0 / np.sqrt(regs[operands[s]])
        else:
            v = regs[operands[s]] ** regs[operands[s + 1]]
        regs[dst[i]] = v
    for j in range(outputs.size):
        dy[j] = regs[outputs[j]]
    if decay != 0.0:                      # weight decay in orthonormal coordinates: -lambda y (WD-2)
        for j in range(outputs.size):
            dy[j] -= decay * y[j]


@dataclass(frozen=True)
class DerivedFlow:
    """dy/dt = program(y, *params) - decay y: a compile-cache program whose first argument group is the state
    and whose other groups are held fixed (``params``, in group order), with an optional weight-decay rate in
    coordinates where decay is a multiple of the state (WD-2). ``python_rhs`` is the same flow through the
    emitted NumPy function (the SciPy path; a test holds the two together)."""
    program: dict = field(repr=False)
    params: tuple = ()
    python_rhs: Callable | None = field(default=None, compare=False, repr=False)
    decay: float = 0.0

    @classmethod
    def of(cls, system, name: str, *params, decay: float = 0.0) -> "DerivedFlow":
        """The function ``name`` of a ``compile.CompiledSystem`` with its later argument groups fixed, minus
        ``decay`` times the state."""
        function = system[name]
        decay = float(decay)
        return cls(system.programs[name], tuple(np.asarray(p, dtype=float).ravel() for p in params),
                   lambda t, y: np.asarray(function(y, *params), dtype=float).ravel() - decay * np.asarray(y), decay)

    @functools.cached_property
    def bytecode(self) -> Bytecode:
        code = lower(self.program)
        expected = code.groups[1:]
        if tuple(p.size for p in self.params) != expected:
            raise ProgramError(f"parameters: expected groups of sizes {expected}, got "
                               f"{tuple(p.size for p in self.params)}")
        return code

    @property
    def size(self) -> int:
        """Length of the state (the program's first argument group; its output has the same length)."""
        return self.bytecode.groups[0]

    @functools.cached_property
    def packed(self) -> tuple:
        code = self.bytecode
        if int(np.prod(code.shape)) != code.groups[0]:
            raise ProgramError("a flow's output must have the length of its state (first argument group)")
        params = np.concatenate([*self.params, np.zeros(0)]).astype(float)
        registers = np.zeros(code.registers)          # the template of the register file: constants written in
        registers[code.constant_registers] = code.constants
        return (registers, params, float(self.decay), code.unpack, code.op, code.dst, code.start, code.count,
                code.power, code.operands, code.outputs)

    def __call__(self, y: np.ndarray) -> np.ndarray:
        """The right-hand side evaluated by the compiled kernel (for checks)."""
        dy = np.empty(self.size)
        program_rhs(np.ascontiguousarray(y, dtype=float), self.packed, dy, self.packed[0].copy())
        return dy
