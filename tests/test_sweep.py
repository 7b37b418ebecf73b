"""Sweeps: planning and validation, stable point names, resuming, corrupt files, the tidy table.

Runs in-process (a thread pool or a synchronous executor); real worker processes and Dask are in
test_sweep_executors.py.
"""
import concurrent.futures as cf
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reduced_dynamics import sweep
from reduced_dynamics.cli import main
from reduced_dynamics.families import family
from reduced_dynamics.specs import SpecError
from reduced_dynamics.theory.linear_attention.merged import predict, summarise

SMALL = {"dim": 2, "context": 5, "heads": 2, "t_max": 20.0}
GRID = {"init_scale": [0.1, 0.05, 0.02], "seed": [0, 1]}


class Synchronous(cf.Executor):
    """Runs each task at submit time; after ``fail_after`` tasks every further task fails (a lost worker)."""

    def __init__(self, fail_after=None):
        self.fail_after = fail_after
        self.submitted = []

    def submit(self, fn, *args, **kwargs):
        self.submitted.append(args)
        future = cf.Future()
        if self.fail_after is not None and len(self.submitted) > self.fail_after:
            future.set_exception(RuntimeError("worker lost"))
        else:
            future.set_result(fn(*args, **kwargs))
        return future


def keys_of(executor):
    return [sweep.Point(family(model).spec_class.from_dict(fields), side).key
            for model, fields, side in executor.submitted]


def test_grid_is_the_product_and_every_point_is_the_science(tmp_path):
    with cf.ThreadPoolExecutor(2) as pool:
        result = sweep.run_sweep("attn-m", GRID, ["drop_time", "final_loss"], tmp_path, fixed=SMALL, executor=pool)
    assert len(result.points) == 6 and not result.failed
    rows = sweep.read_table(result.csv_path)
    assert [(float(r["init_scale"]), int(r["seed"])) for r in rows] == [(s, k) for s in GRID["init_scale"]
                                                                       for k in GRID["seed"]]
    for row in rows:
        # the sweep's numbers are exactly those of a direct predict + summarise of the same spec
        spec = family("attn-m").spec_class.from_dict({**SMALL, "init_scale": float(row["init_scale"]),
                                                      "seed": int(row["seed"])})
        direct = summarise(spec, predict(spec))
        assert float(row["drop_time"]) == direct["drop_time"]
        assert float(row["final_loss"]) == direct["final_loss"]
        assert row["side"] == "theory" and row["dim"] == "2" and row["train_size"] == ""
        assert row["centre_inputs"] == "false" and float(row["cpu_seconds"]) > 0
    # smaller initial weights escape the saddle later (the drop time grows as sigma shrinks, LA-28)
    by_seed = {}
    for row in rows:
        by_seed.setdefault(row["seed"], []).append(float(row["drop_time"]))
    for times in by_seed.values():
        assert times[0] < times[1] < times[2]


def test_both_sides_give_one_row_per_point_and_side(tmp_path):
    result = sweep.run_sweep("attn-m", {"init_scale": [0.1]}, ["drop_time"], tmp_path,
                             fixed={**SMALL, "train_size": 200, "t_max": 10.0}, side="both", executor=Synchronous())
    rows = sweep.read_table(result.csv_path)
    assert [r["side"] for r in rows] == ["theory", "reference"]
    assert len({r["point"] for r in rows}) == 2
    theory, reference = (float(r["drop_time"]) for r in rows)
    assert abs(theory - reference) < 0.05 * reference       # sample-moment flow against GD at lr 0.05


def test_point_names_are_stable_hashes_of_the_validated_spec():
    cls = family("attn-m").spec_class
    a = sweep.Point(cls.from_dict({"dim": 2, "init_scale": 0.1}), "theory")
    b = sweep.Point(cls.from_dict({"dim": 2.0, "init_scale": 1e-1, "seed": 0}), "theory")
    assert a.key == b.key and len(a.key) == 20
    assert a.key != sweep.Point(a.spec, "reference").key
    assert a.key != sweep.Point(a.spec.replace(init_scale=0.1000001), "theory").key
    assert sweep.plan("attn-m", {"dim": [2, 2, 2.0]}, {}, "theory") == [sweep.Point(cls(dim=2), "theory")]


