"""NumPy gradient-descent witness of single-layer multi-head linear attention (linear_attention.md §2-§4).

The FULL model: complete (D+1) x (D+1) matrices per head, every block trainable (unless frozen on
request), full-batch gradient descent on the training loss (LA-12) with hand-written gradients (LA-7).
This module never imports ``derivations`` or ``reduced_dynamics.theory``: it is the independent check of
the reduced flows. It shares only the problem definition (``reduced_dynamics.tasks.linear_attention``).

A parametrization is a small object with ``predict_and_grads(params, batch)``; ATTN_M (LA-5, LA-7) is
here, and the separate key/query parametrization (LA-6, LA-8) slots in beside it with the same interface.

Loss convention: mean squared error without a factor 1/2 (§1); time t = lr * step (LA-13), the loss at
step k is computed before the k-th update.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from ..specs import LinearMergedSpec
from ..tasks import linear_attention as task
from ..trajectory import Trajectory, provenance


class DivergenceError(RuntimeError):
    """Gradient descent produced a non-finite or exploding loss."""


@dataclass(frozen=True)
class Batch:
    """Precomputed per-sequence features of the training set.

    Every parametrization of §3 has yhat = kappa sum_{a,b,c} M[a,b] z_q[c] K[a,b,c] for a weight tensor K
    built from the heads (ATTN_M: K = sum_i r_i (x) W_i). So the tensor T[p, a,b,c] = M_p[a,b] z_q,p[c]
    (M = Z Z^T over all N+1 tokens, z_q = (x_q, 0)) is computed once, and a GD step costs two
    (P x (D+1)^3) matrix-vector products.
    """
    T: np.ndarray      # (P, (D+1)^3)
    yq: np.ndarray     # (P,)
    width: int         # D + 1

    @classmethod
    def from_training_set(cls, data: task.TrainingSet) -> "Batch":
        Z = task.token_matrices(data)
        M = Z @ Z.transpose(0, 2, 1)
        zq = Z[:, :, -1]
        P, width = zq.shape
        T = (M[:, :, :, None] * zq[:, None, None, :]).reshape(P, width ** 3)
        return cls(T=T, yq=data.yq, width=width)

    def predict_from_tensor(self, K: np.ndarray, kappa: float) -> np.ndarray:
        return kappa * (self.T @ K.reshape(-1))

    def loss_and_tensor_grad(self, K: np.ndarray, kappa: float) -> tuple[float, np.ndarray]:
        """Training loss (LA-12) and dL/dK = (2 kappa / P) sum_p (yhat_p - y_q,p) T_p."""
        err = self.predict_from_tensor(K, kappa) - self.yq
        grad = (2.0 * kappa / err.size) * (err @ self.T)
        w = self.width
        return float(np.mean(err ** 2)), grad.reshape(w, w, w)


class MergedAttention:
    """ATTN_M (LA-5): yhat = kappa sum_i r_i^T M W_i z_q, parameters {"W": (H, D+1, D+1), "r": (H, D+1)}."""

    name = "merged"

    def __init__(self, kappa: float):
        self.kappa = kappa

    @staticmethod
    def tensor(params: dict) -> np.ndarray:
        """K[a,b,c] = sum_i r_i[a] W_i[b,c], so that r_i^T M W_i z_q = sum M[a,b] z_q[c] K[a,b,c]."""
        return np.einsum("ha,hbc->abc", params["r"], params["W"])

    def predict(self, params: dict, batch: Batch) -> np.ndarray:
        return batch.predict_from_tensor(self.tensor(params), self.kappa)

    def loss_and_grads(self, params: dict, batch: Batch) -> tuple[float, dict]:
        """Training loss (LA-12) and its gradient, (LA-7) summed over the batch by the chain rule through K:
        dL/dr_i[a] = sum_bc dL/dK[a,b,c] W_i[b,c]   (= mean of 2 err kappa (M W_i z_q)[a]),
        dL/dW_i[b,c] = sum_a dL/dK[a,b,c] r_i[a]   (= mean of 2 err kappa (M r_i)[b] z_q[c])."""
        loss, gK = batch.loss_and_tensor_grad(self.tensor(params), self.kappa)
        grad_r = np.einsum("abc,hbc->ha", gK, params["W"])
        grad_W = np.einsum("abc,ha->hbc", gK, params["r"])
        return loss, {"W": grad_W, "r": grad_r}

    @staticmethod
    def off_manifold_mask(params: dict) -> dict:
        """1 where a weight may move, 0 on u_i = W_i[D, :D] and r_i^x = r_i[:D] (§3 invariant manifold)."""
        W, r = params["W"], params["r"]
        D = r.shape[1] - 1
        mW, mr = np.ones_like(W), np.ones_like(r)
        mW[:, D, :D] = 0.0
        mr[:, :D] = 0.0
        return {"W": mW, "r": mr}

    @staticmethod
    def balance(params: dict) -> np.ndarray:
        """||r_i||^2 - ||W_i||_F^2 per head, conserved by gradient flow (LA-36)."""
        return np.sum(params["r"] ** 2, axis=1) - np.sum(params["W"] ** 2, axis=(1, 2))

    @staticmethod
    def effective_b(params: dict) -> np.ndarray:
        """B = sum_i v_i U_i (LA-11), read off the full weights: v_i = r_i[D], U_i = W_i[:D, :D]."""
        D = params["r"].shape[1] - 1
        return np.einsum("h,hab->ab", params["r"][:, D], params["W"][:, :D, :D])


def gradient_descent(model, params: dict, batch: Batch, lr: float, steps: int, *, mask: dict | None = None,
                     record=None, progress: bool | None = None, desc: str = "gradient descent"):
    """Full-batch GD (LA-13). Returns (losses (steps+1,), records list, final params).

    ``record(params)`` is called at every step k = 0..steps (before the update) and its results are
    collected. A non-finite or exploding loss stops with DivergenceError naming the step.
    """
    params = {k: v.copy() for k, v in params.items()}
    losses = np.empty(steps + 1)
    records = []
    show = steps >= 2000 if progress is None else progress
    bar = tqdm(total=steps, desc=desc, disable=not show, leave=False)
    first = None
    for k in range(steps + 1):
        loss, grads = model.loss_and_grads(params, batch)
        first = loss if first is None else first
        if not math.isfinite(loss) or loss > 1e6 * max(first, 1.0):
            bar.close()
            raise DivergenceError(f"gradient descent diverged at step {k} (loss {loss:.3g}); lower --lr "
                                  f"(now {lr}) or the initial scale")
        losses[k] = loss
        if record is not None:
            records.append(record(params))
        if k == steps:
            break
        for name, grad in grads.items():
            if mask is not None:
                grad = grad * mask[name]
            params[name] -= lr * grad
        bar.update(1)
    bar.close()
    return losses, records, params


def problem(spec: LinearMergedSpec):
    """Covariance, initial weights and training set for the spec's seed (shared streams, see tasks)."""
    rngs = task.streams(spec.seed)
    cov = task.draw_covariance(spec.covariance, spec.dim, spec.eigenvalues, rngs["basis"])
    W, r = task.merged_initial_weights(spec.dim, spec.heads, spec.init_scale, rngs["init"])
    data = task.draw_training_set(cov, spec.context, spec.sample_size, rngs["data"],
                                  spec.centre_inputs, spec.whiten_tasks)
    return cov, {"W": W, "r": r}, data


def simulate_merged(spec: LinearMergedSpec, progress: bool | None = None) -> Trajectory:
    """Train the full ATTN_M model by gradient descent; loss and observables on t = lr * step."""
    cov, params, data = problem(spec)
    model = MergedAttention(spec.kappa)
    batch = Batch.from_training_set(data)
    mask = model.off_manifold_mask(params) if spec.freeze_off_manifold else None

    def record(p):
        B = model.effective_b(p)
        return np.diag(cov.basis.T @ B @ cov.basis), p["r"][:, -1].copy(), model.balance(p)

    steps = spec.gd_steps
    losses, records, _ = gradient_descent(model, params, batch, spec.lr, steps, mask=mask, record=record,
                                          progress=progress, desc="attn-m GD")
    beta, v, balance = (np.array(x) for x in zip(*records))
    t = spec.lr * np.arange(steps + 1)
    meta = provenance("attn-m", spec, "reference-gd", train_size=spec.sample_size, c=spec.c,
                      loss="training MSE without 1/2 (LA-12)", time="t = lr * step (LA-13)")
    return Trajectory(t=t, loss=losses, observables={"beta": beta, "v": v, "balance": balance}, meta=meta)
