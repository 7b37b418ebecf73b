"""The behaviour every family must show, as functions any family (ours or a plug-in) runs on itself.

    from reduced_dynamics.testing import FamilyCase, check_family
    check_family(FamilyCase("deep-linear", small_spec={...}, bad_inputs=(({"width": 0}, "width"),)))

or, in pytest, one test per check: ``@pytest.mark.parametrize("check", CHECKS)`` and ``check(case, runs)``
with ``runs = Runs.of(case)`` (computed once per family). The checks (rules of ``families.contract``):

* ``check_contract``: the face loads and passes the contract check; its measures are summarise's keys.
* ``check_bad_specs``: each bad input is a one-line ``SpecError`` naming its parameter.
* ``check_start``: theory and reference start at t = 0 from the same loss (within ``start_tolerance``).
* ``check_flow_loss_never_increases``: along a flow-time theory curve the loss never increases.
* ``check_theory_follows_reference``: the family's scalar metrics agree within ``follow_tolerance``.
* ``check_rhs_is_minus_gradient``: the flow probe's rhs equals minus the central-difference gradient.
* ``check_round_trip``: theory and reference survive ``save``/``load`` unchanged, spec and axis included.
* ``check_draw_is_deterministic``: two draws of one spec are equal (the one draw of rule 5).
"""
from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import SpecError
from .families import family
from .trajectory import Trajectory


@dataclass(frozen=True)
class FamilyCase:
    """A family's test fixtures (they live with the family's tests, not in the production registry)."""
    name: str
    small_spec: dict[str, Any]                           # sizes at which theory and reference run in seconds
    bad_inputs: tuple[tuple[dict[str, Any], str], ...]   # (field values, the parameter the error must name)
    start_tolerance: float = 1e-9                        # |L_theory(0) - L_ref(0)| / |L_ref(0)|
    follow_tolerance: float = 0.05                       # |relative gap| of each scalar metric

    def spec(self):
        return family(self.name).spec_class.from_dict(dict(self.small_spec))


@dataclass
class Runs:
    case: FamilyCase
    spec: Any
    theory: Trajectory
    reference: Trajectory
    extra: dict = field(default_factory=dict)

    @classmethod
    def of(cls, case: FamilyCase) -> "Runs":
        fam = family(case.name)
        spec = case.spec()
        return cls(case, spec, fam.predict(spec), fam.simulate(spec, progress=False))


def check_contract(case: FamilyCase, runs: Runs) -> None:
    fam = family(case.name)
    assert fam.name == case.name and fam.spec_class.model == case.name
    summary = fam.summarise(runs.spec, runs.theory)
    assert set(fam.measures) <= set(summary), (fam.measures, sorted(summary))


def check_bad_specs(case: FamilyCase, runs: Runs | None = None) -> None:
    assert case.bad_inputs, "a family must list the bad inputs it rejects"
    spec_class = family(case.name).spec_class
    for values, parameter in case.bad_inputs:
        try:
            spec_class.from_dict(values)
        except SpecError as error:
            assert error.parameter == parameter, (values, error.parameter, parameter)
            assert str(error).startswith(parameter + ":") and "\n" not in str(error), str(error)
        else:
            raise AssertionError(f"{values} was accepted; expected a SpecError naming {parameter}")


def check_start(case: FamilyCase, runs: Runs) -> None:
    theory, reference = runs.theory, runs.reference
    assert theory.t[0] == 0.0 and reference.t[0] == 0.0
    gap = abs(theory.loss[0] - reference.loss[0])
    assert gap <= case.start_tolerance * abs(reference.loss[0]), (theory.loss[0], reference.loss[0])


def check_flow_loss_never_increases(case: FamilyCase, runs: Runs) -> None:
    if runs.theory.axis != "flow_time":
        return          # not a training curve (e.g. risk against depth): nothing to check here
    assert np.all(np.isfinite(runs.theory.loss))
    assert np.diff(runs.theory.loss).max() <= 1e-9 * max(1.0, abs(runs.theory.loss[0]))


def check_theory_follows_reference(case: FamilyCase, runs: Runs) -> None:
    if runs.theory.axis != "flow_time":
        return
    metrics = family(case.name).compare(runs.spec, {"theory": runs.theory}, runs.reference)
    gaps = {k: v for k, v in metrics.items() if k.endswith("_relative_gap") and isinstance(v, float)}
    assert gaps, "the family's summary has no scalar metric to compare"
    for key, gap in gaps.items():
        assert abs(gap) < case.follow_tolerance, (key, gap)


def check_rhs_is_minus_gradient(case: FamilyCase, runs: Runs) -> None:
    probe = family(case.name).flow_probe(runs.spec)
    if probe is None:
        return
    rhs, loss, y0 = probe
    y = y0 + 0.3 * np.random.default_rng(3).standard_normal(y0.shape)
    eps = 1e-6
    grad = np.array([(loss(y + eps * e) - loss(y - eps * e)) / (2 * eps) for e in np.eye(y.size)])
    np.testing.assert_allclose(rhs(y), -grad, rtol=1e-6, atol=1e-8 * max(1.0, np.abs(grad).max()))


def check_round_trip(case: FamilyCase, runs: Runs) -> None:
    with tempfile.TemporaryDirectory() as folder:
        for curve in (runs.theory, runs.reference):
            back = Trajectory.load(curve.save(Path(folder) / "curve.npz"))
            np.testing.assert_array_equal(back.t, curve.t)
            np.testing.assert_array_equal(back.loss, curve.loss)
            assert back.meta == curve.meta and back.events == curve.events and back.axis == curve.axis
            assert back.spec == runs.spec
            assert sorted(back.observables) == sorted(curve.observables)
            for key in curve.observables:
                np.testing.assert_array_equal(back.observables[key], curve.observables[key])


def check_draw_is_deterministic(case: FamilyCase, runs: Runs) -> None:
    fam = family(case.name)
    first, second = fam.draw(runs.spec), fam.draw(runs.spec)
    assert _equal(first, second), "two draws of one spec differ"


def _equal(a: Any, b: Any) -> bool:
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return type(a) is type(b) and all(_equal(getattr(a, f.name), getattr(b, f.name))
                                          for f in dataclasses.fields(a))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, np.random.Generator):
        return a.bit_generator.state == b.bit_generator.state
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b)
    return a == b


CHECKS: tuple[Callable[[FamilyCase, Runs], None], ...] = (
    check_contract, check_bad_specs, check_start, check_flow_loss_never_increases, check_theory_follows_reference,
    check_rhs_is_minus_gradient, check_round_trip, check_draw_is_deterministic)


def check_family(case: FamilyCase) -> None:
    """Run every check on the family of ``case``; the first failure raises ``AssertionError`` naming it."""
    runs = Runs.of(case)
    for check in CHECKS:
        try:
            check(case, runs)
        except AssertionError as error:
            raise AssertionError(f"{case.name}: {check.__name__} failed: {error}") from error