@pytest.mark.parametrize("grid, fixed, side, parameter", [
    ({"dimension": [2]}, {}, "theory", "grid"),
    ({}, {}, "theory", "grid"),
    ({"dim": []}, {}, "theory", "grid"),
    ({"dim": "2,3"}, {}, "theory", "grid"),
    ({"dim": [2]}, {"dim": 3}, "theory", "grid"),
    ({"dim": [2, 0]}, {}, "theory", "dim"),
    ({"init_scale": [0.1, float("nan")]}, {}, "theory", "init_scale"),
    ({"dim": [2]}, {"heads": 0}, "theory", "heads"),
    ({"dim": [2]}, {}, "sideways", "side"),
])
def test_bad_grids_are_rejected_naming_the_parameter(grid, fixed, side, parameter, tmp_path):
    with pytest.raises(SpecError) as info:
        sweep.run_sweep("attn-m", grid, ["drop_time"], tmp_path, fixed=fixed, side=side, executor=Synchronous())
    assert info.value.parameter == parameter
    assert not (tmp_path / "points").exists()          # nothing ran


@pytest.mark.parametrize("measures", [["drop_tim"], ["drop_time", "plateaus"], [], "drop_time"])
def test_unknown_measures_are_rejected_before_anything_runs(measures, tmp_path):
    executor = Synchronous()
    with pytest.raises(SpecError) as info:
        sweep.run_sweep("attn-m", {"dim": [2]}, measures, tmp_path, executor=executor)
    assert info.value.parameter == "measure" and executor.submitted == []


def test_undeclared_measures_are_checked_against_the_first_evaluation(tmp_path, monkeypatch):
    import types

    from reduced_dynamics.families import RegisteredFamily, attn_m
    face = types.SimpleNamespace(**{**vars(attn_m), "MEASURES": ()})      # a family that declares no measures
    undeclared = RegisteredFamily(face, attn_m.__name__)
    real = sweep.family
    monkeypatch.setattr(sweep, "family", lambda name: undeclared if name == "attn-m" else real(name))
    executor = Synchronous()
    with pytest.raises(SpecError) as info:
        sweep.run_sweep("attn-m", {"init_scale": [0.1, 0.2]}, ["plateaus"], tmp_path, fixed=SMALL, executor=executor)
    assert info.value.parameter == "measure" and len(executor.submitted) == 1
    result = sweep.run_sweep("attn-m", {"init_scale": [0.1, 0.2]}, ["final_loss"], tmp_path, fixed=SMALL,
                             executor=executor)
    assert len(result.skipped) == 1 and len(result.computed) == 1


