"""Which learning rate is safe, and what GD does above it (docs/theory/lr_atlas.md, LRA-1 to LRA-7).

For attn-m the map that equals the run is the GD map of the all-weights flow (LA-44) on the sample moments of
the run's own training set, from the run's own initial weights: unfrozen full-batch GD step by step (LR-9 test);
with ``freeze_off_manifold`` the same map with the gradient masked on u_i and r_i^x (LRA-1), which is the
manifold's map (LR-1). Everything here runs on one ``BatchedMap``, which carries K states at once (one per rate):

* ``run_bound(spec)``: eta_max = 2 / lambda_max of the Hessian of the system the run follows, at the end of its
  flow and along it (LRA-2), lambda_max by Lanczos (``eigsh``) on the exact Hessian-vector product (LR-9);
* ``atlas(spec, rates)``: the map iterated for every rate at once, each for the steps of its own run
  (t_max / eta), with a tangent vector carried by the map's Jacobian I - eta m H (LRA-3) for the finite-time
  Lyapunov exponent (LRA-5); ``classify`` names the outcome (LRA-4) from the loss curve and the last states.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse.linalg import LinearOperator, eigsh

from ..errors import SpecError

BLOWUP = 1e6           # the reference's divergence rule: loss > BLOWUP * max(L_0, 1), or not finite
PERIODS = 8            # period-k orbits looked for, k = 1..PERIODS
PERIOD_RATIO = 0.05    # |y_S - y_{S-k}| below this fraction of one step |y_S - y_{S-1}|: period k
SETTLE_TOL = 1e-12     # a loss rise below this (relative) is rounding, not a rise
CHAOS = 0.01           # finite-time Lyapunov exponent per step above this: chaotic
RISE = 1e-6            # the loss exceeds its start by more than this (relative): a catapult
STEP_RISE = 1e-9       # one step raises the loss by more than this (relative): the descent is not monotone
COARSE = {"monotone": "monotone", "damped": "damped", "catapult": "catapult", "chaotic": "oscillating",
          "oscillating": "oscillating", "divergent": "divergent"}


def coarse(label: str) -> str:
    """The labels GD is compared on: monotone, damped, catapult, oscillating (period-k, chaotic, aperiodic),
    divergent."""
    return "oscillating" if label.startswith("period-") else COARSE[label]


class BatchedMap:
    """The all-weights loss L = yy - 2 b.theta + theta^T A theta, theta = vec sum_i r_i w_i^T (LA-44), evaluated
    for K states at once (rows of Y). ``mask`` (n,) is 1 where a weight moves, 0 where GD holds it (frozen
    u_i, r_i^x); the map is Y -> Y - eta m * grad L (LRA-1), its Jacobian I - eta m H (LRA-3)."""

    def __init__(self, flow, mask: np.ndarray | None = None):
        """``flow``: the all-weights flow (``iwl.IWLFlow``) whose moments and shapes the map uses."""
        self.flow, self.rows, self.cols, self.heads = flow, flow.rows, flow.cols, flow.heads
        self.A, self.b, self.yy = flow.train.A, flow.train.b, flow.train.yy
        self.n = self.heads * (self.rows + self.cols)
        self.mask = np.ones(self.n) if mask is None else np.asarray(mask, dtype=float)

    def _split(self, Y):
        Y = Y.reshape(len(Y), self.heads, self.rows + self.cols)
        return Y[:, :, :self.rows], Y[:, :, self.rows:]

    def theta(self, Y: np.ndarray) -> np.ndarray:
        R, W = self._split(Y)
        return np.einsum("khr,khc->krc", R, W).reshape(len(Y), -1)

    def loss(self, Y: np.ndarray) -> np.ndarray:
        th = self.theta(Y)
        return self.yy - 2.0 * th @ self.b + np.einsum("ki,ki->k", th @ self.A, th)

    def _drive(self, Y):
        return (2.0 * self.b - 2.0 * self.theta(Y) @ self.A).reshape(len(Y), self.rows, self.cols)

    def gradient(self, Y: np.ndarray) -> np.ndarray:
        """m * grad L at each row of Y: minus the masked right-hand side of (LA-44)."""
        R, W = self._split(Y)
        G = self._drive(Y)
        rhs = np.concatenate([np.einsum("khc,krc->khr", W, G), np.einsum("khr,krc->khc", R, G)], axis=2)
        return -self.mask * rhs.reshape(len(Y), -1)

    def hvp(self, Y: np.ndarray, U: np.ndarray) -> np.ndarray:
        """m * H (m * u) at each row (LR-9 with the mask): the Hessian of the system GD moves in."""
        R, W = self._split(Y)
        dR, dW = self._split(self.mask * U)
        G = self._drive(Y)
        dth = (np.einsum("khr,khc->krc", dR, W) + np.einsum("khr,khc->krc", R, dW)).reshape(len(Y), -1)
        dG = (-2.0 * dth @ self.A).reshape(len(Y), self.rows, self.cols)
        out = np.concatenate([np.einsum("khc,krc->khr", W, dG) + np.einsum("khc,krc->khr", dW, G),
                              np.einsum("khr,krc->khc", R, dG) + np.einsum("khr,krc->khc", dR, G)], axis=2)
        return -self.mask * out.reshape(len(Y), -1)

    def sharpness(self, y: np.ndarray) -> float:
        """lambda_max of m H m at one state, by Lanczos on the Hessian-vector product (LRA-2)."""
        y = np.asarray(y, dtype=float)[None]
        op = LinearOperator((self.n, self.n), matvec=lambda u: self.hvp(y, np.ravel(u)[None])[0], dtype=float)
        v0 = np.random.default_rng(0).standard_normal(self.n) * self.mask
        return float(eigsh(op, k=1, which="LA", v0=v0, tol=1e-10, return_eigenvectors=False)[0])


class SeparateMap(BatchedMap):
    """The all-weights map of attn-s (LRA-8): the full model is linear in Theta[a, b, c] = sum_i (K_i^T Q_i)[a, c]
    r_i[b] (c < D; Q_i[:, D] meets the query's empty label slot), so its training loss is the same quadratic
    yy - 2 b.theta + theta^T A theta as attn-m's, in the moments of the run's own training set, and GD moves
    (r_i, K_i, Q_i^x) by the three factors' gradients. State per head: r_i (D+1), K_i (R, D+1) and Q_i[:, :D]
    (R, D), row-major; the Hessian-vector product by the product rule (exact: every term is a product)."""

    def __init__(self, moments, dim: int, rank: int, heads: int, mask: np.ndarray | None = None):
        """``moments``: the training set's ``iwl.Moments`` (A, b, yy of the quadratic in Theta)."""
        self.A, self.b, self.yy = moments.A, moments.b, moments.yy
        self.D, self.R, self.heads = dim, rank, heads
        self.width = (dim + 1) + rank * (dim + 1) + rank * dim
        self.n = heads * self.width
        self.mask = np.ones(self.n) if mask is None else np.asarray(mask, dtype=float)

    def _split(self, Y):
        D, R = self.D, self.R
        Y = Y.reshape(len(Y), self.heads, self.width)
        r = Y[:, :, :D + 1]
        K = Y[:, :, D + 1:D + 1 + R * (D + 1)].reshape(len(Y), self.heads, R, D + 1)
        Q = Y[:, :, D + 1 + R * (D + 1):].reshape(len(Y), self.heads, R, D)
        return r, K, Q

    def _join(self, r, K, Q):
        k, h = r.shape[:2]
        return np.concatenate([r, K.reshape(k, h, -1), Q.reshape(k, h, -1)], axis=2).reshape(k, -1)

    @staticmethod
    def _theta(r, K, Q):
        return np.einsum("khsa,khb,khsc->kabc", K, r, Q).reshape(len(r), -1)

    def theta(self, Y: np.ndarray) -> np.ndarray:
        return self._theta(*self._split(Y))

    def _drive(self, Y):
        return (2.0 * self.b - 2.0 * self.theta(Y) @ self.A).reshape(len(Y), self.D + 1, self.D + 1, self.D)

    @staticmethod
    def _pullback(G, r, K, Q):
        """-(dL/dr, dL/dK, dL/dQ^x) for the drive G = -dL/dTheta."""
        return (np.einsum("kabc,khsa,khsc->khb", G, K, Q), np.einsum("kabc,khb,khsc->khsa", G, r, Q),
                np.einsum("kabc,khsa,khb->khsc", G, K, r))

    def gradient(self, Y: np.ndarray) -> np.ndarray:
        r, K, Q = self._split(Y)
        return -self.mask * self._join(*self._pullback(self._drive(Y), r, K, Q))

    def hvp(self, Y: np.ndarray, U: np.ndarray) -> np.ndarray:
        r, K, Q = self._split(Y)
        dr, dK, dQ = self._split(self.mask * U)
        G = self._drive(Y)
        dth = (np.einsum("khsa,khb,khsc->kabc", dK, r, Q) + np.einsum("khsa,khb,khsc->kabc", K, dr, Q)
               + np.einsum("khsa,khb,khsc->kabc", K, r, dQ)).reshape(len(Y), -1)
        dG = (-2.0 * dth @ self.A).reshape(G.shape)
        out_r = (np.einsum("kabc,khsa,khsc->khb", dG, K, Q) + np.einsum("kabc,khsa,khsc->khb", G, dK, Q)
                 + np.einsum("kabc,khsa,khsc->khb", G, K, dQ))
        out_K = (np.einsum("kabc,khb,khsc->khsa", dG, r, Q) + np.einsum("kabc,khb,khsc->khsa", G, dr, Q)
                 + np.einsum("kabc,khb,khsc->khsa", G, r, dQ))
        out_Q = (np.einsum("kabc,khsa,khb->khsc", dG, K, r) + np.einsum("kabc,khsa,khb->khsc", G, dK, r)
                 + np.einsum("kabc,khsa,khb->khsc", G, K, dr))
        return -self.mask * self._join(out_r, out_K, out_Q)


def separate_system(spec):
    """(map, initial state, name) of an attn-s run: every weight, or the manifold (k_i^y, r_i^x frozen)."""
    from ..tasks import linear_attention as task
    from .linear_attention import iwl
    drawn = task.draw(spec, train=True)
    moments = iwl.sample_moments(drawn.train, spec.kappa)
    D, R, H = spec.dim, spec.rank, spec.heads
    W = drawn.weights
    y0 = np.concatenate([W["r"], W["K"].reshape(H, -1), W["Q"][:, :, :D].reshape(H, -1)], axis=1).reshape(-1)
    mask, name = None, "all weights (LRA-8): unfrozen full-batch GD"
    if spec.freeze_off_manifold:
        per_head = np.ones((D + 1) + R * (D + 1) + R * D)
        per_head[:D] = 0.0                                               # r_i^x
        per_head[D + 1 + np.arange(R) * (D + 1) + D] = 0.0               # k_i^y = K_i[:, D]
        mask = np.tile(per_head, H)
        name = "invariant manifold (LR-1): GD with k_i^y, r_i^x frozen"
    return SeparateMap(moments, D, R, H, mask), y0, name


class SoftmaxMap:
    """The softmax family's map on its reduced M (LRA-7): M <- M - eta grad L(M), grad L = G diag(p) with the
    exact finite-N gradient G (SF-13, SF-19d; ``features.exact_gd_map`` for one rate), for K states at once (the
    Laplace quadrature takes stacks). Its Jacobian-vector product is a central difference of the exact gradient
    along the direction (relative error ~1e-10, as the modified flow's, docs/theory/finite_learning_rate.md)."""

    def __init__(self, evaluator, probabilities: np.ndarray, h: float = 1e-5):
        self.evaluator, self.p, self.h = evaluator, np.asarray(probabilities, float), float(h)
        self.K = self.p.size
        self.n = self.K * self.K
        self.mask = np.ones(self.n)

    def _stack(self, Y):
        return np.asarray(Y, float).reshape(len(Y), self.K, self.K)

    def loss(self, Y: np.ndarray) -> np.ndarray:
        return self.evaluator.losses(self._stack(Y)) @ self.p

    def gradient(self, Y: np.ndarray) -> np.ndarray:
        return -self.evaluator.flow_rhs(self._stack(Y)).reshape(len(Y), -1)

    def hvp(self, Y: np.ndarray, U: np.ndarray) -> np.ndarray:
        scale = np.maximum(np.linalg.norm(U, axis=1, keepdims=True), 1e-300)
        step = self.h / scale
        return (self.gradient(Y + step * U) - self.gradient(Y - step * U)) / (2.0 * step)

    def sharpness(self, y: np.ndarray) -> float:
        """lambda_max of the Hessian (dense: K^2 directions, symmetrised)."""
        y = np.asarray(y, float)[None]
        H = self.hvp(np.repeat(y, self.n, axis=0), np.eye(self.n))
        return float(np.linalg.eigvalsh(0.5 * (H + H.T))[-1])


def system(spec, moments: str = "sample"):
    """(map, initial state, name) of the system the spec's run follows: attn-m with linear attention (every
    weight, or the manifold when frozen), or softmax (its exact-gradient map on M, LRA-7)."""
    if spec.model == "softmax":
        from .softmax import features
        if spec.limit != "exact":
            raise SpecError("limit", "exact (the map on M uses the exact finite-N gradient)", spec.limit)
        p, M0 = features.start(spec)
        evaluator = features.exact_evaluator(p, spec.context, spec.include_query_token)
        return SoftmaxMap(evaluator, p), M0.reshape(-1), "exact finite-N GD map on M (SF-13, LR-1)"
    if spec.model not in ("attn-m", "attn-s") or spec.attention != "linear":
        raise SpecError("model", "attn-m or attn-s with linear attention, or softmax (a map that equals the run)",
                        spec.model)
    if spec.model == "attn-s":
        return separate_system(spec)
    from .linear_attention import iwl
    flow, y0, _ = iwl.setup(spec.replace(discretisation="flow"), moments=moments, level="full")
    mask = None
    name = "all weights (LA-44, LR-9): unfrozen full-batch GD"
    if spec.freeze_off_manifold:
        D, H = spec.dim, spec.heads
        per_head = np.ones((flow.rows + flow.cols))
        per_head[:D] = 0.0                                   # r_i^x
        per_head[flow.rows + D * D:] = 0.0                    # u_i = W_i[D, :D], the last row of W_i[:, :D]
        mask = np.tile(per_head, H)
        name = "invariant manifold (LR-1): GD with u_i, r_i^x frozen"
    return BatchedMap(flow, mask), y0, name


def run_bound(spec, points: int = 200) -> dict:
    """(LRA-2): eta_max = 2 / lambda_max of the run's own system, at the end of its flow (``at_minimum``) and the
    largest lambda_max along it (``along_path``); ``eta_max`` the smaller; ``system`` names it."""
    bm, y0, name = system(spec)
    from ..integrate import integrate
    t_end = spec.final_time
    sol = integrate(lambda t, y: -bm.gradient(y[None])[0], y0, t_end, method="DOP853", rtol=1e-9,
                    t_eval=np.linspace(0.0, t_end, points))
    lam = np.array([bm.sharpness(y) for y in sol.y])
    k = int(np.argmax(lam))
    return {"eta_max": 2.0 / float(lam.max()), "at_minimum": 2.0 / float(lam[-1]), "along_path": 2.0 / float(lam.max()),
            "sharpest_time": float(sol.t[k]), "lambda_final": float(lam[-1]), "lambda_max_path": float(lam[k]),
            "final_loss": float(bm.loss(sol.y[-1:])[0]), "system": name}


@dataclass
class Atlas:
    """One row per rate (LRA-4): label, loss start/peak/min/final, the sharpness at the end and 2 / eta."""
    rates: np.ndarray
    steps: np.ndarray
    labels: list
    loss0: float
    peak: np.ndarray
    peak_step: np.ndarray
    minimum: np.ndarray
    final: np.ndarray
    sharpness: np.ndarray
    lyapunov: np.ndarray
    diverged_step: np.ndarray
    losses: np.ndarray = field(repr=False)          # (max steps + 1, K), NaN after a rate's end
    system: str = ""

    @property
    def coarse_labels(self) -> list:
        return [coarse(x) for x in self.labels]

    def first_divergent(self) -> float:
        bad = [r for r, x in zip(self.rates, self.labels) if x == "divergent"]
        return float(min(bad)) if bad else math.nan

    def table(self) -> dict:
        """Column -> list, JSON-ready (NaN as None)."""
        def clean(a):
            return [None if isinstance(x, float) and not math.isfinite(x) else x for x in np.asarray(a).tolist()]
        return {"rate": clean(self.rates), "steps": clean(self.steps), "label": list(self.labels),
                "coarse": self.coarse_labels, "loss_start": [self.loss0] * len(self.rates), "peak": clean(self.peak),
                "peak_step": clean(self.peak_step), "minimum": clean(self.minimum), "final_loss": clean(self.final),
                "sharpness": clean(self.sharpness), "two_over_rate": clean(2.0 / self.rates),
                "lyapunov": clean(self.lyapunov), "diverged_step": clean(self.diverged_step)}


def classify(loss: np.ndarray, tail: np.ndarray, diverged: bool, lyapunov: float = math.nan) -> str:
    """(LRA-4) from the loss curve L_0..L_S and the last states ``tail`` (PERIODS + 1, n; tail[-1] = y_S):
    divergent; settled when the loss never rises over the last quarter of the run (by more than rounding,
    SETTLE_TOL relative), as catapult if it ever rose above its start, damped if some step raised it (by more
    than STEP_RISE relative) but never above its start, else monotone; period-k when y_S is back
    near y_{S-k} (|y_S - y_{S-k}| <= PERIOD_RATIO |y_S - y_{S-1}|, smallest k >= 2; a slow drift along the
    minima is allowed); otherwise chaotic when the Lyapunov exponent exceeds CHAOS, else oscillating."""
    if diverged:
        return "divergent"
    last = loss[-max(len(loss) // 4, 2):]
    if np.all(np.diff(last) <= SETTLE_TOL * np.abs(last[1:])):
        if np.max(loss) > loss[0] * (1.0 + RISE):
            return "catapult"
        return "damped" if np.any(np.diff(loss) > STEP_RISE * np.abs(loss[1:])) else "monotone"
    gaps = [float(np.linalg.norm(tail[-1] - tail[-1 - k])) for k in range(1, PERIODS + 1)]
    for k in range(2, PERIODS + 1):
        if gaps[k - 1] <= PERIOD_RATIO * gaps[0]:
            return f"period-{k}"
    return "chaotic" if lyapunov > CHAOS else "oscillating"


def run_steps(spec, rates: np.ndarray) -> np.ndarray:
    """Steps of the run at each rate: the spec's ``steps`` if given, else t_max / eta (``gd_steps``)."""
    return np.array([spec.replace(lr=float(r)).gd_steps for r in rates], dtype=int)


def iterate(bm: BatchedMap, y0: np.ndarray, rates: np.ndarray, steps: np.ndarray, lyapunov: bool = True):
    """The map for every rate at once from y0 (LRA-3): losses (S+1, K), the last PERIODS + 1 states (K, P+1, n),
    step lengths (S, K), the Lyapunov exponent over each run's second half (LRA-5; the tangent vector starts
    there, from one fixed random unit vector, so it measures the Jacobian product over that window and not a
    direction that an earlier contracting phase wore away) and the diverging step."""
    K, S = len(rates), int(steps.max())
    Y = np.repeat(np.asarray(y0, float)[None], K, axis=0)
    v0 = np.random.default_rng(0).standard_normal(bm.n) * bm.mask      # one start vector for every rate
    v0 /= np.linalg.norm(v0)
    V = np.zeros((K, bm.n))
    losses = np.full((S + 1, K), np.nan)
    lengths = np.full((S, K), np.nan)
    ring = np.zeros((K, PERIODS + 1, bm.n))
    log_growth, counted = np.zeros(K), np.zeros(K)
    diverged = np.full(K, -1)
    L = bm.loss(Y)
    limit = BLOWUP * max(float(L[0]), 1.0)
    eta = np.asarray(rates, float)[:, None]
    for k in range(S + 1):
        alive = (diverged < 0) & (k <= steps)
        bad = alive & ~(np.isfinite(L) & (L <= limit))
        diverged[bad] = k
        alive &= ~bad
        losses[k, alive] = L[alive]
        ring[alive, k % (PERIODS + 1)] = Y[alive]
        moving = alive & (k < steps)
        if not moving.any():
            break
        idx = np.nonzero(moving)[0]
        Ym = Y[idx]
        with np.errstate(over="ignore", invalid="ignore"):
            late = idx[k >= steps[idx] // 2]                     # (LRA-5): the second half of each run
            if lyapunov and late.size:
                V[late[k == steps[late] // 2]] = v0                   # a fresh start at the window's first step
                Vm = V[late] - eta[late] * bm.hvp(Y[late], V[late])
                norm = np.linalg.norm(Vm, axis=1)
                log_growth[late] += np.log(norm)
                counted[late] += 1
                V[late] = Vm / np.where(norm > 0, norm, 1.0)[:, None]
            step = -eta[idx] * bm.gradient(Ym)
            Y[idx] = Ym + step
            lengths[k, idx] = np.linalg.norm(step, axis=1)
            L[idx] = bm.loss(Y[idx])
    order = np.stack([(steps - j) % (PERIODS + 1) for j in range(PERIODS, -1, -1)], axis=1)    # y_{S-P} .. y_S
    tails = np.take_along_axis(ring, order[:, :, None], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        lyap = np.where(counted > 0, log_growth / counted, np.nan) if lyapunov else np.full(K, np.nan)
    return losses, tails, lengths, lyap, diverged


def atlas(spec, rates, lyapunov: bool = True) -> Atlas:
    """The lr atlas of the spec's run (LRA-4): every rate's own run (steps t_max / eta) on the map that equals it."""
    rates = np.asarray(rates, dtype=float)
    if rates.ndim != 1 or rates.size == 0 or np.any(~np.isfinite(rates)) or np.any(rates <= 0):
        raise SpecError("rates", "positive finite learning rates", rates)
    if spec.model == "softmax" and spec.discretisation != "map":
        spec = spec.replace(discretisation="map")
    bm, y0, name = system(spec)
    steps = run_steps(spec, rates)
    losses, tails, lengths, lyap, diverged = iterate(bm, y0, rates, steps, lyapunov)
    labels, peak, peak_step, minimum, final, sharp = [], [], [], [], [], []
    for j in range(len(rates)):
        curve = losses[:, j][np.isfinite(losses[:, j])]
        label = classify(curve, tails[j], diverged[j] >= 0, lyap[j])
        labels.append(label)
        peak.append(float(curve.max()))
        peak_step.append(int(np.argmax(curve)))
        minimum.append(float(curve.min()))
        final.append(float(curve[-1]) if label != "divergent" else math.nan)
        sharp.append(bm.sharpness(tails[j, -1]) if label != "divergent" else math.nan)
    return Atlas(rates, steps, labels, float(losses[0, 0]), np.array(peak), np.array(peak_step), np.array(minimum),
                 np.array(final), np.array(sharp), lyap, diverged, losses, name)
