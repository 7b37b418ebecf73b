"""reduced_dynamics: reduced gradient-flow theory of in-context learning in attention models, held against
independent NumPy gradient-descent runs of the full models.

    >>> import reduced_dynamics as rd
    >>> s = rd.spec("attn-m", dim=4, heads=8)
    >>> theory = rd.predict(s)          # Trajectory of the reduced flow
    >>> reference = rd.simulate(s)      # Trajectory of gradient descent on the full model
    >>> rd.compare(theory, reference)   # metrics side by side (drop times, final losses, gaps)
    >>> report = rd.run_comparison(s)   # both runs, the family's extra theory curves, a saveable Report
"""
from __future__ import annotations

from typing import Any

from .families import FAMILIES, family, family_of, spec
from .specs import Spec, SpecError
from .trajectory import Trajectory

__all__ = ["FAMILIES", "Spec", "SpecError", "Trajectory", "compare", "family", "predict", "run_comparison",
           "simulate", "spec"]


def predict(spec_obj: Spec, **options: Any) -> Trajectory:
    """The theory curve of the spec's model family."""
    return family_of(spec_obj).resolve("predict")(spec_obj, **options)


def simulate(spec_obj: Spec, **options: Any) -> Trajectory:
    """The reference gradient-descent run of the spec's full model."""
    return family_of(spec_obj).resolve("simulate")(spec_obj, **options)


def compare(theory: Trajectory, reference: Trajectory) -> dict[str, Any]:
    """The family's metrics applied to both curves, their relative gaps and the pointwise gaps."""
    from .comparison import compare as compare_curves
    model = theory.meta.get("model")
    if reference.meta.get("model") != model:
        raise SpecError("reference", f"a trajectory of model {model!r}", reference.meta.get("model"))
    return compare_curves(theory, reference, family(model).resolve("summarise"))


def run_comparison(spec_obj: Spec, **options: Any):
    """Run theory and reference for the spec and return a ``compare.Report``."""
    from .comparison import run
    return run(spec_obj, **options)
