"""Problem specifications: frozen dataclasses with validation.

Every public function of the package takes one of these instead of a long list of loose numbers. The CLI
flags are generated from the dataclass fields (``reduced_dynamics.cli``), so a field's ``help`` and
``choices`` metadata is the single place where a parameter is documented.

Bad input raises :class:`SpecError`, whose message is one line naming the parameter and what was
expected. Nothing is clipped or coerced silently: ``dim=4.5`` is an error, ``dim=4.0`` is accepted as 4.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .errors import SpecError

__all__ = ["Spec", "SpecError", "param"]


def param(default: Any, help: str, choices: tuple | None = None, check: Any = None) -> Any:
    """A spec field declared once: its default, its CLI help text, and its check ``check(name, value) ->
    cleaned value`` (a validator below, e.g. ``positive_int``), applied when the spec is built. A field with
    ``choices`` and no check must be one of them. An optional field (default None) left at None is not
    checked. Rules that tie several fields together go in the spec's ``_validate``."""
    return field(default=default, metadata={"help": help, "choices": choices, "check": check})


# ---------------------------------------------------------------------------------------------------------
# Scalar validators (each returns the cleaned value or raises SpecError naming the parameter)

def positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or isinstance(value, str):
        raise SpecError(name, "a positive integer", value)
    if not math.isfinite(float(value)) or float(value) != int(value) or int(value) < 1:
        raise SpecError(name, "a positive integer", value)
    return int(value)


def at_least_two(name: str, value: Any) -> int:
    number = positive_int(name, value)
    if number < 2:
        raise SpecError(name, "an integer >= 2", value)
    return number


def nonnegative_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or isinstance(value, str):
        raise SpecError(name, "a non-negative integer", value)
    if not math.isfinite(float(value)) or float(value) != int(value) or int(value) < 0:
        raise SpecError(name, "a non-negative integer", value)
    return int(value)


def positive_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SpecError(name, "a positive finite number", value)
    x = float(value)
    if not math.isfinite(x) or x <= 0:
        raise SpecError(name, "a positive finite number", value)
    return x


def nonnegative_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SpecError(name, "a non-negative finite number", value)
    x = float(value)
    if not math.isfinite(x) or x < 0:
        raise SpecError(name, "a non-negative finite number", value)
    return x


def fraction(name: str, value: Any) -> float:
    x = nonnegative_float(name, value)
    if x > 1.0:
        raise SpecError(name, "a fraction from 0 to 1", value)
    return x


def one_of(name: str, value: Any, options: tuple) -> Any:
    if value not in options:
        raise SpecError(name, "one of " + ", ".join(map(str, options)), value)
    return value


def boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SpecError(name, "true or false", value)
    return value


def float_tuple(name: str, value: Any) -> tuple[float, ...]:
    """A sequence of finite numbers (a comma-separated string is accepted: '0.4,0.3')."""
    if isinstance(value, str):
        parts = value.split(",")
        if any(not p.strip() for p in parts):
            raise SpecError(name, "comma-separated numbers without empty items", value)
        try:
            value = [float(p) for p in parts]
        except ValueError:
            raise SpecError(name, "comma-separated numbers", value) from None
    try:
        items = tuple(value)
    except TypeError:
        raise SpecError(name, "a sequence of numbers", value) from None
    out = []
    for x in items:
        if isinstance(x, bool) or not isinstance(x, numbers.Real) or not math.isfinite(float(x)):
            raise SpecError(name, "finite numbers", value)
        out.append(float(x))
    return tuple(out)


class TrainingTime:
    """Mixin for a spec with ``lr``, ``steps``, ``t_max`` and a ClassVar ``default_t_max``: the run's final
    gradient-flow time and its number of GD steps (t = lr * step)."""

    lr: float                   # declared for the type checker only: the spec dataclass defines the fields
    steps: int | None
    t_max: float | None
    default_t_max: ClassVar[float] = 40.0

    @property
    def final_time(self) -> float:
        if self.t_max is not None:
            return self.t_max
        return self.lr * self.steps if self.steps is not None else self.default_t_max

    @property
    def gd_steps(self) -> int:
        return self.steps if self.steps is not None else int(math.ceil(self.final_time / self.lr - 1e-9))


