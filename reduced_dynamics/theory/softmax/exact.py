"""Exact finite-N loss and gradient of the softmax-feature model in reduced coordinates (note §6, §9).

For a query of feature k the loss depends on the column m = M[:, k] and on the feature counts c of the N
context tokens only (SF-7, SF-8); L_k(m) = E_{c ~ Mult(N, p)} ell_k(c; m) (SF-9). Three interchangeable
evaluators, all vectorised over every column at once:

* :class:`CountEnumeration` -- sum over all C(N+K-1, K-1) count vectors with log-weights from lgamma (SF-19a);
* :func:`symmetric_column` -- the one-dimensional binomial sum on the symmetric subspace (SF-19b);
* :func:`monte_carlo_columns` -- averages over sampled counts with batch standard errors (SF-19c).

Per-prompt gradient (SF-16): with g_n = a_n - delta_{nk} and gbar = sum_n a_n g_n,
d ell_k / d m_n = a_n (g_n - gbar). With the query token in the softmax (``include_query_token``, the note's
[convention] of SF-6) the denominator gains e^{m_k}, the query carries value 0 and its weight a_q adds
-a_q gbar to d ell_k / d m_k.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
from scipy.special import gammaln
from scipy.stats import binom

from ...specs import SpecError
from ...tasks.softmax_features import check_probabilities


def count_vectors(context: int, n_features: int) -> np.ndarray:
    """All count vectors c in N^K with sum c = N (stars and bars), as an array of shape (C(N+K-1, K-1), K)."""
    if context < 1:
        raise SpecError("context", "a positive integer", context)
    bars = np.array(list(itertools.combinations(range(context + n_features - 1), n_features - 1)), dtype=np.int64)
    if bars.size == 0:
        bars = np.zeros((1, 0), dtype=np.int64)
    edges = np.concatenate([np.full((bars.shape[0], 1), -1), bars,
                            np.full((bars.shape[0], 1), context + n_features - 1)], axis=1)
    return np.diff(edges, axis=1) - 1


def per_prompt_terms(counts: np.ndarray, M: np.ndarray, include_query_token: bool = False,
                     with_gradient: bool | str = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-count-vector loss ell_k(c; M[:,k]) (SF-8) and gradient d ell_k / d M[n,k] (SF-16), every column k.

    ``counts``: (S, K); ``M``: (K, K). Returns ``ell`` of shape (S, K) (column k = query feature k) and
    ``grad`` of shape (S, K, K) with grad[s, n, k] = d ell_k(c_s) / d M[n, k]. Features with c_n = 0 get
    a_n = 0. ``with_gradient=False`` skips the gradient; ``"attention"`` returns the masses a (S, n, k) in
    place of the gradient. Columns whose logit spread is below 600 use one shift per column; wider ones use log-counts
    (log 0 = -inf) with a per-prompt max shift, so no present feature underflows.
    """
    counts = np.asarray(counts, dtype=float)
    K = M.shape[0]
    diag = np.diag(M)                                           # query logit A_k
    column_shift = M.max(axis=0)
    if include_query_token:
        column_shift = np.maximum(column_shift, diag)
    if np.ptp(M, axis=0).max() < 600:
        # Fast path: one shift per column; every weight c_n e^{m_n - shift} is finite and a present feature
        # keeps a positive weight (no underflow to 0 below a logit gap of 600).
        weights = counts[:, :, None] * np.exp(M - column_shift[None, :])[None, :, :]
        query_weight = np.exp(diag - column_shift)[None, :]
    else:
        with np.errstate(divide="ignore"):
            logits = np.log(counts)[:, :, None] + M[None, :, :]     # -inf where c_n = 0
        shift = logits.max(axis=1)                                  # (S, k)
        if include_query_token:
            shift = np.maximum(shift, diag[None, :])
        weights = np.exp(logits - shift[:, None, :])
        query_weight = np.exp(diag[None, :] - shift) if include_query_token else None
    total = weights.sum(axis=1)
    if include_query_token:
        total = total + query_weight
    a = weights / total[:, None, :]                             # (S, n, k)
    eye = np.eye(K)
    g = a - eye[None, :, :]
    ell = 0.5 * np.sum(g ** 2, axis=1)                          # (S, k)
    if with_gradient == "attention":
        return ell, a
    if not with_gradient:
        return ell, None
    gbar = np.sum(a * g, axis=1)                                # (S, k)
    grad = a * (g - gbar[:, None, :])
    if include_query_token:
        a_q = query_weight / total
        grad = grad - (eye[None, :, :] * (a_q * gbar)[:, None, :])
    return ell, grad


