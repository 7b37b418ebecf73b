"""Face of sparse: multi-layer multi-head linear attention on in-context sparse regression. The theory is
risk against continuous depth tau (SM-23, SM-30), the reference a trained network (Adam steps), so the two
have different axes (rule 4) and ``compare`` sets the trained risk against the theory's levels instead of
taking pointwise gaps. The science is in tasks.sparse_regression, theory.sparse, reference.sparse_multihead."""
from __future__ import annotations

from ..specs import SparseSpec

NAME = "sparse"
TITLE = "multi-head linear attention, in-context sparse regression (risk against depth)"
SPEC = SparseSpec
AXIS = "depth"
MEASURES = ("initial_risk", "final_risk", "min_risk")
FIGURES = ("reduced_dynamics.scripts.sparse_depth:make_figure", "reduced_dynamics.scripts.sparse_context:make_figure",
           "reduced_dynamics.scripts.sparse_heads:make_figure")


def draw(spec):
    from ..tasks import sparse_regression
    return sparse_regression.draw(spec)


def predict(spec, **options):
    from ..theory.sparse import multihead
    return multihead.predict(spec, **options)


def simulate(spec, progress=None):
    from ..reference import sparse_multihead
    trajectory = sparse_multihead.simulate(spec, progress=progress)
    trajectory.axis = "lr_step"       # t = lr * step of the optimiser (for Adam not a gradient-flow time)
    return trajectory


def summarise(spec, trajectory):
    from ..theory.sparse import multihead
    return multihead.summarise(trajectory)


def comparison_theories(spec):
    from ..theory.sparse import multihead
    return multihead.comparison_theories(spec)


def compare(spec, theories, reference):
    from ..theory.sparse import multihead
    return multihead.compare_trained(spec, theories["theory"], reference)


def levels(spec, theory):
    from ..theory.sparse import multihead
    return multihead.levels(spec, theory)


def flow_probe(spec):
    from ..theory.sparse import multihead
    return multihead.flow_probe(spec)


def estimate(spec, verb):
    from ..costs import sparse
    return sparse(spec, verb)
