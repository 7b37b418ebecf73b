"""The same observables at every end of a range (issue 23, item 2): for each registered family, every
numeric field with a bounded range is walked to both ends (and the middle of a fraction), and ``predict``
must record the same observable names there, at small sizes. A sweep over icl in [0, 1] then never loses
``test_loss_in_context`` / ``test_loss_in_weight`` at icl = 1, as it did before the manifold routes
recorded the two test losses (LA-38, LA-55)."""
import dataclasses

import numpy as np
import pytest

import reduced_dynamics as rd
from reduced_dynamics import specs

SMALL = {        # fast sizes per family (the rest at defaults)
    "attn-m": dict(dim=2, context=7, heads=2, t_max=2.0),
    "attn-s": dict(dim=2, context=7, heads=2, t_max=2.0),
    "sparse": dict(dim=3, context=6, depth_points=4, depth_max=4.0, test_prompts=200, tune_prompts=200),
    "softmax": dict(features=2, dim=2, context=4, t_max=2.0),
}
BOUNDED_BY_FIELD = {     # integer ranges whose upper end is another field: (family, field) -> (low, field)
    ("attn-s", "rank"): (1, "dim"),
    ("sparse", "sparsity"): (1, "dim"),
}


def ranged_fields(name):
    """(field, values to walk) of the family's spec: fractions (check ``specs.fraction``) at 0, 1/2, 1, and
    the integer ranges bounded by another field at both ends."""
    out = []
    for f in dataclasses.fields(rd.family(name).spec_class):
        if f.metadata.get("check") is specs.fraction:
            out.append((f.name, (0.0, 0.5, 1.0)))
    for (family, field), (low, upper) in BOUNDED_BY_FIELD.items():
        if family == name:
            out.append((field, (low, SMALL[name][upper])))
    return out


def walk_cases():
    """(family, field, values) of every registered family with a ranged field."""
    return [(name, field, values) for name in rd.FAMILIES for field, values in ranged_fields(name)]


CASES = walk_cases()


def test_every_family_with_a_ranged_field_is_walked():
    walked = {(n, f) for n, f, _ in CASES}
    assert {("attn-m", "icl"), ("attn-s", "icl"), ("attn-s", "rank"), ("sparse", "sparsity")} <= walked
    for name in {n for n, _, _ in CASES}:       # a family with a ranged field must say its small sizes
        assert name in SMALL, f"add small sizes for {name} to SMALL"
    for name, fields in SMALL.items():
        rd.spec(name, **fields)                 # valid specs


@pytest.mark.filterwarnings("ignore:attn-m. the loss has not dropped")
@pytest.mark.parametrize("name,field,values", CASES, ids=[f"{n}-{f}" for n, f, _ in CASES])
def test_predict_records_the_same_observables_at_both_ends(name, field, values):
    names = {}
    for value in values:
        trajectory = rd.predict(rd.spec(name, **{**SMALL.get(name, {}), field: value}))
        names[value] = sorted(trajectory.observables)
        for key, series in trajectory.observables.items():
            assert np.all(np.isfinite(np.asarray(series, dtype=float))), (name, field, value, key)
    first = names[values[0]]
    assert all(n == first for n in names.values()), names


def test_cli_predict_attn_m_icl_one_writes_both_test_losses(tmp_path):
    """Issue 23's done-when: ``predict attn-m --icl 1`` writes test_loss_in_context and test_loss_in_weight."""
    from reduced_dynamics.cli import main
    out = tmp_path / "m.npz"
    assert main(["predict", "attn-m", "--icl", "1", "--dim", "2", "--context", "7", "--heads", "2", "--t-max", "2",
                 "--out", str(out)]) in (0, None)
    data = np.load(out, allow_pickle=True)
    assert {"test_loss_in_context", "test_loss_in_weight"} <= set(data.files)
