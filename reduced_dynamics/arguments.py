"""The command line's parsing, shared by every verb (``cli``, ``atlas_cli``, ``ledger``): a parser whose errors
are one line, and a spec's fields as flags (underscores become hyphens), parsed by the field's type and then
validated by the spec itself, so that the CLI and the Python API cannot drift apart."""
from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any

from .specs import Spec, SpecError, field_types

__all__ = ["UsageError", "add_spec_arguments", "parse_value", "spec_from_arguments", "spec_values_from_arguments"]


class UsageError(Exception):
    """Bad command line (unknown flag, missing argument)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump; main() turns it into exit code 2
        raise UsageError(message)


def _base_type(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    return typing.get_origin(tp) or tp


def _number(name: str, text: str) -> int | float:
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    raise SpecError(name, "a number", text)


def add_spec_arguments(parser: argparse.ArgumentParser, spec_class: type[Spec]) -> None:
    hints = field_types(spec_class)
    for f in dataclasses.fields(spec_class):
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        if "default:" not in help_text:          # a help that states its default says it better than None
            help_text += f" (default: {f.default})"
        if f.metadata.get("choices"):
            help_text += " {" + ",".join(f.metadata["choices"]) + "}"
        if _base_type(hints[f.name]) is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                                help=help_text)
        else:
            parser.add_argument(flag, dest=f.name, default=None, metavar=f.name.upper(), help=help_text)


def parse_value(spec_class: type[Spec], name: str, text: str) -> Any:
    """A field's value from command-line text, by the field's type: numbers for int/float fields (the
    spec's validation then rejects 2.5 for an int), true/false for bools, ``none`` for an optional field's
    None, the text itself otherwise (tuple fields take comma-separated numbers, parsed by the spec)."""
    tp = field_types(spec_class)[name]
    optional = typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in typing.get_args(tp)
    if optional and text.strip().lower() == "none":
        return None
    base = _base_type(tp)
    if base is bool:
        lowered = text.strip().lower()
        if lowered not in ("true", "false"):
            raise SpecError(name, "true or false", text)
        return lowered == "true"
    return _number(name, text) if base in (int, float) else text


def spec_values_from_arguments(spec_class: type[Spec], namespace: argparse.Namespace) -> dict[str, Any]:
    """The spec fields given on the command line (flags left out are absent, so defaults apply)."""
    hints = field_types(spec_class)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(spec_class):
        raw = getattr(namespace, f.name)
        if raw is None:
            continue
        base = _base_type(hints[f.name])
        values[f.name] = _number(f.name, raw) if base in (int, float) else raw
    return values


def spec_from_arguments(spec_class: type[Spec], namespace: argparse.Namespace) -> Spec:
    return spec_class.from_dict(spec_values_from_arguments(spec_class, namespace))