def discretisation_param() -> Any:
    """The ``discretisation`` field of a spec whose family has a reduced GD map (finite_learning_rate.md)."""
    return param("flow", "theory at the learning rate: gradient flow, the reduced GD map at lr, or the modified "
                 "flow of L + (lr/4)|grad L|^2 (finite_learning_rate.md)", choices=("flow", "map", "modified"))


def weight_decay_param() -> Any:
    """The ``weight_decay`` field of a spec whose theory and reference both take it (weight_decay.md, WD-1): GD
    steps theta <- theta - lr (grad L + lambda theta), the flow of L + (lambda/2) |theta|^2. 0 leaves every
    number as it was."""
    return param(0.0, "weight decay lambda: GD theta <- theta - lr (grad L + lambda theta), the flow of "
                 "L + (lambda/2)|theta|^2 (weight_decay.md)", check=nonnegative_float)


def consistent_duration(spec: Any) -> None:
    """Steps and final time given together must agree (t = lr * steps): a comparison of a 5-step run
    against a 100-unit flow means nothing. And one step may not cover the whole run (lr above the final
    time): such a run is a single step, not a training curve."""
    if spec.steps is not None and spec.t_max is not None and abs(spec.lr * spec.steps - spec.t_max) > 1e-9 * spec.t_max:
        raise SpecError("t_max", f"lr * steps = {spec.lr * spec.steps:g} (or give only one of steps and t_max)",
                        spec.t_max)
    if spec.steps is None and spec.lr > spec.final_time:
        raise SpecError("lr", f"at most the final time {spec.final_time:g} (or raise --t-max): one step would "
                        "cover the whole run", spec.lr)


# ---------------------------------------------------------------------------------------------------------
# Base class

@dataclass(frozen=True)
class Spec:
    """Base of every problem spec. Subclasses set ``model`` and declare their fields with ``param``.

    Building a spec checks each field by its declared check, in declaration order, and writes the cleaned
    values (e.g. ints for integral floats) back into the frozen instance; then ``_validate`` applies the
    rules between fields (it sees the cleaned values) and may return further cleaned values.
    """

    model: ClassVar[str] = ""
    by_model: ClassVar[dict[str, type["Spec"]]] = {}      # model name -> its spec class (filled as classes are defined)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("model"):
            Spec.by_model[cls.model] = cls

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.default is None:
                continue
            check, choices = f.metadata.get("check"), f.metadata.get("choices")
            if check is not None:
                object.__setattr__(self, f.name, check(f.name, value))
            elif choices:
                object.__setattr__(self, f.name, one_of(f.name, value, choices))
        for key, value in (self._validate() or {}).items():
            object.__setattr__(self, key, value)

    def _validate(self) -> dict[str, Any]:
        """Rules between fields (override); each field's own check has already run."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of the fields (tuples become lists)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Spec":
        """Build from a dict of field values; unknown keys are an error (never silently dropped)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise SpecError(unknown[0], "one of the fields " + ", ".join(sorted(names)), values[unknown[0]])
        return cls(**values)

    def replace(self, **changes: Any) -> "Spec":
        return self.from_dict({**self.to_dict(), **changes})


def field_types(spec_class: type) -> dict[str, Any]:
    """Resolved type annotations of a spec class's fields (used by the CLI to parse strings)."""
    hints = typing.get_type_hints(spec_class)
    return {f.name: hints[f.name] for f in dataclasses.fields(spec_class)}


# ---------------------------------------------------------------------------------------------------------
# attn-m and attn-s: linear attention (linear_attention.md §1-§11)

DEFAULT_TRAIN_SIZE = 20000


