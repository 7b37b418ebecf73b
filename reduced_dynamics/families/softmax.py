"""Face of softmax: one softmax attention layer on orthonormal-feature prompts, own-feature against
cross-feature weights (docs/theory, softmax features, SF-13, SF-19a, SF-21). The science is in
tasks.softmax_features, theory.softmax and reference.softmax_features."""
from __future__ import annotations

from ..specs import SoftmaxFeaturesSpec

NAME = "softmax"
TITLE = "softmax attention on orthonormal features (two-weight competition)"
SPEC = SoftmaxFeaturesSpec
AXIS = "flow_time"
MEASURES = ("threshold_times", "half_attention_times", "loss_threshold_time", "final_loss")
FIGURES = ("reduced_dynamics.scripts.softmax_balanced:make_figure", "reduced_dynamics.scripts.softmax_imbalanced:make_figure",
           "reduced_dynamics.scripts.softmax_large_n:make_figure")


def draw(spec):
    from ..tasks import softmax_features
    return softmax_features.draw(spec)


def predict(spec, **options):
    from ..theory.softmax import features
    return features.predict(spec, **options)


def simulate(spec, progress=None):
    from ..reference import softmax_features
    return softmax_features.simulate(spec, progress=progress)


def summarise(spec, trajectory):
    from ..theory.softmax import features
    return features.summarise(spec, trajectory)


def comparison_theories(spec):
    from ..theory.softmax import features
    return features.comparison_theories(spec)


def flow_probe(spec):
    from ..theory.softmax import features
    return features.flow_probe(spec)


def estimate(spec, verb):
    from ..costs import softmax
    return softmax(spec, verb)


def max_stable_lr(spec):
    from ..theory.softmax import features
    return features.max_stable_lr(spec)
