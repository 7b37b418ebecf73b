"""Parameter sweeps over any ``concurrent.futures.Executor``: a grid of specs, the family's measures of each.

A sweep is a grid over spec fields (the other fields fixed) and a side: ``theory`` (the family's predict),
``reference`` (its gradient-descent simulate) or ``both``. The unit of work is a *point* = (spec, side); with
``both`` every spec gives two points. A point is evaluated by the family's own functions from the registry
(``families.py``) and measured by its ``summarise`` (the same metrics that ``compare`` reports: for attn-m
the midpoint drop time of (LA-28) and the final loss), so a sweep needs nothing family-specific.

Files, all under the output folder and all written atomically (``files.py``) as each point completes, by
the worker that computed it when the workers share the folder (the default process pool, a local Dask
cluster) or else by the process that drives the sweep (so workers need no shared file system, e.g. on a
remote Dask cluster):

* ``points/<key>.npz``: the point's whole Trajectory (``Trajectory.save``);
* ``points/<key>.json``: model, side, spec, every measure of ``summarise``, versions, wall and CPU seconds,
  the worker's BLAS thread count (the last bits of a result can depend on it), the SHA-256 of the
  ``.npz`` and that of the record itself (``record_sha256``, over every other field); written after the
  ``.npz``, so it marks the point as done.
* ``sweep.csv``: the tidy table, one row per point in grid order (grid fields vary fastest to the right),
  columns ``point``, ``model``, ``side``, every spec field, the requested measures, then the point's wall
  ``seconds`` and ``cpu_seconds`` in its worker (both vary from run to run; everything else is exact).
  A list-valued measure (plateaus, threshold times) or a tuple field is ONE cell holding a JSON list, so
  each point is exactly one row; ``None`` is an empty cell, booleans are ``true``/``false`` and floats are
  written with ``repr`` (exact). A folder may hold the points of several grids (a later sweep with another
  grid into the same ``--out``): the table keeps the rows of the earlier grids after this grid's, so no row
  is ever dropped; if their columns differ (another model or other measures) the sweep is refused before it
  computes anything, naming the folder. ``load`` checks every row against its point's files.

``<key>`` is a stable hash (SHA-256 of the sorted JSON of model, side and the full validated spec, so two
ways of writing the same value give the same key). Rerunning a sweep skips every point whose files are
complete and consistent; a point whose JSON does not parse, does not match its spec or its own checksum, or
whose ``.npz`` fails its checksum is recomputed, never trusted. A point that raises is reported and left unwritten, so the next
run retries it. Two sweeps must not write to the same folder at the same time.

A point that raises (a diverging learning rate, say) does not stop the others: it is recorded in
``SweepResult.failed`` with its one-line reason, ``SweepResult.failures()`` names it by its swept values,
and the CLI reports it in one line and exits with code 2 once the other points are done and tabulated.

Executors: the default is a local ``ProcessPoolExecutor`` of spawned workers whose BLAS libraries are
pinned to one thread (see :func:`blas_pinned_environment`); a Dask distributed ``Client`` (``dask_client``:
a local cluster or a running scheduler, e.g. one of dask-jobqueue on Slurm) is used through its executor,
with chunks sized by its worker threads; any other Executor works through ``run_sweep``.
Spawned workers import the caller's main module, so a script that calls ``run_sweep`` without an executor
needs the usual ``if __name__ == "__main__":`` guard.
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import csv
import dataclasses
import functools
import hashlib
import io
import itertools
import json
import math
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from .errors import ClusterError, CostError, OutputError, one_line, shorten
from .families import RegisteredFamily, family, load_path
from .files import atomic_write_json, atomic_write_text, check_target, exclusive, to_json
from .specs import Spec, SpecError
from .trajectory import Trajectory, versions

SIDES = ("theory", "reference")
SIDE_CHOICES = ("theory", "reference", "both")
BLAS_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
TIMING_COLUMNS = ("seconds", "cpu_seconds")      # the table's only columns that vary from run to run
MAX_POINTS = 100_000     # points of one grid: planning 10^6 took a minute before anything ran, and each is files


# ---------------------------------------------------------------------------------------------------------
# Points

@dataclass(frozen=True)
class Point:
    """One unit of work: a validated spec and the side that evaluates it."""
    spec: Spec
    side: str

    @property
    def model(self) -> str:
        return self.spec.model

    @property
    def key(self) -> str:
        text = to_json({"model": self.model, "side": self.side, "spec": self.spec.to_dict()})
        return hashlib.sha256(text.encode()).hexdigest()[:20]


def plan(model: str, grid: dict[str, Sequence[Any]], fixed: dict[str, Any] | None = None,
         side: str = "theory") -> list[Point]:
    """Every point of the grid (cartesian product in the order given), each spec validated before anything
    runs. Unknown or repeated grid fields, empty value lists and fields both fixed and swept are a
    SpecError naming ``grid``; a bad value is the spec's own SpecError naming its field. Identical points
    (a value listed twice) are kept once."""
    fam = family(model)
    fixed = dict(fixed or {})
    if side not in SIDE_CHOICES:
        raise SpecError("side", "one of " + ", ".join(SIDE_CHOICES), side)
    names = [f.name for f in dataclasses.fields(fam.spec_class)]
    if not grid:
        raise SpecError("grid", "at least one field=v1,v2,... to sweep", grid)
    for name, values in grid.items():
        if name not in names:
            raise SpecError("grid", f"a field of {model} (one of {', '.join(names)})", name)
        if name in fixed:
            raise SpecError("grid", f"a field that is not also fixed ({name} is given both ways)", name)
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
            raise SpecError("grid", f"a non-empty list of values for {name}", values)
    fam.spec_class.from_dict(fixed)        # a bad fixed field is reported as itself, not per point
    count = math.prod(len(values) for values in grid.values())
    if count > MAX_POINTS:
        raise CostError(f"grid: {count:.3g} points, more than the {MAX_POINTS} a sweep plans (each is validated "
                        f"and stored as files); sweep fewer values per --grid field, or split it into sweeps")
    sides = SIDES if side == "both" else (side,)
    points: dict[str, Point] = {}
    for combo in itertools.product(*grid.values()):
        spec = fam.spec_class.from_dict({**fixed, **dict(zip(grid, combo))})
        for s in sides:
            point = Point(spec, s)
            points.setdefault(point.key, point)
    return list(points.values())


def evaluate(model: str, spec_fields: dict[str, Any], side: str, out_dir: str | None = None,
             face: str | None = None) -> dict[str, Any]:
    """Run one point (in a worker): the family's predict or simulate, then its summarise.

    With ``out_dir`` (a folder the worker shares with the driver) the worker also writes the point's files
    and returns only ``{"record": ...}``: the driver then does no per-point serialisation, which otherwise
    costs about as much CPU as a cheap theory point and caps the speed-up of a sweep of such points.
    ``face``: the import path of the family's face (a worker imports it by that path, so families of other
    packages and run-time registrations work on every worker); default: look ``model`` up in the registry."""
    fam = load_path(face, model) if face else family(model)
    spec = fam.spec_class.from_dict(spec_fields)
    start, cpu = time.perf_counter(), time.process_time()
    if side == "theory":
        trajectory = fam.predict(spec)
    else:
        trajectory = fam.simulate(spec, progress=False)
    measures = fam.summarise(spec, trajectory)
    result = {"trajectory": trajectory, "measures": measures, "seconds": time.perf_counter() - start,
              "cpu_seconds": time.process_time() - cpu, "blas_threads": max(blas_threads().values(), default=None),
              "code": code_fingerprint(fam.path)}
    if out_dir is not None:
        return {"record": write_point(Path(out_dir), Point(spec, side), result)}
    return result


def evaluate_point(model: str, spec_fields: dict[str, Any], side: str, out_dir: str | None = None,
                   face: str | None = None) -> dict[str, Any]:
    """``evaluate``, with a point that raises given as ``{"error": its one-line reason}``: the task itself
    succeeds, so a failing point reaches the driver as data (no error has to be pickled across processes,
    and a Dask worker logs no traceback for what is the point's result), and the other points go on."""
    try:
        return evaluate(model, spec_fields, side, out_dir, face)
    except Exception as exc:
        return {"error": reason(exc)}


def evaluate_chunk(model: str, items: list[tuple[dict[str, Any], str]], out_dir: str | None = None,
                   face: str | None = None) -> list[dict]:
    """``evaluate`` for several points in one task (fewer round trips when points take milliseconds). A
    point that raises gives ``{"error": message}`` in its place; the others are unaffected."""
    outcomes = []
    for spec_fields, side in items:
        outcomes.append(evaluate_point(model, spec_fields, side, out_dir, face))
    return outcomes


def reason(exc: BaseException) -> str:
    """A failed point's one-line reason: the error's type and message."""
    return f"{type(exc).__name__}: {one_line(exc)}"


def chunk_size_for(points: int, workers: int) -> int:
    """Points per task for a pool of ``workers``: about eight tasks per worker (so the load stays balanced
    when points differ in cost), at most 32 points each."""
    return max(1, min(32, points // (8 * workers)))


# ---------------------------------------------------------------------------------------------------------
# Point files

def point_paths(out_dir: Path, point: Point) -> tuple[Path, Path]:
    folder = Path(out_dir) / "points"
    return folder / f"{point.key}.npz", folder / f"{point.key}.json"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_point(out_dir: Path, point: Point, result: dict[str, Any]) -> dict[str, Any]:
    """Write the point's ``.npz`` then its ``.json`` (the completion mark), both atomically. Not flushed to
    disk one by one (that cost more than a cheap theory point): ``read_point`` checks every point before
    trusting it, so a file lost or emptied by a system crash is recomputed, and ``sweep.csv`` is flushed."""
    npz, meta = point_paths(out_dir, point)
    result["trajectory"].save(npz, sync=False)
    record = {"point": point.key, "model": point.model, "side": point.side, "spec": point.spec.to_dict(),
              "measures": result["measures"], "seconds": result["seconds"],
              "cpu_seconds": result["cpu_seconds"], "blas_threads": result.get("blas_threads"),
              "versions": result["trajectory"].meta.get("versions") or versions(),    # the worker's libraries
              "kind": result["trajectory"].meta.get("kind"), "npz_sha256": _sha256(npz),
              "code": result.get("code")}
    record = json.loads(to_json(record))                 # as it reads back (tuples as lists, NaN as null)
    record["record_sha256"] = record_hash(record)
    atomic_write_json(meta, record, sync=False)
    return record


def record_hash(record: dict[str, Any]) -> str:
    """SHA-256 of a point's record without its own ``record_sha256``: a record edited by hand (a measure
    changed, say) no longer matches it and the point is recomputed, as a changed ``.npz`` is."""
    body = {key: value for key, value in record.items() if key != "record_sha256"}
    return hashlib.sha256(to_json(body).encode()).hexdigest()


def read_point(out_dir: Path, point: Point, code: str | None = None) -> dict[str, Any] | None:
    """The stored record of a finished point, or None if it is missing, corrupt or not this point's. With
    ``code`` (``code_fingerprint``), a record computed by other code is ``{"stale": True}``: recompute it."""
    npz, meta = point_paths(out_dir, point)
    try:
        record = json.loads(meta.read_text())
        ok = (record["point"] == point.key and record["model"] == point.model and record["side"] == point.side
              and record["spec"] == json.loads(to_json(point.spec.to_dict()))
              and isinstance(record["measures"], dict) and record["npz_sha256"] == _sha256(npz)
              and record["record_sha256"] == record_hash(record))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if ok and code is not None and record.get("code") != code:
        return {"stale": True}
    return record if ok else None


@functools.lru_cache(maxsize=None)
def code_fingerprint(face: str) -> str:
    """SHA-256 (16 hex digits) of the package version and every Python source of the packages that compute a
    point of the family whose face is ``face``: this package, the derivations and the face's own package. A
    point stored under another fingerprint was computed by other code (a changed derivation, say) and is
    recomputed, never reused."""
    import importlib.util
    digest = hashlib.sha256(versions().get("reduced_dynamics", "").encode())
    for name in sorted({"reduced_dynamics", "reduced_dynamics.derivations", face.partition(":")[0].split(".")[0]}):
        found = importlib.util.find_spec(name)
        for root in (found.submodule_search_locations or []) if found else []:
            for path in sorted(Path(root).rglob("*.py")):
                digest.update(f"{name}/{path.relative_to(root)}".encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def load_trajectory(out_dir: Path, point: Point) -> Trajectory:
    return Trajectory.load(point_paths(out_dir, point)[0])


# ---------------------------------------------------------------------------------------------------------
# Measures

def check_measures(fam: RegisteredFamily, measures: Sequence[str], known: Sequence[str] | None = None) -> tuple[str, ...]:
    """The requested measure names, checked against ``known`` (the keys of a summarise output) or the
    family's declared ``measures``; an unknown name is a SpecError naming ``measure``."""
    if isinstance(measures, str) or not measures:
        raise SpecError("measure", "one or more measure names", measures)
    names = tuple(measures)
    allowed = tuple(known) if known is not None else tuple(fam.measures)
    if not allowed:
        return names                        # learned from the first evaluation, checked then
    for name in names:
        if name not in allowed:
            raise SpecError("measure", f"a measure of {fam.name} (one of {', '.join(allowed)})", name)
    return names


# ---------------------------------------------------------------------------------------------------------
# Executors

def pin_blas_threads() -> None:
    """Worker initializer: one BLAS/OpenMP thread. The environment variables reach libraries loaded later
    and child processes; threadpoolctl also limits the libraries already loaded, which is what counts in a
    forked worker whose NumPy was imported by the parent."""
    from threadpoolctl import threadpool_limits
    for name in BLAS_VARIABLES:
        os.environ[name] = "1"
    threadpool_limits(limits=1)


@functools.lru_cache(maxsize=None)
def _thread_pools():
    from threadpoolctl import ThreadpoolController
    return ThreadpoolController()        # finds the loaded libraries once (2 ms); asking them is cheap


def blas_threads() -> dict[str, int]:
    """BLAS/OpenMP libraries loaded in this process (at its first call) and their thread counts now."""
    return {f"{info['internal_api']}:{Path(info['filepath']).name}": info["num_threads"]
            for info in _thread_pools().info()}


@contextlib.contextmanager
def blas_pinned_environment() -> Iterator[None]:
    """Set OMP/OPENBLAS/MKL_NUM_THREADS=1 in this process's environment while the block runs, so that
    processes spawned inside it start with them and their BLAS reads them when NumPy loads (these
    variables are read once, at library load: setting them in a worker after NumPy is imported does
    nothing). The parent's own, already loaded, BLAS is unaffected."""
    old = {name: os.environ.get(name) for name in BLAS_VARIABLES}
    os.environ.update({name: "1" for name in BLAS_VARIABLES})
    try:
        yield
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def start_worker(driver: int) -> None:
    """Worker initializer: one BLAS thread, and a watchdog that ends the worker once the driver process is
    gone (a killed driver would otherwise leave its workers computing for nobody)."""
    import threading
    pin_blas_threads()

    def watch() -> None:
        while os.getppid() == driver:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="driver-watchdog").start()


def process_pool(workers: int) -> cf.ProcessPoolExecutor:
    """A pool of spawned (not forked) worker processes with BLAS pinned to one thread each, which exit when
    the driver dies (both by the initializer). The pool starts its workers when tasks are submitted: submit
    inside :func:`blas_pinned_environment` (``run_sweep`` does) and they also inherit the variables."""
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                  initializer=start_worker, initargs=(os.getpid(),))


def folder_lock(out_dir: Path) -> contextlib.AbstractContextManager:
    """Hold ``out_dir/.sweep.lock`` for the whole sweep: a second sweep on the same folder is refused at once
    (``OutputError`` naming the folder and the holder), so no point is computed twice and no one removes
    another sweep's temporary files. The lock dies with its process (``files.exclusive``, ``filelock``)."""
    return exclusive(out_dir / ".sweep.lock", f"{out_dir}: another sweep ({{holder}}) is writing this folder; wait "
                     f"for it to finish or give another --out", holder=f"pid {os.getpid()}")


SCHEDULER_TIMEOUT = 10.0     # seconds to wait for a --scheduler to answer


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int = 2, timeout: float | None = None) -> Iterator[Any]:
    """A Dask distributed ``Client``: connected to ``scheduler`` (an address such as ``tcp://host:8786``, e.g.
    a dask-jobqueue cluster's ``scheduler_address``) or, without one, to a new local cluster of ``workers``
    worker processes with one thread each (Dask's nanny sets OMP/MKL/OPENBLAS_NUM_THREADS=1 before it starts
    them). Pass the client to ``run_sweep`` as its ``executor``. The client, and a local cluster, are closed
    on exit. A scheduler that does not answer within ``timeout`` seconds (default ``SCHEDULER_TIMEOUT``) is a
    ``ClusterError`` naming the address."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        from .errors import MissingExtraError
        raise MissingExtraError("a Dask sweep", "distributed", "dask") from None
    timeout = SCHEDULER_TIMEOUT if timeout is None else timeout
    with contextlib.ExitStack() as stack:
        if scheduler:
            try:
                client = stack.enter_context(Client(scheduler, timeout=timeout))
            except (OSError, TimeoutError, ValueError) as exc:
                raise ClusterError(f"scheduler: no Dask scheduler answered at {scheduler!r} within {timeout:g} s "
                                   f"({type(exc).__name__}); check --scheduler or start one") from None
        else:
            cluster = stack.enter_context(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                       dashboard_address=None))
            client = stack.enter_context(Client(cluster))
        yield client


@contextlib.contextmanager
def dask_executor(scheduler: str | None = None, workers: int = 2, timeout: float | None = None) -> Iterator[cf.Executor]:
    """The concurrent.futures executor of ``dask_client(scheduler, workers, timeout)``. Prefer passing the
    client itself to ``run_sweep``: it then sizes the chunks by the cluster's worker threads."""
    with dask_client(scheduler, workers, timeout) as client:
        yield client.get_executor()


def _dask_client(executor: Any) -> Any:
    """``executor`` if it is a Dask distributed Client (without importing Dask when it is not loaded)."""
    distributed = sys.modules.get("distributed")
    if distributed is not None and isinstance(executor, distributed.Client):
        return executor
    return None


def dask_threads(client: Any) -> int:
    """Worker threads connected to a Dask client's scheduler now (0 while a job queue has not started any)."""
    return sum(client.nthreads().values())


# ---------------------------------------------------------------------------------------------------------
# Running

@dataclass
class SweepResult:
    points: list[Point]
    records: dict[str, dict[str, Any]]          # point key -> stored record (finished points)
    computed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    recomputed_corrupt: list[str] = field(default_factory=list)
    recomputed_stale: list[str] = field(default_factory=list)   # stored by other code (code_fingerprint)
    failed: dict[str, str] = field(default_factory=dict)   # point key -> its one-line reason
    csv_path: Path | None = None
    measures: tuple[str, ...] = ()
    chunk_size: int = 1                         # points per task in this run
    grid_fields: tuple[str, ...] = ()           # the swept fields, which name a point to a reader

    def parameters(self, key: str) -> str:
        """The swept values of a point, ``lr=100.0, seed=1`` (with its side when the sweep has both)."""
        point = next(p for p in self.points if p.key == key)
        values = [f"{name}={getattr(point.spec, name)!r}" for name in self.grid_fields]
        if len({p.side for p in self.points}) > 1:
            values.append(f"side={point.side}")
        return ", ".join(values)

    def failures(self) -> list[str]:
        """One line per failed point: its parameters, its key (the name of its files) and its reason."""
        return [f"{self.parameters(key)} (point {key}): {message}" for key, message in self.failed.items()]

    def _table(self, limit: int) -> tuple[list[str], list[list[str]], int]:
        """Header (side, the grid fields that vary, the measures) and the first ``limit`` finished rows."""
        specs = [p.spec.to_dict() for p in self.points]
        varying = [f for f in (specs[0] if specs else {}) if len({json.dumps(s[f], default=str) for s in specs}) > 1]
        finished = [p for p in self.points if p.key in self.records]
        def cell(value: Any) -> str:
            return "" if value is None else f"{value:.5g}" if isinstance(value, float) else str(value)
        rows = [[p.side, *(cell(p.spec.to_dict()[f]) for f in varying),
                 *(cell(self.records[p.key]["measures"].get(m)) for m in self.measures)] for p in finished[:limit]]
        return ["side", *varying, *self.measures], rows, len(finished)

    def __repr__(self) -> str:
        """A few lines (at most 1 KB): counts, the table's path and the first rows; ``load(out_dir)`` has all."""
        model = self.points[0].model if self.points else "?"
        head = (f"SweepResult({model}: {len(self.points)} points, {len(self.computed)} computed, "
                f"{len(self.skipped)} skipped, {len(self.failed)} failed; table {self.csv_path}")
        header, rows, finished = self._table(5)
        lines = ["  " + " | ".join(header)] + ["  " + " | ".join(r) for r in rows]
        text = head
        for line in lines:
            if len(text) + len(line) > 900:
                break
            text += "\n" + line[:200]
        if finished > len(rows):
            text += f"\n  ... {finished - len(rows)} more rows"
        return text + ")"

    def _repr_html_(self) -> str:
        """A table for Jupyter: the varying grid fields and the measures of the first 20 finished points."""
        import html
        header, rows, finished = self._table(20)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
        more = f"<tr><td colspan='{len(header)}'>... {finished - len(rows)} more</td></tr>" if finished > len(rows) else ""
        caption = html.escape(f"{self.points[0].model if self.points else '?'}: {len(self.points)} points, "
                              f"{len(self.computed)} computed, {len(self.skipped)} skipped, {len(self.failed)} failed")
        return (f"<table><caption>{caption}</caption><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header)
                + f"</tr>{body}{more}</table>")


def run_sweep(model: str, grid: dict[str, Sequence[Any]], measures: Sequence[str], out_dir: str | Path,
              fixed: dict[str, Any] | None = None, side: str = "theory", executor: Any = None,
              workers: int | None = None, progress: bool | None = None,
              workers_write: bool | None = None, chunk_size: int | None = None) -> SweepResult:
    """Evaluate every point of the grid not already finished in ``out_dir``, write each as it completes,
    then write ``sweep.csv``. Without ``executor``, a process pool of ``workers`` (default: CPU count)
    spawned workers with one BLAS thread each is created and shut down here; a given executor is used
    as is and left open; a Dask distributed ``Client`` (e.g. of a dask-jobqueue cluster) is used through its
    executor. ``progress``: tqdm bar on (True), off (False) or only on a terminal (None).
    ``workers_write``: the workers write the point files into ``out_dir`` themselves (they must see that
    folder at the same path: default True for the pool made here, False for a given executor or client,
    which may be a remote cluster); otherwise they send each whole trajectory back and this process writes
    it. ``chunk_size``: points per task (default: ``chunk_size_for`` the pool made here or the client's
    worker threads connected when the sweep starts, 1 for another executor). The folder is locked for the
    whole run (``folder_lock``); on Ctrl-C the table of the finished points is written first."""
    fam = family(model)
    points = plan(model, grid, fixed, side)
    names = check_measures(fam, measures)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise SpecError("workers", "a positive integer", workers)
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
        raise SpecError("chunk_size", "a positive integer", chunk_size)
    out_dir = Path(out_dir)
    check_target(out_dir / "sweep.csv", writable=True)
    with folder_lock(out_dir):
        other_rows(out_dir / "sweep.csv", points, names)       # refused here, before any work, if they clash
        return _run_locked(model, fam, points, names, out_dir, executor, workers, progress, workers_write,
                           chunk_size, side, grid)


def _run_locked(model, fam, points, names, out_dir, executor, workers, progress, workers_write, chunk_size,
                side, grid) -> SweepResult:
    from tqdm.auto import tqdm

    for stale in (out_dir / "points").glob(".*.tmp"):    # half-written files of a killed run (we hold the lock)
        stale.unlink()
    if workers_write is None:
        workers_write = executor is None
    shared = str(out_dir.resolve()) if workers_write else None
    result = SweepResult(points, {}, measures=names, grid_fields=tuple(grid))
    code = code_fingerprint(fam.path)
    pending = []
    for point in points:
        record = read_point(out_dir, point, code)
        if record is not None and record.get("stale"):
            result.recomputed_stale.append(point.key)
            pending.append(point)
        elif record is not None:
            result.records[point.key] = record
            result.skipped.append(point.key)
        else:
            if any(p.exists() for p in point_paths(out_dir, point)):
                result.recomputed_corrupt.append(point.key)
            pending.append(point)
    if result.records:
        check_measures(fam, names, next(iter(result.records.values()))["measures"])

    with contextlib.ExitStack() as stack:
        client = _dask_client(executor)
        if client is not None:
            executor = client.get_executor()
            chunk_size = chunk_size or chunk_size_for(len(pending), max(1, dask_threads(client)))
        if executor is None and pending:
            stack.enter_context(blas_pinned_environment())
            pool_size = workers or os.cpu_count() or 1
            executor = process_pool(pool_size)
            stack.callback(executor.shutdown, wait=True, cancel_futures=True)
            chunk_size = chunk_size or chunk_size_for(len(pending), pool_size)
        chunk_size = result.chunk_size = chunk_size or 1
        bar = stack.enter_context(tqdm(total=len(points), initial=len(result.records), unit="point",
                                       desc=f"sweep {model} ({side})", disable=None if progress is None
                                       else not progress))
        futures: dict[cf.Future, list[Point]] = {}
        try:
            if pending and not result.records:
                # No stored measure names yet: evaluate one point first and check the names against it,
                # unless the family declares them (then everything is submitted at once).
                if not fam.measures:
                    first = pending.pop(0)
                    _collect(out_dir, [first], _submit(executor, model, [first], shared), result, bar)
                    if first.key in result.records:
                        check_measures(fam, names, result.records[first.key]["measures"])
            chunks = [pending[i:i + chunk_size] for i in range(0, len(pending), chunk_size)]
            futures = {_submit(executor, model, chunk, shared): chunk for chunk in chunks}
            for future in cf.as_completed(futures):
                # pop: collected results (whole trajectories) are dropped at once, so memory stays flat
                _collect(out_dir, futures.pop(future), future, result, bar)
        except BaseException as exc:
            for future in futures:
                future.cancel()
            if isinstance(exc, KeyboardInterrupt):    # Ctrl-C: keep what finished, and its table
                for future, chunk in futures.items():
                    if future.done() and not future.cancelled() and future.exception() is None:
                        _collect(out_dir, chunk, future, result, bar)
                if result.records:
                    result.csv_path = write_table(out_dir / "sweep.csv", points, result.records, names)
            raise
    if result.records:
        check_measures(fam, names, next(iter(result.records.values()))["measures"])
    result.csv_path = write_table(out_dir / "sweep.csv", points, result.records, names)
    return result


def _submit(executor: cf.Executor, model: str, chunk: list[Point], shared: str | None) -> cf.Future:
    """One point as one ``evaluate_point`` task (what an executor's users see task by task), several as one
    ``evaluate_chunk`` task."""
    face = family(model).path
    if len(chunk) == 1:
        return executor.submit(evaluate_point, model, chunk[0].spec.to_dict(), chunk[0].side, out_dir=shared, face=face)
    return executor.submit(evaluate_chunk, model, [(p.spec.to_dict(), p.side) for p in chunk], out_dir=shared,
                           face=face)


def _collect(out_dir: Path, chunk: list[Point], future: cf.Future, result: SweepResult, bar) -> None:
    try:
        outcomes = future.result()
    except Exception as exc:  # a failing task is reported and retried by the next run, never written
        outcomes = [{"error": reason(exc)}] * len(chunk)
    if len(chunk) == 1 and not isinstance(outcomes, list):
        outcomes = [outcomes]
    for point, outcome in zip(chunk, outcomes):
        if "error" in outcome:
            result.failed[point.key] = outcome["error"]
        else:
            result.records[point.key] = (outcome["record"] if "record" in outcome
                                         else write_point(out_dir, point, outcome))
            result.computed.append(point.key)
    bar.update(len(chunk))


# ---------------------------------------------------------------------------------------------------------
# The table

def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"     # as the CLI writes them
    if isinstance(value, (list, tuple, dict)):
        return to_json(value)
    if isinstance(value, float):
        return repr(value)
    return value


def table_rows(points: Sequence[Point], records: dict[str, dict[str, Any]],
               measures: Sequence[str]) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of the tidy table: one row per finished point, in grid order."""
    if not points:
        return [], []
    fields = [f.name for f in dataclasses.fields(type(points[0].spec))]
    header = ["point", "model", "side", *fields, *measures, *TIMING_COLUMNS]
    rows = []
    for point in points:
        record = records.get(point.key)
        if record is None:
            continue
        spec = record["spec"]
        rows.append([point.key, point.model, point.side, *(_cell(spec[f]) for f in fields),
                     *(_cell(record["measures"][m]) for m in measures), _cell(record["seconds"]),
                     _cell(record.get("cpu_seconds"))])
    return header, rows


def other_rows(path: Path, points: Sequence[Point], measures: Sequence[str]) -> list[list[str]]:
    """The rows of ``path`` (an existing table) that are not points of this grid: an earlier sweep's into the
    same folder, kept by ``write_table``. An OutputError naming the folder if there are such rows and their
    columns are not this sweep's (other measures, another model): the table could not hold both."""
    if not path.exists():
        return []
    try:
        with open(path, newline="") as handle:
            table = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise OutputError(f"{path}: cannot read the table already there ({exc}); give another --out or move "
                          f"it away") from None
    if not table:
        return []
    keys = {point.key for point in points}
    rows = [row for row in table[1:] if row and row[0] not in keys]
    header = table_rows(points, {}, measures)[0]
    if rows and table[0] != header:
        raise OutputError(f"{path.parent}: holds a sweep with other columns ({len(rows)} rows of points not in "
                          f"this grid, columns {shorten(','.join(table[0]), 120)}); give another --out, or sweep "
                          f"with the same model and measures to add to it")
    return rows


def write_table(path: Path, points: Sequence[Point], records: dict[str, dict[str, Any]],
                measures: Sequence[str]) -> Path:
    """This grid's rows, then the rows of points of other grids already in the table (``other_rows``)."""
    header, rows = table_rows(points, records, measures)
    rows += other_rows(path, points, measures)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return atomic_write_text(path, buffer.getvalue())


def read_table(path: str | Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# ---------------------------------------------------------------------------------------------------------
# Loading a finished sweep into pandas / xarray (optional: the ``data`` extra, imported at first use)

def load(out_dir: str | Path) -> Any:
    """The sweep's table ``out_dir/sweep.csv`` as a pandas DataFrame, one row per point, checked against
    the point records (``check_table``), with its cells decoded as they were written: numbers, booleans, empty cells as NaN/None and JSON lists (list-valued
    measures, tuple fields) as Python lists. Needs pandas (the ``data`` extra)."""
    from .errors import ResultFileError, optional_import
    pd = optional_import("pandas", "sweep.load")
    path = Path(out_dir) / "sweep.csv"
    if not path.exists():
        raise ResultFileError(path, "no sweep table here (run the sweep first)")
    check_table(Path(out_dir))
    frame = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype=str)
    for column in frame.columns:
        frame[column] = frame[column].map(_decode_cell)
        frame[column] = frame[column].infer_objects()
    return frame


def check_table(out_dir: Path) -> None:
    """Every row of ``out_dir/sweep.csv`` is what its point's record says (a ``ResultFileError`` naming the
    row, the column and the file otherwise): a table edited by hand, or a point file changed after the table
    was written, is not returned as a result. Each record must also match its own checksum."""
    from .errors import ResultFileError
    path = out_dir / "sweep.csv"
    try:
        rows = read_table(path)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ResultFileError(path, f"cannot read it as a table ({exc})") from None
    for number, row in enumerate(rows, start=2):          # line numbers of the file (the header is line 1)
        key = row.get("point") or ""
        record_path = out_dir / "points" / f"{Path(key).name}.json"
        try:
            record = json.loads(record_path.read_text())
            intact = record.get("record_sha256") == record_hash(record) and record.get("point") == key
        except (OSError, ValueError, AttributeError):
            intact = False
        if not intact:
            raise ResultFileError(path, f"line {number}: its point {shorten(key, 40)!r} has no intact record in "
                                        f"{record_path.parent}; rerun the sweep to recompute it and rewrite the table")
        expected = {"point": key, "model": record["model"], "side": record["side"], **record["spec"],
                    **record["measures"], "seconds": record["seconds"], "cpu_seconds": record.get("cpu_seconds")}
        for column, text in row.items():
            if column in expected and str(_cell(expected[column])) != text:
                raise ResultFileError(path, f"line {number}, column {column}: {shorten(repr(text), 60)} in the table "
                                            f"but {shorten(repr(str(_cell(expected[column]))), 60)} in {record_path}; "
                                            f"the table was changed: rerun the sweep to rewrite it")
            if column not in expected:
                raise ResultFileError(path, f"column {shorten(repr(column), 60)} is not in the records of its points")


def _decode_cell(text: Any) -> Any:
    if not isinstance(text, str):
        return None                       # an empty cell
    try:
        return json.loads(text)           # numbers, true/false, JSON lists
    except ValueError:
        return text                       # point keys, model and side names, choices


def load_curves(out_dir: str | Path, t: Sequence[float] | None = None) -> Any:
    """The loss curves of every point of the table as an xarray Dataset: variable ``loss`` with one dim per
    grid field that varies (one field or several) (and ``side`` for a sweep of both), plus ``t``; the table's measures as variables
    over the grid dims. The curves must share one time grid, or pass ``t`` to interpolate each (linearly)
    onto it. Needs xarray and pandas (the ``data`` extra)."""
    import numpy as np

    from .errors import optional_import
    xr = optional_import("xarray", "sweep.load_curves")
    table = load(out_dir)
    curves = [Trajectory.load(Path(out_dir) / "points" / f"{key}.npz") for key in table["point"]]
    if t is None:
        t = curves[0].t
        if not all(np.array_equal(c.t, t) for c in curves):
            raise SpecError("t", "a common time grid to interpolate onto (the curves have different grids)",
                            None)
        losses = np.stack([c.loss for c in curves])
    else:
        t = np.asarray(t, dtype=float)
        losses = np.stack([np.interp(t, c.t, c.loss, right=np.nan) for c in curves])
    skip = {"point", "model", "seconds", "cpu_seconds"}
    varying = [c for c in table.columns if c not in skip and table[c].map(repr).nunique() > 1
               and not isinstance(table[c].iloc[0], list)]
    fields = [f.name for f in dataclasses.fields(family(table["model"].iloc[0]).spec_class)]
    grid = [c for c in varying if c in fields or c == "side"]
    measures = [c for c in table.columns if c not in skip and c not in fields and c != "side"
                and not any(isinstance(v, list) for v in table[c])]
    data = {"loss": (("point", "t"), losses), **{m: ("point", table[m].to_numpy()) for m in measures}}
    ds = xr.Dataset(data, coords={"t": t, "point": table["point"].to_numpy(),
                                  **{g: ("point", table[g].to_numpy()) for g in grid}},
                    attrs={"model": str(table["model"].iloc[0]), "axis": curves[0].axis or ""})
    if len(grid) == 1:           # one swept field: it becomes the dim (set_index makes no MultiIndex to unstack)
        ds = ds.swap_dims(point=grid[0]).drop_vars("point")
    elif grid:
        ds = ds.set_index(point=grid).unstack("point")
    return ds.transpose(..., "t")
