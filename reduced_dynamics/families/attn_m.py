"""Face of attn-m: multi-head linear attention with merged key-query, one abrupt drop (docs/theory,
linear attention, LA-22 and the closed form LA-27). The science is in tasks.linear_attention,
theory.linear_attention.merged and reference.linear_attention; this module only names it."""
from __future__ import annotations

from ..specs import LinearMergedSpec

NAME = "attn-m"
TITLE = "linear attention, merged key-query"
SPEC = LinearMergedSpec
AXIS = "flow_time"
GIVEN_INPUTS = ("initial_weights", "training_set")     # rule 18: the projection (LA-35)
MEASURES = ("drop_time", "final_loss")
FIGURES = ("reduced_dynamics.scripts.attn_m_loss:make_figure", "reduced_dynamics.scripts.discretisation_order:make_figure",
           "reduced_dynamics.scripts.attn_m_icl_iwl:make_figure", "reduced_dynamics.scripts.softmax_linear_regression:make_figure",
           "reduced_dynamics.scripts.lr_atlas:make_figure", "reduced_dynamics.scripts.attn_m_transience:make_figure",
           "reduced_dynamics.scripts.sgd_band:make_figure")


def draw(spec):
    from ..tasks import linear_attention
    return linear_attention.draw(spec)


def predict(spec, **options):
    from ..theory.linear_attention import merged
    return merged.predict(spec, **options)


def simulate(spec, progress=None):
    from ..reference import linear_attention
    return linear_attention.simulate_merged(spec, progress=progress)


def summarise(spec, trajectory):
    from ..theory.linear_attention import merged
    return merged.summarise(spec, trajectory)


def comparison_theories(spec):
    from ..theory.linear_attention import merged
    return merged.comparison_theories(spec)


def levels(spec, theory):
    from ..theory.linear_attention import merged
    return merged.levels(spec, theory)


def flow_probe(spec):
    from ..theory.linear_attention import merged
    return merged.flow_probe(spec)


def estimate(spec, verb):
    from ..costs import linear_attention
    return linear_attention(spec, verb)


def max_stable_lr(spec):
    """The bound of the system the run follows (LRA-2): every weight when unfrozen, the manifold when frozen."""
    from ..theory import lr_atlas
    return lr_atlas.run_bound(spec)
