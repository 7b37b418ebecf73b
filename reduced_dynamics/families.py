"""The one registry of model families.

A family is its spec class plus import paths ("module:function") of its predict (theory), simulate
(reference), the metrics applied identically to theory and reference curves, optional extra theory curves
for comparisons, and its figure scripts. The CLI, the comparison runner, the figure command and the common
tests iterate ``FAMILIES``; adding a family is one entry here plus its own modules. Functions are imported
lazily so that the CLI starts quickly and a family's heavy imports happen only when it is used.

Contract of the functions an entry names:
  predict(spec) -> Trajectory                      theory curve; t = gradient-flow time, float arrays
  simulate(spec, progress=None) -> Trajectory      reference run on t = lr * step (progress: tqdm on/off/auto)
  summarise(trajectory) -> dict                    metrics (floats or lists of floats), same for both sides
  comparison_theories(spec) -> {"theory": Trajectory, label: Trajectory, ...}
  levels(spec, theory) -> {label: float}           dotted reference levels in figures and reports
  flow_probe(spec) -> (rhs(y), loss(y), y0)        the common test checks rhs = -grad loss by differences
  figure script: make_figure(out_dir: Path, quick: bool = False) -> list[Path]   (PDF, PNG, .npz, .json)
  measures: the keys summarise returns (optional; lets a sweep reject a bad --measure before running; when
            empty the sweep checks the names against its first evaluation instead)
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from .specs import LinearMergedSpec, Spec, SpecError


@dataclass(frozen=True)
class Family:
    name: str
    title: str
    spec_class: type[Spec]
    predict: str                      # (spec) -> Trajectory: the theory curve
    simulate: str                     # (spec) -> Trajectory: the reference gradient-descent run
    summarise: str                    # (Trajectory) -> dict of metrics, applied to theory AND reference
    comparison_theories: str | None = None   # (spec) -> {"theory": Trajectory, other name: Trajectory}
    levels: str | None = None         # (spec, theory Trajectory) -> {label: horizontal reference level}
    flow_probe: str | None = None     # (spec) -> (rhs(y), loss(y), y0): for the common RHS = -grad test
    figures: tuple[str, ...] = ()     # figure scripts: f(out_dir, quick) -> list of written paths
    measures: tuple[str, ...] = ()    # keys of summarise's output, for sweeps (optional)
    test_spec: dict = field(default_factory=dict)     # small sizes for the common tests
    start_tolerance: float = 1e-9     # |theory loss(0) - reference loss(0)| / loss(0) in the common tests
    bad_inputs: tuple = ()            # (field values, parameter that must be named in the error)

    def resolve(self, attribute: str) -> Callable[..., Any]:
        return resolve(getattr(self, attribute))


def resolve(path: str) -> Callable[..., Any]:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


FAMILIES: dict[str, Family] = {f.name: f for f in [
    Family(
        name="attn-m",
        title="linear attention, merged key-query",
        spec_class=LinearMergedSpec,
        predict="reduced_dynamics.theory.linear_merged:predict",
        simulate="reduced_dynamics.reference.linear_attention:simulate_merged",
        summarise="reduced_dynamics.theory.linear_merged:summarise",
        comparison_theories="reduced_dynamics.theory.linear_merged:comparison_theories",
        levels="reduced_dynamics.theory.linear_merged:levels",
        flow_probe="reduced_dynamics.theory.linear_merged:flow_probe",
        figures=("scripts.attn_m_loss:make_figure",),
        measures=("drop_time", "final_loss"),
        test_spec={"dim": 2, "context": 5, "heads": 2, "init_scale": 0.1, "train_size": 200, "lr": 0.05,
                   "t_max": 20.0},
        bad_inputs=(({"dim": 0}, "dim"), ({"dim": 2.5}, "dim"), ({"context": -1}, "context"),
                    ({"heads": 0}, "heads"), ({"train_size": 0}, "train_size"), ({"steps": 0}, "steps"),
                    ({"init_scale": 0.0}, "init_scale"), ({"init_scale": float("nan")}, "init_scale"),
                    ({"lr": -0.1}, "lr"), ({"t_max": float("nan")}, "t_max"),
                    ({"eigenvalues": (1.0, -1.0, 1.0, 1.0)}, "eigenvalues"),
                    ({"eigenvalues": (1.0, 1.0)}, "eigenvalues"), ({"covariance": "diagonal"}, "covariance"),
                    ({"output_scale": "half"}, "output_scale")),
    ),
]}


def family(name: str) -> Family:
    """The registered family called ``name``; an unknown name is a SpecError naming ``model``."""
    if name not in FAMILIES:
        raise SpecError("model", "one of " + ", ".join(FAMILIES), name)
    return FAMILIES[name]


def spec(model: str, **fields: Any) -> Spec:
    """Build a model's spec from the same field names as the CLI flags (underscores for hyphens)."""
    return family(model).spec_class.from_dict(fields)


def family_of(spec_obj: Spec) -> Family:
    return family(spec_obj.model)
