"""A checked family face with the contract's defaults (rules 10 to 18 of ``families.contract``) filled in.

Every hook takes the validated spec of the family's own ``SPEC`` class (anything else is a ``SpecError``
naming ``spec``); every returned ``Trajectory`` carries that spec and its axis.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable

from ..errors import ReducedDynamicsError, SpecError
from ..specs import Spec

FEW_STEPS = 10      # fewer gradient-descent steps than this make no training curve (a one-line warning)


class RegisteredFamily:
    def __init__(self, face: Any, path: str):
        self.face, self.path = face, path

    def __repr__(self) -> str:
        return f"<family {self.name!r} from {self.path}>"

    # ---- declarations (rules 1 to 4, 9, 15)
    @property
    def name(self) -> str:
        return self.face.NAME

    @property
    def title(self) -> str:
        return self.face.TITLE

    @property
    def spec_class(self) -> type[Spec]:
        return self.face.SPEC

    @property
    def axis(self) -> str:
        return self.face.AXIS

    @property
    def measures(self) -> tuple[str, ...]:
        return tuple(self.face.MEASURES)

    @property
    def figures(self) -> tuple[str, ...]:
        return tuple(getattr(self.face, "FIGURES", ()))

    @property
    def given_inputs(self) -> tuple[str, ...]:
        """The user-input options of ``predict`` the family declares (rule 18)."""
        return tuple(getattr(self.face, "GIVEN_INPUTS", ()))

    @property
    def training_curve(self) -> bool:
        """True when the theory curve is a loss against gradient-flow time (rule 4)."""
        return self.axis == "flow_time"

    def has(self, hook: str) -> bool:
        return callable(getattr(self.face, hook, None))

    # ---- hooks
    def _checked(self, spec: Any) -> Spec:
        if not isinstance(spec, self.spec_class):
            raise SpecError("spec", f"a {self.spec_class.__name__} (reduced_dynamics.spec({self.name!r}, ...))",
                            spec)
        return spec

    def _stamp(self, trajectory: Any, spec: Spec, axis: str | None) -> Any:
        trajectory.spec = spec
        if axis is not None and not trajectory.axis:
            trajectory.axis = axis
        return trajectory

    def estimate(self, spec: Spec, verb: str):
        """Memory and time of ``verb`` (predict, simulate or compare) from the spec (rule 16); None if the
        family gives no estimate."""
        if not self.has("estimate"):
            return None
        if verb == "compare":
            return self.face.estimate(spec, "predict").combine(self.face.estimate(spec, "simulate"))
        return self.face.estimate(self._checked(spec), verb)

    def guard(self, spec: Spec, verb: str, confirm_time: bool = False, yes: bool = False) -> None:
        """Refuse, before any allocation, a run that cannot fit in the free memory (``CostError``); with
        ``confirm_time`` also one expected to exceed the time budget unless ``yes``."""
        from ..costs import enforce
        enforce(self.name, verb, self.estimate(self._checked(spec), verb), confirm_time, yes)

    def draw(self, spec: Spec) -> Any:
        return self.face.draw(self._checked(spec))

    def _given_options(self, options: dict) -> dict:
        """Rule 18: an option of ``GIVEN_OPTIONS`` the family does not declare is a SpecError naming it and the
        families that do (None counts as not given and is dropped)."""
        from . import FAMILIES
        from .contract import GIVEN_OPTIONS
        for name in GIVEN_OPTIONS:
            if name in options and name not in self.given_inputs:
                if options[name] is not None:
                    able = [n for n in FAMILIES if self._declares(n, name)]
                    raise SpecError(name, f"a model whose predict accepts it ({', '.join(able) or 'none'}; "
                                          f"rule 18)", self.name)
                options = {k: v for k, v in options.items() if k != name}
        return options

    @staticmethod
    def _declares(model: str, option: str) -> bool:
        from . import FAMILIES
        try:
            return option in FAMILIES[model].given_inputs
        except ReducedDynamicsError:          # a broken plug-in does not stop the message
            return False

    def predict(self, spec: Spec, **options: Any):
        options = self._given_options(options)
        self.guard(spec, "predict")
        return self._stamp(self.face.predict(self._checked(spec), **options), spec, self.axis)

    def simulate(self, spec: Spec, progress: bool | None = None, blas_threads: int | None = 1):
        """The face's simulate with BLAS on ``blas_threads`` threads (default one, as on the command line:
        ``threads.py``; ``None`` leaves BLAS as the caller set it)."""
        from ..threads import blas_limit
        limit = blas_limit(blas_threads)
        reference_axis = "flow_time" if self.training_curve else None
        self.guard(spec, "simulate")
        steps = getattr(spec, "gd_steps", None) if self.training_curve else None
        if steps is not None and steps < FEW_STEPS:
            warnings.warn(f"{steps} gradient-descent step(s) only (lr {spec.lr:g} to t = {spec.final_time:g}): "
                          "not a training curve to hold a flow against; lower --lr", RuntimeWarning)
        with limit:
            trajectory = self.face.simulate(self._checked(spec), progress=progress)
        return self._stamp(trajectory, spec, reference_axis)

    def summarise(self, spec: Spec, trajectory: Any) -> dict:
        return self.face.summarise(self._checked(spec), trajectory)

    def comparison_theories(self, spec: Spec) -> dict:
        if self.has("comparison_theories"):
            curves = self.face.comparison_theories(self._checked(spec))
            return {label: self._stamp(curve, spec, self.axis) for label, curve in curves.items()}
        return {"theory": self.predict(spec)}

    def compare(self, spec: Spec, theories: dict, reference: Any) -> dict:
        """The report's metrics (rule 10): the family's own, or the default for training curves."""
        if self.has("compare"):
            return self.face.compare(self._checked(spec), theories, reference)
        from ..metrics import compare_training_curves
        return compare_training_curves(theories, reference, lambda curve: self.summarise(spec, curve))

    def levels(self, spec: Spec, theory: Any) -> dict[str, float]:
        return self.face.levels(self._checked(spec), theory) if self.has("levels") else {}

    def report_extras(self, spec: Spec) -> dict:
        return self.face.report_extras(self._checked(spec)) if self.has("report_extras") else {}

    def flow_probe(self, spec: Spec) -> tuple[Callable, Callable, Any] | None:
        return self.face.flow_probe(self._checked(spec)) if self.has("flow_probe") else None
