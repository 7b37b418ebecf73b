"""The ``reduced-dynamics`` command (also ``python -m reduced_dynamics``).

    reduced-dynamics predict  MODEL [spec flags] [--out FILE.npz] [--json FILE] [--plot FILE]
    reduced-dynamics simulate MODEL [spec flags] [--out FILE.npz] [--json FILE] [--plot FILE]
    reduced-dynamics compare  MODEL [spec flags] [--out-dir DIR] [--out FILE.npz] [--json FILE] [--plot FILE]
    reduced-dynamics figures  [NAME ...] [--list] [--all] [--quick] [--out DIR]
    reduced-dynamics models

Spec flags are generated from the model's spec dataclass (underscores become hyphens), so the CLI and the
Python API cannot drift apart. Bad input prints one line naming the parameter and exits with code 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import types
import typing
from pathlib import Path
from typing import Any

from .families import FAMILIES, family, resolve
from .files import atomic_write_json
from .specs import Spec, SpecError, field_types

VERBS = ("predict", "simulate", "compare")


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
        help_text = f"{f.metadata.get('help', '')} (default: {f.default})"
        if f.metadata.get("choices"):
            help_text += " {" + ",".join(f.metadata["choices"]) + "}"
        if _base_type(hints[f.name]) is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                                help=help_text)
        else:
            parser.add_argument(flag, dest=f.name, default=None, metavar=f.name.upper(), help=help_text)


def spec_from_arguments(spec_class: type[Spec], namespace: argparse.Namespace) -> Spec:
    hints = field_types(spec_class)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(spec_class):
        raw = getattr(namespace, f.name)
        if raw is None:
            continue
        base = _base_type(hints[f.name])
        values[f.name] = _number(f.name, raw) if base in (int, float) else raw
    return spec_class.from_dict(values)


def _output_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("--out", metavar="FILE.npz", help="where to write the curve(s) (.npz)")
    parser.add_argument("--json", metavar="FILE", help="where to write the summary / report (.json)")
    parser.add_argument("--plot", metavar="FILE", help="where to write a figure (.pdf or .png; both are written)")
    if verb == "compare":
        parser.add_argument("--out-dir", default="out", metavar="DIR",
                            help="folder for the default outputs MODEL-compare.{json,txt,npz,pdf,png} (default: out)")
    else:
        parser.add_argument("--out-dir", default="out", metavar="DIR",
                            help=f"folder for the default output MODEL-{verb}.npz (default: out)")


def _run_model_verb(verb: str, argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        if argv and argv[0] in ("-h", "--help"):
            print(f"usage: reduced-dynamics {verb} MODEL [flags]; models: {', '.join(FAMILIES)}")
            return 0
        raise UsageError(f"{verb}: missing MODEL (one of {', '.join(FAMILIES)})")
    fam = family(argv[0])
    parser = _Parser(prog=f"reduced-dynamics {verb} {fam.name}", description=f"{verb} for {fam.title}")
    add_spec_arguments(parser, fam.spec_class)
    _output_arguments(parser, verb)
    args = parser.parse_args(argv[1:])
    spec = spec_from_arguments(fam.spec_class, args)
    out_dir = Path(args.out_dir)
    start = time.perf_counter()

    if verb == "compare":
        from .comparison import plot_report, run
        report = run(spec)
        stem = out_dir / f"{fam.name}-compare"
        written = report.save(stem, plot=True)
        if args.out:
            written.append(report.save_curves(args.out))
        if args.json:
            written.append(atomic_write_json(args.json, report.to_dict()))
        if args.plot:
            written += plot_report(report, Path(args.plot).with_suffix(""))
        print(report.text())
    else:
        trajectory = fam.resolve(verb)(spec)
        summary = fam.resolve("summarise")(trajectory)
        written = [trajectory.save(args.out or out_dir / f"{fam.name}-{verb}.npz")]
        if args.json:
            written.append(atomic_write_json(args.json, {"model": fam.name, "kind": trajectory.meta.get("kind"),
                                                         "spec": spec.to_dict(), **summary}))
        if args.plot:
            from . import plotting
            fig, ax = plotting.figure()
            if verb == "predict":
                plotting.loss_axes(ax, {"theory": trajectory})
            else:
                plotting.loss_axes(ax, {}, reference=trajectory)
            written += plotting.save(fig, Path(args.plot).with_suffix(""))
        print(f"{fam.name} {verb} ({trajectory.meta.get('kind')}): "
              + ", ".join(f"{k} {v:.6g}" if isinstance(v, float) else f"{k} {v}" for k, v in summary.items()))
    print(f"finished in {time.perf_counter() - start:.1f} s; wrote:")
    for path in written:
        print(f"  {path}")
    return 0


def figure_registry() -> dict[str, str]:
    """Figure name (the script's module name) -> "module:function", over every family."""
    out = {}
    for fam in FAMILIES.values():
        for path in fam.figures:
            out[path.partition(":")[0].rsplit(".", 1)[-1]] = path
    return out


def _run_figures(argv: list[str]) -> int:
    parser = _Parser(prog="reduced-dynamics figures", description="regenerate paper figures")
    parser.add_argument("names", nargs="*", help="figure names (see --list)")
    parser.add_argument("--list", action="store_true", help="list the figure names and exit")
    parser.add_argument("--all", action="store_true", help="make every figure")
    parser.add_argument("--quick", action="store_true", help="reduced sizes that finish in minutes")
    parser.add_argument("--out", default="figures-out", metavar="DIR", help="output folder (default: figures-out)")
    args = parser.parse_args(argv)
    registry = figure_registry()
    if args.list:
        for name in registry:
            print(name)
        return 0
    names = list(registry) if args.all else args.names
    if not names:
        raise UsageError("figures: name at least one figure, or --all (see --list)")
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise SpecError("figures", "one of " + ", ".join(registry), unknown[0])
    for name in names:
        start = time.perf_counter()
        written = resolve(registry[name])(Path(args.out), quick=args.quick)
        print(f"{name}: {time.perf_counter() - start:.1f} s")
        for path in written:
            print(f"  {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if not argv or argv[0] in ("-h", "--help"):
            print(__doc__.strip())
            return 0
        verb, rest = argv[0], argv[1:]
        if verb in VERBS:
            return _run_model_verb(verb, rest)
        if verb == "figures":
            return _run_figures(rest)
        if verb == "models":
            for fam in FAMILIES.values():
                print(f"{fam.name:10} {fam.title}")
            return 0
        raise UsageError(f"unknown command {verb!r}: expected one of {', '.join(VERBS)}, figures, models")
    except (SpecError, UsageError) as exc:
        print(f"reduced-dynamics: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
