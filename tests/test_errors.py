"""Every project error survives pickling (a sweep's worker sends its error back to the driver that way)."""
import pickle

import pytest

from reduced_dynamics import errors


def every_error_class(base=errors.ReducedDynamicsError):
    found = [base]
    for sub in base.__subclasses__():
        found += every_error_class(sub)
    return found


EXAMPLES = {
    errors.SpecError: lambda: errors.SpecError("lr", "a positive number", -1.0),
    errors.DivergenceError: lambda: errors.DivergenceError("attn-m", 3, 2.2e24, "lower --lr (now 100)"),
    errors.ResultFileError: lambda: errors.ResultFileError("/tmp/x.npz", "not a result file"),
    errors.MissingExtraError: lambda: errors.MissingExtraError("sweep.load", "pandas", "data"),
}


@pytest.mark.parametrize("cls", every_error_class(), ids=lambda c: c.__name__)
def test_every_error_pickles_round_trip(cls):
    error = EXAMPLES[cls]() if cls in EXAMPLES else cls(f"{cls.__name__}: something to change")
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is cls and str(again) == str(error) and again.args == error.args
    assert vars(again) == vars(error)
    assert isinstance(again, errors.ReducedDynamicsError)


def test_the_hierarchy_is_all_covered():
    """A new error class with a constructor of several arguments gets an example above (or the generic
    one-message construction must work for it)."""
    for cls in every_error_class():
        if cls not in EXAMPLES:
            cls("message")        # the generic example of the test above
