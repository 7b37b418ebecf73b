"""attn-s reference: the §12 test losses (LA-38) are evaluated only when the run trains on a mixture
(icl < 1) or the caller asks (``test_size``); leaving them out changes nothing else in the run."""
import numpy as np

from reduced_dynamics.reference import linear_attention as ref
from reduced_dynamics.specs import LinearSeparateSpec

SMALL = {"dim": 3, "context": 5, "heads": 2, "train_size": 100, "steps": 20}


def test_icl_one_skips_the_test_losses_and_the_curve_is_unchanged():
    spec = LinearSeparateSpec(**SMALL)
    default = ref.simulate_separate(spec, progress=False)
    asked = ref.simulate_separate(spec, progress=False, test_size=50)
    assert "test_loss_in_context" not in default.observables and not default.events
    assert asked.observables["test_loss_in_weight"].shape == asked.loss.shape
    np.testing.assert_array_equal(default.loss, asked.loss)          # bit for bit: the tests draw apart
    for name, values in default.observables.items():
        np.testing.assert_array_equal(values, asked.observables[name])


def test_a_mixture_gets_both_test_losses_by_default():
    gd = ref.simulate_separate(LinearSeparateSpec(**SMALL, icl=0.5), progress=False)
    for name in ("test_loss_in_context", "test_loss_in_weight"):
        assert gd.observables[name].shape == gd.loss.shape and np.all(np.isfinite(gd.observables[name]))
