"""Problem definition for softmax attention on feature-structured prompts (theory note softmax_features.md).

Neutral ground shared by the theory side and the NumPy reference: the random orthonormal feature set (SF-1),
the prompt sampler (SF-2) and the count sampler used by the Monte-Carlo evaluator (SF-19c). Nothing here knows
about reduced coordinates or gradients.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..specs import SoftmaxFeaturesSpec, SpecError
from . import streams


def check_probabilities(p, name: str = "probabilities") -> np.ndarray:
    """Return ``p`` as a float array if it is a valid feature distribution (SF-2), else raise SpecError.

    Valid: one-dimensional, at least two entries, every entry finite and > 0, sum equal to one within 1e-9.
    """
    arr = np.asarray(p, dtype=float)
    if arr.ndim != 1 or arr.size < 2:
        raise SpecError(name, "a list of at least two probabilities", p)
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise SpecError(name, "positive finite probabilities", tuple(arr.tolist()))
    if abs(arr.sum() - 1.0) > 1e-9:
        raise SpecError(name, "probabilities summing to one", f"sum {arr.sum():.12g}")
    return arr


def random_features(n_features: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """K orthonormal feature vectors in R^d as the rows of a K x d matrix V (SF-1).

    Taken from the Q factor of the QR decomposition of a d x d standard Gaussian matrix (sign-corrected so the
    distribution is Haar), so that ``V @ V.T = I_K``.
    """
    if n_features < 2:
        raise SpecError("features", "an integer >= 2", n_features)
    if dim < n_features:
        raise SpecError("dim", f"an integer >= features ({n_features})", dim)
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    q = q * np.sign(np.diag(r))
    return np.ascontiguousarray(q[:, :n_features].T)


@dataclass(frozen=True)
class Prompts:
    """A batch of B prompts of N context tokens (SF-2, SF-4).

    ``tokens``: B x N x d context tokens x_i; ``labels``: B x N labels y_i = <w, x_i>; ``query``: B x d query
    tokens x_q; ``target``: B targets y_q = <w, x_q>; ``context_ids``: B x N feature index of every context
    token; ``query_ids``: B feature index of every query; ``task``: B x d task vectors w.
    """

    tokens: np.ndarray
    labels: np.ndarray
    query: np.ndarray
    target: np.ndarray
    context_ids: np.ndarray
    query_ids: np.ndarray
    task: np.ndarray


def sample_feature_ids(p: np.ndarray, batch: int, context: int, rng: np.random.Generator
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Feature indices of the N context tokens (B x N) and of the query (B), i.i.d. with P(k) = p_k (SF-2)."""
    p = check_probabilities(p)
    if batch < 1:
        raise SpecError("batch", "a positive integer", batch)
    if context < 1:
        raise SpecError("context", "a positive integer", context)
    ids = rng.choice(p.size, size=(batch, context + 1), p=p)
    return ids[:, :context], ids[:, context]


def sample_prompts(features: np.ndarray, p: np.ndarray, batch: int, context: int,
                   rng: np.random.Generator) -> Prompts:
    """Draw B prompts (SF-2): tokens from the rows of ``features`` (K x d), task w ~ N(0, I_d), no label noise."""
    features = np.asarray(features, dtype=float)
    p = check_probabilities(p)
    if features.ndim != 2 or features.shape[0] != p.size:
        raise SpecError("features", f"a K x d matrix with K = {p.size} rows", features.shape)
    context_ids, query_ids = sample_feature_ids(p, batch, context, rng)
    task = rng.standard_normal((batch, features.shape[1]))
    tokens = features[context_ids]
    query = features[query_ids]
    labels = np.einsum("bnd,bd->bn", tokens, task)
    target = np.einsum("bd,bd->b", query, task)
    return Prompts(tokens, labels, query, target, context_ids, query_ids, task)


