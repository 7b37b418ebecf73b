"""Problem specifications: frozen dataclasses with validation.

Every public function of the package takes one of these instead of a long list of loose numbers. The CLI
flags are generated from the dataclass fields (``reduced_dynamics.cli``), so a field's ``help`` and
``choices`` metadata is the single place where a parameter is documented.

Bad input raises :class:`SpecError`, whose message is one line naming the parameter and what was
expected. Nothing is clipped or coerced silently: ``dim=4.5`` is an error, ``dim=4.0`` is accepted as 4.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar


class SpecError(ValueError):
    """A parameter had a value outside what the model accepts."""

    def __init__(self, parameter: str, expected: str, got: Any):
        self.parameter = parameter
        self.expected = expected
        super().__init__(f"{parameter}: expected {expected}, got {got!r}")


def param(default: Any, help: str, choices: tuple | None = None) -> Any:
    """A spec field with its CLI help text (and allowed values, for string choices)."""
    return field(default=default, metadata={"help": help, "choices": choices})


# ---------------------------------------------------------------------------------------------------------
# Scalar validators (each returns the cleaned value or raises SpecError naming the parameter)

def positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or isinstance(value, str):
        raise SpecError(name, "a positive integer", value)
    if not math.isfinite(float(value)) or float(value) != int(value) or int(value) < 1:
        raise SpecError(name, "a positive integer", value)
    return int(value)


def nonnegative_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or isinstance(value, str):
        raise SpecError(name, "a non-negative integer", value)
    if not math.isfinite(float(value)) or float(value) != int(value) or int(value) < 0:
        raise SpecError(name, "a non-negative integer", value)
    return int(value)


def positive_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SpecError(name, "a positive finite number", value)
    x = float(value)
    if not math.isfinite(x) or x <= 0:
        raise SpecError(name, "a positive finite number", value)
    return x


def nonnegative_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SpecError(name, "a non-negative finite number", value)
    x = float(value)
    if not math.isfinite(x) or x < 0:
        raise SpecError(name, "a non-negative finite number", value)
    return x


def one_of(name: str, value: Any, options: tuple) -> Any:
    if value not in options:
        raise SpecError(name, "one of " + ", ".join(map(str, options)), value)
    return value


def boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SpecError(name, "true or false", value)
    return value


def float_tuple(name: str, value: Any) -> tuple[float, ...]:
    """A sequence of finite numbers (a comma-separated string is accepted: '0.4,0.3')."""
    if isinstance(value, str):
        parts = [p for p in value.split(",") if p.strip()]
        try:
            value = [float(p) for p in parts]
        except ValueError:
            raise SpecError(name, "comma-separated numbers", value) from None
    try:
        items = tuple(value)
    except TypeError:
        raise SpecError(name, "a sequence of numbers", value) from None
    out = []
    for x in items:
        if isinstance(x, bool) or not isinstance(x, numbers.Real) or not math.isfinite(float(x)):
            raise SpecError(name, "finite numbers", value)
        out.append(float(x))
    return tuple(out)


# ---------------------------------------------------------------------------------------------------------
# Base class

@dataclass(frozen=True)
class Spec:
    """Base of every problem spec. Subclasses set ``model`` and implement ``_validate``.

    ``_validate`` returns a dict of cleaned field values (e.g. ints for integral floats); ``__post_init__``
    writes them back into the frozen instance.
    """

    model: ClassVar[str] = ""

    def __post_init__(self) -> None:
        cleaned = self._validate()
        for key, value in (cleaned or {}).items():
            object.__setattr__(self, key, value)

    def _validate(self) -> dict[str, Any]:  # pragma: no cover - overridden
        return {}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of the fields (tuples become lists)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Spec":
        """Build from a dict of field values; unknown keys are an error (never silently dropped)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise SpecError(unknown[0], "one of the fields " + ", ".join(sorted(names)), values[unknown[0]])
        return cls(**values)

    def replace(self, **changes: Any) -> "Spec":
        return self.from_dict({**self.to_dict(), **changes})


def field_types(spec_class: type) -> dict[str, Any]:
    """Resolved type annotations of a spec class's fields (used by the CLI to parse strings)."""
    hints = typing.get_type_hints(spec_class)
    return {f.name: hints[f.name] for f in dataclasses.fields(spec_class)}
