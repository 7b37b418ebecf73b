"""The in-context linear-regression problem of linear_attention.md §2 and the initial weights of §8.

Neutral ground: both the NumPy reference and the theory import this module, so that a theory curve can
start from the very same initial weights and use the very same training set as a gradient-descent run.
It implements only the problem definition (LA-1, LA-2, LA-3 and the initialisation rule of §8), no
dynamics.

Randomness: one ``numpy.random.SeedSequence(seed)`` is split into independent streams for the covariance
basis, the initial weights and the training set, so drawing or not drawing the training set (population
theory) never changes the initial weights.
"""
from __future__ import annotations

from dataclasses import dataclass

import math

import numpy as np

from ..events import first_crossing_below
from . import streams as seed_streams


@dataclass(frozen=True)
class Covariance:
    """Lambda = E diag(eigenvalues) E^T with eigenvalues sorted in decreasing order (§1)."""
    eigenvalues: np.ndarray   # (D,), decreasing
    basis: np.ndarray         # (D, D) orthogonal, columns are eigenvectors

    @property
    def matrix(self) -> np.ndarray:
        return (self.basis * self.eigenvalues) @ self.basis.T

    @property
    def trace(self) -> float:
        return float(np.sum(self.eigenvalues))


@dataclass(frozen=True)
class TrainingSet:
    """P sequences: contexts x (P, N, D), labels y (P, N), queries xq (P, D), targets yq (P,), tasks w (P, D)."""
    x: np.ndarray
    y: np.ndarray
    xq: np.ndarray
    yq: np.ndarray
    w: np.ndarray


STREAMS = ("basis", "init", "data", "test", "task", "batch")   # append new names at the end: existing draws stay the same


def streams(seed: int) -> dict[str, np.random.Generator]:
    return seed_streams(seed, STREAMS)


def batch_order_rng(seed: int, batch_seed: int) -> np.random.Generator:
    """The generator of the minibatch order (or of the online prompts): child ``batch_seed`` of the "batch"
    stream of ``seed``. The weights and the training set depend on ``seed`` only, so batch seeds 0..15 are
    sixteen minibatch orders from the same weights and set."""
    child = np.random.SeedSequence(int(seed), spawn_key=(STREAMS.index("batch"), int(batch_seed)))
    return np.random.default_rng(child)


SAMPLINGS = ("replacement", "epochs", "online")


class MinibatchOrder:
    """Which prompts each SGD step sees (sgd.md, SGD-1): ``replacement`` (B indices uniform with replacement
    from the P prompts, independent across steps), ``epochs`` (a fresh random permutation of the P prompts
    every epoch, cut into consecutive batches of B; a last short remainder is dropped, the next epoch
    starts) or ``online`` (fresh prompts from the law, ``None`` here: the caller draws them). Indices in a
    batch are sorted (a batch is a set; sorting makes B = P with epochs exactly the full batch)."""

    def __init__(self, sampling: str, batch_size: int, size: int, rng: np.random.Generator):
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling: expected one of {', '.join(SAMPLINGS)}, got {sampling!r}")
        if sampling != "online" and batch_size > size:
            raise ValueError(f"batch_size {batch_size} exceeds the training set ({size} prompts)")
        self.sampling, self.B, self.P, self.rng = sampling, int(batch_size), int(size), rng
        self._perm, self._pos = None, 0

    def next(self) -> np.ndarray | None:
        if self.sampling == "online":
            return None
        if self.sampling == "replacement":
            return np.sort(self.rng.integers(0, self.P, size=self.B))
        if self._perm is None or self._pos + self.B > self.P:
            self._perm, self._pos = self.rng.permutation(self.P), 0
        idx = self._perm[self._pos:self._pos + self.B]
        self._pos += self.B
        return np.sort(idx)


