"""NumPy gradient-descent witness of single-layer multi-head linear attention (linear_attention.md §2-§4).

The FULL model: complete (D+1) x (D+1) matrices per head, every block trainable (unless frozen on
request), full-batch gradient descent on the training loss (LA-12) with hand-written gradients (LA-7).
This module never imports ``derivations`` or ``reduced_dynamics.theory``: it is the independent check of
the reduced flows. It shares only the problem definition (``reduced_dynamics.tasks.linear_attention``).

A parametrization is a small object with ``loss_and_grads(params, batch)``: ATTN_M (LA-5, LA-7) and the
separate key/query parametrization ATTN_S (LA-6, LA-8), with rank R per head.

Loss convention: mean squared error without a factor 1/2 (§1); time t = lr * step (LA-13), the loss at
step k is computed before the k-th update.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from ..errors import DivergenceError
from ..events import midpoint_drop_time, transience_events
from ..specs import LinearMergedSpec, LinearSeparateSpec
from ..tasks import linear_attention as task
from ..trajectory import Trajectory, provenance


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

    def rows(self, idx: np.ndarray) -> "Batch":
        """The minibatch of the prompts ``idx`` (SGD)."""
        return Batch(T=self.T[idx], yq=self.yq[idx], width=self.width)

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
    family = "attn-m"

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


class SeparateAttention:
    """ATTN_S (LA-6): yhat = kappa sum_i (K_i M r_i)^T (Q_i z_q), parameters {"K": (H, R, D+1),
    "Q": (H, R, D+1), "r": (H, D+1)}."""

    name = "separate"
    family = "attn-s"

    def __init__(self, kappa: float):
        self.kappa = kappa

    @staticmethod
    def tensor(params: dict) -> np.ndarray:
        """K[a,b,c] = sum_{i,rho} K_i[rho,a] r_i[b] Q_i[rho,c], so that (K_i M r_i)^T Q_i z_q summed over
        heads is sum M[a,b] z_q[c] K[a,b,c]."""
        KQ = np.einsum("hra,hrc->hac", params["K"], params["Q"])     # (H, D+1, D+1): K_i^T Q_i over (a, c)
        return np.einsum("hb,hac->abc", params["r"], KQ)

    def predict(self, params: dict, batch: Batch) -> np.ndarray:
        return batch.predict_from_tensor(self.tensor(params), self.kappa)

    def loss_and_grads(self, params: dict, batch: Batch) -> tuple[float, dict]:
        """Training loss (LA-12) and its gradient, (LA-8) summed over the batch through the chain rule:
        with a_i = Q_i z_q, g_i = K_i M r_i and E = dL/dK (the batch mean of 2 err kappa M (x) z_q),
        dL/dr_i[b]       = sum_{rho,a,c} E[a,b,c] K_i[rho,a] Q_i[rho,c]   (mean of 2 err kappa M K_i^T a_i),
        dL/dK_i[rho,a]   = sum_{b,c}     E[a,b,c] r_i[b] Q_i[rho,c]        (mean of 2 err kappa a_i (M r_i)^T),
        dL/dQ_i[rho,c]   = sum_{a,b}     E[a,b,c] K_i[rho,a] r_i[b]        (mean of 2 err kappa g_i z_q^T)."""
        K, Q, r = params["K"], params["Q"], params["r"]
        loss, gK = batch.loss_and_tensor_grad(self.tensor(params), self.kappa)
        Er = np.einsum("abc,hb->hac", gK, r)              # E contracted with r_i: (H, D+1, D+1) over (a, c)
        grad_K = np.einsum("hac,hrc->hra", Er, Q)
        grad_Q = np.einsum("hac,hra->hrc", Er, K)
        grad_r = np.einsum("abc,hac->hb", gK, np.einsum("hra,hrc->hac", K, Q))
        return loss, {"K": grad_K, "Q": grad_Q, "r": grad_r}

    @staticmethod
    def off_manifold_mask(params: dict) -> dict:
        """1 where a weight may move, 0 on k_i^y = K_i[:, D] and r_i^x = r_i[:D] (§3 invariant manifold)."""
        K, r = params["K"], params["r"]
        D = r.shape[1] - 1
        mK, mr = np.ones_like(K), np.ones_like(r)
        mK[:, :, D] = 0.0
        mr[:, :D] = 0.0
        return {"K": mK, "Q": np.ones_like(params["Q"]), "r": mr}

    @staticmethod
    def balance(params: dict) -> np.ndarray:
        """||r_i||^2 - ||K_i||_F^2 per head, conserved by gradient flow (LA-37)."""
        return np.sum(params["r"] ** 2, axis=1) - np.sum(params["K"] ** 2, axis=(1, 2))

    @staticmethod
    def gram_difference(params: dict) -> np.ndarray:
        """K_i K_i^T - Q_i Q_i^T per head (H, R, R), conserved by gradient flow (LA-37)."""
        K, Q = params["K"], params["Q"]
        return np.einsum("hra,hsa->hrs", K, K) - np.einsum("hra,hsa->hrs", Q, Q)

    @staticmethod
    def effective_b(params: dict) -> np.ndarray:
        """B = sum_i v_i (K_i^x)^T Q_i^x (LA-11), read off the full weights (v_i = r_i[D])."""
        D = params["r"].shape[1] - 1
        return np.einsum("h,hra,hrb->ab", params["r"][:, D], params["K"][:, :, :D], params["Q"][:, :, :D])


# ---------------------------------------------------------------------------------------------------------
# Softmax attention (linear_attention_iwl.md §13, LA-50): the score vector of each head goes through a
# softmax over the N+1 keys (query included, its label slot zero, no mask) and there is no kappa.

@dataclass(frozen=True)
class TokenBatch:
    """The tokens themselves (softmax needs them; the linear feature tensor T does not suffice)."""
    Z: np.ndarray      # (P, D+1, N+1), query last with its label slot zeroed (LA-3)
    yq: np.ndarray     # (P,)

    @classmethod
    def from_training_set(cls, data: task.TrainingSet) -> "TokenBatch":
        return cls(Z=task.token_matrices(data), yq=data.yq)

    def rows(self, idx: np.ndarray) -> "TokenBatch":
        return TokenBatch(Z=self.Z[idx], yq=self.yq[idx])


def _softmax_head_outputs(W: np.ndarray, r: np.ndarray, Z: np.ndarray):
    """(LA-50) per head i with merged score matrix W_i: s_im = z_m^T W_i z_q, a = softmax_m(s),
    o_im = r_i^T z_m, yhat_i = sum_m a_im o_im. Returns (a, o, yhat_i), each (P, H, N+1) or (P, H)."""
    zq = Z[:, :, -1]
    s = np.matmul(np.einsum("hde,pe->phd", W, zq), Z)          # (P, H, N+1): z_m^T W_i z_q
    a = np.exp(s - s.max(axis=-1, keepdims=True))
    a /= a.sum(axis=-1, keepdims=True)
    o = np.matmul(r, Z)                                         # (P, H, N+1): r_i^T z_m
    return a, o, np.einsum("phm,phm->ph", a, o)


def _softmax_loss_and_score_grads(W: np.ndarray, r: np.ndarray, batch: TokenBatch):
    """Loss and its gradients in (W_i, r_i), by hand: with e_p = 2 (yhat_p - y_q,p) / P,
    dL/dr_i = sum_p e_p sum_m a_im z_m,   dL/dW_i = sum_p e_p (sum_m a_im (o_im - yhat_i) z_m) z_q^T
    (d softmax_m / d s_m' = a_m (delta_mm' - a_m'))."""
    Z = batch.Z
    a, o, yh = _softmax_head_outputs(W, r, Z)
    err = yh.sum(axis=1) - batch.yq
    e = 2.0 * err / err.size
    Zt = np.transpose(Z, (0, 2, 1))
    grad_r = np.matmul(e[:, None, None] * a, Zt).sum(axis=0)
    g = a * (o - yh[:, :, None])
    grad_W = np.einsum("phd,pe->hde", np.matmul(e[:, None, None] * g, Zt), Z[:, :, -1])
    return float(np.mean(err ** 2)), grad_W, grad_r


class SoftmaxMergedAttention(MergedAttention):
    """ATTN_M with softmax (LA-50, first form): yhat = sum_i sum_m softmax_m(z_m^T W_i z_q) r_i^T z_m."""

    name = "merged-softmax"

    def predict(self, params: dict, batch: TokenBatch) -> np.ndarray:
        return _softmax_head_outputs(params["W"], params["r"], batch.Z)[2].sum(axis=1)

    def loss_and_grads(self, params: dict, batch: TokenBatch) -> tuple[float, dict]:
        loss, gW, gr = _softmax_loss_and_score_grads(params["W"], params["r"], batch)
        return loss, {"W": gW, "r": gr}


class SoftmaxSeparateAttention(SeparateAttention):
    """ATTN_S with softmax (LA-50, second form): scores s_im = (Q_i z_q)^T (K_i z_m), i.e. W_i = K_i^T Q_i;
    dL/dK_i = Q_i (dL/dW_i)^T, dL/dQ_i = K_i dL/dW_i."""

    name = "separate-softmax"

    @staticmethod
    def scores(params: dict) -> np.ndarray:
        return np.einsum("hra,hrc->hac", params["K"], params["Q"])

    def predict(self, params: dict, batch: TokenBatch) -> np.ndarray:
        return _softmax_head_outputs(self.scores(params), params["r"], batch.Z)[2].sum(axis=1)

    def loss_and_grads(self, params: dict, batch: TokenBatch) -> tuple[float, dict]:
        loss, gW, gr = _softmax_loss_and_score_grads(self.scores(params), params["r"], batch)
        return loss, {"K": np.einsum("hrc,hac->hra", params["Q"], gW),
                      "Q": np.einsum("hra,hac->hrc", params["K"], gW), "r": gr}


def model_for(spec, separate: bool = False):
    """The parametrization the spec asks for (``spec.attention``), and the batch type it reads."""
    softmax = spec.attention == "softmax"
    if separate:
        model = SoftmaxSeparateAttention(spec.kappa) if softmax else SeparateAttention(spec.kappa)
    else:
        model = SoftmaxMergedAttention(spec.kappa) if softmax else MergedAttention(spec.kappa)
    return model, (TokenBatch if softmax else Batch)


def mean_squared_error(model, params: dict, batch) -> float:
    return float(np.mean((model.predict(params, batch) - batch.yq) ** 2))


def decay_gradients(params: dict, weight_decay: float) -> dict:
    """Gradient of the penalty (lambda/2) sum |theta|^2 over every weight array: lambda theta (WD-1). Kept apart
    from the models' loss gradients; the recorded loss stays the data loss."""
    return {name: weight_decay * value for name, value in params.items()}


def gradient_descent(model, params: dict, batch: Batch, lr: float, steps: int, *, mask: dict | None = None,
                     record=None, progress: bool | None = None, desc: str = "gradient descent",
                     weight_decay: float = 0.0, minibatches=None):
    """Full-batch GD (LA-13), with weight decay theta <- theta - lr (grad L + lambda theta) (WD-1) when
    ``weight_decay`` > 0 (frozen entries stay frozen). Returns (losses (steps+1,), records list, final params).

    ``record(params)`` is called at every step k = 0..steps (before the update) and its results are
    collected. A non-finite or exploding loss stops with DivergenceError naming the step. ``minibatches``
    (SGD): a callable giving the batch of the next step, called once per update; the recorded loss stays the
    loss on the whole ``batch``.
    """
    params = {k: v.copy() for k, v in params.items()}
    losses = np.empty(steps + 1)
    records = []
    show = steps >= 2000 if progress is None else progress
    bar = tqdm(total=steps, desc=desc, disable=not show, leave=False)
    first = None
    for k in range(steps + 1):
        if minibatches is None:
            loss, grads = model.loss_and_grads(params, batch)
        else:
            loss = mean_squared_error(model, params, batch)
            grads = model.loss_and_grads(params, minibatches())[1] if k < steps else {}
        first = loss if first is None else first
        if not math.isfinite(loss) or loss > 1e6 * max(first, 1.0):
            bar.close()
            raise DivergenceError(model.family, k, loss,
                                  f"lower --lr (now {lr}) or the initial scale")
        losses[k] = loss
        if record is not None:
            records.append(record(params))
        if k == steps:
            break
        if weight_decay:
            grads = {name: grads[name] + decay for name, decay in decay_gradients(params, weight_decay).items()}
        for name, grad in grads.items():
            if mask is not None:
                grad = grad * mask[name]
            params[name] -= lr * grad
        bar.update(1)
    bar.close()
    return losses, records, params


def minibatch_source(spec, batch, batch_type, drawn: task.Problem):
    """None for full-batch GD (``spec.batch_size`` None), else a callable giving the next minibatch in the
    order of ``spec.sampling`` from the stream ``task.batch_order_rng(spec.seed, spec.batch_seed)``: rows of
    the training set, or (online) fresh prompts from the spec's law (sgd.md, SGD-1)."""
    if spec.batch_size is None:
        return None
    order = task.MinibatchOrder(spec.sampling, spec.batch_size, batch.yq.size,
                                task.batch_order_rng(spec.seed, spec.batch_seed))

    def next_batch():
        idx = order.next()
        if idx is not None:
            return batch.rows(idx)
        fresh = task.draw_mixture(drawn.covariance, spec.context, spec.batch_size, order.rng, spec.icl,
                                  drawn.task_vector)
        return batch_type.from_training_set(fresh)
    return next_batch


def problem(spec: LinearMergedSpec):
    """Covariance, initial weights and training set for the spec's seed (``task.draw``)."""
    drawn = task.draw(spec, train=True)
    return drawn.covariance, drawn.weights, drawn.train


def test_batches(model_batch, drawn: task.Problem) -> dict:
    return {name: model_batch.from_training_set(data) for name, data in drawn.tests.items()}


def test_losses(model, params: dict, tests: dict) -> tuple[float, float]:
    """(L_IC, L_IW) of (LA-38) on the two held-out test sets."""
    return mean_squared_error(model, params, tests["in_context"]), mean_squared_error(model, params, tests["in_weight"])


def iwl_events(spec, cov: task.Covariance, t: np.ndarray, L_ic: np.ndarray, L_iw: np.ndarray) -> dict:
    """The drop times of §12.11 on the two test-loss curves (one definition for theory and reference); a
    drop that does not happen is left out (results are saved as JSON, which has no NaN)."""
    return task.drop_events(t, L_ic, L_iw, cov, spec.context)


def simulate_merged(spec: LinearMergedSpec, progress: bool | None = None, test_size: int = task.TEST_SIZE) -> Trajectory:
    """Train the full ATTN_M model (linear or softmax, ``spec.attention``) by gradient descent on the
    spec's training law (fraction ``spec.icl`` of random tasks, §12.1); training loss, both test losses
    (LA-38) on ``test_size`` prompts each (0: none) and observables on t = lr * step."""
    drawn = task.draw(spec, train=True, test_size=test_size)
    cov, params = drawn.covariance, drawn.weights
    model, batch_type = model_for(spec)
    batch = batch_type.from_training_set(drawn.train)
    tests = test_batches(batch_type, drawn)
    mask = model.off_manifold_mask(params) if spec.freeze_off_manifold else None

    def record(p):
        B = model.effective_b(p)
        return (np.diag(cov.basis.T @ B @ cov.basis), p["r"][:, -1].copy(), model.balance(p),
                *(test_losses(model, p, tests) if tests else ()))

    steps = spec.gd_steps
    losses, records, _ = gradient_descent(model, params, batch, spec.lr, steps, mask=mask, record=record,
                                          progress=progress, desc="attn-m GD", weight_decay=spec.weight_decay,
                                          minibatches=minibatch_source(spec, batch, batch_type, drawn))
    columns = [np.array(x) for x in zip(*records)]
    t = spec.lr * np.arange(steps + 1)
    observables = dict(zip(["beta", "v", "balance", "test_loss_in_context", "test_loss_in_weight"], columns))
    events = {"drop_time": midpoint_drop_time(t, losses)}
    if tests:
        events.update(iwl_events(spec, cov, t, columns[3], columns[4]))
        if spec.icl != 1.0:          # the mixture: does in-context learning emerge, and does it fade (WD-9)
            events.update(transience_events(t, columns[3], columns[4]))
    meta = provenance("attn-m", spec, "reference-gd", train_size=spec.sample_size, c=spec.c,
                      test_size=test_size, attention=spec.attention, icl=spec.icl, **sgd_meta(spec),
                      loss="training MSE without 1/2 (LA-12)", time="t = lr * step (LA-13)")
    return Trajectory(t=t, loss=losses, observables=observables, events=events, meta=meta)


def problem_separate(spec: LinearSeparateSpec):
    """Covariance, initial weights (§8 rule of the spec) and training set for the spec's seed (``task.draw``)."""
    drawn = task.draw(spec, train=True)
    return drawn.covariance, drawn.weights, drawn.train


def run_separate(spec: LinearSeparateSpec, params: dict, cov: task.Covariance, data: task.TrainingSet,
                 progress: bool | None = None, tests: dict | None = None) -> Trajectory:
    """Gradient descent on the full ATTN_S model (linear or softmax, ``spec.attention``) from given weights;
    observables ``beta`` (diagonal of B in the covariance eigenbasis), ``v`` (r_i[D]), ``balance`` and
    ``gram`` (LA-37), ``leak`` (largest |entry| of the off-manifold blocks k_i^y, r_i^x: zero when frozen,
    O(P^-1/2) drift otherwise, §10.2 (b)) and, when ``tests`` (the test sets of ``task.draw``) are given,
    ``test_loss_in_context`` and ``test_loss_in_weight`` (LA-38)."""
    model, batch_type = model_for(spec, separate=True)
    batch = batch_type.from_training_set(data)
    test_sets = {name: batch_type.from_training_set(d) for name, d in (tests or {}).items()}
    mask = model.off_manifold_mask(params) if spec.freeze_off_manifold else None
    D = spec.dim

    def record(p):
        B = model.effective_b(p)
        leak = max(float(np.max(np.abs(p["K"][:, :, D]))), float(np.max(np.abs(p["r"][:, :D]))))
        out = (np.diag(cov.basis.T @ B @ cov.basis), p["r"][:, D].copy(), model.balance(p),
               model.gram_difference(p), leak)
        return out + (test_losses(model, p, test_sets) if test_sets else ())

    steps = spec.gd_steps
    minibatches = None if spec.batch_size is None else minibatch_source(spec, batch, batch_type,
                                                                         task.draw(spec, train=False))
    losses, records, _ = gradient_descent(model, params, batch, spec.lr, steps, mask=mask, record=record,
                                          progress=progress, desc="attn-s GD", weight_decay=spec.weight_decay,
                                          minibatches=minibatches)
    columns = [np.array(x) for x in zip(*records)]
    t = spec.lr * np.arange(steps + 1)
    names = ["beta", "v", "balance", "gram", "leak"] + (["test_loss_in_context", "test_loss_in_weight"]
                                                         if test_sets else [])
    observables = dict(zip(names, columns))
    events = iwl_events(spec, cov, t, columns[5], columns[6]) if test_sets else {}
    meta = provenance("attn-s", spec, "reference-gd", train_size=data.yq.size, c=spec.c, attention=spec.attention,
                      **sgd_meta(spec),
                      icl=spec.icl, loss="training MSE without 1/2 (LA-12)", time="t = lr * step (LA-13)")
    return Trajectory(t=t, loss=losses, observables=observables, events=events, meta=meta)


def sgd_meta(spec) -> dict:
    """How the steps saw the prompts: nothing for full batch (every existing record unchanged)."""
    if spec.batch_size is None:
        return {}
    return {"batch_size": spec.batch_size, "sampling": spec.sampling, "batch_seed": spec.batch_seed}


def simulate_separate(spec: LinearSeparateSpec, progress: bool | None = None,
                      test_size: int | None = None) -> Trajectory:
    """Train the full ATTN_S model by gradient descent; loss, observables and, on ``test_size`` prompts each
    (0: none), both test losses of (LA-38) on t = lr * step. Default: ``task.TEST_SIZE`` when the run
    trains on a mixture (``spec.icl`` < 1, §12), else none: at icl = 1 the two §12 curves say nothing the
    training loss does not, and evaluating them at every step on 5000 prompts each made the default run
    1.66x the CPU (issue 20). Ask for them with ``test_size``; the training curve is the same either way
    (the test sets draw from their own stream)."""
    if test_size is None:
        test_size = task.TEST_SIZE if spec.icl < 1 else 0
    drawn = task.draw(spec, train=True, test_size=test_size)
    return run_separate(spec, drawn.weights, drawn.covariance, drawn.train, progress, drawn.tests)