class CountEnumeration:
    """Exact L_k and grad L_k by enumeration over count vectors (SF-19a), for fixed N, p.

    The log-weights log(N!/prod c_n! prod p_n^{c_n}) are computed once with ``gammaln``; ``evaluate(M)``
    returns (L, G) with L[k] = L_k(M[:,k]) and G[n, k] = dL_k / dM[n, k]. ``chunk`` bounds memory.
    """

    def __init__(self, probabilities, context: int, include_query_token: bool = False, chunk: int = 20000):
        self.p = check_probabilities(probabilities)
        self.context = int(context)
        self.include_query_token = bool(include_query_token)
        self.counts = count_vectors(self.context, self.p.size)
        with np.errstate(divide="ignore"):
            logw = (gammaln(self.context + 1) - gammaln(self.counts + 1).sum(axis=1)
                    + (self.counts * np.log(self.p)).sum(axis=1))
        self.weights = np.exp(logw)
        self.chunk = int(chunk)

    def evaluate(self, M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        M = np.asarray(M, dtype=float)
        K = self.p.size
        L = np.zeros(K)
        G = np.zeros((K, K))
        for start in range(0, len(self.counts), self.chunk):
            sl = slice(start, start + self.chunk)
            ell, grad = per_prompt_terms(self.counts[sl], M, self.include_query_token)
            w = self.weights[sl]
            L += w @ ell
            G += np.tensordot(w, grad, axes=(0, 0))
        return L, G

    def losses(self, M: np.ndarray) -> np.ndarray:
        """L_k(M[:,k]) for every k (SF-9, SF-19a), without the gradient."""
        M = np.asarray(M, dtype=float)
        L = np.zeros(self.p.size)
        for start in range(0, len(self.counts), self.chunk):
            sl = slice(start, start + self.chunk)
            L += self.weights[sl] @ per_prompt_terms(self.counts[sl], M, self.include_query_token, False)[0]
        return L

    def losses_and_attention(self, M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """L_k (SF-9) and the expected attention masses E[a_n(c; M[:,k])] (SF-7) in one pass; the K x K
        attention matrix has row n = token feature, column k = query feature (diagonal: own feature)."""
        M = np.asarray(M, dtype=float)
        L = np.zeros(self.p.size)
        out = np.zeros((self.p.size, self.p.size))
        for start in range(0, len(self.counts), self.chunk):
            sl = slice(start, start + self.chunk)
            ell, a = per_prompt_terms(self.counts[sl], M, self.include_query_token, "attention")
            L += self.weights[sl] @ ell
            out += np.tensordot(self.weights[sl], a, axes=(0, 0))
        return L, out

    def flow_rhs(self, M: np.ndarray) -> np.ndarray:
        """dM/dt = -G diag(p): column k moves by -p_k grad L_k (SF-13, SF-31)."""
        _, G = self.evaluate(M)
        return -G * self.p[None, :]


def symmetric_column(A, B, q: float, n_features: int, context: int, include_query_token: bool = False
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """L_k and its per-entry gradient on the symmetric subspace by the binomial sum (SF-19b).

    The query's feature has probability q, the other K-1 share 1-q equally, M[:,k] = (A, B, ..., B).
    c = c_k ~ Bin(N, q), Z(c) = c e^A + (N-c) e^B (+ e^A with the query token), a(c) = c e^A / Z(c),
    E[sum_{n != k} c_n^2 | c_k = c] = (N-c)(1 + (N-c-1)/(K-1)). Returns (L, dL/dA, dL/dB_n) where dL/dB_n is
    the partial with respect to ONE off-target entry; by (SF-15) dL/dB_n = -dL/dA / (K-1).
    ``A`` and ``B`` may be arrays of equal shape (evaluated elementwise).
    """
    A = np.asarray(A, dtype=float)[..., None]
    B = np.asarray(B, dtype=float)[..., None]
    N = int(context)
    c = np.arange(N + 1, dtype=float)
    w = binom.pmf(c, N, q)
    shift = np.maximum(A, B)
    eA, eB = np.exp(A - shift), np.exp(B - shift)
    Z = c * eA + (N - c) * eB
    if include_query_token:
        Z = Z + eA
    a_k = c * eA / Z
    sum_sq_other = (N - c) * (1.0 + (N - c - 1.0) / (n_features - 1))
    off_sq = eB ** 2 * sum_sq_other / Z ** 2                    # E[sum_{n != k} a_n^2 | c_k]
    ell = 0.5 * ((1.0 - a_k) ** 2 + off_sq)
    S = a_k ** 2 + off_sq                                       # sum_n a_n^2
    # d ell / d m_k = a_k (g_k - gbar) - a_q gbar, g_k = a_k - 1, gbar = S - a_k (SF-16 with the query term).
    dA = a_k * (a_k - 1.0 - (S - a_k))
    if include_query_token:
        dA = dA - (eA / Z) * (S - a_k)
    L = ell @ w
    gA = dA @ w
    return L, gA, -gA / (n_features - 1)


def monte_carlo_columns(M: np.ndarray, probabilities, context: int, prompts_per_batch: int, batches: int,
                        rng: np.random.Generator, include_query_token: bool = False):
    """Count-only Monte Carlo of L_k and grad L_k (SF-19c): mean over batches and batch standard error.

    Counts of each batch are drawn from Mult(N, p) (w integrated out by SF-8). Every column uses the same
    counts, which is allowed because the query's feature does not enter the count law (SF-2).
    Returns (L_mean, L_se, G_mean, G_se).
    """
    from ...tasks.softmax_features import sample_counts

    p = check_probabilities(probabilities)
    Ls, Gs = [], []
    for _ in range(int(batches)):
        ell, grad = per_prompt_terms(sample_counts(p, context, prompts_per_batch, rng), np.asarray(M, float),
                                     include_query_token)
        Ls.append(ell.mean(axis=0))
        Gs.append(grad.mean(axis=0))
    Ls, Gs = np.array(Ls), np.array(Gs)
    root = math.sqrt(len(Ls))
    return Ls.mean(0), Ls.std(0, ddof=1) / root, Gs.mean(0), Gs.std(0, ddof=1) / root


def symmetric_floor(q: float, n_features: int, context: int) -> float:
    """Irreducible loss as A_k -> infinity on the symmetric subspace (SF-32).

    (1-q)^N (1/2) [1 + E[sum_{n != k} c_n^2 | c_k = 0] / N^2], with the conditional second moment of
    (SF-19b) at c_k = 0; for the balanced case this is (1/2)(1-q)^N [1 + 1/N + (N-1)/(N (K-1))].
    """
    N = int(context)
    return (1 - q) ** N * 0.5 * (1.0 + N * (1.0 + (N - 1.0) / (n_features - 1)) / N ** 2)