@dataclass(frozen=True)
class LinearAttentionSpec(TrainingTime, Spec):
    """Fields, checks and derived sizes shared by the two linear-attention families (attn-m, attn-s) on
    in-context linear regression (linear_attention.md §1, §2, §4, §8). Not a model of its own."""

    dim: int = param(4, "token dimension D", check=positive_int)
    context: int = param(31, "context length N (labelled tokens; the query is extra)", check=positive_int)
    heads: int = param(8, "number of attention heads H", check=positive_int)
    init_scale: float = param(1e-3, "standard deviation sigma of the initial weights (§8)", check=positive_float)
    covariance: str = param("linear", "input covariance: identity (Lambda = I) or linear (lambda_d ~ d, trace 1)",
                            choices=("identity", "linear"))
    eigenvalues: tuple[float, ...] | None = param(
        None, "explicit covariance eigenvalues a,b,... (dim of them, positive); overrides --covariance", check=float_tuple)
    output_scale: str = param("paper", "attention output scale: paper (1/N, c = 1) or code (1, c = N)",
                              choices=("paper", "code"))
    train_size: int | None = param(
        None, f"training sequences P; predict uses population moments when omitted, simulate and compare "
              f"use {DEFAULT_TRAIN_SIZE}", check=positive_int)
    centre_inputs: bool = param(False, "centre x across the training sequences at every position (§2 (i))", check=boolean)
    whiten_tasks: bool = param(False, "centre and whiten the training task vectors (§2 (ii))", check=boolean)
    freeze_off_manifold: bool = param(False, "keep u_i and r_i^x at zero during gradient descent (§10.2 (b))", check=boolean)
    seed: int = param(0, "random seed (covariance basis, initial weights, training set)", check=nonnegative_int)
    lr: float = param(0.05, "gradient-descent learning rate eta (t = eta * step)", check=positive_float)
    steps: int | None = param(None, "gradient-descent steps (default: t_max / lr)", check=positive_int)
    t_max: float | None = param(None, "final gradient-flow time (default: lr * steps, or 40)", check=positive_float)
    discretisation: str = discretisation_param()
    weight_decay: float = weight_decay_param()
    integrator: str = param("compiled", "integrator of the flow: compiled (DOP853 in machine code, the reference) or "
                                        "stiff (LSODA on the compiled right-hand side and Jacobian: far fewer steps on "
                                        "the long late plateaus of attn-s)", choices=("compiled", "stiff"))
    icl: float = param(1.0, "fraction of training prompts with a random task; the rest share one fixed task "
                            "(linear_attention_iwl.md §12; 1 = today's task, 0 = noise context)", check=fraction)
    attention: str = param("linear", "attention: linear, or softmax over the keys (linear_attention_iwl.md §13)",
                           choices=("linear", "softmax"))
    batch_size: int | None = param(None, "prompts per gradient step (minibatch SGD, sgd.md); default: the full "
                                   "training set every step", check=positive_int)
    sampling: str = param("replacement", "how minibatches are drawn (with batch_size): replacement (B uniform "
                          "indices per step), epochs (a fresh permutation per epoch) or online (fresh prompts "
                          "from the law)", choices=("replacement", "epochs", "online"))
    batch_seed: int = param(0, "seed of the minibatch order (its own stream: the same weights and training set "
                            "for every batch_seed)", check=nonnegative_int)
    paths: int = param(256, "Monte-Carlo paths of the reduced SGD model (predict with batch_size, SGD-5)",
                       check=positive_int)

    default_t_max: ClassVar[float] = 40.0

    def _validate(self) -> dict[str, Any]:
        if self.eigenvalues is not None and (len(self.eigenvalues) != self.dim or any(x <= 0 for x in self.eigenvalues)):
            raise SpecError("eigenvalues", f"{self.dim} positive numbers (one per dimension)", self.eigenvalues)
        if self.whiten_tasks and self.train_size is not None and self.train_size <= self.dim:
            raise SpecError("train_size", "more sequences than dimensions when whitening tasks", self.train_size)
        if self.batch_size is not None and self.sampling != "online" and self.batch_size > self.sample_size:
            raise SpecError("batch_size", f"at most the training set's {self.sample_size} prompts (or --sampling "
                                          "online)", self.batch_size)
        if self.batch_size is not None and self.sampling == "online" and (self.centre_inputs or self.whiten_tasks):
            raise SpecError("sampling", "replacement or epochs (centring and whitening are set-wide: online "
                                        "batches have no set)", self.sampling)
        consistent_duration(self)
        return {}

    @property
    def c(self) -> float:
        """Output scale c = kappa N: 1 for the paper's model, N for the code's (§1)."""
        return 1.0 if self.output_scale == "paper" else float(self.context)

    @property
    def kappa(self) -> float:
        return self.c / self.context

    @property
    def sample_size(self) -> int:
        return self.train_size if self.train_size is not None else DEFAULT_TRAIN_SIZE