@pytest.mark.parametrize("argv, parameter", [
    (["--grid", "dimension=2,3"], "grid"),
    (["--grid", "dim"], "grid"),
    (["--grid", "dim=2,,3"], "grid"),
    (["--grid", "dim=2", "--grid", "dim=3"], "grid"),
    (["--grid", "dim=2,two"], "dim"),
    (["--grid", "dim=2,0"], "dim"),
    (["--grid", "centre-inputs=true,maybe"], "centre_inputs"),
    (["--grid", "dim=2", "--measure", "drop_times"], "measure"),
    (["--grid", "dim=2", "--measure", ""], "measure"),
    (["--grid", "dim=2", "--side", "left"], "side"),
    (["--grid", "dim=2", "--workers", "0"], "workers"),
    (["--grid", "dim=2", "--dask", "remote"], "dask"),
])
def test_cli_rejects_bad_sweeps_in_one_line(argv, parameter, tmp_path, capsys):
    argv = ["sweep", "attn-m", *argv, "--out", str(tmp_path)]
    if "--measure" not in argv:
        argv += ["--measure", "drop_time"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"error: {parameter}: expected" in err
    assert not (tmp_path / "points").exists()


def test_cli_grid_values_use_the_field_types(tmp_path):
    from reduced_dynamics.cli import parse_grid
    cls = family("attn-m").spec_class
    grid = parse_grid(cls, ["init-scale=1e-3,0.01", "eigenvalues=0.4,0.6;0.5,0.5", "train_size=none,300",
                            "whiten-tasks=true,false"])
    assert grid == {"init_scale": [0.001, 0.01], "eigenvalues": ["0.4,0.6", "0.5,0.5"], "train_size": [None, 300],
                    "whiten_tasks": [True, False]}
    points = sweep.plan("attn-m", grid, {"dim": 2}, "theory")
    assert len(points) == 16 and points[0].spec.eigenvalues == (0.4, 0.6)


def test_a_run_that_loses_its_workers_is_completed_by_the_rerun_exactly_once(tmp_path):
    lossy = Synchronous(fail_after=2)
    first = sweep.run_sweep("attn-m", GRID, ["drop_time"], tmp_path, fixed=SMALL, executor=lossy)
    assert len(first.computed) == 2 and len(first.failed) == 4
    assert len(sweep.read_table(first.csv_path)) == 2     # only finished points are tabulated
    again = Synchronous()
    second = sweep.run_sweep("attn-m", GRID, ["drop_time"], tmp_path, fixed=SMALL, executor=again)
    assert sorted(keys_of(again)) == sorted(first.failed)           # only the missing points ran
    assert sorted(second.skipped) == sorted(first.computed) and not second.failed
    rows = sweep.read_table(second.csv_path)
    assert sorted(r["point"] for r in rows) == sorted(p.key for p in second.points)
    assert len(list((tmp_path / "points").glob("*.json"))) == 6
    third = Synchronous()
    sweep.run_sweep("attn-m", GRID, ["drop_time"], tmp_path, fixed=SMALL, executor=third)
    assert third.submitted == []


def test_corrupt_point_files_are_recomputed_never_trusted(tmp_path):
    first = sweep.run_sweep("attn-m", GRID, ["drop_time"], tmp_path, fixed=SMALL, executor=Synchronous())
    table = sweep.read_table(first.csv_path)
    keys = [p.key for p in first.points]
    points = tmp_path / "points"
    data = (points / f"{keys[0]}.npz").read_bytes()
    (points / f"{keys[0]}.npz").write_bytes(data[: len(data) // 2])               # truncated curve
    (points / f"{keys[1]}.json").write_text("{not json")                          # garbled record
    record = json.loads((points / f"{keys[2]}.json").read_text())
    record["spec"]["init_scale"] = 0.5                                            # record of another spec
    (points / f"{keys[2]}.json").write_text(json.dumps(record))
    (points / f"{keys[3]}.npz").unlink()                                          # curve missing
    rerun = Synchronous()
    second = sweep.run_sweep("attn-m", GRID, ["drop_time"], tmp_path, fixed=SMALL, executor=rerun)
    assert sorted(second.recomputed_corrupt) == sorted(keys[:4]) == sorted(keys_of(rerun))
    assert sorted(second.skipped) == sorted(keys[4:])
    def without_seconds(rows):
        return [{k: v for k, v in row.items() if k not in sweep.TIMING_COLUMNS} for row in rows]
    assert without_seconds(sweep.read_table(second.csv_path)) == without_seconds(table)   # same numbers
    for point in second.points:
        assert sweep.read_point(tmp_path, point) is not None
        curve = sweep.load_trajectory(tmp_path, point)
        assert curve.meta["spec"] == point.spec.to_dict() and np.all(np.diff(curve.loss) <= 1e-12)


def test_list_valued_measures_are_one_json_cell_and_none_is_empty(tmp_path):
    cls = family("attn-m").spec_class
    point = sweep.Point(cls(dim=2, eigenvalues=(0.3, 0.7)), "theory")
    record = {"spec": point.spec.to_dict(), "measures": {"plateaus": [0.5, 0.25], "drop_time": math.nan},
              "seconds": 0.5}
    header, rows = sweep.table_rows([point], {point.key: record}, ["plateaus", "drop_time"])
    row = dict(zip(header, rows[0]))
    assert json.loads(row["plateaus"]) == [0.5, 0.25] and json.loads(row["eigenvalues"]) == [0.3, 0.7]
    assert row["train_size"] == "" and row["drop_time"] == "nan"


@settings(max_examples=15)
@given(dims=st.lists(st.integers(1, 6), min_size=1, max_size=4),
       scales=st.lists(st.floats(1e-4, 1.0), min_size=1, max_size=4),
       side=st.sampled_from(sweep.SIDE_CHOICES))
def test_plan_is_the_product_of_distinct_values_with_unique_keys(dims, scales, side):
    points = sweep.plan("attn-m", {"dim": dims, "init_scale": scales}, {"heads": 2}, side)
    sides = 2 if side == "both" else 1
    assert len(points) == len(set(dims)) * len(set(scales)) * sides
    assert len({p.key for p in points}) == len(points)
    assert {(p.spec.dim, p.spec.init_scale) for p in points} == {(d, s) for d in dims for s in scales}
    assert all(p.spec.heads == 2 for p in points)


def test_chunked_tasks_give_the_same_table_and_a_failing_point_spares_its_chunk(tmp_path, monkeypatch):
    """Several points per task (what the default pool does for cheap points) change nothing in the numbers;
    a point that raises inside a chunk is reported alone and retried by the next run."""
    single = sweep.run_sweep("attn-m", GRID, ["drop_time"], tmp_path / "single", fixed=SMALL, executor=Synchronous())
    original = sweep.evaluate

    def flaky(model, fields, side, out_dir=None, face=None):
        if fields["init_scale"] == 0.05 and fields["seed"] == 1:
            raise FloatingPointError("injected")
        return original(model, fields, side, out_dir, face)

    monkeypatch.setattr(sweep, "evaluate", flaky)
    with cf.ThreadPoolExecutor(max_workers=2) as pool:
        chunked = sweep.run_sweep("attn-m", GRID, ["drop_time"], tmp_path / "chunked", fixed=SMALL, executor=pool,
                                  chunk_size=3, workers_write=True)
    assert len(chunked.computed) == 5 and list(chunked.failed.values()) == ["FloatingPointError: injected"]
    monkeypatch.setattr(sweep, "evaluate", original)
    rerun = Synchronous()
    again = sweep.run_sweep("attn-m", GRID, ["drop_time"], tmp_path / "chunked", fixed=SMALL, executor=rerun)
    assert keys_of(rerun) == list(chunked.failed) and not again.failed
    def without_seconds(rows):
        return [{k: v for k, v in row.items() if k not in sweep.TIMING_COLUMNS} for row in rows]
    assert without_seconds(sweep.read_table(again.csv_path)) == without_seconds(sweep.read_table(single.csv_path))


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_a_bad_chunk_size_is_named(tmp_path, bad):
    with pytest.raises(SpecError, match="chunk_size"):
        sweep.run_sweep("attn-m", GRID, ["drop_time"], tmp_path, fixed=SMALL, executor=Synchronous(), chunk_size=bad)


def test_chunk_sizes_keep_several_tasks_per_worker():
    assert sweep.chunk_size_for(200, 2) == 12 and sweep.chunk_size_for(10, 2) == 1
    assert sweep.chunk_size_for(100_000, 2) == 32


def test_a_second_sweep_on_a_locked_folder_is_refused_and_nothing_is_lost(tmp_path):
    """One folder, one sweep at a time: while a sweep holds the folder another one is refused with one clear
    line before it computes anything; afterwards a rerun finds every point done (none computed twice)."""
    from reduced_dynamics.errors import OutputError
    executor = Synchronous()
    with sweep.folder_lock(tmp_path):
        with pytest.raises(OutputError, match="another sweep .* is writing this folder"):
            sweep.run_sweep("attn-m", GRID, ["drop_time"], tmp_path, fixed=SMALL, executor=executor)
    assert executor.submitted == [] and not (tmp_path / "points").exists()
    first = sweep.run_sweep("attn-m", GRID, ["drop_time"], tmp_path, fixed=SMALL, executor=executor)
    again = sweep.run_sweep("attn-m", GRID, ["drop_time"], tmp_path, fixed=SMALL, executor=executor)
    assert len(first.computed) == 6 and again.computed == [] and len(again.skipped) == 6
    assert len(sweep.read_table(again.csv_path)) == 6


def test_two_concurrent_command_line_sweeps(tmp_path):
    """Two processes start the same sweep on one folder: one runs it, the other exits 2 with one line; the
    table holds every point once."""
    import subprocess
    import sys
    argv = [sys.executable, "-m", "reduced_dynamics", "sweep", "attn-m", "--grid", "init_scale=0.1,0.05,0.2",
            "--grid", "seed=0,1", "--dim", "2", "--context", "5", "--heads", "2", "--t-max", "20",
            "--measure", "drop_time", "--workers", "1", "--out", str(tmp_path)]
    runs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = [(run.wait(timeout=300), run.stderr.read()) for run in runs]
    codes = sorted(code for code, _ in outcomes)
    refused = [err for code, err in outcomes if code == 2]
    if codes == [0, 0]:       # the first finished before the second started: then the second skipped all
        pytest.skip("the two sweeps did not overlap on this machine")
    assert codes == [0, 2], outcomes
    assert refused[0].strip().count("\n") == 0 and "another sweep" in refused[0]
    rows = sweep.read_table(tmp_path / "sweep.csv")
    assert len(rows) == 6 and len({r["point"] for r in rows}) == 6


def test_ctrl_c_keeps_the_table_of_the_finished_points(tmp_path):
    """A sweep interrupted (Ctrl-C while it collects results) writes sweep.csv for the points that finished,
    then lets the interrupt through; a rerun computes only the rest."""
    class Interrupted(Synchronous):
        def submit(self, fn, *args, **kwargs):
            if len(self.submitted) == 3:
                self.submitted.append(args)
                future = cf.Future()
                future.set_exception(KeyboardInterrupt())
                return future
            return super().submit(fn, *args, **kwargs)

    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep("attn-m", GRID, ["drop_time"], tmp_path, fixed=SMALL, executor=Interrupted())
    rows = sweep.read_table(tmp_path / "sweep.csv")
    assert 1 <= len(rows) <= 5 and all(r["drop_time"] for r in rows)
    rerun = sweep.run_sweep("attn-m", GRID, ["drop_time"], tmp_path, fixed=SMALL, executor=Synchronous())
    assert len(rerun.skipped) == len(rows) and len(rerun.computed) == 6 - len(rows)


def test_a_rerun_after_a_code_change_recomputes_the_points(tmp_path, monkeypatch):
    """Points are stored with the fingerprint of the code that computed them (this package, the derivations and
    the family's own package): after that code changes, a rerun recomputes them and says so."""
    import sys

    from reduced_dynamics import families
    package = tmp_path / "src" / "changing_family"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    face = package / "face.py"
    face.write_text("from reduced_dynamics.families.attn_m import *  # noqa: F401,F403\n"
                    "from reduced_dynamics.families.attn_m import NAME, TITLE, SPEC, AXIS, MEASURES\n")
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    monkeypatch.setitem(families._at_run_time, "attn-m", "changing_family.face")
    out = tmp_path / "sweep"
    first = sweep.run_sweep("attn-m", GRID, ["drop_time"], out, fixed=SMALL, executor=Synchronous())
    same = sweep.run_sweep("attn-m", GRID, ["drop_time"], out, fixed=SMALL, executor=Synchronous())
    assert len(first.computed) == 6 and len(same.skipped) == 6 and same.recomputed_stale == []
    face.write_text(face.read_text() + "# the derivation changed\n")
    sweep.code_fingerprint.cache_clear()
    changed = sweep.run_sweep("attn-m", GRID, ["drop_time"], out, fixed=SMALL, executor=Synchronous())
    assert len(changed.recomputed_stale) == 6 and len(changed.computed) == 6 and changed.skipped == []
    sweep.code_fingerprint.cache_clear()
    families.load_path.cache_clear()
    sys.modules.pop("changing_family.face", None)


@pytest.mark.parametrize("grid, dims", [({"seed": [0, 1, 2]}, ("seed", "t")),
                                        ({"seed": [0, 1], "init_scale": [0.1, 0.05]}, ("init_scale", "seed", "t"))])
def test_load_curves_for_one_swept_field_and_for_several(grid, dims, tmp_path):
    """(One field failed with xarray's "cannot unstack": set_index of one coordinate makes no MultiIndex.)"""
    pytest.importorskip("xarray")
    result = sweep.run_sweep("attn-m", grid, ["drop_time"], tmp_path, fixed=SMALL, executor=Synchronous())
    ds = sweep.load_curves(tmp_path)
    assert ds["loss"].dims == dims
    for point in result.points:
        where = {name: getattr(point.spec, name) for name in grid}
        curve = sweep.load_trajectory(tmp_path, point)
        np.testing.assert_array_equal(ds["loss"].sel(**where).values, curve.loss)
        assert ds["drop_time"].sel(**where).item() == result.records[point.key]["measures"]["drop_time"]
