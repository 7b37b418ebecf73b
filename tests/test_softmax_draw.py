"""The softmax problem draw (tasks.softmax_features.draw): one seed, separate streams for features, evaluation
contexts and training prompts, shared by theory and reference; and divergence of the reference's GD."""
import numpy as np
import pytest

import reduced_dynamics as rd
from reduced_dynamics.errors import DivergenceError
from reduced_dynamics.tasks.softmax_features import draw

SMALL = dict(features=3, dim=4, context=10, lr=0.5, steps=20, batch=500, dominant=0.5)


def test_eval_prompts_do_not_change_the_training_run():
    """Changing eval_prompts changes the loss estimate only: the GD trajectory of M = V Q V^T (Q stays in
    span V x span V from Q = 0, so M is all of Q) is identical to the last bit."""
    few = rd.simulate(rd.spec("softmax", eval_prompts=500, **SMALL), progress=False)
    many = rd.simulate(rd.spec("softmax", eval_prompts=1500, **SMALL), progress=False)
    np.testing.assert_array_equal(few.observables["M"], many.observables["M"])
    assert not np.array_equal(few.loss, many.loss)


def test_theory_and_reference_start_from_the_same_point():
    spec = rd.spec("softmax", eval_prompts=4000, **SMALL)
    problem = draw(spec)
    np.testing.assert_allclose(problem.features @ problem.features.T, np.eye(3), atol=1e-12)
    np.testing.assert_array_equal(draw(spec).features, problem.features)       # the draw is a function of the spec
    theory, reference = rd.predict(spec), rd.simulate(spec, progress=False)
    np.testing.assert_array_equal(theory.observables["M"][0], reference.observables["M"][0])
    assert reference.loss[0] == pytest.approx(theory.loss[0], rel=0.02)          # same M(0), sampled vs exact L


def test_divergence_is_detected_and_names_lr():
    """lr = 1e6 with one prompt per step locks the attention on the wrong features: the evaluation loss climbs
    from 0.30 to 0.94 by step 4 (the loss is bounded, so this, not overflow, is how this model diverges)."""
    values = dict(features=4, dim=6, context=30, lr=1e6, steps=30, batch=1, eval_prompts=2000, dominant=0.6,
                  seed=1)
    with pytest.raises(DivergenceError, match=r"^softmax: gradient descent diverged at step \d+ .*lower --lr "
                                              r"\(now 1e\+06\)$") as caught:
        rd.simulate(rd.spec("softmax", **values), progress=False)
    assert caught.value.step > 0 and caught.value.loss > 2 * 0.30 and "\n" not in str(caught.value)


def test_a_large_but_sane_lr_is_not_divergence():
    """The same lr with full batches saturates the softmax in one step (loss falls to its floor): no error."""
    values = dict(features=4, dim=6, context=30, lr=1e6, steps=5, batch=2000, eval_prompts=2000, dominant=0.6)
    traj = rd.simulate(rd.spec("softmax", **values), progress=False)
    assert traj.loss[-1] < traj.loss[0]