@dataclass(frozen=True)
class LinearMergedSpec(LinearAttentionSpec):
    """Merged key-query linear attention on in-context linear regression (ATTN_M).

    Defaults are check C6 of linear_attention.md §11: D = 4, N = 31, eigenvalues (0.4, 0.3, 0.2, 0.1) in a
    random basis, paper output scale (c = 1), H = 8, init scale 1e-3, learning rate 0.05, P = 20000.
    """

    model: ClassVar[str] = "attn-m"

    all_weights: bool = param(False, "theory moves every weight that reaches the prediction (the full-parameter "
                              "flow LA-44 on the same moments: what unfrozen GD follows, leakage included), not "
                              "only the invariant manifold (LA-22); always so with icl < 1", check=boolean)


# ---------------------------------------------------------------------------------------------------------
# softmax: one-layer softmax attention on orthonormal features (softmax_features.md)

@dataclass(frozen=True)
class SoftmaxFeaturesSpec(TrainingTime, Spec):
    """Softmax attention on feature-structured prompts (softmax_features.md, SF-1 to SF-11).

    Defaults are check 10 of the note's §11: K = 4 balanced features in d = 6, N = 30, lr 1, 300 steps,
    fresh batches of 4000 prompts. At most one of ``probabilities``, ``balanced``, ``dominant`` may be given;
    none means balanced (SF-3). Loss convention (SF-9): L = (1/2) E[(yhat - y_q)^2]; time t = lr * step.
    """

    model: ClassVar[str] = "softmax"
    default_t_max: ClassVar[float] = 300.0

    features: int = param(4, "number of features K (at least 2)", check=at_least_two)
    dim: int = param(6, "ambient dimension d of the tokens (at least K)", check=positive_int)
    context: int = param(30, "context length N (labelled tokens; the query is extra)", check=positive_int)
    probabilities: tuple[float, ...] | None = param(
        None, "feature probabilities p1,p2,... (K positive numbers summing to one)", check=float_tuple)
    balanced: bool = param(False, "balanced features, p_k = 1/K (the default when no probabilities are given)", check=boolean)
    dominant: float | None = param(None, "one dominant feature with probability p1, the others sharing 1 - p1", check=positive_float)
    limit: str = param("exact", "theory: exact finite-N flow (SF-13, SF-19a) or the large-N flow (SF-21)",
                       choices=("exact", "large-n"))
    include_query_token: bool = param(False, "let the query token compete in the softmax (SF-6 variant)", check=boolean)
    lr: float = param(1.0, "gradient-descent learning rate eta (t = eta * step)", check=positive_float)
    steps: int | None = param(None, "gradient-descent steps (default: t_max / lr, or 300)", check=positive_int)
    t_max: float | None = param(None, "final gradient-flow time (default: lr * steps, or 300)", check=positive_float)
    discretisation: str = discretisation_param()
    weight_decay: float = weight_decay_param()
    batch: int = param(4000, "prompts per gradient-descent step", check=positive_int)
    fresh_batches: bool = param(True, "draw a fresh batch every step (else one fixed batch)", check=boolean)
    eval_prompts: int = param(10000, "contexts (each paired with every query feature) for the GD loss curves", check=positive_int)
    record_every: int = param(1, "record the GD state every this many steps", check=positive_int)
    thresholds: tuple[float, ...] | None = param(None, "loss levels for the threshold times (default 0.1,0.05,0.02)", check=float_tuple)
    seed: int = param(0, "random seed (features, prompts)", check=nonnegative_int)

    def _validate(self) -> dict[str, Any]:
        K = self.features
        if self.dim < K:
            raise SpecError("dim", f"an integer >= features ({K})", self.dim)
        given = [name for name, value in (("probabilities", self.probabilities), ("dominant", self.dominant))
                 if value is not None] + (["balanced"] if self.balanced else [])
        if len(given) > 1:
            raise SpecError(given[1], "only one of probabilities, balanced, dominant", f"both {given[0]} and {given[1]}")
        if self.probabilities is not None:
            p = self.probabilities
            if len(p) != K:
                raise SpecError("probabilities", f"{K} numbers (one per feature)", p)
            if any(x <= 0 for x in p):
                raise SpecError("probabilities", "positive probabilities", p)
            if abs(sum(p) - 1.0) > 1e-9:
                raise SpecError("probabilities", "probabilities summing to one", f"sum {sum(p):.12g}")
        if self.dominant is not None and not 1.0 / K < self.dominant < 1.0:
            raise SpecError("dominant", f"a probability between 1/K = {1.0 / K:.4g} and 1 (the dominant feature is the "
                                        f"most frequent)", self.dominant)
        if self.thresholds is not None and (not self.thresholds or any(x <= 0 for x in self.thresholds)):
            raise SpecError("thresholds", "positive loss levels", self.thresholds)
        consistent_duration(self)
        return {}

    @property
    def p(self) -> tuple[float, ...]:
        """Feature probabilities (SF-3): explicit, dominant (p1, (1-p1)/(K-1), ...) or balanced."""
        K = self.features
        if self.probabilities is not None:
            return tuple(self.probabilities)
        if self.dominant is not None:
            return (self.dominant,) + ((1.0 - self.dominant) / (K - 1),) * (K - 1)
        return (1.0 / K,) * K

    @property
    def levels(self) -> tuple[float, ...]:
        return self.thresholds if self.thresholds is not None else (0.1, 0.05, 0.02)


