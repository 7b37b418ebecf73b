"""Output files: strict JSON (no NaN or Infinity tokens) and atomic writes."""
import json
import math
from pathlib import Path

import numpy as np
import pytest

from reduced_dynamics.files import atomic_write_json, json_ready, to_json


def strict_loads(text: str):
    def reject(token):
        raise ValueError(f"non-standard JSON token {token}")
    return json.loads(text, parse_constant=reject)


def test_non_finite_numbers_become_null_everywhere(tmp_path):
    report = {"drop_time": float("nan"), "ratio": np.float64(np.inf), "times": np.array([1.0, np.nan, -np.inf]),
              "nested": [{"t": math.nan}, (2, np.int64(3))], "path": Path("a/b"), "flag": True, "none": None}
    expected = {"drop_time": None, "ratio": None, "times": [1.0, None, None], "nested": [{"t": None}, [2, 3]],
                "path": "a/b", "flag": True, "none": None}
    path = atomic_write_json(tmp_path / "report.json", report)
    assert strict_loads(path.read_text()) == expected
    assert strict_loads(to_json(report)) == expected


def test_finite_values_survive_unchanged():
    values = {"x": 0.1, "y": [1e-300, -2.5e10], "n": 7, "s": "text"}
    assert json_ready(values) == values
    assert json.loads(to_json(values)) == values


def test_unknown_objects_are_refused_by_name():
    with pytest.raises(TypeError, match="set"):
        json_ready({"a": {1, 2}})


def test_a_failed_write_leaves_the_old_file(tmp_path):
    path = atomic_write_json(tmp_path / "r.json", {"a": 1})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"a": object()})
    assert strict_loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
