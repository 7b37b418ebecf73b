"""The common behavioural suite (reduced_dynamics.testing) run on each of our families, one test per check."""
import pytest

import reduced_dynamics as rd
from reduced_dynamics.specs import SpecError
from reduced_dynamics.testing import CHECKS, Runs, check_bad_specs
from family_cases import CASES

NAMES = sorted(CASES)
RUN_CHECKS = [check for check in CHECKS if check is not check_bad_specs]


@pytest.fixture(scope="module", params=NAMES)
def runs(request):
    return Runs.of(CASES[request.param])


@pytest.mark.parametrize("check", RUN_CHECKS, ids=lambda c: c.__name__)
def test_family_behaviour(runs, check):
    check(runs.case, runs)


@pytest.mark.parametrize("name", NAMES)
def test_bad_specs_are_rejected_naming_the_parameter(name):
    check_bad_specs(CASES[name])


def test_every_registered_family_has_a_case():
    assert set(rd.FAMILIES) >= set(CASES)


def test_unknown_model_and_unknown_field_are_rejected():
    with pytest.raises(SpecError, match="^model: expected one of"):
        rd.spec("attn-x")
    with pytest.raises(SpecError, match="^dimension:"):
        rd.spec(NAMES[0], dimension=3)
    with pytest.raises(SpecError, match="^spec:"):
        rd.predict("attn-m")