# ---------------------------------------------------------------------------------------------------------
# attn-s: separate key-query linear attention (linear_attention.md §3, §7-§11)

@dataclass(frozen=True)
class LinearSeparateSpec(LinearAttentionSpec):
    """Separate key-query linear attention on in-context linear regression (ATTN_S), rank R per head.

    Defaults are check C9 of linear_attention.md §11: D = 4, N = 31, eigenvalues (0.4, 0.3, 0.2, 0.1) in a
    random basis, the code's output scale (c = N), H = 5, R = 1, the code's initialisation rule with
    sigma = 0.01 (§8), learning rate 0.02, t = 200, P = 20000 for gradient descent. Drop times depend on
    the initial draw (§11 C9); the default seed 4 is a draw whose first three drops are well separated
    (population flow: t = 63, 89, 123), so the default run shows the staircase.
    """

    model: ClassVar[str] = "attn-s"
    default_t_max: ClassVar[float] = 200.0

    # Fields whose defaults (or meaning) differ from the shared ones keep their place; rank and init_rule
    # are new.
    heads: int = param(5, "number of attention heads H", check=positive_int)
    init_scale: float = param(1e-2, "initial scale sigma (§8): per-entry std (normal) or sigma/sqrt(fan) (code)", check=positive_float)
    output_scale: str = param("code", "attention output scale: paper (1/N, c = 1) or code (1, c = N)",
                              choices=("paper", "code"))
    freeze_off_manifold: bool = param(False, "keep k_i^y and r_i^x at zero during gradient descent (§10.2 (b))", check=boolean)
    seed: int = param(4, "random seed (covariance basis, initial weights, training set)", check=nonnegative_int)
    lr: float = param(0.02, "gradient-descent learning rate eta (t = eta * step)", check=positive_float)
    t_max: float | None = param(None, "final gradient-flow time (default: lr * steps, or 200)", check=positive_float)
    rank: int = param(1, "key/query rank R per head (1 <= R <= D)", check=positive_int)
    init_rule: str = param("code", "initialisation rule of §8: normal (every entry N(0, sigma^2)) or code "
                                   "(N(0, sigma^2/n_layer), the authors' rule)", choices=("normal", "code"))

    def _validate(self) -> dict[str, Any]:
        super()._validate()
        if self.rank > self.dim:
            raise SpecError("rank", f"an integer from 1 to dim = {self.dim}", self.rank)
        return {}



