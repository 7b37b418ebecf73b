"""The extension contract: what a model family provides, and the check applied when it is loaded.

A family is a module (its *face*: ``reduced_dynamics/families/attn_m.py`` for ours, any importable module
of another package for a plug-in) that defines the names below. The face is the only glue a family writes;
its science lives in its own task, theory and reference modules, which the face imports lazily inside the
hooks, so that loading a face stays cheap (the CLI loads every face to list the models).

Rules (numbered so that error messages and docs can cite them):

1. ``NAME: str`` — the model name (``reduced-dynamics predict NAME``), lowercase letters, digits, ``-``.
2. ``TITLE: str`` — one line for ``reduced-dynamics models``.
3. ``SPEC`` — a frozen dataclass subclass of ``reduced_dynamics.specs.Spec`` whose ClassVar ``model``
   equals ``NAME``. Its fields are the CLI flags; its ``param(...)`` declarations (default, help, check) are
   the validation, done once at construction. Every hook receives the validated spec, never loose numbers.
4. ``AXIS: str`` — what the theory curve's ``t`` is: ``"flow_time"`` (gradient-flow time; a GD run after k
   steps at rate lr sits at t = lr k) or another axis (``"depth"`` ...). A family whose axis is not
   ``flow_time`` must define ``compare`` (rule 10): no default compares curves across different axes.
5. ``draw(spec) -> Problem`` — the one random draw (data law, initial weights, training set, evaluation
   prompts) from named seed streams (``reduced_dynamics.tasks.streams``); theory and reference both use it.
6. ``predict(spec, **options) -> Trajectory`` — the theory curve on ``AXIS``.
7. ``simulate(spec, progress=None) -> Trajectory`` — the reference run (gradient descent on the full model),
   independent of the theory; ``progress`` switches a tqdm bar on/off (None: on a terminal).
8. ``summarise(spec, trajectory) -> dict`` — metrics (floats or lists of floats) applied identically to
   theory and reference curves; its keys are the measures a sweep can tabulate.
9. ``MEASURES: tuple[str, ...]`` — the keys ``summarise`` returns (a sweep checks ``--measure`` against them
   before it runs).
10. optional ``compare(spec, theories, reference) -> dict`` — the comparison report's metrics; ``theories``
    maps labels to theory curves (``"theory"`` first). Default (training curves): each metric of
    ``summarise`` side by side with its relative gap, and the pointwise loss gaps at the reference times.
11. optional ``comparison_theories(spec) -> dict[str, Trajectory]`` — the curves a comparison shows
    (``"theory"`` is the main one); default ``{"theory": predict(spec)}``.
12. optional ``levels(spec, theory) -> dict[str, float]`` — dotted reference levels in figures and reports.
13. optional ``flow_probe(spec) -> (rhs(y), loss(y), y0)`` — the reduced flow as functions of a flat state,
    for the common check rhs = -grad loss (``reduced_dynamics.testing``).
14. optional ``report_extras(spec) -> dict`` — extra entries of the comparison report (lists allowed).
15. optional ``FIGURES: tuple[str, ...]`` — ``"module:function"`` paths of figure scripts
    ``f(out_dir, quick=False) -> list[Path]`` that write PDF, PNG, ``.npz`` and ``.json`` through
    ``reduced_dynamics.figures.save``.
16. optional ``estimate(spec, verb) -> costs.Estimate`` — memory and time of ``predict`` or ``simulate``
    from the spec alone, so that a run that cannot fit is refused before it allocates anything.
17. optional ``max_stable_lr(spec) -> dict`` — the largest stable learning rate of the reduced GD map,
    2 / lambda_max of the reduced loss's Hessian (LR-8), with ``eta_max`` among its keys
    (``reduced-dynamics predict MODEL --max-lr``).
18. optional ``GIVEN_INPUTS: tuple[str, ...]`` — which of the options ``initial_weights`` (the user's own
    full-model weights, projected onto the reduced state) and ``training_set`` (the user's own training set,
    whose moments the theory then uses) the family's ``predict`` accepts; their form is the family's own,
    documented in its ``predict``. ``rd.predict`` refuses them, with a ``SpecError`` naming the option and
    the families that declare it, for a family that does not list them (default: none).

A family from another installed package registers its face under the entry-point group
``reduced_dynamics.families`` (``name = "package.module"``); it then appears in every verb, ``figures``,
``sweep`` (process pool and Dask workers import it by that path) and passes ``reduced_dynamics.testing``.
"""
from __future__ import annotations

import inspect
import re
from types import ModuleType
from typing import Any, Callable, Protocol, runtime_checkable

from ..errors import FamilyError
from ..specs import Spec

