"""The deep-linear problem (DL-1), shared ground of theory and reference: the one random draw and the
measures applied identically to both sides' curves. Imports neither the theory nor the reference."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from reduced_dynamics.tasks import streams

from .spec import DeepLinearSpec

STREAMS = ("basis", "init", "train")     # append new names at the end: existing draws then stay as they are


@dataclass(frozen=True)
class Problem:
    U: np.ndarray       # (out_dim, r) output singular vectors, orthonormal columns
    V: np.ndarray       # (in_dim, r) input singular vectors
    s: np.ndarray       # (r,) singular values: Sigma_yx = U diag(s) V^T
    W1: np.ndarray      # (hidden, in_dim) initial first layer
    W2: np.ndarray      # (out_dim, hidden) initial second layer
    X: np.ndarray       # (P, in_dim) training inputs, exactly whitened: X^T X / P = I
    Y: np.ndarray       # (P, out_dim) training targets y = U S V^T x (+ noise)

    @property
    def sigma_yx(self) -> np.ndarray:
        return (self.U * self.s) @ self.V.T


def orthonormal_columns(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((rows, cols)))
    return q * np.sign(np.diag(r))


def draw(spec: DeepLinearSpec) -> Problem:
    """Bases U, V (stream "basis"); initial weights (stream "init"): balanced and aligned, W1 = Q A V^T and
    W2 = U A Q^T with A = init_scale I on the first min(hidden, r) modes and Q a random orthonormal hidden
    frame (DL-5), or every entry N(0, init_scale^2); training set (stream "train")."""
    rng = streams(spec.seed, STREAMS)
    r, h = spec.modes, spec.hidden
    U = orthonormal_columns(rng["basis"], spec.out_dim, r)
    V = orthonormal_columns(rng["basis"], spec.in_dim, r)
    s = np.asarray(spec.singular_values, dtype=float)
    if spec.init == "aligned":
        m = min(h, r)
        Q = orthonormal_columns(rng["init"], h, m)
        W1 = spec.init_scale * Q @ V[:, :m].T
        W2 = spec.init_scale * U[:, :m] @ Q.T
    else:
        W1 = spec.init_scale * rng["init"].standard_normal((h, spec.in_dim))
        W2 = spec.init_scale * rng["init"].standard_normal((spec.out_dim, h))
    X = rng["train"].standard_normal((spec.train_size, spec.in_dim))
    evals, evecs = np.linalg.eigh(X.T @ X / spec.train_size)
    X = X @ (evecs / np.sqrt(evals)) @ evecs.T                  # whitening: X^T X / P = I exactly
    Y = X @ ((U * s) @ V.T).T + spec.noise * rng["train"].standard_normal((spec.train_size, spec.out_dim))
    return Problem(U, V, s, W1, W2, X, Y)


def mode_strengths(problem: Problem, W: np.ndarray) -> np.ndarray:
    """u_i = U_i^T W V_i for a product W = W2 W1 of shape (..., out_dim, in_dim) (DL-4)."""
    return np.einsum("oi,...on,ni->...i", problem.U, W, problem.V)


def half_time(t: np.ndarray, u: np.ndarray, level: float) -> float:
    """First time u reaches ``level``, linear between samples; NaN if it never does (or starts above)."""
    above = np.nonzero(u >= level)[0]
    if above.size == 0 or above[0] == 0:
        return math.nan
    k = above[0]
    return float(t[k - 1] + (level - u[k - 1]) * (t[k] - t[k - 1]) / (u[k] - u[k - 1]))


def summarise(spec: DeepLinearSpec, trajectory) -> dict:
    """Half-learning time of each mode (u_i reaches s_i / 2; DL-8 for the closed form), the slowest of
    those reached, and the final loss. Applied identically to theory and reference curves."""
    u = trajectory.observables["u"]
    times = [half_time(trajectory.t, u[:, i], s / 2) for i, s in enumerate(spec.singular_values)]
    reached = [x for x in times if math.isfinite(x)]
    return {"half_times": times, "slowest_half_time": max(reached) if reached else math.nan,
            "final_loss": float(trajectory.loss[-1])}
