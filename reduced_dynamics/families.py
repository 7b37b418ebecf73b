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
  report_extras(spec) -> {key: value}              optional entries added to the comparison report (e.g. a
                                                   ladder of saddle levels as a list)
  figure script: make_figure(out_dir: Path, quick: bool = False) -> list[Path]   (PDF, PNG, .npz, .json)
  measures: the keys summarise returns (optional; lets a sweep reject a bad --measure before running; when
            empty the sweep checks the names against its first evaluation instead)

A family whose predict is not a training curve (sparse: risk against continuous depth) sets
training_curve=False; the common tests that assume a monotone flow loss tracking the reference skip it.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from .specs import LinearMergedSpec, LinearSeparateSpec, SoftmaxFeaturesSpec, SparseSpec, Spec, SpecError


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
    report_extras: str | None = None  # (spec) -> dict of extra report entries (lists allowed)
    training_curve: bool = True       # False: predict is not a training curve (sparse: risk against depth),
                                      # so the common tests of a monotone flow loss that tracks the reference
                                      # over training do not apply and are skipped with that reason

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
        predict="reduced_dynamics.theory.linear_attention.merged:predict",
        simulate="reduced_dynamics.reference.linear_attention:simulate_merged",
        summarise="reduced_dynamics.theory.linear_attention.merged:summarise",
        comparison_theories="reduced_dynamics.theory.linear_attention.merged:comparison_theories",
        levels="reduced_dynamics.theory.linear_attention.merged:levels",
        flow_probe="reduced_dynamics.theory.linear_attention.merged:flow_probe",
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
    Family(
        name="softmax",
        title="softmax attention on orthonormal features (two-weight competition)",
        spec_class=SoftmaxFeaturesSpec,
        predict="reduced_dynamics.theory.softmax.features:predict",
        simulate="reduced_dynamics.reference.softmax_features:simulate",
        summarise="reduced_dynamics.theory.softmax.features:summarise",
        comparison_theories="reduced_dynamics.theory.softmax.features:comparison_theories",
        flow_probe="reduced_dynamics.theory.softmax.features:flow_probe",
        figures=("scripts.softmax_balanced:make_figure", "scripts.softmax_imbalanced:make_figure",
                 "scripts.softmax_large_n:make_figure"),
        # lr 0.5 keeps the O(lr) GD-flow gap (SF-10) near 1 %: at lr 1 it is about 2 % at these sizes.
        test_spec={"features": 3, "dim": 4, "context": 10, "lr": 0.5, "steps": 80, "batch": 5000,
                   "eval_prompts": 10000, "record_every": 2, "thresholds": (0.2, 0.1, 0.07)},
        # GD's loss at step 0 is estimated on eval_prompts sampled contexts: at M = 0 (K = 3, N = 10) one
        # feature's loss has a relative standard error of 0.41 % with 10000 contexts; 2 % is about 5 of them.
        start_tolerance=0.02,
        bad_inputs=(({"features": 1}, "features"), ({"dim": 3}, "dim"), ({"context": 0}, "context"),
                    ({"probabilities": (0.5, 0.6, -0.1, 0.0)}, "probabilities"),
                    ({"probabilities": (0.4, 0.3, 0.2, 0.2)}, "probabilities"),
                    ({"probabilities": (0.5, 0.5)}, "probabilities"),
                    ({"dominant": 1.5}, "dominant"), ({"dominant": 0.6, "balanced": True}, "balanced"),
                    ({"lr": 0.0}, "lr"), ({"batch": 0}, "batch"), ({"limit": "infinite"}, "limit"),
                    ({"t_max": float("nan")}, "t_max"), ({"thresholds": (0.1, -0.1)}, "thresholds")),
    ),
    Family(
        name="attn-s",
        title="linear attention, separate key-query (rank R per head)",
        spec_class=LinearSeparateSpec,
        predict="reduced_dynamics.theory.linear_attention.separate:predict",
        simulate="reduced_dynamics.reference.linear_attention:simulate_separate",
        summarise="reduced_dynamics.theory.linear_attention.separate:summarise",
        comparison_theories="reduced_dynamics.theory.linear_attention.separate:comparison_theories",
        levels="reduced_dynamics.theory.linear_attention.separate:levels",
        flow_probe="reduced_dynamics.theory.linear_attention.separate:flow_probe",
        report_extras="reduced_dynamics.theory.linear_attention.separate:report_extras",
        figures=("scripts.attn_s_staircase:make_figure", "scripts.attn_s_rank_sweep:make_figure",
                 "scripts.attn_s_init_scale:make_figure", "scripts.attn_s_components:make_figure"),
        test_spec={"dim": 2, "context": 5, "heads": 2, "rank": 1, "init_scale": 0.1, "init_rule": "normal",
                   "output_scale": "paper", "train_size": 200, "lr": 0.05, "t_max": 60.0,
                   "freeze_off_manifold": True},
        bad_inputs=(({"dim": 0}, "dim"), ({"rank": 0}, "rank"), ({"rank": -1}, "rank"), ({"rank": 5}, "rank"),
                    ({"rank": 1.5}, "rank"), ({"heads": 0}, "heads"), ({"context": 0}, "context"),
                    ({"init_rule": "xavier"}, "init_rule"), ({"init_scale": -1.0}, "init_scale"),
                    ({"init_scale": float("nan")}, "init_scale"), ({"train_size": 0}, "train_size"),
                    ({"lr": 0.0}, "lr"), ({"steps": 2.5}, "steps"), ({"t_max": -3.0}, "t_max"),
                    ({"eigenvalues": (1.0, 2.0)}, "eigenvalues"), ({"covariance": "wishart"}, "covariance"),
                    ({"output_scale": "half"}, "output_scale"), ({"freeze_off_manifold": "yes"},
                                                                 "freeze_off_manifold")),
    ),
    Family(
        name="sparse",
        title="multi-head linear attention, in-context sparse regression (risk against depth)",
        spec_class=SparseSpec,
        predict="reduced_dynamics.theory.sparse.multihead:predict",
        simulate="reduced_dynamics.reference.sparse_multihead:simulate",
        summarise="reduced_dynamics.theory.sparse.multihead:summarise",
        comparison_theories="reduced_dynamics.theory.sparse.multihead:comparison_theories",
        levels="reduced_dynamics.theory.sparse.multihead:levels",
        flow_probe="reduced_dynamics.theory.sparse.multihead:flow_probe",
        figures=("scripts.sparse_depth:make_figure", "scripts.sparse_context:make_figure",
                 "scripts.sparse_heads:make_figure"),
        test_spec={"dim": 4, "sparsity": 2, "noise": 0.1, "context": 8, "nonzero_law": "rademacher",
                   "layers": 2, "heads": 2, "steps": 20, "batch": 64, "test_prompts": 300, "tune_prompts": 300,
                   "depth_points": 9, "depth_max": 64.0},
        start_tolerance=0.02,  # both start at the null predictor: risk s exactly (theory, ±1 nonzeros) vs the
                               # initialised network (init 0.05: |w_theta| ~ 1e-3) on different prompts
        bad_inputs=(({"dim": 4, "sparsity": 5}, "sparsity"), ({"sparsity": 0}, "sparsity"),
                    ({"context": 0}, "context"), ({"noise": -0.1}, "noise"),
                    ({"nonzero_law": "laplace"}, "nonzero_law"), ({"dim": 2.5}, "dim"),
                    ({"heads": 0}, "heads"), ({"layers": 0}, "layers"), ({"noise": float("nan")}, "noise"),
                    ({"optimizer": "sgd"}, "optimizer"), ({"depth_min": 2.0, "depth_max": 1.0}, "depth_max")),
        training_curve=False,
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