REQUIRED_HOOKS: dict[str, tuple[str, ...]] = {      # hook -> its positional parameters (rules 5 to 8)
    "draw": ("spec",),
    "predict": ("spec",),
    "simulate": ("spec",),
    "summarise": ("spec", "trajectory"),
}
OPTIONAL_HOOKS: dict[str, tuple[str, ...]] = {      # rules 10 to 14, 16 and 17
    "compare": ("spec", "theories", "reference"),
    "comparison_theories": ("spec",),
    "levels": ("spec", "theory"),
    "flow_probe": ("spec",),
    "report_extras": ("spec",),
    "estimate": ("spec", "verb"),
    "max_stable_lr": ("spec",),
}
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]*$")
GIVEN_OPTIONS = ("initial_weights", "training_set")  # rule 18: the predict options a family may declare


@runtime_checkable
class Family(Protocol):
    """What a family's face provides (rules 1 to 9; the optional hooks and declarations of rules 10 to 18
    are looked up by name). A module satisfies it structurally; ``check`` verifies it at load time."""

    NAME: str
    TITLE: str
    SPEC: type[Spec]
    AXIS: str
    MEASURES: tuple[str, ...]

    def draw(self, spec: Any) -> Any: ...
    def predict(self, spec: Any, **options: Any) -> Any: ...
    def simulate(self, spec: Any, progress: bool | None = None) -> Any: ...
    def summarise(self, spec: Any, trajectory: Any) -> dict: ...


def check(face: ModuleType | Any, expected_name: str | None = None) -> None:
    """Raise ``FamilyError`` naming every rule the face breaks (missing hook, wrong signature, bad name,
    spec class that is not a Spec of this model, a non-flow-time axis without ``compare``)."""
    where = getattr(face, "__name__", repr(face))
    problems = []
    for attribute, kind in (("NAME", str), ("TITLE", str), ("AXIS", str)):
        if not isinstance(getattr(face, attribute, None), kind):
            problems.append(f"{attribute} must be a string (rules 1, 2, 4)")
    name = getattr(face, "NAME", None)
    if isinstance(name, str) and not NAME_PATTERN.match(name):
        problems.append(f"NAME {name!r} must be lowercase letters, digits and '-' (rule 1)")
    if expected_name is not None and isinstance(name, str) and name != expected_name:
        problems.append(f"NAME {name!r} differs from the registered name {expected_name!r} (rule 1)")
    spec_class = getattr(face, "SPEC", None)
    if not (isinstance(spec_class, type) and issubclass(spec_class, Spec)):
        problems.append("SPEC must be a subclass of reduced_dynamics.specs.Spec (rule 3)")
    elif spec_class.model != name:
        problems.append(f"SPEC.model is {spec_class.model!r}, expected NAME {name!r} (rule 3)")
    measures = getattr(face, "MEASURES", None)
    if not (isinstance(measures, tuple) and all(isinstance(m, str) for m in measures)):
        problems.append("MEASURES must be a tuple of strings (rule 9)")
    figures = getattr(face, "FIGURES", ())
    if not (isinstance(figures, tuple) and all(isinstance(f, str) and ":" in f for f in figures)):
        problems.append("FIGURES must be a tuple of 'module:function' strings (rule 15)")
    given = getattr(face, "GIVEN_INPUTS", ())
    if not (isinstance(given, tuple) and all(g in GIVEN_OPTIONS for g in given)):
        problems.append(f"GIVEN_INPUTS must be a tuple of names among {GIVEN_OPTIONS} (rule 18)")
    for hook, parameters in REQUIRED_HOOKS.items():
        problems += _signature_problems(face, hook, parameters, required=True)
    for hook, parameters in OPTIONAL_HOOKS.items():
        problems += _signature_problems(face, hook, parameters, required=False)
    if getattr(face, "AXIS", "flow_time") != "flow_time" and not callable(getattr(face, "compare", None)):
        problems.append("a family whose AXIS is not 'flow_time' must define compare (rules 4, 10)")
    if problems:
        raise FamilyError(f"family {where} breaks the contract: " + "; ".join(problems))


def _signature_problems(face: Any, hook: str, parameters: tuple[str, ...], required: bool) -> list[str]:
    function: Callable | None = getattr(face, hook, None)
    if function is None:
        return [f"missing hook {hook}({', '.join(parameters)})"] if required else []
    if not callable(function):
        return [f"{hook} must be callable"]
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return []
    positional = [p for p in signature.parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    takes_varargs = any(p.kind == p.VAR_POSITIONAL for p in signature.parameters.values())
    needed = [p for p in positional if p.default is p.empty]
    if len(needed) > len(parameters) or (len(positional) < len(parameters) and not takes_varargs):
        return [f"{hook} must take ({', '.join(parameters)}), it takes {signature}"]
    return []
