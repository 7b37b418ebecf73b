"""The ``reduced-dynamics`` command (also ``python -m reduced_dynamics``).

    reduced-dynamics predict  MODEL [spec flags] [--out FILE.npz] [--json FILE] [--plot FILE]
    reduced-dynamics simulate MODEL [spec flags] [--out FILE.npz] [--json FILE] [--plot FILE]
    reduced-dynamics compare  MODEL [spec flags] [--out-dir DIR] [--out FILE.npz] [--json FILE] [--plot FILE]
    reduced-dynamics figures  [NAME ...] [--list] [--all] [--quick] [--out DIR]
    reduced-dynamics sweep    MODEL --grid FIELD=V1,V2,... [--grid ...] [spec flags] --measure NAME[,NAME]
                              [--side theory|reference|both] [--out DIR] [--workers N]
                              [--dask local | --scheduler ADDRESS] [--chunk-size N] [--[no-]workers-write]
    reduced-dynamics ledger   [--quick] [--study NAME] [--seeds N] [--out DIR] [--workers N] [--write-into FILE]
    reduced-dynamics atlas    MODEL --lr-range A B [--points K] [spec flags] [--out-dir DIR]
    reduced-dynamics models

Spec flags are generated from the model's spec dataclass (underscores become hyphens), so the CLI and the
Python API cannot drift apart. Bad input prints one line naming the parameter and exits with code 2.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from .errors import OutputError, ReducedDynamicsError, one_line
from .families import FAMILIES, family
from .files import all_or_nothing, atomic_write_json, check_folder, check_target, exclusive
from .arguments import (UsageError, _base_type, _number, _Parser, add_spec_arguments, parse_value,
                        spec_from_arguments, spec_values_from_arguments)
from .specs import Spec, SpecError, field_types
from .threads import one_blas_thread

VERBS = ("predict", "simulate", "compare")


def _output_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("--out", metavar="FILE.npz", help="where to write the curve(s) (.npz)")
    parser.add_argument("--json", metavar="FILE", help="where to write the summary / report (.json)")
    parser.add_argument("--plot", metavar="FILE", help="where to write a figure (.pdf or .png; both are written)")
    if verb == "predict":
        parser.add_argument("--max-lr", action="store_true",
                            help="print the largest stable learning rate, 2 / lambda_max of the Hessian of the system "
                                 "the run follows along its flow (LR-8, LRA-2), name that system, and exit")
    parser.add_argument("--yes", action="store_true",
                        help="run even if the estimated time exceeds the budget (memory limits still apply)")
    if verb == "compare":
        parser.add_argument("--out-dir", default="out", metavar="DIR",
                            help="folder for the default outputs MODEL-compare.{json,txt,npz,pdf,png} (default: out)")
    else:
        parser.add_argument("--out-dir", default="out", metavar="DIR",
                            help=f"folder for the default output MODEL-{verb}.npz (default: out)")


def _as_file(text: str, default_name: str) -> Path:
    """An output path from the command line; a trailing separator means a folder, in which the output gets
    its default name (``--out runs/`` writes ``runs/attn-m-predict.npz``, never a file named ``runs``)."""
    return Path(text) / default_name if text.endswith(("/", os.sep)) else Path(text)


def output_targets(model: str, verb: str, args: argparse.Namespace) -> dict[str, Any]:
    """Every file a verb will write, checked before any work (``files.check_target``: a folder, symlink,
    device or FIFO where a file is asked for, a file where a folder is, or a folder that cannot be written:
    an OutputError naming it), and no two outputs at one path (``--out r.npz --json r.npz`` would leave one
    of them). Returns the paths by flag: ``out``, ``json``, ``plot`` (a stem: .pdf and .png) and, for
    compare, ``stem`` (the default set in --out-dir)."""
    stem = f"{model}-{verb}"
    named: list[tuple[str, Path]] = []
    found: dict[str, Any] = {"out": None, "json": None, "plot": None, "stem": None}
    if verb == "compare":
        found["stem"] = Path(args.out_dir) / stem
        named += [("--out-dir", found["stem"].with_name(stem + s)) for s in (".json", ".txt", ".npz", ".pdf", ".png")]
        found["out"] = _as_file(args.out, stem + ".npz") if args.out else None
    else:
        found["out"] = _as_file(args.out, stem + ".npz") if args.out else Path(args.out_dir) / f"{stem}.npz"
    if found["out"] is not None:
        named.append(("--out", found["out"]))
    if args.json:
        found["json"] = _as_file(args.json, stem + ".json")
        named.append(("--json", found["json"]))
    if args.plot:
        found["plot"] = _as_file(args.plot, stem).with_suffix("")
        named += [("--plot", found["plot"].with_suffix(s)) for s in (".pdf", ".png")]
    seen: dict[str, str] = {}
    for flag, path in named:
        where = os.path.normcase(os.path.abspath(path))
        if where in seen:
            raise OutputError(f"{path}: written by both {seen[where]} and {flag} (one would replace the other); "
                              f"give each output its own path")
        seen[where] = flag
        check_target(path, writable=True)
    found["all"] = [path for _, path in named]
    return found


def output_lock(model: str, verb: str, targets: dict[str, Any]):
    """The lock of this command's output set (``files.exclusive``): a second command writing the same set at
    the same time is refused before it computes anything (else both report writing and one set survives)."""
    main = targets["stem"] if targets["stem"] is not None else targets["out"]
    return exclusive(main.parent / f".{main.name}.lock",
                     f"{main.parent / main.name}: another {model} {verb} ({{holder}}) is writing these outputs now; "
                     f"wait for it to finish or choose another output location", holder=f"pid {os.getpid()}")


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
    if getattr(args, "max_lr", False):
        if not fam.has("max_stable_lr"):
            raise SpecError("max_lr", "a family with a reduced GD map (one whose face defines max_stable_lr)", fam.name)
        fam.guard(spec, "predict", confirm_time=True, yes=args.yes)
        found = fam.face.max_stable_lr(spec)
        print(f"{fam.name}: largest stable learning rate (LR-8, LRA-2): eta_max = "
              f"{found['eta_max']:.6g}" + "".join(f"; {k} {v:.6g}" for k, v in found.items()
                                                 if k != "eta_max" and isinstance(v, float)))
        print(f"(the system: {found['system']})" if "system" in found else
              "(the bound of the reduced system: for frozen off-manifold blocks; the full model can be sharper)")
        return 0
    targets = output_targets(fam.name, verb, args)      # every output checked before any work is done
    fam.guard(spec, verb, confirm_time=True, yes=args.yes)
    with output_lock(fam.name, verb, targets):
        return _compute_and_write(fam, verb, spec, targets)


def _compute_and_write(fam, verb: str, spec: Spec, targets: dict[str, Any]) -> int:
    start = time.perf_counter()
    progress = None if sys.stderr.isatty() else False   # a bar redrawn into a log file is 100 KB of noise
    if verb == "compare":
        from .comparison import plot_report, run
        report = run(spec, progress=progress)
        with all_or_nothing():
            written = report.save(targets["stem"], plot=True)
            if targets["out"]:
                written.append(report.save_curves(targets["out"]))
            if targets["json"]:
                written.append(atomic_write_json(targets["json"], report.to_dict()))
            if targets["plot"]:
                written += plot_report(report, targets["plot"])
        print(report.text())
    else:
        trajectory = fam.predict(spec) if verb == "predict" else fam.simulate(spec, progress=progress)
        summary = fam.summarise(spec, trajectory)
        with all_or_nothing():
            written = [trajectory.save(targets["out"])]
            if targets["json"]:
                written.append(atomic_write_json(targets["json"], {"model": fam.name,
                                                                   "kind": trajectory.meta.get("kind"),
                                                                   "spec": spec.to_dict(), **summary}))
            if targets["plot"]:
                from . import plotting
                fig, ax = plotting.figure()
                if verb == "predict":
                    plotting.loss_axes(ax, {"theory": trajectory}, xlabel=trajectory.axis)
                else:
                    plotting.loss_axes(ax, {}, reference=trajectory, xlabel=trajectory.axis)
                written += plotting.save(fig, targets["plot"])
        print(f"{fam.name} {verb} ({trajectory.meta.get('kind')}): "
              + ", ".join(f"{k} {v:.6g}" if isinstance(v, float) else f"{k} {v}" for k, v in summary.items()))
    print(f"finished in {time.perf_counter() - start:.1f} s; wrote:")
    for path in written:
        print(f"  {path}")
    return 0


FIGURE_FILES = (".pdf", ".png", ".npz", ".json")


def resolve(path: str):
    """The function at ``"module:function"`` (figure scripts are registered that way)."""
    import importlib
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def figure_registry() -> dict[str, str]:
    """Figure name (the script's module name) -> "module:function", over every family."""
    out = {}
    for fam in FAMILIES.values():
        for path in fam.figures:
            out[path.partition(":")[0].rsplit(".", 1)[-1]] = path
    return out


def figure_families() -> dict[str, str]:
    """Figure name -> the family that registers it."""
    return {path.partition(":")[0].rsplit(".", 1)[-1]: fam.name for fam in FAMILIES.values() for path in fam.figures}


def make_figures(names: list[str], out_dir: Path, quick: bool = False) -> dict[str, tuple[float, list[Path]]]:
    """Run the named figure scripts; each must write its PDF, PNG, .npz and .json (with the spec and the
    versions) beside each other (the registry's contract), else a RuntimeError names what is missing.
    BLAS runs on one thread (see ``one_blas_thread``)."""
    registry = figure_registry()
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise SpecError("figures", "one of " + ", ".join(registry), unknown[0])
    done = {}
    for name in names:
        start = time.perf_counter()
        with one_blas_thread():
            written = [Path(p) for p in resolve(registry[name])(Path(out_dir), quick=quick)]
        seconds = time.perf_counter() - start
        missing = [suffix for suffix in FIGURE_FILES if not any(p.suffix == suffix and p.exists() for p in written)]
        if missing:
            raise RuntimeError(f"figure {name} did not write its {', '.join(missing)} file(s)")
        about = json.loads(next(p for p in written if p.suffix == ".json").read_text())
        if not {"spec", "versions"} <= set(about):
            raise RuntimeError(f"figure {name}: its .json lacks the spec or the versions")
        import numpy as np
        with np.load(next(p for p in written if p.suffix == ".npz")) as data:
            if "meta" not in data.files:
                raise RuntimeError(f"figure {name}: its .npz has no meta (write it with reduced_dynamics.figures.save)")
        done[name] = (seconds, written)
        print(f"{name}: {seconds:.1f} s")
        for path in written:
            print(f"  {path}")
    return done


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
        owners = figure_families()
        width = max(map(len, owners.values()), default=10)
        for name, path in registry.items():
            print(f"{name:32} {owners[name]:{width}} {path}")
        return 0
    names = list(registry) if args.all else args.names
    if not names:
        raise UsageError("figures: name at least one figure, or --all (see --list)")
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise SpecError("figures", "one of " + ", ".join(registry), unknown[0])
    check_folder(args.out)                              # before any figure is computed
    start = time.perf_counter()
    done = make_figures(names, Path(args.out), quick=args.quick)
    print(f"{len(done)} figure(s){' (quick)' if args.quick else ''} in {time.perf_counter() - start:.1f} s:")
    for name, (seconds, _) in done.items():
        print(f"  {name:32} {seconds:8.1f} s")
    return 0


def run_figure_script(name: str, argv: list[str] | None = None) -> int:
    """``python -m reduced_dynamics.scripts.NAME [--quick] [--out DIR]``: the figures command for one script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return main(["figures", name, *argv])


def parse_grid(spec_class: type[Spec], texts: list[str]) -> dict[str, list[Any]]:
    """``--grid field=v1,v2,...`` options -> {field: [values]}, each value parsed by the field's type.
    A tuple-valued field (e.g. eigenvalues) separates its grid values by ';' ('0.4,0.3;0.5,0.2')."""
    hints = field_types(spec_class)
    grid: dict[str, list[Any]] = {}
    for text in texts:
        name, equals, values = text.partition("=")
        name = name.strip().replace("-", "_")
        if not equals or not name:
            raise SpecError("grid", "field=v1,v2,...", text)
        if name not in hints:
            raise SpecError("grid", f"a field of {spec_class.model} (one of {', '.join(hints)})", name)
        if name in grid:
            raise SpecError("grid", "each field in one --grid", name)
        parts = [part.strip() for part in values.split(";" if _base_type(hints[name]) is tuple else ",")]
        if any(not part for part in parts):
            raise SpecError("grid", f"non-empty comma-separated values for {name}", text)
        grid[name] = [parse_value(spec_class, name, part) for part in parts]
    return grid


def _run_sweep(argv: list[str]) -> int:
    from . import sweep
    if not argv or argv[0].startswith("-"):
        if argv and argv[0] in ("-h", "--help"):
            print("usage: reduced-dynamics sweep MODEL --grid FIELD=V1,V2,... [--grid ...] [spec flags] "
                  f"--measure NAME[,NAME] [--side theory|reference|both] [--out DIR] [--workers N] "
                  f"[--dask local | --scheduler ADDRESS] [--chunk-size N] [--[no-]workers-write]; "
                  f"models: {', '.join(FAMILIES)}")
            return 0
        raise UsageError(f"sweep: missing MODEL (one of {', '.join(FAMILIES)})")
    fam = family(argv[0])
    parser = _Parser(prog=f"reduced-dynamics sweep {fam.name}",
                     description=f"parameter sweep for {fam.title}; fixed fields as flags, swept ones as --grid")
    add_spec_arguments(parser, fam.spec_class)
    parser.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2,...",
                        help="a swept spec field and its values (repeat for a product grid)")
    parser.add_argument("--measure", metavar="NAME[,NAME]",
                        help="measures to tabulate: keys of the family's summary"
                             + (f" ({', '.join(fam.measures)})" if fam.measures else ""))
    parser.add_argument("--side", default="theory", metavar="SIDE",
                        help="theory (predict), reference (gradient descent) or both (default: theory)")
    parser.add_argument("--out", default="sweep-out", metavar="DIR",
                        help="folder for points/ and sweep.csv; rerunning skips finished points (default: sweep-out)")
    parser.add_argument("--workers", metavar="N", help="worker processes (default: CPU count; local Dask: 2)")
    parser.add_argument("--dask", metavar="local", help="run on a new local Dask cluster ('local')")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run on the Dask cluster at this scheduler address (e.g. a dask-jobqueue "
                             "SLURMCluster's: see docs/cluster.md)")
    parser.add_argument("--chunk-size", metavar="N",
                        help="points per task (default: about 8 tasks per worker thread connected when the sweep "
                             "starts, at most 32 points each)")
    parser.add_argument("--workers-write", action=argparse.BooleanOptionalAction, default=None,
                        help="workers write the point files into --out themselves (they must see it at the same "
                             "path; default: on, off with --scheduler: the driver writes them)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar (default: on a terminal)")
    parser.add_argument("--yes", action="store_true",
                        help="run even if the estimated time exceeds the budget (memory limits still apply)")
    args = parser.parse_args(argv[1:])
    fixed = spec_values_from_arguments(fam.spec_class, args)
    grid = parse_grid(fam.spec_class, args.grid)
    if not args.measure:
        raise SpecError("measure", "--measure NAME[,NAME]" + (f" from {', '.join(fam.measures)}" if fam.measures
                                                               else ""), args.measure)
    measures = [m.strip() for m in args.measure.split(",")]
    repeated = sorted({m for m in measures if measures.count(m) > 1})
    if repeated or "" in measures:
        raise SpecError("measure", "distinct, non-empty measure names", args.measure)
    workers = None
    if args.workers is not None:
        workers = _number("workers", args.workers)
        if not isinstance(workers, int) or workers < 1:
            raise SpecError("workers", "a positive integer", args.workers)
        cores = os.cpu_count() or 1
        if workers > cores and not args.scheduler:
            print(f"reduced-dynamics: warning: --workers {workers} is more than the {cores} cores here; using {cores}",
                  file=sys.stderr)
            workers = cores
    chunk_size = None
    if args.chunk_size is not None:
        chunk_size = _number("chunk_size", args.chunk_size)
        if not isinstance(chunk_size, int) or chunk_size < 1:
            raise SpecError("chunk_size", "a positive integer", args.chunk_size)
    if args.dask is not None and args.dask != "local":
        raise SpecError("dask", "'local' (or use --scheduler ADDRESS)", args.dask)
    if args.dask and args.scheduler:
        raise SpecError("scheduler", "either --dask local or --scheduler ADDRESS, not both", args.scheduler)
    points = sweep.plan(fam.name, grid, fixed, args.side)        # everything validated before anything runs
    sweep.check_measures(fam, measures)
    check_target(Path(args.out) / "sweep.csv", writable=True)
    if fam.has("estimate"):
        from .costs import enforce, sweep_estimate
        sides = ("predict" if p.side == "theory" else "simulate" for p in points)
        # on a --scheduler cluster the parallelism is not known here: only each point's memory is checked
        parallel = 1 if args.scheduler else workers or (2 if args.dask else os.cpu_count() or 1)
        enforce(fam.name, "sweep", sweep_estimate([fam.estimate(p.spec, verb) for p, verb in zip(points, sides)],
                                                  parallel), confirm_time=not args.scheduler, yes=args.yes)
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        executor = None
        where = f"process pool ({workers or os.cpu_count()} workers, one BLAS thread each)"
        if args.dask or args.scheduler:
            # the client itself, so that run_sweep sizes the chunks by the worker threads it sees
            executor = stack.enter_context(sweep.dask_client(args.scheduler, workers or 2))
            if args.scheduler:
                where = f"Dask scheduler {args.scheduler} ({sweep.dask_threads(executor)} worker threads now)"
            else:
                where = f"local Dask cluster ({workers or 2} workers)"
        workers_write = args.workers_write
        if workers_write is None:
            workers_write = not args.scheduler            # a remote cluster may not see --out
        result = sweep.run_sweep(fam.name, grid, measures, args.out, fixed=fixed, side=args.side,
                                 executor=executor, workers=workers, progress=args.progress,
                                 workers_write=workers_write, chunk_size=chunk_size)
    print(f"{fam.name} sweep on {where}, {result.chunk_size} point(s) per task: {len(points)} points, "
          f"{len(result.computed)} computed, "
          f"{len(result.skipped)} already done, {len(result.recomputed_corrupt)} corrupt recomputed, "
          f"{len(result.recomputed_stale)} computed by older code recomputed, "
          f"{len(result.failed)} failed, in {time.perf_counter() - start:.1f} s")
    failures = result.failures()
    for line in failures:
        print(f"  failed {line}")
    print(f"wrote {result.csv_path} ({len(result.records)} rows) and {Path(args.out) / 'points'}/")
    if failures:
        more = f" and {len(failures) - 1} more (listed above)" if len(failures) > 1 else ""
        print(f"reduced-dynamics: error: {len(failures)} of {len(points)} points failed: {failures[0]}{more}; "
              f"the others are in {result.csv_path}; a rerun computes only the failed points", file=sys.stderr)
        return 2
    return 0


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"reduced-dynamics: warning: {one_line(message)}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    import warnings
    warnings.showwarning = _one_line_warning
    try:
        code = _main(argv)
        sys.stdout.flush()          # here, so that a closed pipe is caught below, not at interpreter exit
        return code
    except BrokenPipeError:         # `figures --list | head -1`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _main(argv: list[str]) -> int:
    try:
        if not argv or argv[0] in ("-h", "--help"):
            print(__doc__.strip())
            return 0
        if argv[0] == "--version":
            from . import __version__
            print(f"reduced-dynamics {__version__}")
            return 0
        verb, rest = argv[0], argv[1:]
        if verb in VERBS:
            with one_blas_thread():
                return _run_model_verb(verb, rest)
        if verb == "figures":
            return _run_figures(rest)
        if verb == "sweep":
            return _run_sweep(rest)
        if verb == "ledger":
            from .ledger import main as run_ledger
            return run_ledger(rest, prog="reduced-dynamics ledger")
        if verb == "atlas":                  # the lr atlas (docs/theory/lr_atlas.md), its own module
            from .atlas_cli import run as run_atlas
            with one_blas_thread():
                return run_atlas(rest)
        if verb == "models":
            width = max(map(len, FAMILIES))
            for fam in FAMILIES.values():
                print(f"{fam.name:{width}}  {fam.title}   [{fam.path}]")
            return 0
        raise UsageError(f"unknown command {verb!r}: expected one of {', '.join(VERBS)}, figures, sweep, ledger, atlas, models")
    except (ReducedDynamicsError, UsageError) as exc:
        print(f"reduced-dynamics: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("reduced-dynamics: interrupted (Ctrl-C); finished outputs were kept, nothing half-written",
              file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