def eigenvalues_for(kind: str, dim: int, given: tuple[float, ...] | None = None) -> np.ndarray:
    """'linear': lambda_d proportional to d with trace 1 (the reference code's choice, §2); 'identity': all 1.
    Explicit eigenvalues override ``kind``. Returned in decreasing order."""
    if given is not None:
        return np.sort(np.asarray(given, dtype=float))[::-1]
    if kind == "identity":
        return np.ones(dim)
    if kind == "linear":
        return np.arange(dim, 0, -1, dtype=float) / (dim * (dim + 1) / 2)
    raise ValueError(f"covariance: expected 'identity' or 'linear', got {kind!r}")


def random_orthogonal(dim: int, rng: np.random.Generator) -> np.ndarray:
    """Haar-random orthogonal matrix (QR of a Gaussian matrix with the sign convention fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))


def draw_covariance(kind: str, dim: int, given: tuple[float, ...] | None, rng: np.random.Generator) -> Covariance:
    return Covariance(eigenvalues_for(kind, dim, given), random_orthogonal(dim, rng))


def spec_covariance(spec, rngs: dict) -> Covariance:
    """The covariance a linear-attention spec's seed draws: its spectrum (``covariance``, ``eigenvalues``)
    in a basis from the ``basis`` stream of ``streams(spec.seed)``, identical for theory and reference."""
    return draw_covariance(spec.covariance, spec.dim, spec.eigenvalues, rngs["basis"])


def draw_training_set(cov: Covariance, context: int, size: int, rng: np.random.Generator,
                      centre_inputs: bool = False, whiten_tasks: bool = False) -> TrainingSet:
    """(LA-1, LA-2): x ~ N(0, Lambda), w ~ N(0, I), y = w^T x, no label noise. Optional finite-sample
    normalisation of §2: (i) centre x across sequences at every position, (ii) centre and whiten the
    task vectors so that their sample covariance (divisor P - 1) is exactly I."""
    D = cov.eigenvalues.size
    root = cov.basis * np.sqrt(cov.eigenvalues)          # x = root @ standard normal
    x = rng.standard_normal((size, context + 1, D)) @ root.T
    w = rng.standard_normal((size, D))
    if centre_inputs:
        x = x - x.mean(axis=0, keepdims=True)
    if whiten_tasks:
        w = w - w.mean(axis=0, keepdims=True)
        cov_w = w.T @ w / (size - 1)
        evals, evecs = np.linalg.eigh(cov_w)
        w = w @ (evecs / np.sqrt(evals)) @ evecs.T
    labels = np.einsum("pnd,pd->pn", x, w)
    return TrainingSet(x=x[:, :context], y=labels[:, :context], xq=x[:, context], yq=labels[:, context], w=w)


def token_matrices(data: TrainingSet) -> np.ndarray:
    """Z of (LA-3), shape (P, D+1, N+1): one column per token, query last with its label slot zeroed."""
    P, N, D = data.x.shape
    Z = np.zeros((P, D + 1, N + 1))
    Z[:, :D, :N] = data.x.transpose(0, 2, 1)
    Z[:, D, :N] = data.y
    Z[:, :D, N] = data.xq
    return Z


def merged_initial_weights(dim: int, heads: int, scale: float, rng: np.random.Generator):
    """Reference-code initialisation of ATTN_M (§8): W_i, r_i entries N(0, scale^2), then u_i = W_i[D, :D]
    and r_i^x = r_i[:D] set to zero (the invariant manifold of §3). Returns (W (H, D+1, D+1), r (H, D+1))."""
    W = scale * rng.standard_normal((heads, dim + 1, dim + 1))
    r = scale * rng.standard_normal((heads, dim + 1))
    W[:, dim, :dim] = 0.0
    r[:, :dim] = 0.0
    return W, r


def separate_initial_weights(dim: int, heads: int, rank: int, scale: float, rule: str, rng: np.random.Generator):
    """Initialisation of ATTN_S (§8), then the off-manifold blocks k_i^y = K_i[:, D] and r_i^x = r_i[:D] set
    to zero (the invariant manifold of §3).

    ``rule`` "normal": every entry N(0, scale^2). ``rule`` "code" (the reference code): key and query entries
    N(0, (scale/sqrt(n))^2) with n = H R (D+1), value entries N(0, (scale/sqrt(n_v))^2) with n_v = H (D+1)^2
    (r_i is the last row of the (D+1) x (D+1) value matrix). Draw order: K, Q, r.
    Returns (K (H, R, D+1), Q (H, R, D+1), r (H, D+1))."""
    if rule == "normal":
        std_kq = std_v = scale
    elif rule == "code":
        std_kq = scale / np.sqrt(heads * rank * (dim + 1))
        std_v = scale / np.sqrt(heads * (dim + 1) ** 2)
    else:
        raise ValueError(f"init_rule: expected 'normal' or 'code', got {rule!r}")
    K = std_kq * rng.standard_normal((heads, rank, dim + 1))
    Q = std_kq * rng.standard_normal((heads, rank, dim + 1))
    r = std_v * rng.standard_normal((heads, dim + 1))
    K[:, :, dim] = 0.0
    r[:, :dim] = 0.0
    return K, Q, r


# ---------------------------------------------------------------------------------------------------------
# The one draw of a linear-attention problem

TEST_SIZE = 5000        # sequences per test set (the authors' README)


@dataclass(frozen=True)
class Problem:
    """Everything random about a linear-attention spec, drawn once from ``streams(spec.seed)``.

    ``weights``: ATTN_M {"W", "r"} or ATTN_S {"K", "Q", "r"} (§8 rules, zeroed blocks as the code).
    ``train``: the training set from the "data" stream (None when not asked for).
    ``tests``: {"in_context", "in_weight"} test sets (LA-38) from the "test" stream ({} when not asked for).
    ``task_vector``: the fixed task w_bar of §12.1 (norm sqrt(D)) from the "task" stream.
    """
    covariance: Covariance
    weights: dict
    train: TrainingSet | None
    tests: dict
    task_vector: np.ndarray


def fixed_task_vector(dim: int, rng: np.random.Generator) -> np.ndarray:
    """§12.1: one w_bar ~ N(0, I_D), rescaled to norm sqrt(D)."""
    w = rng.standard_normal(dim)
    return w * np.sqrt(dim) / np.linalg.norm(w)


def draw_mixture(cov: Covariance, context: int, size: int, rng: np.random.Generator, icl: float,
                 task_vector: np.ndarray, centre_inputs: bool = False, whiten_tasks: bool = False) -> TrainingSet:
    """The §12.1 generator (the authors' ``gen_data_`` with fraction ``icl`` = p).

    p = 1: ``draw_training_set`` itself (LA-1, LA-2; whitening only here, as in the code).
    0 < p < 1: the first floor(p P) sequences keep w ~ N(0, I), the others get w = w_bar; y = w^T x.
    p = 0 (its own branch, not the limit p -> 0+): context labels i.i.d. N(0, 1), independent of x, and the
    query labelled by w_bar. ``w`` of the result is w_bar for p = 0 (the query's task)."""
    if icl == 1.0:
        return draw_training_set(cov, context, size, rng, centre_inputs, whiten_tasks)
    D = cov.eigenvalues.size
    root = cov.basis * np.sqrt(cov.eigenvalues)
    x = rng.standard_normal((size, context + 1, D)) @ root.T
    if centre_inputs:
        x = x - x.mean(axis=0, keepdims=True)
    if icl == 0.0:
        y = rng.standard_normal((size, context))
        w = np.broadcast_to(task_vector, (size, D)).copy()
        return TrainingSet(x=x[:, :context], y=y, xq=x[:, context], yq=x[:, context] @ task_vector, w=w)
    w = rng.standard_normal((size, D))
    w[int(size * icl):] = task_vector
    labels = np.einsum("pnd,pd->pn", x, w)
    return TrainingSet(x=x[:, :context], y=labels[:, :context], xq=x[:, context], yq=labels[:, context], w=w)


def draw(spec, train: bool | None = None, test_size: int = 0) -> Problem:
    """Covariance ("basis"), initial weights ("init"), fixed task ("task"), training set ("data", if ``train``;
    default: when ``spec.train_size`` is given; size ``spec.sample_size``) and, if ``test_size`` > 0, the
    in-context then the in-weight test set ("test"). Each stream draws in the same order as always, so every
    existing number is unchanged. The in-context test set is the p = 1 law with the spec's centring and
    whitening (at p = 1, no centring: the same prompts as ``held_out_prompts`` of attn-s); the in-weight one
    is the p = 0 law (LA-38)."""
    rngs = streams(spec.seed)
    cov = spec_covariance(spec, rngs)
    if getattr(spec, "model", "") == "attn-s":
        K, Q, r = separate_initial_weights(spec.dim, spec.heads, spec.rank, spec.init_scale, spec.init_rule,
                                           rngs["init"])
        weights = {"K": K, "Q": Q, "r": r}
    else:
        W, r = merged_initial_weights(spec.dim, spec.heads, spec.init_scale, rngs["init"])
        weights = {"W": W, "r": r}
    w_bar = fixed_task_vector(spec.dim, rngs["task"])
    icl = getattr(spec, "icl", 1.0)
    data = None
    if train if train is not None else spec.train_size is not None:
        data = draw_mixture(cov, spec.context, spec.sample_size, rngs["data"], icl, w_bar,
                            spec.centre_inputs, spec.whiten_tasks)
    tests = {}
    if test_size > 0:
        tests["in_context"] = draw_mixture(cov, spec.context, test_size, rngs["test"], 1.0, w_bar,
                                           spec.centre_inputs, spec.whiten_tasks)
        tests["in_weight"] = draw_mixture(cov, spec.context, test_size, rngs["test"], 0.0, w_bar,
                                          spec.centre_inputs)
    return Problem(covariance=cov, weights=weights, train=data, tests=tests, task_vector=w_bar)


# ---------------------------------------------------------------------------------------------------------
# Drop criteria of §12.11 (definitions of the measurement, applied alike to theory and reference)

def in_weight_drop_time(t: np.ndarray, L_iw: np.ndarray, dip: float = 0.1) -> float:
    """t_IW: midpoint crossing between L_IW(0) and its minimum; NaN unless the dip exceeds ``dip`` L_IW(0)."""
    L_iw = np.asarray(L_iw, dtype=float)
    low = float(np.min(L_iw))
    if not low < (1.0 - dip) * L_iw[0]:
        return math.nan
    return first_crossing_below(t, L_iw, 0.5 * (L_iw[0] + low))


def in_context_level(cov: Covariance, context: int) -> float:
    """(tau + L*)/2, L* of (LA-21): the in-context threshold of §12.8."""
    lam, N = cov.eigenvalues, context
    tau = float(lam.sum())
    lstar = float(np.sum(lam * (lam + tau) / ((N + 1) * lam + tau)))
    return 0.5 * (tau + lstar)


def in_context_drop_time(t: np.ndarray, L_ic: np.ndarray, cov: Covariance, context: int) -> float:
    """t_IC of §12.8: first time L_IC falls below (tau + L*)/2 (NaN if it never does)."""
    return first_crossing_below(t, L_ic, in_context_level(cov, context))


def drop_events(t: np.ndarray, L_ic: np.ndarray, L_iw: np.ndarray, cov: Covariance, context: int) -> dict:
    """{"in_weight_drop_time", "in_context_drop_time"} of §12.11, leaving out a drop that does not happen."""
    events = {"in_weight_drop_time": in_weight_drop_time(t, L_iw),
              "in_context_drop_time": in_context_drop_time(t, L_ic, cov, context)}
    return {key: value for key, value in events.items() if not math.isnan(value)}
