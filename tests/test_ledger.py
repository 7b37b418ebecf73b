"""The claim ledger over seeds (reduced_dynamics.ledger): its statistics on known numbers, and one quick study
run, written per seed and resumed without recomputation."""
import concurrent.futures as cf
import json
import math

import pytest

from reduced_dynamics import ledger
from reduced_dynamics.errors import SpecError


def records(pairs):
    return [{"study": "s", "seed": k, "values": {"c": list(p)}} for k, p in enumerate(pairs)]


def test_row_statistics_gap_per_seed_in_percent():
    """Gaps 100 (ref/theory - 1): +1, -1, +3 % -> mean +1, sd 2, min -1, max +3; within 2 % at 2/3 seeds."""
    claim = ledger.Claim("s", "c", "fam", "claim", -2, 2)
    row = ledger.row_of(claim, records([(10.0, 10.1), (10.0, 9.9), (10.0, 10.3)]))
    assert row["gaps_pct"] == pytest.approx([1.0, -1.0, 3.0])
    assert (row["gap_mean_pct"], row["gap_sd_pct"]) == pytest.approx((1.0, 2.0))
    assert (row["gap_min_pct"], row["gap_max_pct"]) == pytest.approx((-1.0, 3.0))
    assert row["verdict"] == "within 2 % at 2/3 seeds"
    assert row["gap_of_mean_pct"] == pytest.approx(100 * (10.1 / 10.0 - 1))     # mean reference 10.1


def test_gap_of_the_mean_averages_entry_by_entry():
    """Two seeds of a two-entry measure, theory fixed: references (1.02, 2.0) and (0.98, 2.1) average to
    (1.0, 2.05): gaps 0 and +2.5 %; the larger is reported."""
    claim = ledger.Claim("s", "c", "fam", "claim", -2, 2)
    row = ledger.row_of(claim, records([([1.0, 2.0], [1.02, 2.0]), ([1.0, 2.0], [0.98, 2.1])]))
    assert row["gap_of_mean_pct"] == pytest.approx(2.5)


def test_lists_take_the_largest_gap_and_missing_events_are_counted_not_hidden():
    claim = ledger.Claim("s", "c", "fam", "claim", 0, math.inf)
    row = ledger.row_of(claim, records([([1.0, 2.0], [1.01, 1.9]), ([1.0, 2.0], [1.0, None]), ([1.0], [1.0, 2.0])]))
    assert row["gaps_pct"][0] == pytest.approx(-5.0)          # -5 % outweighs +1 %
    assert math.isnan(row["gaps_pct"][1]) and math.isnan(row["gaps_pct"][2])
    assert row["no_event"] == 2
    assert row["verdict"] == "gap >= 0 % at 0/3 seeds"        # a signed claim counts the sign


def test_unknown_study_and_bad_seed_count_are_refused(tmp_path):
    with pytest.raises(SpecError, match="^study: "):
        ledger.run_ledger(tmp_path, ["nope"])
    with pytest.raises(SpecError, match="^seeds: "):
        ledger.run_ledger(tmp_path, ["attn-m-c6"], seeds=0)


def test_quick_study_is_written_per_seed_and_resumed(tmp_path):
    """attn-m at the quick sizes, one seed: the record holds both sides of both claims; a rerun reads it back
    and computes nothing (the file is not rewritten)."""
    with cf.ThreadPoolExecutor(1) as pool:
        rows = ledger.run_ledger(tmp_path, ["attn-m-c6"], seeds=1, quick=True, executor=pool, progress=False)
    path = tmp_path / "attn-m-c6-quick-seed0.json"
    record = json.loads(path.read_text())
    assert set(record["values"]) == {"sample flow", "all-weights modified flow"}
    theory, reference = record["values"]["sample flow"]
    assert 0 < theory < 30 and 0 < reference < 30          # both dropped inside t_max = 30
    assert [r["comparison"] for r in rows] == ["sample flow", "all-weights modified flow"]
    stamp = path.stat().st_mtime_ns

    class Refuse(cf.Executor):
        def submit(self, *args, **kwargs):
            raise AssertionError("a finished seed was computed again")

    again = ledger.run_ledger(tmp_path, ["attn-m-c6"], seeds=1, quick=True, executor=Refuse(), progress=False)
    assert path.stat().st_mtime_ns == stamp and again == rows
    assert (tmp_path / "ledger-quick.md").read_text().count("\n| attn-m |") == 2


def test_write_into_replaces_only_the_marked_block(tmp_path):
    page = tmp_path / "README.md"
    page.write_text("intro\n<!-- seeds:start -->\nold table\n<!-- seeds:end -->\nrest\n")
    ledger.write_into(page, "| new |\n")
    assert page.read_text() == "intro\n<!-- seeds:start -->\n| new |\n<!-- seeds:end -->\nrest\n"
    page.write_text("no markers\n")
    from reduced_dynamics.errors import OutputError
    with pytest.raises(OutputError, match="one block"):
        ledger.write_into(page, "| new |\n")
    assert page.read_text() == "no markers\n"          # nothing half-written


@pytest.mark.parametrize("argv, says", [
    (["--study", "nope"], "argument --study: invalid choice"),
    (["--seeds", "0"], "seeds: expected a positive integer"),
    (["--workers", "0"], "workers: expected a positive integer"),
    (["--seeds", "x"], "argument --seeds: invalid int value"),
])
def test_the_ledger_verb_refuses_bad_input_in_one_line(argv, says, capsys):
    from reduced_dynamics.cli import main
    assert main(["ledger", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0], err


def test_a_failed_seed_is_counted_not_dropped():
    claim = ledger.Claim("s", "c", "fam", "claim", -2, 2)
    rows = records([(10.0, 10.1), (10.0, 9.9)]) + [{"study": "s", "seed": 2, "error": "DivergenceError: ..."}]
    row = ledger.row_of(claim, rows)
    assert row["seeds"] == 2 and row["failed"] == [2]
    assert row["verdict"] == "within 2 % at 2/2 seeds; run failed at seeds [2]"


def test_a_stored_record_missing_a_claim_or_run_at_other_sizes_is_run_again(tmp_path):
    """A study given a new comparison (or new sizes) since a record was stored does not reuse it: the record
    lacks the claim's key, and reading it would fail; it is computed again."""
    fields = ledger.study_fields("attn-m-c6", 0, True)
    good = {"spec": fields, "values": {"sample flow": [1, 1], "all-weights modified flow": [1, 1]}}
    assert ledger._still_valid(good, "attn-m-c6", 0, True)
    assert not ledger._still_valid({**good, "values": {"sample flow": [1, 1]}}, "attn-m-c6", 0, True)
    assert not ledger._still_valid({**good, "spec": {**fields, "dim": 3}}, "attn-m-c6", 0, True)
