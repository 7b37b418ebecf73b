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
    """The theory curve of the spec's model family (a Trajectory carrying the spec and its axis).

    ``options`` reach the family's ``predict``. Two of them bring a run trained outside the package
    (contract rule 18; attn-m and attn-s, linear attention with ``icl=1``; elsewhere a ``SpecError`` naming
    the option and the families that accept it):

    * ``initial_weights``: the full model's initial weights as a mapping of NumPy arrays, label coordinate
      last: attn-m ``{"W": (H, D+1, D+1), "r": (H, D+1)}`` (merged key-query W_i, value row r_i, LA-5),
      attn-s ``{"K": (H, R, D+1), "Q": (H, R, D+1), "r": (H, D+1)}`` (LA-6). The flow starts from their
      projection (LA-35). The off-manifold blocks (attn-m ``W[:, D, :D]``, attn-s ``K[:, :, D]``, and
      ``r[:, :D]``) must be zero: off the invariant manifold the reduced flow is not the dynamics, so such a
      start is refused rather than projected. Without it: the weights the spec's seed draws.
    * ``training_set``: the training prompts as a mapping ``{"x": (P, N, D), "y": (P, N), "xq": (P, D),
      "yq": (P,)}`` (contexts, their labels, queries, query targets; N = ``spec.context``): the flow uses
      the sample moments (§5) of exactly that set. Without it: the spec's moments (population, or the
      sample moments of its own drawn set when ``train_size`` is given).

    The trajectory's meta then says ``initial_weights`` and ``training_set`` "given" (and
    ``given_train_size``); without them the default path is unchanged.

        >>> theory = rd.predict(spec, initial_weights={"W": W0, "r": r0}, training_set=my_set)
    """
    return family_of(spec_obj).predict(spec_obj, **options)


def simulate(spec_obj: Spec, **options: Any) -> Trajectory:
    """The reference gradient-descent run of the spec's full model, with BLAS on one thread as on the
    command line (``blas_threads=None`` leaves BLAS as the caller set it; ``threads.py`` says why)."""
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