def sample_counts(p: np.ndarray, context: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Feature counts c ~ Multinomial(N, p) of ``size`` prompts (size x K), the only randomness of (SF-19c)."""
    p = check_probabilities(p)
    if context < 1:
        raise SpecError("context", "a positive integer", context)
    return rng.multinomial(context, p, size=size)


# The family's named streams, in spawn order (append new names at the end: a stream is fixed by its position).
STREAMS = ("features", "evaluation", "training")


@dataclass(frozen=True)
class Problem:
    """One draw of the softmax-feature problem from ``spec.seed`` (SF-1, SF-2, SF-10), shared by theory and reference.

    ``features`` (K x d, orthonormal rows), ``probabilities`` (K), ``initial_Q`` (d x d zeros, SF-10; the theory
    starts from M(0) = V Q(0) V^T); ``evaluation``: the generator of the fixed evaluation contexts; ``training``:
    the generator of the training prompts (the fixed batch, or one fresh batch per step). Each stream is its own
    child of the seed, so the number of evaluation contexts never changes the training run.
    """

    features: np.ndarray
    probabilities: np.ndarray
    initial_Q: np.ndarray
    evaluation: np.random.Generator
    training: np.random.Generator


def draw(spec: SoftmaxFeaturesSpec) -> Problem:
    """The problem of ``spec``: every random draw of the family starts here (streams of :data:`STREAMS`)."""
    rngs = streams(spec.seed, STREAMS)
    features = random_features(spec.features, spec.dim, rngs["features"])
    return Problem(features=features, probabilities=check_probabilities(spec.p),
                   initial_Q=np.zeros((spec.dim, spec.dim)), evaluation=rngs["evaluation"],
                   training=rngs["training"])


def balanced_probabilities(n_features: int) -> tuple[float, ...]:
    """p_k = 1/K (SF-3, balanced)."""
    return (1.0 / n_features,) * n_features


def dominant_probabilities(n_features: int, p1: float) -> tuple[float, ...]:
    """One dominant feature p_1, the other K-1 sharing 1 - p_1 equally (SF-3, imbalanced)."""
    if not 0.0 < p1 < 1.0:
        raise SpecError("dominant", "a probability strictly between 0 and 1", p1)
    rest = (1.0 - p1) / (n_features - 1)
    return (float(p1),) + (rest,) * (n_features - 1)


def curve_events(t: np.ndarray, loss_k: np.ndarray, M: np.ndarray, attention: np.ndarray, p,
                 thresholds) -> dict:
    """Events of a softmax-feature run, computed the same way from theory and reference curves.

    ``loss_k`` (T x K), ``M`` (T x K x K), ``attention`` (T x K x K): attention[:, n, k] = attention mass of a
    query of feature k on tokens of feature n. Returns

    * ``threshold_times``: per feature k, the first times L_k falls to each threshold (linear interpolation);
    * ``half_attention_times``: per feature, the time its own-feature attention reaches 1/2 (end of phase 1,
      SF-28; event E4 of §8.2);
    * ``phases``: for every feature k other than the dominant one (largest p, if unique), the note's phase
      boundaries (§8.2): E1 = maximum of B_{k,o} (o the first other non-dominant feature; parabolic refinement), E2 = B_{k,o} back to
      zero, E3 = own attention overtakes the attention on the dominant feature, E4 = own attention 1/2.
    NaN where an event does not happen on the curve.
    """
    from ..events import first_crossing_below

    p = np.asarray(p, dtype=float)
    K = p.size
    rising = lambda y, level: first_crossing_below(t, -np.asarray(y), -level)  # noqa: E731
    out = {"threshold_times": [[first_crossing_below(t, loss_k[:, k], eps) for eps in thresholds]
                               for k in range(K)],
           "half_attention_times": [rising(attention[:, k, k], 0.5) for k in range(K)]}
    top = np.flatnonzero(p == p.max())
    phases = {}
    if top.size == 1:
        dom = int(top[0])
        for k in range(K):
            if k == dom:
                continue
            others = [o for o in range(K) if o not in (k, dom)]
            e1 = e2 = float("nan")
            if others:
                b = M[:, others[0], k]
                i = int(np.argmax(b))
                if 0 < i < len(t) - 1:
                    e1 = _vertex(t[i - 1:i + 2], b[i - 1:i + 2])
                    e2 = first_crossing_below(t[i:], b[i:], 0.0)
            e3 = rising(attention[:, k, k] - attention[:, dom, k], 0.0)
            phases[f"feature_{k + 1}"] = {"E1": e1, "E2": e2, "E3": e3, "E4": rising(attention[:, k, k], 0.5)}
    out["phases"] = phases
    return out


def _vertex(t3: np.ndarray, y3: np.ndarray) -> float:
    """Abscissa of the parabola through three points around a sampled maximum (refines E1 below the grid)."""
    (t0, t1, t2), (y0, y1, y2) = t3, y3
    denominator = (t1 - t0) * (y1 - y2) - (t1 - t2) * (y1 - y0)
    if denominator == 0:
        return float(t1)
    return float(t1 - 0.5 * ((t1 - t0) ** 2 * (y1 - y2) - (t1 - t2) ** 2 * (y1 - y0)) / denominator)
