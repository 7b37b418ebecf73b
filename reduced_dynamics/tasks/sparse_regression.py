"""The neutral problem definition of the sparse family: prompts of in-context sparse linear regression.

Implements the data model of the theory note ``sparse_multihead.md`` §1: the prompt law (SM-1), the sparse
task prior with a Rademacher or Gaussian nonzero law (SM-2), and the context statistics (SM-3). Both the
predict side (``reduced_dynamics.theory``) and the NumPy witness (``reduced_dynamics.reference``) import
this module; it imports nothing of either.

The samplers take a :class:`reduced_dynamics.specs.SparseSpec` (the task fields ``dim``, ``sparsity``,
``noise``, ``context`` and ``nonzero_law``; the initial weights also read the model fields) and a
``numpy.random.Generator``. :func:`draw` is where those generators come from: the named streams of
``spec.seed`` that theory and reference share.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..specs import SparseSpec, SpecError, positive_int
from . import streams


@dataclass(frozen=True)
class Prompts:
    """A batch of ``B`` prompts (SM-1): context ``X`` (B, n, d) with rows x_i, labels ``y`` (B, n), query
    ``xq`` (B, d) with label ``yq`` (B,), and the task vectors ``w`` (B, d) that generated them."""

    X: np.ndarray
    y: np.ndarray
    xq: np.ndarray
    yq: np.ndarray
    w: np.ndarray

    @property
    def count(self) -> int:
        return self.X.shape[0]


def _check_spec(spec: SparseSpec) -> None:
    if not isinstance(spec, SparseSpec):
        raise SpecError("spec", "a SparseSpec", type(spec).__name__)


def sample_tasks(spec: SparseSpec, count: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``count`` task vectors w* (SM-2): a uniform s-subset support, nonzeros from the nonzero law.

    Under both laws E||w*||^2 = s. Returns an array of shape (count, d).
    """
    _check_spec(spec)
    count = positive_int("count", count)
    d, s = spec.dim, spec.sparsity
    # uniform s-subsets: the s smallest of d iid uniform keys per row
    support = np.argsort(rng.random((count, d)), axis=1)[:, :s]
    if spec.nonzero_law == "rademacher":
        values = rng.choice(np.array([-1.0, 1.0]), size=(count, s))
    else:  # "gaussian" (validated by the spec)
        values = rng.standard_normal((count, s))
    w = np.zeros((count, d))
    np.put_along_axis(w, support, values, axis=1)
    return w


def sample_prompts(spec: SparseSpec, count: int, rng: np.random.Generator,
                   tasks: np.ndarray | None = None) -> Prompts:
    """Draw ``count`` prompts (SM-1): x_i, x_q ~ N(0, I_d), y = <w*, x> + N(0, sigma^2) noise.

    ``tasks`` (count, d) fixes w* (e.g. one fixed w* repeated, as in SM-C8); otherwise it is drawn from the
    prior (SM-2).
    """
    _check_spec(spec)
    count = positive_int("count", count)
    d, n, sigma = spec.dim, spec.context, spec.noise
    if tasks is None:
        w = sample_tasks(spec, count, rng)
    else:
        w = np.asarray(tasks, dtype=float)
        if w.shape != (count, d) or not np.all(np.isfinite(w)):
            raise SpecError("tasks", f"a finite array of shape {(count, d)}", w.shape)
    X = rng.standard_normal((count, n, d))
    xq = rng.standard_normal((count, d))
    y = np.einsum("bnd,bd->bn", X, w) + sigma * rng.standard_normal((count, n))
    yq = np.einsum("bd,bd->b", xq, w) + sigma * rng.standard_normal(count)
    return Prompts(X=X, y=y, xq=xq, yq=yq, w=w)


