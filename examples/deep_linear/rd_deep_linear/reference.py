"""Gradient-descent reference of the deep-linear family: the full network W2 W1 trained by plain full-batch
gradient descent on its P training samples, from the spec's one draw.

Independent of the theory: this module imports neither ``rd_deep_linear.theory`` nor the derivation; it
shares only the problem definition (``rd_deep_linear.task``). Gradients are written out by hand:
with E = W2 W1 X^T - Y^T (errors, out_dim x P), G = E X / P, the training loss L = |E|_F^2 / (2P) has
dL/dW1 = W2^T G and dL/dW2 = G W1^T. Time t = lr * step; the loss at step k is the one before update k.
"""
from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from reduced_dynamics.errors import DivergenceError
from reduced_dynamics.trajectory import Trajectory, provenance

from . import task
from .spec import DeepLinearSpec


def decay_gradients(W1: np.ndarray, W2: np.ndarray, weight_decay: float) -> tuple[np.ndarray, np.ndarray]:
    """Gradient of the penalty (lambda/2)(|W1|^2 + |W2|^2) (weight decay, WD-1), kept apart from the loss's."""
    return weight_decay * W1, weight_decay * W2


def simulate(spec: DeepLinearSpec, progress: bool | None = None) -> Trajectory:
    """Loss and mode strengths u_i = U_i^T W2 W1 V_i at every step; DivergenceError on a non-finite loss
    or one a thousand times above the start."""
    problem = task.draw(spec)
    X, Y, lr, steps = problem.X, problem.Y, spec.lr, spec.gd_steps
    W1, W2 = problem.W1.copy(), problem.W2.copy()
    losses, modes = np.empty(steps + 1), np.empty((steps + 1, spec.modes))
    show = steps >= 20000 if progress is None else progress
    for k in tqdm(range(steps + 1), desc="deep-linear GD", disable=not show, leave=False):
        W = W2 @ W1
        E = W @ X.T - Y.T
        losses[k] = 0.5 * np.sum(E * E) / X.shape[0]
        modes[k] = task.mode_strengths(problem, W)
        if not np.isfinite(losses[k]) or losses[k] > 1e3 * max(losses[0], 1.0):
            raise DivergenceError("deep-linear", k, float(losses[k]), f"lower --lr (now {lr:g})")
        if k == steps:
            break
        G = E @ X / X.shape[0]
        D1, D2 = decay_gradients(W1, W2, spec.weight_decay)
        W1, W2 = W1 - lr * (W2.T @ G + D1), W2 - lr * (G @ W1.T + D2)
    meta = provenance("deep-linear", spec, "reference-gd", None, steps=steps, lr=lr, train_size=X.shape[0],
                      loss="(1/2) mean |y - W2 W1 x|^2 over the training set", time="t = lr * step")
    return Trajectory(t=lr * np.arange(steps + 1), loss=losses, observables={"u": modes}, meta=meta)
