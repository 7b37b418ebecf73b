"""No result is silently replaced or trusted beyond its checksum (issue 20): two outputs of one command at one
path, a concurrent writer of the same output set, a trailing '/', an unwritable location (found before any
work), another grid's rows in a sweep folder, hand-edited point records and tables."""
import json
import os

import pytest

from reduced_dynamics import sweep
from reduced_dynamics.cli import main, output_lock, output_targets
from reduced_dynamics.errors import OutputError, ResultFileError
from tests.test_sweep import SMALL, Synchronous

QUICK = ["--dim", "2", "--heads", "2", "--train-size", "100"]


def one_error(capsys, *needles):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "warning:" not in line]
    assert len(lines) == 1 and lines[0].startswith("reduced-dynamics: error: "), err
    for needle in needles:
        assert needle in lines[0], err
    return lines[0]


@pytest.mark.parametrize("flags, named", [(["--out", "r.npz", "--json", "r.npz"], "--out and --json"),
                                          (["--out", "r.pdf", "--plot", "r"], "--out and --plot"),
                                          (["--json", "r.png", "--plot", "r.pdf"], "--json and --plot"),
                                          (["--out", "sub/../r.npz", "--json", "./r.npz"], "--out and --json")])
def test_two_outputs_at_one_path_are_refused_before_work(flags, named, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["predict", "attn-m", *QUICK, *flags]) == 2
    one_error(capsys, named)
    assert list(tmp_path.iterdir()) == []


def test_compare_out_may_not_be_one_of_its_default_set(tmp_path, capsys):
    assert main(["compare", "attn-m", *QUICK, "--steps", "40", "--t-max", "2", "--out-dir", str(tmp_path),
                 "--out", str(tmp_path / "attn-m-compare.npz")]) == 2
    one_error(capsys, "--out-dir and --out")


def test_a_trailing_slash_means_a_folder(tmp_path, capsys):
    assert main(["predict", "attn-m", *QUICK, "--out", f"{tmp_path}/new/", "--json", f"{tmp_path}/new/",
                 "--plot", f"{tmp_path}/new/"]) == 0
    assert sorted(p.name for p in (tmp_path / "new").iterdir() if not p.name.startswith(".")) == [
        "attn-m-predict.json", "attn-m-predict.npz", "attn-m-predict.pdf", "attn-m-predict.png"]


@pytest.mark.parametrize("argv", [["compare", "attn-m", "--out-dir", "/proc/rd-out"],
                                  ["predict", "attn-m", "--json", "/proc/rd.json"],
                                  ["simulate", "attn-m", "--out-dir", "/sys/rd-out"],
                                  ["figures", "attn_m_loss", "--quick", "--out", "/proc/rd-out"],
                                  ["sweep", "attn-m", "--grid", "seed=0,1", "--measure", "drop_time",
                                   "--out", "/proc/rd-out"]])
def test_an_unwritable_location_is_found_before_any_work(argv, monkeypatch, capsys):
    """(Before: compare --out-dir ro failed after 16.5 s, figures --out ro after 17.4 s.) The check writes and
    removes a file, so it holds for read-only mounts and for root; nothing is computed."""
    from reduced_dynamics.families import family
    monkeypatch.setattr(family("attn-m").face, "simulate", lambda *a, **k: pytest.fail("computed"))
    monkeypatch.setattr(family("attn-m").face, "predict", lambda *a, **k: pytest.fail("computed"))
    assert main(argv) == 2
    one_error(capsys, "cannot write there")


def test_a_second_writer_of_the_same_output_set_is_refused(tmp_path, capsys):
    """(Before: two compare --out-dir o at once both reported writing; one set survived.)"""
    argv = ["compare", "attn-m", *QUICK, "--steps", "40", "--t-max", "2", "--out-dir", str(tmp_path)]
    import argparse
    args = argparse.Namespace(out_dir=str(tmp_path), out=None, json=None, plot=None)
    with output_lock("attn-m", "compare", output_targets("attn-m", "compare", args)):
        assert main(argv) == 2
        one_error(capsys, "another attn-m compare", f"pid {os.getpid()}")
    assert not (tmp_path / "attn-m-compare.json").exists()
    assert main(argv) == 0                                 # once the first is done


def test_another_grid_in_the_same_folder_keeps_every_row(tmp_path):
    """(Before: a later sweep with another grid rewrote sweep.csv to its own rows, 1200 -> 1.)"""
    first = sweep.run_sweep("attn-m", {"seed": [0, 1, 2]}, ["drop_time"], tmp_path, fixed=SMALL,
                            executor=Synchronous())
    second = sweep.run_sweep("attn-m", {"init_scale": [0.05]}, ["drop_time"], tmp_path,
                             fixed={**SMALL, "seed": 7}, executor=Synchronous())
    rows = sweep.read_table(tmp_path / "sweep.csv")
    assert [r["point"] for r in rows] == [second.points[0].key] + [p.key for p in first.points]
    assert len(sweep.load(tmp_path)) == 4                  # every row checks against its point
    with pytest.raises(OutputError, match=f"{tmp_path}: holds a sweep with other columns"):
        sweep.run_sweep("attn-m", {"seed": [9]}, ["final_loss"], tmp_path, fixed=SMALL, executor=Synchronous())
    assert len(sweep.read_table(tmp_path / "sweep.csv")) == 4


def test_a_hand_edited_record_is_recomputed_and_an_edited_table_refused(tmp_path):
    first = sweep.run_sweep("attn-m", {"seed": [0, 1]}, ["drop_time"], tmp_path, fixed=SMALL,
                            executor=Synchronous())
    key = first.points[0].key
    record_path = tmp_path / "points" / f"{key}.json"
    record = json.loads(record_path.read_text())
    true_value = record["measures"]["drop_time"]
    record["measures"]["drop_time"] = 1.0                  # the .npz is untouched: only the record covers this
    record_path.write_text(json.dumps(record))
    again = sweep.run_sweep("attn-m", {"seed": [0, 1]}, ["drop_time"], tmp_path, fixed=SMALL,
                            executor=Synchronous())
    assert again.recomputed_corrupt == [key] and again.records[key]["measures"]["drop_time"] == true_value
    table = tmp_path / "sweep.csv"
    table.write_text(table.read_text().replace(repr(true_value), "1.0"))
    with pytest.raises(ResultFileError, match="line 2, column drop_time"):
        sweep.load(tmp_path)


def test_an_unusable_cache_location_warns_once_and_the_run_goes_on(tmp_path, recwarn):
    """(Before: HOME a file, or a cache folder that cannot be written, stopped the run.)"""
    from reduced_dynamics import compile as compiler
    from reduced_dynamics.derivations import linear_merged as lm
    blocked = tmp_path / "home-is-a-file"
    blocked.write_text("")
    first = compiler.compile_system(lm, "block_system", {"D": 2, "moments": "population"}, blocked / ".cache")
    second = compiler.compile_system(lm, "block_system", {"D": 2, "moments": "population"}, blocked / ".cache")
    messages = [str(w.message) for w in recwarn if "cannot be used" in str(w.message)]
    assert len(messages) == 1 and str(blocked) in messages[0]
    assert not first.from_cache and not second.from_cache and blocked.read_text() == ""
    assert set(first.functions) == set(second.functions)
