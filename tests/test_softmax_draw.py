"""The softmax problem draw (tasks.softmax_features.draw): one seed, separate streams for features, evaluation
contexts and training prompts, shared by theory and reference."""
import numpy as np
import pytest

import reduced_dynamics as rd
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


