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

from .errors import (ClusterError, DivergenceError, FamilyError, IntegrationError, MissingExtraError, OutputError,
                     ReducedDynamicsError, ResultFileError, SpecError)
from .families import FAMILIES, family, family_of, register, spec
from .specs import Spec
from .trajectory import Trajectory
from .versions import package_version

__version__ = package_version()

__all__ = ["FAMILIES", "__version__", "ClusterError", "DivergenceError", "FamilyError", "IntegrationError", "MissingExtraError", "OutputError",
           "ReducedDynamicsError", "ResultFileError", "Spec", "SpecError", "Trajectory", "compare", "family",
           "predict", "register", "run_comparison", "simulate", "spec"]


def predict(spec_obj: Spec, **options: Any) -> Trajectory:
    """The theory curve of the spec's model family (a Trajectory carrying the spec and its axis)."""
    return family_of(spec_obj).predict(spec_obj, **options)


def simulate(spec_obj: Spec, **options: Any) -> Trajectory:
    """The reference gradient-descent run of the spec's full model."""
    return family_of(spec_obj).simulate(spec_obj, **options)


def compare(theory: Trajectory, reference: Trajectory) -> dict[str, Any]:
    """The family's comparison metrics of a theory curve and a reference run of the same spec (for training
    curves: metrics side by side, their relative gaps and the pointwise gaps)."""
    for name, curve in (("theory", theory), ("reference", reference)):
        if not isinstance(curve, Trajectory):
            raise SpecError(name, "a Trajectory", type(curve).__name__)
    model = theory.meta.get("model")
    if reference.meta.get("model") != model:
        raise SpecError("reference", f"a trajectory of model {model!r}", reference.meta.get("model"))
    if not isinstance(model, str):
        raise SpecError("theory", "a trajectory of a known model (Trajectory.from_arrays(..., spec=spec))", model)
    fam = family(model)
    spec_obj = theory.spec if theory.spec is not None else fam.spec_class.from_dict(theory.meta["spec"])
    return fam.compare(spec_obj, {"theory": theory}, reference)


def run_comparison(spec_obj: Spec, **options: Any):
    """Run theory and reference for the spec and return a ``comparison.Report``."""
    from .comparison import run
    return run(spec_obj, **options)