# ---------------------------------------------------------------------------------------------------------
# sparse: multi-head linear attention on in-context sparse regression (theory note sparse_multihead.md)

SPARSE_NONZERO_LAWS = ("rademacher", "gaussian")
SPARSE_OPTIMIZERS = ("adam", "gd")


@dataclass(frozen=True)
class SparseSpec(Spec):
    """In-context sparse linear regression (SM-1, SM-2) and the multi-head linear-attention model (SM-7..SM-9).

    Task fields: ``dim`` d, ``sparsity`` s (1 <= s <= d), ``noise`` sigma, ``context`` n, ``nonzero_law``.
    Model/training fields (reference side, §2.5): ``layers`` L, ``heads`` h, ``scratch`` d_s, ``steps``,
    ``optimizer``, ``lr``, ``batch``, ``init_scale``, ``clip``. Evaluation fields: ``test_prompts`` (risk
    estimates, >= 2000 per §1.3), ``tune_prompts`` (separate prompts for the one global hyper-parameter of
    each baseline, §4), ``depth_min``/``depth_max``/``depth_points`` (continuous-depth grid tau of §7).
    The defaults are the trained-model setting of §9 (SM-C19): d=8, s=2, sigma=0.1, n=24, N(0,1), L=3, h=4.
    """

    model: ClassVar[str] = "sparse"

    dim: int = param(8, "input dimension d", check=positive_int)
    sparsity: int = param(2, "number of nonzero task coefficients s (1 <= s <= d)", check=positive_int)
    noise: float = param(0.1, "label noise standard deviation sigma", check=nonnegative_float)
    context: int = param(24, "number of in-context examples n", check=positive_int)
    nonzero_law: str = param("gaussian", "law of the nonzero task coefficients", SPARSE_NONZERO_LAWS)
    layers: int = param(3, "number of attention layers L", check=positive_int)
    heads: int = param(4, "heads per layer h", check=positive_int)
    scratch: int = param(0, "zero-initialised scratch rows d_s in each token", check=nonnegative_int)
    steps: int = param(10000, "training steps of the reference model", check=nonnegative_int)
    optimizer: str = param("adam", "optimiser of the reference model (adam: §2.5 recipe; gd: plain GD)",
                           SPARSE_OPTIMIZERS)
    lr: float = param(1e-3, "learning rate of the reference optimiser", check=positive_float)
    batch: int = param(512, "fresh prompts per training step", check=positive_int)
    init_scale: float = param(0.05, "standard deviation of the N(0, init_scale^2) entrywise initialisation (> 0: at "
                                    "zero no weight ever moves)", check=positive_float)
    clip: float = param(1.0, "global gradient-norm clip (0 disables clipping)", check=nonnegative_float)
    test_prompts: int = param(2000, "prompts used to estimate each risk", check=positive_int)
    tune_prompts: int = param(1500, "separate prompts used to tune each baseline's global hyper-parameter", check=positive_int)
    depth_min: float = param(0.25, "smallest continuous depth tau on the grid", check=positive_float)
    depth_max: float = param(4096.0, "largest continuous depth tau on the grid", check=positive_float)
    depth_points: int = param(29, "number of geometric grid points in tau", check=positive_int)
    seed: int = param(0, "random seed", check=nonnegative_int)

    def _validate(self) -> dict[str, Any]:
        if self.sparsity > self.dim:
            raise SpecError("sparsity", f"at most dim = {self.dim}", self.sparsity)
        if self.depth_max < self.depth_min:
            raise SpecError("depth_max", f"at least depth_min = {self.depth_min}", self.depth_max)
        return {}

