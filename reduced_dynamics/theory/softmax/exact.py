"""Exact finite-N loss and gradient of the softmax-feature model in reduced coordinates (note §6, §9).

For a query of feature k the loss depends on the column m = M[:, k] and on the feature counts c of the N
context tokens only (SF-7, SF-8); L_k(m) = E_{c ~ Mult(N, p)} ell_k(c; m) (SF-9). Four interchangeable
evaluators, all vectorised over every column at once:

* :class:`CountEnumeration` -- sum over all C(N+K-1, K-1) count vectors with log-weights from lgamma (SF-19a);
  the small-N oracle;
* :class:`LaplaceQuadrature` -- the same sums as one-dimensional integrals over the count generating function
  (Laplace transform of 1/Z^r), cost independent of N; what the flows use;
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


class LaplaceQuadrature:
    """Exact L_k, grad L_k and E[a_n] for any N, p and M without enumerating counts (SF-19a's sums, N-free cost).

    The same expectations as :class:`CountEnumeration` (SF-7, SF-8, SF-9, SF-16), by two identities
    (derived here, not in the note; defined as SF-19d in docs/theory/softmax_features.md):

    * Laplace: 1/Z^r = (1/(r-1)!) int_0^inf s^{r-1} e^{-sZ} ds for Z = sum_n c_n x_n (+ x_k with the query
      token), x_n = e^{m_n - max m} (Z > 0 because N >= 1);
    * multinomial generating function E[prod_j u_j^{c_j}] = (sum_j p_j u_j)^N at u_j = e^{-s x_j}: with
      S(s) = sum_j p_j e^{-s x_j}, the tilted probabilities rho_j = p_j e^{-s x_j} / S and N_r = N!/(N-r)!,
      E[c_a e^{-sZ}] = N rho_a S^N, E[c_a c_b e^{-sZ}] = (N_2 rho_a rho_b + delta_ab N rho_a) S^N,
      E[c_a c_b c_c e^{-sZ}] = (N_3 rho_a rho_b rho_c + N_2 (delta_ab rho_a rho_c + delta_ac rho_a rho_b
      + delta_bc rho_a rho_b) + delta_abc N rho_a) S^N.

    So every term of (SF-8) and (SF-16) is a one-dimensional integral over s of a polynomial in rho and
    y_n = s x_n (degree <= 3) times S^N. With u = log s the integrand is entire and decays like e^{u} at
    u -> -inf and double-exponentially at u -> +inf; the trapezoid rule with step ``step`` = 0.2 over
    [-20 - log N, log 60 - min(m - max m)] (the attention's e^{u} tail below the first node added as a geometric
    series; the loss and gradient start at s^2) agrees with SF-19a to ~1e-14 relative (measured; step 0.25
    gives 7e-13 on the gradient, 0.3 gives 3e-10). Cost: O(Q K^2) per column (O(Q K^3) for the gradient's
    sums over a third feature, as small matrix products), Q ~ (24 + logit spread) / step nodes, independent of
    N; everything is done in logs, so any logit spread works. The gradient is written without cancelling
    terms (:meth:`_gradient`), so it keeps its relative precision in saturated columns too: 5e-15 against a
    40-digit enumeration where the float enumeration (SF-19a) is off by up to 5e-9 and SF-19b loses digits alike.
    Interface as :class:`CountEnumeration`; every method also takes a stack of states (..., K, K).
    """

    def __init__(self, probabilities, context: int, include_query_token: bool = False, step: float = 0.2):
        self.p = check_probabilities(probabilities)
        self.context = int(context)
        if self.context < 1:
            raise SpecError("context", "a positive integer", context)
        self.include_query_token = bool(include_query_token)
        self.step = float(step)
        self.log_p = np.log(self.p)
        self.p_excess = math.fsum(self.p) - 1.0                 # check_probabilities allows |sum p - 1| <= 1e-9
        self.off = 1.0 - np.eye(self.p.size)                    # mask n != k

    def _nodes(self, M):
        """Quadrature weights W = step S^N (times e^{-y_k} with the query token), shape (..., Q, k), and y = s x_n,
        yr = y_n rho_n, shape (..., Q, n, k), on the nodes u = log s."""
        M = np.asarray(M, dtype=float)
        K = self.p.size
        lx = M - M.max(axis=-2, keepdims=True)                  # log x_n, <= 0, (..., n, k)
        u = np.arange(-20.0 - math.log(self.context), math.log(60.0) - lx.min() + self.step, self.step)
        with np.errstate(over="ignore"):
            y = np.minimum(np.exp(u[:, None, None] + lx[..., None, :, :]), 1e100)   # s x_n; y^3 stays finite
        log_q = self.log_p[:, None] - y
        log_S = log_q.max(axis=-2)
        log_S = log_S + np.log(np.exp(log_q - log_S[..., None, :]).sum(axis=-2))
        # Where S is near 1 (small s) take log S = log1p(S - 1) with S - 1 = sum_j p_j expm1(-y_j): N log S then
        # keeps its relative precision (log of the rounded S would carry an absolute error ~N 1e-16).
        S_minus_1 = np.einsum("n,...nk->...k", self.p, np.expm1(-y)) + self.p_excess
        log_S = np.where(S_minus_1 > -0.5, np.log1p(np.maximum(S_minus_1, -0.5)), log_S)
        rho = np.exp(log_q - log_S[..., None, :])
        log_W = self.context * log_S
        if self.include_query_token:
            log_W = log_W - y[..., np.arange(K), np.arange(K)]      # e^{-s x_k}: the query's own term of Z
        return self.step * np.exp(log_W), y, y * rho

    def _attention(self, W, yr):
        """E[a_n] = int S^N N y_n rho_n du (r = 1); below the first node u_0 the integrand is C e^{u} (1 + O(N s)),
        so the trapezoid terms left out sum to the first term / (e^step - 1) (error ~ (N s_0)^2 = 4e-18)."""
        terms = self.context * W[..., :, None, :] * yr
        return terms.sum(axis=-3) + terms[..., 0, :, :] / math.expm1(self.step)

    def _losses(self, W, y, yr):
        """L_k = (1/2) [E[(1 - a_k)^2] + sum_{n != k} E[a_n^2]] (SF-8, SF-9), all terms positive (r = 2)."""
        N, N2, off = self.context, self.context * (self.context - 1.0), self.off
        R = np.sum(yr * off, axis=-2)                           # sum_{b != k} y_b rho_b
        R2 = np.sum(y * yr * off, axis=-2)                      # sum_{b != k} y_b^2 rho_b
        one_minus_ak_sq = N2 * R ** 2 + N * R2                  # (Z_{-k} + z0)^2 / Z^2
        if self.include_query_token:
            yk = np.einsum("...qkk->...qk", y)
            one_minus_ak_sq = one_minus_ak_sq + 2 * N * R * yk + yk ** 2
        off_sq = N2 * np.sum(yr ** 2 * off, axis=-2) + N * R2   # sum_{n != k} a_n^2
        return 0.5 * np.einsum("...qk,...qk->...k", W, one_minus_ak_sq + off_sq)

    def _gradient(self, W, y, yr):
        """dL_k/dm_n for n != k as E[a_n {2 a_n a_k + (a_n + a_k) a_q + sum_{j != n,k} a_j (a_n + a_k - a_j)}], the
        bracket of (SF-16)/(SF-18) rewritten with sum_j a_j = 1 - a_q, so that no two large terms cancel; every
        expectation is a third moment (r = 3). The diagonal is minus the column sum of the rest (SF-15)."""
        N, N2, N3 = self.context, self.context * (self.context - 1.0), self.context * (self.context - 1.0) * (
            self.context - 2.0)
        mask = self.off
        ykrk = np.einsum("...qkk->...qk", yr)[..., None, :]     # y_k rho_k
        outer = yr * mask                                       # y_j rho_j, zero at j = k
        S1 = mask @ outer                                       # sum_{j != n,k} y_j rho_j
        S2 = mask @ (outer * yr)                                # sum_{j != n,k} (y_j rho_j)^2
        S3 = mask @ (outer * y)                                 # sum_{j != n,k} y_j^2 rho_j
        own = N3 * yr + N2 * y                                  # from E[a_n^2 a_j]: N3 (y rho)_n + N2 y_n
        bracket = 2 * ykrk * own + S1 * (own + N3 * ykrk) - N3 * S2 - N2 * S3
        if self.include_query_token:
            yq = np.einsum("...qkk->...qk", y)[..., None, :]    # s x_k: the query token's share of Z
            bracket = bracket + yq * (N2 * (yr + ykrk) + N * y)
        G = 0.5 * np.einsum("...qk,...qnk->...nk", W, yr * bracket) * mask
        K = self.p.size
        G[..., np.arange(K), np.arange(K)] = -G.sum(axis=-2)
        return G

    def evaluate(self, M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(L, G) with L[k] = L_k(M[:,k]) and G[n, k] = dL_k / dM[n, k], as :meth:`CountEnumeration.evaluate`."""
        nodes = self._nodes(M)
        return self._losses(*nodes), self._gradient(*nodes)

    def losses(self, M: np.ndarray) -> np.ndarray:
        """L_k(M[:,k]) for every k (SF-9)."""
        return self._losses(*self._nodes(M))

    def losses_and_attention(self, M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """L_k (SF-9) and E[a_n(c; M[:,k])] (SF-7), row n = token feature, column k = query feature."""
        W, y, yr = self._nodes(M)
        return self._losses(W, y, yr), self._attention(W, yr)

    def flow_rhs(self, M: np.ndarray) -> np.ndarray:
        """dM/dt = -G diag(p) (SF-13, SF-31), without the loss."""
        return -self._gradient(*self._nodes(M)) * self.p


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
