"""Minibatch SGD of merged linear attention (attn-m): the per-prompt gradient covariance of the training set,
the reduced SGD model and its Monte-Carlo band (docs/theory/sgd.md, SGD-1 to SGD-8).

The model is linear in Theta = sum_i r_i (x) W_i[:, :D], so every per-prompt gradient in Theta is
g_p = 2 (phi_p . theta - y_p) phi_p with phi_p = kappa vec(M_p (x) x_q,p) (SGD-4): the covariance Sigma(theta)
of the per-prompt gradients is a moment of the draw's own P prompts, exact (no estimate beyond the set).
A Gaussian vector of covariance Sigma(theta) is sum_p z_p (g_p - g_bar) / sqrt(P), z_p i.i.d. N(0, 1)
(SGD-6): one pass over the prompts per path and step, no P x n^2 tensor.

The dynamics is the all-weights flow (LA-44, ``iwl.IWLFlow`` on the sample moments), which unfrozen GD
follows step by step (its GD map is full-batch GD, LR-1, LR-3): the noise moves every weight, the
off-manifold blocks included (SGD-4). ``monte_carlo`` runs the reduced SGD model (SGD-5): the GD map with a
Gaussian gradient noise of covariance c Sigma / B, i.e. Euler-Maruyama of the SDE (SGD-2) with the step
eta itself. ``linear_noise`` is the linear-noise approximation (SGD-7) along the GD map.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...errors import SpecError
from ...events import midpoint_drop_time
from ...specs import LinearMergedSpec
from ...tasks import linear_attention as task
from ...trajectory import Trajectory, provenance
from . import discrete, iwl

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def noise_factor(sampling: str, batch_size: int, size: int) -> float:
    """c of (SGD-1): the per-step covariance of the minibatch mean gradient is c Sigma / B; 1 with replacement
    and online (Sigma then the set's estimate of the population covariance), (P - B) / (P - 1) without
    replacement within an epoch (the finite-population correction; 0 at B = P: full batch)."""
    if sampling == "epochs":
        return (size - batch_size) / (size - 1) if size > 1 else 0.0
    if sampling in ("replacement", "online"):
        return 1.0
    raise ValueError(f"sampling: expected replacement, epochs or online, got {sampling!r}")


@dataclass(frozen=True)
class PerPromptGradients:
    """The training set as per-prompt features: phi (P, n) = kappa vec(M_p (x) x_q,p) over c < D, and y (P,).
    Its moments are those of ``iwl.sample_moments``: A = phi^T phi / P, b = phi^T y / P."""
    phi: np.ndarray
    y: np.ndarray

    @classmethod
    def from_training_set(cls, data: task.TrainingSet, kappa: float) -> "PerPromptGradients":
        Z = task.token_matrices(data)
        M = Z @ Z.transpose(0, 2, 1)
        phi = (M[:, :, :, None] * data.xq[:, None, None, :]).reshape(len(data.yq), -1)
        return cls(kappa * phi, np.asarray(data.yq, dtype=float))

    @property
    def size(self) -> int:
        return self.y.size

    def gradients(self, theta: np.ndarray) -> np.ndarray:
        """(P, n): g_p = grad_theta (phi_p . theta - y_p)^2 = 2 (phi_p . theta - y_p) phi_p (SGD-4)."""
        return 2.0 * (self.phi @ theta - self.y)[:, None] * self.phi

    def covariance(self, theta: np.ndarray) -> np.ndarray:
        """Sigma(theta) = (1/P) sum_p (g_p - g_bar)(g_p - g_bar)^T (SGD-4), divisor P (the law of one prompt
        drawn uniformly from the set)."""
        g = self.gradients(theta)
        g = g - g.mean(axis=0)
        return g.T @ g / self.size

    def gaussian(self, thetas: np.ndarray, z: np.ndarray) -> np.ndarray:
        """(SGD-6) for many states at once: thetas (m, n), z (P, m) i.i.d. N(0, 1); returns (m, n) whose row j
        is sum_p z_pj (g_p(theta_j) - g_bar(theta_j)) / sqrt(P), Gaussian with covariance Sigma(theta_j)."""
        e = self.phi @ thetas.T - self.y[:, None]                      # (P, m) residuals
        weighted = 2.0 * (self.phi.T @ (z * e)).T                      # sum_p z_p g_p
        mean = 2.0 * (e.T @ self.phi) / self.size                      # g_bar per state
        return (weighted - z.sum(axis=0)[:, None] * mean) / math.sqrt(self.size)


def pullback(flow: iwl.IWLFlow, Y: np.ndarray, G: np.ndarray) -> np.ndarray:
    """The weights' velocity for drives G (m, rows, cols) at states Y (m, H, rows + cols): dr_i = G w_i,
    dw_i = G^T r_i (LA-44), i.e. minus J^T of a gradient -G in Theta (SGD-4)."""
    R, Wv = Y[:, :, :flow.rows], Y[:, :, flow.rows:]
    return np.concatenate([np.einsum("mrc,mhc->mhr", G, Wv), np.einsum("mrc,mhr->mhc", G, R)], axis=2)


def thetas_of(flow: iwl.IWLFlow, Y: np.ndarray) -> np.ndarray:
    return np.einsum("mhr,mhc->mrc", Y[:, :, :flow.rows], Y[:, :, flow.rows:]).reshape(len(Y), -1)


@dataclass
class Band:
    """The Monte-Carlo result: t (T,), the loss of every path (T, paths), each path's drop time."""
    t: np.ndarray
    losses: np.ndarray
    drop_times: np.ndarray

    def quantiles(self, qs=QUANTILES) -> np.ndarray:
        return np.quantile(self.losses, qs, axis=1)


@dataclass(frozen=True)
class CovarianceTable:
    """Sigma along the GD map (SGD-6, tabulated): symmetric square roots S_j = Sigma(theta_j)^(1/2) at every
    ``stride``-th step j of the map, and the map's loss there. The symmetric root is continuous in the state, so
    S_j S_k^T is close to the cross-covariance of the prompts' gradients at two nearby states, which the
    within-epoch cancellation of (SGD-8) needs (an eigenvector root with arbitrary signs breaks it). A path at
    loss L gets the root of the first tabulated state whose loss is at most L (the dynamics escapes along one
    mode, so the loss says where on the way a path is); the pullback J(y)^T stays the path's own."""
    loss: np.ndarray       # (J,) decreasing along the map
    roots: np.ndarray      # (J, n, n)

    @classmethod
    def along_map(cls, flow: iwl.IWLFlow, prompts: PerPromptGradients, y0: np.ndarray, eta: float, steps: int,
                  stride: int = 5) -> "CovarianceTable":
        ys = discrete.gd_map(flow, y0, eta, steps).y[::stride]
        thetas = flow.thetas(ys)
        roots = []
        for th in thetas:
            w, V = np.linalg.eigh(prompts.covariance(th))
            roots.append((V * np.sqrt(np.clip(w, 0.0, None))) @ V.T)     # the symmetric root: continuous in theta
        return cls(flow.train.loss(thetas), np.array(roots))

    def gaussian(self, losses: np.ndarray, rng: np.random.Generator | None = None,
                 z: np.ndarray | None = None) -> np.ndarray:
        """(m, n) vectors S_j z_j with S_j the root at the tabulated state of the loss losses[j]: Gaussian of
        covariance Sigma there for standard normal z (drawn from ``rng`` unless given)."""
        below = self.loss[None, :] <= losses[:, None]
        j = np.where(below.any(axis=1), below.argmax(axis=1), len(self.loss) - 1)
        z = rng.standard_normal((len(losses), self.roots.shape[1])) if z is None else z
        out = np.empty_like(z)
        for row in np.unique(j):                          # paths at the same tabulated state share its root
            at = j == row
            out[at] = z[at] @ self.roots[row].T
        return out


class EpochNoise:
    """Standard-normal-based weights omega_k of the steps of one epoch with the second moments of sampling
    without replacement (SGD-8): Var omega_k = (P - B) / (B (P - 1)), Cov(omega_j, omega_k) = -1 / (P - 1),
    so that c Sigma / B and the within-epoch anticorrelation of (SGD-1) come out of S omega_k. Built as
    omega_k = a (zeta_k - beta zeta_bar) from i.i.d. zeta over the m = floor(P / B) batches of the epoch."""

    def __init__(self, size: int, batch_size: int, paths: int, dim: int, rng: np.random.Generator):
        self.m = size // batch_size
        self.a = math.sqrt(size / (batch_size * (size - 1)))
        self.beta = 1.0 - math.sqrt(max(1.0 - self.m * batch_size / size, 0.0))
        self.shape, self.rng, self.k = (paths, dim), rng, 0

    def next(self) -> np.ndarray:
        if self.k % self.m == 0:
            self.zeta = self.rng.standard_normal((self.m, *self.shape))
            self.zbar = self.zeta.mean(axis=0)
        omega = self.a * (self.zeta[self.k % self.m] - self.beta * self.zbar)
        self.k += 1
        return omega


def monte_carlo(flow: iwl.IWLFlow, prompts: PerPromptGradients, y0: np.ndarray, eta: float, steps: int,
                batch_size: int, factor: float, paths: int, rng: np.random.Generator,
                noise: str = "table", epochs: bool = False) -> Band:
    """The reduced SGD model (SGD-5): Y_{k+1} = Y_k + eta pullback(G(Y_k) - sqrt(c / B) xi_k), xi_k Gaussian
    with covariance Sigma(theta_k), independent across steps and paths; the training loss of every path at
    t = eta k. ``noise``: "exact" draws xi_k from the path's own state through the prompts (SGD-6, one pass
    over the P prompts per path and step), "table" from Sigma tabulated along the GD map (SGD-6, tabulated,
    n^2 per path and step). ``epochs`` (table only): the steps of an epoch anticorrelated as sampling without
    replacement makes them (SGD-8) instead of independent. With c = 0 every path is the GD map (LR-3)."""
    A, b, H = flow.train.A, flow.train.b, flow.heads
    Y = np.tile(np.asarray(y0, dtype=float).reshape(1, H, -1), (paths, 1, 1))
    losses = np.empty((steps + 1, paths))
    scale = math.sqrt(factor / batch_size)
    if epochs and noise != "table":
        raise ValueError("epochs: the within-epoch correlation is built on the tabulated noise (noise='table')")
    table = CovarianceTable.along_map(flow, prompts, y0, eta, steps) if noise == "table" and scale > 0 else None
    epoch = EpochNoise(prompts.size, batch_size, paths, A.shape[0], rng) if epochs and scale > 0 else None
    for k in range(steps + 1):
        th = thetas_of(flow, Y)
        losses[k] = flow.train.loss(th)
        if k == steps:
            break
        G = 2.0 * b - 2.0 * th @ A                                   # minus the full gradient, per path
        if epoch is not None:
            G = G - table.gaussian(losses[k], z=epoch.next())         # omega carries sqrt(c / B) itself
        elif scale > 0.0:
            xi = (table.gaussian(losses[k], rng) if table is not None
                  else prompts.gaussian(th, rng.standard_normal((prompts.size, paths))))
            G = G - scale * xi
        Y = Y + eta * pullback(flow, Y, G.reshape(paths, flow.rows, flow.cols))
    t = eta * np.arange(steps + 1)
    drops = np.array([midpoint_drop_time(t, losses[:, j]) for j in range(paths)])
    return Band(t, losses, drops)


def linear_noise(flow: iwl.IWLFlow, prompts: PerPromptGradients, y0: np.ndarray, eta: float, steps: int,
                 batch_size: int, factor: float, stride: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The linear-noise approximation (SGD-7) along the GD map: C_{k+1} = F_k C_k F_k^T + eta^2 (c / B)
    J_k^T Sigma_k J_k, F_k = I - eta Hess L (LR-9), Sigma refreshed every ``stride`` steps; returns
    (t, the map's loss, the sd of the loss to first order, grad L^T C grad L)."""
    n = y0.size
    y = np.asarray(y0, dtype=float)
    C = np.zeros((n, n))
    eye = np.eye(n)
    basis = np.eye(flow.rows * flow.cols).reshape(-1, flow.rows, flow.cols)
    loss, sd = np.empty(steps + 1), np.empty(steps + 1)
    for k in range(steps + 1):
        grad = -flow.rhs(0.0, y)
        loss[k] = flow.train.loss(flow.theta(y))
        sd[k] = math.sqrt(max(float(grad @ C @ grad), 0.0))
        if k == steps:
            break
        F = eye - eta * np.stack([flow.hvp(y, e) for e in eye], axis=1)
        Jt = pullback(flow, np.repeat(y.reshape(1, flow.heads, -1), len(basis), axis=0), basis)
        Jt = Jt.reshape(len(basis), -1).T                                     # (n, rows cols): J^T
        if k % stride == 0:
            Sig = prompts.covariance(flow.theta(y))
        C = F @ C @ F.T + eta ** 2 * factor / batch_size * (Jt @ Sig @ Jt.T)
        y = y + eta * flow.rhs(0.0, y)
    return eta * np.arange(steps + 1), loss, sd


def linear_noise_drop(t: np.ndarray, loss: np.ndarray, sd: np.ndarray) -> tuple[float, float]:
    """(drop time of the map, its sd to first order: sd of L at the crossing over |dL/dt| there, SGD-7)."""
    t_star = midpoint_drop_time(t, loss)
    k = int(np.searchsorted(t, t_star))
    slope = (loss[k] - loss[k - 1]) / (t[k] - t[k - 1])
    return t_star, float(np.interp(t_star, t, sd) / abs(slope))


def setup(spec: LinearMergedSpec):
    """(all-weights flow on the sample moments, its initial state, the per-prompt gradients of the same set)."""
    sample = spec.replace(train_size=spec.sample_size, all_weights=True)
    flow, y0, drawn = iwl.setup(sample, "sample", "full")
    return flow, y0, PerPromptGradients.from_training_set(drawn.train, spec.kappa)


def band_rng(spec: LinearMergedSpec) -> np.random.Generator:
    """The Monte-Carlo's own generator (the theory's noise, not the reference's minibatch order)."""
    return np.random.default_rng(np.random.SeedSequence([int(spec.seed), int(spec.batch_seed), 22]))


def predict(spec: LinearMergedSpec) -> Trajectory:
    """Mean curve and band of minibatch SGD (SGD-5) for ``spec.batch_size``, ``spec.sampling`` at spec.lr:
    ``spec.paths`` paths of the reduced SGD model on the all-weights flow of the spec's training set. Loss: the
    mean over paths; observables ``loss_q05`` ... ``loss_q95`` (quantiles of the loss at each t); events
    ``drop_time`` (mean over paths of each path's drop time), ``drop_time_sd``; meta ``drop_times``."""
    if spec.batch_size is None:
        raise SpecError("batch_size", "a batch size for the SGD band", None)
    if spec.attention != "linear":
        raise SpecError("attention", "linear for the SGD band (sgd.md)", spec.attention)
    if spec.weight_decay:           # the SGD model's steps carry no decay term yet: refuse rather than drop it
        raise SpecError("weight_decay", "0 for the SGD band (sgd.md has no weight decay yet)", spec.weight_decay)
    flow, y0, prompts = setup(spec)
    c = noise_factor(spec.sampling, spec.batch_size, prompts.size)
    band = monte_carlo(flow, prompts, y0, spec.lr, spec.gd_steps, spec.batch_size, c, spec.paths, band_rng(spec),
                       epochs=spec.sampling == "epochs")
    q = band.quantiles()
    drops = band.drop_times[np.isfinite(band.drop_times)]
    observables = {f"loss_q{round(100 * x):02d}": q[i] for i, x in enumerate(QUANTILES)}
    events = {"drop_time": float(np.mean(drops)) if drops.size else math.nan,
              "drop_time_sd": float(np.std(drops, ddof=1)) if drops.size > 1 else math.nan}
    meta = provenance("attn-m", spec, "theory-sgd-monte-carlo", batch_size=spec.batch_size, sampling=spec.sampling,
                      paths=spec.paths, noise_factor=c, drop_times=[float(x) for x in band.drop_times],
                      paths_without_drop=int(band.drop_times.size - drops.size),
                      loss="MSE without 1/2 (LA-44), mean over paths", time="t = lr * step")
    return Trajectory(t=band.t, loss=band.losses.mean(axis=1), observables=observables, events=events, meta=meta)
