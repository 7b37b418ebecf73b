"""Results print small in a notebook (issue 24, item 2): a sweep result and a comparison report show a short
``repr`` (at most 1 KB, whatever the size of the sweep) and an HTML table of their measures."""
import concurrent.futures as cf
import re
import warnings

import reduced_dynamics as rd
from reduced_dynamics.sweep import run_sweep

SPEC = dict(dim=3, context=16, heads=2, train_size=2000, t_max=40)


def test_report_repr_is_short_and_its_table_holds_every_measure():
    report = rd.run_comparison(rd.spec("attn-m", **SPEC))
    text, table = repr(report), report._repr_html_()
    assert len(text.encode()) <= 1024 and text.startswith("Report(attn-m")
    theory, reference = report.metrics["drop_time_theory"], report.metrics["drop_time_reference"]
    gap = 100 * (theory - reference) / reference
    assert f"drop_time: theory {theory:.5g}, reference {reference:.5g}, gap {gap:+.2f} %" in text
    # one row per measure, the main curve's and every extra curve's, each against the same reference
    rows = re.findall(r"<tr><th style='text-align:left'>([^<]+)</th>", table)
    assert rows[:2] == ["drop_time", "final_loss"]
    assert {f"drop_time ({label})" for label in report.extras} <= set(rows)
    closed = report.metrics["closed_form_drop_time"]
    assert f"<td style='text-align:right'>{closed:.5g}</td>" in table
    assert table.startswith("<table>") and table.count("<tr>") == len(report.rows()) + 1 + 1 + len(report.levels)


def test_sweep_repr_is_short_for_eighty_points(tmp_path):
    grid = {"init_scale": [10.0 ** -k for k in range(2, 12)], "dim": [2, 3, 4, 5, 6, 7, 8, 9]}
    with cf.ThreadPoolExecutor(2) as pool, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # small sigma: no drop by t_max, as it should be
        result = run_sweep("attn-m", grid, ["drop_time", "final_loss"], tmp_path, fixed={"t_max": 30},
                           executor=pool)
    text, table = repr(result), result._repr_html_()
    assert len(result.points) == 80 and len(text.encode()) <= 1024, len(text)
    assert "80 points, 80 computed, 0 skipped, 0 failed" in text and "75 more rows" in text
    assert "side | dim | init_scale | drop_time | final_loss" in text
    first = result.records[result.points[0].key]["measures"]
    assert f"<td>{first['final_loss']:.5g}</td>" in table and "60 more" in table
    assert table.count("<tr>") == 1 + 20 + 1