def initial_weights(spec: SparseSpec, rng: np.random.Generator, heads: int | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Entrywise N(0, init_scale^2) initial P and Q of shape (L, h, D, D), D = d + 1 + d_s (§2.5); P first.
    ``heads`` overrides spec.heads (e.g. the h = 1 comparison model of SM-C19)."""
    _check_spec(spec)
    h = spec.heads if heads is None else heads
    shape = (spec.layers, h, spec.dim + 1 + spec.scratch, spec.dim + 1 + spec.scratch)
    return spec.init_scale * rng.standard_normal(shape), spec.init_scale * rng.standard_normal(shape)


# The family's named streams, in spawn order. "train" and "evaluation" are the two children the reference has
# always spawned (so trained-model numbers are unchanged); append new names at the end.
STREAMS = ("train", "evaluation", "moments")


@dataclass(frozen=True)
class Problem:
    """One draw of the sparse problem from ``spec.seed``, shared by the predict side and the reference.

    ``init``: initial (P, Q) of the trained model (drawn first from the training stream); ``train``: the rest of
    the training stream, one fresh batch per step; ``evaluation``: the reference's fixed evaluation prompts and
    then its probe prompts; ``moments``: the prior averages of the restricted flow (SM-38). ``test_prompts``
    and ``tune_prompts``: the predict side's ``spec.test_prompts`` risk-estimation prompts and then its
    ``spec.tune_prompts`` separate tuning prompts (§4), in that order from the seed's root generator, as the
    SM-C12 numbers were measured (a stream of their own: no count of theirs changes the training run).
    """

    spec: SparseSpec
    init: tuple[np.ndarray, np.ndarray]
    train: np.random.Generator
    evaluation: np.random.Generator
    moments: np.random.Generator

    @cached_property
    def _risk_prompts(self) -> tuple[Prompts, Prompts]:
        rng = np.random.default_rng(self.spec.seed)
        test = sample_prompts(self.spec, self.spec.test_prompts, rng)
        return test, sample_prompts(self.spec, self.spec.tune_prompts, rng)

    @property
    def test_prompts(self) -> Prompts:
        return self._risk_prompts[0]

    @property
    def tune_prompts(self) -> Prompts:
        return self._risk_prompts[1]


def draw(spec: SparseSpec) -> Problem:
    """The problem of ``spec``: every random draw of the family starts here (streams of :data:`STREAMS`)."""
    _check_spec(spec)
    rngs = streams(spec.seed, STREAMS)
    return Problem(spec=spec, init=initial_weights(spec, rngs["train"]), **rngs)


def context_statistics(prompts: Prompts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The context statistics (SM-3): S = X^T X / n (B, d, d), r = X^T y / n (B, d), q = y^T y / n (B,)."""
    X, y = prompts.X, prompts.y
    n = X.shape[1]
    S = np.einsum("bni,bnj->bij", X, X) / n
    r = np.einsum("bni,bn->bi", X, y) / n
    q = np.einsum("bn,bn->b", y, y) / n
    return S, r, q


def excess_risk(w_hat: np.ndarray, w_star: np.ndarray) -> np.ndarray:
    """Per-prompt excess risk of a predictor linear in x_q (SM-6): ||w_hat - w*||^2 (last axis summed)."""
    return np.sum((w_hat - w_star) ** 2, axis=-1)


def mean_and_stderr(values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Monte-Carlo mean and its standard error along ``axis`` (§1.3: every risk is a mean with its s.e.)."""
    values = np.asarray(values, dtype=float)
    count = values.shape[axis]
    mean = values.mean(axis=axis)
    stderr = values.std(axis=axis, ddof=1) / np.sqrt(count) if count > 1 else np.full_like(mean, np.nan)
    return mean, stderr


# The named settings of the note's checks (§9, SM-C12): (a) noisy, d < n; (b) low noise, n < d; (c) n = 3d with
# N(0,1) nonzeros, where PtO does not help. (c) is also the trained-model setting of SM-C19.
NOTE_SETTINGS = {
    "a": SparseSpec(dim=32, sparsity=2, noise=0.5, context=64, nonzero_law="rademacher"),
    "b": SparseSpec(dim=32, sparsity=2, noise=0.1, context=16, nonzero_law="rademacher"),
    "c": SparseSpec(dim=8, sparsity=2, noise=0.1, context=24, nonzero_law="gaussian"),
}
