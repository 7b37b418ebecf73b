"""Face of attn-s: multi-head linear attention with separate key and query of rank R, the saddle-to-saddle
staircase and in-context principal-component regression (docs/theory, linear attention, LA-29 to LA-34).
The science is in tasks.linear_attention, theory.linear_attention.separate and reference.linear_attention."""
from __future__ import annotations

from ..specs import LinearSeparateSpec

NAME = "attn-s"
TITLE = "linear attention, separate key-query (rank R per head)"
SPEC = LinearSeparateSpec
AXIS = "flow_time"
GIVEN_INPUTS = ("initial_weights", "training_set")     # rule 18: the projection (LA-35)
MEASURES = ("plateaus", "plateau_steps", "drop_times", "first_drop_time", "final_loss")
FIGURES = ("reduced_dynamics.scripts.attn_s_staircase:make_figure", "reduced_dynamics.scripts.attn_s_rank_sweep:make_figure",
           "reduced_dynamics.scripts.attn_s_init_scale:make_figure", "reduced_dynamics.scripts.attn_s_components:make_figure")


def draw(spec):
    from ..tasks import linear_attention
    return linear_attention.draw(spec)


def predict(spec, **options):
    from ..theory.linear_attention import separate
    return separate.predict(spec, **options)


def simulate(spec, progress=None):
    from ..reference import linear_attention
    return linear_attention.simulate_separate(spec, progress=progress)


def summarise(spec, trajectory):
    from ..theory.linear_attention import separate
    return separate.summarise(spec, trajectory)


def comparison_theories(spec):
    from ..theory.linear_attention import separate
    return separate.comparison_theories(spec)


def levels(spec, theory):
    from ..theory.linear_attention import separate
    return separate.levels(spec, theory)


def report_extras(spec):
    from ..theory.linear_attention import separate
    return separate.report_extras(spec)


def flow_probe(spec):
    from ..theory.linear_attention import separate
    return separate.flow_probe(spec)


def estimate(spec, verb):
    from ..costs import linear_attention
    return linear_attention(spec, verb)


def max_stable_lr(spec):
    """The bound of the system the run follows (LRA-2, LRA-8): every weight when unfrozen, the manifold when frozen."""
    from ..theory import lr_atlas
    return lr_atlas.run_bound(spec)
